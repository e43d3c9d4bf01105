"""Hand corrections: rename a cluster, merge clusters, move the selection (lasso, picked files or the selected
file) to another or a new cluster, drop a pending correction, and Apply (re-sort the folder so files move).

Every correction is stored at once (``neural_sorter.corrections``) and previewed on the page through the
data's version; the ``clusters`` stage applies them on every later sort.
"""

from __future__ import annotations

from typing import Any

from dash import ALL, Dash, Input, Output, State, ctx, no_update

from dash_viewer import ids, views
from dash_viewer.callbacks.common import clicked, current_data, selected_index
from dash_viewer.callbacks.export import lasso_ids
from dash_viewer.data import PartitionData, ViewerStore
from dash_viewer.layout import correction_targets, filter_options
from neural_sorter import corrections
from neural_sorter.corrections import CorrectionError


def move_ids(data: PartitionData | None, lasso: Any, picked: Any, selected: Any) -> list[int]:
    """The files a move takes: the lassoed and picked ones, or else the selected file."""
    if data is None:
        return []
    chosen = set(lasso_ids(lasso, data))
    for path in picked or []:
        idx = data.index_of(str(path))
        if idx is not None:
            chosen.add(idx)
    if not chosen:
        idx = selected_index(data, selected)
        if idx is not None:
            chosen.add(idx)
    return sorted(chosen)


def cluster_table(data: PartitionData):
    """The points as the clusters table a correction is made against (the preview, corrections included)."""
    return data.points[["content_hash", "cluster_id", "cluster_name", "distance_to_centroid"]]


def make_correction(data: PartitionData, action: str, values: dict[str, Any]) -> dict[str, Any]:
    """The correction an action button asks for; ``CorrectionError`` says what is missing."""
    table = cluster_table(data)
    if action == "rename":
        if values.get("cluster") is None:
            raise CorrectionError("choose the cluster to rename")
        return corrections.rename(table, int(values["cluster"]), str(values.get("name") or ""))
    if action == "merge":
        if values.get("into") is None:
            raise CorrectionError("choose the cluster to merge into")
        return corrections.merge(table, [int(c) for c in values.get("sources") or []], int(values["into"]))
    if action == "move":
        chosen = values.get("ids") or []
        hashes = [h for h in data.points["content_hash"].to_numpy()[chosen].tolist() if isinstance(h, str)]
        if chosen and not hashes:
            raise CorrectionError("these files have no content hash in the store; re-sort the folder first")
        new_name = values.get("new_name")
        to = values.get("to")
        return corrections.move(table, hashes, to=None if to is None else int(to), new_name=new_name or None)
    raise CorrectionError(f"unknown action {action!r}")


def edit(viewer: ViewerStore, data: PartitionData | None, trigger: Any, values: dict[str, Any]) -> tuple[str, bool]:
    """Stores the correction a button asks for (or drops one); (message, whether anything changed)."""
    if data is None:
        return "", False
    if isinstance(trigger, dict) and trigger.get("type") == ids.CORR_REMOVE:
        viewer.remove_correction(data.key, str(trigger.get("id")))
        return "Correction dropped.", True
    action = {ids.CORR_RENAME: "rename", ids.CORR_MERGE: "merge", ids.CORR_MOVE: "move"}.get(trigger)
    if action is None:
        return "", False
    try:
        correction = make_correction(data, action, values)
    except CorrectionError as exc:
        return f"Cannot {action}: {exc}.", False
    viewer.add_correction(data.key, correction)
    return f"Saved: {corrections.describe(correction)}. Apply to move the files.", True


