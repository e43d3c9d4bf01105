"""Filesystem primitives: every way this package puts a file somewhere, none of which ever replaces one.

Kept in one place because the safety rules live here: names are published with ``os.link`` (which fails
when the name exists) or an explicit existence check, copies are fsynced before they get a name, and a
move only removes its source once the destination verifiably holds the same bytes. Inside OUT every
write and delete goes through a descriptor of the folder it happens in, opened without following
symlinks (``dirfd``), so a folder swapped for a symlink mid-run is never written through.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from neural_sorter.inventory import content_hash
from neural_sorter.reorganize.dirfd import (
    DIR_FLAGS,
    TEMP_PREFIX,
    UnsafePathError,
    closing_fd,
    copy_fd_to_temp,
    hash_at,
    open_dir,
    open_regular,
    publish_at,
    remove_empty_below,
    remove_temporaries_in,
)

__all__ = ["TEMP_PREFIX", "UnsafePathError"]


def fsync_dir(folder: Path) -> None:
    """Makes renames and links inside ``folder`` durable; best effort (some filesystems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def copy_to_temp(source: str, dir_fd: int) -> str:
    """A durable copy of the user's file ``source`` under a temporary name in the folder ``dir_fd``.

    The source is opened non-blocking and must be a regular file (a FIFO swapped in would hang the copy).
    """
    src_fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with closing_fd(src_fd):
        if not stat.S_ISREG(os.fstat(src_fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", source)
        return copy_fd_to_temp(src_fd, dir_fd)


def place_copy(source: str, dir_fd: int, name: str, expected_hash: str | None = None) -> None:
    """Copies ``source`` to ``name`` in the folder: temporary, fsync, (hash check), link; never replaces."""
    tmp = copy_to_temp(source, dir_fd)
    try:
        if expected_hash is not None and hash_at(dir_fd, tmp) != expected_hash:
            raise OSError(f"copy of {source} does not match its hash; source left in place")
        publish_at(dir_fd, tmp, name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)


def hash_matches(path: str, expected: str) -> bool:
    try:
        return content_hash(path) == expected
    except OSError:
        return False


def current_hash(path: str) -> str | None:
    """The content hash of the regular file at ``path`` (never followed through a symlink), or None when
    it is not a readable regular file."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        return content_hash(path)
    except OSError:
        return None


def move_in(source: str, dir_fd: int, name: str, expected_hash: str) -> None:
    """Moves the user's file ``source`` to ``name`` in the folder without overwriting; across devices the
    copy's hash is verified before the source goes."""
    try:
        os.link(source, name, dst_dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        place_copy(source, dir_fd, name, expected_hash)
    os.unlink(source)


def move_out(dir_fd: int, name: str, destination: str, expected_hash: str) -> None:
    """Moves ``name`` (in the OUT folder ``dir_fd``) back to ``destination`` outside OUT, never replacing.

    The destination folder is created if missing and then opened without following a symlink, so a folder
    swapped after it was checked is never written through; across devices the copy is verified first.
    """
    folder, base = os.path.split(destination)
    os.makedirs(folder, exist_ok=True)
    try:
        out_fd = os.open(folder, DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePathError(f"{folder} is a symlink or not a folder; not restoring through it") from None
        raise
    with closing_fd(out_fd):
        try:
            os.link(name, base, src_dir_fd=dir_fd, dst_dir_fd=out_fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                raise
            with closing_fd(open_regular(dir_fd, name)) as src_fd:
                tmp = copy_fd_to_temp(src_fd, out_fd)
            try:
                if hash_at(out_fd, tmp) != expected_hash:
                    raise OSError(f"copy of {name} does not match its hash; left in place") from None
                publish_at(out_fd, tmp, base)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=out_fd)
        os.fsync(out_fd)
    os.unlink(name, dir_fd=dir_fd)


def ensure_real_dirs(root: Path, folder: Path, mode: int = 0o777) -> int:
    """Creates ``folder`` below ``root`` component by component, refusing any that is a symlink, and
    returns a descriptor of it (the caller's to close) through which to write.

    A symlinked partition, cluster or state folder (planted before or during a run) would otherwise
    send copies, moves or the trash to wherever it points; writing through the descriptor rather than
    the path means one swapped after this check is not followed either.
    """
    return open_dir(root, folder, create=True, mode=mode)


def parent_fd(out: Path | None, path: Path, create: bool = False, mode: int = 0o777) -> int | None:
    """A descriptor of ``path``'s folder, opened from ``out`` without following symlinks below it (from the
    folder itself when ``path`` is not in ``out``); None when the folder does not exist and ``create`` is off.
    """
    folder = path.parent
    root = out if out is not None and folder.is_relative_to(out) else folder
    if create:
        return ensure_real_dirs(root, folder, mode)
    try:
        return open_dir(root, folder)
    except FileNotFoundError:
        return None


def remove_stale_temporaries(tree: Path, recursive: bool = True, root: Path | None = None) -> None:
    """Half-written copies left by a killed run: they never got a real name, so nothing refers to them.

    Looks only in real folders: ``tree`` is opened without following a symlink (nor is any folder between
    ``root`` and it), and the walk below goes through descriptors and never enters a symlinked folder, so
    a link planted in OUT, before or during the clean-up, cannot steer it into someone else's folder.
    """
    try:
        fd = open_dir(root if root is not None and tree.parent.is_relative_to(root) else tree.parent, tree)
    except OSError:
        return  # missing, a symlink, or not a folder: nothing of ours to clean there
    with closing_fd(fd):
        remove_temporaries_in(fd, recursive)


def folder_identity(folder: str) -> str:
    """``device:inode:uid:mode`` of a folder, recorded so undo can tell it is still the same folder."""
    try:
        info = os.lstat(folder)
    except OSError:
        return ""
    return f"{info.st_dev}:{info.st_ino}:{info.st_uid}:{stat.S_IMODE(info.st_mode):o}"


def restore_folder_problem(folder: str, recorded: str) -> str | None:
    """Why originals must not be moved back into ``folder``, or None when it is safe.

    Safe: the very folder they came from, or (after it was deleted) one re-created by the same owner, and
    in either case no more writable by group or others than it was. Device and inode are recorded for the
    report and for forensics, but the owner is what decides. A missing folder is re-created by the
    restore itself, as the user running undo. Records without an identity (older versions) are trusted.
    """
    if not recorded:
        return None
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return f"{folder} is now a symlink; not restoring originals through it"
    if not stat.S_ISDIR(info.st_mode):
        return f"{folder} is no longer a folder"
    _dev, _ino, uid, mode = recorded.split(":")
    # Device and inode alone cannot tell: a folder deleted and re-created often gets the same inode number
    # back. Another owner can: only the owner or root may hand a folder on, and neither did it for us.
    if info.st_uid != int(uid):
        return (
            f"{folder} was deleted and re-created by another user (uid {info.st_uid}, was {uid}); "
            "not restoring originals into it"
        )
    opened = stat.S_IMODE(info.st_mode) & 0o022 & ~int(mode, 8)
    if opened:
        who = " and ".join(w for bit, w in ((0o020, "its group"), (0o002, "others")) if opened & bit)
        return f"{folder} is now writable by {who} (it was not when the files were moved out); not restoring into it"
    return None


def remove_empty_dirs(out: Path, exclude: Path) -> None:
    """Cluster folders emptied by relocations or removals; only empty real ones, never the state folder.

    Walks through descriptors (never into a symlink), so a folder swapped for a link to somewhere else
    cannot make this remove an empty folder outside OUT.
    """
    try:
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    skip = frozenset({exclude.name}) if exclude.parent == out else frozenset()
    with closing_fd(fd):
        remove_empty_below(fd, skip)
