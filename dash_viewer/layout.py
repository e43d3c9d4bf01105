"""The page skeleton. It is rebuilt for every page load, already filled for the newest partition, so the
first paint needs no callback round trip; callbacks only run when the user (or a newer materialization)
changes something."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from dash_viewer import ids, views
from dash_viewer.data import NO_CATEGORY, PartitionData, ViewerStore
from dash_viewer.data.duplicates import flag_counts
from dash_viewer.figures import drawn_state, empty_figure, map_3d

GRAPH_CONFIG: dict[str, Any] = {
    "displaylogo": False,
    "scrollZoom": True,
    "responsive": True,
    "modeBarButtonsToRemove": ["toImage", "resetCameraLastSave3d", "hoverClosest3d"],
}
GRAPH_2D_CONFIG: dict[str, Any] = {
    **GRAPH_CONFIG,
    "modeBarButtonsToRemove": ["toImage", "autoScale2d", "hoverClosestCartesian", "hoverCompareCartesian"],
}


def filter_options(data: PartitionData | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Cluster and category dropdown entries with their sizes, biggest first."""
    if data is None:
        return [], []
    points = data.points
    sizes = points.groupby(["cluster_id", "cluster_name"]).size().reset_index(name="n")
    clusters = [
        {"label": f"{row.cluster_name} ({row.n})", "value": int(row.cluster_id)}
        for row in sizes.sort_values(["cluster_id"]).itertuples()
    ]
    counts = points["top_category"].fillna(NO_CATEGORY).value_counts()
    if not data.has_categories:
        return clusters, []
    categories = [{"label": f"{name} ({n})", "value": name} for name, n in counts.items()]
    return clusters, categories


def flag_options(data: PartitionData | None) -> list[dict[str, Any]]:
    """Quality-flag filter entries with their counts (only flags some file has)."""
    return [{"label": f"{flag.replace('_', ' ')} ({n})", "value": flag} for flag, n in flag_counts(data)]


def color_options(data: PartitionData | None) -> list[dict[str, Any]]:
    has = data is not None and data.has_categories
    return [
        {"label": "Cluster", "value": "cluster"},
        {
            "label": "Category",
            "value": "category",
            "disabled": not has,
            "title": "" if has else "zero-shot categories need CLIP with categories configured",
        },
    ]


def shown_state(viewer: ViewerStore, data: PartitionData | None) -> dict[str, Any] | None:
    """What the header was last filled for: partition, version and the tables' own version (corrections aside)."""
    if data is None:
        return None
    tables = data.tables_version or viewer.tables_version(data.key)
    return {"partition": data.key, "version": data.version, "tables": tables}