def register(app: Dash, viewer: ViewerStore) -> None:
    @app.callback(
        Output(ids.CORR_MESSAGE, "children"),
        Output(ids.VERSION, "data", allow_duplicate=True),
        Output(ids.LASSO, "data", allow_duplicate=True),
        Output(ids.PICKED, "data", allow_duplicate=True),
        Output(ids.CORR_NAME, "value"),
        Output(ids.CORR_MOVE_NEW, "value"),
        Input(ids.CORR_RENAME, "n_clicks"),
        Input(ids.CORR_MERGE, "n_clicks"),
        Input(ids.CORR_MOVE, "n_clicks"),
        Input({"type": ids.CORR_REMOVE, "id": ALL}, "n_clicks"),
        State(ids.CORR_CLUSTER, "value"),
        State(ids.CORR_NAME, "value"),
        State(ids.CORR_MERGE_FROM, "value"),
        State(ids.CORR_MERGE_INTO, "value"),
        State(ids.CORR_MOVE_TO, "value"),
        State(ids.CORR_MOVE_NEW, "value"),
        State(ids.LASSO, "data"),
        State(ids.PICKED, "data"),
        State(ids.SELECTED, "data"),
        State(ids.VERSION, "data"),
        prevent_initial_call=True,
    )
    def _edit(_r, _m, _v, _x, cluster, name, sources, into, to, new_name, lasso, picked, selected, version):
        trigger = ctx.triggered_id
        if not ctx.triggered or not ctx.triggered[0].get("value"):
            return (no_update,) * 6  # a remove button that just appeared
        strict = trigger == ids.CORR_MOVE  # lasso ids index the version on screen
        data = current_data(viewer, version, strict=strict)
        values = {
            "cluster": cluster,
            "name": name,
            "sources": sources,
            "into": into,
            "to": to,
            "new_name": new_name,
            "ids": move_ids(data, lasso, picked, selected) if trigger == ids.CORR_MOVE else [],
        }
        message, changed = edit(viewer, data, trigger, values)
        if not changed or data is None:
            return message, no_update, no_update, no_update, no_update, no_update
        fresh = {"partition": data.key, "version": viewer.version(data.key)}
        moved = trigger == ids.CORR_MOVE
        return (
            message,
            fresh,
            [] if moved else no_update,
            [] if moved else no_update,
            "" if trigger == ids.CORR_RENAME else no_update,
            "" if moved else no_update,
        )

    @app.callback(
        Output(ids.CORR_LIST, "children"),
        Output(ids.CORR_CLUSTER, "options"),
        Output(ids.CORR_MERGE_FROM, "options"),
        Output(ids.CORR_MERGE_INTO, "options"),
        Output(ids.CORR_MOVE_TO, "options"),
        Input(ids.VERSION, "data"),
        prevent_initial_call=True,
    )
    def _panel(version):
        data = current_data(viewer, version)
        if data is None:
            return views.corrections_list([]), [], [], [], []
        cluster_opts, _ = filter_options(data)
        named = correction_targets(cluster_opts)
        return views.corrections_list(viewer.correction_rows(data.key)), named, named, named, cluster_opts

    @app.callback(
        Output(ids.CORR_MOVE, "children"),
        Output(ids.CORR_MOVE, "disabled"),
        Input(ids.LASSO, "data"),
        Input(ids.PICKED, "data"),
        Input(ids.SELECTED, "data"),
        Input(ids.VERSION, "data"),
    )
    def _move_button(lasso, picked, selected, version):
        count = len(move_ids(current_data(viewer, version, strict=True), lasso, picked, selected))
        return (f"Move {count} file{'s' if count != 1 else ''}" if count else "Move"), not count

    @app.callback(
        Output(ids.PICKED, "data"),
        Input(ids.PICK, "n_clicks"),
        State(ids.SELECTED, "data"),
        State(ids.PICKED, "data"),
        State(ids.VERSION, "data"),
        prevent_initial_call=True,
    )
    def _pick(_clicks, selected, picked, version):
        data = current_data(viewer, version)
        idx = selected_index(data, selected)
        if data is None or idx is None:
            return no_update
        path = str(data.points["relative_path"].iat[idx])
        picked = list(picked or [])
        return [p for p in picked if p != path] if path in picked else [*picked, path]

    @app.callback(
        Output(ids.PICK, "children"),
        Output(ids.PICK, "disabled"),
        Input(ids.SELECTED, "data"),
        Input(ids.PICKED, "data"),
        State(ids.VERSION, "data"),
    )
    def _pick_label(selected, picked, version):
        data = current_data(viewer, version)
        idx = selected_index(data, selected)
        if data is None or idx is None:
            return "Pick", True
        count = len(picked or [])
        if str(data.points["relative_path"].iat[idx]) in (picked or []):
            return f"Picked ✓ ({count})", False
        return (f"Pick ({count})" if count else "Pick"), False

    @app.callback(
        Output(ids.CORR_STATUS, "children"),
        Output(ids.CORR_APPLY, "disabled"),
        Output(ids.CORR_SEEN, "data"),
        Input(ids.CORR_APPLY, "n_clicks"),
        Input(ids.POLL, "n_intervals"),
        State(ids.VERSION, "data"),
        State(ids.CORR_SEEN, "data"),
        prevent_initial_call=True,
    )
    def _apply(_clicks, _tick, version, seen):
        key = (version or {}).get("partition")
        if clicked(ids.CORR_APPLY) and key:
            problem = viewer.resort(key)
            if problem:
                return views.resort_status({"state": "failed", "message": problem}), False, None
        status = viewer.resorter.status(key)
        if status == seen:
            return no_update, no_update, no_update
        running = bool(status) and status.get("state") == "running"
        return views.resort_status(status), running, status
