"""The Dash viewer's data layer, routes and callbacks against a store made from real images (no browser)."""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from dash import no_update

from dash_viewer import data as vdata
from dash_viewer import figures, views
from dash_viewer.app import create_app, viewer_of
from dash_viewer.callbacks import common, export, partitions, search, selection
from dash_viewer.data.duplicates import distinct_mask
from neural_sorter_tests.viewer_store import build_store, copy_images, real_image_store, write_asset

N_IMAGES = 30


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """(store, partition key, source folder): 30 real images through the pipeline functions (cnn, pca)."""
    return real_image_store(tmp_path_factory.mktemp("viewer"), N_IMAGES)


@pytest.fixture
def fresh_store(built: tuple[Path, str, Path], tmp_path: Path) -> tuple[Path, str, Path]:
    """A private copy of the built store, for tests that rewrite files."""
    store, key, images = built
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    return copy, key, images


@pytest.fixture(scope="module")
def app(built: tuple[Path, str, Path]):
    return create_app(built[0], stat_ttl=0, run_lookup=False)


@pytest.fixture(scope="module")
def client(app):
    return app.server.test_client()


def read_table(store: Path, asset: str, key: str) -> pd.DataFrame:
    return pd.read_parquet(store / asset / f"{key}.parquet")


def decode_typed(spec: dict[str, str]) -> np.ndarray:
    dtypes = {"u2": "<u2", "u4": "<u4", "f4": "<f4", "f8": "<f8", "i4": "<i4"}
    return np.frombuffer(base64.b64decode(spec["bdata"]), dtype=dtypes[spec["dtype"]])


# ---------------------------------------------------------------------- loading


def test_loads_the_partition_aligned_on_the_projection(built):
    store, key, images = built
    viewer = vdata.ViewerStore(store, stat_ttl=0, run_lookup=False)
    assert viewer.partitions() == [key]
    assert viewer.sources() == {key: str(images)}
    data = viewer.load(key)
    projection = read_table(store, "3d_projection", key)
    embeddings = read_table(store, "embeddings", key)
    assert len(data) == len(projection) == N_IMAGES
    assert list(data.points["relative_path"]) == list(projection["relative_path"])
    assert data.backend == "cnn" and data.model_id == embeddings["model_id"].iloc[0]
    assert data.method == "pca" and data.cluster_count == 4
    assert data.vectors is not None and data.vectors.shape == (N_IMAGES, len(embeddings["vector"].iloc[0]))
    assert data.has_vector.all()
    by_path = dict(zip(embeddings["relative_path"], embeddings["vector"]))
    for row, path in enumerate(data.points["relative_path"]):
        expected = np.asarray(by_path[path], dtype=np.float32)
        np.testing.assert_allclose(data.vectors[row], expected / np.linalg.norm(expected), rtol=1e-5, atol=1e-6)
    # full paths come from file_manifest and point into the source folder, which the viewer never opens
    for path, rel in zip(data.points["path"], data.points["relative_path"]):
        assert Path(path) == images / rel
    assert not data.has_categories and data.category_probs is None
    info = viewer.materialization(key)
    assert (info.files, info.clusters, info.backend, info.method, info.run_id) == (N_IMAGES, 4, "cnn", "pca", None)


def test_load_is_cached_until_a_file_changes(fresh_store):
    store, key, _ = fresh_store
    viewer = vdata.ViewerStore(store, stat_ttl=0, run_lookup=False)
    first = viewer.load(key)
    assert viewer.load(key) is first
    clusters = read_table(store, "clusters", key)
    write_asset(store, "clusters", key, clusters)
    os.utime(store / "clusters" / f"{key}.parquet", ns=(time.time_ns(), time.time_ns() + 10**9))
    assert viewer.load(key) is not first


