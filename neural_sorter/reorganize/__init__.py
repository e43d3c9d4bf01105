"""The ``reorganized_tree`` stage and ``undo``: placing files into per-cluster folders, reversibly.

Safety rules, in order of importance:
- originals are never modified in copy/link modes, and nothing is ever overwritten: every placement goes
  through ``os.link``/``os.symlink`` (which fail when the name exists) or an existence check (``fs``);
- the manifest is written and fsynced before the first file is touched, so a crash at any moment leaves a
  record that ``undo`` and the next run understand (``manifest``, ``apply``);
- files are never deleted from the tree: ones whose source disappeared go to a trash folder that undo
  restores from (``planner``, ``undo``);
- moves across devices copy, verify the hash, and only then remove the source (``fs``).

One module per concern: ``actions`` (the data), ``guard`` (is OUT safe, one writer at a time),
``manifest`` (the records), ``planner`` (pure: placements + wanted files -> actions), ``fs`` (primitives
that never replace a file), ``apply`` (execute a plan), ``undo``. The names callers use are re-exported here.
"""

from neural_sorter.reorganize.actions import (
    DRY_RUN_NAME,
    HOLDING_ACTIONS,
    LOCK_NAME,
    MANIFEST_NAME,
    PLACING_ACTIONS,
    STATE_DIR,
    Action,
    ActionKind,
    new_run_id,
    state_dir,
)
from neural_sorter.reorganize.apply import ReorganizeReport, apply_action, execute_plan
from neural_sorter.reorganize.fs import UnsafePathError
from neural_sorter.reorganize.guard import OutputBusyError, OutputDirError, check_output_dir, output_lock
from neural_sorter.reorganize.manifest import (
    MANIFEST_FIELDS,
    ManifestError,
    current_placements,
    history_files,
    read_manifest,
    write_manifest,
)
from neural_sorter.reorganize.planner import plan, plan_reorganization
from neural_sorter.reorganize.undo import UndoOutcome, UndoReport, undo_last

__all__ = [
    "DRY_RUN_NAME",
    "HOLDING_ACTIONS",
    "LOCK_NAME",
    "MANIFEST_FIELDS",
    "MANIFEST_NAME",
    "PLACING_ACTIONS",
    "STATE_DIR",
    "Action",
    "ActionKind",
    "ManifestError",
    "OutputBusyError",
    "OutputDirError",
    "ReorganizeReport",
    "UndoOutcome",
    "UndoReport",
    "UnsafePathError",
    "apply_action",
    "check_output_dir",
    "current_placements",
    "execute_plan",
    "history_files",
    "new_run_id",
    "output_lock",
    "plan",
    "plan_reorganization",
    "read_manifest",
    "state_dir",
    "undo_last",
    "write_manifest",
]
