"""``3d_projection``: x, y, z per file for the 3D map. Old points keep their place on a re-sort; new ones are
placed among their neighbours, unless the method changed or the folder drifted (then the map is redone)."""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from neural_sorter.stages import Markdown, StageReport

ProjectionMethod = Literal["umap", "tsne", "pca"]


class ProjectionOptions(BaseModel):
    """How the 3D map is computed."""

    model_config = ConfigDict(extra="forbid")

    projection: ProjectionMethod = Field("umap", description="3D map method.")


def build_projection_3d(
    embeddings: pd.DataFrame,
    clusters: pd.DataFrame,
    previous: pd.DataFrame | None,
    options: ProjectionOptions,
    *,
    seed: int,
    drift_threshold: float,
    recompute: bool = False,
) -> tuple[pd.DataFrame, StageReport]:
    from neural_sorter.encoders import vectors_of
    from neural_sorter.previews import as_markdown_image, scatter
    from neural_sorter.projection import projection_table

    started = time.perf_counter()
    vectors = vectors_of(embeddings)
    coords, used, reused = _coordinates(
        None if recompute else previous, embeddings, vectors, options.projection, seed, drift_threshold
    )
    table = projection_table(embeddings, coords, clusters, used)
    labels = table["cluster_id"].fillna(-1).to_numpy(int)
    report = StageReport(
        {
            "method": used,
            "points": len(table),
            "points_reused": reused,
            "seconds": round(time.perf_counter() - started, 3),
            "preview": Markdown(as_markdown_image(scatter(coords, labels), "x/y")),
        }
    )
    return table, report


def _coordinates(
    previous: pd.DataFrame | None,
    embeddings: pd.DataFrame,
    vectors: np.ndarray,
    method: str,
    seed: int,
    drift_threshold: float,
) -> tuple[np.ndarray, str, int]:
    """(coordinates, method used, points reused)."""
    from neural_sorter.projection import extend_projection, project_3d

    if previous is not None and "content_hash" in previous and len(previous) and len(embeddings):
        base_method = str(previous["method"].iloc[0]).split(" ")[0]
        old = previous.drop_duplicates("content_hash").set_index("content_hash")[["x", "y", "z"]]
        known = embeddings["content_hash"].isin(old.index).to_numpy()
        if base_method == method and known.any() and (~known).mean() <= drift_threshold:
            coords = np.zeros((len(embeddings), 3), dtype=np.float32)
            coords[known] = old.loc[embeddings["content_hash"].to_numpy()[known]].to_numpy(np.float32)
            coords[~known] = extend_projection(vectors[known], coords[known], vectors[~known])
            return coords, str(previous["method"].iloc[0]), int(known.sum())
    coords, used = project_3d(vectors, method, seed)
    return coords, used, 0
