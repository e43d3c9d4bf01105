"""Undo: reverting the latest recorded run, file by file, without ever destroying what the user changed.

A failed undo is not an undo: when any row could not be reverted (a read-only or full source folder, a
permission error, something else at the original path, a source folder that is no longer the one the
files came from), the record stays in the history and the rows that were settled are journaled, so the
next ``undo`` retries exactly the rest. Only a fully settled record is retired to ``.undone``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from neural_sorter.reorganize.actions import MANIFEST_NAME, PLACING_ACTIONS, STATE_DIR, ActionKind, state_dir
from neural_sorter.reorganize.dirfd import (
    closing_fd,
    exists_at,
    hash_at,
    lstat_at,
    readlink_at,
    rename_no_replace_at,
    same_entry,
)
from neural_sorter.reorganize.fs import (
    hash_matches,
    move_out,
    parent_fd,
    remove_empty_dirs,
    remove_stale_temporaries,
    restore_folder_problem,
)
from neural_sorter.reorganize.guard import check_own_state, output_lock
from neural_sorter.reorganize.manifest import (
    Journal,
    applied_journal,
    history_files,
    key_of,
    read_journal,
    read_manifest,
    retire,
    undo_journal,
)


class UndoOutcome(str, Enum):
    """What undo did with one manifest row (``str`` subclass for the same reason as ``ActionKind``)."""

    REVERTED = "reverted"
    NOTHING_TO_DO = "nothing to do"
    # The user changed the placed file (edited it, replaced a symlink): theirs now, left where it is.
    LEFT_IN_PLACE = "left in place"
    # The placed file is no longer where it was put: the user renamed or removed it inside OUT.
    MISSING = "missing"
    # Could not be reverted now; the record is kept and the next undo retries it.
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass
class UndoReport:
    """``failures`` non-empty means the run is NOT undone: its record was kept for a retry."""

    manifest: str
    reverted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # LEFT_IN_PLACE: (path, why)
    missing: list[tuple[str, str]] = field(default_factory=list)  # MISSING: (path in OUT, what it was)
    failures: list[tuple[str, str]] = field(default_factory=list)  # FAILED: (path, why); retried next time
    complete: bool = True  # False when failures kept the record
    # Later runs that changed nothing on disk (every file kept), retired on the way to the run undone.
    passed_over: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def undo_last(out: Path, lock_timeout: float = 60.0) -> UndoReport:
    """Reverts the latest run recorded in ``out``: removes what it placed, restores what it moved.

    Anything whose content no longer matches what the run placed is left alone, with a reason; anything
    that could not be reverted is reported in ``failures`` and the record kept for the next undo.
    """
    check_own_state(out)
    if not history_files(out):
        raise FileNotFoundError(f"no reorganization to undo in {out} (no {STATE_DIR}/history)")
    with output_lock(out, timeout=lock_timeout):
        return _undo_latest(out)


def _undo_latest(out: Path) -> UndoReport:
    files = history_files(out)
    if not files:
        raise FileNotFoundError(f"no reorganization to undo in {out} (no {STATE_DIR}/history)")
    passed_over = []
    # A re-sort that found nothing to change records every file as kept. Undoing it would change nothing
    # either, and a user who types `undo` after it means the sort that did change something: such runs are
    # retired on the way to the latest one that placed, moved or removed files.
    while len(files) > 1 and _changed_nothing(files[-1]):
        retire(files[-1], ".undone")
        passed_over.append(str(files[-1]))
        files = history_files(out)
    latest = files[-1]
    table = read_manifest(latest)
    key = key_of(latest)
    applied = read_journal(applied_journal(latest.parent, key))
    settled_before = read_journal(undo_journal(latest.parent, key))
    settled = settled_before[0] if settled_before else set()
    report = UndoReport(str(latest), passed_over=passed_over)
    journal = Journal(undo_journal(latest.parent, key))
    folder_verdicts: dict[str, str | None] = {}
    try:
        for index in reversed(range(len(table))):
            if index in settled:
                continue
            row = table.iloc[index]
            was_applied = None if applied is None else index in applied[0]
            try:
                outcome, reason = revert(row, was_applied, folder_verdicts, out)
            except OSError as exc:
                outcome, reason = UndoOutcome.FAILED, f"could not revert: {exc}"
            if outcome == UndoOutcome.REVERTED:
                report.reverted += 1
            elif outcome == UndoOutcome.LEFT_IN_PLACE:
                report.skipped.append((row.destination, reason))
            elif outcome == UndoOutcome.MISSING:
                report.missing.append((row.destination, reason))
            elif outcome == UndoOutcome.FAILED:
                report.failures.append((row.source if row.action == ActionKind.MOVE else row.destination, reason))
            if outcome != UndoOutcome.FAILED:
                journal.add(index)
    finally:
        journal.close()
    for source_folder in {os.path.dirname(s) for s, a in zip(table["source"], table["action"]) if a == "move"}:
        remove_stale_temporaries(Path(source_folder), recursive=False)  # a killed cross-device restore
    report.complete = not report.failures
    if report.complete:
        retire(latest, ".undone")
        remaining = history_files(out)
        manifest = state_dir(out) / MANIFEST_NAME
        if remaining:
            shutil.copyfile(remaining[-1], manifest)
        elif manifest.exists():
            manifest.unlink()
    remove_empty_dirs(out, exclude=state_dir(out))
    return report


def _changed_nothing(record: Path) -> bool:
    """True when every row of the run's record is a ``keep``: the run left the disk as it found it."""
    actions = read_manifest(record)["action"]
    return bool((actions == ActionKind.KEEP).all())


