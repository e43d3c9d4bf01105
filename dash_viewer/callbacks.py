"""Callbacks: thin wiring from Dash inputs to the plain functions in ``data``, ``figures`` and ``views``.

The decisions that deserve tests live in module-level functions (``sync_state``, ``pick_selection``,
``run_query``, ``csv_download``) that take the viewer and plain values; the decorated callbacks only unpack
Dash's arguments and call them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from dash import ALL, Dash, Input, Output, Patch, State, ctx, html, no_update

from dash_viewer import views
from dash_viewer.data import (
    PartitionData,
    TextSearchUnavailable,
    ViewerStore,
    filter_mask,
    neighbours,
    selection_csv,
    text_search,
)
from dash_viewer.figures import (
    FIRST_GROUP_TRACE,
    drawn_state,
    empty_figure,
    event_ids,
    highlight_traces,
    map_2d,
    map_3d,
)
from dash_viewer.layout import color_options, filter_options

RESULTS_K = 36
_LASSO_JS = (
    """
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
)


# ---------------------------------------------------------------------- testable decisions


def current_data(
    viewer: ViewerStore, version: dict[str, Any] | None, strict: bool = False
) -> PartitionData | None:
    """The data for the partition named in the page's version store, if it is (still) a known partition.

    ``strict`` is for ids that come back from the browser (hover, click, lasso): they index the version the
    page was drawn from, so when the files changed since, they are ignored until the page has re-rendered
    (within one poll) rather than resolved against a different file.
    """
    key = (version or {}).get("partition")
    if not viewer.is_partition(key):
        return None
    data = viewer.load(key)
    if strict and data.version != (version or {}).get("version"):
        return None
    return data


def sync_state(
    viewer: ViewerStore, requested: str | None, options: list[dict[str, Any]] | None, current: dict[str, Any] | None
) -> tuple[Any, Any, Any]:
    """(options, value, version) for the partition picker and the version store; ``no_update`` where unchanged.

    Runs on the poll timer and on partition changes: new partitions appear in the picker, a vanished one falls
    back to the newest, and a changed file under the shown partition bumps the version, which re-renders.
    """
    keys = viewer.partitions()
    new_options = views.partition_options(keys, viewer.sources())
    key = requested if requested in keys else (keys[0] if keys else None)
    state = {"partition": key, "version": viewer.version(key)} if key else None
    return (
        new_options if new_options != options else no_update,
        key if key != requested else no_update,
        state if state != current else no_update,
    )


def selected_index(data: PartitionData | None, selected: dict[str, Any] | None) -> int | None:
    """The selected point id in ``data``'s version, following the file if ids moved in a newer version."""
    if data is None or not selected or selected.get("partition") != data.key:
        return None
    idx = data.valid_id(selected.get("idx"))
    path = selected.get("path")
    if idx is not None and data.points["relative_path"].iat[idx] == path:
        return idx
    return data.index_of(path) if isinstance(path, str) else None


def selection_for(data: PartitionData, idx: int | None) -> dict[str, Any] | None:
    if idx is None or data.valid_id(idx) is None:
        return None
    return {"partition": data.key, "idx": int(idx), "path": str(data.points["relative_path"].iat[idx])}


def pick_selection(
    data: PartitionData | None,
    trigger: Any,
    trigger_value: Any,
    click_3d: Any,
    click_2d: Any,
    current: Any,
    drawn_3d: dict[str, Any] | None = None,
    drawn_2d: dict[str, Any] | None = None,
) -> Any:
    """What a click means: a map point (mapped back through the drawn state) or a thumbnail (the id in its
    component id).

    Thumbnails that just appeared also fire the pattern-matching input with ``n_clicks`` 0; those are not
    clicks and leave the selection alone.
    """
    if data is None:  # partition gone (clear), or the click came from a figure of an older version (ignore)
        return None if trigger == "version" else no_update
    if trigger == "version":
        idx = selected_index(data, current)
        fresh = selection_for(data, idx)
        return fresh if fresh != current else no_update
    if trigger in ("map-3d", "map-2d"):
        click, drawn = (click_3d, drawn_3d) if trigger == "map-3d" else (click_2d, drawn_2d)
        ids = event_ids(data, drawn, ((click or {}).get("points") or [])[:1])
        return selection_for(data, ids[0]) if ids else no_update
    if isinstance(trigger, dict) and trigger.get("type") == "thumb":
        if not trigger_value:
            return no_update
        return selection_for(data, data.valid_id(trigger.get("idx"))) or no_update
    return no_update


