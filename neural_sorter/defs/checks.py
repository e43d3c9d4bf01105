"""Asset checks for the invariants the tests state, so a person sees them in the UI after every run."""

import warnings

import dagster as dg
import numpy as np

from neural_sorter.decoding.frames import FRAME_INDEX_COLUMNS
from neural_sorter.defs.assets.embeddings import embeddings
from neural_sorter.defs.assets.reorganized_tree import reorganized_tree
from neural_sorter.defs.partitions import source_dirs
from neural_sorter.defs.resources import SorterResource
from neural_sorter.reorganize import HOLDING_ACTIONS
from neural_sorter.tables import DECODED_FRAMES, EMBEDDINGS, REORGANIZED_TREE

# Partitioned asset checks are a Dagster "preview" feature; say so here, once, rather than on every start.
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
)


@dg.asset_check(
    asset=embeddings,
    description="Every decoded file has exactly one embedding, and every vector has unit length.",
    blocking=True,
    partitions_def=source_dirs,  # checked per source folder, reading that partition only
)
def one_unit_vector_per_decoded_file(
    context: dg.AssetCheckExecutionContext, sorter: SorterResource
) -> dg.AssetCheckResult:
    # Both tables are read from the store for the run's partition: the inputs of a check on a partitioned
    # asset load *every* partition (a dict), which failed every run once a second source was registered.
    key, store = context.op_execution_context.partition_key, sorter.store_root()
    embeddings = store.read(EMBEDDINGS, key, columns=["relative_path", "vector"])
    decoded_frames = store.read(DECODED_FRAMES, key, columns=FRAME_INDEX_COLUMNS)
    decoded = set(decoded_frames.loc[decoded_frames["error"].isna(), "relative_path"])
    embedded = embeddings["relative_path"]
    missing = sorted(decoded - set(embedded))
    repeated = sorted(embedded[embedded.duplicated()].unique())
    norms = np.linalg.norm(np.stack(embeddings["vector"].to_numpy()), axis=1) if len(embeddings) else np.ones(0)
    off_norm = int((np.abs(norms - 1) > 1e-3).sum())
    return dg.AssetCheckResult(
        passed=not missing and not repeated and not off_norm,
        metadata={
            "files": len(embeddings),
            "missing": len(missing),
            "repeated": len(repeated),
            "not_unit_norm": off_norm,
            "examples": dg.MetadataValue.json((missing + repeated)[:10]),
        },
    )


@dg.asset_check(
    asset=reorganized_tree,
    description="Every placed file is recorded once, with its content hash, at a destination of its own.",
    blocking=True,
    partitions_def=source_dirs,
)
def every_file_placed_once(context: dg.AssetCheckExecutionContext, sorter: SorterResource) -> dg.AssetCheckResult:
    reorganized_tree = sorter.store_root().read(REORGANIZED_TREE, context.op_execution_context.partition_key)
    # Only rows after which a destination holds the file: a changed file's old copy going to the trash
    # ("remove") shares its source with the new placement.
    holding = reorganized_tree[reorganized_tree["action"].isin([str(a) for a in HOLDING_ACTIONS])]
    holding = holding[holding["error"].isna()] if "error" in holding else holding
    repeated_sources = int(holding["source"].duplicated().sum())
    repeated_destinations = int(holding["destination"].duplicated().sum())
    no_hash = int(holding["content_hash"].isna().sum() + (holding["content_hash"] == "").sum())
    return dg.AssetCheckResult(
        passed=not (repeated_sources or repeated_destinations or no_hash),
        metadata={
            "placed": len(holding),
            "sources_placed_twice": repeated_sources,
            "destinations_shared": repeated_destinations,
            "without_hash": no_hash,
        },
    )


ALL_CHECKS = [one_unit_vector_per_decoded_file, every_file_placed_once]
