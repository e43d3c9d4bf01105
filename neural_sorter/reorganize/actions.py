"""What a reorganization does to one file, as data: the vocabulary every other module speaks.

Kept apart from the code that plans, applies or undoes actions so the planner can be exercised without a
filesystem and the manifest format has one definition.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

STATE_DIR = ".neural-sorter"
MANIFEST_NAME = "manifest.csv"
DRY_RUN_NAME = "manifest.dry-run.csv"
LOCK_NAME = "lock"


class ActionKind(str, Enum):
    """What happens to one file. A ``str`` subclass (``StrEnum`` needs Python 3.11; the project supports
    3.10) so manifests keep the exact strings older versions wrote and read back equal to the members."""

    COPY = "copy"
    HARDLINK = "hardlink"
    SYMLINK = "symlink"
    MOVE = "move"
    KEEP = "keep"
    RELOCATE = "relocate"
    REMOVE = "remove"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


PLACING_ACTIONS = (ActionKind.COPY, ActionKind.HARDLINK, ActionKind.SYMLINK, ActionKind.MOVE)
# Actions after which the destination holds a file this tool is responsible for.
HOLDING_ACTIONS = (*PLACING_ACTIONS, ActionKind.KEEP, ActionKind.RELOCATE)


@dataclass
class Action:
    """One row of a manifest: enough to carry the step out, recognise it as done, and revert it."""

    source: str
    destination: str
    content_hash: str
    cluster: str
    action: ActionKind
    partition: str
    run_id: str
    previous_destination: str = ""
    # Why a file stays where it is although the plan would have moved it (e.g. the user edited the copy).
    # Reported in the stage's table and report; not a manifest column (the record stays readable by
    # older versions).
    note: str = ""

    def __post_init__(self) -> None:
        # Rows read back from CSV and callers passing plain strings get the enum; unknown kinds fail here.
        self.action = ActionKind(self.action)


class Plan(list):
    """A list of actions that may also adopt an interrupted run's record (``adopts``: its path).

    A plain ``list`` subclass so callers that only pass the plan from ``plan_reorganization`` to
    ``execute_plan`` need no change; ``execute_plan`` retires the adopted record once the new one is durable.
    """

    adopts: Path | None = None


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{secrets.token_hex(3)}"


def state_dir(out: Path) -> Path:
    return out / STATE_DIR