def test_reload_picks_up_a_newer_materialization(fresh_store):
    store, key, _ = fresh_store
    viewer = vdata.ViewerStore(store, stat_ttl=0, run_lookup=False)
    before = viewer.load(key)
    options, value, version = partitions.sync_state(viewer, key, None, None)
    assert value is no_update and version == {"partition": key, "version": before.version}
    # a newer run: fewer files, projected again
    projection = read_table(store, "3d_projection", key).iloc[:20].copy()
    projection["x"] = projection["x"] * 2
    write_asset(store, "3d_projection", key, projection)
    later = time.time_ns() + 5 * 10**9
    os.utime(store / "3d_projection" / f"{key}.parquet", ns=(later, later))
    _, _, bumped = partitions.sync_state(viewer, key, options, version)
    assert bumped is not no_update and bumped["version"] != before.version
    after = viewer.load(key)
    assert len(after) == 20 and after.version == bumped["version"]
    np.testing.assert_allclose(after.points["x"], projection["x"].to_numpy(np.float32))
    # a second partition appears in the picker, newest first
    shutil.copy(store / "3d_projection" / f"{key}.parquet", store / "3d_projection" / "other-12345678.parquet")
    newest = time.time_ns() + 10 * 10**9
    os.utime(store / "3d_projection" / "other-12345678.parquet", ns=(newest, newest))
    new_options, value, _ = partitions.sync_state(viewer, key, options, bumped)
    assert [o["value"] for o in new_options] == ["other-12345678", key] and value is no_update
    # the shown partition vanishing falls back to the newest one
    (store / "3d_projection" / f"{key}.parquet").unlink()
    _, value, state = partitions.sync_state(viewer, key, new_options, bumped)
    assert value == "other-12345678" and state["partition"] == "other-12345678"


def test_header_names_the_materialization(built):
    store, key, _ = built
    viewer = vdata.ViewerStore(store, stat_ttl=0, run_lookup=False)
    chips = views.run_info(viewer.materialization(key))
    texts = [c.children for c in chips]
    assert f"{N_IMAGES} files" in texts and "4 clusters" in texts and "pca" in texts
    assert any(t.startswith("cnn · efficientnet") for t in texts)
    assert any(t.startswith("updated ") for t in texts)


# ---------------------------------------------------------------------- neighbours, filters, search


def test_nearest_neighbour_of_a_points_own_vector_is_itself(built):
    store, key, _ = built
    data = vdata.ViewerStore(store, run_lookup=False).load(key)
    duplicated = data.points["duplicate_group"].notna().to_numpy()
    for idx in range(len(data)):
        ids, scores = vdata.nearest(data.vectors, data.vectors[idx], k=3)
        if not duplicated[idx]:
            assert ids[0] == idx
        assert scores[0] == pytest.approx(1.0, abs=1e-5)
        assert list(scores) == sorted(scores, reverse=True)


def test_more_like_this_matches_brute_force_cosine(built):
    store, key, _ = built
    data = vdata.ViewerStore(store, run_lookup=False).load(key)
    raw = np.stack(
        read_table(store, "embeddings", key)
        .set_index("relative_path")
        .loc[data.points["relative_path"], "vector"]
        .to_numpy()
    )
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    for idx in (0, 7, 29):
        ids, scores = vdata.neighbours(data, idx, k=5)
        cosine = unit @ unit[idx]
        cosine[idx] = -np.inf
        expected = np.argsort(-cosine, kind="stable")[:5]
        assert idx not in ids
        np.testing.assert_allclose(scores, cosine[expected], rtol=1e-4, atol=1e-5)
        assert set(ids) == set(expected) or np.allclose(np.sort(cosine[ids]), np.sort(cosine[expected]))
    # restricted to a filter
    mask = data.points["cluster_id"].to_numpy() == data.points["cluster_id"].iat[0]
    ids, _ = vdata.neighbours(data, 0, k=50, candidates=mask)
    assert set(ids) == set(np.flatnonzero(mask)) - {0}


def test_filters(built):
    store, key, _ = built
    data = vdata.ViewerStore(store, run_lookup=False).load(key)
    assert vdata.filter_mask(data).all()
    cluster = int(data.points["cluster_id"].iat[0])
    mask = vdata.filter_mask(data, clusters=[cluster])
    assert mask.sum() == (data.points["cluster_id"] == cluster).sum() > 0
    mask = vdata.filter_mask(data, name="FISH")
    assert mask.any() and all("fish" in p.lower() for p in data.points.loc[mask, "relative_path"])
    assert not vdata.filter_mask(data, name="no-such-file").any()
    assert vdata.filter_mask(data, categories=[vdata.NO_CATEGORY]).all()  # cnn: no categories at all