def revert(
    row, was_applied: bool | None = None, folder_verdicts: dict | None = None, out: Path | None = None
) -> tuple[UndoOutcome, str]:
    """Reverts one manifest row; the outcome and, unless it was reverted or moot, why.

    ``was_applied``: whether the run's journal lists the row as placed (None for records without one), which
    tells a placement the user removed from one that never happened. ``out``: the output folder; every
    read, delete and rename inside it goes through descriptors of real folders opened from ``out``, so a
    folder there swapped for a symlink (to copies elsewhere, say) fails the row instead of deleting there.
    """
    action = ActionKind(row.action)
    if action == ActionKind.KEEP:
        return UndoOutcome.NOTHING_TO_DO, ""
    destination = Path(row.destination)
    dir_fd = parent_fd(out, destination)
    if dir_fd is None:
        return _revert_in(row, action, None, destination.name, was_applied, folder_verdicts, out)
    with closing_fd(dir_fd):
        return _revert_in(row, action, dir_fd, destination.name, was_applied, folder_verdicts, out)


def _revert_in(row, action, dir_fd, name, was_applied, folder_verdicts, out) -> tuple[UndoOutcome, str]:
    """``revert`` with the destination's folder open (``dir_fd`` None: that folder is gone)."""
    destination, source = row.destination, row.source
    present = dir_fd is not None and exists_at(dir_fd, name)
    if action in (ActionKind.RELOCATE, ActionKind.REMOVE):
        previous = Path(row.previous_destination)
        previous_fd = parent_fd(out, previous, create=present)
        with contextlib.ExitStack() as stack:
            if previous_fd is not None:
                stack.enter_context(closing_fd(previous_fd))
            previous_there = previous_fd is not None and exists_at(previous_fd, previous.name)
            if not present:
                if was_applied and not previous_there:
                    return UndoOutcome.MISSING, f"was moved here from {previous}; renamed or removed since"
                return UndoOutcome.NOTHING_TO_DO, ""  # never happened (run killed first), or already back
            if previous_there:
                if same_entry(previous_fd, previous.name, dir_fd, name):
                    os.unlink(name, dir_fd=dir_fd)  # a killed rename: both names, one file
                    return UndoOutcome.REVERTED, ""
                return UndoOutcome.FAILED, f"{previous} exists; left {destination} in place"
            rename_no_replace_at(dir_fd, name, previous_fd, previous.name)
            return UndoOutcome.REVERTED, ""
    if not present:
        if action == ActionKind.MOVE and not os.path.lexists(source) and was_applied is not False:
            return UndoOutcome.MISSING, f"the moved original {source} is no longer here nor back at its source"
        if was_applied and action in PLACING_ACTIONS and action != ActionKind.MOVE:
            return UndoOutcome.MISSING, f"the {action} of {source} was renamed or removed inside the output folder"
        return UndoOutcome.NOTHING_TO_DO, ""
    if action == ActionKind.SYMLINK:
        info = lstat_at(dir_fd, name)
        if info is not None and stat.S_ISLNK(info.st_mode) and readlink_at(dir_fd, name) == source:
            os.unlink(name, dir_fd=dir_fd)
            return UndoOutcome.REVERTED, ""
        return UndoOutcome.LEFT_IN_PLACE, "no longer the symlink this tool made; left in place"
    if hash_at(dir_fd, name) != row.content_hash:
        return UndoOutcome.LEFT_IN_PLACE, "content changed since it was placed; left in place"
    if action in (ActionKind.COPY, ActionKind.HARDLINK):
        os.unlink(name, dir_fd=dir_fd)
        return UndoOutcome.REVERTED, ""
    # move: the original goes back, but only into the folder it came from
    if os.path.lexists(source):
        if hash_matches(source, row.content_hash):
            os.unlink(name, dir_fd=dir_fd)  # killed between link and unlink: the original is back already
            return UndoOutcome.REVERTED, ""
        return UndoOutcome.FAILED, f"{source} exists with other content; left the moved file at {destination}"
    folder = os.path.dirname(source)
    verdicts = {} if folder_verdicts is None else folder_verdicts
    if folder not in verdicts:
        verdicts[folder] = restore_folder_problem(folder, getattr(row, "source_folder", ""))
    if verdicts[folder] is not None:
        return UndoOutcome.FAILED, f"{verdicts[folder]}; the original stays at {destination}"
    move_out(dir_fd, name, source, row.content_hash)
    return UndoOutcome.REVERTED, ""
