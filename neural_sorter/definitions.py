"""The Dagster code location: assets, jobs, resources. Thin by design; logic lives in plain modules."""

import dagster as dg

from neural_sorter.assets.embeddings import embeddings
from neural_sorter.assets.ingest import decoded_frames, file_manifest
from neural_sorter.assets.models import clip_model, trained_autoencoder
from neural_sorter.assets.organize import clusters, projection_3d, reorganized_tree
from neural_sorter.io_managers import ParquetIOManagerFactory
from neural_sorter.jobs import register_source, sort_source_job
from neural_sorter.resources.sorter import SorterResource
from neural_sorter.sensors.source_directory import resort_schedule, source_directory_sensor

ALL_ASSETS = [
    file_manifest,
    decoded_frames,
    clip_model,
    trained_autoencoder,
    embeddings,
    clusters,
    projection_3d,
    reorganized_tree,
]

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[sort_source_job, register_source],
    sensors=[source_directory_sensor],
    schedules=[resort_schedule],
    resources={"sorter": SorterResource(), "io_manager": ParquetIOManagerFactory()},
)
