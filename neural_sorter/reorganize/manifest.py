"""The run records: ``OUT/.neural-sorter/manifest.csv`` and ``history/NNNNNN-<run>-<partition>.csv``.

The records are the only memory this tool has of what it did, so they are written completely and durably
(temp file, fsync, rename or link, fsync the folder) before a single file is touched, and read back with
the exact bytes of every name.

Two journals sit next to each record, named by ``<run>-<partition>`` (known before the record gets its
sequence number, so they exist before it does):

- ``.applied-<key>``: the row numbers placed so far, then ``complete`` when the run finished. A record
  whose journal lacks ``complete`` belongs to an interrupted run, which the next run adopts; undo uses
  it to tell "never placed" from "placed, then renamed or removed by the user". Records written before
  journals existed have none and are treated as complete.
- ``.undo-<key>``: the row numbers an undo has settled. A failed undo keeps the record, so the next undo
  retries exactly the rows not listed here.

The records are strict UTF-8 whatever the file names are, so ``pandas.read_csv``, spreadsheets and scripts
read them: a name that is not UTF-8 (on Linux any bytes are a name, e.g. Latin-1 ``b"caf\\xe9.png"``) appears
backslash-escaped (``caf\\xe9.png``, readable but ambiguous) in its column, and its exact bytes, percent-encoded, in
``<column>_bytes``; undo acts on those bytes. Records from before hold the raw bytes and still read.
"""

from __future__ import annotations

import contextlib
import csv
import os
import secrets
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from urllib.parse import quote_from_bytes, unquote_to_bytes

import pandas as pd

from neural_sorter.reorganize.actions import HOLDING_ACTIONS, Action, ActionKind, state_dir
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
    # "device:inode:uid:mode" of the folder a moved original came from; undo restores only into it.
    "source_folder",
]
# Columns holding file names; each has a ``<name>_bytes`` column with the exact bytes of a name that is not UTF-8.
PATH_FIELDS = ("source", "destination", "previous_destination")
BYTES_FIELDS = [f"{field}_bytes" for field in PATH_FIELDS]
HISTORY_DIR = "history"
_KINDS = frozenset(str(kind) for kind in ActionKind)
COMPLETE = "complete"
_SEQUENCE_DIGITS = 6


def history_dir(out: Path) -> Path:
    return state_dir(out) / HISTORY_DIR


def sequence(path: Path) -> int:
    """The run's place in the order of runs, from its file name; -1 for names that carry none."""
    head = path.name.split("-", 1)[0]
    return int(head) if head.isdigit() and len(head) == _SEQUENCE_DIGITS else -1


def history_files(out: Path) -> list[Path]:
    """Manifests of earlier runs, oldest first (undone and adopted runs excluded).

    Order comes from the sequence number each run claims, never from clock time: two runs in the
    same second (or a clock stepped backwards) must still undo in the order they happened.
    """
    folder = history_dir(out)
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.csv"), key=lambda path: (sequence(path), path.name))


def record_key(run_id: str, partition: str) -> str:
    return f"{run_id}-{partition}"


def key_of(record: Path) -> str:
    """``<run>-<partition>`` of a history record (its name without sequence number and extension)."""
    return record.name.split("-", 1)[1].rsplit(".", 1)[0]


def applied_journal(folder: Path, key: str) -> Path:
    return folder / f".applied-{key}"


def undo_journal(folder: Path, key: str) -> Path:
    return folder / f".undo-{key}"


def read_journal(path: Path) -> tuple[set[int], bool] | None:
    """(row numbers listed, whether ``complete`` was written); None when there is no journal."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    rows = {int(line) for line in text.split() if line.isdigit()}
    return rows, COMPLETE in text.split()


class Journal:
    """An append-only list of row numbers, flushed per line so a kill loses at most the line being written."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = open(path, "a", encoding="ascii")  # noqa: SIM115 - closed by close()

    def add(self, rows: Iterable[int] | int) -> None:
        for row in [rows] if isinstance(rows, int) else rows:
            self._handle.write(f"{row}\n")
        self._handle.flush()

    def close(self, complete: bool = False) -> None:
        if complete:
            self._handle.write(f"{COMPLETE}\n")
        self._handle.flush()
        with contextlib.suppress(OSError):
            os.fsync(self._handle.fileno())
        self._handle.close()


def is_complete(record: Path) -> bool:
    """False only for a run that started placing and never finished (killed or interrupted)."""
    journal = read_journal(applied_journal(record.parent, key_of(record)))
    return journal is None or journal[1]


def retire(record: Path, suffix: str) -> None:
    """Takes a record out of the history (``.undone``, ``.adopted``) and drops its journals."""
    os.replace(record, record.with_name(record.name[: -len(".csv")] + suffix))
    for journal in (applied_journal(record.parent, key_of(record)), undo_journal(record.parent, key_of(record))):
        journal.unlink(missing_ok=True)
    fsync_dir(record.parent)


