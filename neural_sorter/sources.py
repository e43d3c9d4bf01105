"""Source directories: their partition keys, the registry that maps keys back to folders, and the walk.

Partition keys become path pieces in the store, so they are short readable slugs plus a short hash of the
absolute path (two folders called ``photos`` get different keys).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
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
        entries = self._read()
        key = key_or_path if key_or_path in entries else partition_key_for(key_or_path)
        if entries.pop(key, None) is None:
            return None
        self._write(entries)
        return key

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
