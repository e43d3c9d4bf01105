"""The ``reorganized_tree`` stage and ``undo``: placing files into per-cluster folders, reversibly.

Safety rules, in order of importance:
- originals are never modified in copy/link modes, and nothing is ever overwritten: every placement goes
  through ``os.link``/``os.symlink`` (which fail when the name exists) or an existence check;
- the manifest is written and fsynced before the first file is touched, so a crash at any moment leaves a
  record that ``undo`` and the next run understand;
- files are never deleted from the tree: ones whose source disappeared go to a trash folder that undo
  restores from;
- moves across devices copy, verify the hash, and only then remove the source.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout
from tqdm import tqdm

from neural_sorter.file_manifest import content_hash

STATE_DIR = ".neural-sorter"
MANIFEST_NAME = "manifest.csv"
DRY_RUN_NAME = "manifest.dry-run.csv"
LOCK_NAME = "lock"
MANIFEST_FIELDS = [
    "source",
    "destination",
    "content_hash",
    "cluster",
    "action",
    "partition",
    "run_id",
    "previous_destination",
]
PLACING_ACTIONS = ("copy", "hardlink", "symlink", "move")
# Actions after which the destination holds a file this tool is responsible for.
HOLDING_ACTIONS = (*PLACING_ACTIONS, "keep", "relocate")


class OutputDirError(ValueError):
    """The output folder is unsafe to write to; the message says why."""


@dataclass
class Action:
    source: str
    destination: str
    content_hash: str
    cluster: str
    action: str
    partition: str
    run_id: str
    previous_destination: str = ""


@dataclass
class ReorganizeReport:
    run_id: str
    manifest: str
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{secrets.token_hex(3)}"


def state_dir(out: Path) -> Path:
    return out / STATE_DIR


class OutputBusyError(RuntimeError):
    """Another neural-sorter run holds the output folder's lock for longer than we were willing to wait."""


