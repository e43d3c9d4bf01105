"""Turns a stage's report into what the UI shows: metadata values, log lines, and ``dg.Failure``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from neural_sorter.settings import ConfigError
from neural_sorter.sources import UnknownSourceError
from neural_sorter.stages import Markdown, StageError, StageReport
from neural_sorter.tables import SCHEMAS


def metadata_value(value: Any) -> Any:
    if isinstance(value, Markdown):
        return dg.MetadataValue.md(value.text)
    if isinstance(value, Path):
        return dg.MetadataValue.path(str(value))
    if isinstance(value, dict):
        return dg.MetadataValue.json(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    return value


def publish(context: dg.AssetExecutionContext, report: StageReport) -> None:
    """Logs the report's notes and warnings and attaches its metadata to the output."""
    for note in report.notes:
        context.log.info(note)
    for warning in report.warnings:
        context.log.warning(warning)
    context.add_output_metadata({k: metadata_value(v) for k, v in report.metadata.items()})


@contextlib.contextmanager
def stage_failures() -> Iterator[None]:
    """A stage's or the options' one-line error becomes the run's failure message, without a traceback."""
    try:
        yield
    except (StageError, ConfigError, UnknownSourceError) as exc:
        # e.g. a key typed into the UI's "Add partition" that no folder was registered under: fails in the first
        # step, in one line that says how to register it.
        raise dg.Failure(str(exc)) from None


def column_schema(asset: str) -> dict[str, Any]:
    """``dagster/column_schema`` metadata, so the UI documents each table's columns."""
    schema = dg.TableSchema(columns=[dg.TableColumn(c.name, c.type, description=c.description) for c in SCHEMAS[asset]])
    return {"dagster/column_schema": schema}
