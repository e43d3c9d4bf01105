"""Proving, cheaply and conservatively, that a re-sort would change nothing (issue 15).

A full ``neural-sorter sort`` of an unchanged folder still imports torch and Dagster and runs seven steps
(7-8 s) to arrive where it started. After every successful sort of a partition the CLI writes a *stamp*:
signatures of everything the run's result depends on, and the summary it printed. The next sort recomputes
the signatures with ``os.scandir``/``os.stat`` only and, when every one matches, prints that summary again
without starting Dagster or importing torch. Any difference, any error, any doubt means a full run:

(a) the source tree: relative path, size, mtime_ns, ctime_ns and inode of every file the scan would see
    (the same exclusions as ``neural_sorter.sources.walk_source``: hidden names, the output folder,
    symlinked folders not followed; a symlink's own target text and the target's identity);
(b) the effective options: the whole resolved config, the output folder, the config file's bytes, the
    environment that changes a run, the CLI version and the identity of its code and installed libraries;
(c) the stored assets: mtime_ns/size/inode of each of the partition's tables, its corrections file and its
    registry record (a run from the UI, the sensor or the schedule rewrites the tables, so its stamp, written
    by an earlier CLI run, no longer matches);
(d) the output tree: every file the last run placed or kept (the ``reorganized_tree`` table) still there
    with the same size, mtime and inode, and the same manifest.

(a) and (b) are taken *before* the run starts, so a file changed while the run was scanning makes the next
sort a full one. A file whose mtime is within ``RACY_NS`` (ctime: ``RACY_CTIME_NS``) of that walk could
still change without its timestamps changing (coarse filesystem clocks), so such a walk writes no stamp: the
next sort runs in full and stamps then.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import sysconfig
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = 1
FOLDER = "unchanged"
# Timestamps this close to the walk are not trusted to reveal a later change: mtimes can be coarse (FAT keeps
# 2 s); ctimes are kept by the kernel's clock (a tick, a few ms) and no program can set them back, so a fresh
# ctime with an old mtime (a file copied with its mtime kept) is trusted sooner. See the module docstring.
RACY_NS = 3_000_000_000
RACY_CTIME_NS = 500_000_000
# The environment a run reads besides its options: where things live, which model weights, offline or not.
ENV_PREFIXES = ("NEURAL_SORTER_", "DAGSTER_", "HF_", "TRANSFORMERS_", "TORCH_", "CUDA_", "OPENVINO", "ORT_")
# ... except the thread-pool size (neural_sorter.entry sets it at start): how many threads compute a result
# does not change which result.
ENV_IGNORED = frozenset({"NEURAL_SORTER_THREADS"})
# Actions after which the destination holds a file the run is responsible for (reorganize.actions).
HOLDING = ("copy", "hardlink", "symlink", "move", "keep", "relocate")


class Doubt(Exception):
    """Something could not be read or compared; the caller runs in full."""


@dataclass
class Before:
    """What is taken before a run: the source tree's and the options' signatures, and when."""

    source: str
    options: str
    walked_ns: int
    newest_mtime_ns: int
    newest_ctime_ns: int

    @property
    def racy(self) -> bool:
        return (
            self.newest_mtime_ns >= self.walked_ns - RACY_NS or self.newest_ctime_ns >= self.walked_ns - RACY_CTIME_NS
        )


def stamp_path(store_root: str, key: str) -> Path | None:
    """Where the stamp of ``key`` lives; None for a store that is not a local folder (object stores: always
    a full run, their timestamps are not ours to trust)."""
    if "://" in store_root and not store_root.startswith("file://"):
        return None
    return Path(store_root.removeprefix("file://")) / FOLDER / f"{key}.json"


# --- (a) the source tree --------------------------------------------------------------------------------------
def source_signature(root: Path, exclude: Iterable[Path]) -> tuple[str, int, int]:
    """(digest, newest mtime, newest ctime in ns) of the tree ``walk_source`` would scan. Raises ``Doubt`` on any
    unreadable folder or entry rather than skipping it."""
    excluded = {os.path.abspath(p) for p in exclude}
    digest = hashlib.blake2b(digest_size=20)
    newest_mtime = newest_ctime = 0
    stack = [os.path.abspath(root)]
    top = stack[0]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            raise Doubt(f"cannot list {folder}: {exc}") from exc
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            relative = os.fsencode(os.path.relpath(entry.path, top))
            try:
                info = entry.stat(follow_symlinks=False)
                if entry.is_symlink():
                    target = os.readlink(entry.path)
                    try:
                        pointed = os.stat(entry.path)
                        pointed_id = (pointed.st_size, pointed.st_mtime_ns, pointed.st_ctime_ns, pointed.st_ino)
                        newest_mtime = max(newest_mtime, pointed.st_mtime_ns)
                        newest_ctime = max(newest_ctime, pointed.st_ctime_ns)
                    except OSError:
                        pointed_id = None
                    record: tuple = (b"l", relative, os.fsencode(target), pointed_id)
                elif entry.is_dir(follow_symlinks=False):
                    if entry.path not in excluded:
                        subfolders.append(entry.path)
                    continue
                else:
                    record = (
                        b"f",
                        relative,
                        info.st_size,
                        info.st_mtime_ns,
                        info.st_ctime_ns,
                        info.st_ino,
                        info.st_mode,
                    )
            except OSError as exc:
                raise Doubt(f"cannot stat {entry.path}: {exc}") from exc
            newest_mtime = max(newest_mtime, info.st_mtime_ns)
            newest_ctime = max(newest_ctime, info.st_ctime_ns)
            digest.update(repr(record).encode())
        stack.extend(reversed(subfolders))
    return digest.hexdigest(), newest_mtime, newest_ctime


# --- (b) the options ----------------------------------------------------------------------------------------
def _file_identity(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Doubt(f"cannot stat {path}: {exc}") from exc
    return (info.st_size, info.st_mtime_ns, info.st_ino)


def code_identity() -> list:
    """The CLI's version, its own source files and the installed libraries' folder: a changed or upgraded
    install may sort differently, so it never reuses a stamp written by another one."""
    from neural_sorter import __version__

    package = Path(__file__).resolve().parent
    files = sorted(
        (str(p.relative_to(package)), _file_identity(p)) for p in package.rglob("*.py") if "__pycache__" not in p.parts
    )
    libraries = Path(sysconfig.get_paths()["purelib"])
    return [__version__, sys.version, files, str(libraries), _file_identity(libraries)]


def options_signature(config: dict[str, Any], extra: dict[str, Any], config_file: Path | None) -> str:
    """Digest of the resolved config, the run's other inputs (``extra``: output folder, flags), the config
    file's bytes, the run-changing environment and the code identity."""
    file_bytes = None
    if config_file is not None:
        try:
            file_bytes = hashlib.blake2b(config_file.read_bytes(), digest_size=20).hexdigest()
        except OSError as exc:
            raise Doubt(f"cannot read {config_file}: {exc}") from exc
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIXES) and k not in ENV_IGNORED)
    document = {"config": config, "extra": extra, "config_file": file_bytes, "env": env, "code": code_identity()}
    text = json.dumps(document, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def take_before(source: Path, exclude: Iterable[Path], config: dict, extra: dict, config_file: Path | None) -> Before:
    walked = time.time_ns()
    digest, newest_mtime, newest_ctime = source_signature(source, exclude)
    return Before(digest, options_signature(config, extra, config_file), walked, newest_mtime, newest_ctime)


# --- (c) the stored assets ------------------------------------------------------------------------------------
def store_signature(store_root: Path, key: str, assets: Iterable[str], registry_record: dict) -> list:
    """Identity of each stored table of ``key``, its corrections file and its registry record."""
    tables = [(asset, _file_identity(store_root / asset / f"{key}.parquet")) for asset in assets]
    corrections = _file_identity(store_root / "corrections" / f"{key}.json")
    return [tables, corrections, sorted(registry_record.items())]


# --- (d) the output tree ------------------------------------------------------------------------------------
def output_signature(destinations: Iterable[str], manifest: Path) -> str:
    """Digest of every placed file's identity (the link itself for symlinks) and the manifest's; a placed
    file that is gone raises ``Doubt``."""
    digest = hashlib.blake2b(digest_size=20)
    for destination in destinations:
        try:
            info = os.lstat(destination)
        except OSError as exc:
            raise Doubt(f"placed file {destination} is gone: {exc}") from exc
        digest.update(repr((destination, info.st_size, info.st_mtime_ns, info.st_ino)).encode())
    digest.update(repr(_file_identity(manifest)).encode())
    return digest.hexdigest()


def placed_destinations(tree) -> list[str]:
    """Destinations of the files the run holds in OUT (placed, kept or relocated), from its table."""
    if tree is None or not len(tree):
        return []
    held = tree[tree["action"].isin(HOLDING) & tree["destination"].notna()]
    if "error" in held:
        held = held[held["error"].isna()]
    return sorted(str(d) for d in held["destination"])


# --- the stamp ------------------------------------------------------------------------------------------------
def forget(path: Path | None) -> None:
    """Removes a stamp: called before every full run, so a failed or interrupted run leaves none behind."""
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def write(
    path: Path,
    before: Before,
    stored: list,
    destinations: list[str],
    manifest: Path,
    summary: dict[str, Any],
) -> bool:
    """Writes the stamp after a successful run; False (and no stamp) when the walk was racy or OUT is not
    readable as placed."""
    if before.racy:
        return False
    try:
        output = output_signature(destinations, manifest)
    except Doubt:
        return False
    document = {
        "format": FORMAT,
        "source": before.source,
        "options": before.options,
        "stored": stored,
        "destinations": destinations,
        "manifest": str(manifest),
        "output": output,
        "summary": summary,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return True


def check(path: Path | None, before: Before, stored: list) -> dict[str, Any] | None:
    """The last run's summary when the stamp at ``path`` matches (a), (b), (c) and (d) today; else None."""
    if path is None or before.racy:
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("format") != FORMAT:
            return None
        if document["source"] != before.source or document["options"] != before.options:
            return None
        if json.loads(json.dumps(stored, default=str)) != document["stored"]:
            return None
        if output_signature(document["destinations"], Path(document["manifest"])) != document["output"]:
            return None
        summary = document["summary"]
        return replay(summary, len(document["destinations"])) if isinstance(summary, dict) else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, Doubt):
        return None


def replay(summary: dict[str, Any], held: int) -> dict[str, Any]:
    """The last run's summary as this invocation's: the folder's state (files, clusters, duplicates, flags,
    failures, output) is the last run's, while the counts of what a run *did* are what a full run of the
    unchanged folder reports (every vector reused, every placed file kept), so a script reading
    ``embedded_new`` or ``actions`` after a re-sort reads the same either way. ``run_id`` stays the run
    whose results these are; ``unchanged`` says no run was made."""
    replayed = dict(summary)
    replayed["embedded_reused"] = int(summary["embedded_reused"]) + int(summary["embedded_new"])
    replayed["embedded_new"] = 0
    if "actions" in summary:
        replayed["actions"] = {"keep": held} if held else {}
    return replayed


# --- what the CLI calls ---------------------------------------------------------------------------------------
@dataclass
class Attempt:
    """One source's check before its run: the stamp's path, what was taken before, and the last summary when
    nothing changed (then no run is needed)."""

    path: Path | None = None
    before: Before | None = None
    summary: dict[str, Any] | None = None


def attempt(store, key: str, source: Path, out: Path, config, flags: dict[str, Any], config_file) -> Attempt:
    """Takes (a) and (b) and compares the stamp; never raises: a problem only costs the shortcut.

    ``flags`` are the run's inputs beside the config (e.g. ``force``, ``retrain``). A dry run, ``--recluster``
    and ``--retrain`` always run in full and take no stamp: they are asked for because the user wants work
    done, and a dry run's table is not a sorted tree.
    """
    if not store.is_local or config.dry_run or config.recluster or flags.get("retrain"):
        return Attempt()
    path = stamp_path(str(store.root.path), key)
    try:
        before = take_before(
            source,
            [out],
            config.model_dump(mode="json"),
            {"key": key, "source": str(source), "out": str(out), **flags},
            Path(config_file).expanduser() if config_file else None,
        )
    except Exception:  # any doubt means a full run, which reports real problems itself
        return Attempt(path)
    if path is None or not path.exists():
        return Attempt(path, before)
    try:
        stored = _stored(store, key)
    except Exception:  # as above
        return Attempt(path, before)
    return Attempt(path, before, check(path, before, stored))


def _stored(store, key: str) -> list:
    from neural_sorter.tables import ASSET_NAMES

    return store_signature(Path(store.root.path), key, ASSET_NAMES, store.sources.record(key))


def record(attempt: Attempt, store, key: str, out: Path, summary: dict[str, Any]) -> bool:
    """After a successful run with every file placed: writes the stamp (False when none could be, e.g. the
    walk was racy). The table read here is the one the run just wrote, so (d) is the tree as this run left it."""
    from neural_sorter.tables import REORGANIZED_TREE

    if attempt.path is None or attempt.before is None or summary.get("dry_run") or summary.get("placement_errors"):
        return False
    try:
        tree = store.read(REORGANIZED_TREE, key, columns=["destination", "action", "error"])
        manifest = out / ".neural-sorter" / "manifest.csv"
        return write(attempt.path, attempt.before, _stored(store, key), placed_destinations(tree), manifest, summary)
    except Exception:  # no stamp only means the next sort runs in full
        forget(attempt.path)
        return False
