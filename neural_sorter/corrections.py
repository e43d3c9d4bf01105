"""Hand corrections of a partition's clusters: rename a cluster, merge clusters, move files to another cluster,
and keep a chosen copy of a duplicate group (it becomes the group's representative).

They are stored per partition in ``<store>/corrections/<partition>.json`` (written atomically through
``Store``), in the order they were made, and the ``clusters`` stage re-applies all of them after every
clustering or stable update (``apply_corrections``), so they survive incremental re-sorts, the schedule and
even a full re-cluster.

Nothing here names a cluster by its number alone, since numbers change when a folder is re-clustered. A
cluster is referred to by a few of its members' content hashes (*anchors*, the files nearest its centre),
and resolved to whichever cluster now holds most of them; files are named by content hash, so a renamed or
moved source file keeps its corrections. Applying the same corrections twice changes nothing.

Dagster-free and viewer-free: the stage, the asset, the viewer and the tests all call these functions.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from neural_sorter.store import Store

FOLDER = "corrections"
FORMAT_VERSION = 1
#: Member hashes kept to recognise a cluster after a re-cluster (the ones nearest its centre first).
ANCHORS = 64
UNSORTED_ID = -1
#: The column of the clusters table that says which corrections touched a file.
COLUMN = "correction"
OPS = ("rename", "merge", "move", "keep")
#: The duplicate columns a ``keep`` choice rewrites (``neural_sorter.duplicates``).
KEEP_COLUMNS = ("is_representative", "representative", "similarity", "duplicate_tier")

Correction = dict[str, Any]

_lock = threading.Lock()


class CorrectionError(ValueError):
    """A correction that cannot be made (unknown cluster, empty name, nothing to move); says why."""


# ------------------------------------------------------------------------------------------------- storage


def corrections_path(store: Store, key: str):
    """``<store>/corrections/<partition>.json``."""
    return store.root / FOLDER / f"{key}.json"


def load_corrections(store: Store, key: str) -> list[Correction]:
    """The partition's corrections in the order they were made; [] when there are none."""
    path = corrections_path(store, key)
    if not path.exists():
        return []
    with path.open("rb") as handle:
        document = json.loads(handle.read().decode("utf-8") or "{}")
    items = document.get("corrections", []) if isinstance(document, dict) else []
    return [c for c in items if isinstance(c, dict) and c.get("op") in OPS]


def save_corrections(store: Store, key: str, corrections: list[Correction]) -> None:
    """Replaces the partition's corrections atomically (a reader sees the old list or the new one)."""
    document = {"version": FORMAT_VERSION, "partition": key, "corrections": list(corrections)}
    store.write_bytes(corrections_path(store, key), json.dumps(document, indent=1, sort_keys=True).encode())


def add_correction(store: Store, key: str, correction: Correction) -> list[Correction]:
    """Appends one correction (made by ``rename``/``merge``/``move``) and returns the new list."""
    with _lock:
        corrections = [*load_corrections(store, key), correction]
        save_corrections(store, key, corrections)
    return corrections


def remove_correction(store: Store, key: str, correction_id: str) -> list[Correction]:
    """Drops the correction with that id (a no-op when there is none) and returns the new list."""
    with _lock:
        corrections = [c for c in load_corrections(store, key) if c.get("id") != correction_id]
        save_corrections(store, key, corrections)
    return corrections


def corrections_stamp(store: Store, key: str) -> tuple[float, int] | None:
    """(mtime, size) of the corrections file, or None: cheap change detection for the viewer."""
    try:
        info = corrections_path(store, key).stat()
    except (FileNotFoundError, OSError):
        return None
    return (float(getattr(info, "st_mtime", 0.0) or 0.0), int(getattr(info, "st_size", 0) or 0))


# ------------------------------------------------------------------------------------------------- making


