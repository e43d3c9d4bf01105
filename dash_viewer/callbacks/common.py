"""What several features need: the data a page shows, the selected point, the filter mask and inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
from dash import Input, ctx

from dash_viewer import ids
from dash_viewer.data import PartitionData, ViewerStore, filter_mask


def filter_inputs() -> list[Input]:
    """The sidebar inputs every view is drawn from: colour, cluster and category filters, file name, flags."""
    return [
        Input(ids.COLOR_BY, "value"),
        Input(ids.FILTER_CLUSTER, "value"),
        Input(ids.FILTER_CATEGORY, "value"),
        Input(ids.FILTER_NAME, "value"),
        Input(ids.FILTER_FLAGS, "value"),
    ]


def clicked(*component_ids: str) -> str | None:
    """The first of ``component_ids`` among everything that triggered this call, or None.

    Dash merges inputs that change while a callback waits in its queue into one call, so a click can arrive
    together with a poll tick or a data refresh; ``ctx.triggered_id`` names only the first of them and would
    lose the click.
    """
    fired = {str(i) for i in ctx.triggered_prop_ids.values() if isinstance(i, str)}
    return next((c for c in component_ids if c in fired), None)


def current_data(viewer: ViewerStore, version: dict[str, Any] | None, strict: bool = False) -> PartitionData | None:
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


def mask_of(data: PartitionData, clusters: Any, categories: Any, name: Any, flags: Any = None) -> np.ndarray:
    wanted = [str(f) for f in flags or [] if isinstance(f, str)] or None
    return filter_mask(data, clusters or None, categories or None, name if isinstance(name, str) else None, wanted)


def results_ids(data: PartitionData | None, results: dict[str, Any] | None) -> list[int]:
    if data is None or not results or results.get("version") != data.version:
        return []
    return [int(i) for i in results.get("ids", [])]


def highlight_marks(data: PartitionData, selected: Any, results: Any) -> dict[str, Any]:
    """What the two highlight traces of a map show; remembered per map so unchanged marks are not re-sent."""
    return {"version": data.version, "selected": selected_index(data, selected), "results": results_ids(data, results)}
