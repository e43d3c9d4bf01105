"""Acting inside OUT through folder descriptors, so a folder swapped for a symlink is never followed.

Why: checking a path with ``lstat`` and then writing by path leaves a window in which a folder inside OUT
can be replaced by a symlink to somewhere else, and the write (or delete) lands there. Here every folder
below OUT is opened one component at a time from OUT's own descriptor with ``O_NOFOLLOW | O_DIRECTORY``,
and the final name is acted on with the ``*at`` system calls (``dir_fd=``). A component that is a symlink
when it is opened makes the open fail (``UnsafePathError``, a per-file reason); one swapped *after* it was
opened is harmless, because the descriptor still names the real folder (inside OUT, or deleted, in which
case the write fails with ENOENT).

OUT itself is the user's choice and may be a symlink; only what lies below it is held to this rule.

Chosen over libpathrs (PyPI ``pathrs``, which resolves paths safely with ``openat2``): it is published as
a source package that needs the Rust library built and installed on the machine, and the standard
library's ``dir_fd`` support covers every operation this package needs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from neural_sorter.inventory import content_hash

TEMP_PREFIX = ".ns-tmp-"
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_COPY_CHUNK = 1 << 20


class UnsafePathError(OSError):
    """A folder this tool would write into is a symlink or not a folder; nothing is written through it."""


def _refusal(parent_fd: int, name: str, path: Path) -> UnsafePathError:
    """Why ``name`` could not be opened as a folder: says "symlink" when it is one (the usual attack)."""
    try:
        is_link = stat.S_ISLNK(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode)
    except OSError:
        is_link = False
    if is_link:
        return UnsafePathError(f"{path} is a symlink; refusing to write through it")
    return UnsafePathError(f"{path} is not a folder")


def open_child_dir(parent_fd: int, name: str, path: Path, create: bool = False, mode: int = 0o777) -> int:
    """Opens folder ``name`` inside ``parent_fd`` without following a symlink; creates it when asked."""
    if name in ("", ".", "..") or "/" in name:
        raise UnsafePathError(f"{path}: {name!r} is not a plain folder name")
    for attempt in range(2):
        try:
            return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create or attempt:
                raise
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, mode, dir_fd=parent_fd)  # ``mode`` is further limited by the umask
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                raise _refusal(parent_fd, name, path) from None
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def open_dir(root: Path, folder: Path, create: bool = False, mode: int = 0o777) -> int:
    """A descriptor of ``folder`` (``root`` or below it), the caller's to close.

    ``root`` is opened as given (following symlinks: it is the user's choice); every component below it is
    opened with ``O_NOFOLLOW``. With ``create``, missing folders are made (``root`` with its parents).
    """
    relative = folder.relative_to(root)
    if create:
        root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    current = root
    try:
        for part in relative.parts:
            current = current / part
            child = open_child_dir(fd, part, current, create, mode)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def closing_fd(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    """``lstat`` of ``name`` in the folder, None when nothing is there."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def exists_at(dir_fd: int, name: str) -> bool:
    return lstat_at(dir_fd, name) is not None


def open_regular(dir_fd: int, name: str) -> int:
    """A read descriptor of the regular file ``name`` (never a symlink, never blocking on a FIFO)."""
    fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
    except BaseException:
        os.close(fd)
        raise
    return fd


def hash_fd(fd: int) -> str:
    """``inventory.content_hash`` of an open file, from its start (one definition of the hash)."""
    os.lseek(fd, 0, os.SEEK_SET)
    return content_hash(os.dup(fd))  # ``open`` takes a descriptor and closes the duplicate


def hash_at(dir_fd: int, name: str) -> str | None:
    """The content hash of the regular file ``name``, or None when it is not a readable regular file."""
    try:
        fd = open_regular(dir_fd, name)
    except OSError:
        return None
    try:
        return hash_fd(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def readlink_at(dir_fd: int, name: str) -> str | None:
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return None


def copy_fd_to_temp(src_fd: int, dir_fd: int) -> str:
    """A durable copy of the open file ``src_fd`` under a fresh temporary name in the folder; the name.

    Created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (never an existing file or a planted link), written,
    given the source's mode, times and extended attributes (what ``shutil.copystat`` did), and fsynced.
    On any failure (a full disk, an interrupt) the half-written temporary is removed.
    """
    name = f"{TEMP_PREFIX}{secrets.token_hex(6)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    out_fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
    try:
        try:
            os.lseek(src_fd, 0, os.SEEK_SET)
            while chunk := os.read(src_fd, _COPY_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out_fd, view) :]
            info = os.fstat(src_fd)
            _copy_xattrs(src_fd, out_fd)
            os.fchmod(out_fd, stat.S_IMODE(info.st_mode))
            os.utime(out_fd, ns=(info.st_atime_ns, info.st_mtime_ns))
            os.fsync(out_fd)
        finally:
            os.close(out_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dir_fd)
        raise
    return name


def _copy_xattrs(src_fd: int, dst_fd: int) -> None:
    """Extended attributes, best effort as ``shutil.copystat`` does (filesystems without them are fine)."""
    if not hasattr(os, "listxattr"):
        return
    try:
        names = os.listxattr(src_fd)
    except OSError:
        return
    for attr in names:
        with contextlib.suppress(OSError):
            os.setxattr(dst_fd, attr, os.getxattr(src_fd, attr))


def link_no_replace(src_dir_fd: int | None, src: str, dst_dir_fd: int, dst: str) -> None:
    """Gives the file ``src`` the name ``dst`` too, or renames it there where hard links are not supported;
    never replaces what is at ``dst``. ``src_dir_fd`` None: ``src`` is a path outside OUT (the user's)."""
    try:
        # Within OUT a symlink entry is linked as itself; the user's own source path is followed as before.
        os.link(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, follow_symlinks=src_dir_fd is None)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.EXDEV) or src_dir_fd is None:
            raise
        # Filesystems without hard links (FAT, some network shares): check-then-rename within the fds.
        if exists_at(dst_dir_fd, dst):
            raise FileExistsError(errno.EEXIST, "destination exists", dst) from None
        os.rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        return
    os.unlink(src, dir_fd=src_dir_fd)


