"""Jobs: sorting one source partition end to end, and registering a source folder from the UI."""

import os

import dagster as dg
from pydantic import Field

from neural_sorter.memory import release_freed_memory
from neural_sorter.partitions import source_dirs
from neural_sorter.resources.sorter import SorterResource
from neural_sorter.sources import PARTITIONS_NAME


@dg.success_hook
def release_memory_after_step(context: dg.HookContext) -> None:
    """Steps share one process with the in-process executor: hand back what the finished step freed."""
    release_freed_memory()


@dg.failure_hook
def release_memory_after_failed_step(context: dg.HookContext) -> None:
    release_freed_memory()


sort_source_job = dg.define_asset_job(
    "sort_source",
    selection=dg.AssetSelection.groups("ingest", "models", "embed", "organize"),
    partitions_def=source_dirs,
    description="Inventory, decode, embed, cluster, project and reorganize one source folder.",
    hooks={release_memory_after_step, release_memory_after_failed_step},
)


class RegisterSourceConfig(dg.Config):
    path: str = Field(description="Absolute path of the folder to sort.")


@dg.op
def register_source_folder(
    context: dg.OpExecutionContext, config: RegisterSourceConfig, sorter: SorterResource
) -> None:
    """Adds a folder to the source registry and as a ``source_dirs`` partition (no output: nothing to store)."""
    path = os.path.abspath(os.path.expanduser(config.path))
    if not os.path.isdir(path):
        raise dg.Failure(f"{path} is not a folder")
    key = sorter.registry().add(path)
    context.instance.add_dynamic_partitions(PARTITIONS_NAME, [key])
    context.log.info(f"registered {path} as partition {key}")


@dg.job(description="Register a source folder as a partition (then materialize it from the asset graph).")
def register_source():
    register_source_folder()
