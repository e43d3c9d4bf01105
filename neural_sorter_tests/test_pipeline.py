"""The whole graph through a real Dagster instance, and the CLI end to end (slow)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from neural_sorter.definitions import defs
from neural_sorter.inventory import content_hash
from neural_sorter.sources import PARTITIONS_NAME, SourceRegistry
from neural_sorter.store import Store
from neural_sorter.tables import SCHEMAS

ROOT = Path(__file__).resolve().parents[1]
TUXPAINT = ROOT.parent / "shared" / "datasets" / "tuxpaint8"
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

pytestmark = pytest.mark.slow
SORT_JOB = defs.resolve_job_def("sort_source")  # at import, before any short-lived test instance exists
REGISTER_JOB = defs.resolve_job_def("register_source")


def real_images(dest: Path, per_class: int = 4) -> list[Path]:
    if not TUXPAINT.is_dir():
        pytest.skip("../shared/datasets/tuxpaint8 not found")
    copied = []
    for folder in sorted(p for p in TUXPAINT.iterdir() if p.is_dir())[:3]:
        for image in sorted(folder.glob("*.png"))[:per_class]:
            target = dest / folder.name / image.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(image, target)
            copied.append(target)
    return copied


def test_definitions_validate():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert {a.key.to_user_string() for a in defs.resolve_all_asset_specs()} == set(ASSETS)


def test_register_source_job_adds_a_partition(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURAL_SORTER_STORE", str(tmp_path / "store"))
    with dg.instance_for_test() as instance:
        result = REGISTER_JOB.execute_in_process(
            instance=instance, run_config={"ops": {"register_source_folder": {"config": {"path": str(tmp_path)}}}}
        )
        assert result.success
        (key,) = instance.get_dynamic_partitions(PARTITIONS_NAME)
    assert SourceRegistry(str(tmp_path / "store")).resolve(key) == tmp_path
    with dg.instance_for_test() as instance:
        failed = REGISTER_JOB.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"ops": {"register_source_folder": {"config": {"path": str(tmp_path / "nope")}}}},
        )
        assert not failed.success and instance.get_dynamic_partitions(PARTITIONS_NAME) == []


def test_whole_graph_materializes_for_one_partition(tmp_path, monkeypatch):
    store = tmp_path / "store"
    monkeypatch.setenv("NEURAL_SORTER_STORE", str(store))
    src = tmp_path / "src"
    images = real_images(src)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    key = SourceRegistry(str(store)).add(src)
    out = tmp_path / "out"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PARTITIONS_NAME, [key])
        result = SORT_JOB.execute_in_process(
            instance=instance,
            partition_key=key,
            run_config={
                "resources": {"sorter": {"config": {"backend": "cnn", "output_dir": str(out)}}},
                "ops": {"clusters": {"config": {"k": "3"}}, "3d_projection": {"config": {"projection": "pca"}}},
            },
        )
        assert result.success
        for asset in ASSETS:
            assert (store / asset / f"{key}.parquet").is_file(), asset
            event = instance.get_latest_materialization_event(dg.AssetKey(asset))
            assert event is not None and event.dagster_event.partition == key
        clusters_meta = instance.get_latest_materialization_event(dg.AssetKey("clusters"))
        metadata = clusters_meta.asset_materialization.metadata
        assert metadata["clusters"].value == 3 and "data:image/png;base64" in metadata["gallery"].value
        checks = result.get_asset_check_evaluations()
        assert len(checks) == 2 and all(check.passed for check in checks), checks
        tree = instance.get_latest_materialization_event(dg.AssetKey("reorganized_tree")).asset_materialization
        assert str(tree.metadata["output"].value) == str(out / "src")  # the Dagster UI shows the readable folder
    graph = defs.resolve_asset_graph()
    for asset in ASSETS:  # the columns the UI documents are the columns the stages write
        documented = graph.get(dg.AssetKey(asset)).metadata["dagster/column_schema"]
        stored = Store(store).read(asset, key)
        assert set(stored.columns) == {c.name for c in documented.columns} == {c.name for c in SCHEMAS[asset]}
    frames = pd.read_parquet(store / "decoded_frames" / f"{key}.parquet")
    assert frames.loc[frames["relative_path"] == "broken.jpg", "error"].str.contains("image").all()
    embeds = pd.read_parquet(store / "embeddings" / f"{key}.parquet")
    assert len(embeds) == len(images) and set(embeds["backend"]) == {"cnn"}
    placed = [p for p in (out / "src").rglob("*") if p.is_file()]  # OUT/<source folder name>/<cluster>/
    assert sorted(content_hash(p) for p in placed) == sorted(content_hash(p) for p in images)


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEURAL_SORTER_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("DAGSTER_HOME", None)
    env.pop("NEURAL_SORTER_STORE", None)
    return subprocess.run(
        [str(Path(sys.executable).with_name("neural-sorter")), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_cli_sort_copy_then_undo(tmp_path):
    src = tmp_path / "photos"
    images = real_images(src, per_class=5)
    (src / "notes.txt").write_text("not an image")
    originals = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    home, out = tmp_path / "home", tmp_path / "sorted"
    result = run_cli("sort", str(src), "--out", str(out), "--json", "--k", "3", home=home)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    # auto backend, no CLIP weights offline: falls back to the offline CNN and says so.
    assert summary["backend"] == "cnn" and summary["files"] == len(images) + 1
    assert summary["decoded"] == len(images) and summary["embedded_new"] == len(images)
    assert [f["file"] for f in summary["failed"]] == ["notes.txt"]
    assert sum(summary["clusters"].values()) == len(images)
    placed = [p for p in out.rglob("*") if p.is_file() and ".neural-sorter" not in p.parts]
    assert sorted(p.read_bytes() for p in placed) == sorted(p.read_bytes() for p in images)
    manifest = pd.read_csv(out / ".neural-sorter" / "manifest.csv")
    assert len(manifest) == len(images) and set(manifest["action"]) == {"copy"}
    assert (home / "dagster" / "dagster.yaml").is_file()  # runs recorded in the real instance

    again = run_cli("sort", str(src), "--out", str(out), "--json", "--k", "3", home=home)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout.strip().splitlines()[-1])
    assert second["embedded_new"] == 0 and second["embedded_reused"] == len(images)

    # One undo reverts the sort: the re-sort changed nothing (answered from its stamp, or a full run that only
    # kept files, which undo passes over); a second undo has nothing left and says so.
    undo = run_cli("undo", str(out), home=home)
    assert undo.returncode == 0, undo.stderr
    assert not [p for p in out.rglob("*") if p.is_file() and ".neural-sorter" not in p.parts]
    again = run_cli("undo", str(out), home=home)
    assert again.returncode == 1 and "no reorganization to undo" in again.stderr, again.stderr
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == originals


def test_cli_failures_are_one_line_and_nonzero(tmp_path):
    home = tmp_path / "home"
    missing = run_cli("sort", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), home=home)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(b"x")
    inside = run_cli("sort", str(src), "--out", str(src), home=home)
    assert inside.returncode == 2 and "source folder itself" in inside.stderr
    bad_clip = run_cli(
        "sort",
        str(src),
        "--out",
        str(tmp_path / "o"),
        "--backend",
        "clip",
        "--clip-model",
        "nobody/nothing",
        home=home,
    )
    assert bad_clip.returncode == 1
    assert "--clip-model" in bad_clip.stderr.splitlines()[-1]
