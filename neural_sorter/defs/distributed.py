"""Past one machine: the ``sort_source`` assets as a second, statically defined job whose steps run on Celery
workers (``dagster-celery``), with per-step queues, a bounded wait for a queue nobody serves, the run config
that carries everything a worker needs, and the worker itself.

Nothing of ``neural-sorter[distributed]`` is imported until a Celery run or a worker actually starts, so the
definitions load (and every other job runs) without the extra. README "Scaling out" tells the whole story.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster._core.execution.retries import RetryMode, get_retries_config

from neural_sorter import settings
from neural_sorter.defs.jobs import release_memory_after_failed_step, release_memory_after_step, sort_source_job
from neural_sorter.defs.partitions import source_dirs
from neural_sorter.defs.run_worker import ProcessTaggingExecutor
from neural_sorter.tables import DECODED_FRAMES, EMBEDDINGS, FILE_MANIFEST, REORGANIZED_TREE

JOB_NAME = "sort_source_celery"
QUEUE_TAG = "dagster-celery/queue"  # dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG, without importing it
DEFAULT_QUEUE = "dagster"  # dagster-celery's task_default_queue
EMBEDDING_STEPS = (EMBEDDINGS,)
# Steps that read the source folders or write OUT: they need the folders mounted where they run.
FILE_STEPS = (FILE_MANIFEST, DECODED_FRAMES, REORGANIZED_TREE)
# What a worker must find in the run config: without them it would use its own home's store and folders.
REQUIRED_SORTER_CONFIG = ("store", "output_dir")
INSTALL_HINT = "the celery executor needs the distributed extra: pip install 'neural-sorter[distributed]'"


class QueueUnservedError(RuntimeError):
    """A step waited longer than ``queue_timeout`` in a queue that no live worker consumes."""


def step_queues(options: settings.ExecutorOptions) -> dict[str, str]:
    """Step key -> Celery queue for every step routed away from the ordinary queue."""
    queues = {}
    if options.files_queue:
        queues.update(dict.fromkeys(FILE_STEPS, options.files_queue))
    if options.embedding_queue:
        queues.update(dict.fromkeys(EMBEDDING_STEPS, options.embedding_queue))
    return queues


def executor_config(options: settings.ExecutorOptions) -> dict[str, Any]:
    """The ``execution.config`` of a Celery run, from the settings (broker, backend, queues, timeout)."""
    return {
        "broker": options.celery_broker,
        "backend": options.celery_backend,
        "default_queue": options.celery_queue,
        "step_queues": step_queues(options),
        "queue_timeout": options.queue_timeout,
    }


def worker_config(options: settings.ExecutorOptions) -> dict[str, Any]:
    """What ``dagster-celery worker start -y FILE`` reads: the same broker and backend as the runs."""
    return {"execution": {"config": {"broker": options.celery_broker, "backend": options.celery_backend}}}


# --- the executor: dagster-celery's own loop, with configurable queues and a bounded wait ---------------------
CELERY_CONFIG = {
    "broker": dg.Field(dg.Noneable(dg.StringSource), is_required=False, description="Celery broker URL."),
    "backend": dg.Field(
        dg.Noneable(dg.StringSource), is_required=False, default_value="rpc://", description="Result backend URL."
    ),
    "include": dg.Field([str], is_required=False, description="Modules every worker should import."),
    "config_source": dg.Field(dg.Noneable(dg.Permissive()), is_required=False, description="Celery app settings."),
    "retries": get_retries_config(),
    "default_queue": dg.Field(str, default_value=DEFAULT_QUEUE, description="Queue of every step not routed."),
    "step_queues": dg.Field(
        dg.Map(str, str), default_value={}, description="Step key -> queue, e.g. {embeddings: gpu}."
    ),
    "queue_timeout": dg.Field(
        int, default_value=120, description="Seconds a step may wait before its queue is checked for a worker."
    ),
}


@dg.executor(name="celery", config_schema=CELERY_CONFIG, requirements=dg.multiple_process_executor_requirements())
def routed_celery_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """``dagster_celery.celery_executor`` plus a queue per step from config and a bounded wait per queue."""
    config = dict(init_context.executor_config)
    executor = RoutedCeleryExecutor(
        retries=RetryMode.from_config(config.pop("retries")),
        default_queue=config.pop("default_queue"),
        step_queues=config.pop("step_queues"),
        queue_timeout=config.pop("queue_timeout"),
        **config,
    )
    return ProcessTaggingExecutor(executor)  # the orchestrating process tags the run (defs/run_worker.py)


class RoutedCeleryExecutor(dg.Executor):
    def __init__(
        self,
        retries: RetryMode,
        default_queue: str = DEFAULT_QUEUE,
        step_queues: Mapping[str, str] | None = None,
        queue_timeout: int = 120,
        **celery_args: Any,
    ) -> None:
        try:
            from dagster_celery.executor import CeleryExecutor
        except ImportError as exc:
            raise dg.DagsterInvariantViolationError(f"{INSTALL_HINT} ({exc})") from None
        self._celery = CeleryExecutor(retries=retries, **celery_args)
        self.default_queue = default_queue
        self.step_queues = dict(step_queues or {})
        self.queue_timeout = queue_timeout

    @property
    def retries(self) -> RetryMode:
        return self._celery.retries

    def app_args(self) -> dict[str, Any]:
        return self._celery.app_args()

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        from dagster_celery.core_execution_loop import core_celery_execution_loop

        check_run_config(plan_context.run_config)
        plan = with_queue_tags(execution_plan, self.default_queue, self.step_queues)
        yield from core_celery_execution_loop(plan_context, plan, step_execution_fn=self._submit)

    def _submit(self, app, plan_context, step, queue, priority, known_state):
        import warnings

        from dagster_celery.executor import _submit_task

        with warnings.catch_warnings():  # it registers its task on the same app for every step: harmless
            warnings.filterwarnings("ignore", message="Task name 'execute_plan' is already registered")
            result = _submit_task(app, plan_context, step, queue, priority, known_state)
        return WatchedResult(result, QueueConsumers.for_app(app), queue, step.key, self.queue_timeout)


def check_run_config(run_config: Mapping[str, Any]) -> None:
    """Fails the run in one line when the store root or the output folder is missing: each worker would
    otherwise resolve them on its own machine, splitting the store."""
    sorter = ((run_config.get("resources") or {}).get("sorter") or {}).get("config") or {}
    missing = [name for name in REQUIRED_SORTER_CONFIG if not sorter.get(name)]
    if missing:
        raise dg.DagsterInvalidConfigError(
            f"a Celery run needs resources.sorter.config.{{{', '.join(missing)}}} in its run config (workers never "
            "fall back to their own home); launch it with `neural-sorter sort --executor celery`",
            [],
            run_config,
        )


def with_queue_tags(plan, default_queue: str, queues: Mapping[str, str]):
    """The plan with every step's ``dagster-celery/queue`` tag set, so dagster-celery's loop submits (and its
    engine events name) the configured queue."""
    steps = {}
    for handle, step in plan.step_dict.items():
        queue = queues.get(step.key) or step.tags.get(QUEUE_TAG) or default_queue
        steps[handle] = step._replace(tags={**step.tags, QUEUE_TAG: queue})
    return plan._replace(step_dict=steps, step_dict_by_key={s.key: s for s in steps.values()})


class QueueConsumers:
    """Which queues live workers consume, asked of the workers through the broker, cached for a few seconds."""

    _by_app: dict[int, QueueConsumers] = {}  # noqa: RUF012

    def __init__(self, app, ttl: float = 5.0) -> None:
        self.app, self.ttl, self._queues, self._at = app, ttl, set(), float("-inf")

    @classmethod
    def for_app(cls, app) -> QueueConsumers:
        return cls._by_app.setdefault(id(app), cls(app))

    def serves(self, queue: str) -> bool:
        if time.monotonic() - self._at > self.ttl:
            replies = self.app.control.inspect(timeout=2.0).active_queues() or {}
            self._queues = {q["name"] for queues in replies.values() for q in queues or []}
            self._at = time.monotonic()
        return queue in self._queues


class WatchedResult:
    """A Celery ``AsyncResult`` for dagster-celery's polling loop that turns 'waiting in a queue no worker
    consumes' into an error once ``timeout`` seconds have passed, instead of a run that waits forever."""

    def __init__(self, result, consumers: QueueConsumers, queue: str, step_key: str, timeout: float) -> None:
        self._result, self._consumers, self.queue, self.step_key = result, consumers, queue, step_key
        self.timeout, self._since, self._waited, self._error = timeout, time.monotonic(), 0.0, None

    def ready(self) -> bool:
        if self._error is not None or self._result.ready():
            return True
        waited = time.monotonic() - self._since
        if waited > self.timeout:
            self._waited += waited
            self._since = time.monotonic()
            if not self._consumers.serves(self.queue):
                self._error = (
                    f"no Celery worker serves queue '{self.queue}' (step {self.step_key} waited "
                    f"{self._waited:.0f}s): start one with `neural-sorter worker --queue {self.queue}`"
                )
                self._result.revoke()
                return True
        return False

    def get(self, *args: Any, **kwargs: Any):
        if self._error is not None:
            raise QueueUnservedError(self._error)
        return self._result.get(*args, **kwargs)

    def revoke(self, *args: Any, **kwargs: Any) -> None:
        self._result.revoke(*args, **kwargs)


