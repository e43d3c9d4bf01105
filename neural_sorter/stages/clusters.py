"""``clusters``: a cluster, a folder name and a sortable hierarchical code per file; exact duplicates grouped.

Clusters stay stable across re-sorts (known files keep their cluster, new ones join the nearest) unless the
settings changed, a re-cluster was asked for, or the folder drifted too far: that decision is made here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from neural_sorter.clustering import DEFAULT_METHOD, METHODS
from neural_sorter.corrections import COLUMN as CORRECTION
from neural_sorter.corrections import apply_corrections
from neural_sorter.corrections import describe as describe_correction
from neural_sorter.stages import Markdown, StageReport

ClusterMethod = Literal[METHODS]  # type: ignore[valid-type]


class ClusterOptions(BaseModel):
    """How files are grouped and when existing groups are kept."""

    model_config = ConfigDict(extra="forbid")

    method: ClusterMethod = Field(DEFAULT_METHOD, description="Clustering method.")
    k: int | Literal["auto"] = Field("auto", description="Number of clusters, or auto (kmeans, hierarchical).")
    k_range: tuple[int, int] = Field((2, 12), description="Smallest and largest k that auto tries.")
    min_cluster_size: int = Field(5, ge=2, description="HDBSCAN minimum cluster size.")
    category_threshold: float = Field(
        0.35, ge=0.0, le=1.0, description="Mean zero-shot probability needed to name a cluster after a category."
    )
    recluster: bool = Field(False, description="Cluster from scratch instead of keeping existing clusters.")
    drift_threshold: float = Field(
        0.2, ge=0.0, le=1.0, description="Share of new or removed files that triggers a full re-cluster."
    )

    @field_validator("k", mode="before")
    @classmethod
    def _k_value(cls, value: object) -> object:
        if isinstance(value, str) and value != "auto":
            try:
                value = int(value)
            except ValueError:
                raise ValueError("k must be a whole number or 'auto'") from None
        if isinstance(value, int) and value < 1:
            raise ValueError("k must be >= 1 or 'auto'")
        return value

    @field_validator("k_range")
    @classmethod
    def _ordered_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if low < 2 or high < low:
            raise ValueError("k_range must be (low, high) with 2 <= low <= high")
        return value


def build_clusters(
    embeddings: pd.DataFrame,
    previous: pd.DataFrame | None,
    options: ClusterOptions,
    *,
    categories: list[str],
    seed: int,
    first_thumbnails: Callable[[list[str]], dict[str, bytes]] | None = None,
    corrections: list[dict] | None = None,
) -> tuple[pd.DataFrame, StageReport]:
    """Clusters from scratch or updates ``previous`` stably; ``first_thumbnails`` (paths -> one thumbnail
    each) feeds the gallery in the report, and is skipped when None. The hand ``corrections``
    (``neural_sorter.corrections``) are applied last, every run, so they outlive re-sorts and re-clusters."""
    from neural_sorter.clustering import ClusterResult, cluster_embeddings, update_clusters
    from neural_sorter.encoders import vectors_of

    started = time.perf_counter()
    vectors = vectors_of(embeddings)
    has_probs = bool(len(embeddings)) and embeddings["category_probs"].notna().all()
    categories = categories if has_probs else []
    model = str(embeddings["model_id"].iloc[0]) if len(embeddings) else ""
    signature = (
        f"{options.method};k={options.k};range={tuple(options.k_range)};mcs={options.min_cluster_size};"
        f"cats={categories};thr={options.category_threshold};seed={seed};model={model}"
    )
    if options.recluster or previous is None:
        table, why = None, "full re-cluster asked for" if options.recluster else "no earlier clusters"
    else:
        table, why = update_clusters(embeddings, vectors, previous, options.method, signature, options.drift_threshold)
    if table is None:
        table, result = cluster_embeddings(
            embeddings,
            vectors,
            options.method,
            options.k,
            tuple(options.k_range),
            options.min_cluster_size,
            categories,
            options.category_threshold,
            seed,
        )
        table["settings"] = signature
        incremental, note = False, f"clustering from scratch: {why}"
    else:
        ids = table.loc[table["cluster_id"] >= 0, "cluster_id"]
        result = ClusterResult(
            table["cluster_id"].to_numpy(), np.zeros((0, 0)), None, int(ids.nunique()), {"update": why}
        )
        incremental, note = True, f"stable clusters: {why}"
        if previous is not None and CORRECTION in previous:  # which files hand corrections touched, kept
            marks = previous.drop_duplicates("content_hash").set_index("content_hash")[CORRECTION]
            table[CORRECTION] = table["content_hash"].map(marks)
    table = apply_corrections(table, corrections or [], vectors=vectors)
    seconds = time.perf_counter() - started
    sizes = table.groupby("cluster_name").size().sort_values(ascending=False)
    report = StageReport(
        metadata={
            "method": options.method,
            "incremental": incremental,
            "reason": why,
            "clusters": len(sizes),
            "chosen_k": result.chosen_k,
            "silhouette": float(result.silhouette) if result.silhouette is not None else "n/a",
            "sizes": {str(k): int(v) for k, v in sizes.items()},
            "duplicate_files": int(table["duplicate_group"].notna().sum()),
            "seconds": round(seconds, 3),
            "details": result.details,
            "corrections": len(corrections or []),
            "corrected_files": int(table[CORRECTION].notna().sum()),
        },
        notes=[note, f"{options.method}: {len(sizes)} clusters, silhouette {result.silhouette}"],
    )
    if corrections:
        lines = "\n".join(
            f"{n}. {describe_correction(c)} ({c.get('created', '')})" for n, c in enumerate(corrections, 1)
        )
        report.metadata["corrections_applied"] = Markdown(lines)
        report.notes.append(f"{len(corrections)} hand corrections applied")
    if first_thumbnails is not None:
        report.metadata["gallery"] = Markdown(_gallery(table, sizes, first_thumbnails))
    return table, report


def _gallery(table: pd.DataFrame, sizes: pd.Series, first_thumbnails: Callable[[list[str]], dict[str, bytes]]) -> str:
    """Up to 24 clusters, eight members each, nearest the centre first."""
    from neural_sorter.previews import as_markdown_image, montage

    shown = {
        name: list(table[table["cluster_name"] == name].sort_values("distance_to_centroid")["relative_path"].head(8))
        for name in sizes.index[:24]
    }
    thumbs = first_thumbnails([p for paths in shown.values() for p in paths])
    gallery = []
    for name, paths in shown.items():
        sample = [thumbs[p] for p in paths if p in thumbs]
        if sample:
            gallery.append(f"**{name}** ({sizes[name]} files)\n\n{as_markdown_image(montage(sample, 56), name)}")
    return "\n\n".join(gallery) or "no files"


def first_thumbnail_reader(
    frames: pd.DataFrame, stream: Callable[[pd.DataFrame], Iterable[bytes]]
) -> Callable[[list[str]], dict[str, bytes]]:
    """paths -> the first decoded frame of each, read through ``stream`` (the store's thumbnail stream)."""

    def read(paths: list[str]) -> dict[str, bytes]:
        wanted = set(paths)
        first = frames[frames["error"].isna() & frames["relative_path"].isin(wanted)].drop_duplicates("relative_path")
        return dict(zip(first["relative_path"], stream(first)))

    return read
