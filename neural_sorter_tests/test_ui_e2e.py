"""Issue 11 acceptance: the Dagster UI flow end to end on a real ``dagster dev`` (webserver + daemon).

The test starts ``python -m neural_sorter.launcher ui`` on a free port with its own home, then drives the UI's
own GraphQL API, the way the launchpad and the Automation page do (``launchRun``, ``startSensor``, the
sensor's tick list). The README's "Sorting from the UI" section describes these exact steps:

1. launch ``register_source`` with only ``path`` filled in: the partition is added, ``sort_after_register``
   starts its sort, every asset of the partition materializes and the files land in ``<folder>-sorted``;
2. a folder sorted with the real CLI (``neural-sorter sort``) gets a changed file, a new subfolder appears in
   a watch root, and the folder sensor, switched on, requests a run for exactly those two;
3. the next tick requests nothing and shows why in its skip reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from neural_sorter.sources import default_output_dir, partition_key_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TUXPAINT = ROOT.parent / "shared" / "datasets" / "tuxpaint8"
BIN = Path(sys.executable).parent
LOCATION = "neural_sorter.definitions:defs"
REPOSITORY = "__repository__"
ASSETS = [
    "file_manifest",
    "decoded_frames",
    "clip_model",
    "trained_autoencoder",
    "embeddings",
    "clusters",
    "3d_projection",
    "reorganized_tree",
]
SENSOR_INTERVAL = 5  # seconds between sensor ticks in this test (60 by default)


def copy_images(dest: Path, classes: list[str], per_class: int, skip: int = 0) -> list[Path]:
    copied = []
    for cls in classes:
        for image in sorted((TUXPAINT / cls).glob("*.png"))[skip : skip + per_class]:
            target = dest / cls / image.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(image, target)
            copied.append(target)
    return copied


def placed_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file() and ".neural-sorter" not in p.parts]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, probe: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    """Polls ``probe`` until it returns something truthy; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class UI:
    """The GraphQL endpoint of the Dagster UI: the same calls its pages make."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, text: str, **variables: Any) -> dict[str, Any]:
        body = json.dumps({"query": text, "variables": variables}).encode()
        request = urllib.request.Request(self.url + "/graphql", body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # GraphQL errors come back as 400 with the reason in the body
            answer = json.loads(exc.read() or b"{}") or {"errors": [str(exc)]}
        assert not answer.get("errors"), answer["errors"]
        return answer["data"]

    def job(self, name: str) -> dict[str, str]:
        return {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": name}

    def sensor(self, name: str) -> dict[str, str]:
        return {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": name}

    def location_loaded(self) -> bool:
        with contextlib.suppress(OSError, urllib.error.URLError):
            data = self.query(
                "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
            )
            for entry in data["workspaceOrError"]["locationEntries"]:
                if entry["name"] == LOCATION and entry["loadStatus"] == "LOADED":
                    error = entry["locationOrLoadError"]
                    assert error["__typename"] == "RepositoryLocation", error
                    return True
        return False

    def config_valid(self, job: str, run_config: dict[str, Any]) -> tuple[bool, list[str]]:
        data = self.query(
            'query($p: PipelineSelector!, $c: RunConfigData) { isPipelineConfigValid(pipeline: $p, mode: "default", '
            "runConfigData: $c) { __typename ... on RunConfigValidationInvalid { errors { message } } } }",
            p={"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "pipelineName": job},
            c=run_config,
        )["isPipelineConfigValid"]
        return data["__typename"] == "PipelineConfigValidationValid", [e["message"] for e in data.get("errors", [])]

    def launch(self, job: str, run_config: dict[str, Any]) -> str:
        data = self.query(
            "mutation($e: ExecutionParams!) { launchRun(executionParams: $e) { __typename "
            "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } "
            "... on RunConfigValidationInvalid { errors { message } } } }",
            e={"selector": self.job(job), "runConfigData": run_config, "mode": "default"},
        )["launchRun"]
        assert data["__typename"] == "LaunchRunSuccess", data
        return data["run"]["runId"]

    def runs(self, **tags: str) -> list[dict[str, Any]]:
        data = self.query(
            "query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results { runId jobName status "
            "tags { key value } } } } }",
            f={"tags": [{"key": k.replace("__", "/"), "value": v} for k, v in tags.items()]},
        )
        return data["runsOrError"]["results"]

    def run_status(self, run_id: str) -> str:
        data = self.query("query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", id=run_id)
        return data["runOrError"]["status"]

    def wait_run(self, run_id: str, timeout: float) -> None:
        status = wait_for(
            f"run {run_id}",
            lambda: (s := self.run_status(run_id)) in ("SUCCESS", "FAILURE", "CANCELED") and s,
            timeout,
        )
        assert status == "SUCCESS", f"run {run_id} ended {status}: {self.run_errors(run_id)}"

    def run_errors(self, run_id: str) -> list[str]:
        data = self.query(
            "query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { __typename "
            "... on ExecutionStepFailureEvent { stepKey error { message } } "
            "... on RunFailureEvent { message } } } } }",
            id=run_id,
        )
        return [
            (e.get("stepKey") or "") + ": " + ((e.get("error") or {}).get("message") or e.get("message") or "")
            for e in data["logsForRun"]["events"]
            if e["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent")
        ]

    def materialized_partitions(self, asset: str) -> set[str]:
        data = self.query(
            "query($k: AssetKeyInput!) { assetOrError(assetKey: $k) { ... on Asset { "
            "assetMaterializations(limit: 50) { partition } } } }",
            k={"path": [asset]},
        )
        return {m["partition"] for m in data["assetOrError"].get("assetMaterializations", [])}

    def start_sensor(self, name: str) -> str:
        data = self.query(
            "mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename "
            "... on Sensor { sensorState { status } } ... on PythonError { message } } }",
            s=self.sensor(name),
        )["startSensor"]
        assert data["__typename"] == "Sensor", data
        return data["sensorState"]["status"]

    def ticks(self, name: str) -> list[dict[str, Any]]:
        data = self.query(
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { sensorState { "
            "ticks(limit: 50) { id status timestamp skipReason runIds error { message } } } } } }",
            s=self.sensor(name),
        )
        return sorted(data["sensorOrError"]["sensorState"]["ticks"], key=lambda t: t["timestamp"])


@pytest.fixture
def dagster_dev(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """``make ui`` (the launcher) on a free port with its own home; stopped by PID at the end."""
    if not TUXPAINT.is_dir():
        pytest.skip(f"real-image data set not found at {TUXPAINT}")
    home = tmp_path / "home"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = tmp_path / "neural-sorter.yaml"
    config.write_text(f"backend: cnn\nwatch_roots: [{inbox}]\n")
    env = {
        **os.environ,
        "NEURAL_SORTER_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "NEURAL_SORTER_CONFIG": str(config),
        "NEURAL_SORTER_SENSOR_INTERVAL": str(SENSOR_INTERVAL),
        "HF_HUB_OFFLINE": "1",
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    env.pop("NEURAL_SORTER_STORE", None)
    env.pop("NEURAL_SORTER_AUTOMATION", None)
    port = free_port()
    log = (tmp_path / "dagster-dev.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "neural_sorter.launcher", "ui", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ui = UI(f"http://127.0.0.1:{port}")
    try:
        wait_for("the code location to load", lambda: process.poll() is not None or ui.location_loaded(), 90)
        assert process.poll() is None, (tmp_path / "dagster-dev.log").read_text()[-3000:]
        yield {"ui": ui, "env": env, "inbox": inbox, "tmp": tmp_path, "log": tmp_path / "dagster-dev.log"}
    finally:
        process.send_signal(signal.SIGTERM)  # the launcher resets SIGTERM, so dagster dev shuts down cleanly
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            pytest.fail("dagster dev ignored SIGTERM")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # any child left behind (same session as the launcher)
            log.close()


def test_ui_register_sorts_by_itself_and_sensor_explains_itself(dagster_dev: dict[str, Any]) -> None:
    ui: UI = dagster_dev["ui"]
    tmp: Path = dagster_dev["tmp"]
    started = time.monotonic()
    timings = {}

    # The launchpad needs nothing but the path: no scaffolding, no YAML typed.
    photos = tmp / "photos"
    images = copy_images(photos, ["birds", "fish", "fruit", "vehicles"], 4)
    assert ui.config_valid("register_source", {"ops": {"register_source_folder": {"config": {"path": str(photos)}}}})[0]
    # A bad choice is rejected before any run starts.
    valid, errors = ui.config_valid("sort_source", {"ops": {"clusters": {"config": {"method": "nonsense"}}}})
    assert not valid and errors

    # Step 1: launch register_source with the folder; the sort starts by itself.
    register = ui.launch("register_source", {"ops": {"register_source_folder": {"config": {"path": str(photos)}}}})
    ui.wait_run(register, 60)
    key = partition_key_for(photos)
    sort_run = wait_for(
        "sort_after_register to start the sort",
        lambda: [r for r in ui.runs(dagster__partition=key) if r["jobName"] == "sort_source"],
        60,
    )[0]
    ui.wait_run(sort_run["runId"], 150)
    timings["register_to_sorted"] = round(time.monotonic() - started, 1)
    print(f"\nregister_source launched -> whole graph materialized in {timings['register_to_sorted']} s")
    for asset in ASSETS:
        assert key in ui.materialized_partitions(asset), asset
    out = Path(default_output_dir(photos)) / photos.name  # OUT/<source folder name>/<cluster>/
    assert sorted(p.name for p in placed_files(out)) == sorted(p.name for p in images)

    # A folder sorted from the CLI, before the sensor is on.
    cli_src, cli_out = tmp / "scans", tmp / "scans-out"
    cli_images = copy_images(cli_src, ["flowers", "insects"], 3)
    cli = subprocess.run(
        [str(BIN / "neural-sorter"), "sort", str(cli_src), "--out", str(cli_out), "--backend", "cnn", "--json"],
        env=dagster_dev["env"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert cli.returncode == 0, cli.stderr
    cli_summary = json.loads(cli.stdout.splitlines()[-1])
    cli_key = cli_summary["partition"]
    assert cli_summary["output"] == str(cli_out / cli_src.name)  # OUT/<source folder name>

    # Step 2: a changed file in the CLI-sorted folder and a new subfolder of the watch root; switch the sensor on.
    changed = cli_images[0]
    shutil.copyfile(sorted((TUXPAINT / "mammals").glob("*.png"))[0], changed)
    new_folder = dagster_dev["inbox"] / "garden"
    copy_images(new_folder, ["vegetables", "mammals"], 3)
    new_key = partition_key_for(new_folder)
    assert ui.start_sensor("source_directory_sensor") == "RUNNING"
    requested = wait_for(
        "a sensor tick that requests runs",
        lambda: [t for t in ui.ticks("source_directory_sensor") if t["runIds"]],
        30,
    )[0]
    partitions = {}
    for run_id in requested["runIds"]:
        tags = {t["key"]: t["value"] for t in next(r for r in ui.runs() if r["runId"] == run_id)["tags"]}
        partitions[tags["dagster/partition"]] = run_id
    # Only the two folders that changed; the UI-sorted folder is known to be up to date.
    assert set(partitions) == {cli_key, new_key}

    # Step 3: the next tick requests nothing and says why, on the tick list.
    skipped = wait_for(
        "a skipped tick with its reason",
        lambda: [
            t
            for t in ui.ticks("source_directory_sensor")
            if t["status"] == "SKIPPED" and float(t["timestamp"]) > float(requested["timestamp"])
        ],
        30,
    )[0]
    assert "no changes in 3 source folder" in skipped["skipReason"], skipped

    for run_id in partitions.values():
        ui.wait_run(run_id, 150)
    cli_placed = placed_files(cli_out / cli_src.name)
    assert len(cli_placed) == len(cli_images)
    assert changed.read_bytes() in {p.read_bytes() for p in cli_placed}  # the new content was re-sorted
    new_out = Path(default_output_dir(dagster_dev["inbox"])) / new_folder.name
    assert len(placed_files(new_out)) == 6
    timings["total"] = round(time.monotonic() - started, 1)
    print(f"\nUI flow timings (s): {timings}")