def test_text_search_says_why_without_clip(built):
    store, key, _ = built
    data = vdata.ViewerStore(store, run_lookup=False).load(key)
    with pytest.raises(vdata.TextSearchUnavailable, match=r"CLIP embeddings.*cnn"):
        vdata.text_search(data, "a red car")
    store_value, message = search.run_query(data, {"kind": "text", "text": "a red car"}, None)
    assert store_value is None and "More like this" in message


def test_text_search_with_clip_embeddings(tuxpaint_dir, tiny_clip_dir, tmp_path):
    images = copy_images(tmp_path / "pics", 12)
    store = tmp_path / "store"
    key = build_store(store, images, backend="clip", clip_dir=tiny_clip_dir, categories=["bird", "fish", "car"])
    data = vdata.ViewerStore(store, run_lookup=False).load(key)
    assert data.backend == "clip" and data.model_id.endswith("@local")
    assert vdata.clip_model_id(data) == str(tiny_clip_dir)
    assert data.has_categories and data.categories == ["bird", "fish", "car"]
    assert len(vdata.top_categories(data, 0)) == 3
    from neural_sorter.models.clip import load_clip

    text = load_clip(str(tiny_clip_dir)).embed_texts(["a red car"])[0]
    ids, scores = vdata.text_search(data, "a red car", k=5)
    # one picture per duplicate group (the tiny random CLIP model sees many of these pictures as copies)
    distinct = distinct_mask(data)
    ranked = np.where(distinct, data.vectors @ text, -np.inf)
    expected = np.argsort(-ranked, kind="stable")[: min(5, int(distinct.sum()))]
    np.testing.assert_allclose(scores, (data.vectors @ text)[expected], rtol=1e-4, atol=1e-5)
    store_value, message = search.run_query(data, {"kind": "text", "text": "a red car"}, None, k=5)
    assert store_value["ids"] == [int(i) for i in ids] and f"{len(ids)} best matches" in message
    # colour by category: one legend group per category present
    groups = figures.groups(data, "category")
    assert {g.label for g in groups} <= {"bird", "fish", "car"} and sum(len(g.ids) for g in groups) == 12
    # trace uids end up in CSS selectors inside plotly.js ('.cb' + uid): they must be plain words
    for trace in figures.map_3d(data, "category")["data"] + figures.map_3d(data, "cluster")["data"]:
        assert re.fullmatch(r"[A-Za-z0-9-]+", trace["uid"]), trace["uid"]
    # weights gone: a clear message, not a crash
    data.model_id = str(tmp_path / "missing-model") + "@local"
    with pytest.raises(vdata.TextSearchUnavailable, match="not available here"):
        vdata.text_search(data, "a red car")


# ---------------------------------------------------------------------- thumbnails route


def test_thumbnail_route_serves_jpeg_from_the_store(built, client):
    store, key, _ = built
    data = vdata.ViewerStore(store, run_lookup=False).load(key)
    frames = read_table(store, "decoded_frames", key)
    for idx in (0, 13, N_IMAGES - 1):
        response = client.get(f"/thumb/{key}/{idx}")
        assert response.status_code == 200 and response.mimetype == "image/jpeg"
        expected = frames.loc[frames["relative_path"] == data.points["relative_path"].iat[idx], "thumbnail"].iloc[0]
        assert response.data == expected and response.data[:2] == b"\xff\xd8"
    small = client.get(f"/thumb/{key}/0?s=1&v={data.version}")
    assert small.status_code == 200 and small.data[:2] == b"\xff\xd8"
    assert len(small.data) < len(client.get(f"/thumb/{key}/0").data)
    assert "immutable" in small.headers["Cache-Control"]


