"""Sensor, schedule and incremental re-sorts (issue: re-sorts that run by themselves)."""

import contextlib
import datetime
import json
import os
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from neural_sorter.clustering import cluster_embeddings, update_clusters
from neural_sorter.definitions import defs
from neural_sorter.defs.automation import resort_schedule, source_directory_sensor
from neural_sorter.defs.resources import SorterResource
from neural_sorter.projection import extend_projection
from neural_sorter.sources import PARTITIONS_NAME, SourceRegistry
from neural_sorter.watching import folder_fingerprint

ROOT = Path(__file__).resolve().parents[2]
TUXPAINT = ROOT.parent / "shared" / "datasets" / "tuxpaint8"
# Resolved at import: Dagster binds definitions state storage to the first instance alive at resolution time,
# and test instances are short-lived.
SORT_JOB = defs.resolve_job_def("sort_source")


def write_config(path: Path, **options) -> Path:
    path.write_text(json.dumps(options))  # JSON is valid YAML
    return path


def tick(instance, sorter: SorterResource, cursor: str | None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"sorter": sorter})
    result = source_directory_sensor(context)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(PARTITIONS_NAME, list(request.partition_keys))
    return result


def test_sensor_registers_subfolders_and_requests_runs_only_on_change(tmp_path):
    watch = tmp_path / "inbox"
    for name in ("holiday", "cats"):
        (watch / name).mkdir(parents=True)
        (watch / name / "a.jpg").write_bytes(b"x")
    (watch / ".hidden").mkdir()
    config = write_config(tmp_path / "c.yaml", watch_roots=[str(watch)], output_dir=str(tmp_path / "out"))
    sorter = SorterResource(config_file=str(config), store=str(tmp_path / "store"))
    with dg.instance_for_test() as instance:
        first = tick(instance, sorter, None)
        keys = sorted(first.dynamic_partitions_requests[0].partition_keys)
        assert len(keys) == 2 and keys[0].startswith("cats-") and keys[1].startswith("holiday-")
        assert sorted(r.partition_key for r in first.run_requests) == keys
        assert set(SourceRegistry(str(tmp_path / "store")).entries()) == set(keys)

        second = tick(instance, sorter, first.cursor)
        assert second.run_requests == [] and second.dynamic_partitions_requests == []

        (watch / "cats" / "b.jpg").write_bytes(b"new")
        third = tick(instance, sorter, second.cursor)
        assert [r.partition_key for r in third.run_requests] == [keys[0]]
        # The run key comes from the change, so an evaluation that repeats cannot launch twice.
        assert third.run_requests[0].run_key == tick(instance, sorter, second.cursor).run_requests[0].run_key

        shutil.rmtree(watch / "holiday")
        gone = tick(instance, sorter, third.cursor)
        assert gone.run_requests == []
        assert json.loads(gone.cursor)[keys[1]] == json.loads(third.cursor)[keys[1]]  # place kept


def test_fingerprint_is_a_cheap_stat_walk(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"1")
    before = folder_fingerprint(tmp_path)
    assert folder_fingerprint(tmp_path) == before
    os.utime(tmp_path / "a.jpg", ns=(1, 1))
    assert folder_fingerprint(tmp_path) != before


def test_schedule_resorts_every_partition(tmp_path):
    with dg.instance_for_test() as instance:
        when = datetime.datetime(2026, 1, 2, 3, 0, tzinfo=datetime.timezone.utc)
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
        assert isinstance(resort_schedule(context), dg.SkipReason)
        instance.add_dynamic_partitions(PARTITIONS_NAME, ["a-1", "b-2"])
        requests = resort_schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=when))
        assert sorted(r.partition_key for r in requests) == ["a-1", "b-2"]
        assert len({r.run_key for r in requests}) == 2
    assert resort_schedule.cron_schedule == "0 3 * * *"


def blobs(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 8)) * 4
    x = np.concatenate([c + rng.normal(size=(20, 8)) * 0.2 for c in centres]).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def frame(x, prefix="f"):
    return pd.DataFrame(
        {
            "relative_path": [f"{prefix}{i}.jpg" for i in range(len(x))],
            "content_hash": [f"h{i}" for i in range(len(x))],
            "vector": list(x),
            "category_probs": None,
        }
    )


