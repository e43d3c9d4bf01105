"""Callbacks, one module per feature, each with its own ``register(app, viewer)``; thin wiring from Dash
inputs to the plain functions in ``data``, ``figures`` and ``views``.

The decisions that deserve tests live in module-level functions that take the viewer or the data and plain
values (``partitions.sync_state``, ``selection.pick_selection``, ``search.run_query``,
``export.csv_download``); the decorated callbacks only unpack Dash's arguments and call them.

- ``partitions``: the partition picker and the poll for newer materializations;
- ``header``: the run chips and the sidebar's filter and colour options of the partition on screen;
- ``maps``: the 3D and 2D maps, their highlight traces, hover tooltips and the view tabs;
- ``gallery``: the gallery view and its "show more" buttons;
- ``selection``: what a click selects (map point or thumbnail) and the detail panel;
- ``search``: "more like this" and text search, and the results panel;
- ``export``: the 2D lasso selection and the CSV downloads;
- ``corrections``: hand corrections (rename, merge, move the selection) and Apply (re-sort the folder);
- ``duplicates``: the duplicates view, "Keep this" copy (a ``keep`` correction) and the flag filter's entries.
"""

from __future__ import annotations

from dash import Dash

from dash_viewer.callbacks import (
    corrections,
    duplicates,
    export,
    gallery,
    header,
    maps,
    partitions,
    search,
    selection,
)
from dash_viewer.data import ViewerStore

FEATURES = (partitions, header, maps, gallery, selection, search, export, corrections, duplicates)


def register(app: Dash, viewer: ViewerStore) -> None:
    """Attaches every feature's callbacks to ``app``."""
    for feature in FEATURES:
        feature.register(app, viewer)
