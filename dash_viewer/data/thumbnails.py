"""The thumbnails of one ``decoded_frames`` table, read a Parquet row group at a time and kept in an LRU cache
bounded by bytes, plus the smaller JPEG variant the grids use."""

from __future__ import annotations

import io
import threading

import numpy as np
import pyarrow as pa
from cachetools import LRUCache

from neural_sorter.store import Store
from neural_sorter.tables import DECODED_FRAMES

#: Longest side of the "small" thumbnail variant used by grids; the stored ones have a short side of ~256 px.
SMALL_THUMBNAIL = 192
#: Row groups of thumbnail bytes kept per partition.
GROUP_CACHE_BYTES = 256 * 2**20

Stamp = tuple[float, int]


class StaleFile(RuntimeError):
    """The file changed while it was being read; the caller re-indexes it."""


class Thumbnails:
    """Where the first good frame of every file sits in one ``decoded_frames`` table, and its JPEG on demand.

    Only the small columns are read up front. Thumbnail bytes are read one Parquet row group at a time and the
    most recent groups are kept up to ``max_bytes`` (always at least the last one), so with the store's
    2,048-row groups a 50,000-file partition never has all its thumbnails in memory (a file written as one row
    group is read whole once). The file is re-opened for each group, never held open, so the pipeline can
    always replace it; the file's stamp is checked around every read instead.
    """

    def __init__(self, store: Store, key: str, stamp: Stamp | None, max_bytes: int = GROUP_CACHE_BYTES) -> None:
        self.store = store
        self.key = key
        self.stamp = stamp
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._groups: LRUCache[int, pa.Array] = LRUCache(maxsize=max_bytes, getsizeof=_group_bytes)
        self._oversized: tuple[int, pa.Array] | None = None  # a group larger than the whole budget
        self._rows: dict[str, int] = {}
        self._starts = np.zeros(1, dtype=np.int64)
        if stamp is None:
            return
        self._check()
        with store.parquet_file(DECODED_FRAMES, key) as parquet:
            names = set(parquet.schema_arrow.names)
            if not {"relative_path", "thumbnail"} <= names:
                return
            index = parquet.read(columns=[c for c in ("relative_path", "frame_index", "error") if c in names])
            sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)]
        self._check()
        self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        paths = index.column("relative_path").to_pylist()
        good = index.column("error").is_null().to_pylist() if "error" in names else [True] * len(paths)
        frames = index.column("frame_index").to_pylist() if "frame_index" in names else [0] * len(paths)
        best: dict[str, tuple[int, int]] = {}
        for row, (path_value, ok, frame) in enumerate(zip(paths, good, frames)):
            if not ok:
                continue
            frame = frame if frame is not None else 0
            if path_value not in best or frame < best[path_value][0]:
                best[path_value] = (frame, row)
        self._rows = {p: row for p, (_, row) in best.items()}

    def _check(self) -> None:
        if self.store.stamp(DECODED_FRAMES, self.key) != self.stamp:
            raise StaleFile(str(self.store.path(DECODED_FRAMES, self.key)))

    def get(self, relative_path: str) -> bytes | None:
        row = self._rows.get(relative_path)
        if row is None:
            return None
        group = int(np.searchsorted(self._starts, row, side="right")) - 1
        value = self._group(group)[row - int(self._starts[group])]
        return value.as_py() if value.is_valid else None

    @property
    def groups_held(self) -> int:
        return len(self._groups) + (self._oversized is not None)

    def _group(self, group: int) -> pa.Array:
        with self._lock:
            hit = self._groups.get(group)
            if hit is not None:
                return hit
            if self._oversized is not None and self._oversized[0] == group:
                return self._oversized[1]
            self._check()
            with self.store.parquet_file(DECODED_FRAMES, self.key) as parquet:
                data = parquet.read_row_group(group, columns=["thumbnail"]).column(0).combine_chunks()
            self._check()
            if _group_bytes(data) > self.max_bytes:
                self._groups.clear()
                self._oversized = (group, data)
            else:
                self._oversized = None
                self._groups[group] = data
            return data


def _group_bytes(array: pa.Array) -> int:
    return max(int(array.nbytes), 1)


def shrink_jpeg(jpeg: bytes, longest: int) -> bytes:
    """A smaller JPEG for grids: Pillow's draft mode decodes at reduced scale, so this is cheap."""
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as image:
        image.draft("RGB", (longest, longest))
        image = image.convert("RGB")
        image.thumbnail((longest, longest))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=82, optimize=True)
        return out.getvalue()
