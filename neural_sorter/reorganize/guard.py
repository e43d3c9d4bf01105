"""Guarding OUT: refusing output folders that would mix with the inputs, and one writer at a time."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from neural_sorter.reorganize.actions import LOCK_NAME, state_dir


class OutputDirError(ValueError):
    """The output folder is unsafe to write to; the message says why."""


class OutputBusyError(RuntimeError):
    """Another neural-sorter run holds the output folder's lock for longer than we were willing to wait."""


@contextlib.contextmanager
def output_lock(out: Path, timeout: float = 3600.0, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Serialises planning + placing (and undo) per output folder across processes.

    Runs for different sources may share one OUT (the sensor can start several at once); each plans from
    the placements the previous one recorded, so they must not interleave. Waits up to ``timeout``
    seconds, telling ``on_wait`` once that it is waiting.
    """
    folder = state_dir(out)
    if os.path.islink(folder):
        raise OutputDirError(f"{folder} is a symlink; refusing to keep the lock and records through it")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _check_writable(folder)
    lock = FileLock(str(folder / LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            on_wait(f"another neural-sorter run is writing to {out}; waiting up to {timeout:.0f} s for it")
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise OutputBusyError(
                f"another neural-sorter run kept {out} locked for over {timeout:.0f} s ({folder / LOCK_NAME}); "
                "try again when it has finished"
            ) from None
    try:
        yield
    finally:
        lock.release()


def check_own_state(out: Path) -> None:
    """Refuses a state folder that is a symlink or another user's, before anything reads or waits on it."""
    folder = state_dir(out)
    if os.path.islink(folder):
        raise OutputDirError(f"{folder} is a symlink; refusing to keep the lock and records through it")
    if os.path.isdir(folder):
        _check_writable(folder)


def _check_writable(folder: Path) -> None:
    """A state folder (or lock file) this user cannot write belongs to someone else's runs.

    Said at once: waiting on a lock we could never take would look like a hang, and nothing of another
    user's runs is ours to undo.
    """
    lock = folder / LOCK_NAME
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.lexists(lock) and not os.access(lock, os.W_OK)):
        owner = os.stat(folder).st_uid
        raise OutputDirError(
            f"{folder} belongs to another user (uid {owner}) and is not writable by you; "
            "sort into your own output folder, or run as that user"
        )


def check_output_dir(out: Path, sources: Iterable[Path], force: bool = False) -> None:
    """Refuses output folders that would mix with or swallow the inputs."""
    out_real = Path(os.path.realpath(out))
    for source in sources:
        src_real = Path(os.path.realpath(source))
        if out_real == src_real:
            raise OutputDirError(f"the output folder {out} is the source folder itself; choose another")
        if src_real.is_relative_to(out_real):
            raise OutputDirError(f"source {source} lies inside the output folder {out}; choose another output")
    if out_real.is_file():
        raise OutputDirError(f"output {out} is a file, not a folder")
    if os.path.islink(state_dir(out_real)):
        raise OutputDirError(
            f"{state_dir(out)} is a symlink; neural-sorter keeps its records and trash only in a real folder"
        )
    if out_real.is_dir() and not state_dir(out_real).is_dir():
        visible = [p for p in out_real.iterdir() if not p.name.startswith(".")]
        if visible and not force:
            raise OutputDirError(
                f"output folder {out} is not empty and was not made by neural-sorter; "
                "pass --force to sort into it anyway"
            )
