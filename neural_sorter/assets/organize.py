"""``clusters``, ``3d_projection`` and ``reorganized_tree``: grouping files and putting them in folders."""

import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from neural_sorter.clustering import ClusterResult, cluster_embeddings, update_clusters
from neural_sorter.decoding.frames import FRAME_INDEX_COLUMNS
from neural_sorter.embedding import vectors_of
from neural_sorter.file_manifest import display_text, source_path
from neural_sorter.io_managers import iter_stored_thumbnails, read_asset
from neural_sorter.partitions import source_dirs
from neural_sorter.previews import as_markdown_image, montage, scatter
from neural_sorter.projection import extend_projection, project_3d, projection_table
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
from neural_sorter.resources.sorter import SorterResource


class ClustersConfig(dg.Config):
    method: str | None = Field(None, description="kmeans | hierarchical | hdbscan")
    k: str | None = Field(None, description="Number of clusters, or 'auto' (kmeans, hierarchical).")
    min_cluster_size: int | None = Field(None, description="HDBSCAN minimum cluster size.")
    category_threshold: float | None = Field(None, description="Mean zero-shot probability to name a cluster.")
    recluster: bool | None = Field(None, description="Cluster from scratch instead of keeping existing clusters.")


def _first_thumbnails(
    sorter: SorterResource, partition_key: str, frames: pd.DataFrame, paths: list[str]
) -> dict[str, bytes]:
    """The first decoded frame of each of ``paths`` (a gallery's worth), read from the store."""
    first = frames[frames["error"].isna() & frames["relative_path"].isin(set(paths))].drop_duplicates("relative_path")
    return dict(zip(first["relative_path"], iter_stored_thumbnails(sorter.store_root(), partition_key, first)))


@dg.asset(
    partitions_def=source_dirs,
    group_name="organize",
    kinds={"scikitlearn", "parquet"},
    ins={"decoded_frames": dg.AssetIn(metadata={"columns": FRAME_INDEX_COLUMNS})},  # gallery reads its own
)
def clusters(
    context: dg.AssetExecutionContext,
    config: ClustersConfig,
    sorter: SorterResource,
    embeddings: pd.DataFrame,
    decoded_frames: pd.DataFrame,
) -> pd.DataFrame:
    """A cluster, a folder name and a sortable hierarchical code per file; exact duplicates grouped."""
    k = config.k
    options = sorter.options().updated(
        method=config.method,
        k=(int(k) if k not in (None, "auto") else k),
        min_cluster_size=config.min_cluster_size,
        category_threshold=config.category_threshold,
        recluster=config.recluster,
    )
    started = time.perf_counter()
    vectors = vectors_of(embeddings)
    has_probs = len(embeddings) and embeddings["category_probs"].notna().all()
    categories = options.categories if has_probs else []
    backend = str(embeddings["model_id"].iloc[0]) if len(embeddings) else ""
    signature = (
        f"{options.method};k={options.k};range={options.k_range};mcs={options.min_cluster_size};"
        f"cats={categories};thr={options.category_threshold};seed={options.seed};model={backend}"
    )
    previous = None if options.recluster else read_asset(sorter.store_root(), "clusters", context.partition_key)
    table, why = (None, "full re-cluster asked for") if previous is None else update_clusters(
        embeddings, vectors, previous, options.method, signature, options.drift_threshold
    )
    if table is None:
        context.log.info(f"clustering from scratch: {why}")
        table, result = cluster_embeddings(
            embeddings, vectors, options.method, options.k, options.k_range, options.min_cluster_size,
            categories, options.category_threshold, options.seed,
        )
        table["settings"] = signature
        incremental = False
    else:
        context.log.info(f"stable clusters: {why}")
        result = ClusterResult(table["cluster_id"].to_numpy(), np.zeros((0, 0)), None,
                               int(table.loc[table["cluster_id"] >= 0, "cluster_id"].nunique()), {"update": why})
        incremental = True
    seconds = time.perf_counter() - started
    sizes = table.groupby("cluster_name").size().sort_values(ascending=False)
    shown = {
        name: list(table[table["cluster_name"] == name].sort_values("distance_to_centroid")["relative_path"].head(8))
        for name in sizes.index[:24]
    }
    thumbs = _first_thumbnails(sorter, context.partition_key, decoded_frames, [p for ps in shown.values() for p in ps])
    gallery = []
    for name, paths in shown.items():
        sample = [thumbs[p] for p in paths if p in thumbs]
        if sample:
            gallery.append(f"**{name}** ({sizes[name]} files)\n\n{as_markdown_image(montage(sample, 56), name)}")
    context.log.info(f"{options.method}: {len(sizes)} clusters, silhouette {result.silhouette}")
    context.add_output_metadata(
        {
            "method": options.method,
            "incremental": incremental,
            "reason": why,
            "clusters": len(sizes),
            "chosen_k": result.chosen_k,
            "silhouette": dg.MetadataValue.float(float(result.silhouette)) if result.silhouette is not None
            else dg.MetadataValue.text("n/a"),
            "sizes": dg.MetadataValue.json({str(k): int(v) for k, v in sizes.items()}),
            "duplicate_files": int(table["duplicate_group"].notna().sum()),
            "seconds": round(seconds, 3),
            "details": dg.MetadataValue.json(result.details),
            "gallery": dg.MetadataValue.md("\n\n".join(gallery) or "no files"),
        }
    )
    return table


