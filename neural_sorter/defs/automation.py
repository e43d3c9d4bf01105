"""``source_directory_sensor`` and ``resort_schedule``: sorted folders stay sorted by themselves.

Whether they start switched on, the schedule's cron and the sensor's interval come from the environment
(``NEURAL_SORTER_AUTOMATION``, ``NEURAL_SORTER_SCHEDULE_CRON``, ``NEURAL_SORTER_SENSOR_INTERVAL``; the launcher
sets the first two from the config file), because definitions must load without reading YAML.

A source counts as changed when its files differ from what its last sort saw (the stored ``file_manifest``:
paths, sizes, mtimes) or from what the sensor last requested (its cursor), so folders first sorted from the
CLI or the UI are not re-sorted for nothing when the sensor is switched on, and are re-sorted when they change.
"""

import json
import os
from pathlib import Path

import dagster as dg

from neural_sorter.defs.jobs import sort_source_job
from neural_sorter.defs.partitions import source_dirs
from neural_sorter.defs.resources import SorterResource
from neural_sorter.settings import SourceOptions
from neural_sorter.sources import default_output_dir, partition_key_for
from neural_sorter.tables import FILE_MANIFEST
from neural_sorter.watching import fingerprint, folder_fingerprint, output_exclusions, watched_subfolders

AUTOMATION_ENV = "NEURAL_SORTER_AUTOMATION"
CRON_ENV = "NEURAL_SORTER_SCHEDULE_CRON"
SENSOR_INTERVAL_ENV = "NEURAL_SORTER_SENSOR_INTERVAL"


def automation_on() -> bool:
    return os.environ.get(AUTOMATION_ENV, "").lower() in ("1", "true", "yes", "on")


def sensor_interval() -> int:
    """Seconds between the folder sensor's ticks (default 60)."""
    value = os.environ.get(SENSOR_INTERVAL_ENV, "")
    return max(1, int(value)) if value.isdigit() else 60


def schedule_cron() -> str:
    return os.environ.get(CRON_ENV) or SourceOptions.model_fields["schedule_cron"].default


@dg.sensor(
    job=sort_source_job,
    minimum_interval_seconds=sensor_interval(),
    default_status=dg.DefaultSensorStatus.RUNNING if automation_on() else dg.DefaultSensorStatus.STOPPED,
    description="Registers subfolders of the watch roots as sources and re-sorts sources whose files changed.",
)
def source_directory_sensor(context: dg.SensorEvaluationContext, sorter: SorterResource) -> dg.SensorResult:
    """Cursor: JSON {partition key: fingerprint of the last requested state}. A source whose check fails
    keeps its old fingerprint, so a failing tick never loses its place and the source is retried. A tick that
    requests nothing says why in its skip reason, on the tick list."""
    options = sorter.options()
    registry = sorter.registry()
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(source_dirs.name))

    # Output folders of registered sources are never sources themselves, even before their first file lands.
    outputs = [Path(r["output_dir"]) for r in registry.records().values() if r.get("output_dir")]
    new_keys = []
    for root in options.watch_roots:
        # A watch root's folders share one output folder beside it unless the config names one.
        root_output = options.output_dir or default_output_dir(root)
        for folder in watched_subfolders(Path(root), [*output_exclusions(options), Path(root_output), *outputs]):
            key = partition_key_for(folder)
            if key not in known:
                registry.add(folder, output_dir=registry.record(key).get("output_dir") or root_output)
                new_keys.append(key)
                known.add(key)
    sources = dict(registry.entries())
    for source in options.sources:
        sources.setdefault(partition_key_for(source), source)

    store = sorter.store_root()
    runs, reasons = [], []
    cursor = dict(seen)
    for key, folder in sorted(sources.items()):
        if key not in known:
            reasons.append(f"{folder} is registered but not a partition yet")
            continue
        path = Path(folder)
        if not path.is_dir():
            reasons.append(f"{folder} is gone (its sorted output is kept)")
            continue
        try:
            current = folder_fingerprint(path, output_exclusions(sorter.options(key)))
        except OSError as exc:
            reasons.append(f"could not check {folder}: {exc} (retried next tick)")
            continue
        if seen.get(key) == current or last_sorted_fingerprint(store, key) == current:
            cursor[key] = current
            continue
        runs.append(dg.RunRequest(partition_key=key, run_key=f"{key}:{current}", tags={"trigger": "sensor"}))
        cursor[key] = current
    for reason in reasons:
        context.log.warning(reason)
    skip = None
    if not runs:
        skip = (
            "; ".join(reasons)
            if reasons
            else (
                f"no changes in {len(sources)} source folder(s)"
                if sources
                else "no source folders: register one (register_source job, `neural-sorter sort`) or set watch_roots"
            )
        )
    return dg.SensorResult(
        run_requests=runs,
        skip_reason=skip,
        dynamic_partitions_requests=[source_dirs.build_add_request(new_keys)] if new_keys else [],
        cursor=json.dumps(cursor, sort_keys=True),
    )


def last_sorted_fingerprint(store, key: str) -> str | None:
    """The fingerprint of the files the partition's last ``file_manifest`` saw (None before its first sort)."""
    try:
        table = store.read(FILE_MANIFEST, key, columns=["relative_path", "size", "mtime_ns"])
    except Exception:  # an unreadable table only means: sort it again
        return None
    if table is None:
        return None
    table = table.dropna(subset=["size", "mtime_ns"])
    return fingerprint(zip(table["relative_path"], table["size"], table["mtime_ns"]))


@dg.schedule(
    job=sort_source_job,
    cron_schedule=schedule_cron(),
    default_status=dg.DefaultScheduleStatus.RUNNING if automation_on() else dg.DefaultScheduleStatus.STOPPED,
    description="Re-sorts every registered source (incremental: unchanged files cost almost nothing).",
)
def resort_schedule(context: dg.ScheduleEvaluationContext):
    keys = context.instance.get_dynamic_partitions(source_dirs.name)
    if not keys:
        return dg.SkipReason("no registered sources")
    stamp = context.scheduled_execution_time.isoformat()
    return [dg.RunRequest(partition_key=key, run_key=f"{stamp}:{key}", tags={"trigger": "schedule"}) for key in keys]
