"""Parquet storage for every asset: ``<store>/<asset_name>/<partition_key>.parquet`` on any fsspec path."""

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
        with path.open("rb") as handle:
            return pq.read_table(handle).to_pandas()


def read_asset(store: str | UPath, asset_name: str, partition_key: str) -> pd.DataFrame | None:
    """The latest stored value of an asset partition, for code outside Dagster (viewer, reuse caches)."""
    path = UPath(store) / asset_name / f"{partition_key}.parquet"
    if not path.exists():
        return None
    with path.open("rb") as handle:
        return pq.read_table(handle).to_pandas()


class ParquetIOManagerFactory(dg.ConfigurableIOManagerFactory):
    """The store root comes from config (local folder by default, or ``s3://bucket/prefix``)."""

    root: str | None = None

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetIOManager:
        return ParquetIOManager(base_path=UPath(self.root or settings.store_root()))