@contextlib.contextmanager
def output_lock(out: Path, timeout: float = 3600.0, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Serialises planning + placing (and undo) per output folder across processes.

    Runs for different sources may share one OUT (the sensor can start several at once); each plans from
    the placements the previous one recorded, so they must not interleave. Waits up to ``timeout``
    seconds, telling ``on_wait`` once that it is waiting.
    """
    folder = state_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            on_wait(f"another neural-sorter run is writing to {out}; waiting up to {timeout:.0f} s for it")
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise OutputBusyError(
                f"another neural-sorter run kept {out} locked for over {timeout:.0f} s ({folder / LOCK_NAME}); "
                "try again when it has finished"
            ) from None
    try:
        yield
    finally:
        lock.release()


def check_output_dir(out: Path, sources: Iterable[Path], force: bool = False) -> None:
    """Refuses output folders that would mix with or swallow the inputs."""
    out_real = Path(os.path.realpath(out))
    for source in sources:
        src_real = Path(os.path.realpath(source))
        if out_real == src_real:
            raise OutputDirError(f"the output folder {out} is the source folder itself; choose another")
        if src_real.is_relative_to(out_real):
            raise OutputDirError(f"source {source} lies inside the output folder {out}; choose another output")
    if out_real.is_file():
        raise OutputDirError(f"output {out} is a file, not a folder")
    if out_real.is_dir() and not state_dir(out_real).is_dir():
        visible = [p for p in out_real.iterdir() if not p.name.startswith(".")]
        if visible and not force:
            raise OutputDirError(
                f"output folder {out} is not empty and was not made by neural-sorter; "
                "pass --force to sort into it anyway"
            )


# ----------------------------------------------------------------------------------------- history


_SEQUENCE_DIGITS = 6


def _sequence(path: Path) -> int:
    head = path.name.split("-", 1)[0]
    return int(head) if head.isdigit() and len(head) == _SEQUENCE_DIGITS else -1


def history_files(out: Path) -> list[Path]:
    """Manifests of earlier runs, oldest first (undone runs excluded).

    Order comes from the sequence number each run claims, never from clock time: two runs in the
    same second (or a clock stepped backwards) must still undo in the order they happened.
    """
    folder = state_dir(out) / "history"
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.csv"), key=lambda path: (_sequence(path), path.name))


def _write_history(folder: Path, run_id: str, partition: str, actions: list[Action]) -> Path:
    """Writes the run's manifest under the next free sequence number.

    The complete file is hard-linked into place, which fails rather than replaces when a
    concurrent run took that number first; a reader never sees a half-written manifest.
    """
    staging = folder / f".staging-{run_id}-{partition}.tmp"
    write_manifest(staging, actions)
    number = max((_sequence(path) for path in folder.iterdir()), default=-1) + 1
    try:
        while True:
            path = folder / f"{number:0{_SEQUENCE_DIGITS}d}-{run_id}-{partition}.csv"
            try:
                os.link(staging, path)
                _fsync_dir(folder)
                return path
            except FileExistsError:
                number += 1
    finally:
        staging.unlink(missing_ok=True)


def read_manifest(path: Path) -> pd.DataFrame:
    # Paths that are not valid UTF-8 were written with surrogateescape; read them back the same way.
    return pd.read_csv(path, dtype=object, keep_default_na=False, encoding_errors="surrogateescape")


def current_placements(out: Path, partition: str) -> pd.DataFrame:
    """What the tree holds for ``partition``: the holding rows of the latest run that touched it."""
    for path in reversed(history_files(out)):
        table = read_manifest(path)
        mine = table[table["partition"] == partition]
        if len(mine):
            return mine[mine["action"].isin(HOLDING_ACTIONS)].reset_index(drop=True)
    return pd.DataFrame(columns=MANIFEST_FIELDS)


# ---------------------------------------------------------------------------------------- planning


# Most filesystems allow 255 bytes per name; leave room for " (NNN)" collision suffixes.
_NAME_BYTES = 240


def _fit(stem: str, tail: str) -> str:
    """Shortens ``stem`` (never the extension) so ``stem + tail`` fits in ``_NAME_BYTES`` bytes."""
    encoded = stem.encode("utf-8", "surrogateescape")
    room = _NAME_BYTES - len(tail.encode("utf-8", "surrogateescape"))
    if len(encoded) <= room:
        return stem + tail
    return encoded[: max(1, room)].decode("utf-8", "ignore") + tail


def _unique_name(folder: Path, name: str, taken: set[str]) -> Path:
    """``name``, or ``stem (2).ext`` and so on: never a name that exists on disk or was already planned."""
    stem, dot, ext = name.rpartition(".")
    if not stem or len(ext) > 16:
        stem, dot, ext = name, "", ""
    candidate, n = folder / _fit(stem, f"{dot}{ext}"), 2
    while str(candidate) in taken or os.path.lexists(candidate):
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
) -> list[Action]:
    """The delta from what the tree holds now to what ``files`` asks for.

    ``files`` has columns source (absolute path), relative_path, content_hash, cluster_name, hier_code.
    New files are placed, files already placed in the right folder are kept, placed files whose cluster
    changed are relocated, and placements whose source is gone are moved to the trash (except originals
    that this tool moved into the tree, which stay).
    """
    if mode not in PLACING_ACTIONS:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(PLACING_ACTIONS)}")
    base = out / partition
    placed = current_placements(out, partition)
    by_source = {row.source: row for row in placed.itertuples(index=False)}
    taken: set[str] = set(placed["destination"])
    actions: list[Action] = []
    ordered = list(files.sort_values("relative_path").itertuples(index=False)) if len(files) else []
    wanted_sources = {row.source for row in ordered}
    # Placements whose source vanished, by content: a renamed or moved source takes its old placement along.
    orphans: dict[str, list] = {}
    for source, earlier in by_source.items():
        if source not in wanted_sources and os.path.lexists(earlier.destination):
            orphans.setdefault(earlier.content_hash, []).append(earlier)
    for row in ordered:
        source = row.source
        name = os.path.basename(row.relative_path)
        if rename:
            name = f"{row.hier_code}_{name}"
        folder = base / row.cluster_name
        earlier = by_source.get(source)
        if earlier is None and orphans.get(row.content_hash) and mode != "move":
            earlier = orphans[row.content_hash].pop()
            by_source.pop(earlier.source)
        if earlier is not None and earlier.content_hash == row.content_hash and os.path.lexists(earlier.destination):
            if earlier.action == "move":
                # A move killed between link and unlink: the original is still in the source. Finish it.
                actions.append(_act(earlier.destination, row, "move", partition, run_id, source))
                continue
            if Path(earlier.destination).parent == folder and (
                not rename or os.path.basename(earlier.destination).startswith(f"{row.hier_code}_")
            ) and (earlier.action != "symlink" or earlier.source == source):
                actions.append(_act(earlier.destination, row, "keep", partition, run_id, source))
            else:
                target = _unique_name(folder, name, taken)
                actions.append(
                    _act(str(target), row, "relocate", partition, run_id, source, earlier.destination)
                )
            continue
        if earlier is not None and os.path.lexists(earlier.destination):
            # The source changed since it was placed: retire the stale copy, place the new content.
            actions.append(_trash(earlier, out, partition, run_id))
        actions.append(_act(str(_unique_name(folder, name, taken)), row, mode, partition, run_id, source))
    for source, earlier in by_source.items():
        if source in wanted_sources or not os.path.lexists(earlier.destination):
            continue
        if _was_moved_here(earlier):
            actions.append(
                Action(source, earlier.destination, earlier.content_hash, earlier.cluster, "keep", partition, run_id)
            )
        else:
            actions.append(_trash(earlier, out, partition, run_id))
    return actions


def _was_moved_here(row) -> bool:
    """True when the tree holds the user's original (placed by move mode), which must never be retired."""
    return row.action == "move" or (row.action in ("keep", "relocate") and not os.path.lexists(row.source))


def _act(destination: str, row, action: str, partition: str, run_id: str, source: str, previous: str = "") -> Action:
    return Action(source, destination, row.content_hash, row.cluster_name, action, partition, run_id, previous)


def _trash(earlier, out: Path, partition: str, run_id: str) -> Action:
    trash = state_dir(out) / "trash" / run_id / os.path.relpath(earlier.destination, out)
    return Action(
        earlier.source, str(trash), earlier.content_hash, earlier.cluster, "remove", partition, run_id,
        earlier.destination,
    )


# ---------------------------------------------------------------------------------------- writing


def write_manifest(path: Path, actions: list[Action]) -> None:
    """Writes a manifest CSV atomically and durably (temp file, fsync, rename, fsync the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        for action in actions:
            writer.writerow(asdict(action))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _copy_to_temp(source: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".ns-tmp-{secrets.token_hex(6)}"
    with open(source, "rb") as src, open(tmp, "xb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
    shutil.copystat(source, tmp)
    return tmp


def _publish(tmp: Path, destination: Path) -> None:
    """Gives ``tmp`` its final name without ever replacing an existing file."""
    try:
        os.link(tmp, destination)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        # Filesystems without hard links (FAT, some network shares): check-then-rename.
        if os.path.lexists(destination):
            raise FileExistsError(errno.EEXIST, "destination exists", str(destination)) from None
        os.rename(tmp, destination)
        return
    os.unlink(tmp)


def _hash_matches(path: str, expected: str) -> bool:
    try:
        return content_hash(path) == expected
    except OSError:
        return False


def _already_done(action: Action) -> bool:
    """A placement that a killed earlier attempt of this same plan already made."""
    if not os.path.lexists(action.destination):
        return False
    if action.action == "symlink":
        return os.path.islink(action.destination) and os.readlink(action.destination) == action.source
    return _hash_matches(action.destination, action.content_hash)


def _move_file(source: str, destination: Path, expected_hash: str) -> None:
    """Moves without overwriting; across devices the copy's hash is verified before the source goes."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        tmp = _copy_to_temp(source, destination.parent)
        if content_hash(tmp) != expected_hash:
            os.unlink(tmp)
            raise OSError(f"copy of {source} does not match its hash; source left in place") from None
        _publish(tmp, destination)
    os.unlink(source)


def apply_action(action: Action) -> None:
    destination = Path(action.destination)
    kind = action.action
    if kind == "keep":
        return
    if kind in PLACING_ACTIONS and _already_done(action):
        if kind == "move" and os.path.lexists(action.source) and _hash_matches(action.source, action.content_hash):
            os.unlink(action.source)  # killed between link and unlink of a move
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    if kind == "copy":
        if not _hash_matches(action.source, action.content_hash):
            raise OSError("source changed since it was inventoried; not copied (re-run to pick it up)")
        tmp = _copy_to_temp(action.source, destination.parent)
        try:
            _publish(tmp, destination)
        finally:
            if tmp.exists():
                tmp.unlink()
    elif kind == "hardlink":
        os.link(action.source, destination)
    elif kind == "symlink":
        os.symlink(action.source, destination)
    elif kind == "move":
        if not _hash_matches(action.source, action.content_hash):
            raise OSError("source changed since it was inventoried; not moved (re-run to pick it up)")
        _move_file(action.source, destination, action.content_hash)
    elif kind in ("relocate", "remove"):
        origin = action.previous_destination
        if not os.path.lexists(origin):
            if os.path.lexists(destination):
                return  # done by a killed earlier attempt
            raise FileNotFoundError(f"{origin} is gone")
        if os.path.lexists(destination):
            raise FileExistsError(errno.EEXIST, "destination exists", str(destination))
        _rename_no_replace(origin, destination)
    else:
        raise ValueError(f"unknown action {kind!r}")


def _rename_no_replace(origin: str, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    if os.path.islink(origin):
        target = os.readlink(origin)
        os.symlink(target, destination)
        os.unlink(origin)
        return
    try:
        os.link(origin, destination)
        os.unlink(origin)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        if os.path.lexists(destination):
            raise FileExistsError(errno.EEXIST, "destination exists", str(destination)) from None
        os.rename(origin, destination)


def execute_plan(out: Path, actions: list[Action], run_id: str, dry_run: bool = False) -> ReorganizeReport:
    """Records the plan durably, then carries it out; per-file failures are reported, never fatal."""
    folder = state_dir(out)
    if dry_run:
        manifest = folder / DRY_RUN_NAME
        write_manifest(manifest, actions)
        return ReorganizeReport(run_id, str(manifest), _count(actions))
    partition = actions[0].partition if actions else "empty"
    _remove_stale_temporaries(out / partition)
    _write_history(folder / "history", run_id, partition, actions)
    write_manifest(folder / MANIFEST_NAME, actions)
    report = ReorganizeReport(run_id, str(folder / MANIFEST_NAME), _count(actions))
    touched: set[Path] = set()
    for action in tqdm(actions, desc="reorganize", unit="file", disable=None, leave=False):
        try:
            apply_action(action)
            touched.add(Path(action.destination).parent)
        except OSError as exc:
            report.failures.append((action.source, f"{action.action} failed: {exc}"))
    for parent in touched:
        _fsync_dir(parent)
    _remove_empty_dirs(out, exclude=folder)
    return report


def _remove_stale_temporaries(tree: Path) -> None:
    """Half-written copies left by a killed run: they never got a real name, so nothing refers to them."""
    if tree.is_dir():
        for stale in tree.rglob(".ns-tmp-*"):
            with contextlib.suppress(OSError):
                stale.unlink()


def _count(actions: list[Action]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for action in actions:
        counts[action.action] = counts.get(action.action, 0) + 1
    return counts


def _remove_empty_dirs(out: Path, exclude: Path) -> None:
    """Cluster folders emptied by relocations or removals; only empty ones, never the state folder."""
    for dirpath, _dirnames, _files in os.walk(out, topdown=False):
        path = Path(dirpath)
        if path == out or path.is_relative_to(exclude):
            continue
        with contextlib.suppress(OSError):  # not empty: fine
            path.rmdir()


# -------------------------------------------------------------------------------------------- undo


@dataclass
class UndoReport:
    manifest: str
    reverted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def undo_last(out: Path, lock_timeout: float = 60.0) -> UndoReport:
    """Reverts the latest run recorded in ``out``: removes what it placed, restores what it moved.

    Anything whose content no longer matches what the run placed is left alone, with a reason.
    """
    if not history_files(out):
        raise FileNotFoundError(f"no reorganization to undo in {out} (no {STATE_DIR}/history)")
    with output_lock(out, timeout=lock_timeout):
        return _undo_latest(out)


def _undo_latest(out: Path) -> UndoReport:
    files = history_files(out)
    if not files:
        raise FileNotFoundError(f"no reorganization to undo in {out} (no {STATE_DIR}/history)")
    latest = files[-1]
    table = read_manifest(latest)
    report = UndoReport(str(latest))
    for row in reversed(list(table.itertuples(index=False))):
        try:
            message = _revert(row)
        except OSError as exc:
            message = f"could not revert: {exc}"
        if message is None:
            report.reverted += 1
        elif message != "":
            report.skipped.append((row.destination, message))
    undone = latest.with_name(latest.name.replace(".csv", ".undone"))
    os.replace(latest, undone)
    remaining = history_files(out)
    manifest = state_dir(out) / MANIFEST_NAME
    if remaining:
        shutil.copyfile(remaining[-1], manifest)
    elif manifest.exists():
        manifest.unlink()
    _remove_empty_dirs(out, exclude=state_dir(out))
    return report


def _revert(row) -> str | None:
    """None when reverted, "" when there was nothing to do, else why it was left alone."""
    action, destination, source = row.action, row.destination, row.source
    if action == "keep":
        return ""
    if action in ("relocate", "remove"):
        if not os.path.lexists(destination):
            return ""  # never happened (run killed first)
        if os.path.lexists(row.previous_destination):
            return f"{row.previous_destination} exists; left {destination} in place"
        _rename_no_replace(destination, Path(row.previous_destination))
        return None
    if not os.path.lexists(destination):
        return ""
    if action == "symlink":
        if os.path.islink(destination) and os.readlink(destination) == source:
            os.unlink(destination)
            return None
        return "no longer the symlink this tool made; left in place"
    if not _hash_matches(destination, row.content_hash):
        return "content changed since it was placed; left in place"
    if action in ("copy", "hardlink"):
        os.unlink(destination)
        return None
    if action == "move":
        if os.path.lexists(source):
            if _hash_matches(source, row.content_hash):
                os.unlink(destination)  # killed between link and unlink: the original is back already
                return None
            return f"{source} exists with other content; left the moved file at {destination}"
        _move_file(destination, Path(source), row.content_hash)
        return None
    return f"unknown action {action!r}"
