import dagster as dg
import pandas as pd

from neural_sorter.defs.metadata import column_schema, publish, stage_failures
from neural_sorter.defs.partitions import source_dirs
from neural_sorter.defs.resources import SorterResource
from neural_sorter.stages.clip_model import build_clip_model
from neural_sorter.stages.embeddings import EmbeddingOptions
from neural_sorter.tables import CLIP_MODEL


@dg.asset(
    partitions_def=source_dirs, group_name="models", kinds={"pytorch", "parquet"}, metadata=column_schema(CLIP_MODEL)
)
def clip_model(context: dg.AssetExecutionContext, sorter: SorterResource) -> pd.DataFrame:
    """The CLIP model (hub id or local folder) with its revision, and the text vectors of the categories.

    With backend ``auto`` an unloadable CLIP is recorded as unavailable (embeddings then use the cnn backend).
    """
    with stage_failures():
        options = sorter.options(context.partition_key).section(EmbeddingOptions)
        table, report = build_clip_model(options, sorter.torch_device())
    publish(context, report)
    return table
