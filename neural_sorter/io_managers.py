"""Transitional shim: the IO manager and readers now live on ``neural_sorter.store.Store``."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd
from upath import UPath

from neural_sorter import settings
from neural_sorter.store import Store


class ParquetIOManager(dg.UPathIOManager):
    """Reads and writes each asset partition through ``Store``."""

    extension: str = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()} must be a pandas DataFrame, got {type(obj)}")
        Store(self._base_path).write_atomic(path, lambda handle: _write(obj, handle))
        context.add_output_metadata({"rows": dg.MetadataValue.int(len(obj))})

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        columns = (context.definition_metadata or {}).get("columns")
        return Store.read_path(path, columns)


def _write(obj, handle):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from neural_sorter.store import COMPRESSION, ROW_GROUP_ROWS

    pq.write_table(pa.Table.from_pandas(obj, preserve_index=False), handle, compression=COMPRESSION,
                   row_group_size=ROW_GROUP_ROWS)


def asset_path(store, asset_name: str, partition_key: str) -> UPath:
    return Store(store).path(asset_name, partition_key)


def read_asset(store, asset_name, partition_key, columns=None, filters=None) -> pd.DataFrame | None:
    return Store(store).read(asset_name, partition_key, columns, filters)


def iter_stored_thumbnails(store, partition_key, frames, batch_rows: int = 2048) -> Iterator[bytes]:
    return Store(store).iter_thumbnails(partition_key, frames, batch_rows)


class ParquetIOManagerFactory(dg.ConfigurableIOManagerFactory):
    root: str | None = None

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetIOManager:
        return ParquetIOManager(base_path=UPath(self.root or settings.store_root()))
