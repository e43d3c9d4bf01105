"""Runs launched from the UI never stay STARTED either (issue 10, item 6).

The run's orchestrating process tags the run with itself (the executor runs there, not in a step's child
process), the ``stale_run_sensor`` fails the runs whose tagged process is gone, and, end to end, a sort
launched from a real ``dagster dev`` that is SIGKILLed with its whole process group is marked FAILURE by the
restarted ``dagster dev``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from neural_sorter import run_records
from neural_sorter.defs.jobs import in_process_by_default
from neural_sorter.defs.run_worker import STALE_RUN_SENSOR_INTERVAL, stale_run_sensor
from neural_sorter_tests.test_run_records import dead_pid, open_instance, tags_of
from neural_sorter_tests.test_ui_e2e import ROOT, TUXPAINT, UI, copy_images, free_port, wait_for

STARTED = dg.DagsterRunStatus.STARTED


@dg.asset
def where_it_ran() -> dg.MaterializeResult:
    """Records the process the step ran in, to compare with the process the run's tags name."""
    return dg.MaterializeResult(metadata={"pid": os.getpid()})


def probe_job_def() -> dg.JobDefinition:
    """A one-asset job on the project's executor, by import path so the multiprocess executor can rebuild it."""
    job = dg.define_asset_job("probe", selection=[where_it_ran], executor_def=in_process_by_default)
    return dg.Definitions(assets=[where_it_ran], jobs=[job]).resolve_job_def("probe")


