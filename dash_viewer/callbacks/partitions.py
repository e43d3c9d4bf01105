"""The partition picker and the poll: new partitions appear, a vanished one falls back to the newest, and a
changed table under the shown partition bumps the page's version, which re-renders everything."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, no_update

from dash_viewer import ids, views
from dash_viewer.data import ViewerStore


def sync_state(
    viewer: ViewerStore, requested: str | None, options: list[dict[str, Any]] | None, current: dict[str, Any] | None
) -> tuple[Any, Any, Any]:
    """(options, value, version) for the partition picker and the version store; ``no_update`` where unchanged.

    Runs on the poll timer and on partition changes: new partitions appear in the picker, a vanished one falls
    back to the newest, and a changed file under the shown partition bumps the version, which re-renders.
    """
    keys = viewer.partitions()
    new_options = views.partition_options(keys, viewer.sources())
    key = requested if requested in keys else (keys[0] if keys else None)
    state = {"partition": key, "version": viewer.version(key)} if key else None
    return (
        new_options if new_options != options else no_update,
        key if key != requested else no_update,
        state if state != current else no_update,
    )


def register(app: Dash, viewer: ViewerStore) -> None:
    @app.callback(
        Output(ids.PARTITION, "options"),
        Output(ids.PARTITION, "value"),
        Output(ids.VERSION, "data"),
        Input(ids.POLL, "n_intervals"),
        Input(ids.PARTITION, "value"),
        State(ids.PARTITION, "options"),
        State(ids.VERSION, "data"),
        prevent_initial_call=True,
    )
    def _sync(_tick: int, requested: str | None, options: list[dict[str, Any]], current: dict[str, Any] | None):
        return sync_state(viewer, requested, options, current)
