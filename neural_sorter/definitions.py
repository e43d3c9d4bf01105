"""The Dagster code location: composes the skin in ``neural_sorter.defs``; nothing else happens here."""

import dagster as dg

from neural_sorter.defs.assets.clip_model import clip_model
from neural_sorter.defs.assets.clusters import clusters
from neural_sorter.defs.assets.decoded_frames import decoded_frames
from neural_sorter.defs.assets.embeddings import embeddings
from neural_sorter.defs.assets.file_manifest import file_manifest
from neural_sorter.defs.assets.projection_3d import projection_3d
from neural_sorter.defs.assets.reorganized_tree import reorganized_tree
from neural_sorter.defs.assets.trained_autoencoder import trained_autoencoder
from neural_sorter.defs.automation import resort_schedule, source_directory_sensor
from neural_sorter.defs.checks import ALL_CHECKS
from neural_sorter.defs.distributed import sort_source_celery_job
from neural_sorter.defs.io_manager import ParquetIOManagerFactory
from neural_sorter.defs.jobs import in_process_by_default, register_source, sort_after_register, sort_source_job
from neural_sorter.defs.resources import SorterResource
from neural_sorter.defs.run_worker import stale_run_sensor

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

sorter = SorterResource.configure_at_launch()  # one resource: its run config reaches the IO manager too
defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=[sort_source_job, sort_source_celery_job, register_source],
    sensors=[source_directory_sensor, sort_after_register, stale_run_sensor],
    schedules=[resort_schedule],
    resources={"sorter": sorter, "io_manager": ParquetIOManagerFactory(sorter=sorter)},
    executor=in_process_by_default,
)
