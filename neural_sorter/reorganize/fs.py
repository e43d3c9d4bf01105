"""Filesystem primitives: every way this package puts a file somewhere, none of which ever replaces one.

Kept in one place because the safety rules live here: names are published with ``os.link`` (which fails
when the name exists) or an explicit existence check, copies are fsynced before they get a name, and a
move only removes its source once the destination verifiably holds the same bytes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from pathlib import Path

from neural_sorter.inventory import content_hash

TEMP_PREFIX = ".ns-tmp-"


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


def copy_to_temp(source: str, folder: Path) -> Path:
    """A durable copy of ``source`` under a temporary name in ``folder``, ready to be published."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{TEMP_PREFIX}{secrets.token_hex(6)}"
    try:
        with open(source, "rb") as src, open(tmp, "xb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        shutil.copystat(source, tmp)
    except BaseException:
        # A full disk or an interrupt mid-copy must not leave a half-written temporary behind.
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp


def publish(tmp: Path, destination: Path) -> None:
    """Gives ``tmp`` its final name without ever replacing an existing file."""
    try:
        os.link(tmp, destination)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        # Filesystems without hard links (FAT, some network shares): check-then-rename.
        if os.path.lexists(destination):
            raise FileExistsError(errno.EEXIST, "destination exists", str(destination)) from None
        os.rename(tmp, destination)
        return
    os.unlink(tmp)


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


def move_file(source: str, destination: Path, expected_hash: str) -> None:
    """Moves without overwriting; across devices the copy's hash is verified before the source goes."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        tmp = copy_to_temp(source, destination.parent)
        try:
            if content_hash(tmp) != expected_hash:
                raise OSError(f"copy of {source} does not match its hash; source left in place")
            publish(tmp, destination)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    os.unlink(source)


def rename_no_replace(origin: str, destination: Path) -> None:
    """Renames within OUT (relocations, the trash) without replacing what is at ``destination``."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if os.path.islink(origin):
        target = os.readlink(origin)
        os.symlink(target, destination)
        os.unlink(origin)
        return
    try:
        os.link(origin, destination)
        os.unlink(origin)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        if os.path.lexists(destination):
            raise FileExistsError(errno.EEXIST, "destination exists", str(destination)) from None
        os.rename(origin, destination)


def remove_stale_temporaries(tree: Path, recursive: bool = True) -> None:
    """Half-written copies left by a killed run: they never got a real name, so nothing refers to them.

    Looks only in real folders (``os.walk`` never follows a symlink, and a symlinked ``tree`` is skipped),
    so a link planted in OUT cannot steer the clean-up into someone else's folder.
    """
    if os.path.islink(tree) or not os.path.isdir(tree):
        return
    for dirpath, _dirnames, filenames in os.walk(tree):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if name.startswith(TEMP_PREFIX) and stat.S_ISREG(os.lstat(path).st_mode):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        if not recursive:
            break


class UnsafePathError(OSError):
    """A folder this tool would write into is a symlink or not a folder; nothing is written through it."""


def ensure_real_dirs(root: Path, folder: Path, mode: int = 0o777) -> None:
    """Creates ``folder`` below ``root`` component by component, refusing any that is a symlink.

    A symlinked partition, cluster or state folder (planted before or during a run) would otherwise
    send copies, moves or the trash to wherever it points.
    """
    relative = folder.relative_to(root)
    root.mkdir(parents=True, exist_ok=True)  # OUT itself is the user's choice, symlink or not
    current = root
    for part in relative.parts:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(current, mode)  # ``mode`` is further limited by the umask
            info = os.lstat(current)
        if stat.S_ISLNK(info.st_mode):
            raise UnsafePathError(f"{current} is a symlink; refusing to write through it")
        if not stat.S_ISDIR(info.st_mode):
            raise UnsafePathError(f"{current} is not a folder")


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
    """Cluster folders emptied by relocations or removals; only empty ones, never the state folder."""
    for dirpath, _dirnames, _files in os.walk(out, topdown=False):
        path = Path(dirpath)
        if path == out or path.is_relative_to(exclude):
            continue
        with contextlib.suppress(OSError):  # not empty: fine
            path.rmdir()
