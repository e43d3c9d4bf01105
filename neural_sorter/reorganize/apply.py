"""Carrying a plan out: record it durably first, then place file by file, reporting per-file failures."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from neural_sorter.reorganize.actions import DRY_RUN_NAME, MANIFEST_NAME, PLACING_ACTIONS, Action, ActionKind, state_dir
from neural_sorter.reorganize.dirfd import (
    closing_fd,
    exists_at,
    hash_at,
    lstat_at,
    open_dir,
    readlink_at,
    rename_no_replace_at,
    same_entry,
)
from neural_sorter.reorganize.fs import (
    UnsafePathError,
    ensure_real_dirs,
    folder_identity,
    fsync_dir,
    hash_matches,
    move_in,
    parent_fd,
    place_copy,
    remove_empty_dirs,
    remove_stale_temporaries,
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


def _already_done(action: Action, dir_fd: int, name: str) -> bool:
    """A placement that a killed earlier attempt of this same plan already made."""
    info = lstat_at(dir_fd, name)
    if info is None:
        return False
    if action.action == ActionKind.SYMLINK:
        return stat.S_ISLNK(info.st_mode) and readlink_at(dir_fd, name) == action.source
    return hash_at(dir_fd, name) == action.content_hash


def apply_action(action: Action, out: Path | None = None) -> None:
    """Carries out one action; idempotent, so a re-run completes a half-done plan.

    With ``out``, every folder between ``out`` and the destination must be a real folder (never a symlink),
    and every write and delete inside OUT goes through a descriptor of its folder (``dirfd``): a folder
    swapped for a symlink after the check is not followed, and the file fails with a reason instead.
    """
    destination = Path(action.destination)
    if action.action == ActionKind.KEEP:
        return
    folder = destination.parent
    root = out if out is not None and folder.is_relative_to(out) else folder
    with closing_fd(ensure_real_dirs(root, folder)) as dir_fd:
        try:
            _apply_in(action, dir_fd, destination.name, out)
        except UnsafePathError:
            raise
        except OSError as exc:
            _raise_if_swapped(root, folder, dir_fd, exc)
            raise


def _raise_if_swapped(root: Path, folder: Path, dir_fd: int, exc: OSError) -> None:
    """Names the reason when a write failed because its folder was swapped (for a symlink) under it."""
    held = os.fstat(dir_fd)
    try:
        with closing_fd(open_dir(root, folder)) as now:
            info = os.fstat(now)
            if (info.st_dev, info.st_ino) == (held.st_dev, held.st_ino):
                return
    except UnsafePathError as swapped:
        raise UnsafePathError(f"{swapped} (it was swapped in while placing; nothing written through it)") from exc
    except OSError:
        pass
    raise UnsafePathError(f"{folder} was replaced while placing ({exc}); nothing written outside it") from exc


def _apply_in(action: Action, dir_fd: int, name: str, out: Path | None) -> None:
    """``apply_action`` within the open destination folder."""
    kind = action.action
    if kind in PLACING_ACTIONS and _already_done(action, dir_fd, name):
        if (
            kind == ActionKind.MOVE
            and os.path.lexists(action.source)
            and hash_matches(action.source, action.content_hash)
        ):
            os.unlink(action.source)  # killed between link and unlink of a move
        return
    if kind == ActionKind.COPY:
        if not hash_matches(action.source, action.content_hash):
            raise OSError("source changed since it was inventoried; not copied (re-run to pick it up)")
        place_copy(action.source, dir_fd, name)
    elif kind == ActionKind.HARDLINK:
        os.link(action.source, name, dst_dir_fd=dir_fd)
    elif kind == ActionKind.SYMLINK:
        os.symlink(action.source, name, dir_fd=dir_fd)
    elif kind == ActionKind.MOVE:
        if not hash_matches(action.source, action.content_hash):
            raise OSError("source changed since it was inventoried; not moved (re-run to pick it up)")
        move_in(action.source, dir_fd, name, action.content_hash)
    elif kind in (ActionKind.RELOCATE, ActionKind.REMOVE):
        origin = Path(action.previous_destination)
        origin_fd = parent_fd(out, origin)
        if origin_fd is None or not exists_at(origin_fd, origin.name):
            if origin_fd is not None:
                os.close(origin_fd)
            if exists_at(dir_fd, name):
                return  # done by a killed earlier attempt
            raise FileNotFoundError(f"{origin} is gone")
        with closing_fd(origin_fd):
            if same_entry(origin_fd, origin.name, dir_fd, name):
                os.unlink(origin.name, dir_fd=origin_fd)  # killed between link and unlink of the rename
                return
            if exists_at(dir_fd, name):
                raise FileExistsError(errno.EEXIST, "destination exists", action.destination)
            rename_no_replace_at(origin_fd, origin.name, dir_fd, name)
    else:  # pragma: no cover - ActionKind is closed
        raise ValueError(f"unknown action {kind!r}")


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
        remove_stale_temporaries(tree, root=out)
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
                    remove_stale_temporaries(tree, root=out)
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
        os.close(ensure_real_dirs(out, state_dir(out) / HISTORY_DIR, mode=0o700))
    except UnsafePathError as exc:
        raise UnsafePathError(f"{exc}; refusing to sort into {out}") from None


def _count(actions: list[Action]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for action in actions:
        counts[str(action.action)] = counts.get(str(action.action), 0) + 1
    return counts
