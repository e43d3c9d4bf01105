"""The run-wide ``sorter`` resource: where the store is, which YAML file to read, and the options every stage
of a run must agree on (backend, CLIP model, categories, output folder, seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import dagster as dg
from pydantic import Field, create_model

from neural_sorter import settings
from neural_sorter.defs.config import overlay_fields
from neural_sorter.sources import SourceRegistry, default_output_dir
from neural_sorter.stages.embeddings import EmbeddingOptions
from neural_sorter.store import Store

_SHARED = create_model(
    "SorterResourceFields",
    __base__=dg.ConfigurableResource,
    config_file=(Optional[str], Field(None, description="YAML config file; NEURAL_SORTER_CONFIG if unset.")),  # noqa: UP045
    store=(Optional[str], Field(None, description="Store root (folder or s3://...); NEURAL_SORTER_STORE if unset.")),  # noqa: UP045
    device=(Optional[str], Field(None, description="torch device; auto-detected (cuda, mps, cpu) if unset.")),  # noqa: UP045
    **overlay_fields(EmbeddingOptions, ["backend", "clip_model", "categories", "prompt_template"], "Sorter"),
    **overlay_fields(settings.SourceOptions, ["output_dir", "seed"], "Sorter"),
)


class SorterResource(_SHARED):
    """Options shared by every stage of one run. Unset fields come from the source's registration, then the
    YAML config file, then the defaults."""

    def options(self, partition_key: str | None = None) -> settings.SorterConfig:
        """The validated, merged options; raises ``ConfigError`` naming the bad field.

        With a partition key, the output folder recorded when the source was registered applies, and a source
        that never had one gets ``<folder>-sorted`` beside it rather than failing after minutes of work.
        """
        config = settings.load_config(self.config_file)
        if partition_key is not None:
            record = self.registry().record(partition_key)
            config = config.updated(output_dir=record.get("output_dir"))
        shared = {name: getattr(self, name) for name in type(self).model_fields if name not in _OWN}
        config = config.updated(**shared)
        if partition_key is not None and not config.output_dir:
            config = config.updated(output_dir=default_output_dir(self.source_dir(partition_key, config)))
        return config

    def store_root(self) -> Store:
        return Store(self.store or settings.store_root())

    def registry(self) -> SourceRegistry:
        return self.store_root().sources

    def source_dir(self, partition_key: str, config: settings.SorterConfig | None = None) -> Path:
        sources = (config or settings.load_config(self.config_file)).sources
        return self.registry().resolve(partition_key, sources)

    def torch_device(self):
        from neural_sorter.device import pick_device

        return pick_device(self.device)


_OWN = {"config_file", "store", "device"}
