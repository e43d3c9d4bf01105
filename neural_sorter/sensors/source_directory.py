"""``source_directory_sensor`` and ``resort_schedule``."""

import json
from pathlib import Path

import dagster as dg

from neural_sorter.jobs import sort_source_job
from neural_sorter.partitions import source_dirs
from neural_sorter.resources.sorter import SorterResource
from neural_sorter.settings import ConfigError, load_config
from neural_sorter.sources import partition_key_for
from neural_sorter.watching import folder_fingerprint, watched_subfolders


def _default_status() -> dg.DefaultSensorStatus:
    try:
        enabled = load_config().automation
    except ConfigError:
        enabled = False
    return dg.DefaultSensorStatus.RUNNING if enabled else dg.DefaultSensorStatus.STOPPED


@dg.sensor(
    job=sort_source_job,
    minimum_interval_seconds=60,
    default_status=_default_status(),
    description="Registers subfolders of the watch roots as sources and re-sorts sources whose files changed.",
)
def source_directory_sensor(context: dg.SensorEvaluationContext, sorter: SorterResource) -> dg.SensorResult:
    """Cursor: JSON {partition key: fingerprint of the last requested state}. A source whose check fails
    keeps its old fingerprint, so a failing tick never loses its place and the source is retried."""
    options = sorter.options()
    registry = sorter.registry()
    exclude = [Path(options.output_dir).expanduser()] if options.output_dir else []
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(source_dirs.name))

    new_keys = []
    for root in options.watch_roots:
        for folder in watched_subfolders(Path(root).expanduser(), exclude):
            key = partition_key_for(folder)
            if key not in known:
                registry.add(folder)
                new_keys.append(key)
                known.add(key)
    sources = dict(registry.entries())
    for source in options.sources:
        sources.setdefault(partition_key_for(source), str(Path(source).expanduser().resolve()))

    runs = []
    cursor = dict(seen)
    for key, folder in sorted(sources.items()):
        if key not in known:
            continue
        path = Path(folder)
        if not path.is_dir():
            context.log.warning(f"source {folder} ({key}) is gone; its sorted output is kept")
            continue
        try:
            fingerprint = folder_fingerprint(path, exclude)
        except OSError as exc:
            context.log.error(f"could not check {folder}: {exc}; will retry next tick")
            continue
        if seen.get(key) == fingerprint:
            continue
        if not options.output_dir:
            context.log.warning(f"{folder} changed but no output_dir is configured; not sorting")
            continue
        runs.append(dg.RunRequest(partition_key=key, run_key=f"{key}:{fingerprint}", tags={"trigger": "sensor"}))
        cursor[key] = fingerprint
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[source_dirs.build_add_request(new_keys)] if new_keys else [],
        cursor=json.dumps(cursor, sort_keys=True),
    )


def _cron() -> str:
    try:
        return load_config().schedule_cron
    except ConfigError:
        return "0 3 * * *"


@dg.schedule(
    job=sort_source_job,
    cron_schedule=_cron(),
    default_status=dg.DefaultScheduleStatus.RUNNING if _default_status().value == "RUNNING"
    else dg.DefaultScheduleStatus.STOPPED,
    description="Re-sorts every registered source (incremental: unchanged files cost almost nothing).",
)
def resort_schedule(context: dg.ScheduleEvaluationContext):
    keys = context.instance.get_dynamic_partitions(source_dirs.name)
    if not keys:
        return dg.SkipReason("no registered sources")
    stamp = context.scheduled_execution_time.isoformat()
    return [dg.RunRequest(partition_key=key, run_key=f"{stamp}:{key}", tags={"trigger": "schedule"}) for key in keys]
