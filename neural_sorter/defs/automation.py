"""``source_directory_sensor`` and ``resort_schedule``: sorted folders stay sorted by themselves.

Whether they start switched on and the schedule's cron come from the environment
(``NEURAL_SORTER_AUTOMATION``, ``NEURAL_SORTER_SCHEDULE_CRON``; the launcher sets both from the config file),
because definitions must load without reading YAML.
"""


import json
import os
from pathlib import Path

import dagster as dg

from neural_sorter.defs.jobs import sort_source_job
from neural_sorter.defs.partitions import source_dirs
from neural_sorter.defs.resources import SorterResource
from neural_sorter.settings import SourceOptions
from neural_sorter.sources import partition_key_for
from neural_sorter.watching import folder_fingerprint, output_exclusions, watched_subfolders

AUTOMATION_ENV = "NEURAL_SORTER_AUTOMATION"
CRON_ENV = "NEURAL_SORTER_SCHEDULE_CRON"


def automation_on() -> bool:
    return os.environ.get(AUTOMATION_ENV, "").lower() in ("1", "true", "yes", "on")


def schedule_cron() -> str:
    return os.environ.get(CRON_ENV) or SourceOptions.model_fields["schedule_cron"].default


@dg.sensor(
    job=sort_source_job,
    minimum_interval_seconds=60,
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

    new_keys = []
    for root in options.watch_roots:
        for folder in watched_subfolders(Path(root), output_exclusions(options)):
            key = partition_key_for(folder)
            if key not in known:
                registry.add(folder)
                new_keys.append(key)
                known.add(key)
    sources = dict(registry.entries())
    for source in options.sources:
        sources.setdefault(partition_key_for(source), source)

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
            fingerprint = folder_fingerprint(path, output_exclusions(sorter.options(key)))
        except OSError as exc:
            reasons.append(f"could not check {folder}: {exc} (retried next tick)")
            continue
        if seen.get(key) == fingerprint:
            continue
        runs.append(dg.RunRequest(partition_key=key, run_key=f"{key}:{fingerprint}", tags={"trigger": "sensor"}))
        cursor[key] = fingerprint
    for reason in reasons:
        context.log.warning(reason)
    skip = None
    if not runs:
        skip = "; ".join(reasons) if reasons else (
            f"no changes in {len(sources)} source folder(s)" if sources else
            "no source folders: register one (register_source job, `neural-sorter sort`) or set watch_roots"
        )
    return dg.SensorResult(
        run_requests=runs,
        skip_reason=skip,
        dynamic_partitions_requests=[source_dirs.build_add_request(new_keys)] if new_keys else [],
        cursor=json.dumps(cursor, sort_keys=True),
    )


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
