"""The asset store: where every table, model checkpoint and the source registry live, and how they are written.

The layout is ``<root>/<asset>/<partition>.parquet`` (zstd, 2,048-row groups so a reader can fetch one group),
``<root>/models/...`` for checkpoints and ``<root>/sources.json`` for the source registry. ``root`` is a local
folder or any fsspec URL (``s3://bucket/prefix``). The IO manager, the stages, the CLI, the viewer, the tests
and the benchmarks all go through this one class, so the layout is stated once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from neural_sorter.tables import DECODED_FRAMES

if TYPE_CHECKING:
    from neural_sorter.sources import SourceRegistry

log = logging.getLogger(__name__)

EXTENSION = ".parquet"
COMPRESSION = "zstd"
ROW_GROUP_ROWS = 2048


class Store:
    """One store root: paths, reads, atomic writes, thumbnail streaming and the source registry."""

    def __init__(self, root: str | os.PathLike[str] | UPath) -> None:
        self.root = UPath(root)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    @classmethod
    def default(cls) -> Store:
        """The store named by the settings (``NEURAL_SORTER_STORE`` or the home folder's ``store``)."""
        from neural_sorter import settings

        return cls(settings.store_root())

    # --- paths -------------------------------------------------------------------------------------------
    def path(self, asset: str, key: str) -> UPath:
        return self.root / asset / f"{key}{EXTENSION}"

    def model_path(self, *parts: str) -> UPath:
        """A file under ``<root>/models``: checkpoints trained on a folder's own files."""
        return self.root.joinpath("models", *parts)

    @property
    def is_local(self) -> bool:
        return self.root.protocol in ("", "file", "local")

    def exists(self, asset: str, key: str) -> bool:
        return self.path(asset, key).exists()

    def keys(self, asset: str) -> list[str]:
        """Partition keys that have a stored table of ``asset``, sorted."""
        folder = self.root / asset
        if not folder.exists():
            return []
        return sorted(p.name[: -len(EXTENSION)] for p in folder.iterdir() if p.name.endswith(EXTENSION))

    def stamp(self, asset: str, key: str) -> tuple[float, int] | None:
        """(mtime, size) of a stored table, or None: cheap change detection for readers that cache."""
        try:
            info = self.path(asset, key).stat()
        except (FileNotFoundError, OSError):
            return None
        return (float(getattr(info, "st_mtime", 0.0) or 0.0), int(getattr(info, "st_size", 0) or 0))

    # --- reading -----------------------------------------------------------------------------------------
    def read(
        self, asset: str, key: str, columns: list[str] | None = None, filters: list | None = None
    ) -> pd.DataFrame | None:
        """The stored table, or None when there is none; ``columns`` and ``filters`` (pyarrow's) read only part.

        Columns the table does not have are left out rather than failing, so readers survive older tables.
        """
        path = self.path(asset, key)
        if not path.exists():
            return None
        try:
            return self.read_path(path, columns, filters)
        except (pa.ArrowInvalid, OSError) as exc:
            if not path.exists():
                return None
            # Truncated or zero-length after a power cut: set it aside, named in the log, and let the stage
            # rebuild it, rather than failing every run of the partition.
            aside = set_aside(path)
            log.warning("stored %s of %s was unreadable (%s); moved to %s and rebuilt", asset, key, exc, aside)
            return None

    @staticmethod
    def read_path(path: UPath, columns: list[str] | None = None, filters: list | None = None) -> pd.DataFrame:
        with path.open("rb") as handle:
            if columns is not None:
                present = set(pq.ParquetFile(handle).schema_arrow.names)
                columns = [c for c in columns if c in present]
                handle.seek(0)
            frame = pq.read_table(handle, columns=columns, filters=filters).to_pandas()
        # Arrow's allocator keeps freed buffers for reuse; hand them back so a long run's resident memory is
        # what it holds, not the high-water mark of every table it ever read.
        pa.default_memory_pool().release_unused()
        return frame

    @contextlib.contextmanager
    def parquet_file(self, asset: str, key: str) -> Iterator[pq.ParquetFile]:
        """The open Parquet file, for readers that fetch single row groups (the viewer's thumbnails)."""
        with self.path(asset, key).open("rb") as handle:
            yield pq.ParquetFile(handle)

    def iter_thumbnails(self, key: str, frames: pd.DataFrame, batch_rows: int = ROW_GROUP_ROWS) -> Iterator[bytes]:
        """The stored thumbnail of each row of ``frames`` (rows of the ``decoded_frames`` index: content hash and
        frame index), in row order, read a batch of rows at a time, so a stage can stream 100,000 thumbnails
        without holding them all. A key may repeat (duplicate files): it yields the same bytes each time.

        Cheapest when ``frames`` follows the stored order (as the index read by the same stage does); otherwise
        frames read ahead of their turn wait in memory.
        """
        wanted = [(h, int(i)) for h, i in zip(frames["content_hash"], frames["frame_index"])]
        uses = Counter(wanted)
        ahead: dict[tuple[str, int], bytes] = {}
        position = 0
        with self.path(DECODED_FRAMES, key).open("rb") as handle:
            for batch in pq.ParquetFile(handle).iter_batches(
                batch_size=batch_rows, columns=["content_hash", "frame_index", "thumbnail"]
            ):
                columns = batch.to_pydict()
                for content_hash, frame_index, thumbnail in zip(
                    columns["content_hash"], columns["frame_index"], columns["thumbnail"]
                ):
                    item = (content_hash, int(frame_index))
                    if item in uses and item not in ahead and thumbnail is not None:
                        ahead[item] = thumbnail
                while position < len(wanted) and wanted[position] in ahead:
                    item = wanted[position]
                    yield ahead[item]
                    uses[item] -= 1
                    if not uses[item]:  # its last use: never kept again, as it is no longer in ``uses``
                        del ahead[item], uses[item]
                    position += 1
        pa.default_memory_pool().release_unused()
        if position < len(wanted):
            raise KeyError(f"decoded_frames of {key} has no thumbnail for {wanted[position]}")

    # --- writing -----------------------------------------------------------------------------------------
    def write(self, asset: str, key: str, table: pd.DataFrame) -> UPath:
        """Writes a table so a reader sees the old one or the new one, never half of either."""
        if not isinstance(table, pd.DataFrame):
            raise TypeError(f"{asset} must be a pandas DataFrame, got {type(table).__name__}")
        path = self.path(asset, key)
        arrow = pa.Table.from_pandas(table, preserve_index=False)
        self.write_atomic(
            path, lambda handle: pq.write_table(arrow, handle, compression=COMPRESSION, row_group_size=ROW_GROUP_ROWS)
        )
        return path

    def write_bytes(self, path: UPath, data: bytes) -> None:
        self.write_atomic(path, lambda handle: handle.write(data))

    def write_atomic(self, path: UPath, write) -> None:
        """Write to a unique temporary beside ``path``, fsync, then rename over it (object stores write whole
        objects anyway, so there the temporary only costs a copy)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            with tmp.open("wb") as handle:
                write(handle)
                if self.is_local:
                    handle.flush()
                    os.fsync(handle.fileno())
            if self.is_local:
                os.replace(tmp.path, path.path)
                _fsync_dir(os.path.dirname(path.path))
            else:
                tmp.rename(path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    # --- the source registry -----------------------------------------------------------------------------
    @cached_property
    def sources(self) -> SourceRegistry:
        from neural_sorter.sources import SourceRegistry

        return SourceRegistry(self)


def set_aside(path: UPath) -> UPath:
    """Renames a damaged state file to ``<name>.damaged-<time>`` beside it, so it is kept for a person to look
    at and no longer read."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}")
    path.rename(aside)
    return aside


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
