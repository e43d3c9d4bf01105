"""What a click selects (a map point or a thumbnail) and the detail panel of the selected file."""

from __future__ import annotations

from typing import Any

from dash import ALL, Dash, Input, Output, State, ctx, no_update

from dash_viewer import ids, views
from dash_viewer.callbacks.common import current_data, selected_index, selection_for
from dash_viewer.data import PartitionData, ViewerStore
from dash_viewer.data.duplicates import quality_scores
from dash_viewer.figures import event_ids

#: Plotly's 3D scene only reports a click when one of its animation frames happens to run while the button is
#: down, so a quick click (or one on a slow, software-rendered WebGL canvas) arrives as a mere hover and the
#: point is never selected (issue 11). The page therefore turns a press and release on the scene that did not
#: move (no orbit drag) into ``clickData`` of the point under the pointer, the one plotly last reported as
#: hovered. Installed once per page by a clientside callback with no output; ``{MAP}`` is the graph's id.
CLICK_3D_JS = """
function(_figure) {
    if (window.__neuralSorterClick3d) { return; }
    window.__neuralSorterClick3d = true;
    var graph = function() { return document.getElementById('{MAP}'); };
    var hovered = null, down = null;
    var hook = function() {
        var root = graph(), gd = root && root.querySelector('.js-plotly-plot');
        if (!gd || !gd.on || gd.__neuralSorterHooked) { return; }
        gd.__neuralSorterHooked = true;
        gd.on('plotly_hover', function(event) {
            var p = event && event.points && event.points[0];
            hovered = p ? {curveNumber: p.curveNumber, pointNumber: p.pointNumber} : null;
        });
        gd.on('plotly_unhover', function() { hovered = null; });
    };
    var onScene = function(event) {
        var root = graph();
        return !!(root && root.contains(event.target) && event.target.closest('.gl-container'));
    };
    document.addEventListener('pointermove', function(event) { if (onScene(event)) { hook(); } }, true);
    document.addEventListener('pointerdown', function(event) {
        hook();
        down = onScene(event) && event.button === 0 ? [event.clientX, event.clientY] : null;
    }, true);
    document.addEventListener('pointerup', function(event) {
        var start = down;
        down = null;
        if (!start || !onScene(event) || !hovered) { return; }
        if (Math.abs(event.clientX - start[0]) + Math.abs(event.clientY - start[1]) > 4) { return; }  // orbit
        window.dash_clientside.set_props('{MAP}', {clickData: {points: [hovered]}});
    }, true);
}
"""


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
        return None if trigger == ids.VERSION else no_update
    if trigger == ids.VERSION:
        idx = selected_index(data, current)
        fresh = selection_for(data, idx)
        return fresh if fresh != current else no_update
    if trigger in (ids.MAP_3D, ids.MAP_2D):
        click, drawn = (click_3d, drawn_3d) if trigger == ids.MAP_3D else (click_2d, drawn_2d)
        clicked = event_ids(data, drawn, ((click or {}).get("points") or [])[:1])
        return selection_for(data, clicked[0]) if clicked else no_update
    if isinstance(trigger, dict) and trigger.get("type") == ids.THUMB:
        if not trigger_value:
            return no_update
        return selection_for(data, data.valid_id(trigger.get("idx"))) or no_update
    return no_update


def register(app: Dash, viewer: ViewerStore) -> None:
    app.clientside_callback(CLICK_3D_JS.replace("{MAP}", ids.MAP_3D), Input(ids.MAP_3D, "figure"))

    @app.callback(
        Output(ids.SELECTED, "data"),
        Input(ids.MAP_3D, "clickData"),
        Input(ids.MAP_2D, "clickData"),
        Input({"type": ids.THUMB, "where": ALL, "idx": ALL}, "n_clicks"),
        Input(ids.VERSION, "data"),
        State(ids.SELECTED, "data"),
        State(ids.DRAWN_3D, "data"),
        State(ids.DRAWN_2D, "data"),
        prevent_initial_call=True,
    )
    def _select(click_3d, click_2d, _thumbs, version, current, drawn_3d, drawn_2d):
        value = ctx.triggered[0].get("value") if ctx.triggered else None
        strict = ctx.triggered_id != ids.VERSION
        data = current_data(viewer, version, strict)
        return pick_selection(data, ctx.triggered_id, value, click_3d, click_2d, current, drawn_3d, drawn_2d)

    @app.callback(
        Output(ids.DETAIL, "children"),
        Output(ids.MORE_LIKE_THIS, "disabled"),
        Input(ids.SELECTED, "data"),
        Input(ids.VERSION, "data"),
        prevent_initial_call=True,
    )
    def _detail(selected, version):
        data = current_data(viewer, version)
        if data is None:
            return views.detail_panel(None, None), True
        idx = selected_index(data, selected)
        if idx is None:
            return views.detail_panel(data, None), True
        scores = quality_scores(data, idx, viewer.thumbnail(data.key, idx))
        return views.detail_panel(data, idx, quality=scores), False