def write_history(
    folder: Path, run_id: str, partition: str, actions: list[Action], source_folders: dict[str, str] | None = None
) -> Path:
    """Writes the run's manifest under the next free sequence number.

    The complete file is hard-linked into place, which fails rather than replaces when a
    concurrent run took that number first; a reader never sees a half-written manifest.
    """
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".staging-{run_id}-{partition}.tmp"
    write_manifest(staging, actions, source_folders)
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


def write_manifest(path: Path, actions: list[Action], source_folders: dict[str, str] | None = None) -> None:
    """Writes a manifest CSV atomically and durably (temp file, fsync, rename, fsync the folder).

    ``source_folders`` maps the folder of a moved original to its identity (``fs.folder_identity``).
    The file is readable by its owner only: it lists every file name of the user's sources.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with open(fd, "w", newline="", encoding="utf-8") as handle:  # strict: _escaped leaves no surrogate
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS + BYTES_FIELDS)
        writer.writeheader()
        for action in actions:
            row = asdict(action)
            row.pop("note", None)  # reported by the stage, not recorded
            row["action"] = row["action"].value  # the plain string older versions wrote
            row["source_folder"] = (source_folders or {}).get(os.path.dirname(action.source), "")
            for field, exact in zip(PATH_FIELDS, BYTES_FIELDS, strict=True):
                row[field], row[exact] = _escaped(row[field])
            writer.writerow(row)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _escaped(name: str) -> tuple[str, str]:
    """(valid-UTF-8 text for the name column, percent-encoded exact bytes or "" when the text is exact)."""
    try:
        name.encode("utf-8")
        return name, ""
    except UnicodeEncodeError:  # surrogates: bytes os.fsdecode could not decode
        raw = name.encode("utf-8", "surrogateescape")
        return raw.decode("utf-8", "backslashreplace"), quote_from_bytes(raw, safe="/")


class ManifestError(ValueError):
    """A record this tool cannot trust: the message names the file and line, fit for one line of output."""


def read_manifest(path: Path) -> pd.DataFrame:
    """Every row of a record as strings, checked line by line.

    Read with the ``csv`` module rather than ``pandas.read_csv``, which accepts a row with extra fields by
    silently turning the first ones into an index: a damaged record must be named, never half-understood.
    File names come back as ``os.fsdecode`` gives them (surrogates for bytes that are not UTF-8): from the
    ``_bytes`` columns where a row has them, else from the name columns, which in records written before
    those columns existed hold the raw bytes (read with surrogateescape).
    """
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None or "action" not in header or "destination" not in header:
                raise ManifestError(f"{path}, line 1: not a neural-sorter manifest (header {header!r})")
            rows = []
            for row in reader:
                if len(row) != len(header):
                    raise ManifestError(
                        f"{path}, line {reader.line_num}: {len(row)} fields where the header has {len(header)}"
                    )
                action = row[header.index("action")]
                if action not in _KINDS:
                    raise ManifestError(f"{path}, line {reader.line_num}: unknown action {action!r}")
                rows.append(row)
        except csv.Error as exc:
            raise ManifestError(f"{path}, line {reader.line_num}: {exc}") from None
    table = pd.DataFrame(rows, columns=header, dtype=object)
    for column in MANIFEST_FIELDS:
        if column not in table.columns:  # written by an older version
            table[column] = ""
    for field, exact in zip(PATH_FIELDS, BYTES_FIELDS, strict=True):
        if exact in table.columns:
            named = table[exact] != ""
            table.loc[named, field] = [os.fsdecode(unquote_to_bytes(value)) for value in table.loc[named, exact]]
    return table.drop(columns=[c for c in BYTES_FIELDS if c in table.columns])


def latest_record(out: Path, partition: str) -> tuple[Path, pd.DataFrame] | None:
    """The newest record with rows for ``partition``, and those rows."""
    for path in reversed(history_files(out)):
        named = key_of(path).split("-", 2)
        if len(named) == 3 and named[2] != partition:
            continue  # another source's record: not even read, so damage there cannot stop this one
        table = read_manifest(path)
        mine = table[table["partition"] == partition]
        if len(mine):
            return path, mine.reset_index(drop=True)
    return None


def holding(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["action"].isin([str(kind) for kind in HOLDING_ACTIONS])].reset_index(drop=True)


def current_placements(out: Path, partition: str) -> pd.DataFrame:
    """What the tree holds for ``partition``: the holding rows of the latest run that touched it."""
    latest = latest_record(out, partition)
    return holding(latest[1]) if latest else pd.DataFrame(columns=MANIFEST_FIELDS)
