"""``reorganized_tree``: each file placed in ``OUT/<source folder name>/<cluster>/`` (copy by default), every
action recorded in a manifest first so a crash at any moment leaves a state that a re-run or ``undo`` completes.
A placed copy the user edited is kept where it is and reported (the ``note`` column, ``kept_edited``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from neural_sorter.sources import SourceRegistry
from neural_sorter.stages import StageError, StageReport

ReorganizeMode = Literal["copy", "hardlink", "symlink", "move"]


class ReorganizeOptions(BaseModel):
    """How files are put in the output folder."""

    model_config = ConfigDict(extra="forbid")

    mode: ReorganizeMode = Field("copy", description="copy, hardlink, symlink or move the files into OUT.")
    rename: bool = Field(False, description="Prefix names with the sortable hierarchical code.")
    dry_run: bool = Field(False, description="Only write the manifest; touch no file.")
    keep_structure: bool = Field(
        False,
        description="Keep each file's original sub-folder under its cluster folder "
        "(OUT/<source>/<cluster>/<sub/folders>/<file>) instead of placing all files flat in the cluster folder.",
    )


DUPLICATES_FOLDER = "_duplicates"
REVIEW_FOLDER = "_review"


def placement_folders(clusters: pd.DataFrame, duplicates: str = "keep", review: bool = False) -> pd.DataFrame:
    """The files to place and the folder (below ``OUT/<source>``) each goes to.

    ``duplicates``: ``keep`` places every copy in its cluster; ``separate`` places a group's representative in
    its cluster and the other copies in ``_duplicates/<group>/``; ``skip`` places only representatives.
    ``review`` sends files with a quality flag to ``_review/<reason>/`` instead of a cluster. Tables without
    duplicate or flag columns (older runs) place every file in its cluster.
    """
    files = clusters.copy()
    if "is_representative" in files and "duplicate_group" in files:
        copy_of_another = ~files["is_representative"].fillna(True).astype(bool) & files["duplicate_group"].notna()
        if duplicates == "skip":
            files = files[~copy_of_another]
        elif duplicates == "separate":
            files.loc[copy_of_another, "cluster_name"] = [
                f"{DUPLICATES_FOLDER}/{group}" for group in files.loc[copy_of_another, "duplicate_group"]
            ]
    if review and "review_reason" in files:
        flagged = files["review_reason"].notna() & (files["review_reason"].astype(str) != "")
        files.loc[flagged, "cluster_name"] = [f"{REVIEW_FOLDER}/{r}" for r in files.loc[flagged, "review_reason"]]
    return files.reset_index(drop=True)


def recorded_tree(out: Path, partition_key: str) -> str | None:
    """The folder of ``out`` that OUT's records place this source's files in (None: nothing placed yet), so a
    source whose recorded folder name was lost (removed and added again) keeps its tree."""
    from collections import Counter

    from neural_sorter.reorganize.actions import STATE_DIR
    from neural_sorter.reorganize.manifest import current_placements

    placed = current_placements(out, partition_key)
    tops = Counter(Path(os.path.relpath(d, out)).parts[0] for d in placed["destination"])
    for outside in (STATE_DIR, "..", "."):
        tops.pop(outside, None)
    return tops.most_common(1)[0][0] if tops else None


def build_reorganized_tree(
    clusters: pd.DataFrame,
    manifest: pd.DataFrame,
    options: ReorganizeOptions,
    *,
    duplicates: str = "keep",
    review: bool = False,
    out: Path,
    source: Path,
    partition_key: str,
    registry: SourceRegistry,
    force: bool = False,
    on_wait: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, StageReport]:
    """Plans and applies the placements under the output folder's lock.

    The source's folder in ``out`` is chosen (and, unless a dry run, recorded) by ``registry.output_folder``
    under that lock, so two sources sorted into one output folder at once cannot both take one name."""
    from neural_sorter.inventory import display_text, source_path
    from neural_sorter.reorganize import (
        Action,
        OutputBusyError,
        OutputDirError,
        check_output_dir,
        execute_plan,
        new_run_id,
        output_lock,
        plan_reorganization,
    )

    try:
        check_output_dir(out, [source], force=force)
    except OutputDirError as exc:
        raise StageError(str(exc)) from None
    files = placement_folders(clusters, duplicates, review)
    files = files.merge(manifest[["relative_path", "path_bytes"]], on="relative_path", how="left")
    # object dtype: undecodable names carry surrogates that pandas' Arrow-backed strings refuse
    files["source"] = pd.Series([source_path(b) for b in files["path_bytes"]], index=files.index, dtype=object)
    run_id = new_run_id()
    try:
        with output_lock(out, on_wait=on_wait):
            claim = not options.dry_run
            tree = registry.output_folder(partition_key, out, source, claim, prefer=recorded_tree(out, partition_key))
            actions = plan_reorganization(
                files,
                out,
                partition_key,
                options.mode,
                options.rename,
                run_id,
                keep_structure=options.keep_structure,
                tree=tree,
            )
            result = execute_plan(out, actions, run_id, dry_run=options.dry_run)
    except OutputBusyError as exc:
        raise StageError(str(exc)) from None
    failed = dict(result.failures)
    # display_text: Parquet needs valid UTF-8; the manifest CSV keeps the real names
    rows = [
        {**{k: display_text(getattr(v, "value", v)) for k, v in vars(a).items()}, "error": failed.get(a.source)}
        for a in actions
    ]
    table = pd.DataFrame(rows, columns=[*Action.__dataclass_fields__, "error"])
    table["note"] = table["note"].where(table["note"] != "", None)
    table["dry_run"] = options.dry_run
    # Copies the user edited since they were placed: kept where they are, never relocated or retired.
    kept = [(a.destination, a.note) for a in actions if a.note]
    report = StageReport(
        {
            "output": tree,
            "manifest": Path(result.manifest),
            "mode": options.mode,
            "duplicates": duplicates,
            "review": review,
            "dry_run": options.dry_run,
            "actions": dict(result.counts),
            "failures": len(result.failures),
            "keep_structure": options.keep_structure,
            "kept_edited": len(kept),
            "undo": f"neural-sorter undo {out}",
        },
        warnings=[
            *(f"{source_file}: {reason}" for source_file, reason in result.failures),
            *(f"{destination}: {note}" for destination, note in kept),
        ],
    )
    return table, report