def correction_targets(cluster_opts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Clusters a correction can name: every cluster but the unsorted files."""
    return [o for o in cluster_opts if int(o["value"]) >= 0]


def corrections_section(cluster_opts: list[dict[str, Any]], rows: list[dict[str, Any]] | None = None) -> html.Div:
    """Rename, merge, move the selection, the list of corrections and the Apply button."""
    named = correction_targets(cluster_opts)
    return _section(
        "Hand corrections",
        html.Div("Rename a cluster", className="sub-label"),
        dcc.Dropdown(id=ids.CORR_CLUSTER, options=named, placeholder="Cluster", className="field"),
        html.Div(
            [
                dcc.Input(id=ids.CORR_NAME, type="text", placeholder="New name", className="input grow"),
                html.Button("Rename", id=ids.CORR_RENAME, n_clicks=0, className="btn"),
            ],
            className="row",
        ),
        html.Div("Merge clusters", className="sub-label"),
        dcc.Dropdown(id=ids.CORR_MERGE_FROM, options=named, multi=True, placeholder="Clusters", className="field"),
        html.Div(
            [
                dcc.Dropdown(id=ids.CORR_MERGE_INTO, options=named, placeholder="into…", className="field grow"),
                html.Button("Merge", id=ids.CORR_MERGE, n_clicks=0, className="btn"),
            ],
            className="row",
        ),
        html.Div("Move the selection (lasso, picked files, or the selected file)", className="sub-label"),
        html.Div(
            [
                dcc.Dropdown(
                    id=ids.CORR_MOVE_TO, options=cluster_opts, placeholder="to cluster…", className="field grow"
                ),
                html.Button("Move", id=ids.CORR_MOVE, n_clicks=0, disabled=True, className="btn"),
            ],
            className="row",
        ),
        dcc.Input(id=ids.CORR_MOVE_NEW, type="text", placeholder="…or to a new cluster named", className="field input"),
        html.Div(id=ids.CORR_MESSAGE, className="message"),
        html.Div(views.corrections_list(rows or []), id=ids.CORR_LIST),
        html.Button("Apply: re-sort the files", id=ids.CORR_APPLY, n_clicks=0, className="btn primary"),
        html.Div(id=ids.CORR_STATUS, className="message"),
        hint=(
            "Corrections show here at once and are kept by every later sort; Apply re-sorts the folder so the "
            "files move (neural-sorter undo OUT reverts that run)."
        ),
    )


def _section(title: str, *children: Any, hint: str | None = None) -> html.Div:
    return html.Div(
        [html.Div(title, className="section-label"), *children, html.Div(hint, className="hint") if hint else None],
        className="side-section",
    )


def build_layout(viewer: ViewerStore, poll_ms: int = 3000) -> html.Div:
    """The whole page, pre-rendered for the most recently materialized partition."""
    keys = viewer.partitions()
    key = keys[0] if keys else None
    data = viewer.load(key) if key else None
    info = viewer.materialization(key) if key else None
    cluster_opts, category_opts = filter_options(data)
    figure = map_3d(data) if data is not None else empty_figure()
    unmarked = {"version": data.version, "selected": None, "results": []} if data is not None else None
    return html.Div(
        [
            dcc.Store(id=ids.VERSION, data={"partition": key, "version": data.version} if data else None),
            dcc.Store(id=ids.SHOWN, data=shown_state(viewer, data)),
            dcc.Store(id=ids.SELECTED, data=None),
            dcc.Store(id=ids.RESULTS, data=None),
            dcc.Store(id=ids.LASSO, data=[]),
            dcc.Store(id=ids.DRAWN_3D, data=drawn_state(data, "cluster", [], [], "") if data else None),
            dcc.Store(id=ids.DRAWN_2D, data=None),
            dcc.Store(id=ids.MARKED_3D, data=unmarked),
            dcc.Store(id=ids.MARKED_2D, data=None),
            dcc.Store(id=ids.BUILT_GALLERY, data=None),
            dcc.Store(id=ids.GALLERY_LIMITS, data={}),
            dcc.Store(id=ids.BUILT_DUPLICATES, data=None),
            dcc.Store(id=ids.PICKED, data=[]),
            dcc.Store(id=ids.CORR_SEEN, data=None),
            dcc.Interval(id=ids.POLL, interval=poll_ms),
            dcc.Download(id=ids.DOWNLOAD),
            html.Header(
                [
                    html.Div(
                        [
                            html.Span(className="logo"),
                            html.Span("neural-sorter", className="brand-name"),
                            html.Span("viewer", className="brand-sub"),
                        ],
                        className="brand",
                    ),
                    dcc.Dropdown(
                        id=ids.PARTITION,
                        options=views.partition_options(keys, viewer.sources()),
                        value=key,
                        clearable=False,
                        searchable=True,
                        placeholder="No partitions yet",
                        className="partition-picker",
                    ),
                    html.Div(views.run_info(info) if info else [], id=ids.RUN_INFO, className="run-info"),
                    html.Div(id=ids.RELOAD_NOTE, className="reload-note"),
                ],
                className="topbar",
            ),
            html.Main(
                [
                    html.Aside(
                        [
                            _section(
                                "Colour by",
                                dcc.RadioItems(
                                    id=ids.COLOR_BY,
                                    options=color_options(data),
                                    value="cluster",
                                    inline=True,
                                    className="segmented",
                                    inputClassName="seg-input",
                                    labelClassName="seg-label",
                                ),
                            ),
                            _section(
                                "Filter",
                                dcc.Dropdown(
                                    id=ids.FILTER_CLUSTER,
                                    options=cluster_opts,
                                    multi=True,
                                    placeholder="All clusters",
                                    className="field",
                                ),
                                dcc.Dropdown(
                                    id=ids.FILTER_CATEGORY,
                                    options=category_opts,
                                    multi=True,
                                    placeholder="All categories",
                                    className="field",
                                    disabled=not category_opts,
                                ),
                                dcc.Input(
                                    id=ids.FILTER_NAME,
                                    type="search",
                                    placeholder="File name contains…",
                                    debounce=0.35,
                                    className="field input",
                                ),
                                dcc.Dropdown(
                                    id=ids.FILTER_FLAGS,
                                    options=flag_options(data),
                                    multi=True,
                                    placeholder="Any quality (flags: blurry, too dark…)",
                                    className="field",
                                ),
                            ),
                            _section(
                                "Search by text",
                                html.Div(
                                    [
                                        dcc.Input(
                                            id=ids.TEXT_QUERY,
                                            type="search",
                                            placeholder="e.g. a red car",
                                            debounce=False,
                                            className="input grow",
                                            n_submit=0,
                                        ),
                                        html.Button("Search", id=ids.TEXT_SEARCH, n_clicks=0, className="btn primary"),
                                    ],
                                    className="row",
                                ),
                                dcc.Loading(
                                    html.Div(id=ids.SEARCH_MESSAGE, className="message"), type="dot", color="#8ab4ff"
                                ),
                                hint="Ranks pictures by CLIP similarity to your words (CLIP backend only).",
                            ),
                            _section(
                                "Selection",
                                html.Div("Nothing lassoed yet.", id=ids.LASSO_SUMMARY, className="summary"),
                                html.Button(
                                    "Download CSV of paths",
                                    id=ids.DOWNLOAD_SELECTION,
                                    n_clicks=0,
                                    disabled=True,
                                    className="btn",
                                ),
                                hint="Switch to “2D select” and draw a lasso or box around points.",
                            ),
                            corrections_section(cluster_opts, viewer.correction_rows(key) if key else []),
                        ],
                        className="sidebar",
                    ),
                    html.Section(
                        [
                            html.Div(
                                [
                                    html.Div(
                                        [
                                            dcc.RadioItems(
                                                id=ids.VIEW,
                                                options=[
                                                    {"label": "3D map", "value": "3d"},
                                                    {"label": "2D select", "value": "2d"},
                                                    {"label": "Gallery", "value": "gallery"},
                                                    {"label": "Duplicates", "value": "duplicates"},
                                                ],
                                                value="3d",
                                                inline=True,
                                                className="segmented",
                                                inputClassName="seg-input",
                                                labelClassName="seg-label",
                                            ),
                                            html.Div(
                                                f"{len(data):,} shown" if data is not None else "",
                                                id=ids.COUNT,
                                                className="count",
                                            ),
                                        ],
                                        className="toolbar",
                                    ),
                                    html.Div(
                                        [
                                            html.Div(
                                                [
                                                    dcc.Graph(
                                                        id=ids.MAP_3D,
                                                        figure=figure,
                                                        config=GRAPH_CONFIG,
                                                        clear_on_unhover=True,
                                                        className="graph",
                                                    ),
                                                    dcc.Tooltip(
                                                        id=ids.TIP_3D,
                                                        className="tip",
                                                        direction="right",
                                                        background_color="rgba(18,21,30,0.96)",
                                                        border_color="rgba(255,255,255,0.12)",
                                                    ),
                                                    views.empty_store(str(viewer.root)) if data is None else None,
                                                ],
                                                id=ids.PANE_3D,
                                                className="pane active",
                                            ),
                                            html.Div(
                                                [
                                                    dcc.Graph(
                                                        id=ids.MAP_2D,
                                                        figure=empty_figure(),
                                                        config=GRAPH_2D_CONFIG,
                                                        clear_on_unhover=True,
                                                        className="graph",
                                                    ),
                                                    dcc.Tooltip(
                                                        id=ids.TIP_2D,
                                                        className="tip",
                                                        direction="right",
                                                        background_color="rgba(18,21,30,0.96)",
                                                        border_color="rgba(255,255,255,0.12)",
                                                    ),
                                                ],
                                                id=ids.PANE_2D,
                                                className="pane",
                                            ),
                                            html.Div(id=ids.PANE_GALLERY, className="pane gallery"),
                                            html.Div(id=ids.PANE_DUPLICATES, className="pane gallery"),
                                        ],
                                        className="panes",
                                    ),
                                ],
                                className="card map-card",
                            ),
                            html.Div(
                                [
                                    html.Div(
                                        [
                                            html.Div("Results", id=ids.RESULTS_TITLE, className="card-title"),
                                            html.Div(
                                                [
                                                    html.Button(
                                                        "CSV",
                                                        id=ids.DOWNLOAD_RESULTS,
                                                        n_clicks=0,
                                                        className="btn ghost small",
                                                        title="download these results as CSV",
                                                    ),
                                                    html.Button(
                                                        "Clear",
                                                        id=ids.CLEAR_RESULTS,
                                                        n_clicks=0,
                                                        className="btn ghost small",
                                                    ),
                                                ],
                                                className="row",
                                            ),
                                        ],
                                        className="card-head",
                                    ),
                                    dcc.Loading(
                                        html.Div(
                                            views.results_placeholder(), id=ids.RESULTS_BODY, className="results-body"
                                        ),
                                        type="dot",
                                        color="#8ab4ff",
                                    ),
                                ],
                                id=ids.RESULTS_CARD,
                                className="card results-card empty",
                            ),
                        ],
                        className="center",
                    ),
                    html.Aside(
                        [
                            html.Div(
                                [
                                    html.Div("Details", className="card-title"),
                                    html.Div(
                                        [
                                            html.Button(
                                                "Pick",
                                                id=ids.PICK,
                                                n_clicks=0,
                                                disabled=True,
                                                title="add this file to the files to move (hand corrections)",
                                                className="btn ghost small",
                                            ),
                                            html.Button(
                                                "More like this",
                                                id=ids.MORE_LIKE_THIS,
                                                n_clicks=0,
                                                disabled=True,
                                                className="btn primary small",
                                            ),
                                        ],
                                        className="row",
                                    ),
                                ],
                                className="card-head",
                            ),
                            html.Div(views.detail_panel(data, None), id=ids.DETAIL, className="detail-body"),
                        ],
                        className="card detail-card",
                    ),
                ],
                className="body",
            ),
        ],
        className="app",
    )