def cluster_ref(table: pd.DataFrame, cluster_id: int) -> dict[str, Any]:
    """How a correction names a cluster of ``table``: its id and name then, and up to ``ANCHORS`` member
    hashes, nearest the centre first. Raises ``CorrectionError`` for a cluster the table does not have."""
    cluster_id = int(cluster_id)
    members = table[table["cluster_id"] == cluster_id]
    if not len(members):
        raise CorrectionError(f"there is no cluster {cluster_id}")
    if "distance_to_centroid" in members:
        distance = pd.to_numeric(members["distance_to_centroid"], errors="coerce").fillna(np.inf)
        members = members.assign(_d=distance.to_numpy()).sort_values(["_d", "content_hash"])
    anchors = list(dict.fromkeys(str(h) for h in members["content_hash"] if isinstance(h, str)))[:ANCHORS]
    return {"id": cluster_id, "name": str(members["cluster_name"].iloc[0]), "anchors": anchors}


def _new(op: str, **fields: Any) -> Correction:
    created = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return {"id": secrets.token_hex(6), "op": op, "created": created, **fields}


def clean_name(name: str) -> str:
    """A folder name from what the person typed: one path component, no leading dots, at most 80 chars."""
    text = " ".join(str(name or "").replace("/", "-").replace("\\", "-").split()).strip().lstrip(".")
    if not text:
        raise CorrectionError("the new name is empty")
    return text[:80]


def rename(table: pd.DataFrame, cluster_id: int, name: str) -> Correction:
    """Rename a cluster (its folder). Refuses the unsorted files and a name another cluster has."""
    if int(cluster_id) == UNSORTED_ID:
        raise CorrectionError("the unsorted files are not a cluster to rename")
    new_name = clean_name(name)
    ref = cluster_ref(table, cluster_id)
    taken = table.loc[table["cluster_id"] != int(cluster_id), "cluster_name"].astype(str)
    if new_name in set(taken):
        raise CorrectionError(f"another cluster is already called {new_name!r}: merge them instead")
    return _new("rename", cluster=ref, name=new_name)


def merge(table: pd.DataFrame, sources: Iterable[int], into: int) -> Correction:
    """Merge the ``sources`` clusters into ``into``: their files take its id, name and folder."""
    into = int(into)
    wanted = sorted({int(s) for s in sources} - {into})
    if into == UNSORTED_ID or UNSORTED_ID in wanted:
        raise CorrectionError("the unsorted files cannot be merged; move them instead")
    if not wanted:
        raise CorrectionError("choose at least one other cluster to merge")
    return _new("merge", sources=[cluster_ref(table, s) for s in wanted], into=cluster_ref(table, into))


def move(
    table: pd.DataFrame, content_hashes: Iterable[str], to: int | None = None, new_name: str | None = None
) -> Correction:
    """Move files (by content hash) to the existing cluster ``to``, or to a new cluster called ``new_name``."""
    hashes = sorted({str(h) for h in content_hashes if isinstance(h, str) and h})
    if not hashes:
        raise CorrectionError("no files selected to move")
    if new_name is not None and str(new_name).strip():
        name = clean_name(new_name)
        if name in set(table["cluster_name"].astype(str)):
            raise CorrectionError(f"a cluster is already called {name!r}: move the files to it")
        target: dict[str, Any] = {"id": None, "name": name, "anchors": [], "new": True}
    elif to is None:
        raise CorrectionError("choose the cluster to move the files to")
    elif int(to) == UNSORTED_ID:
        target = {"id": UNSORTED_ID, "name": _unsorted_name(table), "anchors": []}
    else:
        target = cluster_ref(table, int(to))
    return _new("move", hashes=hashes, to=target)


