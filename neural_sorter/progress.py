"""Stage start lines for the terminal ("embedding 240 files…"), apart from the Dagster event log.

Stages announce themselves on the ``neural_sorter.progress`` logger; the CLI sends it to stderr, the UI shows the
same line in the run's log. The per-file progress bars (tqdm, with ETA) are drawn by the stages themselves on
stderr when it is a terminal.
"""

from __future__ import annotations

import logging
import sys

LOGGER = logging.getLogger("neural_sorter.progress")


def stage_started(context, text: str) -> None:
    """Says on the terminal (CLI) and in the run's log (UI) that a long stage starts."""
    LOGGER.info(text)
    if context is not None:
        context.log.info(text)


def to_stderr() -> logging.Handler:
    """Shows stage start lines on stderr (the CLI's choice; stdout stays for the summary)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
    return handler
