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
from neural_sorter.corrections import apply_corrections, apply_keeps
from neural_sorter.corrections import describe as describe_correction
from neural_sorter.duplicates import DuplicateOptions, duplicate_summary
from neural_sorter.quality_flags import QualityOptions
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
    label_threshold: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Mean probability needed to name a cluster after the label its members share (the offline "
        "CNN head's ImageNet label; with CLIP and no categories, CLIP's zero-shot over a built-in vocabulary); "
        "1 keeps cluster-NN names.",
    )
    recluster: bool = Field(False, description="Cluster from scratch instead of keeping existing clusters.")
    drift_threshold: float = Field(
        0.2, ge=0.0, le=1.0, description="Share of new or removed files that triggers a full re-cluster."
    )

    @field_validator("k", mode="before")
    @classmethod
    def _k_value(cls, value: object) -> object:
        if isinstance(value, bool):  # YAML's `k: true` is an int to Python; it is a mistake here
            raise ValueError("k must be a whole number or 'auto', not true/false")
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
    manifest: pd.DataFrame | None = None,
    thumbnails: Callable[[set[str]], Iterable[tuple[str, bytes]]] | None = None,
    duplicates: DuplicateOptions | None = None,
    quality: QualityOptions | None = None,
    vocabulary: Callable[[str], tuple[tuple[str, ...], np.ndarray, float]] | None = None,
) -> tuple[pd.DataFrame, StageReport]:
    """Clusters from scratch or updates ``previous`` stably; ``first_thumbnails`` (paths -> one thumbnail
    each) feeds the gallery in the report, and is skipped when None. The hand ``corrections``
    (``neural_sorter.corrections``) are applied last, every run, so they outlive re-sorts and re-clusters.

    With the ``manifest`` (and ``thumbnails``: (path, first thumbnail) of every file), copies of one picture
    (exact and near duplicates, ``neural_sorter.duplicates``) are found first and clustering sees one point
    per group, its representative; every copy then joins its representative's cluster, so a picture copied
    twelve times neither makes a cluster of its own nor is split across two. Quality flags are added too.

    Names: categories (CLIP) first; then, with CLIP vectors and no categories, the word of the built-in
    vocabulary that zero-shot puts first (``vocabulary(model_id)``: words, text vectors, logit scale, see
    ``naming.vocabulary_vectors``); otherwise the shared ImageNet label of the cnn head (``first_thumbnails``).
    """
    from neural_sorter.clustering import ClusterResult, cluster_embeddings, update_clusters
    from neural_sorter.encoders import vectors_of

    started = time.perf_counter()
    all_files, all_vectors = embeddings, vectors_of(embeddings)
    copies = flags = signals = None
    if manifest is not None and len(embeddings):
        copies, flags, signals = find_copies_and_flags(
            embeddings, manifest, thumbnails, duplicates or DuplicateOptions(), quality or QualityOptions(), previous
        )
        copies = apply_keeps(copies, corrections or [])  # the copy chosen by hand is the group's point
        points = copies["is_representative"].to_numpy(bool)
        embeddings = embeddings[points].reset_index(drop=True)
        if previous is not None and "is_representative" in previous:
            previous = previous[previous["is_representative"].fillna(True).astype(bool)]
    vectors = vectors_of(embeddings)
    has_probs = bool(len(embeddings)) and embeddings["category_probs"].notna().all()
    categories = categories if has_probs else []
    model = str(embeddings["model_id"].iloc[0]) if len(embeddings) else ""
    signature = (
        f"{options.method};k={options.k};range={tuple(options.k_range)};mcs={options.min_cluster_size};"
        f"cats={categories};thr={options.category_threshold};labels={options.label_threshold};seed={seed};"
        f"model={model}"
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
        backend = str(embeddings["backend"].iloc[0]) if len(embeddings) and "backend" in embeddings else ""
        if vocabulary is not None and backend == "clip" and not categories and options.label_threshold < 1:
            from neural_sorter.naming import name_by_vocabulary

            by_path = dict(zip(embeddings["relative_path"], vectors))
            table, labels = name_by_vocabulary(table, by_path, vocabulary(model), options.label_threshold)
            result.details["clip_vocabulary"] = {old: f"{label} ({score})" for old, (label, score) in labels.items()}
        elif first_thumbnails is not None:
            from neural_sorter.naming import name_by_labels

            table, labels = name_by_labels(table, first_thumbnails, options.label_threshold)
            result.details["imagenet_labels"] = {old: f"{label} ({score})" for old, (label, score) in labels.items()}
    else:
        ids = table.loc[table["cluster_id"] >= 0, "cluster_id"]
        result = ClusterResult(
            table["cluster_id"].to_numpy(), np.zeros((0, 0)), None, int(ids.nunique()), {"update": why}
        )
        incremental, note = True, f"stable clusters: {why}"
        if previous is not None and CORRECTION in previous:  # which files hand corrections touched, kept
            marks = previous.drop_duplicates("content_hash").set_index("content_hash")[CORRECTION]
            table[CORRECTION] = table["content_hash"].map(marks)
    if copies is not None:
        table = with_copies(table, all_files, copies, flags, signals)
    table = apply_corrections(table, corrections or [], vectors=all_vectors)
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
            "duplicates": duplicate_summary(copies) if copies is not None else "not checked",
            "flagged_files": int(table["flags"].astype(bool).sum()) if "flags" in table else 0,
            "thumbnails_measured": signals.attrs.get("measured", 0) if copies is not None else 0,
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


COPY_COLUMNS = [
    "duplicate_group",
    "duplicate_tier",
    "is_representative",
    "group_size",
    "representative",
    "similarity",
    "similar_to",
    "similar_score",
]
FLAG_COLUMNS = ["flags", "review_reason"]


PIXEL_SCORES = ["blurry", "too_dark", "too_bright", "low_information"]
SIGNAL_COLUMNS = ["signature_hashes", "signature_descriptor", "pixel_scores"]


def find_copies_and_flags(
    embeddings: pd.DataFrame,
    manifest: pd.DataFrame,
    thumbnails: Callable[[set[str]], Iterable[tuple[str, bytes]]] | None,
    duplicates: DuplicateOptions,
    quality: QualityOptions,
    previous: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(duplicate groups, quality flags, per-file signals) from one pass over the first thumbnail of every file
    whose content is new: the hash signatures and pixel scores of content ``previous`` already measured are
    reused by content hash, so a re-sort reads and measures only new files. ``thumbnails(paths)`` yields
    (path, first thumbnail) for those paths; the pass goes a chunk at a time, so memory stays flat."""
    from neural_sorter.duplicates import find_duplicates, thumbnail_signatures
    from neural_sorter.quality_flags import quality_flags, thumbnail_scores

    cached_signatures, cached_pixels = _cached_signals(previous)
    path_hash = dict(zip(embeddings["relative_path"], embeddings["content_hash"]))
    needed = {p for p, h in path_hash.items() if h not in cached_signatures or h not in cached_pixels}
    signatures: dict = {}
    scores: list[pd.DataFrame] = []
    chunk: list[tuple[str, bytes]] = []

    def flush() -> None:
        if chunk:
            signatures.update(thumbnail_signatures(chunk))
            scores.append(thumbnail_scores(chunk))
            chunk.clear()

    for item in thumbnails(needed) if thumbnails is not None and needed else ():
        chunk.append(item)
        if len(chunk) >= 1024:
            flush()
    flush()
    fresh_pixels = pd.concat(scores, ignore_index=True) if scores else thumbnail_scores([])
    pixels = {p: row for p, row in zip(fresh_pixels["relative_path"], fresh_pixels[PIXEL_SCORES].to_numpy(float))}
    for path, content in path_hash.items():
        if path not in signatures and content in cached_signatures:
            signatures[path] = cached_signatures[content]
        if path not in pixels and content in cached_pixels:
            pixels[path] = cached_pixels[content]
    copies = find_duplicates(embeddings, manifest, signatures if duplicates.use_hash else None, duplicates)
    pixel_table = pd.DataFrame(
        [{"relative_path": p, **dict(zip(PIXEL_SCORES, row))} for p, row in pixels.items()],
        columns=["relative_path", *PIXEL_SCORES],
    )
    signals = pd.DataFrame(
        {
            "relative_path": list(path_hash),
            "signature_hashes": [_as_list(signatures.get(p, (None, None))[0], np.uint64) for p in path_hash],
            "signature_descriptor": [_as_list(signatures.get(p, (None, None))[1], np.float32) for p in path_hash],
            "pixel_scores": [_as_list(pixels.get(p), np.float32) for p in path_hash],
        }
    )
    signals.attrs["measured"] = len(needed)
    return copies, quality_flags(manifest, pixel_table, quality), signals


def _as_list(values, dtype) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype=dtype)


def _cached_signals(previous: pd.DataFrame | None) -> tuple[dict, dict]:
    """{content hash: (hashes, descriptor)} and {content hash: pixel scores} measured by an earlier run."""
    if previous is None or not all(c in previous for c in SIGNAL_COLUMNS):
        return {}, {}
    signatures, pixels = {}, {}
    for content, hashes, descriptor, scores in zip(
        previous["content_hash"],
        previous["signature_hashes"],
        previous["signature_descriptor"],
        previous["pixel_scores"],
    ):
        if hashes is not None and descriptor is not None and len(hashes):
            signatures[content] = (np.asarray(hashes, np.uint64), np.asarray(descriptor, np.float32))
        if scores is not None and len(scores) == len(PIXEL_SCORES):
            pixels[content] = np.asarray(scores, float)
    return signatures, pixels


def with_copies(
    table: pd.DataFrame, files: pd.DataFrame, copies: pd.DataFrame, flags: pd.DataFrame, signals: pd.DataFrame
) -> pd.DataFrame:
    """The per-file table from the representatives' rows: each copy takes its representative's cluster, name
    and code; the duplicate and flag columns are joined on."""
    by_path = table.set_index("relative_path")
    own = copies.set_index("relative_path")
    representative = own["representative"].where(own["representative"].notna(), own.index.to_series())
    rows = by_path.loc[[representative[p] for p in files["relative_path"]]].reset_index(drop=True)
    rows.insert(0, "relative_path", files["relative_path"].to_numpy())
    rows["content_hash"] = files["content_hash"].to_numpy()
    rows["cluster_size"] = rows.groupby("cluster_id")["cluster_id"].transform("size").astype(int)
    rows = rows.drop(columns=[c for c in COPY_COLUMNS + FLAG_COLUMNS if c in rows])
    rows = rows.merge(copies[["relative_path", *COPY_COLUMNS]], on="relative_path", how="left")
    flagged = flags[["relative_path", *FLAG_COLUMNS]].drop_duplicates("relative_path")
    rows = rows.merge(flagged, on="relative_path", how="left")
    rows["flags"] = rows["flags"].fillna("")
    rows = rows.drop(columns=[c for c in SIGNAL_COLUMNS if c in rows]).merge(signals, on="relative_path", how="left")
    return rows


def _gallery(table: pd.DataFrame, sizes: pd.Series, first_thumbnails: Callable[[list[str]], dict[str, bytes]]) -> str:
    """Up to 24 clusters, eight distinct pictures each (one per duplicate group), nearest the centre first."""
    from neural_sorter.previews import as_markdown_image, montage

    distinct = table[table["is_representative"].fillna(True).astype(bool)] if "is_representative" in table else table
    shown = {
        name: list(
            distinct[distinct["cluster_name"] == name].sort_values("distance_to_centroid")["relative_path"].head(8)
        )
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
    pairs = first_thumbnail_stream(frames, stream)
    return lambda paths: dict(pairs(set(paths)))


def first_thumbnail_stream(
    frames: pd.DataFrame, stream: Callable[[pd.DataFrame], Iterable[bytes]]
) -> Callable[[set[str]], Iterable[tuple[str, bytes]]]:
    """paths -> (path, first decoded frame) of each, in stored order, streamed through ``stream`` (the store's
    thumbnail stream): what ``find_copies_and_flags`` measures."""

    def read(paths: set[str]) -> Iterable[tuple[str, bytes]]:
        first = frames[frames["error"].isna() & frames["relative_path"].isin(paths)].drop_duplicates("relative_path")
        return zip(first["relative_path"], stream(first))

    return read