def run_query(
    data: PartitionData | None,
    query: dict[str, Any] | None,
    mask: np.ndarray | None,
    k: int = RESULTS_K,
) -> tuple[dict[str, Any] | None, str]:
    """Runs a "more like this" (``{"kind": "similar", "path": ...}``) or text (``{"kind": "text", "text": ...}``)
    query against the current version and filters; returns the results store and a message for the sidebar."""
    if data is None or not query:
        return None, ""
    if query.get("kind") == "similar":
        idx = data.index_of(str(query.get("path")))
        if idx is None:
            return None, ""
        ids, scores = neighbours(data, idx, k, mask)
        title = f"More like {data.points['name'].iat[idx]}"
        message = "" if data.vectors is not None else "This partition has no embedding vectors."
    elif query.get("kind") == "text":
        text = str(query.get("text") or "")
        try:
            ids, scores = text_search(data, text, k, mask)
        except TextSearchUnavailable as exc:
            return None, str(exc)
        title = f"“{text.strip()}”"
        message = f"{len(ids)} best matches for “{text.strip()}”."
    else:
        return None, ""
    store = {
        "partition": data.key,
        "version": data.version,
        "query": query,
        "title": title,
        "ids": [int(i) for i in ids],
        "scores": [round(float(s), 4) for s in scores],
    }
    return store, message


def csv_download(data: PartitionData | None, ids: list[int], name: str) -> dict[str, Any] | None:
    """The ``dcc.Download`` payload for a list of point ids; None when there is nothing to save."""
    if data is None or not ids:
        return None
    return {"content": selection_csv(data, ids), "filename": f"{data.key}-{name}.csv", "type": "text/csv"}


def mask_of(data: PartitionData, clusters: Any, categories: Any, name: Any) -> np.ndarray:
    return filter_mask(data, clusters or None, categories or None, name if isinstance(name, str) else None)


def highlight_marks(data: PartitionData, selected: Any, results: Any) -> dict[str, Any]:
    """What the two highlight traces of a map show; remembered per map so unchanged marks are not re-sent."""
    return {"version": data.version, "selected": selected_index(data, selected), "results": results_ids(data, results)}


def results_ids(data: PartitionData | None, results: dict[str, Any] | None) -> list[int]:
    if data is None or not results or results.get("version") != data.version:
        return []
    return [int(i) for i in results.get("ids", [])]


def _view_key(version: Any, *parts: Any) -> list[Any]:
    return [version, *parts]


# ---------------------------------------------------------------------- wiring


