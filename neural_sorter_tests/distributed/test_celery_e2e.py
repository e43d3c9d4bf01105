"""The pipeline past one machine, for real: Redis, PostgreSQL and an S3 endpoint started by the test on
127.0.0.1, two `neural-sorter worker` processes (the ordinary queue, and a `gpu` queue for the embedding step),
`neural-sorter sort --executor celery` on two real tuxpaint8 folders with the store on s3:// and the instance on
Postgres. Every process the test starts is stopped by its PID, also when something fails."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("dagster_celery", reason="needs neural-sorter[distributed]")
pytest.importorskip("dagster_postgres", reason="needs neural-sorter[distributed]")
pytest.importorskip("moto", reason="needs moto[server] (dev extra)")

from neural_sorter_tests.distributed.services import Services, Unavailable, ensure_debian_packages

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
DAGSTER_YAML = ROOT / "docs" / "scaling-out" / "dagster.yaml"
CLI = [str(Path(sys.executable).parent / "neural-sorter")]
BUCKET = "neural-sorter"
FOLDERS = {"animals": ("birds", "fish"), "things": ("fruit", "vehicles")}
PER_CLASS = 3
GPU_WORKER = "gpu1"
CPU_WORKER = "cpu1"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, tuxpaint_dir):
    """Services + two workers; yields (env, services); everything stopped by PID afterwards."""
    try:
        ensure_debian_packages()
    except Unavailable as exc:
        pytest.skip(str(exc))
    services = Services()
    try:
        try:
            redis = services.start_redis()
            services.start_postgres()
            services.start_s3(BUCKET)
        except Unavailable as exc:
            pytest.skip(str(exc))
        work = tmp_path_factory.mktemp("distributed")
        (work / "dagster").mkdir()
        shutil.copy(DAGSTER_YAML, work / "dagster" / "dagster.yaml")
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEURAL_SORTER_")}
        env |= services.env | {
            "DAGSTER_HOME": str(work / "dagster"),
            "NEURAL_SORTER_HOME": str(work / "home"),
            "HF_HUB_OFFLINE": "1",
            "NEURAL_SORTER_CELERY_BROKER": f"{redis}/0",
            "NEURAL_SORTER_CELERY_BACKEND": f"{redis}/1",
        }
        broker = ["--celery-broker", f"{redis}/0", "--celery-backend", f"{redis}/1"]
        # The workers get no store and no config: whatever they need must come with each run.
        for name, queue in ((CPU_WORKER, "dagster"), (GPU_WORKER, "gpu")):
            services.spawn([*CLI, "worker", "--queue", queue, "--name", name, *broker], name, env=env)
        deadline = time.monotonic() + 90
        while not all(" ready." in services.log(n) for n in (CPU_WORKER, GPU_WORKER)):
            for proc in services.processes[-2:]:
                assert proc.poll() is None, f"a worker exited: {services.log(CPU_WORKER)}{services.log(GPU_WORKER)}"
            assert time.monotonic() < deadline, "workers not ready after 90s"
            time.sleep(0.5)
        env |= {"NEURAL_SORTER_STORE": f"s3://{BUCKET}/store"}
        yield env, services, broker, work
    finally:
        services.stop()


@pytest.fixture(scope="module")
def sources(tmp_path_factory, tuxpaint_dir) -> list[Path]:
    root = tmp_path_factory.mktemp("sources")
    folders = []
    for folder, classes in FOLDERS.items():
        for cls in classes:
            (root / folder / cls).mkdir(parents=True)
            for f in sorted((tuxpaint_dir / cls).glob("*.png"))[:PER_CLASS]:
                shutil.copy2(f, root / folder / cls / f.name)
        folders.append(root / folder)
    return folders


def sort(env, args, timeout=240) -> tuple[subprocess.CompletedProcess, list[dict]]:
    done = subprocess.run(
        [*CLI, "sort", *args, "--backend", "cnn", "--method", "kmeans", "--k", "2", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done, summaries


def tree(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "neural-sorter" not in str(p)
    )


def test_sort_on_celery_workers_postgres_and_s3(cluster, sources, tmp_path):
    env, services, broker, _work = cluster
    out = tmp_path / "OUT"
    started = time.monotonic()
    done, summaries = sort(
        env, [*map(str, sources), "--out", str(out), "--executor", "celery", "--embedding-queue", "gpu", *broker]
    )
    cold = time.monotonic() - started
    assert done.returncode == 0, (
        done.stderr[-3000:] + services.log(CPU_WORKER)[-3000:] + services.log(GPU_WORKER)[-3000:]
    )
    assert len(summaries) == 2
    for name in (CPU_WORKER, GPU_WORKER):
        tasks = re.findall(r"succeeded in ([\d.]+)s: \['.*?Executing steps (\S+) in celery worker", services.log(name))
        print(name, [f"{step} {float(seconds):.1f}s" for seconds, step in tasks])
    print(f"\ncelery cold sort of {len(sources)} folders ({len(sources) * 2 * PER_CLASS} images): {cold:.1f}s")

    # The files landed in OUT.
    for summary in summaries:
        assert summary["files"] == summary["decoded"] == 2 * PER_CLASS
        assert summary["embedded_new"] == 2 * PER_CLASS and summary["backend"] == "cnn"
        placed = [p for p in tree(Path(summary["output"])) if p.endswith(".png")]
        assert len(placed) == 2 * PER_CLASS

    # The store is in the bucket, the step logs too.
    import s3fs

    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"]})
    for summary in summaries:
        for asset in ("file_manifest", "decoded_frames", "embeddings", "clusters", "reorganized_tree"):
            assert fs.exists(f"{BUCKET}/store/{asset}/{summary['partition']}.parquet"), asset
    assert fs.exists(f"{BUCKET}/store/sources.json")
    logs = fs.find(f"{BUCKET}/compute-logs")
    assert logs, "no compute logs in the bucket"

    # The runs are recorded in Postgres, and every step ran on a worker; embeddings on the gpu one.
    import psycopg2

    with (
        psycopg2.connect(
            host="127.0.0.1", port=int(env["DAGSTER_PG_PORT"]), user="postgres", dbname="postgres"
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("select run_id, pipeline_name, status from runs")
        runs = {row[0]: row[1:] for row in cur.fetchall()}
        for summary in summaries:
            assert runs[summary["run_id"]] == ("sort_source_celery", "SUCCESS")
            # Tagged with the CLI process that orchestrated it, so a killed one is failed later (issue 10 item 6).
            cur.execute("select key, value from run_tags where run_id = %s", (summary["run_id"],))
            tags = dict(cur.fetchall())
            assert tags.get("neural-sorter/host") == socket.gethostname(), tags
            assert tags.get("neural-sorter/pid", "").isdigit(), tags
            boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
            assert tags.get("neural-sorter/process-start", "").startswith(boot + ":"), tags
        cur.execute(
            "select event from event_logs where run_id = %s and dagster_event_type = 'ENGINE_EVENT'",
            (summaries[0]["run_id"],),
        )
        engine = [json.loads(row[0]) for row in cur.fetchall()]
        cur.execute(
            "select distinct step_key from event_logs where run_id = %s and dagster_event_type = 'STEP_SUCCESS'",
            (summaries[0]["run_id"],),
        )
        succeeded = {row[0] for row in cur.fetchall()}
    ran_on = {}
    for record in engine:
        text = json.dumps(record)
        if "Executing steps " in text and "in celery worker" in text:
            ran_on[record.get("step_key") or record["dagster_event"]["step_key"]] = text
    assert succeeded and succeeded <= set(ran_on), (succeeded, set(ran_on))
    for step, data in ran_on.items():
        expected = GPU_WORKER if step == "embeddings" else CPU_WORKER
        assert f"{expected}@{socket.gethostname()}" in data, (step, data)

    # Same clusters and placements as an in-process run of the same folders.
    local_env = env | {"NEURAL_SORTER_STORE": str(tmp_path / "local-store")}
    out2 = tmp_path / "OUT-local"
    started = time.monotonic()
    done2, local = sort(local_env, [*map(str, sources), "--out", str(out2)])
    print(f"in-process sort of the same folders: {time.monotonic() - started:.1f}s")
    assert done2.returncode == 0, done2.stderr[-2000:]
    for remote, here in zip(summaries, local):
        assert remote["clusters"] == here["clusters"]
        assert tree(Path(remote["output"])) == tree(Path(here["output"]))

    # A re-sort embeds nothing new (one folder: the other would show the same, at twice the time).
    started = time.monotonic()
    done3, again = sort(
        env, [str(sources[0]), "--out", str(out), "--executor", "celery", "--embedding-queue", "gpu", *broker]
    )
    warm = time.monotonic() - started
    assert done3.returncode == 0, done3.stderr[-2000:]
    print(f"celery re-sort of one folder: {warm:.1f}s")
    assert len(again) == 1
    for summary in again:
        assert summary["embedded_new"] == 0 and summary["embedded_reused"] == 2 * PER_CLASS


def test_unserved_queue_fails_the_run_in_bounded_time(cluster, sources, tmp_path):
    env, _services, broker, _ = cluster
    started = time.monotonic()
    done, _ = sort(
        env,
        [
            str(sources[0]),
            "--out",
            str(tmp_path / "OUT"),
            "--executor",
            "celery",
            "--embedding-queue",
            "nobody-serves-this",
            "--queue-timeout",
            "3",
            *broker,
        ],
    )
    assert done.returncode == 1
    assert "no Celery worker serves queue 'nobody-serves-this'" in done.stderr, done.stderr[-2000:]
    waited = time.monotonic() - started
    print(f"\nunserved queue reported after {waited:.1f}s (queue_timeout 3s)")
    assert waited < 120