# --- the job, and its run config ------------------------------------------------------------------------------
sort_source_celery_job = dg.define_asset_job(
    JOB_NAME,
    selection=sort_source_job.selection,
    partitions_def=source_dirs,
    executor_def=routed_celery_executor,
    description="sort_source with each step on a Celery worker (queues per step; README 'Scaling out').",
    hooks={release_memory_after_step, release_memory_after_failed_step},
)


def sort_source_celery_job_def():
    """The Celery job, by import path, so ``dagster.reconstructable`` points every worker at the same code."""
    from neural_sorter.definitions import defs

    return defs.resolve_job_def(JOB_NAME)


def _run_config_value(value: Any) -> Any:
    value = getattr(value, "value", value)
    return list(value) if isinstance(value, tuple) else value


def celery_run_config(
    config: settings.SorterConfig,
    store: str,
    output_dir: str,
    *,
    force: bool = False,
    retrain: bool = False,
    log_level: str = "CRITICAL",
) -> dict[str, Any]:
    """The whole run config of a Celery run: the store root, the output folder and every option that has a
    place in the run config, resolved here (a worker reads neither its environment nor its config file)."""
    from neural_sorter.defs.resources import SorterResource
    from neural_sorter.defs.run_config import ASSET_CONFIGS, sort_run_config

    places = set(SorterResource.model_fields) - {"config_file", "store", "device"}
    for asset, model in ASSET_CONFIGS.items():
        if asset != "trained_autoencoder":
            places |= set(model.model_fields)
    options = config.model_dump()
    values: dict[str, Any] = {k: _run_config_value(options[k]) for k in places if k in options}
    if "k" in values and values["k"] is not None:
        values["k"] = str(values["k"])  # int or "auto": a string in the launchpad
    values |= {"store": store, "output_dir": output_dir, "force": True if force else None}
    autoencoder = {k: _run_config_value(v) for k, v in options["autoencoder"].items()}
    run_config = sort_run_config(values, autoencoder | ({"retrain": True} if retrain else {}))
    run_config["execution"] = {"config": executor_config(config)}
    run_config["loggers"] = {"console": {"config": {"log_level": log_level}}}
    return run_config


