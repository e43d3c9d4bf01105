"""Searches: "more like this" on the selected file and CLIP text search, re-run when the data or filters
change, and the results panel."""

from __future__ import annotations

from typing import Any

import numpy as np
from dash import Dash, Input, Output, State, html, no_update

from dash_viewer import ids, views
from dash_viewer.callbacks.common import clicked, current_data, mask_of, results_ids, selected_index
from dash_viewer.data import PartitionData, TextSearchUnavailable, ViewerStore, neighbours, text_search

RESULTS_K = 36


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
        found, scores = neighbours(data, idx, k, mask)
        title = f"More like {data.points['name'].iat[idx]}"
        message = "" if data.vectors is not None else "This partition has no embedding vectors."
    elif query.get("kind") == "text":
        text = str(query.get("text") or "")
        try:
            found, scores = text_search(data, text, k, mask)
        except TextSearchUnavailable as exc:
            return None, str(exc)
        title = f"“{text.strip()}”"
        message = f"{len(found)} best matches for “{text.strip()}”."
    else:
        return None, ""
    store = {
        "partition": data.key,
        "version": data.version,
        "query": query,
        "title": title,
        "ids": [int(i) for i in found],
        "scores": [round(float(s), 4) for s in scores],
    }
    return store, message


def register(app: Dash, viewer: ViewerStore) -> None:
    @app.callback(
        Output(ids.RESULTS, "data"),
        Output(ids.SEARCH_MESSAGE, "children"),
        Input(ids.MORE_LIKE_THIS, "n_clicks"),
        Input(ids.TEXT_SEARCH, "n_clicks"),
        Input(ids.TEXT_QUERY, "n_submit"),
        Input(ids.CLEAR_RESULTS, "n_clicks"),
        Input(ids.VERSION, "data"),
        Input(ids.FILTER_CLUSTER, "value"),
        Input(ids.FILTER_CATEGORY, "value"),
        Input(ids.FILTER_NAME, "value"),
        Input(ids.FILTER_FLAGS, "value"),
        State(ids.SELECTED, "data"),
        State(ids.TEXT_QUERY, "value"),
        State(ids.RESULTS, "data"),
        prevent_initial_call=True,
    )
    def _results(_more, _search, _submit, _clear, version, clusters, categories, name, flags, selected, text, results):
        trigger = clicked(ids.CLEAR_RESULTS, ids.MORE_LIKE_THIS, ids.TEXT_SEARCH, ids.TEXT_QUERY)
        data = current_data(viewer, version)
        if trigger == ids.CLEAR_RESULTS or data is None:
            return None, ""
        if trigger == ids.MORE_LIKE_THIS:
            idx = selected_index(data, selected)
            if idx is None:
                return no_update, no_update
            query: dict[str, Any] | None = {"kind": "similar", "path": str(data.points["relative_path"].iat[idx])}
        elif trigger in (ids.TEXT_SEARCH, ids.TEXT_QUERY):
            query = {"kind": "text", "text": text or ""}
        else:  # version or filters changed: re-run the standing query, if any, on the new data
            if not results:
                return no_update, no_update
            if results.get("partition") != data.key:
                return None, ""
            query = results.get("query")
        store, message = run_query(data, query, mask_of(data, clusters, categories, name, flags))
        if store is None and (query or {}).get("kind") == "text" and trigger in (ids.TEXT_SEARCH, ids.TEXT_QUERY):
            return no_update, message  # a text search that cannot run leaves the results on screen alone
        return store, message

    @app.callback(
        Output(ids.RESULTS_BODY, "children"),
        Output(ids.RESULTS_TITLE, "children"),
        Output(ids.RESULTS_CARD, "className"),
        Input(ids.RESULTS, "data"),
        Input(ids.SELECTED, "data"),
        State(ids.VERSION, "data"),
        prevent_initial_call=True,
    )
    def _results_panel(results, selected, version):
        data = current_data(viewer, version)
        ranked = results_ids(data, results)
        if data is None or not results:
            return views.results_placeholder(), "Results", "card results-card empty"
        body = views.results_panel(data, ranked, results.get("scores", []), selected_index(data, selected))
        title = [html.Span(results.get("title", "")), html.Span(f"{len(ranked)} matches", className="muted")]
        return body, title, "card results-card"