def step_pid(instance: dg.DagsterInstance, run_id: str) -> int:
    materialization = next(
        record.event_log_entry.asset_materialization
        for record in instance.get_records_for_run(run_id).records
        if record.event_log_entry.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    return int(materialization.metadata["pid"].value)


@pytest.mark.parametrize("execution", ["in_process", "multiprocess"])
def test_the_process_orchestrating_a_run_tags_it(execution):
    """No tags are passed: a UI run is created without them. This test's process orchestrates the run (as a
    run worker does); with the multiprocess executor the step runs in a child, which the tags must not name."""
    with dg.instance_for_test() as instance:
        result = dg.execute_job(
            dg.reconstructable(probe_job_def),
            instance=instance,
            run_config={"execution": {"config": {execution: {}}}},
        )
        assert result.success
        tags = instance.get_run_by_id(result.run_id).tags
        assert {key: tags.get(key) for key in run_records.process_tags()} == run_records.process_tags()
        assert tags[run_records.PID_TAG] == str(os.getpid())
        if execution == "multiprocess":
            assert step_pid(instance, result.run_id) != os.getpid()
        else:
            assert step_pid(instance, result.run_id) == os.getpid()
        # A run already tagged with this process (the CLI's) is not written again.
        assert run_records.tag_run(instance, result.run_id) is False


def test_stale_run_sensor_fails_runs_whose_process_is_gone():
    with dg.instance_for_test() as instance, subprocess.Popen(["sleep", "60"]) as alive:
        try:
            runs = {
                "dead": create_run_for_test(instance, status=STARTED, tags=tags_of(dead_pid(), "x:1")),
                "alive": create_run_for_test(instance, status=STARTED, tags=tags_of(alive.pid)),
                "untagged": create_run_for_test(instance, status=STARTED),  # not yet tagged by its worker
            }
            result = stale_run_sensor(dg.build_sensor_context(instance=instance))
            assert isinstance(result, dg.SkipReason) and runs["dead"].run_id in result.skip_message
            status = {name: instance.get_run_by_id(run.run_id).status for name, run in runs.items()}
            assert status == {"dead": dg.DagsterRunStatus.FAILURE, "alive": STARTED, "untagged": STARTED}
            failure = [
                record.event_log_entry.message
                for record in instance.get_records_for_run(runs["dead"].run_id).records
                if record.event_log_entry.dagster_event_type == dg.DagsterEventType.RUN_FAILURE
            ]
            assert len(failure) == 1 and "is gone" in failure[0] and "stale_run_sensor" in failure[0]
            again = stale_run_sensor(dg.build_sensor_context(instance=instance))
            assert "no unfinished run" in again.skip_message
        finally:
            alive.kill()


def test_stale_run_sensor_is_on_by_default_once_a_minute():
    from neural_sorter.definitions import defs

    sensor = defs.resolve_sensor_def("stale_run_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == STALE_RUN_SENSOR_INTERVAL == 60


# --- end to end: a real dagster dev, killed mid-run, restarted ------------------------------------------------


def start_dagster_dev(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """``make ui`` (the launcher) in a session of its own, so the whole process group can be killed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "neural_sorter.launcher", "ui", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ui = UI(f"http://127.0.0.1:{port}")
    wait_for("the code location to load", lambda: process.poll() is not None or ui.location_loaded(), 180)
    assert process.poll() is None, log.read_text()[-3000:]
    return process


def kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_ui_run_killed_with_dagster_dev_is_failed_by_the_restarted_one(tmp_path):
    if not TUXPAINT.is_dir():
        pytest.skip(f"real-image data set not found at {TUXPAINT}")
    home = tmp_path / "home"
    config = tmp_path / "neural-sorter.yaml"
    config.write_text("backend: cnn\n")
    env = {
        **os.environ,
        "NEURAL_SORTER_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "NEURAL_SORTER_CONFIG": str(config),
        "HF_HUB_OFFLINE": "1",
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    for name in ("NEURAL_SORTER_STORE", "NEURAL_SORTER_AUTOMATION"):
        env.pop(name, None)
    port = free_port()
    ui = UI(f"http://127.0.0.1:{port}")
    log = tmp_path / "dagster-dev.log"
    photos = tmp_path / "photos"
    copy_images(photos, ["birds", "fish", "fruit", "vehicles", "flowers", "insects"], 6)
    first = start_dagster_dev(env, port, log)
    second = None
    try:
        register = ui.launch("register_source", {"ops": {"register_source_folder": {"config": {"path": str(photos)}}}})
        ui.wait_run(register, 120)

        def tagged_sort():
            for run in ui.runs():
                tags = {t["key"]: t["value"] for t in run["tags"]}
                if run["jobName"] == "sort_source" and run["status"] == "STARTED" and run_records.PID_TAG in tags:
                    return run["runId"], tags
                assert run["status"] not in ("SUCCESS", "FAILURE") or run["jobName"] != "sort_source", run
            return None

        run_id, tags = wait_for("the sort to be STARTED and tagged by its run worker", tagged_sort, 240, every=0.3)
        worker = int(tags[run_records.PID_TAG])
        assert tags[run_records.HOST_TAG] == socket.gethostname()
        assert tags[run_records.PROCESS_START_TAG] == run_records.process_start(worker)  # the live run worker
        assert worker != first.pid and os.getsid(worker) == first.pid  # a process of this dagster dev
        kill_group(first)
        wait_for("the run worker to be gone", lambda: run_records.process_start(worker) is None, 30, every=0.2)
        with open_instance(home) as instance:  # what the kill leaves behind: nothing recorded the run's end
            assert instance.get_run_by_id(run_id).status == STARTED

        second = start_dagster_dev(env, port, log)
        restarted = time.monotonic()
        wait_for(
            "the restarted dagster dev to fail the orphaned run",
            lambda: ui.run_status(run_id) == "FAILURE",
            STALE_RUN_SENSOR_INTERVAL * 3,
        )
        print(f"\norphaned run failed {time.monotonic() - restarted:.0f} s after the restarted UI loaded")
        errors = ui.run_errors(run_id)
        assert any("is gone" in e and f"pid {worker}" in e and "stale_run_sensor" in e for e in errors), errors
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=30)
            if process is not None:
                kill_group(process)