def test_new_files_join_existing_clusters_and_names_stay():
    x = blobs()
    table, _ = cluster_embeddings(frame(x), x, "kmeans", 3, (2, 6), 5, [], 0.5, 0)
    table["settings"] = "s"
    extra = x[:2] + 0.01
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    grown = pd.concat(
        [
            frame(x),
            pd.DataFrame(
                {
                    "relative_path": ["new0.jpg", "new1.jpg"],
                    "content_hash": ["n0", "n1"],
                    "vector": list(extra),
                    "category_probs": None,
                }
            ),
        ],
        ignore_index=True,
    )
    vectors = np.vstack([x, extra])
    updated, why = update_clusters(grown, vectors, table, "kmeans", "s", 0.2)
    assert updated is not None, why
    pd.testing.assert_series_equal(updated["cluster_name"][:60], table["cluster_name"], check_names=False)
    assert list(updated["cluster_id"][60:]) == list(table["cluster_id"][:2])
    assert len(set(updated["hier_code"])) == len(updated)
    # past the drift threshold, or with other settings, it asks for a full re-cluster
    assert update_clusters(grown, vectors, table, "kmeans", "s", 0.01)[0] is None
    assert update_clusters(grown, vectors, table, "kmeans", "other", 0.2)[0] is None


def test_new_points_are_placed_among_their_neighbours():
    x = blobs()
    coords = np.repeat(np.arange(3), 20)[:, None] * np.ones((1, 3), dtype=np.float32)
    placed = extend_projection(x, coords, x[[0, 25, 59]])
    np.testing.assert_allclose(placed[:, 0], [0, 1, 2], atol=1e-5)


@pytest.mark.slow
def test_incremental_runs_reembed_only_what_changed(tmp_path, monkeypatch):
    with contextlib.ExitStack() as stack:
        _incremental_scenario(tmp_path, monkeypatch, stack)


def _incremental_scenario(tmp_path, monkeypatch, stack):
    if not TUXPAINT.is_dir():
        pytest.skip("../shared/datasets/tuxpaint8 not found")
    store = tmp_path / "store"
    monkeypatch.setenv("NEURAL_SORTER_STORE", str(store))
    src, out = tmp_path / "src", tmp_path / "out"
    pool = sorted((TUXPAINT / "fruit").glob("*.png"))
    src.mkdir()
    for image in pool[:8]:
        shutil.copy2(image, src / image.name)
    key = SourceRegistry(str(store)).add(src)
    job = SORT_JOB

    instance = stack.enter_context(dg.instance_for_test())
    instance.add_dynamic_partitions(PARTITIONS_NAME, [key])

    def run(backend="cnn"):
        if True:
            result = job.execute_in_process(
                instance=instance,
                partition_key=key,
                run_config={
                    "resources": {"sorter": {"config": {"backend": backend, "output_dir": str(out)}}},
                    "ops": {
                        "clusters": {"config": {"k": "2"}},
                        "3d_projection": {"config": {"projection": "pca"}},
                        "trained_autoencoder": {"config": {"epochs": 2}},
                    },
                },
            )
            assert result.success
            meta = instance.get_latest_materialization_event(dg.AssetKey("embeddings")).asset_materialization
            return meta.metadata["embedded"].value, meta.metadata["reused"].value

    assert run() == (8, 0)
    assert run() == (0, 8)
    placed_before = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    shutil.copy2(pool[8], src / pool[8].name)
    assert run() == (1, 8)
    (src / pool[0].name).rename(src / "renamed.png")
    assert run() == (0, 9)
    tree = pd.read_parquet(store / "reorganized_tree" / f"{key}.parquet")
    assert sorted(tree["action"]) == ["keep"] * 9  # the renamed file keeps its placement: no copy, no trash
    assert len(list(out.rglob("*.png"))) - len(list((out / ".neural-sorter").rglob("*.png"))) == 9
    assert len(placed_before) == 8
    assert run("autoencoder") == (9, 0)
