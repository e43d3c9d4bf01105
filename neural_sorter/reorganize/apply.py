"""Carrying a plan out: record it durably first, then place file by file, reporting per-file failures."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from neural_sorter.reorganize.actions import DRY_RUN_NAME, MANIFEST_NAME, PLACING_ACTIONS, Action, ActionKind, state_dir
from neural_sorter.reorganize.fs import (
    copy_to_temp,
    fsync_dir,
    hash_matches,
    move_file,
    publish,
    remove_empty_dirs,
    remove_stale_temporaries,
    rename_no_replace,
)
from neural_sorter.reorganize.manifest import HISTORY_DIR, write_history, write_manifest


@dataclass
class ReorganizeReport:
    run_id: str
    manifest: str
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)


def _already_done(action: Action) -> bool:
    """A placement that a killed earlier attempt of this same plan already made."""
    if not os.path.lexists(action.destination):
        return False
    if action.action == ActionKind.SYMLINK:
        return os.path.islink(action.destination) and os.readlink(action.destination) == action.source
    return hash_matches(action.destination, action.content_hash)


def apply_action(action: Action) -> None:
    destination = Path(action.destination)
    kind = action.action
    if kind == ActionKind.KEEP:
        return
    if kind in PLACING_ACTIONS and _already_done(action):
        if (
            kind == ActionKind.MOVE
            and os.path.lexists(action.source)
            and hash_matches(action.source, action.content_hash)
        ):
            os.unlink(action.source)  # killed between link and unlink of a move
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    if kind == ActionKind.COPY:
        if not hash_matches(action.source, action.content_hash):
            raise OSError("source changed since it was inventoried; not copied (re-run to pick it up)")
        tmp = copy_to_temp(action.source, destination.parent)
        try:
            publish(tmp, destination)
        finally:
            if tmp.exists():
                tmp.unlink()
    elif kind == ActionKind.HARDLINK:
        os.link(action.source, destination)
    elif kind == ActionKind.SYMLINK:
        os.symlink(action.source, destination)
    elif kind == ActionKind.MOVE:
        if not hash_matches(action.source, action.content_hash):
            raise OSError("source changed since it was inventoried; not moved (re-run to pick it up)")
        move_file(action.source, destination, action.content_hash)
    elif kind in (ActionKind.RELOCATE, ActionKind.REMOVE):
        origin = action.previous_destination
        if not os.path.lexists(origin):
            if os.path.lexists(destination):
                return  # done by a killed earlier attempt
            raise FileNotFoundError(f"{origin} is gone")
        if os.path.lexists(destination):
            raise FileExistsError(errno.EEXIST, "destination exists", str(destination))
        rename_no_replace(origin, destination)
    else:  # pragma: no cover - ActionKind is closed
        raise ValueError(f"unknown action {kind!r}")


def execute_plan(out: Path, actions: list[Action], run_id: str, dry_run: bool = False) -> ReorganizeReport:
    """Records the plan durably, then carries it out; per-file failures are reported, never fatal."""
    folder = state_dir(out)
    if dry_run:
        manifest = folder / DRY_RUN_NAME
        write_manifest(manifest, actions)
        return ReorganizeReport(run_id, str(manifest), _count(actions))
    partition = actions[0].partition if actions else "empty"
    remove_stale_temporaries(out / partition)
    write_history(folder / HISTORY_DIR, run_id, partition, actions)
    write_manifest(folder / MANIFEST_NAME, actions)
    report = ReorganizeReport(run_id, str(folder / MANIFEST_NAME), _count(actions))
    touched: set[Path] = set()
    for action in tqdm(actions, desc="reorganize", unit="file", disable=None, leave=False):
        try:
            apply_action(action)
            touched.add(Path(action.destination).parent)
        except OSError as exc:
            report.failures.append((action.source, f"{action.action} failed: {exc}"))
    for parent in touched:
        fsync_dir(parent)
    remove_empty_dirs(out, exclude=folder)
    return report


def _count(actions: list[Action]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for action in actions:
        counts[str(action.action)] = counts.get(str(action.action), 0) + 1
    return counts
