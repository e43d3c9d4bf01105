"""A killed CLI run never stays STARTED (issue 10, item 6): the next CLI start marks it failed, and a run
whose process still lives is never touched."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.test_utils import create_run_for_test

from neural_sorter import run_records
from neural_sorter_tests.viewer_store import copy_images, tuxpaint_available

CLI = str(Path(sys.executable).with_name("neural-sorter"))
UNFINISHED = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def tags_of(pid: int, start: str | None = None) -> dict[str, str]:
    return {
        run_records.HOST_TAG: socket.gethostname(),
        run_records.PID_TAG: str(pid),
        run_records.PROCESS_START_TAG: start or run_records.process_start(pid) or "gone",
    }


def test_process_start_names_one_process():
    me = run_records.process_start(os.getpid())
    assert me and me == run_records.process_start(os.getpid())
    assert run_records.process_start(dead_pid()) is None
    assert run_records.process_tags()[run_records.PID_TAG] == str(os.getpid())


def test_only_runs_whose_process_is_gone_are_failed():
    with dg.instance_for_test() as instance, subprocess.Popen(["sleep", "60"]) as alive:
        try:
            started = dg.DagsterRunStatus.STARTED
            runs = {
                "dead": create_run_for_test(instance, status=started, tags=tags_of(dead_pid(), "x:1")),
                # our pid, but started at another time: the pid was reused, the run's process is gone
                "reused": create_run_for_test(instance, status=started, tags=tags_of(os.getpid(), "x:1")),
                "alive": create_run_for_test(instance, status=started, tags=tags_of(alive.pid)),
                "me": create_run_for_test(instance, status=started, tags=run_records.process_tags()),
                "other-host": create_run_for_test(
                    instance, status=started, tags=tags_of(dead_pid(), "x:1") | {run_records.HOST_TAG: "elsewhere"}
                ),
                "untagged": create_run_for_test(instance, status=started),  # dagster dev's: not ours to judge
                "done": create_run_for_test(
                    instance, status=dg.DagsterRunStatus.SUCCESS, tags=tags_of(dead_pid(), "x:1")
                ),
            }
            failed = run_records.fail_orphaned_runs(instance)
            status = {name: instance.get_run_by_id(run.run_id).status for name, run in runs.items()}
            assert sorted(failed) == sorted([runs["dead"].run_id, runs["reused"].run_id])
            assert status == {
                "dead": dg.DagsterRunStatus.FAILURE,
                "reused": dg.DagsterRunStatus.FAILURE,
                "alive": started,
                "me": started,
                "other-host": started,
                "untagged": started,
                "done": dg.DagsterRunStatus.SUCCESS,
            }
            assert run_records.fail_orphaned_runs(instance) == []  # nothing left to fail
        finally:
            alive.kill()


def cli(*args: str, home: Path) -> subprocess.Popen:
    env = {**os.environ, "NEURAL_SORTER_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    for name in ("DAGSTER_HOME", "NEURAL_SORTER_STORE", "NEURAL_SORTER_CONFIG"):
        env.pop(name, None)
    return subprocess.Popen([CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def open_instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home / "dagster")))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_sigkilled_sort_is_marked_failed_by_the_next_cli_sort(tmp_path):
    if not tuxpaint_available():
        pytest.skip("real-image data set ../shared/datasets/tuxpaint8 not found")
    home = tmp_path / "home"
    src = copy_images(tmp_path / "photos", 36)
    sort = ("sort", str(src), "--out", str(tmp_path / "OUT"), "--backend", "cnn", "--projection", "pca")
    victim = cli(*sort, home=home)
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and time.monotonic() < deadline and victim.poll() is None:
        time.sleep(0.2)
        if not (home / "dagster" / "dagster.yaml").exists():
            continue
        with open_instance(home) as instance:
            running = instance.get_runs(filters=dg.RunsFilter(statuses=list(UNFINISHED)))
            if running:
                victim.send_signal(signal.SIGKILL)
                killed = running[0].run_id
    victim.communicate(timeout=60)
    if killed is None:
        pytest.fail(f"no STARTED run seen before the sort ended (exit {victim.returncode})")
    assert victim.returncode == -signal.SIGKILL
    with open_instance(home) as instance, subprocess.Popen(["sleep", "120"]) as alive:
        try:
            assert instance.get_run_by_id(killed).status in UNFINISHED  # what a kill leaves behind
            # A run of another sort still going (a live process's tags): the next start must leave it alone.
            other = create_run_for_test(instance, status=dg.DagsterRunStatus.STARTED, tags=tags_of(alive.pid))

            again = cli(*sort, home=home)
            _, stderr = again.communicate(timeout=600)
            assert again.returncode == 0, stderr[-3000:]
            notes = [line for line in stderr.splitlines() if "stale" in line]
            assert len(notes) == 1 and "1 stale run" in notes[0], stderr[-3000:]
            run = instance.get_run_by_id(killed)
            assert run.status == dg.DagsterRunStatus.FAILURE
            failure = [
                record.event_log_entry
                for record in instance.get_records_for_run(killed).records
                if record.event_log_entry.dagster_event_type == dg.DagsterEventType.RUN_FAILURE
            ]
            assert len(failure) == 1 and f"pid {victim.pid} on {socket.gethostname()}" in failure[0].message
            assert "is gone" in failure[0].message
            assert instance.get_run_by_id(other.run_id).status == dg.DagsterRunStatus.STARTED
            latest = instance.get_runs(limit=1)[0]
            assert latest.run_id != killed and latest.status == dg.DagsterRunStatus.SUCCESS
        finally:
            alive.kill()


def test_dagster_yaml_turns_run_monitoring_on_and_leaves_a_users_own_alone(tmp_path, monkeypatch):
    from dagster._daemon.controller import create_daemons_from_instance

    from neural_sorter import settings

    ours, users, older = tmp_path / "ours", tmp_path / "users", tmp_path / "older"
    users.mkdir()
    own = "# mine\ntelemetry:\n  enabled: true\n"
    (users / "dagster.yaml").write_text(own)
    older.mkdir()
    (older / "dagster.yaml").write_text(settings._OLD_INSTANCE_YAMLS[0])  # what earlier versions wrote
    for home in (ours, users, older):
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        settings.prepare_dagster_home()
    assert (users / "dagster.yaml").read_text() == own
    assert (ours / "dagster.yaml").read_text() == (older / "dagster.yaml").read_text() == settings.INSTANCE_YAML
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(ours))) as instance:
        assert instance.run_monitoring_enabled and instance.run_monitoring_start_timeout_seconds == 180
        assert "MonitoringDaemon" in {type(daemon).__name__ for daemon in create_daemons_from_instance(instance)}
