"""The Celery and Kubernetes jobs without services: their run config, the queues, the guards, the GPU pod."""

from __future__ import annotations

import subprocess
import sys
import time

import dagster as dg
import pytest

from neural_sorter import settings
from neural_sorter.defs import distributed


@pytest.fixture(scope="module")
def celery_job():
    from neural_sorter.definitions import defs

    return defs.resolve_job_def(distributed.JOB_NAME)


def test_celery_job_has_the_same_steps_as_the_in_process_one(celery_job):
    from neural_sorter.definitions import defs

    in_process = defs.resolve_job_def("sort_source")
    assert celery_job.executor_def.name == "celery"
    assert {n.name for n in celery_job.nodes} == {n.name for n in in_process.nodes}


def test_definitions_load_without_importing_the_distributed_extra():
    probe = (
        "import sys, neural_sorter.definitions as d; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('dagster_celery', 'dagster_postgres', 'dagster_aws', 'dagster_k8s', 'celery', 'redis', 's3fs')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_run_config_carries_store_output_and_every_option(celery_job):
    config = settings.SorterConfig(seed=7, method="kmeans", k=3, embedding_queue="gpu", files_queue="nas")
    run_config = distributed.celery_run_config(config, "s3://bucket/store", "/shared/out")
    dg.validate_run_config(celery_job, run_config)
    sorter = run_config["resources"]["sorter"]["config"]
    assert sorter["store"] == "s3://bucket/store" and sorter["output_dir"] == "/shared/out" and sorter["seed"] == 7
    assert "config_file" not in sorter  # a path on the launching machine means nothing on a worker
    assert run_config["ops"]["clusters"]["config"]["k"] == "3"
    assert run_config["ops"]["trained_autoencoder"]["config"]["epochs"] == config.autoencoder.epochs
    execution = run_config["execution"]["config"]
    assert execution["step_queues"] == {
        "embeddings": "gpu",
        "file_manifest": "nas",
        "decoded_frames": "nas",
        "reorganized_tree": "nas",
    }
    assert execution["default_queue"] == "dagster"


def test_embedding_queue_defaults_to_the_ordinary_queue():
    assert distributed.step_queues(settings.SorterConfig()) == {}
    assert distributed.executor_config(settings.SorterConfig())["default_queue"] == "dagster"


def test_queue_tags_are_set_on_every_step(celery_job):
    from dagster._core.execution.api import create_execution_plan

    run_config = distributed.celery_run_config(settings.SorterConfig(embedding_queue="gpu"), "/s", "/o")
    plan = create_execution_plan(celery_job, run_config, tags={"dagster/partition": "k"})
    routed = distributed.with_queue_tags(plan, "dagster", {"embeddings": "gpu"})
    queues = {s.key: s.tags[distributed.QUEUE_TAG] for s in routed.get_all_steps_in_topo_order()}
    assert queues["embeddings"] == "gpu"
    assert set(queues.values()) == {"dagster", "gpu"}


def test_a_run_without_store_or_output_fails_in_one_line():
    with pytest.raises(dg.DagsterInvalidConfigError, match=r"resources\.sorter\.config\.\{store, output_dir\}"):
        distributed.check_run_config({"resources": {"sorter": {"config": {"seed": 1}}}})
    distributed.check_run_config({"resources": {"sorter": {"config": {"store": "s3://b/s", "output_dir": "/o"}}}})


def test_a_worker_without_store_settings_fails_loudly(monkeypatch):
    from neural_sorter.defs.resources import SorterResource

    monkeypatch.setenv(settings.WORKER_ENV, "1")
    monkeypatch.setenv("NEURAL_SORTER_STORE", "/somewhere/local")  # a worker's own setting is never used
    monkeypatch.setenv("NEURAL_SORTER_CONFIG", "/somewhere/config.yaml")
    with pytest.raises(settings.ConfigError, match="without a store root"):
        SorterResource().store_root()
    assert settings.config_path() is None
    assert str(SorterResource(store="s3://bucket/store").store_root().root) == "s3://bucket/store"


def test_unknown_executor_is_a_cli_error():
    done = subprocess.run(
        [sys.executable, "-m", "neural_sorter.cli", "sort", ".", "--executor", "dask"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "invalid choice: 'dask'" in done.stderr


class _Pending:
    def __init__(self):
        self.revoked = False

    def ready(self):
        return False

    def revoke(self, *a, **k):
        self.revoked = True


class _Consumers:
    def __init__(self, queues):
        self.queues, self.asked = queues, 0

    def serves(self, queue):
        self.asked += 1
        return queue in self.queues


def test_a_step_in_an_unserved_queue_errors_after_the_timeout():
    pending = _Pending()
    watched = distributed.WatchedResult(pending, _Consumers({"dagster"}), "gpu", "embeddings", timeout=0.2)
    assert not watched.ready()
    time.sleep(0.3)
    assert watched.ready() and pending.revoked
    with pytest.raises(distributed.QueueUnservedError, match="no Celery worker serves queue 'gpu'"):
        watched.get()


def test_a_busy_but_served_queue_keeps_waiting():
    consumers = _Consumers({"gpu"})
    watched = distributed.WatchedResult(_Pending(), consumers, "gpu", "embeddings", timeout=0.1)
    time.sleep(0.2)
    assert not watched.ready() and consumers.asked == 1


# --- Kubernetes ----------------------------------------------------------------------------------------------
def test_embedding_step_job_renders_with_a_gpu_and_validates_against_the_kubernetes_schema():
    pytest.importorskip("dagster_k8s", reason="needs neural-sorter[k8s]")
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    from dagster_k8s.job import DagsterK8sJobConfig, UserDefinedDagsterK8sConfig, construct_dagster_k8s_job

    from neural_sorter.defs import kubernetes

    config = settings.SorterConfig(embedding_gpus=2)
    run_config = kubernetes.k8s_run_config(config, "s3://bucket/store", "/shared/out")
    with dg.instance_for_test():  # resolving binds to the live instance: never one an earlier test closed
        job = kubernetes.defs.resolve_job_def(kubernetes.JOB_NAME)
        assert job.executor_def.name == "k8s"
        dg.validate_run_config(job, run_config)
    step_config = run_config["execution"]["config"]["per_step_k8s_config"]["embeddings"]
    assert set(run_config["execution"]["config"]["per_step_k8s_config"]) == {"embeddings"}

    rendered = construct_dagster_k8s_job(
        DagsterK8sJobConfig(
            job_image="registry.example/neural-sorter:1",
            dagster_home="/opt/dagster/dagster_home",
            instance_config_map="dagster-instance",
        ),
        args=["dagster", "api", "execute_step"],
        job_name="dagster-step-embeddings",
        user_defined_k8s_config=UserDefinedDagsterK8sConfig.from_dict(step_config),
        pod_name="dagster-step-embeddings",
        component="step_worker",
    ).to_dict()
    kubernetes_validate.validate(_strip_none(rendered), "1.30", strict=True)
    container = rendered["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    assert rendered["spec"]["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"

    # The same dict as a step tag is valid dagster-k8s/config.
    import json

    from dagster_k8s.job import get_user_defined_k8s_config

    tagged = get_user_defined_k8s_config({kubernetes.K8S_CONFIG_TAG: json.dumps(step_config)})
    assert tagged.container_config["resources"]["limits"]["nvidia.com/gpu"] == "2"


def _strip_none(value):
    """The client's to_dict() keeps unset fields as None; the API server (and the schema) leave them out."""
    if isinstance(value, dict):
        return {_camel(k): _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def test_a_local_store_gets_a_shared_path_note():
    assert "shared mount" in distributed.local_store_note("/home/me/.neural-sorter/store")
    assert distributed.local_store_note("s3://bucket/store") is None
