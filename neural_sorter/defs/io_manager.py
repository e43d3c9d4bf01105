"""Parquet storage of every asset through ``Store``; its root is the ``sorter`` resource's, so reads and
writes can never be split across two stores."""

import dagster as dg
import pandas as pd
from upath import UPath

from neural_sorter.defs.resources import SorterResource
from neural_sorter.store import Store


class ParquetIOManager(dg.UPathIOManager):
    """``<store>/<asset>/<partition>.parquet``; an input may ask for some columns only
    (``AssetIn(metadata={"columns": [...]})``): most readers of decoded_frames need its index, not its
    thumbnails, which are nearly all of its bytes."""

    extension: str = ".parquet"

    def __init__(self, store: Store) -> None:
        super().__init__(base_path=store.root)
        self.store = store

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        asset, key = context.asset_key.to_user_string(), context.partition_key if context.has_partition_key else ""
        if self.store.path(asset, key) != path:  # never write outside the layout the store documents
            raise ValueError(f"unexpected path {path} for {asset}/{key}")
        self.store.write(asset, key, obj)
        context.add_output_metadata({"rows": dg.MetadataValue.int(len(obj))})

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        return Store.read_path(path, (context.definition_metadata or {}).get("columns"))


class ParquetIOManagerFactory(dg.ConfigurableIOManagerFactory):
    # A dependency on the top-level ``sorter`` resource, not a copy of it: the store root a run config sets
    # (e.g. a Celery run's) must reach the IO manager too, or outputs land in each process's default store.
    # (Dagster reads this annotation at class creation: no ``from __future__ import annotations`` here.)
    sorter: dg.ResourceDependency[SorterResource]

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetIOManager:
        return ParquetIOManager(self.sorter.store_root())