def keep(table: pd.DataFrame, relative_path: str) -> Correction:
    """Keep ``relative_path`` as the representative of its duplicate group (the copy placed in its cluster;
    the others go to ``_duplicates/`` or are skipped). The file is named by content hash and path."""
    rows = table[table["relative_path"] == relative_path] if "relative_path" in table else table.iloc[:0]
    if not len(rows) or "duplicate_group" not in table or not isinstance(rows["duplicate_group"].iloc[0], str):
        raise CorrectionError(f"{relative_path} is not in a duplicate group")
    row = rows.iloc[0]
    if not isinstance(row["content_hash"], str) or not row["content_hash"]:
        raise CorrectionError(f"{relative_path} has no content hash in the store; re-sort the folder first")
    copies = int((table["duplicate_group"] == row["duplicate_group"]).sum())
    return _new("keep", hash=row["content_hash"], path=relative_path, group=row["duplicate_group"], copies=copies)


def describe(correction: Correction) -> str:
    """One line for people: the viewer's list and the Dagster UI's metadata."""
    op = correction.get("op")
    if op == "rename":
        return f"renamed {correction['cluster'].get('name')} to {correction.get('name')}"
    if op == "merge":
        names = ", ".join(str(s.get("name")) for s in correction.get("sources", []))
        return f"merged {names} into {correction['into'].get('name')}"
    if op == "move":
        count = len(correction.get("hashes", []))
        new = " (new cluster)" if correction["to"].get("new") else ""
        return f"moved {count} file{'s' if count != 1 else ''} to {correction['to'].get('name')}{new}"
    if op == "keep":
        return f"keep {correction.get('path')} of its {correction.get('copies', '?')} copies"
    return str(op)


# ------------------------------------------------------------------------------------------------- applying


def apply_corrections(
    table: pd.DataFrame, corrections: Iterable[Correction], vectors: np.ndarray | None = None
) -> pd.DataFrame:
    """``table`` (a clusters table) with ``corrections`` applied in order; a new frame, the input untouched.

    Files are matched by content hash, clusters by their anchors (see the module). Moved and merged files
    take the target cluster's id, name and category and a sort code after its last one; ``cluster_size`` is
    recounted, and with ``vectors`` (rows aligned on ``table``) ``distance_to_centroid`` is recomputed for
    the clusters that changed. The ``correction`` column lists the operations that touched each file (kept
    from the input when it has one). A correction whose clusters or files are gone is skipped.
    """
    out = table.copy()
    if COLUMN not in out:
        out[COLUMN] = None
    out[COLUMN] = out[COLUMN].astype(object).where(out[COLUMN].notna(), None)
    changed: set[int] = set()
    for correction in corrections:
        op = correction.get("op")
        if op == "rename":
            changed |= _apply_rename(out, correction)
        elif op == "merge":
            changed |= _apply_merge(out, correction)
        elif op == "move":
            changed |= _apply_move(out, correction)
        elif op == "keep":
            _apply_keep(out, correction)
    if "cluster_size" in out and len(out):
        out["cluster_size"] = out.groupby("cluster_id")["cluster_id"].transform("size").astype("int64")
    if vectors is not None and changed and "distance_to_centroid" in out and len(vectors) == len(out):
        labels = out["cluster_id"].to_numpy()
        distance = out["distance_to_centroid"].to_numpy(dtype=np.float32, copy=True)
        for cid in changed:
            members = labels == cid
            if cid < 0 or not members.any():
                if members.any():
                    distance[members] = np.nan
                continue
            centre = vectors[members].mean(axis=0)
            distance[members] = np.linalg.norm(vectors[members] - centre, axis=1)
        out["distance_to_centroid"] = distance
    return out


def resolve(table: pd.DataFrame, ref: dict[str, Any]) -> int | None:
    """The id of the cluster ``ref`` names in ``table`` now: the one holding most of its anchors (ties to the
    smaller id), else the cluster with its name; the unsorted files are always -1; None when it is gone."""
    if ref.get("id") == UNSORTED_ID:
        return UNSORTED_ID
    anchors = ref.get("anchors") or []
    if anchors:
        hits = table.loc[table["content_hash"].isin(anchors), "cluster_id"]
        hits = hits[hits >= 0]
        if len(hits):
            counts = hits.value_counts()
            return int(min(counts[counts == counts.max()].index))
    named = table.loc[table["cluster_name"] == ref.get("name"), "cluster_id"]
    named = named[named >= 0]
    return int(named.iloc[0]) if len(named) else None


