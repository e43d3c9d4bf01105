"""``categories`` with a backend that cannot use them is an error before any work (issue 12), the same from the
YAML file, the CLI and the Dagster launchpad (they share one options model); ``auto`` with categories means
CLIP, and a CLIP that cannot load is then an error rather than a cnn sort that silently drops the categories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from neural_sorter.settings import ConfigError, load_config, validate_config
from neural_sorter.stages import StageError
from neural_sorter.stages.clip_model import build_clip_model
from neural_sorter.stages.embeddings import EmbeddingOptions

CLI = str(Path(sys.executable).with_name("neural-sorter"))


@pytest.mark.parametrize("backend", ["cnn", "autoencoder"])
def test_categories_with_a_backend_that_cannot_use_them_name_the_field(backend, tmp_path):
    with pytest.raises(ConfigError) as error:
        validate_config({"backend": backend, "categories": ["cats", "dogs"]})
    message = str(error.value)
    assert message.startswith("invalid config: categories:") and f"backend {backend}" in message, message
    path = tmp_path / "sorter.yaml"
    path.write_text(f"backend: {backend}\ncategories: [cats]\n")
    with pytest.raises(ConfigError, match=f"invalid config file {path}: categories:"):
        load_config(path)
    with pytest.raises(ConfigError, match="categories:"):  # a CLI flag on top of a valid file
        load_config(None).updated(backend=backend, categories=["cats"])


@pytest.mark.parametrize("backend", ["clip", "auto"])
def test_categories_are_fine_where_clip_can_use_them(backend):
    assert validate_config({"backend": backend, "categories": ["cats"]}).categories == ["cats"]
    assert validate_config({"backend": "cnn", "categories": []}).backend == "cnn"


def test_cli_refuses_before_any_work_with_one_line(tmp_path):
    src, out, home = tmp_path / "photos", tmp_path / "out", tmp_path / "home"
    src.mkdir()
    (src / "a.png").write_bytes(b"not looked at")
    env = {**os.environ, "NEURAL_SORTER_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    for name in ("DAGSTER_HOME", "NEURAL_SORTER_STORE", "NEURAL_SORTER_CONFIG"):
        env.pop(name, None)
    done = subprocess.run(
        [CLI, "sort", str(src), "--out", str(out), "--backend", "cnn", "--categories", "cats,dogs"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("neural-sorter: error: invalid config: categories:"), lines
    assert not out.exists() and not (home / "store").exists()


def test_launchpad_run_fails_in_its_first_step_naming_the_field(tmp_path, monkeypatch):
    from neural_sorter.definitions import defs
    from neural_sorter.sources import PARTITIONS_NAME, SourceRegistry

    store = tmp_path / "store"
    monkeypatch.setenv("NEURAL_SORTER_STORE", str(store))
    monkeypatch.delenv("NEURAL_SORTER_CONFIG", raising=False)
    src = tmp_path / "photos"
    src.mkdir()
    key = SourceRegistry(str(store)).add(src, output_dir=tmp_path / "out")
    job = defs.resolve_job_def("sort_source")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PARTITIONS_NAME, [key])
        result = job.execute_in_process(
            instance=instance,
            partition_key=key,
            raise_on_error=False,
            run_config={"resources": {"sorter": {"config": {"backend": "autoencoder", "categories": ["cats"]}}}},
        )
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failures and all("categories:" in e.step_failure_data.error.message for e in failures)
    assert {e.step_key for e in failures} <= {"file_manifest", "clip_model"}  # nothing decoded or embedded
    assert not (store / "file_manifest").exists() and not (tmp_path / "out").exists()


def test_auto_with_categories_and_no_clip_is_an_error_not_a_silent_cnn_sort(tmp_path):
    options = EmbeddingOptions(backend="auto", categories=["cats"], clip_model=str(tmp_path / "no-model"))
    with pytest.raises(StageError, match="categories need the clip backend"):
        build_clip_model(options, "cpu")
    without = EmbeddingOptions(backend="auto", clip_model=str(tmp_path / "no-model"))
    _table, report = build_clip_model(without, "cpu")  # no categories: auto falls back as before
    assert report.metadata["status"] == "unavailable"
