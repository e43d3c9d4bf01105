"""``embeddings``: one normalised vector per file from the resolved backend."""

import functools

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from neural_sorter.assets.models import load_trained
from neural_sorter.decoding.frames import FRAME_INDEX_COLUMNS, worker_count
from neural_sorter.embedding import BackendUnavailable, build_embeddings, encoder_for, resolve_backend
from neural_sorter.io_managers import iter_stored_thumbnails, read_asset
from neural_sorter.partitions import source_dirs
from neural_sorter.resources.sorter import SorterResource


class EmbeddingsConfig(dg.Config):
    batch_size: int | None = Field(None, description="Images per forward pass.")
    precision: str | None = Field(None, description="fp32 | int8 (CLIP on CPU only; see bench/README.md).")


@dg.asset(
    partitions_def=source_dirs,
    group_name="embed",
    kinds={"pytorch", "parquet"},
    # The index only: thumbnails are streamed from the store while the model runs (memory stays flat).
    ins={"decoded_frames": dg.AssetIn(metadata={"columns": FRAME_INDEX_COLUMNS})},
)
def embeddings(
    context: dg.AssetExecutionContext,
    config: EmbeddingsConfig,
    sorter: SorterResource,
    decoded_frames: pd.DataFrame,
    clip_model: pd.DataFrame,
    trained_autoencoder: pd.DataFrame,
) -> pd.DataFrame:
    """L2-normalised float32 vectors (video: mean of its frames); reuses vectors of unchanged content."""
    options = sorter.options().updated(batch_size=config.batch_size, precision=config.precision)
    device = sorter.torch_device()
    backend, notes = resolve_backend(options.backend, options.clip_model, device)
    for note in notes:
        context.log.info(note)  # clip_model already warned about an unavailable CLIP
    context.log.info(f"backend: {backend} (requested {options.backend}) on {device}")
    try:
        encoder = encoder_for(
            backend, options.clip_model, device, load_trained(trained_autoencoder, device), options.precision
        )
    except BackendUnavailable as exc:
        raise dg.Failure(str(exc)) from None
    categories: list[str] = []
    category_vectors = None
    if backend == "clip":
        rows = clip_model[clip_model["category"].notna()]
        if len(rows):
            categories = list(rows["category"])
            category_vectors = np.stack(rows["vector"].to_numpy()).astype(np.float32)
    store = sorter.store_root()
    previous = read_asset(store, "embeddings", context.partition_key)
    table, stats = build_embeddings(
        decoded_frames,
        encoder,
        categories,
        category_vectors,
        reuse=previous,
        batch_size=options.batch_size,
        workers=worker_count(options.decode_workers),
        thumbnails=functools.partial(iter_stored_thumbnails, store, context.partition_key),
    )
    context.add_output_metadata(
        {
            "backend": backend,
            "model_id": encoder.model_id,
            "precision": options.precision,
            "device": str(device),
            "dimensions": len(table["vector"].iloc[0]) if len(table) else 0,
            **{k: dg.MetadataValue.float(float(v)) if isinstance(v, float) else v for k, v in stats.items()},
        }
    )
    return table