@pytest.mark.parametrize(
    "url",
    [
        "/thumb/{key}/30",
        "/thumb/{key}/99999999",
        "/thumb/{key}/-1",
        "/thumb/{key}/1.5",
        "/thumb/{key}/abc",
        "/thumb/{key}/0/extra",
        "/thumb/{key}/0?v=stale-version",
        "/thumb/unknown-partition/0",
        "/thumb/../0",
        "/thumb/%2e%2e/0",
        "/thumb/..%2F..%2Fetc%2Fpasswd/0",
        "/thumb/%2Fetc%2Fpasswd/0",
        "/thumb/{key}%2F..%2F..%2Fsources.json/0",
        "/thumb/sources.json/0",
        "/thumb/",
    ],
)
def test_thumbnail_route_refuses_anything_else(built, client, url):
    response = client.get(url.format(key=built[1]))
    assert response.status_code == 404
    assert response.mimetype != "image/jpeg"


# ---------------------------------------------------------------------- figures and callbacks


def test_3d_figure_is_compact_and_complete(built):
    store, key, _ = built
    data = vdata.ViewerStore(store, run_lookup=False).load(key)
    figure = figures.map_3d(data, "cluster")
    traces = figure["data"]
    assert [t["uid"] for t in traces[:2]] == ["selected", "matches"]
    assert len(traces) == 2 + data.cluster_count
    drawn = figures.drawn_state(data, "cluster", None, None, None)
    seen = []
    quantized = data.quantized()
    for curve, trace in enumerate(traces[2:], start=figures.FIRST_GROUP_TRACE):
        assert trace["type"] == "scatter3d" and trace["hoverinfo"] == "none"
        assert not {"text", "hovertext", "customdata", "ids"} & set(trace)  # coordinates are the only payload
        count = len(decode_typed(trace["x"]))
        ids = figures.event_ids(data, drawn, [{"curveNumber": curve, "pointNumber": i} for i in range(count)])
        assert len(ids) == count
        seen.extend(ids)
        for axis, column in (("x", 0), ("y", 1), ("z", 2)):
            assert trace[axis]["dtype"] == "u2"
            np.testing.assert_array_equal(decode_typed(trace[axis]), quantized[ids, column])
    assert sorted(seen) == list(range(N_IMAGES))
    # quantization keeps the layout: order along x is preserved up to rounding
    x = data.points["x"].to_numpy()
    assert np.corrcoef(x, quantized[:, 0].astype(float))[0, 1] > 0.9999
    json.dumps(figure)  # plain JSON, no numpy left inside
    fish = vdata.filter_mask(data, name="fish")
    two_d = figures.map_2d(data, "cluster", fish)
    assert two_d["layout"]["dragmode"] == "lasso" and all(t["type"] == "scattergl" for t in two_d["data"])
    assert sum(len(decode_typed(t["x"])) for t in two_d["data"][2:]) == fish.sum()


def test_events_map_back_to_ids_of_the_drawn_figure(built):
    store, key, _ = built
    data = vdata.ViewerStore(store, run_lookup=False).load(key)
    drawn = figures.drawn_state(data, "cluster", None, None, "fish")
    figure = figures.map_2d(data, "cluster", vdata.filter_mask(data, name="fish"), selected=4)
    first = figure["data"][2]
    ids = figures.event_ids(data, drawn, [{"curveNumber": 2, "pointNumber": 0}, {"curveNumber": 0, "customdata": 4}])
    quantized = data.quantized()
    assert (decode_typed(first["x"])[0], decode_typed(first["y"])[0]) == tuple(quantized[ids[0], :2])
    assert "fish" in data.points["relative_path"].iat[ids[0]] and ids[1] == 4
    # out-of-range, malformed or stale events give nothing
    assert figures.event_ids(data, drawn, [{"curveNumber": 99, "pointNumber": 0}]) == []
    assert figures.event_ids(data, drawn, [{"curveNumber": 2, "pointNumber": 10**6}]) == []
    assert figures.event_ids(data, drawn, [{"curveNumber": "2", "pointNumber": 0}, "junk"]) == []
    assert figures.event_ids(data, dict(drawn, version="older"), [{"curveNumber": 2, "pointNumber": 0}]) == []
    assert figures.event_ids(data, None, [{"customdata": 1}]) == []


