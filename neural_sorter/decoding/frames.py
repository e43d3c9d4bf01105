"""The ``decoded_frames`` table: small JPEG thumbnails per file and frame, or the reason a file failed."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from neural_sorter.decoding.images import DecodeError, encode_jpeg, load_image_thumbnail
from neural_sorter.decoding.videos import VIDEO_SECONDS, load_video_frames
from neural_sorter.inventory import source_path

FRAME_COLUMNS = [
    "relative_path",
    "content_hash",
    "kind",
    "frame_index",
    "timestamp",
    "width",
    "height",
    "thumbnail",
    "error",
]
# Everything but the thumbnails: what most readers of ``decoded_frames`` need, at a few percent of the size.
FRAME_INDEX_COLUMNS = [c for c in FRAME_COLUMNS if c != "thumbnail"]


@dataclass(frozen=True)
class DecodeOptions:
    thumbnail_size: int = 256
    frames_per_video: int = 5
    max_image_pixels: int = 178_956_970
    workers: int = 0
    video_seconds: float = VIDEO_SECONDS  # per-file decode time limit; the file gets an error past it


def worker_count(requested: int) -> int:
    return requested if requested > 0 else max(1, os.cpu_count() or 1)


def decode_file(path: str, kind: str, options: DecodeOptions) -> list[dict[str, object]]:
    """Rows for one file: one per kept frame, or a single row carrying the error."""
    try:
        if kind == "image":
            image = load_image_thumbnail(path, options.thumbnail_size, options.max_image_pixels)
            frames = [(0, 0.0, image)]
        else:
            frames = [
                (f.index, f.timestamp, f.image)
                for f in load_video_frames(
                    path, options.frames_per_video, options.thumbnail_size, options.video_seconds
                )
            ]
    except DecodeError as exc:
        return [_error_row(str(exc))]
    except MemoryError:
        return [_error_row("out of memory while decoding")]
    except Exception as exc:  # a decoder bug on one file must not stop the run; keep its message
        return [_error_row(f"unexpected decoder error: {type(exc).__name__}: {exc}")]
    return [
        {
            "frame_index": index,
            "timestamp": timestamp,
            "width": image.width,
            "height": image.height,
            "thumbnail": encode_jpeg(image),
            "error": None,
        }
        for index, timestamp, image in frames
    ]


def _error_row(message: str) -> dict[str, object]:
    return {"frame_index": -1, "timestamp": None, "width": None, "height": None, "thumbnail": None, "error": message}


def decode_manifest(
    manifest: pd.DataFrame,
    options: DecodeOptions,
    reuse: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Decodes every image/video row of ``manifest`` in a thread pool (Pillow, decord and PyAV release the GIL).

    Rows of ``reuse`` (an earlier ``decoded_frames``) whose content hash is still present are kept as they are,
    so unchanged, renamed or moved files are never decoded twice; files with identical content are decoded once.
    """
    todo = manifest[manifest["kind"].isin(["image", "video"])]
    pieces: list[pd.DataFrame] = []
    hit = np.zeros(len(todo), dtype=bool)
    if reuse is not None and len(reuse):
        ok = reuse[reuse["error"].isna()].drop(columns=["relative_path", "kind"])
        ok = ok.drop_duplicates(["content_hash", "frame_index"])
        hit = todo["content_hash"].isin(set(ok["content_hash"])).to_numpy()
        if hit.any():
            pieces.append(todo.loc[hit, ["relative_path", "content_hash", "kind"]].merge(ok, on="content_hash"))
    pending, duplicates = split_duplicates(todo[~hit])
    stats = {"reused": int(hit.sum()), "decoded": 0, "failed": 0}
    rows: list[dict[str, object]] = []
    copies: dict[str, list[dict[str, object]]] = {r.content_hash: [] for r in duplicates}
    with ThreadPoolExecutor(max_workers=worker_count(options.workers)) as pool:
        results = pool.map(lambda r: decode_file(source_path(r.path_bytes), r.kind, options), pending)
        for row, frame_rows in tqdm(
            zip(pending, results), total=len(pending), desc="decode", unit="file", disable=None, leave=False
        ):
            failed = frame_rows[0]["error"] is not None
            stats["failed" if failed else "decoded"] += 1
            rows += file_frame_rows(row.relative_path, row.content_hash, row.kind, frame_rows)
            if row.content_hash in copies:
                copies[row.content_hash] = frame_rows
    for row in duplicates:  # same bytes, same frames: decoded once above
        frame_rows = copies[row.content_hash]
        stats["failed" if frame_rows[0]["error"] is not None else "decoded"] += 1
        rows += file_frame_rows(row.relative_path, row.content_hash, row.kind, frame_rows)
    return frames_table(pieces, rows), stats


def split_duplicates(rows: pd.DataFrame) -> tuple[list, list]:
    """(the first manifest row of each content hash, the other rows): files with the same bytes are decoded
    once and share the frames (the manifest hashes every file, so this costs nothing to find)."""
    first = ~rows["content_hash"].duplicated().to_numpy()
    return list(rows[first].itertuples(index=False)), list(rows[~first].itertuples(index=False))


_FRAME_TYPES = {"frame_index": "int64", "width": "Int64", "height": "Int64", "timestamp": "float64"}


def file_frame_rows(
    relative_path: str, content_hash: str, kind: str, frame_rows: list[dict[str, object]]
) -> list[dict[str, object]]:
    """``decode_file``'s rows for one file with the file's own columns added."""
    file_columns = {"relative_path": relative_path, "content_hash": content_hash, "kind": kind}
    return [file_columns | frame for frame in frame_rows]


def frames_table(pieces: list[pd.DataFrame], rows: list[dict[str, object]]) -> pd.DataFrame:
    """The ``decoded_frames`` table from reused tables plus newly decoded rows: typed, sorted by file and frame.

    New rows come as plain dicts and become one DataFrame here: a small DataFrame per file costs ~100 MB
    of overhead at 20,000 files.
    """
    if rows:
        pieces = [*pieces, pd.DataFrame(rows, columns=FRAME_COLUMNS)]
    if not pieces:
        return pd.DataFrame({c: pd.Series(dtype=_FRAME_TYPES.get(c, "object")) for c in FRAME_COLUMNS})
    frames = pd.concat(pieces, ignore_index=True)[FRAME_COLUMNS].astype(_FRAME_TYPES)
    return frames.sort_values(["relative_path", "frame_index"], ignore_index=True)