def register(app: Dash, viewer: ViewerStore) -> None:
    """Attaches every callback of the page to ``app``."""

    @app.callback(
        Output("partition", "options"),
        Output("partition", "value"),
        Output("version", "data"),
        Input("poll", "n_intervals"),
        Input("partition", "value"),
        State("partition", "options"),
        State("version", "data"),
        prevent_initial_call=True,
    )
    def _sync(_tick: int, requested: str | None, options: list[dict[str, Any]], current: dict[str, Any] | None):
        return sync_state(viewer, requested, options, current)

    @app.callback(
        Output("run-info", "children"),
        Output("filter-cluster", "options"),
        Output("filter-cluster", "value"),
        Output("filter-category", "options"),
        Output("filter-category", "value"),
        Output("filter-category", "disabled"),
        Output("color-by", "options"),
        Output("color-by", "value"),
        Output("filter-name", "value"),
        Output("reload-note", "children"),
        Output("shown", "data"),
        Input("version", "data"),
        State("filter-cluster", "value"),
        State("filter-category", "value"),
        State("color-by", "value"),
        State("shown", "data"),
        prevent_initial_call=True,
    )
    def _header(version, clusters, categories, color_by, shown):
        data = current_data(viewer, version)
        if data is None:
            return [], [], [], [], [], True, color_options(None), "cluster", "", "", None
        info = viewer.materialization(data.key)
        cluster_opts, category_opts = filter_options(data)
        if (shown or {}).get("partition") == data.key:
            keep_clusters = [c for c in clusters or [] if c in {o["value"] for o in cluster_opts}]
            keep_categories = [c for c in categories or [] if c in {o["value"] for o in category_opts}]
            note = f"Newer materialization loaded at {datetime.now():%H:%M:%S}"
            name_value: Any = no_update
        else:
            keep_clusters, keep_categories, note, name_value = [], [], "", ""
        color = color_by if color_by != "category" or data.has_categories else "cluster"
        return (
            views.run_info(info),
            cluster_opts,
            keep_clusters if keep_clusters != (clusters or []) else no_update,
            category_opts,
            keep_categories if keep_categories != (categories or []) else no_update,
            not category_opts,
            color_options(data),
            color if color != color_by else no_update,
            name_value,
            note,
            {"partition": data.key, "version": data.version},
        )

    filters = [
        Input("color-by", "value"),
        Input("filter-cluster", "value"),
        Input("filter-category", "value"),
        Input("filter-name", "value"),
    ]

    @app.callback(
        Output("map-3d", "figure"),
        Output("count", "children"),
        Output("drawn-3d", "data"),
        Output("marked-3d", "data"),
        Input("version", "data"),
        *filters,
        State("selected", "data"),
        State("results", "data"),
        prevent_initial_call=True,
    )
    def _map_3d(version, color_by, clusters, categories, name, selected, results):
        data = current_data(viewer, version)
        if data is None:
            return empty_figure("No materialized partitions yet"), "", None, None
        drawn = drawn_state(data, color_by, clusters, categories, name)
        mask = mask_of(data, drawn["clusters"], drawn["categories"], drawn["name"])
        marks = highlight_marks(data, selected, results)
        figure = map_3d(data, drawn["color_by"], mask, marks["selected"], marks["results"])
        shown = int(mask.sum())
        count = f"{shown:,} shown" if shown == len(data) else f"{shown:,} of {len(data):,} shown"
        return figure, count, drawn, marks

    @app.callback(
        Output("map-3d", "figure", allow_duplicate=True),
        Output("map-2d", "figure", allow_duplicate=True),
        Output("marked-3d", "data", allow_duplicate=True),
        Output("marked-2d", "data", allow_duplicate=True),
        Input("selected", "data"),
        Input("results", "data"),
        Input("view", "value"),
        State("version", "data"),
        State("drawn-3d", "data"),
        State("drawn-2d", "data"),
        State("marked-3d", "data"),
        State("marked-2d", "data"),
        prevent_initial_call=True,
    )
    def _highlight(selected, results, view, version, drawn_3d, drawn_2d, marked_3d, marked_2d):
        """Patches only the two highlight traces, and only of the map on screen: re-rendering a hidden
        50,000-point WebGL scene on every gallery click would cost seconds on a weak GPU for nothing."""
        data = current_data(viewer, version)
        out: list[Any] = [no_update] * 4
        if data is None:
            return out
        marks = highlight_marks(data, selected, results)
        idx, ids = marks["selected"], marks["results"]
        for position, (name, drawn, marked) in enumerate((("3d", drawn_3d, marked_3d), ("2d", drawn_2d, marked_2d))):
            current = drawn and drawn.get("version") == data.version and drawn.get("partition") == data.key
            if view != name or not current or marked == marks:
                continue
            patch = Patch()
            for trace_number, trace in enumerate(highlight_traces(data, idx, ids, three_d=name == "3d")):
                patch["data"][trace_number] = trace
            out[position], out[position + 2] = patch, marks
        return out

    @app.callback(
        Output("map-2d", "figure"),
        Output("drawn-2d", "data"),
        Output("marked-2d", "data"),
        Input("view", "value"),
        Input("version", "data"),
        *filters,
        State("drawn-2d", "data"),
        State("selected", "data"),
        State("results", "data"),
        prevent_initial_call=True,
    )
    def _map_2d(view, version, color_by, clusters, categories, name, drawn_before, selected, results):
        if view != "2d":
            return no_update, no_update, no_update
        data = current_data(viewer, version)
        if data is None:
            return empty_figure(), None, None
        drawn = drawn_state(data, color_by, clusters, categories, name)
        if drawn == drawn_before:
            return no_update, no_update, no_update  # already drawn with these inputs: switching tabs is free
        mask = mask_of(data, drawn["clusters"], drawn["categories"], drawn["name"])
        marks = highlight_marks(data, selected, results)
        figure = map_2d(data, drawn["color_by"], mask, marks["selected"], marks["results"])
        return figure, drawn, marks

    @app.callback(
        Output("pane-gallery", "children"),
        Output("built-gallery", "data"),
        Input("view", "value"),
        Input("version", "data"),
        *filters,
        Input("gallery-limits", "data"),
        State("built-gallery", "data"),
        prevent_initial_call=True,
    )
    def _gallery(view, version, color_by, clusters, categories, name, limits, built):
        key = _view_key(version, color_by, clusters, categories, name, limits)
        if view != "gallery" or key == built:
            return no_update, no_update
        data = current_data(viewer, version)
        if data is None:
            return [], key
        return views.gallery(data, color_by, mask_of(data, clusters, categories, name), limits), key

    @app.callback(
        Output("gallery-limits", "data"),
        Input({"type": "gallery-more", "group": ALL}, "n_clicks"),
        State("gallery-limits", "data"),
        prevent_initial_call=True,
    )
    def _gallery_more(_clicks, limits):
        trigger = ctx.triggered_id
        if not isinstance(trigger, dict) or not ctx.triggered[0].get("value"):
            return no_update
        limits = dict(limits or {})
        limits[trigger["group"]] = int(limits.get(trigger["group"], views.GALLERY_PAGE)) + 24
        return limits

    @app.callback(
        Output("pane-3d", "className"),
        Output("pane-2d", "className"),
        Output("pane-gallery", "className"),
        Input("view", "value"),
    )
    def _panes(view):
        return tuple(
            f"pane{' gallery' if name == 'gallery' else ''}{' active' if view == name else ''}"
            for name in ("3d", "2d", "gallery")
        )

    def _tooltip(hover, drawn):
        data = current_data(viewer, drawn, strict=True)
        ids = event_ids(data, drawn, ((hover or {}).get("points") or [])[:1])
        if not ids or data is None:
            return False, no_update, no_update
        point = hover["points"][0]
        bbox = point.get("bbox") or {"x0": 16, "x1": 16, "y0": 56, "y1": 56}
        return True, bbox, views.tooltip_content(data, ids[0])

    for graph, tip, drawn_store in (("map-3d", "tip-3d", "drawn-3d"), ("map-2d", "tip-2d", "drawn-2d")):
        app.callback(
            Output(tip, "show"),
            Output(tip, "bbox"),
            Output(tip, "children"),
            Input(graph, "hoverData"),
            State(drawn_store, "data"),
            prevent_initial_call=True,
        )(_tooltip)

    @app.callback(
        Output("selected", "data"),
        Input("map-3d", "clickData"),
        Input("map-2d", "clickData"),
        Input({"type": "thumb", "where": ALL, "idx": ALL}, "n_clicks"),
        Input("version", "data"),
        State("selected", "data"),
        State("drawn-3d", "data"),
        State("drawn-2d", "data"),
        prevent_initial_call=True,
    )
    def _select(click_3d, click_2d, _thumbs, version, current, drawn_3d, drawn_2d):
        value = ctx.triggered[0].get("value") if ctx.triggered else None
        strict = ctx.triggered_id != "version"
        data = current_data(viewer, version, strict)
        return pick_selection(data, ctx.triggered_id, value, click_3d, click_2d, current, drawn_3d, drawn_2d)

    @app.callback(
        Output("detail", "children"),
        Output("more-like-this", "disabled"),
        Input("selected", "data"),
        Input("version", "data"),
        prevent_initial_call=True,
    )
    def _detail(selected, version):
        data = current_data(viewer, version)
        if data is None:
            return views.detail_panel(None, None), True
        idx = selected_index(data, selected)
        return views.detail_panel(data, idx), idx is None

    @app.callback(
        Output("results", "data"),
        Output("search-message", "children"),
        Input("more-like-this", "n_clicks"),
        Input("text-search", "n_clicks"),
        Input("text-query", "n_submit"),
        Input("clear-results", "n_clicks"),
        Input("version", "data"),
        Input("filter-cluster", "value"),
        Input("filter-category", "value"),
        Input("filter-name", "value"),
        State("selected", "data"),
        State("text-query", "value"),
        State("results", "data"),
        prevent_initial_call=True,
    )
    def _results(_more, _search, _submit, _clear, version, clusters, categories, name, selected, text, results):
        trigger = ctx.triggered_id
        data = current_data(viewer, version)
        if trigger == "clear-results" or data is None:
            return None, ""
        if trigger == "more-like-this":
            idx = selected_index(data, selected)
            if idx is None:
                return no_update, no_update
            query: dict[str, Any] | None = {"kind": "similar", "path": str(data.points["relative_path"].iat[idx])}
        elif trigger in ("text-search", "text-query"):
            query = {"kind": "text", "text": text or ""}
        else:  # version or filters changed: re-run the standing query, if any, on the new data
            if not results:
                return no_update, no_update
            if results.get("partition") != data.key:
                return None, ""
            query = results.get("query")
        store, message = run_query(data, query, mask_of(data, clusters, categories, name))
        if store is None and (query or {}).get("kind") == "text" and trigger in ("text-search", "text-query"):
            return no_update, message  # a text search that cannot run leaves the results on screen alone
        return store, message

    @app.callback(
        Output("results-body", "children"),
        Output("results-title", "children"),
        Output("results-card", "className"),
        Input("results", "data"),
        Input("selected", "data"),
        State("version", "data"),
        prevent_initial_call=True,
    )
    def _results_panel(results, selected, version):
        data = current_data(viewer, version)
        ids = results_ids(data, results)
        if data is None or not results:
            return views.results_placeholder(), "Results", "card results-card empty"
        body = views.results_panel(data, ids, results.get("scores", []), selected_index(data, selected))
        title = [html.Span(results.get("title", "")), html.Span(f"{len(ids)} matches", className="muted")]
        return body, title, "card results-card"

    app.clientside_callback(
        _LASSO_JS,
        Output("lasso", "data"),
        Input("map-2d", "selectedData"),
        State("drawn-2d", "data"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output("lasso-summary", "children"),
        Output("download-selection", "disabled"),
        Input("lasso", "data"),
        Input("version", "data"),
    )
    def _lasso_summary(lasso, version):
        ids = _lasso_ids(lasso, current_data(viewer, version, strict=True))
        if not ids:
            return "Nothing lassoed yet.", True
        return [html.Strong(f"{len(ids):,}"), f" file{'s' if len(ids) != 1 else ''} selected"], False

    @app.callback(
        Output("download", "data"),
        Input("download-selection", "n_clicks"),
        Input("download-results", "n_clicks"),
        State("lasso", "data"),
        State("results", "data"),
        State("version", "data"),
        prevent_initial_call=True,
    )
    def _download(_a, _b, lasso, results, version):
        data = current_data(viewer, version, strict=True)
        if ctx.triggered_id == "download-results":
            payload = csv_download(data, results_ids(data, results), "results")
        else:
            payload = csv_download(data, _lasso_ids(lasso, data), "selection")
        return payload or no_update


def _lasso_ids(lasso: dict[str, Any] | None, data: PartitionData | None) -> list[int]:
    """Lassoed ids, only while they belong to the version on screen (ids are per-version)."""
    if not lasso or data is None:
        return []
    pairs = [p for p in lasso.get("points") or [] if isinstance(p, (list, tuple)) and len(p) == 2]
    points = [{"curveNumber": c, "pointNumber": n} for c, n in pairs]
    return sorted(set(event_ids(data, lasso.get("drawn"), points)))
