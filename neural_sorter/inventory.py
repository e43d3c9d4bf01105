"""The inventory of a source folder: one row per file with its kind, content hash and cheap facts."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import pandas as pd
from PIL import Image
from tqdm import tqdm

from neural_sorter.sources import FoundFile, SkippedEntry, walk_source

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpeg", ".mpg", ".wmv", ".flv", ".ogv", ".ogg", ".3gp"}
)

MANIFEST_COLUMNS = [
    "relative_path",
    "path",
    "path_bytes",
    "size",
    "mtime_ns",
    "kind",
    "reason",
    "content_hash",
    "width",
    "height",
]

_HASH_CHUNK = 1 << 20


def file_kind(path: str | os.PathLike[str]) -> tuple[str, str | None]:
    """(kind, reason): ``image``, ``video`` or ``unsupported`` with why."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image", None
    if suffix in VIDEO_EXTENSIONS:
        return "video", None
    return "unsupported", f"unsupported file type {suffix or '(no extension)'!r}"


def content_hash(path: str | os.PathLike[str]) -> str:
    """BLAKE2b-128 of the bytes: fast, and collisions are not a practical concern for dedup keys."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def image_size(path: str | os.PathLike[str]) -> tuple[int | None, int | None]:
    """Width and height read from the header only; None when the header cannot be parsed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                return image.size
    except Exception:
        return None, None


def build_file_manifest(
    root: Path,
    exclude: list[Path] | None = None,
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Inventories ``root``. Files whose size and mtime match ``previous`` keep its hash (no re-read)."""
    known: dict[str, tuple[int, int, str, object, object]] = {}
    if previous is not None and len(previous):
        for row in previous.itertuples(index=False):
            if isinstance(row.content_hash, str):
                known[row.relative_path] = (row.size, row.mtime_ns, row.content_hash, row.width, row.height)
    rows = []
    entries = list(walk_source(root, exclude))
    for entry in tqdm(entries, desc="inventory", unit="file", disable=None, leave=False):
        if isinstance(entry, SkippedEntry):
            rows.append(_row(entry.relative_path, entry.path, None, None, "unsupported", entry.reason))
            continue
        assert isinstance(entry, FoundFile)
        kind, reason = file_kind(entry.path)
        row = _row(entry.relative_path, entry.path, entry.size, entry.mtime_ns, kind, reason)
        if kind == "unsupported":
            rows.append(row)
            continue
        if entry.size == 0:
            row.update(kind="unsupported", reason="empty file (0 bytes)")
            rows.append(row)
            continue
        cached = known.get(entry.relative_path)
        if cached and cached[0] == entry.size and cached[1] == entry.mtime_ns:
            row.update(content_hash=cached[2], width=cached[3], height=cached[4])
        else:
            try:
                row["content_hash"] = content_hash(entry.path)
            except OSError as exc:
                row.update(kind="unsupported", reason=f"cannot read: {exc.strerror or exc}")
                rows.append(row)
                continue
            if kind == "image":
                row["width"], row["height"] = image_size(entry.path)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    return frame.astype({"size": "Int64", "mtime_ns": "Int64", "width": "Int64", "height": "Int64"}).reset_index(
        drop=True
    )


def _row(
    relative: str, path: Path, size: int | None, mtime_ns: int | None, kind: str, reason: str | None
) -> dict[str, object]:
    return {
        "relative_path": display_text(relative),
        "path": display_text(os.fspath(path)),
        "path_bytes": os.fsencode(path),
        "size": size,
        "mtime_ns": mtime_ns,
        "kind": kind,
        "reason": reason,
        "content_hash": None,
        "width": None,
        "height": None,
    }


def source_path(path_bytes: bytes) -> str:
    """The real on-disk name of a manifest row (``path`` is for display; it may have escapes)."""
    return os.fsdecode(path_bytes)


def display_text(value: str) -> str:
    """A valid-UTF-8 rendering of a file name for tables and logs (Parquet rejects the surrogates that
    undecodable names carry); the real name stays in ``path_bytes``."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
