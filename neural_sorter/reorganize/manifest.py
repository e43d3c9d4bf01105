"""The run records: ``OUT/.neural-sorter/manifest.csv`` and ``history/NNNNNN-<run>-<partition>.csv``.

The records are the only memory this tool has of what it did, so they are written completely and durably
(temp file, fsync, rename or link, fsync the folder) before a single file is touched, and read back with
the exact bytes of every name.
"""

from __future__ import annotations

import csv
import os
import secrets
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from neural_sorter.reorganize.actions import HOLDING_ACTIONS, Action, state_dir
from neural_sorter.reorganize.fs import fsync_dir

MANIFEST_FIELDS = [
    "source",
    "destination",
    "content_hash",
    "cluster",
    "action",
    "partition",
    "run_id",
    "previous_destination",
]
HISTORY_DIR = "history"
_SEQUENCE_DIGITS = 6


def history_dir(out: Path) -> Path:
    return state_dir(out) / HISTORY_DIR


def sequence(path: Path) -> int:
    """The run's place in the order of runs, from its file name; -1 for names that carry none."""
    head = path.name.split("-", 1)[0]
    return int(head) if head.isdigit() and len(head) == _SEQUENCE_DIGITS else -1


def history_files(out: Path) -> list[Path]:
    """Manifests of earlier runs, oldest first (undone runs excluded).

    Order comes from the sequence number each run claims, never from clock time: two runs in the
    same second (or a clock stepped backwards) must still undo in the order they happened.
    """
    folder = history_dir(out)
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.csv"), key=lambda path: (sequence(path), path.name))


def write_history(folder: Path, run_id: str, partition: str, actions: list[Action]) -> Path:
    """Writes the run's manifest under the next free sequence number.

    The complete file is hard-linked into place, which fails rather than replaces when a
    concurrent run took that number first; a reader never sees a half-written manifest.
    """
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".staging-{run_id}-{partition}.tmp"
    write_manifest(staging, actions)
    number = max((sequence(path) for path in folder.iterdir()), default=-1) + 1
    try:
        while True:
            path = folder / f"{number:0{_SEQUENCE_DIGITS}d}-{run_id}-{partition}.csv"
            try:
                os.link(staging, path)
                fsync_dir(folder)
                return path
            except FileExistsError:
                number += 1
    finally:
        staging.unlink(missing_ok=True)


def write_manifest(path: Path, actions: list[Action]) -> None:
    """Writes a manifest CSV atomically and durably (temp file, fsync, rename, fsync the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        for action in actions:
            row = asdict(action)
            row["action"] = row["action"].value  # the plain string older versions wrote
            writer.writerow(row)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_manifest(path: Path) -> pd.DataFrame:
    # Paths that are not valid UTF-8 were written with surrogateescape; read them back the same way.
    return pd.read_csv(path, dtype=object, keep_default_na=False, encoding_errors="surrogateescape")


def current_placements(out: Path, partition: str) -> pd.DataFrame:
    """What the tree holds for ``partition``: the holding rows of the latest run that touched it."""
    for path in reversed(history_files(out)):
        table = read_manifest(path)
        mine = table[table["partition"] == partition]
        if len(mine):
            return mine[mine["action"].isin([str(kind) for kind in HOLDING_ACTIONS])].reset_index(drop=True)
    return pd.DataFrame(columns=MANIFEST_FIELDS)