def test_click_and_thumbnail_selection(built):
    store, key, _ = built
    data = vdata.ViewerStore(store, run_lookup=False).load(key)
    drawn = figures.drawn_state(data, "cluster", None, None, None)
    expected = int(figures.group_ids(data, drawn)[1][0])
    pick = selection.pick_selection
    click = {"points": [{"curveNumber": 3, "pointNumber": 0}]}
    chosen = pick(data, "map-3d", None, click, None, None, drawn, None)
    assert chosen == {"partition": key, "idx": expected, "path": data.points["relative_path"].iat[expected]}
    assert pick(data, "map-2d", None, None, {"points": [{"customdata": 999}]}, None, None, drawn) is no_update
    assert pick(data, "map-2d", None, None, click, None, None, None) is no_update  # 2D not drawn yet
    thumb = {"type": "thumb", "where": "gallery", "idx": 7}
    assert pick(data, thumb, 0, None, None, chosen) is no_update  # tile just rendered, not clicked
    assert pick(data, thumb, 1, None, None, chosen)["idx"] == 7
    assert pick(data, {"type": "thumb", "where": "x", "idx": "7; rm -rf"}, 1, None, None, None) is no_update
    # ids move with a new version: the selection follows the file
    moved = dict(chosen, idx=(expected + 1) % N_IMAGES)
    assert common.selected_index(data, moved) == expected
    assert common.selected_index(data, dict(chosen, partition="other")) is None


def test_detail_results_and_gallery_views(built):
    store, key, _ = built
    data = vdata.ViewerStore(store, run_lookup=False).load(key)
    detail = str(views.detail_panel(data, 4))
    assert data.points["name"].iat[4] in detail and f"/thumb/{key}/4?v={data.version}" in detail
    assert "Nearest neighbours" in detail and "'where': 'neighbour'" in detail
    results, message = search.run_query(
        data, {"kind": "similar", "path": data.points["relative_path"].iat[4]}, None, k=6
    )
    assert message == "" and len(results["ids"]) == 6 and 4 not in results["ids"]
    assert results["title"] == f"More like {data.points['name'].iat[4]}"
    gallery = views.gallery(data, "cluster", None, {})
    tiles = str(gallery).count("'type': 'thumb'")
    assert len(gallery) == data.cluster_count and tiles == min(N_IMAGES, views.GALLERY_PAGE * data.cluster_count)
    assert views.thumb_url(key, 3, "abc", small=True) == f"/thumb/{key}/3?v=abc&s=1"


def test_csv_export(built):
    store, key, images = built
    data = vdata.ViewerStore(store, run_lookup=False).load(key)
    text = vdata.selection_csv(data, [2, 0, 2, 999, -1, "x"])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["relative_path"] for r in rows] == [data.points["relative_path"].iat[i] for i in (2, 0)]
    for row in rows:
        assert Path(row["path"]) == images / row["relative_path"] and Path(row["path"]).is_file()
        assert row["cluster_name"].startswith("cluster-")
    payload = export.csv_download(data, [1, 3], "selection")
    assert payload["filename"] == f"{key}-selection.csv" and payload["content"].count("\n") == 3
    assert export.csv_download(data, [], "selection") is None
    drawn = figures.drawn_state(data, "cluster", None, None, None)
    traces = figures.group_ids(data, drawn)
    lasso = {"drawn": drawn, "points": [[2, 0], [3, 1], [2, 0], [2, 10**6], "junk"]}
    assert export.lasso_ids(lasso, data) == sorted({int(traces[0][0]), int(traces[1][1])})
    assert export.lasso_ids(dict(lasso, drawn=dict(drawn, version="old")), data) == []


# ---------------------------------------------------------------------- through Dash's HTTP API


