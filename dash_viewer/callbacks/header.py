"""The header's run chips and the sidebar's options for the partition on screen, refilled on every version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dash import Dash, Input, Output, State, no_update

from dash_viewer import ids, views
from dash_viewer.callbacks.common import current_data
from dash_viewer.data import ViewerStore
from dash_viewer.layout import color_options, filter_options, shown_state


def register(app: Dash, viewer: ViewerStore) -> None:
    @app.callback(
        Output(ids.RUN_INFO, "children"),
        Output(ids.FILTER_CLUSTER, "options"),
        Output(ids.FILTER_CLUSTER, "value"),
        Output(ids.FILTER_CATEGORY, "options"),
        Output(ids.FILTER_CATEGORY, "value"),
        Output(ids.FILTER_CATEGORY, "disabled"),
        Output(ids.COLOR_BY, "options"),
        Output(ids.COLOR_BY, "value"),
        Output(ids.FILTER_NAME, "value"),
        Output(ids.RELOAD_NOTE, "children"),
        Output(ids.SHOWN, "data"),
        Input(ids.VERSION, "data"),
        State(ids.FILTER_CLUSTER, "value"),
        State(ids.FILTER_CATEGORY, "value"),
        State(ids.COLOR_BY, "value"),
        State(ids.SHOWN, "data"),
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
            fresh = shown_state(viewer, data) or {}
            changed = fresh.get("tables") != (shown or {}).get("tables")
            what = "Newer materialization loaded" if changed else "Hand corrections shown"
            note = f"{what} at {datetime.now():%H:%M:%S}"
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
            shown_state(viewer, data),
        )
