"""Kubernetes: the code location the Helm chart's user-code deployment loads (``-m neural_sorter.defs.kubernetes``).

Everything in ``neural_sorter.definitions`` plus ``sort_source_k8s``: the same assets with ``k8s_job_executor``,
one pod per step; the embeddings step's pod requests GPUs through ``per_step_k8s_config`` (the executor-config
form of a ``dagster-k8s/config`` step tag). Needs ``neural-sorter[k8s]``; nothing else imports this module.
README "Scaling out" and docs/scaling-out/ have the Helm values.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_k8s import k8s_job_executor

from neural_sorter import settings
from neural_sorter.definitions import defs as base_defs
from neural_sorter.defs.jobs import release_memory_after_failed_step, release_memory_after_step, sort_source_job
from neural_sorter.defs.partitions import source_dirs
from neural_sorter.tables import EMBEDDINGS

JOB_NAME = "sort_source_k8s"
K8S_CONFIG_TAG = "dagster-k8s/config"
GPU_RESOURCE = "nvidia.com/gpu"


def embedding_step_k8s_config(gpus: int) -> dict[str, Any]:
    """The embeddings step's pod: ``gpus`` GPUs (a limit is what the device plugin schedules on), tolerating
    the usual GPU-node taint. The same dict works as the JSON value of a ``dagster-k8s/config`` tag."""
    if gpus <= 0:
        return {}
    return {
        "container_config": {"resources": {"limits": {GPU_RESOURCE: str(gpus)}}},
        "pod_spec_config": {"tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]},
    }


def per_step_k8s_config(options: settings.ExecutorOptions) -> dict[str, dict[str, Any]]:
    config = embedding_step_k8s_config(options.embedding_gpus)
    return {EMBEDDINGS: config} if config else {}


def k8s_run_config(config: settings.SorterConfig, store: str, output_dir: str, **kwargs: Any) -> dict[str, Any]:
    """A ``sort_source_k8s`` run config: like a Celery run's (store, OUT and every option inside), with the
    executor's per-step pod config instead of Celery's queues."""
    from neural_sorter.defs.distributed import celery_run_config

    run_config = celery_run_config(config, store, output_dir, **kwargs)
    run_config["execution"] = {"config": {"per_step_k8s_config": per_step_k8s_config(config)}}
    return run_config


sort_source_k8s_job = dg.define_asset_job(
    JOB_NAME,
    selection=sort_source_job.selection,
    partitions_def=source_dirs,
    executor_def=k8s_job_executor,
    description="sort_source with one Kubernetes pod per step; embeddings on a GPU (README 'Scaling out').",
    hooks={release_memory_after_step, release_memory_after_failed_step},
)

defs = dg.Definitions.merge(base_defs, dg.Definitions(jobs=[sort_source_k8s_job]))