def call(
    client, output: str, inputs: dict[str, Any], state: dict[str, Any] | None = None, changed: str | None = None
) -> dict[str, Any]:
    """POSTs a callback the way the browser does. Inputs are named ``"id.prop"``; a pattern-matching input is
    named ``"<type>.prop"`` and given as a list of (concrete id, value) pairs."""
    deps = client.get("/_dash-dependencies").get_json()
    dep = next(d for d in deps if d["output"] == output or d["output"].startswith(output))

    def item(spec: dict[str, Any], values: dict[str, Any]) -> Any:
        if spec["id"].startswith("{"):
            pattern = json.loads(spec["id"])
            pairs = values.get(f"{pattern['type']}.{spec['property']}", [])
            return [{"id": cid, "property": spec["property"], "value": v} for cid, v in pairs]
        name = f"{spec['id']}.{spec['property']}"
        return {"id": spec["id"], "property": spec["property"], "value": values.get(name)}

    outputs = []
    for part in dep["output"][2:-2].split("...") if dep["output"].startswith("..") else [dep["output"]]:
        component, prop = part.rsplit(".", 1)
        outputs.append({"id": component, "property": prop.split("@")[0]})
    body = {
        "output": dep["output"],
        "outputs": outputs if len(outputs) > 1 else outputs[0],
        "inputs": [item(i, inputs) for i in dep["inputs"]],
        "state": [item(s, state or {}) for s in dep["state"]],
        "changedPropIds": [changed or next(iter(inputs))],
    }
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code in (200, 204), response.data[:500]
    return response.get_json() if response.status_code == 200 else {}


def test_page_layout_and_callbacks_over_http(built, client):
    store, key, _ = built
    page = client.get("/")
    assert page.status_code == 200 and b"neural-sorter viewer" in page.data
    layout = client.get("/_dash-layout", headers={"Accept-Encoding": "gzip"})
    assert layout.headers.get("Content-Encoding") == "gzip"
    text = gzip.decompress(layout.data).decode()
    assert f"{N_IMAGES} files" in text and '"bdata"' in text and "/tmp" not in text.split('"partition"')[0]
    data = vdata.ViewerStore(store, run_lookup=False).load(key)
    version = {"partition": key, "version": data.version}
    answer = call(
        client,
        "..map-3d.figure...count.children...drawn-3d.data..",
        {"version.data": version, "color-by.value": "cluster", "filter-name.value": "fish"},
        changed="filter-name.value",
    )["response"]
    shown = int(data.points["relative_path"].str.contains("fish").sum())
    assert answer["count"]["children"] == f"{shown} of {N_IMAGES} shown"
    assert sum(len(decode_typed(t["x"])) for t in answer["map-3d"]["figure"]["data"][2:]) == shown
    assert answer["drawn-3d"]["data"]["name"] == "fish"
    tiles = [({"type": "thumb", "where": "gallery", "idx": i}, 1 if i == 6 else 0) for i in range(12)]
    clicked = json.dumps(tiles[6][0], sort_keys=True, separators=(",", ":")) + ".n_clicks"
    selected = call(client, "selected.data", {"thumb.n_clicks": tiles, "version.data": version}, changed=clicked)
    assert selected["response"]["selected"]["data"] == {
        "partition": key,
        "idx": 6,
        "path": data.points["relative_path"].iat[6],
    }
    fresh = call(
        client, "selected.data", {"thumb.n_clicks": [(tiles[6][0], 0)], "version.data": version}, changed=clicked
    )
    assert not fresh.get("response")  # a tile that merely appeared (n_clicks 0) selects nothing
    drawn = figures.drawn_state(data, "cluster", None, None, None)
    download = call(
        client,
        "download.data",
        {"download-selection.n_clicks": 1},
        state={"lasso.data": {"drawn": drawn, "points": [[2, 0], [3, 0]]}, "version.data": version},
    )["response"]["download"]["data"]
    assert download["filename"] == f"{key}-selection.csv" and len(download["content"].splitlines()) == 3


def test_app_serves_an_empty_store(tmp_path):
    empty = create_app(tmp_path / "nothing-here", run_lookup=False)
    client = empty.server.test_client()
    layout = client.get("/_dash-layout").get_data(as_text=True)
    assert "No materialized partitions yet" in layout
    assert viewer_of(empty).partitions() == []
    assert client.get("/thumb/anything/0").status_code == 404


@pytest.mark.slow  # a real Dagster instance and run
def test_header_shows_the_dagster_run_that_materialized_the_projection(built, tmp_path, monkeypatch):
    import dagster as dg

    store, key, _ = built
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    @dg.asset(name="3d_projection", partitions_def=dg.StaticPartitionsDefinition([key]))
    def projection() -> None:
        return None

    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([projection], instance=instance, partition_key=key)
    viewer = vdata.ViewerStore(store, run_lookup=True)  # opens the instance of DAGSTER_HOME by itself
    info = viewer.materialization(key)
    assert info.run_id == result.run_id
    assert f"run {result.run_id[:8]}" in [c.children for c in views.run_info(info)]
    # without an instance (or with the lookup off) the header simply has no run chip
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "none"))
    monkeypatch.setenv("NEURAL_SORTER_HOME", str(tmp_path / "none"))
    assert vdata.ViewerStore(store).materialization(key).run_id is None
    assert not (tmp_path / "none").exists()  # the viewer never creates a Dagster home


