"""The run-wide settings resource: YAML config merged with per-run overrides from the launchpad or CLI."""

from pathlib import Path

import dagster as dg
import torch
from pydantic import Field
from upath import UPath

from neural_sorter import settings
from neural_sorter.device import pick_device
from neural_sorter.sources import SourceRegistry


class SorterResource(dg.ConfigurableResource):
    """Options shared by every stage of one run. Unset fields come from the YAML config file.

    ``backend``, ``clip_model`` and ``categories`` live here rather than on one asset because the model
    assets and ``embeddings`` must agree on them within a run.
    """

    config_file: str | None = Field(None, description="YAML config file; NEURAL_SORTER_CONFIG if unset.")
    store: str | None = Field(None, description="Store root (folder or s3://...); NEURAL_SORTER_STORE if unset.")
    backend: str | None = Field(None, description="auto | clip | cnn | autoencoder")
    clip_model: str | None = Field(None, description="Hugging Face hub id or local folder of a CLIP model.")
    categories: list[str] | None = Field(None, description="CLIP text categories that name clusters.")
    output_dir: str | None = Field(None, description="Where per-cluster folders are written.")
    seed: int | None = None
    device: str | None = Field(None, description="torch device; auto-detected (cuda, mps, cpu) if unset.")

    def options(self) -> settings.SorterConfig:
        """The validated, merged options; raises ``ConfigError`` naming the bad field."""
        base = settings.load_config(self.config_file)
        return base.updated(
            backend=self.backend,
            clip_model=self.clip_model,
            categories=self.categories,
            output_dir=self.output_dir,
            seed=self.seed,
        )

    def store_root(self) -> UPath:
        return UPath(self.store or settings.store_root())

    def registry(self) -> SourceRegistry:
        return SourceRegistry(self.store_root())

    def source_dir(self, partition_key: str) -> Path:
        return self.registry().resolve(partition_key, self.options().sources)

    def torch_device(self) -> torch.device:
        return pick_device(self.device)
