"""Carrying a plan out: record it durably first, then place file by file, reporting per-file failures."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from neural_sorter.reorganize.actions import DRY_RUN_NAME, MANIFEST_NAME, PLACING_ACTIONS, Action, ActionKind, state_dir
from neural_sorter.reorganize.fs import (
    UnsafePathError,
    copy_to_temp,
    ensure_real_dirs,
    folder_identity,
    fsync_dir,
    hash_matches,
    move_file,
    publish,
    remove_empty_dirs,
    remove_stale_temporaries,
    rename_no_replace,
)
from neural_sorter.reorganize.manifest import (
    HISTORY_DIR,
    Journal,
    applied_journal,
    record_key,
    retire,
    write_history,
    write_manifest,
)


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


def apply_action(action: Action, out: Path | None = None) -> None:
    """Carries out one action; idempotent, so a re-run completes a half-done plan.

    With ``out``, every folder between ``out`` and the destination must be a real folder (never a symlink).
    """
    destination = Path(action.destination)
    kind = action.action
    if kind == ActionKind.KEEP:
        return
    if out is not None and destination.is_relative_to(out):
        ensure_real_dirs(out, destination.parent)
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
        if _same_file(origin, destination):
            os.unlink(origin)  # killed between link and unlink of the rename
            return
        if os.path.lexists(destination):
            raise FileExistsError(errno.EEXIST, "destination exists", str(destination))
        rename_no_replace(origin, destination)
    else:  # pragma: no cover - ActionKind is closed
        raise ValueError(f"unknown action {kind!r}")


def _same_file(a: str, b: Path) -> bool:
    try:
        return os.path.samefile(a, b) and not os.path.islink(a)
    except OSError:
        return False


@contextlib.contextmanager
def _sigint_between_placements() -> Iterator[list]:
    """Holds a SIGINT that lands mid-placement until that placement is done.

    Yields a list that gets the pending signal's frame; the loop checks it between placements and then
    hands the interrupt on to whatever handler was installed before (normally raising KeyboardInterrupt).
    Only the main thread can install handlers; elsewhere the list stays empty and a KeyboardInterrupt
    raised inside a placement is handled by the loop's own clean-up.
    """
    pending: list = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return
    try:
        previous = signal.signal(signal.SIGINT, lambda _signum, frame: pending.append(frame))
    except ValueError:  # not the main interpreter
        yield pending
        return
    try:
        yield pending
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        _hand_on(previous, pending[0])


def _hand_on(previous, frame) -> None:
    """Delivers a held SIGINT the way the previous handler would have; stops the run unless it was ignored."""
    if previous == signal.SIG_IGN:
        return
    if callable(previous):
        previous(signal.SIGINT, frame)  # normally raises KeyboardInterrupt
    raise KeyboardInterrupt


def execute_plan(out: Path, actions: list[Action], run_id: str, dry_run: bool = False) -> ReorganizeReport:
    """Records the plan durably, then carries it out; per-file failures are reported, never fatal.

    Each placed row is journaled (``manifest.Journal``); ``complete`` is written only when the loop ran to
    the end. A SIGINT stops the loop between two placements (see ``_sigint_between_placements``) and a
    KeyboardInterrupt raised inside one is let through after the clean-up: either way the record stays
    unfinished, so the next run adopts it and one ``undo`` reverts both.
    """
    folder = state_dir(out)
    _check_state_dir(out)
    if dry_run:
        manifest = folder / DRY_RUN_NAME
        write_manifest(manifest, actions)
        return ReorganizeReport(run_id, str(manifest), _count(actions))
    partition = actions[0].partition if actions else "empty"
    trees = _trees(out, actions)
    for tree in trees:
        remove_stale_temporaries(tree)
    moved_from = {os.path.dirname(a.source) for a in actions if a.action == ActionKind.MOVE}
    identities = {source_folder: folder_identity(source_folder) for source_folder in moved_from}
    history = folder / HISTORY_DIR
    journal = Journal(applied_journal(history, record_key(run_id, partition)))
    complete = False
    try:
        write_history(history, run_id, partition, actions, identities)
        adopted = getattr(actions, "adopts", None)
        if adopted is not None and Path(adopted).exists():
            retire(Path(adopted), ".adopted")  # the new record now carries everything it did
        write_manifest(folder / MANIFEST_NAME, actions, identities)
        report = ReorganizeReport(run_id, str(folder / MANIFEST_NAME), _count(actions))
        touched: set[Path] = set()
        try:
            with _sigint_between_placements() as interrupted:
                for row, action in enumerate(tqdm(actions, desc="reorganize", unit="file", disable=None, leave=False)):
                    if interrupted:
                        break
                    try:
                        apply_action(action, out)
                        touched.add(Path(action.destination).parent)
                        journal.add(row)
                    except OSError as exc:
                        report.failures.append((action.source, f"{action.action} failed: {exc}"))
                else:
                    complete = not interrupted
        finally:
            for parent in touched:
                fsync_dir(parent)
            if not complete:
                for tree in trees:
                    remove_stale_temporaries(tree)
    finally:
        journal.close(complete=complete)
    remove_empty_dirs(out, exclude=folder)
    return report


def _trees(out: Path, actions: list[Action]) -> set[Path]:
    """The folders of ``out`` this run writes into (the source's ``OUT/<name>``, and ``OUT/<partition>`` while
    a tree of the older layout is relocated): where a killed run's half-written copies can be."""
    tops = {Path(os.path.relpath(a.destination, out)).parts[0] for a in actions if a.destination}
    return {out / top for top in tops if top not in ("..", ".", state_dir(out).name)}


def _check_state_dir(out: Path) -> None:
    """The records and the trash live in ``OUT/.neural-sorter``; a symlink there would put them elsewhere."""
    try:
        # Owner-only: the records list every file name of the sources, and the trash holds retired copies.
        ensure_real_dirs(out, state_dir(out) / HISTORY_DIR, mode=0o700)
    except UnsafePathError as exc:
        raise UnsafePathError(f"{exc}; refusing to sort into {out}") from None


def _count(actions: list[Action]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for action in actions:
        counts[str(action.action)] = counts.get(str(action.action), 0) + 1
    return counts