@pytest.mark.slow  # a server subprocess
def test_python_m_dash_viewer_serves_the_home_store(built, tmp_path):
    """``python -m dash_viewer --home HOME`` reads HOME/store and listens on localhost only."""
    import socket
    import subprocess
    import sys
    import urllib.request

    store, key, _ = built
    home = tmp_path / "home"
    shutil.copytree(store, home / "store")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("NEURAL_SORTER_STORE", "DAGSTER_HOME")}
    process = subprocess.Popen(
        [sys.executable, "-m", "dash_viewer", "--home", str(home), "--port", str(port)],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_dash-layout", timeout=5) as response:
                    layout = response.read().decode()
                break
            except OSError:
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline, "viewer did not start"
                time.sleep(0.3)
        assert f"{N_IMAGES} files" in layout and key in layout
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/thumb/{key}/0", timeout=5) as response:
            assert response.headers["Content-Type"] == "image/jpeg"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # never hide the real failure behind a slow shutdown
            process.kill()
            process.wait(timeout=30)
    output = process.stdout.read().decode()
    assert f"http://127.0.0.1:{port}/" in output and str(home / "store") in output


def test_thumbnails_are_read_one_row_group_at_a_time(fresh_store):
    store, key, _ = fresh_store
    frames = read_table(store, "decoded_frames", key)
    path = store / "decoded_frames" / f"{key}.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(frames, preserve_index=False), path, row_group_size=4)
    viewer = vdata.ViewerStore(store, stat_ttl=0, run_lookup=False)
    data = viewer.load(key)
    by_path = dict(zip(frames["relative_path"], frames["thumbnail"]))
    assert viewer.thumbnail(key, 0) == by_path[data.points["relative_path"].iat[0]]
    assert viewer._thumbs[key].groups_held == 1  # one group of 4 rows read, not the 30 thumbnails
    assert viewer.thumbnail(key, 29) == by_path[data.points["relative_path"].iat[29]]
    assert viewer._thumbs[key].groups_held == 2
    # the pipeline replaces the file while the viewer has it indexed (and trusts its cached stamps for an
    # hour): the stamp check around the group read notices, and the file is re-indexed
    patient = vdata.ViewerStore(store, stat_ttl=3600, run_lookup=False)
    assert patient.thumbnail(key, 0) == by_path[data.points["relative_path"].iat[0]]
    reordered = frames.iloc[::-1].reset_index(drop=True)
    pq.write_table(pa.Table.from_pandas(reordered, preserve_index=False), path, row_group_size=7)
    later = time.time_ns() + 3 * 10**9
    os.utime(path, ns=(later, later))
    for reader in (patient, viewer):
        for idx in (0, 5, 29):
            assert reader.thumbnail(key, idx) == by_path[data.points["relative_path"].iat[idx]]


def test_3d_click_hook_and_compression_are_wired(built, client):
    """The page-side 3D click hook is installed by a no-output clientside callback on the 3D figure, and
    responses are compressed by flask-compress in whatever the browser accepts."""
    deps = client.get("/_dash-dependencies").get_json()
    hooks = [d for d in deps if d.get("no_output") and d["inputs"] == [{"id": "map-3d", "property": "figure"}]]
    assert len(hooks) == 1 and hooks[0].get("clientside_function")
    for encoding in ("br", "gzip"):
        layout = client.get("/_dash-layout", headers={"Accept-Encoding": encoding})
        assert layout.status_code == 200 and layout.headers.get("Content-Encoding") == encoding
    thumb = client.get(f"/thumb/{built[1]}/0", headers={"Accept-Encoding": "br, gzip"})
    assert thumb.status_code == 200 and "Content-Encoding" not in thumb.headers  # JPEG is sent as it is
