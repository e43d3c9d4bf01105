"""Run config for the ``sort_source`` job from plain option values, for the CLI and other launchers: each
value goes to every asset whose launchpad config declares it, the rest to the ``sorter`` resource."""

from typing import Any

from neural_sorter.defs.assets.clusters import ClustersConfig
from neural_sorter.defs.assets.decoded_frames import DecodedFramesConfig
from neural_sorter.defs.assets.embeddings import EmbeddingsConfig
from neural_sorter.defs.assets.projection_3d import ProjectionConfig
from neural_sorter.defs.assets.reorganized_tree import ReorganizedTreeConfig
from neural_sorter.defs.assets.trained_autoencoder import TrainedAutoencoderConfig
from neural_sorter.defs.resources import SorterResource
from neural_sorter.tables import (
    CLUSTERS,
    DECODED_FRAMES,
    EMBEDDINGS,
    PROJECTION_3D,
    REORGANIZED_TREE,
    TRAINED_AUTOENCODER,
)

ASSET_CONFIGS = {
    DECODED_FRAMES: DecodedFramesConfig,
    TRAINED_AUTOENCODER: TrainedAutoencoderConfig,
    EMBEDDINGS: EmbeddingsConfig,
    CLUSTERS: ClustersConfig,
    PROJECTION_3D: ProjectionConfig,
    REORGANIZED_TREE: ReorganizedTreeConfig,
}


def sort_run_config(values: dict[str, Any], autoencoder: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"resources": {"sorter": ...}, "ops": {...}}`` for the set (non-None) ``values``."""
    values = {k: v for k, v in values.items() if v is not None}
    ops: dict[str, dict[str, Any]] = {}
    placed = set()
    for asset, config in ASSET_CONFIGS.items():
        source = (autoencoder or {}) if asset == TRAINED_AUTOENCODER else values
        chosen = {k: v for k, v in source.items() if k in config.model_fields and v is not None}
        if chosen:
            ops[asset] = {"config": chosen}
            placed |= set(chosen) if asset != TRAINED_AUTOENCODER else set()
    resource = {k: v for k, v in values.items() if k in SorterResource.model_fields and k not in placed}
    unknown = set(values) - placed - set(resource)
    if unknown:
        raise ValueError(f"options with no place in the run config: {sorted(unknown)}")
    return {"resources": {"sorter": {"config": resource}}, "ops": ops}
