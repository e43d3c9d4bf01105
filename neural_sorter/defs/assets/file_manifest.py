import dagster as dg
import pandas as pd

from neural_sorter.defs.metadata import column_schema, publish, stage_failures
from neural_sorter.defs.partitions import source_dirs
from neural_sorter.defs.resources import SorterResource
from neural_sorter.stages.file_manifest import build_file_manifest
from neural_sorter.tables import FILE_MANIFEST
from neural_sorter.watching import output_exclusions


@dg.asset(
    partitions_def=source_dirs, group_name="ingest", kinds={"python", "parquet"}, metadata=column_schema(FILE_MANIFEST)
)
def file_manifest(context: dg.AssetExecutionContext, sorter: SorterResource) -> pd.DataFrame:
    """Every file below the source folder: path, size, mtime, kind (or why unsupported), content hash."""
    key = context.partition_key
    with stage_failures():
        options = sorter.options(key)
        root = sorter.source_dir(key, options)
        previous = sorter.store_root().read(FILE_MANIFEST, key)
        table, report = build_file_manifest(root, previous, exclude=output_exclusions(options))
    publish(context, report)
    return table
