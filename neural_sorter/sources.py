"""Source directories: their partition keys, the registry that maps keys back to folders, the folder each
source's sorted tree gets in an output folder, and the walk.

Partition keys become path pieces in the store, so they are short readable slugs plus a short hash of the
absolute path (two folders called ``photos`` get different keys). In the output folder a person reads the
tree, so there a source gets its own folder name (``OUT/photos/``, a second ``photos`` gets ``photos-2``),
chosen once and recorded in the registry (``output_folder``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import unicodedata
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path

from upath import UPath

from neural_sorter.store import Store, set_aside

log = logging.getLogger(__name__)

PARTITIONS_NAME = "source_dirs"
_SLUG_MAX = 16
# 64 bits of the path's hash: two folders with the same name collide with odds ~ n^2 / 2^65, far below any
# real library (32 bits collided after ~41k paths), and the registry refuses a collision anyway.
_DIGEST_HEX = 16
# neural-sorter's own records in an output folder (``reorganize.actions.STATE_DIR``): never a source's name.
STATE_FOLDER = ".neural-sorter"


def normalise_path(value: str | os.PathLike[str]) -> str:
    """The one place a user's path is made absolute: ``~`` expanded, relative paths and symlinks resolved, so
    the same folder gets the same partition key and the same exclusion wherever it is written."""
    return str(Path(os.path.expanduser(os.fspath(value))).resolve())


def partition_key_for(path: str | os.PathLike[str]) -> str:
    """A short, stable, filesystem-safe key for a source folder."""
    absolute = normalise_path(path)
    slug = re.sub(r"[^a-z0-9]+", "-", os.path.basename(absolute.rstrip(os.sep)).lower()).strip("-")
    slug = slug[:_SLUG_MAX].strip("-") or "root"
    digest = hashlib.sha1(absolute.encode("utf-8", "surrogateescape")).hexdigest()[:_DIGEST_HEX]
    return f"{slug}-{digest}"


# Bytes of a source's folder name in OUT: room below the 255-byte name limit for a "-NN" suffix.
_FOLDER_NAME_BYTES = 120
# Characters that are not allowed in a file name on some system (Windows, SMB shares) a tree may be copied to.
_UNSAFE_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')


def folder_name_for(source: str | os.PathLike[str]) -> str:
    """The source folder's own name made safe for a file name: invalid UTF-8, control and reserved characters
    become ``_``, leading dots and spaces go (a hidden folder would vanish from a file browser and from the
    walk), trailing dots and spaces go (Windows drops them), long names are cut at a character boundary."""
    name = os.path.basename(normalise_path(source).rstrip(os.sep))
    name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\ufffd", "_")
    name = unicodedata.normalize("NFC", _UNSAFE_CHARS.sub("_", name)).strip(" .")
    name = name.encode("utf-8")[:_FOLDER_NAME_BYTES].decode("utf-8", "ignore").rstrip(" .")
    return name or "root"


def default_output_dir(source: str | os.PathLike[str]) -> str:
    """Where a source's sorted tree goes when no output folder was ever given: ``<name>-sorted`` beside it."""
    folder = Path(normalise_path(source))
    return str(folder.with_name(f"{folder.name or 'root'}-sorted"))


class SourceKeyCollision(ValueError):
    """Two folders would share one partition key."""


class UnknownSourceError(KeyError):
    """A partition key that no registered source folder maps to."""

    def __str__(self) -> str:
        return (
            f"partition {self.args[0]!r} is not a registered source folder: add it with "
            "`neural-sorter sources add PATH` (or list it under `sources:` in the config file) and use the key "
            "that `neural-sorter sources list` prints"
        )


