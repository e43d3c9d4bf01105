"""Cheap change detection for source folders: a stat walk, no hashing of unchanged files.

Kept apart from the sensor so it can be tested and reused without Dagster.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from neural_sorter.sources import FoundFile, walk_source

STATE_DIR = ".neural-sorter"  # the output folder's state (manifests, lock, trash): see neural_sorter.reorganize


def folder_fingerprint(root: Path, exclude: list[Path] | None = None) -> str:
    """A digest of every file's relative path, size and mtime: changes when anything is added, removed or
    modified, and costs one ``stat`` per file."""
    return fingerprint(
        (entry.relative_path, entry.size, entry.mtime_ns)
        for entry in walk_source(root, exclude)
        if isinstance(entry, FoundFile)
    )


def fingerprint(files: Iterable[tuple[str, int, int]]) -> str:
    """The digest of (relative path, size, mtime in ns) triples, in any order: the same for a folder walked
    now and for the ``file_manifest`` table of its last sort when nothing changed in between."""
    digest = hashlib.blake2b(digest_size=12)
    for path, size, mtime_ns in sorted((str(p), int(s), int(m)) for p, s, m in files):
        digest.update(f"{path}\0{size}\0{mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def output_exclusions(options) -> list[Path]:
    """Folders a scan of a source must skip: the output folder (already made absolute by the settings), so a
    sort whose OUT lies inside its source never ingests its own output."""
    return [Path(options.output_dir)] if options.output_dir else []


def is_output_folder(folder: Path) -> bool:
    """A folder holding neural-sorter's state is a sorted tree, never a source."""
    return (folder / STATE_DIR).is_dir()


def watched_subfolders(watch_root: Path, exclude: list[Path] | None = None) -> list[Path]:
    """Immediate, non-hidden subfolders of a watch root (each one a source), excluding output folders."""
    excluded = {os.path.realpath(p) for p in (exclude or [])}
    if not watch_root.is_dir():
        return []
    return sorted(
        child
        for child in watch_root.iterdir()
        if child.is_dir()
        and not child.name.startswith(".")
        and not child.is_symlink()
        and os.path.realpath(child) not in excluded
        and not is_output_folder(child)
    )
