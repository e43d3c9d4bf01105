"""One Dagster-free module per asset, named after it: ``build_<asset>(inputs, previous, options)`` returns the
table and a ``StageReport``. Every reuse and incremental decision lives here, so the Dagster skin
(``neural_sorter.defs``), the CLI and test harnesses all run the same graph logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class StageError(RuntimeError):
    """A stage cannot go on; the message says why in one line and what to change."""


@dataclass(frozen=True)
class Markdown:
    """A metadata value to show as Markdown in the UI (a table, a gallery)."""

    text: str


@dataclass
class StageReport:
    """What a stage tells the person watching: metadata for the UI, notes (info) and warnings for the log."""

    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