class SourceRegistry:
    """Maps partition keys to absolute folder paths; a JSON file in the store so every process agrees."""

    def __init__(self, store: str | UPath | Store) -> None:
        root = store.root if isinstance(store, Store) else UPath(store)
        self._file = root / "sources.json"

    def _read(self) -> dict[str, dict[str, str]]:
        """{key: {"path": folder, "output_dir": folder or absent}}; older stores held {key: folder}."""
        if not self._file.exists():
            return {}
        try:
            raw = json.loads(self._file.read_text())
            if not isinstance(raw, dict):
                raise ValueError("not a mapping")
        except (ValueError, UnicodeDecodeError) as exc:
            # A power cut can leave it empty or half-written: set it aside (never lose it) and start afresh;
            # folders register again on their next sort.
            aside = set_aside(self._file)
            log.warning("source registry %s was unreadable (%s); moved to %s and rebuilt", self._file, exc, aside)
            return {}
        return {k: v if isinstance(v, dict) else {"path": v} for k, v in raw.items()}

    def _locked(self) -> AbstractContextManager:
        """Serialises read-modify-write of a local registry across processes (the sensor starts several sorts
        at once; a lost write would forget a source or its folder name). Object stores get no lock."""
        if getattr(self._file, "protocol", "") not in ("", "file", "local"):
            return nullcontext()
        from filelock import FileLock

        self._file.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(f"{self._file}.lock")

    def _write(self, entries: dict[str, dict[str, str]]) -> None:
        self._file.parent.mkdir(parents=True, exist_ok=True)
        # Write-then-rename so a reader never sees half a file (object stores write whole objects anyway).
        tmp = self._file.with_name(f"{self._file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries, indent=2, sort_keys=True))
        tmp.rename(self._file)

    def key_for(self, path: str | os.PathLike[str]) -> str:
        """The key a folder is registered under (older stores used shorter keys), else its new key."""
        absolute = normalise_path(path)
        for key, record in self._read().items():
            if record.get("path") == absolute:
                return key
        return partition_key_for(absolute)

    def add(self, path: str | os.PathLike[str], output_dir: str | os.PathLike[str] | None = None) -> str:
        """Registers a folder (idempotent); ``output_dir`` is remembered so UI, sensor and schedule runs of the
        partition write where the first sort did. An earlier output folder is kept when none is given. A key
        bound to another folder is refused: sharing a partition would retire one folder's sorted tree."""
        absolute = normalise_path(path)
        with self._locked():
            key = self.key_for(absolute)
            entries = self._read()
            bound = entries.get(key, {}).get("path")
            if bound not in (None, absolute):
                raise SourceKeyCollision(f"partition key {key} already belongs to {bound}; cannot register {absolute}")
            record = {**entries.get(key, {}), "path": absolute}
            if output_dir:
                record["output_dir"] = normalise_path(output_dir)
            entries[key] = record
            self._write(entries)
        return key

    def remove(self, key_or_path: str) -> str | None:
        with self._locked():
            entries = self._read()
            key = key_or_path if key_or_path in entries else partition_key_for(key_or_path)
            if entries.pop(key, None) is None:
                return None
            self._write(entries)
        return key

    def output_folder(
        self,
        key: str,
        out: str | os.PathLike[str],
        source: str | os.PathLike[str] | None = None,
        claim: bool = False,
        prefer: str | None = None,
    ) -> Path:
        """``OUT/<name>``: the folder of this source's sorted tree in ``out``. The one place it is computed (the
        stage that places files, the CLI summary, the viewer, the Dagster metadata all ask here).

        The name is the source folder's own (``folder_name_for``) or, when another source already holds it in
        this output folder (recorded here, or a folder of that name already on disk), ``name-2``, ``name-3``...
        Names are compared case-insensitively (macOS and Windows file systems are). ``claim`` records the
        choice under ``output_folders`` so it never changes between runs and no later source takes it; call it
        with ``claim`` only under the output folder's lock (``reorganize.output_lock``). Without ``claim`` the
        recorded name is returned, else the one a claim would choose now (for a "sorting ... ->" line).
        ``source`` is needed only for a folder not in the registry (a config-file source).

        ``prefer``: the folder OUT's records hold this source's placements in. With no recorded name it is
        taken back when it is this folder's name (``photos`` or ``photos-N``) and no other source holds it: a
        source removed and added again, or whose record was lost, keeps its tree instead of moving it all to
        ``photos-2``. The partition-key folder of older versions is not a name, so such a tree moves."""
        target = normalise_path(out)
        with self._locked() if claim else nullcontext():
            entries = self._read()
            record = entries.get(key, {})
            recorded = (record.get("output_folders") or {}).get(target)
            if recorded:
                return Path(target) / recorded
            folder = source if source is not None else record.get("path")
            if folder is None:
                raise UnknownSourceError(key)
            others = {
                name.casefold()
                for other, other_record in entries.items()
                if other != key
                for out_dir, name in (other_record.get("output_folders") or {}).items()
                if out_dir == target
            }
            held = set(others)
            with suppress(FileNotFoundError):  # no output folder yet: nothing in it to avoid
                held |= {entry.casefold() for entry in os.listdir(target)}  # someone else's, or an older layout's
            base = folder_name_for(folder)
            if prefer and prefer.casefold() not in others and re.fullmatch(rf"{re.escape(base)}(-[0-9]+)?", prefer):
                name = prefer  # on disk it is this source's own tree
            else:
                name, n = base, 2
                while name.casefold() in held or name == STATE_FOLDER:
                    name, n = f"{base}-{n}", n + 1
            if claim:
                entries[key] = {
                    **record,
                    "path": record.get("path") or normalise_path(folder),
                    "output_folders": {**(record.get("output_folders") or {}), target: name},
                }
                self._write(entries)
            return Path(target) / name

    def entries(self) -> dict[str, str]:
        """{partition key: folder}."""
        return {k: v["path"] for k, v in self._read().items()}

    def records(self) -> dict[str, dict[str, str]]:
        """{partition key: {"path": folder, "output_dir": folder (when one was recorded)}}."""
        return self._read()

    def record(self, key: str) -> dict[str, str]:
        """What was registered with the key (its folder and output folder), or {}."""
        return dict(self._read().get(key, {}))

    def resolve(self, key: str, extra_sources: list[str] | None = None) -> Path:
        """The folder behind a partition key; config-file sources count as registered too."""
        entries = self.entries()
        if key in entries:
            return Path(entries[key])
        for source in extra_sources or []:
            if partition_key_for(source) == key:
                return Path(normalise_path(source))
        raise UnknownSourceError(key)


@dataclass(frozen=True)
class FoundFile:
    path: Path
    relative_path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class SkippedEntry:
    path: Path
    relative_path: str
    reason: str


def walk_source(root: Path, exclude: list[Path] | None = None) -> Iterator[FoundFile | SkippedEntry]:
    """Every regular file below ``root``, recursively.

    Hidden folders and the excluded folders (the output tree) are skipped; symlinked folders are not
    followed (no loops), and a symlinked file is only taken when it points inside the source. Problems
    become ``SkippedEntry`` rows rather than exceptions so one unreadable folder never stops a run.
    """
    root = Path(os.path.abspath(root))
    excluded = {Path(os.path.abspath(p)) for p in (exclude or [])}
    real_root = os.path.realpath(root)

    def on_error(error: OSError) -> None:
        errors.append(error)

    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=False):
        current = Path(dirpath)
        kept = []
        for name in sorted(dirnames):
            child = current / name
            if name.startswith(".") or child in excluded:
                continue
            if child.is_symlink():
                yield SkippedEntry(child, _relative(child, root), "symlinked folder not followed")
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = current / name
            relative = _relative(path, root)
            try:
                if path.is_symlink():
                    target = os.path.realpath(path)
                    if not (target == real_root or target.startswith(real_root + os.sep)):
                        yield SkippedEntry(path, relative, "symlink points outside the source folder")
                        continue
                stat = path.stat()
            except OSError as exc:
                yield SkippedEntry(path, relative, f"cannot stat: {exc.strerror or exc}")
                continue
            if not os.path.isfile(path):
                yield SkippedEntry(path, relative, "not a regular file")
                continue
            yield FoundFile(path, relative, stat.st_size, stat.st_mtime_ns)
    for error in errors:
        failed = Path(error.filename) if error.filename else root
        yield SkippedEntry(failed, _relative(failed, root), f"cannot read folder: {error.strerror or error}")


def _relative(path: Path, root: Path) -> str:
    return os.path.relpath(path, root)
