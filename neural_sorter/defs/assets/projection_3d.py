import dagster as dg
import pandas as pd

from neural_sorter.defs.config import config_class, set_values
from neural_sorter.defs.metadata import column_schema, publish, stage_failures
from neural_sorter.defs.partitions import source_dirs
from neural_sorter.defs.resources import SorterResource
from neural_sorter.stages.clusters import ClusterOptions
from neural_sorter.stages.projection_3d import ProjectionOptions, build_projection_3d
from neural_sorter.tables import PROJECTION_3D

ProjectionConfig = config_class("ProjectionConfig", (ProjectionOptions, None), (ClusterOptions, ["recluster"]))


@dg.asset(
    name=PROJECTION_3D,
    partitions_def=source_dirs,
    group_name="organize",
    kinds={"umap", "parquet"},
    metadata=column_schema(PROJECTION_3D),
    ins={"embeddings": dg.AssetIn("embeddings"), "clusters": dg.AssetIn("clusters")},
)
def projection_3d(
    context: dg.AssetExecutionContext,
    config: ProjectionConfig,
    sorter: SorterResource,
    embeddings: pd.DataFrame,
    clusters: pd.DataFrame,
) -> pd.DataFrame:
    """x, y, z per file (seeded), with the cluster it belongs to, for the 3D map."""
    key = context.partition_key
    with stage_failures():
        options = sorter.options(key).updated(**set_values(config))
        table, report = build_projection_3d(
            embeddings,
            clusters,
            sorter.store_root().read(PROJECTION_3D, key),
            options.section(ProjectionOptions),
            seed=options.seed,
            drift_threshold=options.drift_threshold,
            recompute=options.recluster,
        )
    publish(context, report)
    return table