def _mark(out: pd.DataFrame, rows: np.ndarray, op: str) -> None:
    if not rows.any():
        return
    marks = out[COLUMN].to_numpy(dtype=object, copy=True)
    marks[rows] = [
        op if not isinstance(m, str) or not m else (m if op in m.split(",") else f"{m},{op}") for m in marks[rows]
    ]
    out[COLUMN] = marks


def _name_of(out: pd.DataFrame, cid: int) -> str:
    names = out.loc[out["cluster_id"] == cid, "cluster_name"]
    return str(names.iloc[0]) if len(names) else f"cluster-{cid:02d}"


def _unsorted_name(table: pd.DataFrame) -> str:
    names = table.loc[table["cluster_id"] == UNSORTED_ID, "cluster_name"]
    return str(names.iloc[0]) if len(names) else "unsorted"


def _free_name(out: pd.DataFrame, name: str, owner: int) -> None:
    """Another cluster that happens to be called ``name`` (an automatic name after a re-cluster) steps aside."""
    others = (out["cluster_name"] == name) & (out["cluster_id"] != owner)
    if not others.any():
        return
    taken, suffix = set(out["cluster_name"].astype(str)), 2
    while f"{name}-{suffix}" in taken:
        suffix += 1
    out.loc[others, "cluster_name"] = f"{name}-{suffix}"


def _apply_rename(out: pd.DataFrame, correction: Correction) -> set[int]:
    cid = resolve(out, correction.get("cluster") or {})
    name = correction.get("name")
    if cid is None or cid == UNSORTED_ID or not isinstance(name, str) or not name:
        return set()
    members = (out["cluster_id"] == cid).to_numpy()
    _free_name(out, name, cid)
    out.loc[members, "cluster_name"] = name
    if "cluster_category" in out:
        out.loc[members, "cluster_category"] = None
    if "category_confidence" in out:
        out.loc[members, "category_confidence"] = np.nan
    _mark(out, members, "rename")
    return set()  # nobody moved: distances stay


def _take_into(out: pd.DataFrame, rows: np.ndarray, target: int, name: str) -> None:
    """Rows join cluster ``target``: its id, name and category, and sort codes after its last one."""
    labels = out["cluster_id"].to_numpy()
    template = np.flatnonzero((labels == target) & ~rows)
    out.loc[rows, "cluster_id"] = target
    out.loc[rows, "cluster_name"] = name
    for column in ("cluster_category", "category_confidence"):
        if column in out:
            out.loc[rows, column] = out[column].iloc[template[0]] if len(template) else None
    if "hier_code" in out:
        codes = out["hier_code"].astype(object).to_numpy(copy=True)
        prefix, rank = None, 0
        for code in codes[template]:
            parts = str(code).split("-")
            if len(parts) == 2 and parts[1].isdigit():
                prefix = prefix or parts[0]
                rank = max(rank, int(parts[1]) + 1)
        prefix = prefix or ("nn" if target < 0 else f"{target:02d}")
        for row in np.flatnonzero(rows):
            codes[row] = f"{prefix}-{rank:05d}"
            rank += 1
        out["hier_code"] = codes


def _apply_merge(out: pd.DataFrame, correction: Correction) -> set[int]:
    target = resolve(out, correction.get("into") or {})
    if target is None or target == UNSORTED_ID:
        return set()
    sources = {resolve(out, ref) for ref in correction.get("sources", [])} - {None, target, UNSORTED_ID}
    labels = out["cluster_id"].to_numpy()
    rows = np.isin(labels, list(sources))
    if rows.any():
        _take_into(out, rows, target, _name_of(out, target))
    _mark(out, rows, "merge")
    return {target, *sources} if rows.any() else set()


