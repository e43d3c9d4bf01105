"""Planning: the delta from what the tree holds to what the clustering asks for.

``plan`` is pure: it sees the filesystem only through the ``exists`` predicate it is given, so every
decision (keep, relocate, trash, never retire a moved original, never touch a copy the user edited, never
reuse a taken name) can be tested with plain data; the content of placed files is seen only through the
``digest`` function, asked only about placements the plan would otherwise move. ``plan_reorganization`` is
the thin wrapper that reads the records and asks the disk.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from neural_sorter.reorganize.actions import PLACING_ACTIONS, Action, ActionKind, Plan, state_dir
from neural_sorter.reorganize.fs import current_hash
from neural_sorter.reorganize.lineage import placement_modes
from neural_sorter.reorganize.manifest import MANIFEST_FIELDS, holding, is_complete, latest_record

Exists = Callable[[str], bool]
# The content hash of the regular file at a path, or None (not a regular file, unreadable, gone).
Digest = Callable[[str], "str | None"]
# How the file held at a destination was first placed (an ActionKind value), or None when unknown.
PlacedAs = Callable[[str], "str | None"]

# Most filesystems allow 255 bytes per name; leave room for " (NNN)" collision suffixes.
_NAME_BYTES = 240


def _fit(stem: str, tail: str) -> str:
    """Shortens ``stem`` (never the extension) so ``stem + tail`` fits in ``_NAME_BYTES`` bytes."""
    encoded = stem.encode("utf-8", "surrogateescape")
    room = _NAME_BYTES - len(tail.encode("utf-8", "surrogateescape"))
    if len(encoded) <= room:
        return stem + tail
    return encoded[: max(1, room)].decode("utf-8", "ignore") + tail


def _unique_name(
    folder: Path, name: str, taken: set[str], exists: Exists = os.path.lexists, folders: set[str] | None = None
) -> Path:
    """``name``, or ``stem (2).ext`` and so on: never a name that exists on disk or was already planned
    (as a file, or as a folder in ``folders``)."""
    stem, dot, ext = name.rpartition(".")
    if not stem or len(ext) > 16:
        stem, dot, ext = name, "", ""
    candidate, n = folder / _fit(stem, f"{dot}{ext}"), 2
    while str(candidate) in taken or str(candidate) in (folders or ()) or exists(str(candidate)):
        candidate = folder / _fit(stem, f" ({n}){dot}{ext}")
        n += 1
    taken.add(str(candidate))
    return candidate


def _structure_folder(cluster_folder: Path, relative_path: str, taken: set[str], folders: set[str]) -> Path:
    """``cluster_folder/<the file's original sub-folders>``, each component renamed ``name (2)`` when a file
    already holds or was planned under that name, so a folder never collides with a file."""
    folder = cluster_folder
    for part in Path(relative_path).parent.parts:
        candidate, n = folder / part, 2
        while str(candidate) not in folders and str(candidate) in taken:
            candidate = folder / _fit(part, f" ({n})")
            n += 1
        folders.add(str(candidate))
        folder = candidate
    return folder


def plan_reorganization(
    files: pd.DataFrame,
    out: Path,
    partition: str,
    mode: str,
    rename: bool,
    run_id: str,
    *,
    keep_structure: bool = False,
    tree: Path | None = None,
) -> Plan:
    """``plan`` against the records in ``out`` and the real filesystem.

    ``tree``: the source's folder in ``out`` (``SourceRegistry.output_folder``); default ``out/<partition>``.

    When the latest record for ``partition`` belongs to a run that was killed or interrupted, the new plan
    adopts it (``Plan.adopts``): ``execute_plan`` retires that record once the new one is written, and the
    new one lists what the interrupted run placed, so one ``undo`` restores the state before both.
    """
    hashes: dict[str, str | None] = {}

    def digest(path: str) -> str | None:  # a placement is hashed at most once per plan
        if path not in hashes:
            hashes[path] = current_hash(path)
        return hashes[path]

    lineage: dict[str, str] | None = None

    def placed_as(destination: str) -> str | None:  # the history is read only if a plan needs it
        nonlocal lineage
        if lineage is None:
            lineage = placement_modes(out, partition)
        return lineage.get(destination)

    disk = {"digest": digest, "keep_structure": keep_structure, "tree": tree, "placed_as": placed_as}
    latest = latest_record(out, partition)
    if latest is None:
        empty = pd.DataFrame(columns=MANIFEST_FIELDS)
        return plan(files, empty, out, partition, mode, rename, run_id, os.path.lexists, **disk)
    record, rows = latest
    if not is_complete(record):
        adopted = plan(
            files, holding(rows), out, partition, mode, rename, run_id, os.path.lexists, unfinished=rows, **disk
        )
        if adopted.adopts is not None:
            adopted.adopts = record
            return adopted
    return plan(files, holding(rows), out, partition, mode, rename, run_id, os.path.lexists, **disk)


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
    *,
    digest: Digest | None = None,
    keep_structure: bool = False,
    tree: Path | None = None,
    placed_as: PlacedAs | None = None,
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

    ``digest(path)``: the current content hash of a placed file (None: not a regular file). A placed copy
    whose content no longer matches the hash recorded when it was placed was edited by the user: it is
    theirs now, so it is kept where it is (a ``keep`` with a ``note`` saying why) instead of being
    relocated or retired to the trash. Without ``digest`` placements are assumed unedited.

    ``keep_structure``: each file goes to ``<cluster>/<its original sub-folders>/`` instead of ``<cluster>/``.

    ``tree``: where the source's clusters go (``OUT/<source folder name>``, chosen by
    ``SourceRegistry.output_folder``); None keeps ``OUT/<partition>``. A placement recorded under another
    folder (the partition-key layout of older versions) is relocated like any whose cluster changed.

    ``placed_as(destination)``: how the file there was first placed (``lineage.placement_modes``), so a
    copy kept by earlier runs is retired like any copy once its original is gone, while a moved original
    never is. Without it a kept placement whose source is gone is taken for a moved original.
    """
    if mode not in {str(kind) for kind in PLACING_ACTIONS}:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(map(str, PLACING_ACTIONS))}")
    mode = ActionKind(mode)
    base = tree if tree is not None else out / partition
    rows = [_settled(row, exists) for row in placed.itertuples(index=False)]
    by_source = {row.source: row for row in rows}

    def changed(earlier, *also: str) -> bool:
        """The user changed this placed file since it was placed (its content is none of the known ones)."""
        if digest is None:
            return False
        current = digest(earlier.destination)
        return current is not None and current not in (earlier.content_hash, *also)

    def edited(earlier, *also: str) -> bool:
        # A moved original is the user's file anyway, and is never retired: no need to read it.
        return not _was_moved_here(earlier, exists, placed_as) and changed(earlier, *also)

    # Names held now; a recorded placement that is not on disk (never made, or removed) frees its name, so a
    # file retried after a failed or interrupted run gets its own name back.
    taken: set[str] = {row.destination for row in rows if exists(row.destination)}
    folders: set[str] = set()  # sub-folders planned by keep_structure: no file may take their names
    actions: list[Action] = []
    # An edited copy kept beside a newer placement of the same source (see below) is its source's second
    # row; it stays kept (and reported) on every later run while it differs, else it is retired.
    for extra in rows:
        if by_source[extra.source] is not extra and exists(extra.destination):
            if changed(extra):
                actions.append(_keep(extra, partition, run_id, _EDITED))
            else:
                actions.append(_trash(extra, out, partition, run_id))
    ordered = list(files.sort_values("relative_path").itertuples(index=False)) if len(files) else []
    wanted_sources = {row.source for row in ordered}
    # Placements whose source vanished, by content: a renamed or moved source takes its old placement along
    # (not an edited copy: that stays where it is, and the renamed source gets a fresh one).
    orphans: dict[str, list] = {}
    for source, earlier in by_source.items():
        if source not in wanted_sources and exists(earlier.destination) and not edited(earlier):
            orphans.setdefault(earlier.content_hash, []).append(earlier)
    for row in ordered:
        source = row.source
        name = os.path.basename(row.relative_path)
        if rename:
            name = f"{row.hier_code}_{name}"
        folder = base / row.cluster_name
        if keep_structure:
            folder = _structure_folder(folder, row.relative_path, taken, folders)
        earlier = by_source.get(source)
        if earlier is None and orphans.get(row.content_hash) and mode != ActionKind.MOVE:
            earlier = orphans[row.content_hash].pop()
            by_source.pop(earlier.source)
        if earlier is not None and earlier.content_hash == row.content_hash and exists(earlier.destination):
            if earlier.action == ActionKind.MOVE:
                # A move killed between link and unlink: the original is still in the source. Finish it.
                actions.append(_act(earlier.destination, row, ActionKind.MOVE, partition, run_id, source))
                continue
            stays = (
                Path(earlier.destination).parent == folder
                and (not rename or os.path.basename(earlier.destination).startswith(f"{row.hier_code}_"))
                and (earlier.action != ActionKind.SYMLINK or earlier.source == source)
            )
            note = ""
            if not stays and edited(earlier):
                stays, note = True, f"{_EDITED} (would have gone to {row.cluster_name})"
            if stays:
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
                            note,
                        )
                    )
                else:
                    actions.append(
                        _act(earlier.destination, row, ActionKind.KEEP, partition, run_id, source, note=note)
                    )
            else:
                target = _unique_name(folder, name, taken, exists, folders)
                actions.append(
                    _act(str(target), row, ActionKind.RELOCATE, partition, run_id, source, earlier.destination)
                )
            continue
        if earlier is not None and exists(earlier.destination):
            # The source changed since it was placed: retire the stale copy (unless the user edited it: then
            # it stays, listed before the new placement so the next run knows it as the extra row), place
            # the new content.
            if edited(earlier, row.content_hash):
                actions.append(_keep(earlier, partition, run_id, f"{_EDITED}; its original changed too"))
            else:
                actions.append(_trash(earlier, out, partition, run_id))
        target = _unique_name(folder, name, taken, exists, folders)
        actions.append(_act(str(target), row, mode, partition, run_id, source))
    for source, earlier in by_source.items():
        if source in wanted_sources or not exists(earlier.destination):
            continue
        if _was_moved_here(earlier, exists, placed_as):
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
        elif edited(earlier):
            actions.append(_keep(earlier, partition, run_id, f"{_EDITED}; kept although its original is gone"))
        else:
            actions.append(_trash(earlier, out, partition, run_id))
    if unfinished is None:
        return Plan(actions)
    return _adopt(
        actions,
        unfinished,
        placed,
        files,
        out,
        partition,
        mode,
        rename,
        run_id,
        exists,
        digest=digest,
        keep_structure=keep_structure,
        tree=tree,
        placed_as=placed_as,
    )