def run_failure(result) -> str | None:
    """The one line that says why a run failed when no step failure says it (e.g. an unserved queue)."""
    for event in result.all_events:
        if event.event_type_value == "PIPELINE_FAILURE":
            error = getattr(event.event_specific_data, "error", None)
            text = (error.to_string() if error else event.message or "").strip()
            for line in text.splitlines():
                if "QueueUnservedError" in line or "DagsterInvalidConfigError" in line or "resources.sorter" in line:
                    return line.split("Error: ", 1)[-1].strip()
            return (event.message or "run failed").strip()
    return None


# --- the worker -----------------------------------------------------------------------------------------------
def run_worker(
    options: settings.ExecutorOptions,
    queues: list[str],
    name: str | None = None,
    concurrency: int = 1,
    loglevel: str = "INFO",
    extra_args: list[str] | None = None,
) -> None:
    """Runs a Celery worker for ``queues`` in this process (blocks); its PID is the worker's. It loads the
    project's definitions first, and takes the store and options from each run's config only."""
    import os

    os.environ[settings.WORKER_ENV] = "1"
    try:
        from dagster_celery.executor import CeleryExecutor
        from dagster_celery.make_app import make_app
        from dagster_celery.tasks import create_execute_job_task, create_resume_job_task, create_task
    except ImportError as exc:
        raise SystemExit(f"neural-sorter: error: {INSTALL_HINT} ({exc})") from None
    import neural_sorter.definitions  # noqa: F401  (fail here, not on the first task; warm for every task)

    app = make_app(CeleryExecutor.for_cli(broker=options.celery_broker, backend=options.celery_backend).app_args())
    create_task(app)
    create_execute_job_task(app)
    create_resume_job_task(app)
    argv = ["worker", "--prefetch-multiplier=1", f"--loglevel={loglevel}", f"--concurrency={concurrency}"]
    argv += ["-Q", ",".join(queues), "-n", f"{name or 'neural-sorter-' + '-'.join(queues)}@%h"]
    app.worker_main(argv + list(extra_args or []))


def local_store_note(store: str) -> str | None:
    """A warning when a Celery run's store is a local folder: right only if every worker mounts it there."""
    from neural_sorter.store import Store

    if not Store(store).is_local:
        return None
    return (
        f"the store {store} is a local folder: every Celery worker must see it at this same path (a shared "
        "mount), or set NEURAL_SORTER_STORE to a shared URL such as s3://bucket/prefix"
    )
