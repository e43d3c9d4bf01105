"""Jobs: sorting one source partition end to end, and registering a source folder from the UI."""

import os

import dagster as dg
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    multiple_process_executor_requirements,
)
from pydantic import Field

from neural_sorter.defs.partitions import source_dirs
from neural_sorter.defs.resources import SorterResource
from neural_sorter.defs.run_worker import ProcessTaggingExecutor
from neural_sorter.memory import release_freed_memory
from neural_sorter.sources import default_output_dir, normalise_path, partition_key_for


@dg.executor(
    name="multi_or_in_process_executor",
    config_schema=dg.Field(
        dg.Selector({"in_process": IN_PROC_CONFIG, "multiprocess": MULTI_PROC_CONFIG}),
        default_value={"in_process": {}},
    ),
    requirements=lambda config: multiple_process_executor_requirements() if "multiprocess" in config else [],
)
def in_process_by_default(init_context):
    """Dagster's default executor with the other default: one process per run. The steps of a sort all import
    torch and the stores; a process per step made a 38-image sort from the UI take 206 s instead of ~30 s.
    ``execution: {config: {multiprocess: {}}}`` still picks a process per step. Wrapped so the process that
    orchestrates the run tags it (``run_worker``): a UI run killed with ``dagster dev`` is then failed, not
    left STARTED."""
    return ProcessTaggingExecutor(dg.multi_or_in_process_executor.executor_creation_fn(init_context))


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
    path: str = Field(description="The folder to sort (absolute, or starting with ~).")
    output: str = Field(
        "",
        description="Where its sorted tree goes. Empty: the output folder already recorded for it, else a "
        "'<folder>-sorted' folder beside it.",
    )
    sort_now: bool = Field(True, description="Start sorting the new partition as soon as it is registered.")


@dg.op
def register_source_folder(
    context: dg.OpExecutionContext, config: RegisterSourceConfig, sorter: SorterResource
) -> None:
    """Adds a folder to the source registry and as a ``source_dirs`` partition, remembering its output folder.
    ``sort_after_register`` then launches the sort of the new partition (when ``sort_now``)."""
    path = normalise_path(config.path)
    if not os.path.isdir(path):
        raise dg.Failure(f"{path} is not a folder")
    registry = sorter.registry()
    recorded = registry.record(partition_key_for(path)).get("output_dir")
    output = normalise_path(config.output) if config.output else recorded or default_output_dir(path)
    key = registry.add(path, output_dir=output)
    context.instance.add_dynamic_partitions(source_dirs.name, [key])
    context.log.info(
        f"registered {path} as partition {key}; its sorted tree goes to {registry.output_folder(key, output)}"
    )


@dg.job(description="Add a folder to sort: fill in path (and output), launch; the sort of it starts by itself.")
def register_source():
    register_source_folder()


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[register_source],
    request_job=sort_source_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
    description="Starts the sort of a folder as soon as register_source has added it (unless sort_now is off).",
)
def sort_after_register(context: dg.RunStatusSensorContext):
    config = (context.dagster_run.run_config.get("ops") or {}).get("register_source_folder", {}).get("config", {})
    if not config.get("path"):
        return dg.SkipReason("the register run had no path")
    if not config.get("sort_now", True):
        return dg.SkipReason("sort_now was off: materialize the partition when you want it sorted")
    key = partition_key_for(config["path"])
    return dg.RunRequest(
        run_key=f"register:{context.dagster_run.run_id}", partition_key=key, tags={"trigger": "register_source"}
    )
