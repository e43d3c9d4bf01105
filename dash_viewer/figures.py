"""Plotly figures as plain dicts, built to stay small for 50,000 points.

Coordinates travel as base64 uint16 typed arrays (quantized on one scale) and are the only per-point payload:
one trace per cluster or category (so the legend toggles groups), no per-point text or ids. A point's id is
implicit: trace ``FIRST_GROUP_TRACE + g`` holds ``groups(...)[g].ids`` in order, so the server turns an
event's (curveNumber, pointNumber) back into an id from the same inputs that drew the figure (see
``event_ids``). That saves ~40% of the payload over a JSON ``customdata`` list, and a base64
``customdata`` is not an option: ``dcc.Graph`` reads event customdata from the undecoded input figure.

The first two traces of both maps are reserved for the selected point and the search results (with explicit
``customdata``, they are small), so those can be updated with a ``Patch`` instead of resending every point.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np

from dash_viewer.data import NO_CATEGORY, PartitionData, filter_mask

PALETTE = [
    "#8ab4ff",
    "#ff8fb1",
    "#5fe0c8",
    "#ffc46b",
    "#c39bff",
    "#7ddc8a",
    "#ff8a7a",
    "#6cc7ff",
    "#f5e27a",
    "#b0f0c2",
    "#ffb3d9",
    "#a5d8ff",
    "#ffd8a8",
    "#d0bfff",
    "#96f2d7",
    "#ffa8a8",
    "#bac8ff",
    "#e9fac8",
    "#99e9f2",
    "#fcc2d7",
    "#74c0fc",
    "#ffe066",
    "#8ce99a",
    "#e599f7",
]
MUTED = "#6b7385"
SELECTED_TRACE, RESULTS_TRACE, FIRST_GROUP_TRACE = 0, 1, 2
FONT = "Inter, ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
_DTYPES = {
    np.dtype("uint8"): "u1",
    np.dtype("int8"): "i1",
    np.dtype("uint16"): "u2",
    np.dtype("int16"): "i2",
    np.dtype("uint32"): "u4",
    np.dtype("int32"): "i4",
    np.dtype("float32"): "f4",
    np.dtype("float64"): "f8",
}


@dataclass(frozen=True)
class Group:
    """One legend entry: a cluster or a category, its colour and its point ids."""

    #: Also the trace ``uid``, which plotly.js puts into CSS selectors: letters, digits and dashes only.
    key: str
    label: str
    color: str
    ids: np.ndarray


def typed_array(values: np.ndarray) -> dict[str, str]:
    """Plotly.js's base64 typed-array form: 2 bytes per uint16 instead of ~8 characters of JSON text."""
    array = np.ascontiguousarray(values)
    code = _DTYPES[array.dtype]
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return {"dtype": code, "bdata": base64.b64encode(little.tobytes()).decode("ascii")}


def marker_size(n: int, three_d: bool = True) -> float:
    """Big dots for a few files, fine ones for tens of thousands, so neither looks empty nor like a smear."""
    size = 9.0 - 1.6 * np.log10(max(n, 1))
    return float(np.clip(size if three_d else size + 1.5, 2.0, 8.0))


def group_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def groups(data: PartitionData, color_by: str, mask: np.ndarray | None = None) -> list[Group]:
    """Legend groups in a stable order with stable colours (a filter never recolours what stays visible)."""
    points = data.points
    keep = np.ones(len(points), dtype=bool) if mask is None else mask
    out: list[Group] = []
    if color_by == "category" and data.has_categories:
        values = points["top_category"].fillna(NO_CATEGORY).to_numpy()
        names = [c for c in data.categories if c in set(values)] + sorted(
            set(values) - set(data.categories) - {NO_CATEGORY}
        )
        for index, name in enumerate(names):
            ids = np.flatnonzero((values == name) & keep)
            out.append(Group(f"category-{index}", name, group_color(index), ids))
        if (values == NO_CATEGORY).any():
            out.append(Group("category-none", NO_CATEGORY, MUTED, np.flatnonzero((values == NO_CATEGORY) & keep)))
    else:
        cluster_ids = points["cluster_id"].to_numpy()
        names = points["cluster_name"].to_numpy()
        for cid in sorted(set(cluster_ids.tolist()), key=lambda c: (c < 0, c)):
            members = cluster_ids == cid
            label = str(names[np.argmax(members)])
            color = MUTED if cid < 0 else group_color(int(cid))
            out.append(
                Group(f"cluster-{cid}" if cid >= 0 else "cluster-noise", label, color, np.flatnonzero(members & keep))
            )
    return [g for g in out if len(g.ids)]


