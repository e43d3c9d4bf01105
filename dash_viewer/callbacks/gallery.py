"""The gallery view (one section per cluster or category) and its "show more" buttons."""

from __future__ import annotations

from dash import ALL, Dash, Input, Output, State, ctx, no_update

from dash_viewer import ids, views
from dash_viewer.callbacks.common import current_data, filter_inputs, mask_of
from dash_viewer.data import ViewerStore

MORE_PER_CLICK = 24


def register(app: Dash, viewer: ViewerStore) -> None:
    @app.callback(
        Output(ids.PANE_GALLERY, "children"),
        Output(ids.BUILT_GALLERY, "data"),
        Input(ids.VIEW, "value"),
        Input(ids.VERSION, "data"),
        *filter_inputs(),
        Input(ids.GALLERY_LIMITS, "data"),
        State(ids.BUILT_GALLERY, "data"),
        prevent_initial_call=True,
    )
    def _gallery(view, version, color_by, clusters, categories, name, flags, limits, built):
        key = [version, color_by, clusters, categories, name, flags, limits]
        if view != "gallery" or key == built:
            return no_update, no_update
        data = current_data(viewer, version)
        if data is None:
            return [], key
        return views.gallery(data, color_by, mask_of(data, clusters, categories, name, flags), limits), key

    @app.callback(
        Output(ids.GALLERY_LIMITS, "data"),
        Input({"type": ids.GALLERY_MORE, "group": ALL}, "n_clicks"),
        State(ids.GALLERY_LIMITS, "data"),
        prevent_initial_call=True,
    )
    def _gallery_more(_clicks, limits):
        trigger = ctx.triggered_id
        if not isinstance(trigger, dict) or not ctx.triggered[0].get("value"):
            return no_update
        limits = dict(limits or {})
        limits[trigger["group"]] = int(limits.get(trigger["group"], views.GALLERY_PAGE)) + MORE_PER_CLICK
        return limits
