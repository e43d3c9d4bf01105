"""Copies and quality flags in the viewer's data layer and views (issue 13), on a real store: 24 real images
plus a byte copy, a resized JPEG copy and a mirrored copy of one and a darkened copy of another, through the
pipeline's stage functions; and the ``keep`` choice applied by the clusters stage itself."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from dash_viewer import views
from dash_viewer.callbacks.duplicates import keep_copy
from dash_viewer.data import ViewerStore, filter_mask, neighbours
from dash_viewer.data.duplicates import (
    distinct_ids,
    duplicate_groups,
    file_format,
    flag_counts,
    quality_scores,
)
from dash_viewer.layout import flag_options
from neural_sorter import corrections
from neural_sorter.store import Store
from neural_sorter.tables import DECODED_FRAMES, EMBEDDINGS, FILE_MANIFEST
from neural_sorter_tests.viewer_store import real_image_store

N_IMAGES = 24
N_FILES = N_IMAGES + 4


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    return real_image_store(tmp_path_factory.mktemp("duplicates-viewer"), N_IMAGES, duplicates=True)


@pytest.fixture
def fresh(built, tmp_path):
    """A copy of the store this test may write corrections to."""
    import shutil

    store, key, images = built
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    return copy, key, images


def group_of(data) -> pd.DataFrame:
    return data.points[data.points["duplicate_group"].notna()]


def test_store_has_the_copies_and_the_dark_file(built):
    store, key, _ = built
    data = ViewerStore(store, run_lookup=False).load(key)
    assert len(data) == N_FILES
    grouped = group_of(data)
    assert len(grouped) == 4 and grouped["duplicate_group"].nunique() == 1
    assert grouped["is_representative"].sum() == 1 and set(grouped["group_size"]) == {4}
    assert set(grouped["duplicate_tier"]) <= {"exact", "near"} and "near" in set(grouped["duplicate_tier"])
    assert grouped["cluster_id"].nunique() == 1  # never split
    dark = data.points[data.points["relative_path"].str.endswith(" dark.png")]
    assert dark["flags"].str.contains("too_dark").all()
    assert np.isfinite(data.points["width"]).all() and np.isfinite(data.points["size"]).all()


def test_distinct_pictures_groups_and_flags(built):
    store, key, _ = built
    data = ViewerStore(store, run_lookup=False).load(key)
    grouped = group_of(data)
    rep = int(grouped.index[grouped["is_representative"]][0])
    distinct = distinct_ids(data)
    assert len(distinct) == N_FILES - 3 and rep in distinct
    # a filter that passes only a copy shows that copy
    small = int(data.points.index[data.points["relative_path"].str.endswith(" small.jpg")][0])
    assert list(distinct_ids(data, filter_mask(data, name=" small.jpg"))) == [small]

    (group,) = duplicate_groups(data)
    assert len(group.ids) == 4 and int(group.ids[0]) == rep and group.tier == "near"
    assert duplicate_groups(data, filter_mask(data, name="no-such-file")) == []

    counts = dict(flag_counts(data))
    assert counts["too_dark"] >= 1
    assert {"label": f"too dark ({counts['too_dark']})", "value": "too_dark"} in flag_options(data)
    dark = filter_mask(data, flags=["too_dark"])
    assert data.points.loc[dark, "relative_path"].str.endswith(" dark.png").any()
    assert dark.sum() == counts["too_dark"]
    assert file_format("a/b.JPG") == "JPEG" and file_format("x.png") == "PNG"

    # "more like this" never lists the picture's own copies, and one file per group
    near, _ = neighbours(data, rep, k=50)
    assert len(near) == N_FILES - 4 and not set(near.tolist()) & set(group.ids.tolist())
    other = int(np.setdiff1d(distinct, group.ids)[0])
    near, _ = neighbours(data, other, k=50)
    assert len(set(near.tolist()) & set(group.ids.tolist())) == 1


def test_views_show_copies_badge_groups_and_scores(built):
    store, key, _ = built
    viewer = ViewerStore(store, run_lookup=False)
    data = viewer.load(key)
    gallery = str(views.gallery(data, "cluster", None))
    assert gallery.count("'tile'") + gallery.count("'tile active'") == N_FILES - 3
    assert "4 copies" in gallery and "pictures · " in gallery
    page = str(views.duplicates_view(data, None))
    assert page.count("Keep this") == 3 and "✓ kept" in page and "JPEG" in page
    dark = int(data.points.index[data.points["relative_path"].str.endswith(" dark.png")][0])
    scores = quality_scores(data, dark, viewer.thumbnail(key, dark))
    by_flag = {row["flag"]: row for row in scores}
    assert by_flag["too_dark"]["flagged"] and by_flag["too_dark"]["score"] < by_flag["too_dark"]["threshold"]
    assert by_flag["tiny"]["score"] == min(data.points.at[dark, "width"], data.points.at[dark, "height"])
    detail = str(views.detail_panel(data, dark, quality=scores))
    assert "too dark" in detail and "flag < 0.3" in detail


def test_keep_choice_previewed_in_the_viewer_and_applied_by_the_clusters_stage(fresh):
    from neural_sorter.stages.clusters import ClusterOptions, build_clusters, first_thumbnail_stream

    store, key, _ = fresh
    viewer = ViewerStore(store, run_lookup=False, stat_ttl=0)
    data = viewer.load(key)
    grouped = group_of(data)
    chosen = next(p for p in grouped["relative_path"] if p.endswith(" mirrored.png"))
    was = str(grouped.loc[grouped["is_representative"], "relative_path"].iloc[0])
    ungrouped = int(data.points.index[data.points["duplicate_group"].isna()][0])
    message, changed = keep_copy(viewer, data, ungrouped)
    assert not changed and "not in a duplicate group" in message
    message, changed = keep_copy(viewer, data, data.index_of(chosen))
    assert changed and message.startswith(f"Saved: keep {chosen} of its 4 copies")

    shown = viewer.load(key).points.set_index("relative_path")
    assert bool(shown.at[chosen, "is_representative"]) and not bool(shown.at[was, "is_representative"])
    assert set(shown.loc[list(grouped["relative_path"]), "representative"]) == {chosen}
    assert shown.at[chosen, "correction"] == "keep"

    # the clusters stage, with the stored corrections, makes the same copy the representative
    target = Store(store)
    manifest, frames = target.read(FILE_MANIFEST, key), target.read(DECODED_FRAMES, key)
    table, report = build_clusters(
        target.read(EMBEDDINGS, key),
        None,
        ClusterOptions(k=4, k_range=(2, 6), category_threshold=0.0),
        categories=[],
        seed=0,
        corrections=corrections.load_corrections(target, key),
        manifest=manifest,
        thumbnails=first_thumbnail_stream(frames, functools.partial(target.iter_thumbnails, key)),
    )
    rows = table.set_index("relative_path")
    members = list(grouped["relative_path"])
    assert bool(rows.at[chosen, "is_representative"]) and not bool(rows.at[was, "is_representative"])
    assert set(rows.loc[members, "representative"]) == {chosen}
    assert rows.loc[members, "cluster_id"].nunique() == 1
    assert float(rows.at[chosen, "similarity"]) == 1.0
    assert report.metadata["duplicates"]["groups"] == 1


@pytest.mark.slow
def test_keep_choice_moves_the_files_on_the_next_cli_sort(tmp_path, monkeypatch):
    """What the viewer's Apply runs: ``neural-sorter sort`` of the folder. With the default ``separate`` the
    kept copy sits in its cluster folder and the others in ``_duplicates/<group>/``; a keep choice swaps that."""
    import subprocess
    import sys
    from pathlib import Path

    from neural_sorter_tests.viewer_store import add_duplicates, copy_images, tuxpaint_available

    if not tuxpaint_available():
        pytest.skip("real-image data set ../shared/datasets/tuxpaint8 not found")
    images = copy_images(tmp_path / "photos", 12)
    made = add_duplicates(images)
    (tmp_path / "config.yaml").write_text("backend: cnn\nmethod: kmeans\nk: 3\nprojection: pca\n")
    monkeypatch.setenv("NEURAL_SORTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEURAL_SORTER_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("NEURAL_SORTER_STORE", raising=False)
    command = [str(Path(sys.executable).with_name("neural-sorter")), "sort", str(images), "--json"]
    out = tmp_path / "sorted"

    def sort(*extra: str) -> None:
        done = subprocess.run([*command, *extra], capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]

    def where(name: str) -> str:
        (found,) = [p for p in out.rglob(name) if ".neural-sorter" not in p.parts]
        return found.parent.relative_to(out).as_posix()

    sort("--out", str(out))
    store = Store(tmp_path / "home" / "store")
    (key,) = store.keys("clusters")
    viewer = ViewerStore(store, run_lookup=False, stat_ttl=0)
    data = viewer.load(key)
    members = made["original"] + made["copies"]
    kept = data.points.set_index("relative_path").loc[members, "is_representative"]
    first = str(kept[kept].index[0])
    chosen = made["copies"][-1] if first != made["copies"][-1] else made["copies"][0]
    assert "_duplicates/" not in where(first.rsplit("/", 1)[-1])
    assert "_duplicates/" in where(chosen.rsplit("/", 1)[-1])

    message, changed = keep_copy(viewer, data, data.index_of(chosen))
    assert changed, message
    sort()
    assert "_duplicates/" not in where(chosen.rsplit("/", 1)[-1])
    assert "_duplicates/" in where(first.rsplit("/", 1)[-1])
    table = store.read("clusters", key).set_index("relative_path")
    assert bool(table.at[chosen, "is_representative"]) and table.at[chosen, "correction"] == "keep"