def drawn_state(
    data: PartitionData, color_by: Any, clusters: Any, categories: Any, name: Any, flags: Any = None
) -> dict[str, Any]:
    """The inputs a map was drawn from; stored next to the figure so events can be mapped back to ids."""
    return {
        "flags": sorted(str(f) for f in flags or [] if isinstance(f, str)),
        "partition": data.key,
        "version": data.version,
        "color_by": color_by if color_by in ("cluster", "category") else "cluster",
        "clusters": sorted(int(c) for c in clusters or [] if isinstance(c, (int, float))),
        "categories": sorted(str(c) for c in categories or []),
        "name": name if isinstance(name, str) else "",
    }


def group_ids(data: PartitionData, drawn: dict[str, Any]) -> list[np.ndarray]:
    """Point ids per group trace of a figure drawn with ``drawn`` (the same ``groups`` call that drew it)."""
    key = (
        "groups",
        drawn.get("color_by"),
        tuple(drawn.get("clusters") or ()),
        tuple(drawn.get("categories") or ()),
        drawn.get("name") or "",
        tuple(drawn.get("flags") or ()),
    )
    cached = data.cache.get(key)
    if cached is None:
        name = drawn.get("name")
        mask = filter_mask(
            data,
            drawn.get("clusters") or None,
            drawn.get("categories") or None,
            name if isinstance(name, str) else None,
            drawn.get("flags") or None,
        )
        cached = [group.ids for group in groups(data, str(drawn.get("color_by")), mask)]
        if len(data.cache) > 32:
            data.cache.clear()
        data.cache[key] = cached
    return cached


def event_ids(data: PartitionData | None, drawn: dict[str, Any] | None, points: list[dict[str, Any]]) -> list[int]:
    """Point ids of plotly event points (hover, click, lasso), validated against the data on the server.

    Highlight traces carry explicit ``customdata``; group traces are mapped from (curveNumber, pointNumber)
    through the drawn state. A figure drawn from another version of the files yields nothing.
    """
    if data is None or not drawn or drawn.get("partition") != data.key or drawn.get("version") != data.version:
        return []
    out: list[int] = []
    for point in points:
        if not isinstance(point, dict):
            continue
        if "customdata" in point:
            idx = data.valid_id(point["customdata"])
        else:
            curve, number = point.get("curveNumber"), point.get("pointNumber")
            idx = None
            if isinstance(curve, int) and isinstance(number, int) and not isinstance(curve, bool):
                traces = group_ids(data, drawn)
                trace = curve - FIRST_GROUP_TRACE
                if 0 <= trace < len(traces) and 0 <= number < len(traces[trace]):
                    idx = int(traces[trace][number])
        if idx is not None:
            out.append(idx)
    return out


def _highlight(data: PartitionData, ids: list[int], selected: bool, three_d: bool) -> dict[str, Any]:
    """An overlay trace ringing the selected point (white diamond) or search matches (yellow circles)."""
    q = data.quantized()
    ids = [i for i in ids if data.valid_id(i) is not None]
    axes = ("x", "y", "z") if three_d else ("x", "y")
    colour = "#ffffff" if selected else "#ffd166"
    marker: dict[str, Any] = {
        "size": 16 if selected else (9 if three_d else 11),
        "symbol": "diamond-open" if selected else "circle-open",
        "color": colour,
    }
    if three_d:
        marker["opacity"] = 1.0
    else:
        marker["line"] = {"width": 2.5 if selected else 2, "color": colour}
    return {
        "type": "scatter3d" if three_d else "scattergl",
        "mode": "markers",
        "name": "selected" if selected else "matches",
        "uid": "selected" if selected else "matches",
        **{axis: [int(q[i, n]) for i in ids] for n, axis in enumerate(axes)},
        "customdata": ids,
        "hoverinfo": "none",
        "showlegend": False,
        "marker": marker,
    }


