"""Parquet storage for every asset: ``<store>/<asset_name>/<partition_key>.parquet`` on any fsspec path."""

from collections import Counter
from collections.abc import Iterator

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from neural_sorter import settings


class ParquetIOManager(dg.UPathIOManager):
    """Writes DataFrames as Parquet through UPath, so a local folder and ``s3://`` behave the same."""

    extension: str = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()} must be a pandas DataFrame, got {type(obj)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(obj, preserve_index=False)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as handle:
            # Row groups of ~2k rows let readers (the viewer's thumbnail route) fetch only what they need.
            pq.write_table(table, handle, compression="zstd", row_group_size=2048)
        tmp.rename(path)
        context.add_output_metadata({"rows": dg.MetadataValue.int(len(obj))})

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        # An input can ask for some columns only (``AssetIn(metadata={"columns": [...]})``): most readers of
        # decoded_frames need its index, not its thumbnails, which are nearly all of its bytes.
        columns = (context.definition_metadata or {}).get("columns")
        return _read_parquet(path, columns)


def _read_parquet(path: UPath, columns: list[str] | None = None, filters: list | None = None) -> pd.DataFrame:
    with path.open("rb") as handle:
        frame = pq.read_table(handle, columns=columns, filters=filters).to_pandas()
    # Arrow's allocator keeps freed buffers for reuse; hand them back so a long run's resident memory is
    # what it holds, not the high-water mark of every table it ever read.
    pa.default_memory_pool().release_unused()
    return frame


def asset_path(store: str | UPath, asset_name: str, partition_key: str) -> UPath:
    return UPath(store) / asset_name / f"{partition_key}.parquet"


def read_asset(
    store: str | UPath,
    asset_name: str,
    partition_key: str,
    columns: list[str] | None = None,
    filters: list | None = None,
) -> pd.DataFrame | None:
    """The latest stored value of an asset partition, for code outside Dagster (viewer, reuse caches);
    ``columns`` and ``filters`` (pyarrow's) read only part of it."""
    path = asset_path(store, asset_name, partition_key)
    if not path.exists():
        return None
    return _read_parquet(path, columns, filters)


def iter_stored_thumbnails(
    store: str | UPath, partition_key: str, frames: pd.DataFrame, batch_rows: int = 2048
) -> Iterator[bytes]:
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
    path = asset_path(store, "decoded_frames", partition_key)
    with path.open("rb") as handle:
        for batch in pq.ParquetFile(handle).iter_batches(
            batch_size=batch_rows, columns=["content_hash", "frame_index", "thumbnail"]
        ):
            columns = batch.to_pydict()
            for content_hash, frame_index, thumbnail in zip(
                columns["content_hash"], columns["frame_index"], columns["thumbnail"]
            ):
                key = (content_hash, int(frame_index))
                if key in uses and key not in ahead and thumbnail is not None:
                    ahead[key] = thumbnail
            while position < len(wanted) and wanted[position] in ahead:
                key = wanted[position]
                yield ahead[key]
                uses[key] -= 1
                if not uses[key]:  # its last use: never kept again, as it is no longer in ``uses``
                    del ahead[key], uses[key]
                position += 1
    pa.default_memory_pool().release_unused()
    if position < len(wanted):
        raise KeyError(f"decoded_frames of {partition_key} has no thumbnail for {wanted[position]}")


class ParquetIOManagerFactory(dg.ConfigurableIOManagerFactory):
    """The store root comes from config (local folder by default, or ``s3://bucket/prefix``)."""

    root: str | None = None

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetIOManager:
        return ParquetIOManager(base_path=UPath(self.root or settings.store_root()))
