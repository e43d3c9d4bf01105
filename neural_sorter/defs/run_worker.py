"""Runs launched from the UI never stay ``STARTED`` either (issue 10, item 6).

``dagster dev`` launches each run in a run-worker process of its own. If ``dagster dev`` is killed while a run
is going (SIGKILL, the OOM killer, a closed terminal's process group), the worker dies with it and nothing
ever records the run's end: the restarted UI shows it running for good, and the daemon's run monitoring
cannot check the worker of a run the default launcher started. Two pieces close that gap:

- ``ProcessTaggingExecutor`` wraps the job's executor. Dagster creates and runs the executor in the process
  that orchestrates the run (the run worker, or the CLI's own process), never in a step's child process, so
  its ``execute`` is the one run-level place that knows both the run and the right process: it tags the run
  with that process (``run_records.tag_run``) before the first step starts.
- ``stale_run_sensor`` (on by default, evaluated by the daemon at most once a minute) fails the unfinished
  runs of this host whose tagged process is gone (``run_records.fail_orphaned_runs``), so a restarted
  ``dagster dev`` heals the runs the killed one orphaned. It requests no runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from neural_sorter import run_records

STALE_RUN_SENSOR_INTERVAL = 60  # seconds: one indexed run query a minute is all it costs


class ProcessTaggingExecutor(dg.Executor):
    """Any executor, plus the run's process tags written by the process that orchestrates it."""

    def __init__(self, inner: dg.Executor) -> None:
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def __getattr__(self, name: str):
        # Anything else an executor offers (e.g. the Celery executor's app_args) is the wrapped one's.
        return getattr(self._inner, name)

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        try:
            run_records.tag_run(plan_context.instance, plan_context.run_id)
        except Exception as exc:  # bookkeeping must not fail the sort itself; say what is lost instead
            plan_context.log.warning(
                f"could not tag run {plan_context.run_id} with its process ({exc!r}): if this process is killed, "
                "the run will stay STARTED until it is marked failed by hand"
            )
        yield from self._inner.execute(plan_context, execution_plan)


@dg.sensor(
    minimum_interval_seconds=STALE_RUN_SENSOR_INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks failed the runs of this machine whose process was killed (e.g. with dagster dev) before "
    "it could record their end, so none stays STARTED forever. Requests no runs.",
)
def stale_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    failed = run_records.fail_orphaned_runs(context.instance, by="the stale_run_sensor")
    for run_id in failed:
        context.log.warning(f"run {run_id} was left STARTED by a process that is gone: marked failed")
    if failed:
        return dg.SkipReason(f"marked {len(failed)} run(s) failed whose process is gone: {', '.join(failed)}")
    return dg.SkipReason("no unfinished run of this machine has lost its process")
