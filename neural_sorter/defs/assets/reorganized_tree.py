from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from neural_sorter.defs.config import config_class, set_values
from neural_sorter.defs.metadata import column_schema, publish, stage_failures
from neural_sorter.defs.partitions import source_dirs
from neural_sorter.defs.resources import SorterResource
from neural_sorter.duplicates import DuplicateOptions
from neural_sorter.stages.reorganized_tree import ReorganizeOptions, build_reorganized_tree
from neural_sorter.tables import PROJECTION_3D, REORGANIZED_TREE

ReorganizedTreeConfig = config_class(
    "ReorganizedTreeConfig",
    (ReorganizeOptions, None),
    (DuplicateOptions, ["duplicates", "review"]),
    force=(bool, Field(False, description="Allow a non-empty output folder not made by neural-sorter.")),
)


@dg.asset(
    partitions_def=source_dirs,
    group_name="organize",
    kinds={"parquet"},
    deps=[PROJECTION_3D],
    metadata=column_schema(REORGANIZED_TREE),
)
def reorganized_tree(
    context: dg.AssetExecutionContext,
    config: ReorganizedTreeConfig,
    sorter: SorterResource,
    clusters: pd.DataFrame,
    file_manifest: pd.DataFrame,
) -> pd.DataFrame:
    """Places each file in ``OUT/<source folder name>/<cluster>/`` (copy by default), recording every action."""
    key = context.partition_key
    with stage_failures():
        options = sorter.options(key).updated(**set_values(config))
        table, report = build_reorganized_tree(
            clusters,
            file_manifest,
            options.section(ReorganizeOptions),
            out=Path(options.output_dir),
            source=sorter.source_dir(key, options),
            partition_key=key,
            registry=sorter.registry(),
            force=config.force,
            duplicates=options.duplicates,
            review=options.review,
            on_wait=context.log.info,
        )
    publish(context, report)
    return table
