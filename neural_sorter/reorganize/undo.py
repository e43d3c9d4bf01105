"""Undo: reverting the latest recorded run, file by file, without ever destroying what the user changed."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from neural_sorter.reorganize.actions import MANIFEST_NAME, STATE_DIR, ActionKind, state_dir
from neural_sorter.reorganize.fs import hash_matches, move_file, remove_empty_dirs, rename_no_replace
from neural_sorter.reorganize.guard import output_lock
from neural_sorter.reorganize.manifest import history_files, read_manifest


class UndoOutcome(str, Enum):
    """What undo did with one manifest row (``str`` subclass for the same reason as ``ActionKind``)."""

    REVERTED = "reverted"
    NOTHING_TO_DO = "nothing to do"
    LEFT_IN_PLACE = "left in place"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass
class UndoReport:
    manifest: str
    reverted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def undo_last(out: Path, lock_timeout: float = 60.0) -> UndoReport:
    """Reverts the latest run recorded in ``out``: removes what it placed, restores what it moved.

    Anything whose content no longer matches what the run placed is left alone, with a reason.
    """
    if not history_files(out):
        raise FileNotFoundError(f"no reorganization to undo in {out} (no {STATE_DIR}/history)")
    with output_lock(out, timeout=lock_timeout):
        return _undo_latest(out)


def _undo_latest(out: Path) -> UndoReport:
    files = history_files(out)
    if not files:
        raise FileNotFoundError(f"no reorganization to undo in {out} (no {STATE_DIR}/history)")
    latest = files[-1]
    table = read_manifest(latest)
    report = UndoReport(str(latest))
    for row in reversed(list(table.itertuples(index=False))):
        try:
            outcome, reason = revert(row)
        except OSError as exc:
            outcome, reason = UndoOutcome.LEFT_IN_PLACE, f"could not revert: {exc}"
        if outcome == UndoOutcome.REVERTED:
            report.reverted += 1
        elif outcome == UndoOutcome.LEFT_IN_PLACE:
            report.skipped.append((row.destination, reason))
    undone = latest.with_name(latest.name.replace(".csv", ".undone"))
    os.replace(latest, undone)
    remaining = history_files(out)
    manifest = state_dir(out) / MANIFEST_NAME
    if remaining:
        shutil.copyfile(remaining[-1], manifest)
    elif manifest.exists():
        manifest.unlink()
    remove_empty_dirs(out, exclude=state_dir(out))
    return report


def revert(row) -> tuple[UndoOutcome, str]:
    """Reverts one manifest row; the outcome and, unless it was reverted or moot, why it was left alone."""
    action, destination, source = ActionKind(row.action), row.destination, row.source
    if action == ActionKind.KEEP:
        return UndoOutcome.NOTHING_TO_DO, ""
    if action in (ActionKind.RELOCATE, ActionKind.REMOVE):
        if not os.path.lexists(destination):
            return UndoOutcome.NOTHING_TO_DO, ""  # never happened (run killed first)
        if os.path.lexists(row.previous_destination):
            return UndoOutcome.LEFT_IN_PLACE, f"{row.previous_destination} exists; left {destination} in place"
        rename_no_replace(destination, Path(row.previous_destination))
        return UndoOutcome.REVERTED, ""
    if not os.path.lexists(destination):
        return UndoOutcome.NOTHING_TO_DO, ""
    if action == ActionKind.SYMLINK:
        if os.path.islink(destination) and os.readlink(destination) == source:
            os.unlink(destination)
            return UndoOutcome.REVERTED, ""
        return UndoOutcome.LEFT_IN_PLACE, "no longer the symlink this tool made; left in place"
    if not hash_matches(destination, row.content_hash):
        return UndoOutcome.LEFT_IN_PLACE, "content changed since it was placed; left in place"
    if action in (ActionKind.COPY, ActionKind.HARDLINK):
        os.unlink(destination)
        return UndoOutcome.REVERTED, ""
    # move
    if os.path.lexists(source):
        if hash_matches(source, row.content_hash):
            os.unlink(destination)  # killed between link and unlink: the original is back already
            return UndoOutcome.REVERTED, ""
        return UndoOutcome.LEFT_IN_PLACE, f"{source} exists with other content; left the moved file at {destination}"
    move_file(destination, Path(source), row.content_hash)
    return UndoOutcome.REVERTED, ""