def _adopt(actions, unfinished, placed, files, out, partition, mode, rename, run_id, exists, **disk) -> Plan:
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
            return Plan(plan(files, placed, out, partition, mode, rename, run_id, exists, **disk))
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


def _was_moved_here(row, exists: Exists, placed_as: PlacedAs | None = None) -> bool:
    """True when the tree holds the user's original (placed by move mode), which must never be retired.

    A keep or relocate row does not say how its file was placed; ``placed_as`` (the records' lineage) does.
    Without it, or when it does not know, a file whose source is gone may be a moved original and counts as
    one. A copy or link known as such is not, whatever runs kept it in between.
    """
    if row.action == ActionKind.MOVE:
        return True
    if row.action not in (ActionKind.KEEP, ActionKind.RELOCATE) or exists(row.source):
        return False
    mode = placed_as(row.destination) if placed_as is not None else None
    return mode is None or mode == ActionKind.MOVE


_EDITED = "edited since it was placed; kept where it is"


def _act(
    destination: str,
    row,
    action: ActionKind,
    partition: str,
    run_id: str,
    source: str,
    previous: str = "",
    note: str = "",
) -> Action:
    return Action(source, destination, row.content_hash, row.cluster_name, action, partition, run_id, previous, note)


def _keep(earlier, partition: str, run_id: str, note: str) -> Action:
    """A placement left where it is, as recorded (the recorded hash, so the next run sees the edit again)."""
    return Action(
        earlier.source,
        earlier.destination,
        earlier.content_hash,
        earlier.cluster,
        ActionKind.KEEP,
        partition,
        run_id,
        "",
        note,
    )


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