def _apply_move(out: pd.DataFrame, correction: Correction) -> set[int]:
    ref = correction.get("to") or {}
    rows = out["content_hash"].isin(set(correction.get("hashes", []))).to_numpy()
    if not rows.any():
        return set()
    if ref.get("new"):
        named = out.loc[(out["cluster_name"] == ref.get("name")) & (out["cluster_id"] >= 0), "cluster_id"]
        target = int(named.iloc[0]) if len(named) else int(max(out["cluster_id"].max(), -1)) + 1
        name = str(ref.get("name"))
        if not len(named):
            _free_name(out, name, target)
    else:
        resolved = resolve(out, ref)
        if resolved is None:
            return set()
        target, name = resolved, _name_of(out, resolved) if resolved != UNSORTED_ID else _unsorted_name(out)
    labels = out["cluster_id"].to_numpy()
    before = set(labels[rows].tolist())
    moving = rows & (labels != target)
    if moving.any():
        _take_into(out, moving, target, name)
    _mark(out, rows, "move")
    return {target, *before} if moving.any() else set()


def apply_keeps(table: pd.DataFrame, corrections: Iterable[Correction]) -> pd.DataFrame:
    """``table`` (the duplicate columns of ``neural_sorter.duplicates``, or a clusters table) with the ``keep``
    choices applied in order, the later choice for a group winning; a new frame. The clusters stage calls it
    right after finding the groups, so clustering sees the chosen copy as the group's point."""
    out = table.copy()
    for correction in corrections:
        if correction.get("op") == "keep":
            _apply_keep(out, correction, mark=COLUMN in out)
    return out


def _apply_keep(out: pd.DataFrame, correction: Correction, mark: bool = True) -> None:
    """The chosen file becomes ``is_representative`` of the group it is in now (found by content hash, the
    stored path preferred among byte-identical copies); the others name it as ``representative``. Similarity
    to it: 1.0 for itself and its byte copies, the chosen file's old score for the old representative (and
    its byte copies), kept
    for the rest (they were scored against the old one). Tiers follow ``find_duplicates``'s rule. A choice
    whose file is gone or no longer grouped is skipped."""
    needed = {"relative_path", "content_hash", "duplicate_group", "is_representative"}
    if not needed <= set(out.columns):
        return
    same = (out["content_hash"] == correction.get("hash")).to_numpy()
    if not same.any():
        return
    exact = same & (out["relative_path"] == correction.get("path")).to_numpy()
    chosen = int(np.flatnonzero(exact if exact.any() else same)[0])
    group = out["duplicate_group"].iat[chosen]
    if not isinstance(group, str) or not group:
        return
    members = (out["duplicate_group"] == group).to_numpy()
    reps = members & out["is_representative"].fillna(False).astype(bool).to_numpy()
    chosen_path = out["relative_path"].iat[chosen]
    if "similarity" in out:
        similarity = out["similarity"].to_numpy(dtype=np.float64, copy=True)
        score = similarity[chosen]
        old = members & out["content_hash"].isin(set(out.loc[reps, "content_hash"])).to_numpy()
        similarity[old] = score  # the old representative and its byte copies
        similarity[members & same] = 1.0
        out["similarity"] = similarity.astype(out["similarity"].dtype, copy=False)
    flags = np.zeros(len(out), dtype=bool)
    flags[chosen] = True
    out["is_representative"] = np.where(members, flags, out["is_representative"].to_numpy())
    out["is_representative"] = out["is_representative"].astype(bool)
    if "representative" in out:
        out.loc[members, "representative"] = chosen_path
    if "duplicate_tier" in out:
        one_picture = out.loc[members, "content_hash"].nunique() == 1
        tiers = np.where(same, "exact", "near").astype(object)
        tiers[chosen] = "exact" if one_picture else "near"
        out.loc[members, "duplicate_tier"] = tiers[members]
    if mark:
        if COLUMN not in out:
            out[COLUMN] = None
        _mark(out, flags, "keep")
