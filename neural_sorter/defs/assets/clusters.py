import functools

import dagster as dg
import pandas as pd

from neural_sorter.corrections import load_corrections
from neural_sorter.decoding.frames import FRAME_INDEX_COLUMNS
from neural_sorter.defs.config import config_class, set_values
from neural_sorter.defs.metadata import column_schema, publish, stage_failures
from neural_sorter.defs.partitions import source_dirs
from neural_sorter.defs.resources import SorterResource
from neural_sorter.duplicates import DuplicateOptions
from neural_sorter.naming import vocabulary_loader
from neural_sorter.quality_flags import QualityOptions
from neural_sorter.stages.clusters import (
    ClusterOptions,
    build_clusters,
    first_thumbnail_reader,
    first_thumbnail_stream,
)
from neural_sorter.tables import CLUSTERS

ClustersConfig = config_class(
    "ClustersConfig",
    (ClusterOptions, None),
    (DuplicateOptions, ["near_threshold", "similar_threshold", "use_hash", "neighbours"]),
)


@dg.asset(
    partitions_def=source_dirs,
    group_name="organize",
    kinds={"scikitlearn", "parquet"},
    metadata=column_schema(CLUSTERS),
    ins={
        "decoded_frames": dg.AssetIn(metadata={"columns": FRAME_INDEX_COLUMNS}),  # thumbnails streamed
        "file_manifest": dg.AssetIn(
            metadata={"columns": ["relative_path", "content_hash", "kind", "size", "mtime_ns", "width", "height"]}
        ),
    },
)
def clusters(
    context: dg.AssetExecutionContext,
    config: ClustersConfig,
    sorter: SorterResource,
    embeddings: pd.DataFrame,
    decoded_frames: pd.DataFrame,
    file_manifest: pd.DataFrame,
) -> pd.DataFrame:
    """A cluster, a folder name and a sortable hierarchical code per file; exact duplicates grouped; the hand
    corrections of ``<store>/corrections/<partition>.json`` applied (listed in the metadata)."""
    key, store = context.partition_key, sorter.store_root()
    with stage_failures():
        options = sorter.options(key).updated(**set_values(config))
        table, report = build_clusters(
            embeddings,
            store.read(CLUSTERS, key),
            options.section(ClusterOptions),
            categories=options.categories,
            seed=options.seed,
            first_thumbnails=first_thumbnail_reader(decoded_frames, functools.partial(store.iter_thumbnails, key)),
            corrections=load_corrections(store, key),  # hand corrections from the viewer, re-applied every run
            manifest=file_manifest,
            thumbnails=first_thumbnail_stream(decoded_frames, functools.partial(store.iter_thumbnails, key)),
            duplicates=options.section(DuplicateOptions),
            quality=options.section(QualityOptions),
            # CLIP with no categories: names from a built-in vocabulary, its text vectors cached in the store
            vocabulary=vocabulary_loader(store, options.clip_model, sorter.torch_device(), options.prompt_template),
        )
    publish(context, report)
    return table