def publish_at(dir_fd: int, tmp: str, name: str) -> None:
    """Gives the temporary ``tmp`` its final name in the same folder without replacing anything."""
    link_no_replace(dir_fd, tmp, dir_fd, name)


def rename_no_replace_at(src_dir_fd: int, src: str, dst_dir_fd: int, dst: str) -> None:
    """Renames within OUT without replacing; a symlink entry is re-created (``link`` may not link a link)."""
    info = lstat_at(src_dir_fd, src)
    if info is None:
        raise FileNotFoundError(errno.ENOENT, "gone", src)
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(src, dir_fd=src_dir_fd), dst, dir_fd=dst_dir_fd)
        os.unlink(src, dir_fd=src_dir_fd)
        return
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "a folder, not a placed file", src)
    link_no_replace(src_dir_fd, src, dst_dir_fd, dst)


def same_entry(a_fd: int, a: str, b_fd: int, b: str) -> bool:
    """Both names are the same file (a link, not a symlink): a rename killed between link and unlink."""
    one, two = lstat_at(a_fd, a), lstat_at(b_fd, b)
    if one is None or two is None or stat.S_ISLNK(one.st_mode) or stat.S_ISLNK(two.st_mode):
        return False
    return (one.st_dev, one.st_ino) == (two.st_dev, two.st_ino)


def remove_temporaries_in(dir_fd: int, recursive: bool = True) -> None:
    """Unlinks the temporaries (regular files named ``TEMP_PREFIX*``) in the folder and, with
    ``recursive``, in every real folder below it (a symlinked sub-folder is never entered)."""
    for entry in os.scandir(dir_fd):
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and entry.name.startswith(TEMP_PREFIX):
            with contextlib.suppress(OSError):
                os.unlink(entry.name, dir_fd=dir_fd)
        elif recursive and stat.S_ISDIR(info.st_mode):
            try:
                child = open_child_dir(dir_fd, entry.name, Path(entry.name))
            except OSError:
                continue  # swapped for a symlink since it was listed, or gone: not ours to clean
            with closing_fd(child):
                remove_temporaries_in(child, recursive)


def remove_empty_below(dir_fd: int, skip: frozenset[str] = frozenset()) -> None:
    """Removes every empty real folder below the folder (bottom-up), except the names in ``skip`` at the
    top; a folder that is not empty, a symlink or gone is left as it is."""
    for entry in list(os.scandir(dir_fd)):
        if entry.name in skip:
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            child = open_child_dir(dir_fd, entry.name, Path(entry.name))
        except OSError:
            continue
        with closing_fd(child):
            remove_empty_below(child)
        with contextlib.suppress(OSError):  # not empty, or no longer a folder: fine
            os.rmdir(entry.name, dir_fd=dir_fd)
