"""The 2D lasso selection and the CSV downloads of the selection or the search results."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, ctx, html, no_update

from dash_viewer import ids
from dash_viewer.callbacks.common import current_data, results_ids
from dash_viewer.data import PartitionData, ViewerStore, selection_csv
from dash_viewer.figures import FIRST_GROUP_TRACE, event_ids

LASSO_JS = """
function(selected, drawn) {
    // Only (curve, point) pairs go back to the server, which knows the ids of the drawn figure.
    var pairs = [];
    if (selected && selected.points) {
        for (var i = 0; i < selected.points.length; i++) {
            var p = selected.points[i];
            if (p.curveNumber >= FIRST_GROUP_TRACE) { pairs.push([p.curveNumber, p.pointNumber]); }
        }
    }
    return {drawn: drawn, points: pairs};
}
""".replace("FIRST_GROUP_TRACE", str(FIRST_GROUP_TRACE))


def csv_download(data: PartitionData | None, chosen: list[int], name: str) -> dict[str, Any] | None:
    """The ``dcc.Download`` payload for a list of point ids; None when there is nothing to save."""
    if data is None or not chosen:
        return None
    return {"content": selection_csv(data, chosen), "filename": f"{data.key}-{name}.csv", "type": "text/csv"}


def lasso_ids(lasso: dict[str, Any] | None, data: PartitionData | None) -> list[int]:
    """Lassoed ids, only while they belong to the version on screen (ids are per-version)."""
    if not lasso or data is None:
        return []
    pairs = [p for p in lasso.get("points") or [] if isinstance(p, (list, tuple)) and len(p) == 2]
    points = [{"curveNumber": c, "pointNumber": n} for c, n in pairs]
    return sorted(set(event_ids(data, lasso.get("drawn"), points)))


def register(app: Dash, viewer: ViewerStore) -> None:
    app.clientside_callback(
        LASSO_JS,
        Output(ids.LASSO, "data"),
        Input(ids.MAP_2D, "selectedData"),
        State(ids.DRAWN_2D, "data"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.LASSO_SUMMARY, "children"),
        Output(ids.DOWNLOAD_SELECTION, "disabled"),
        Input(ids.LASSO, "data"),
        Input(ids.VERSION, "data"),
    )
    def _lasso_summary(lasso, version):
        chosen = lasso_ids(lasso, current_data(viewer, version, strict=True))
        if not chosen:
            return "Nothing lassoed yet.", True
        return [html.Strong(f"{len(chosen):,}"), f" file{'s' if len(chosen) != 1 else ''} selected"], False

    @app.callback(
        Output(ids.DOWNLOAD, "data"),
        Input(ids.DOWNLOAD_SELECTION, "n_clicks"),
        Input(ids.DOWNLOAD_RESULTS, "n_clicks"),
        State(ids.LASSO, "data"),
        State(ids.RESULTS, "data"),
        State(ids.VERSION, "data"),
        prevent_initial_call=True,
    )
    def _download(_a, _b, lasso, results, version):
        data = current_data(viewer, version, strict=True)
        if ctx.triggered_id == ids.DOWNLOAD_RESULTS:
            payload = csv_download(data, results_ids(data, results), "results")
        else:
            payload = csv_download(data, lasso_ids(lasso, data), "selection")
        return payload or no_update
