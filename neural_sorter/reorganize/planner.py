"""Planning: the delta from what the tree holds to what the clustering asks for.

``plan`` is pure: it sees the filesystem only through the ``exists`` predicate it is given, so every
decision (keep, relocate, trash, never retire a moved original, never reuse a taken name) can be tested
with plain data. ``plan_reorganization`` is the thin wrapper that reads the records and asks the disk.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from neural_sorter.reorganize.actions import PLACING_ACTIONS, Action, ActionKind, Plan, state_dir
from neural_sorter.reorganize.manifest import MANIFEST_FIELDS, holding, is_complete, latest_record

Exists = Callable[[str], bool]

# Most filesystems allow 255 bytes per name; leave room for " (NNN)" collision suffixes.
_NAME_BYTES = 240


def _fit(stem: str, tail: str) -> str:
    """Shortens ``stem`` (never the extension) so ``stem + tail`` fits in ``_NAME_BYTES`` bytes."""
    encoded = stem.encode("utf-8", "surrogateescape")
    room = _NAME_BYTES - len(tail.encode("utf-8", "surrogateescape"))
    if len(encoded) <= room:
        return stem + tail
    return encoded[: max(1, room)].decode("utf-8", "ignore") + tail


def _unique_name(folder: Path, name: str, taken: set[str], exists: Exists = os.path.lexists) -> Path:
    """``name``, or ``stem (2).ext`` and so on: never a name that exists on disk or was already planned."""
    stem, dot, ext = name.rpartition(".")
    if not stem or len(ext) > 16:
        stem, dot, ext = name, "", ""
    candidate, n = folder / _fit(stem, f"{dot}{ext}"), 2
    while str(candidate) in taken or exists(str(candidate)):
        candidate = folder / _fit(stem, f" ({n}){dot}{ext}")
        n += 1
    taken.add(str(candidate))
    return candidate


def plan_reorganization(
    files: pd.DataFrame,
    out: Path,
    partition: str,
    mode: str,
    rename: bool,
    run_id: str,
) -> Plan:
    """``plan`` against the records in ``out`` and the real filesystem.

    When the latest record for ``partition`` belongs to a run that was killed or interrupted, the new plan
    adopts it (``Plan.adopts``): ``execute_plan`` retires that record once the new one is written, and the
    new one lists what the interrupted run placed, so one ``undo`` restores the state before both.
    """
    latest = latest_record(out, partition)
    if latest is None:
        return plan(files, pd.DataFrame(columns=MANIFEST_FIELDS), out, partition, mode, rename, run_id, os.path.lexists)
    record, rows = latest
    if not is_complete(record):
        adopted = plan(files, holding(rows), out, partition, mode, rename, run_id, os.path.lexists, unfinished=rows)
        if adopted.adopts is not None:
            adopted.adopts = record
            return adopted
    return plan(files, holding(rows), out, partition, mode, rename, run_id, os.path.lexists)


def plan(
    files: pd.DataFrame,
    placed: pd.DataFrame,
    out: Path,
    partition: str,
    mode: str,
    rename: bool,
    run_id: str,
    exists: Exists,
    unfinished: pd.DataFrame | None = None,
) -> Plan:
    """The delta from ``placed`` (the holding rows of the last record) to what ``files`` asks for.

    ``files`` has columns source (absolute path), relative_path, content_hash, cluster_name, hier_code.
    New files are placed, files already placed in the right folder are kept, placed files whose cluster
    changed are relocated, and placements whose source is gone are moved to the trash (except originals
    that this tool moved into the tree, which stay). ``exists(path)`` is the only view of the disk.

    ``unfinished``: all rows of an interrupted run's record (``placed`` then holds its holding rows). The
    plan adopts it when every placement that run made is still wanted where it is: those rows are planned
    as their original action (already done, so applying them is a no-op) and its trash moves are carried
    over, so undoing the new run reverts the interrupted one too. Otherwise the result has ``adopts`` None
    and is planned as if ``unfinished`` had not been given.
    """
    if mode not in {str(kind) for kind in PLACING_ACTIONS}:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(map(str, PLACING_ACTIONS))}")
    mode = ActionKind(mode)
    base = out / partition
    rows = [_settled(row, exists) for row in placed.itertuples(index=False)]
    by_source = {row.source: row for row in rows}
    # Names held now; a recorded placement that is not on disk (never made, or removed) frees its name, so a
    # file retried after a failed or interrupted run gets its own name back.
    taken: set[str] = {row.destination for row in rows if exists(row.destination)}
    actions: list[Action] = []
    ordered = list(files.sort_values("relative_path").itertuples(index=False)) if len(files) else []
    wanted_sources = {row.source for row in ordered}
    # Placements whose source vanished, by content: a renamed or moved source takes its old placement along.
    orphans: dict[str, list] = {}
    for source, earlier in by_source.items():
        if source not in wanted_sources and exists(earlier.destination):
            orphans.setdefault(earlier.content_hash, []).append(earlier)
    for row in ordered:
        source = row.source
        name = os.path.basename(row.relative_path)
        if rename:
            name = f"{row.hier_code}_{name}"
        folder = base / row.cluster_name
        earlier = by_source.get(source)
        if earlier is None and orphans.get(row.content_hash) and mode != ActionKind.MOVE:
            earlier = orphans[row.content_hash].pop()
            by_source.pop(earlier.source)
        if earlier is not None and earlier.content_hash == row.content_hash and exists(earlier.destination):
            if earlier.action == ActionKind.MOVE:
                # A move killed between link and unlink: the original is still in the source. Finish it.
                actions.append(_act(earlier.destination, row, ActionKind.MOVE, partition, run_id, source))
                continue
            if (
                Path(earlier.destination).parent == folder
                and (not rename or os.path.basename(earlier.destination).startswith(f"{row.hier_code}_"))
                and (earlier.action != ActionKind.SYMLINK or earlier.source == source)
            ):
                if unfinished is not None and earlier.action in (*PLACING_ACTIONS, ActionKind.RELOCATE):
                    # Placed by the interrupted run: this run takes over the record of having done it.
                    actions.append(
                        _act(
                            earlier.destination,
                            row,
                            ActionKind(earlier.action),
                            partition,
                            run_id,
                            source,
                            earlier.previous_destination,
                        )
                    )
                else:
                    actions.append(_act(earlier.destination, row, ActionKind.KEEP, partition, run_id, source))
            else:
                target = _unique_name(folder, name, taken, exists)
                actions.append(
                    _act(str(target), row, ActionKind.RELOCATE, partition, run_id, source, earlier.destination)
                )
            continue
        if earlier is not None and exists(earlier.destination):
            # The source changed since it was placed: retire the stale copy, place the new content.
            actions.append(_trash(earlier, out, partition, run_id))
        actions.append(_act(str(_unique_name(folder, name, taken, exists)), row, mode, partition, run_id, source))
    for source, earlier in by_source.items():
        if source in wanted_sources or not exists(earlier.destination):
            continue
        if _was_moved_here(earlier, exists):
            adopting = unfinished is not None and earlier.action in (ActionKind.MOVE, ActionKind.RELOCATE)
            actions.append(
                Action(
                    source,
                    earlier.destination,
                    earlier.content_hash,
                    earlier.cluster,
                    ActionKind(earlier.action) if adopting else ActionKind.KEEP,
                    partition,
                    run_id,
                    earlier.previous_destination if adopting else "",
                )
            )
        else:
            actions.append(_trash(earlier, out, partition, run_id))
    if unfinished is None:
        return Plan(actions)
    return _adopt(actions, unfinished, placed, files, out, partition, mode, rename, run_id, exists)


def _adopt(actions, unfinished, placed, files, out, partition, mode, rename, run_id, exists) -> Plan:
    """Adds the interrupted run's trash moves, or falls back to a plain plan when adoption cannot be exact."""
    planned_from = {(a.source, a.destination) for a in actions if a.action != ActionKind.REMOVE}
    for row in unfinished.itertuples(index=False):
        if (
            row.action in (*PLACING_ACTIONS, ActionKind.RELOCATE)
            and exists(row.destination)
            and (row.source, row.destination) not in planned_from
        ):
            # A placement it made is relocated, retired or replaced now: undoing this run alone
            # could not restore the state before the interrupted one. Keep both records instead.
            return Plan(plan(files, placed, out, partition, mode, rename, run_id, exists))
    carried = [
        Action(
            row.source,
            row.destination,
            row.content_hash,
            row.cluster,
            ActionKind.REMOVE,
            partition,
            run_id,
            row.previous_destination,
        )
        for row in unfinished.itertuples(index=False)
        if row.action == ActionKind.REMOVE and (exists(row.destination) or exists(row.previous_destination))
    ]
    adopted = Plan([*carried, *actions])
    adopted.adopts = Path("unfinished")  # the caller substitutes the record's path
    return adopted


def _settled(row, exists: Exists):
    """A relocation that never happened (run killed first) still holds its file at the old place."""
    if row.action == ActionKind.RELOCATE and not exists(row.destination) and exists(row.previous_destination):
        return row._replace(destination=row.previous_destination, action=str(ActionKind.KEEP), previous_destination="")
    return row


def _was_moved_here(row, exists: Exists) -> bool:
    """True when the tree holds the user's original (placed by move mode), which must never be retired."""
    return row.action == ActionKind.MOVE or (
        row.action in (ActionKind.KEEP, ActionKind.RELOCATE) and not exists(row.source)
    )


def _act(
    destination: str, row, action: ActionKind, partition: str, run_id: str, source: str, previous: str = ""
) -> Action:
    return Action(source, destination, row.content_hash, row.cluster_name, action, partition, run_id, previous)


def _trash(earlier, out: Path, partition: str, run_id: str) -> Action:
    trash = state_dir(out) / "trash" / run_id / os.path.relpath(earlier.destination, out)
    return Action(
        earlier.source,
        str(trash),
        earlier.content_hash,
        earlier.cluster,
        ActionKind.REMOVE,
        partition,
        run_id,
        earlier.destination,
    )
