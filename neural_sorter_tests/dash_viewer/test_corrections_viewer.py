"""The viewer's side of hand corrections without a browser: corrections made from the page's values are stored,
previewed on the points at once (a new version), listed as pending, dropped, and Apply's re-sort runner."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from dash_viewer.app import create_app, viewer_of
from dash_viewer.callbacks import corrections as corr_callbacks
from dash_viewer.data import ViewerStore
from dash_viewer.data.corrections import Resorter
from neural_sorter import corrections
from neural_sorter.store import Store
from neural_sorter_tests.viewer_store import real_image_store


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    return real_image_store(tmp_path_factory.mktemp("viewer-corrections"), 24)


@pytest.fixture
def viewer(built, tmp_path) -> ViewerStore:
    copy = tmp_path / "store"
    shutil.copytree(built[0], copy)
    return ViewerStore(copy, stat_ttl=0, run_lookup=False, prefetch_vectors=False)


def test_corrections_are_stored_previewed_listed_and_dropped(viewer, built):
    key = built[1]
    data = viewer.load(key)
    assert data.points["content_hash"].notna().all()
    ids = sorted(set(data.points["cluster_id"]))
    a, b, c = ids[0], ids[1], ids[2]
    message, changed = corr_callbacks.edit(viewer, data, "corr-rename", {"cluster": a, "name": "my birds"})
    assert changed and message.startswith("Saved: renamed")
    after = viewer.load(key)
    assert after.version != data.version  # the page re-renders with the preview
    assert set(after.points.loc[after.points["cluster_id"] == a, "cluster_name"]) == {"my birds"}

    corr_callbacks.edit(viewer, after, "corr-merge", {"sources": [b], "into": c})
    merged = viewer.load(key)
    assert b not in set(merged.points["cluster_id"])
    mover = int(merged.points.index[merged.points["cluster_id"] == c][0])
    chosen = corr_callbacks.move_ids(merged, [], [str(merged.points["relative_path"].iat[mover])], None)
    assert chosen == [mover]
    corr_callbacks.edit(viewer, merged, "corr-move", {"ids": chosen, "to": None, "new_name": "odd one"})
    moved = viewer.load(key)
    assert moved.points["cluster_name"].iat[mover] == "odd one"
    assert moved.points["correction"].iat[mover] == "merge,move"

    rows = viewer.correction_rows(key)
    assert [r["op"] for r in rows] == ["rename", "merge", "move"] and all(r["pending"] for r in rows)
    stored = corrections.load_corrections(Store(viewer.root), key)
    assert [c["id"] for c in stored] == [r["id"] for r in rows]
    message, changed = corr_callbacks.edit(viewer, moved, {"type": "corr-remove", "id": rows[-1]["id"]}, {})
    assert changed and len(viewer.correction_rows(key)) == 2
    assert viewer.load(key).points["cluster_name"].iat[mover] != "odd one"

    # refusals say why and store nothing
    message, changed = corr_callbacks.edit(viewer, moved, "corr-rename", {"cluster": a, "name": ""})
    assert not changed and "empty" in message
    message, changed = corr_callbacks.edit(viewer, moved, "corr-move", {"ids": [], "to": c})
    assert not changed and "no files" in message


def test_the_page_has_the_corrections_section(built):
    app = create_app(built[0], stat_ttl=0, run_lookup=False, warm=False)
    page = str(app.layout())
    for component in ("corr-cluster", "corr-rename", "corr-merge", "corr-move", "corr-apply", "pick"):
        assert f"'{component}'" in page
    assert viewer_of(app).resorter is not None


def test_resorter_runs_the_sort_command_and_reports(tmp_path):
    script = (
        "import json, sys; assert sys.argv[1:3] == ['sort', sys.argv[2]] and sys.argv[3] == '--json';"
        "print('noise'); print(json.dumps({'actions': {'relocate': 3}, 'undo': 'neural-sorter undo /o'}))"
    )
    runner = Resorter(str(tmp_path), command=[sys.executable, "-c", script])
    assert runner.status("k") is None
    assert runner.start("k", str(tmp_path))
    deadline = time.time() + 60
    while runner.status("k")["state"] == "running" and time.time() < deadline:
        time.sleep(0.05)
    status = runner.status("k")
    assert status["state"] == "done", status
    assert "3 relocate" in status["message"] and "neural-sorter undo /o" in status["message"]

    failing = Resorter(str(tmp_path), command=[sys.executable, "-c", "import sys; sys.exit('boom: no source')"])
    failing.start("k", str(tmp_path))
    while failing.status("k")["state"] == "running" and time.time() < deadline:
        time.sleep(0.05)
    assert failing.status("k") | {"started": 0, "ended": 0} == {
        "key": "k",
        "state": "failed",
        "message": "boom: no source",
        "started": 0,
        "ended": 0,
        "output": None,
        "undo": None,
    }
    assert json.dumps(failing.status("k"))  # goes to a dcc.Store as is


def test_apply_clicked_in_the_same_update_as_a_poll_tick_starts_the_resort(built, tmp_path):
    """Dash merges inputs that change while a callback is queued into one call: an Apply click that lands with a
    poll tick arrives with both triggered, the tick first. It failed a fresh-clone CI run (the re-sort never
    started; ``ctx.triggered_id`` named only the tick)."""
    from dash._callback_context import context_value
    from dash._utils import AttributeDict

    store = tmp_path / "store"
    shutil.copytree(built[0], store)
    app = create_app(store, stat_ttl=0, run_lookup=False, warm=False)
    viewer = viewer_of(app)
    started = []
    viewer.resort = lambda key: started.append(key)  # the click's effect, without running a real sort
    (apply,) = [
        entry["callback"].__wrapped__
        for entry in app.callback_map.values()
        if any(i["id"] == "corr-apply" for i in entry["inputs"])
    ]
    merged = [{"prop_id": "poll.n_intervals", "value": 7}, {"prop_id": "corr-apply.n_clicks", "value": 1}]
    context_value.set(AttributeDict(triggered_inputs=merged))
    apply(1, 7, {"partition": built[1], "version": "v"}, None)
    assert started == [built[1]]

    context_value.set(AttributeDict(triggered_inputs=merged[:1]))  # a tick alone starts nothing
    apply(1, 8, {"partition": built[1], "version": "v"}, None)
    assert started == [built[1]]
