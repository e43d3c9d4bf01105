"""The 3D and 2D maps: drawing them for the filters, patching their highlight traces, hover tooltips, and
which of the three panes (3D, 2D, gallery) is on screen."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, Patch, State, no_update

from dash_viewer import ids, views
from dash_viewer.callbacks.common import current_data, filter_inputs, highlight_marks, mask_of
from dash_viewer.data import ViewerStore
from dash_viewer.figures import drawn_state, empty_figure, event_ids, highlight_traces, map_2d, map_3d

PANES = ((ids.PANE_3D, "3d"), (ids.PANE_2D, "2d"), (ids.PANE_GALLERY, "gallery"), (ids.PANE_DUPLICATES, "duplicates"))
#: Panes that are lists of thumbnails (scrolling, padded) rather than a graph.
LISTS = ("gallery", "duplicates")


def register(app: Dash, viewer: ViewerStore) -> None:
    @app.callback(
        Output(ids.MAP_3D, "figure"),
        Output(ids.COUNT, "children"),
        Output(ids.DRAWN_3D, "data"),
        Output(ids.MARKED_3D, "data"),
        Input(ids.VERSION, "data"),
        *filter_inputs(),
        State(ids.SELECTED, "data"),
        State(ids.RESULTS, "data"),
        prevent_initial_call=True,
    )
    def _map_3d(version, color_by, clusters, categories, name, flags, selected, results):
        data = current_data(viewer, version)
        if data is None:
            return empty_figure("No materialized partitions yet"), "", None, None
        drawn = drawn_state(data, color_by, clusters, categories, name, flags)
        mask = mask_of(data, drawn["clusters"], drawn["categories"], drawn["name"], drawn["flags"])
        marks = highlight_marks(data, selected, results)
        figure = map_3d(data, drawn["color_by"], mask, marks["selected"], marks["results"])
        shown = int(mask.sum())
        count = f"{shown:,} shown" if shown == len(data) else f"{shown:,} of {len(data):,} shown"
        return figure, count, drawn, marks

    @app.callback(
        Output(ids.MAP_3D, "figure", allow_duplicate=True),
        Output(ids.MAP_2D, "figure", allow_duplicate=True),
        Output(ids.MARKED_3D, "data", allow_duplicate=True),
        Output(ids.MARKED_2D, "data", allow_duplicate=True),
        Input(ids.SELECTED, "data"),
        Input(ids.RESULTS, "data"),
        Input(ids.VIEW, "value"),
        State(ids.VERSION, "data"),
        State(ids.DRAWN_3D, "data"),
        State(ids.DRAWN_2D, "data"),
        State(ids.MARKED_3D, "data"),
        State(ids.MARKED_2D, "data"),
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
        idx, ranked = marks["selected"], marks["results"]
        for position, (name, drawn, marked) in enumerate((("3d", drawn_3d, marked_3d), ("2d", drawn_2d, marked_2d))):
            current = drawn and drawn.get("version") == data.version and drawn.get("partition") == data.key
            if view != name or not current or marked == marks:
                continue
            patch = Patch()
            for trace_number, trace in enumerate(highlight_traces(data, idx, ranked, three_d=name == "3d")):
                patch["data"][trace_number] = trace
            out[position], out[position + 2] = patch, marks
        return out

    @app.callback(
        Output(ids.MAP_2D, "figure"),
        Output(ids.DRAWN_2D, "data"),
        Output(ids.MARKED_2D, "data"),
        Input(ids.VIEW, "value"),
        Input(ids.VERSION, "data"),
        *filter_inputs(),
        State(ids.DRAWN_2D, "data"),
        State(ids.SELECTED, "data"),
        State(ids.RESULTS, "data"),
        prevent_initial_call=True,
    )
    def _map_2d(view, version, color_by, clusters, categories, name, flags, drawn_before, selected, results):
        if view != "2d":
            return no_update, no_update, no_update
        data = current_data(viewer, version)
        if data is None:
            return empty_figure(), None, None
        drawn = drawn_state(data, color_by, clusters, categories, name, flags)
        if drawn == drawn_before:
            return no_update, no_update, no_update  # already drawn with these inputs: switching tabs is free
        mask = mask_of(data, drawn["clusters"], drawn["categories"], drawn["name"], drawn["flags"])
        marks = highlight_marks(data, selected, results)
        figure = map_2d(data, drawn["color_by"], mask, marks["selected"], marks["results"])
        return figure, drawn, marks

    @app.callback(*(Output(pane, "className") for pane, _ in PANES), Input(ids.VIEW, "value"))
    def _panes(view):
        return tuple(
            f"pane{' gallery' if name in LISTS else ''}{' active' if view == name else ''}" for _, name in PANES
        )

    def _tooltip(hover, drawn):
        data = current_data(viewer, drawn, strict=True)
        hovered = event_ids(data, drawn, ((hover or {}).get("points") or [])[:1])
        if not hovered or data is None:
            return False, no_update, no_update
        point = hover["points"][0]
        bbox = point.get("bbox") or {"x0": 16, "x1": 16, "y0": 56, "y1": 56}
        return True, bbox, views.tooltip_content(data, hovered[0])

    for graph, tip, drawn_store in ((ids.MAP_3D, ids.TIP_3D, ids.DRAWN_3D), (ids.MAP_2D, ids.TIP_2D, ids.DRAWN_2D)):
        app.callback(
            Output(tip, "show"),
            Output(tip, "bbox"),
            Output(tip, "children"),
            Input(graph, "hoverData"),
            State(drawn_store, "data"),
            prevent_initial_call=True,
        )(_tooltip)