def highlight_traces(
    data: PartitionData, selected: int | None, results: list[int] | None, three_d: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two reserved traces (selected point, search results); also what a ``Patch`` writes."""
    chosen = [] if selected is None else [selected]
    return _highlight(data, chosen, True, three_d), _highlight(data, list(results or []), False, three_d)


def _legend() -> dict[str, Any]:
    return {
        "x": 0.01,
        "y": 0.99,
        "xanchor": "left",
        "yanchor": "top",
        "bgcolor": "rgba(20,23,32,0.72)",
        "bordercolor": "rgba(255,255,255,0.08)",
        "borderwidth": 1,
        "font": {"size": 12, "color": "#d5d9e3"},
        "itemsizing": "constant",
        "itemclick": "toggle",
        "itemdoubleclick": "toggleothers",
        "title": {"text": ""},
    }


def _point_traces(
    data: PartitionData,
    color_by: str,
    mask: np.ndarray | None,
    selected: int | None,
    results: list[int] | None,
    three_d: bool,
) -> list[dict[str, Any]]:
    """The two reserved highlight traces, then one trace per legend group (3D ``scatter3d`` or 2D ``scattergl``)."""
    q = data.quantized()
    size = marker_size(int(mask.sum()) if mask is not None else len(data), three_d=three_d)
    axes = ("x", "y", "z") if three_d else ("x", "y")
    traces: list[dict[str, Any]] = list(highlight_traces(data, selected, results, three_d=three_d))
    for group in groups(data, color_by, mask):
        trace: dict[str, Any] = {
            "type": "scatter3d" if three_d else "scattergl",
            "mode": "markers",
            "name": f"{group.label}  ·  {len(group.ids)}",
            "uid": group.key,
            "legendgroup": group.key,
            **{axis: typed_array(q[group.ids, n]) for n, axis in enumerate(axes)},
            "hoverinfo": "none",
        }
        if three_d:
            trace["marker"] = {"size": size, "color": group.color, "opacity": 0.88, "line": {"width": 0}}
        else:  # lasso selection dims what is left out
            trace["marker"] = {"size": size, "color": group.color, "opacity": 0.85}
            trace["selected"] = {"marker": {"opacity": 1.0}}
            trace["unselected"] = {"marker": {"opacity": 0.18}}
        traces.append(trace)
    return traces


def map_3d(
    data: PartitionData,
    color_by: str = "cluster",
    mask: np.ndarray | None = None,
    selected: int | None = None,
    results: list[int] | None = None,
) -> dict[str, Any]:
    """The 3D WebGL scatter of ``3d_projection``: one ``scatter3d`` trace per legend group."""
    traces = _point_traces(data, color_by, mask, selected, results, three_d=True)
    axis = {
        "visible": True,
        "showticklabels": False,
        "title": {"text": ""},
        "showspikes": False,
        "showbackground": False,
        "showgrid": True,
        "gridcolor": "#222735",
        "zeroline": False,
        "showline": False,
    }
    return {
        "data": traces,
        "layout": {
            "uirevision": data.key,
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
            "font": {"family": FONT, "color": "#d5d9e3"},
            "hovermode": "closest",
            "showlegend": True,
            "legend": _legend(),
            "scene": {
                "xaxis": axis,
                "yaxis": axis,
                "zaxis": axis,
                "aspectmode": "data",
                "dragmode": "orbit",
                "bgcolor": "rgba(0,0,0,0)",
                "camera": {"eye": {"x": 1.15, "y": 1.15, "z": 0.75}},
            },
        },
    }


def map_2d(
    data: PartitionData,
    color_by: str = "cluster",
    mask: np.ndarray | None = None,
    selected: int | None = None,
    results: list[int] | None = None,
) -> dict[str, Any]:
    """A ``scattergl`` view of x/y in lasso mode, where points are selected for the CSV export."""
    traces = _point_traces(data, color_by, mask, selected, results, three_d=False)
    axis = {"visible": False, "showgrid": False, "zeroline": False}
    return {
        "data": traces,
        "layout": {
            "uirevision": data.key,
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "margin": {"l": 8, "r": 8, "t": 8, "b": 8},
            "font": {"family": FONT, "color": "#d5d9e3"},
            "dragmode": "lasso",
            "hovermode": "closest",
            "clickmode": "event",
            "showlegend": True,
            "legend": _legend(),
            "xaxis": axis,
            "yaxis": {**axis, "scaleanchor": "x", "scaleratio": 1},
            "newselection": {"line": {"color": "#ffd166", "width": 1.5, "dash": "dot"}},
            "activeselection": {"fillcolor": "rgba(255,209,102,0.08)", "opacity": 1},
        },
    }


def empty_figure(message: str = "") -> dict[str, Any]:
    """A blank, transparent figure (with an optional centred note) for when there is nothing to plot."""
    return {
        "data": [],
        "layout": {
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
            "annotations": [
                {
                    "text": message,
                    "showarrow": False,
                    "font": {"size": 15, "color": "#8b93a7", "family": FONT},
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0.5,
                    "y": 0.5,
                }
            ]
            if message
            else [],
        },
    }
