"""The Parquet IO manager through ``materialize`` on toy partitioned assets: where it writes, what it reads."""

import dagster as dg
import pandas as pd

from neural_sorter.defs.io_manager import ParquetIOManagerFactory
from neural_sorter.defs.resources import SorterResource
from neural_sorter.store import Store

parts = dg.StaticPartitionsDefinition(["a-1234"])


@dg.asset(partitions_def=parts)
def wide() -> pd.DataFrame:
    return pd.DataFrame({"keep": [1, 2], "heavy": [b"x" * 10, b"y" * 10]})


@dg.asset(partitions_def=parts, ins={"wide": dg.AssetIn(metadata={"columns": ["keep"]})})
def narrow(wide: pd.DataFrame) -> pd.DataFrame:
    return wide.assign(columns=",".join(wide.columns))


def test_io_manager_writes_the_store_layout_and_reads_only_asked_columns(tmp_path):
    sorter = SorterResource(store=str(tmp_path / "store"))
    with dg.instance_for_test() as instance:  # its own instance: never one another test left behind
        result = dg.materialize(
            [wide, narrow],
            partition_key="a-1234",
            instance=instance,
            resources={"sorter": sorter, "io_manager": ParquetIOManagerFactory(sorter=sorter)},
        )
    assert result.success
    store = Store(tmp_path / "store")
    assert store.keys("wide") == ["a-1234"] and store.keys("narrow") == ["a-1234"]
    assert store.read("narrow", "a-1234")["columns"].tolist() == ["keep", "keep"]
    assert store.read("wide", "a-1234")["heavy"].tolist() == [b"x" * 10, b"y" * 10]
