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
from pathlib import Path

from neural_sorter.file_manifest import content_hash

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


def remove_stale_temporaries(tree: Path) -> None:
    """Half-written copies left by a killed run: they never got a real name, so nothing refers to them."""
    if tree.is_dir():
        for stale in tree.rglob(f"{TEMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                stale.unlink()


def remove_empty_dirs(out: Path, exclude: Path) -> None:
    """Cluster folders emptied by relocations or removals; only empty ones, never the state folder."""
    for dirpath, _dirnames, _files in os.walk(out, topdown=False):
        path = Path(dirpath)
        if path == out or path.is_relative_to(exclude):
            continue
        with contextlib.suppress(OSError):  # not empty: fine
            path.rmdir()