class ProjectionConfig(dg.Config):
    projection: str | None = Field(None, description="umap | tsne | pca")
    recluster: bool | None = Field(None, description="Recompute the whole map instead of placing new points.")


@dg.asset(
    name="3d_projection",
    partitions_def=source_dirs,
    group_name="organize",
    kinds={"umap", "parquet"},
    ins={"embeddings": dg.AssetIn("embeddings"), "clusters": dg.AssetIn("clusters")},
)
def projection_3d(
    context: dg.AssetExecutionContext,
    config: ProjectionConfig,
    sorter: SorterResource,
    embeddings: pd.DataFrame,
    clusters: pd.DataFrame,
) -> pd.DataFrame:
    """x, y, z per file (seeded), with the cluster it belongs to, for the 3D map."""
    options = sorter.options().updated(projection=config.projection, recluster=config.recluster)
    started = time.perf_counter()
    vectors = vectors_of(embeddings)
    previous = None if options.recluster else read_asset(sorter.store_root(), "3d_projection", context.partition_key)
    coords, used, reused = _incremental_coords(previous, embeddings, vectors, options)
    table = projection_table(embeddings, coords, clusters, used)
    context.add_output_metadata(
        {
            "method": used,
            "points": len(table),
            "points_reused": reused,
            "seconds": round(time.perf_counter() - started, 3),
            "preview": dg.MetadataValue.md(
                as_markdown_image(scatter(coords, table["cluster_id"].fillna(-1).to_numpy(int)), "x/y")
            ),
        }
    )
    return table


def _incremental_coords(previous, embeddings, vectors, options) -> tuple[np.ndarray, str, int]:
    """Old points keep their coordinates and new ones are placed among their neighbours, unless the method
    changed or more than ``drift_threshold`` of the files are new (then the map is recomputed)."""
    if previous is not None and "content_hash" in previous and len(previous) and len(embeddings):
        base_method = str(previous["method"].iloc[0]).split(" ")[0]
        old = previous.drop_duplicates("content_hash").set_index("content_hash")[["x", "y", "z"]]
        known = embeddings["content_hash"].isin(old.index).to_numpy()
        if base_method == options.projection and known.any() and (~known).mean() <= options.drift_threshold:
            coords = np.zeros((len(embeddings), 3), dtype=np.float32)
            coords[known] = old.loc[embeddings["content_hash"].to_numpy()[known]].to_numpy(np.float32)
            coords[~known] = extend_projection(vectors[known], coords[known], vectors[~known])
            return coords, str(previous["method"].iloc[0]), int(known.sum())
    coords, used = project_3d(vectors, options.projection, options.seed)
    return coords, used, 0


class ReorganizeConfig(dg.Config):
    mode: str | None = Field(None, description="copy | hardlink | symlink | move")
    rename: bool | None = Field(None, description="Prefix names with the sortable hierarchical code.")
    dry_run: bool | None = Field(None, description="Only write the manifest.")
    force: bool = Field(False, description="Allow a non-empty output folder not made by neural-sorter.")


@dg.asset(
    partitions_def=source_dirs,
    group_name="organize",
    kinds={"parquet"},
    deps=["3d_projection"],
)
def reorganized_tree(
    context: dg.AssetExecutionContext,
    config: ReorganizeConfig,
    sorter: SorterResource,
    clusters: pd.DataFrame,
    file_manifest: pd.DataFrame,
) -> pd.DataFrame:
    """Places each file in ``OUT/<partition>/<cluster>/`` (copy by default), recording every action."""
    options = sorter.options().updated(mode=config.mode, rename=config.rename, dry_run=config.dry_run)
    if not options.output_dir:
        raise dg.Failure("no output folder: set output_dir in the config file or the sorter resource")
    out = Path(options.output_dir).expanduser().resolve()
    source = sorter.source_dir(context.partition_key)
    try:
        check_output_dir(out, [source], force=config.force)
    except OutputDirError as exc:
        raise dg.Failure(str(exc)) from None
    files = clusters.merge(file_manifest[["relative_path", "path_bytes"]], on="relative_path", how="left")
    # object dtype: undecodable names carry surrogates that pandas' Arrow-backed strings refuse
    files["source"] = pd.Series([source_path(b) for b in files["path_bytes"]], index=files.index, dtype=object)
    run_id = new_run_id()
    try:
        with output_lock(out, on_wait=context.log.info):
            actions = plan_reorganization(files, out, context.partition_key, options.mode, options.rename, run_id)
            report = execute_plan(out, actions, run_id, dry_run=options.dry_run)
    except OutputBusyError as exc:
        raise dg.Failure(str(exc)) from None
    for source_file, reason in report.failures:
        context.log.error(f"{source_file}: {reason}")
    context.add_output_metadata(
        {
            "output": dg.MetadataValue.path(str(out / context.partition_key)),
            "manifest": dg.MetadataValue.path(report.manifest),
            "mode": options.mode,
            "dry_run": options.dry_run,
            "actions": dg.MetadataValue.json(report.counts),
            "failures": len(report.failures),
        }
    )
    failed = dict(report.failures)
    rows = [
        {**{k: display_text(v) for k, v in a.__dict__.items()}, "error": failed.get(a.source)} for a in actions
    ]  # display_text: Parquet needs valid UTF-8; the manifest CSV keeps the real names
    table = pd.DataFrame(rows, columns=[*Action.__dataclass_fields__, "error"])
    table["dry_run"] = options.dry_run
    return table
