"""Copies and quality flags: the duplicates view (groups, copies side by side), the "Keep this" choice (stored
as a ``keep`` hand correction, previewed at once and applied by the next sort) and the flag filter's entries."""

from __future__ import annotations

from typing import Any

from dash import ALL, Dash, Input, Output, State, ctx, no_update

from dash_viewer import ids, views
from dash_viewer.callbacks.common import current_data, filter_inputs, mask_of
from dash_viewer.data import PartitionData, ViewerStore
from dash_viewer.layout import flag_options
from neural_sorter import corrections
from neural_sorter.corrections import CorrectionError


def keep_copy(viewer: ViewerStore, data: PartitionData | None, idx: Any) -> tuple[str, bool]:
    """Stores the choice to keep point ``idx`` of its duplicate group; (message, whether anything changed)."""
    if data is None or data.valid_id(idx) is None:
        return "", False
    path = str(data.points["relative_path"].iat[int(idx)])
    try:
        choice = corrections.keep(data.points, path)
    except CorrectionError as exc:
        return f"Cannot keep it: {exc}.", False
    viewer.add_correction(data.key, choice)
    return f"Saved: {corrections.describe(choice)}. Apply to move the files.", True


def register(app: Dash, viewer: ViewerStore) -> None:
    @app.callback(
        Output(ids.FILTER_FLAGS, "options"),
        Output(ids.FILTER_FLAGS, "value"),
        Input(ids.VERSION, "data"),
        State(ids.FILTER_FLAGS, "value"),
        prevent_initial_call=True,
    )
    def _flags(version, chosen):
        options = flag_options(current_data(viewer, version))
        kept = [f for f in chosen or [] if f in {o["value"] for o in options}]
        return options, kept if kept != (chosen or []) else no_update

    @app.callback(
        Output(ids.PANE_DUPLICATES, "children"),
        Output(ids.BUILT_DUPLICATES, "data"),
        Input(ids.VIEW, "value"),
        Input(ids.VERSION, "data"),
        *filter_inputs(),
        State(ids.BUILT_DUPLICATES, "data"),
        prevent_initial_call=True,
    )
    def _duplicates(view, version, _color_by, clusters, categories, name, flags, built):
        key = [version, clusters, categories, name, flags]
        if view != "duplicates" or key == built:
            return no_update, no_update
        data = current_data(viewer, version)
        if data is None:
            return [], key
        return views.duplicates_view(data, mask_of(data, clusters, categories, name, flags)), key

    @app.callback(
        Output(ids.CORR_MESSAGE, "children", allow_duplicate=True),
        Output(ids.VERSION, "data", allow_duplicate=True),
        Input({"type": ids.KEEP, "idx": ALL}, "n_clicks"),
        State(ids.VERSION, "data"),
        prevent_initial_call=True,
    )
    def _keep(_clicks, version):
        trigger = ctx.triggered_id
        if not isinstance(trigger, dict) or not ctx.triggered[0].get("value"):
            return no_update, no_update  # buttons that just appeared
        data = current_data(viewer, version, strict=True)  # the id indexes the version on screen
        message, changed = keep_copy(viewer, data, trigger.get("idx"))
        if not changed or data is None:
            return message, no_update
        return message, {"partition": data.key, "version": viewer.version(data.key)}
