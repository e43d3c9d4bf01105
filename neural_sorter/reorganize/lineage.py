"""How each placement in OUT was first made (copy, link or move), traced back through ``keep`` and
``relocate`` rows of the earlier records.

Why: a ``keep`` or ``relocate`` row does not say whether the file it holds is a copy or the user's original
moved into the tree, and the two must be treated differently once the source is gone (a stale copy is
retired to the trash; a moved original never is). The planner asks only about such rows, so the history is
read only when one exists.
"""

from __future__ import annotations

from neural_sorter.reorganize.actions import PLACING_ACTIONS, ActionKind
from neural_sorter.reorganize.manifest import ManifestError, history_files, key_of, read_manifest

_PLACING = frozenset(str(kind) for kind in PLACING_ACTIONS)


def placement_modes(out, partition: str) -> dict[str, str]:
    """destination -> the action that first put the file held there into the tree, for ``partition``.

    Replays the partition's records oldest first: a placing row sets its destination's mode, a relocate
    carries the mode of the place it came from, a keep leaves it as it was. A damaged record anywhere makes
    the whole answer empty (every placement unknown), so the planner falls back to treating such files as
    possibly the user's originals, which it never retires: a guess must never send an original to the trash.
    """
    modes: dict[str, str] = {}
    try:
        for path in history_files(out):
            named = key_of(path).split("-", 2)
            if len(named) == 3 and named[2] != partition:
                continue
            table = read_manifest(path)
            mine = table[table["partition"] == partition]
            for destination, action, previous in zip(mine["destination"], mine["action"], mine["previous_destination"]):
                if action in _PLACING:
                    modes[destination] = action
                elif action == ActionKind.RELOCATE:
                    if previous in modes:
                        modes[destination] = modes[previous]
                    else:
                        modes.pop(destination, None)
    except (ManifestError, OSError, KeyError):
        return {}
    return modes
