import functools

import dagster as dg
import pandas as pd

from neural_sorter.decoding.frames import FRAME_INDEX_COLUMNS, worker_count
from neural_sorter.defs.config import config_class, set_values
from neural_sorter.defs.metadata import column_schema, publish, stage_failures
from neural_sorter.defs.partitions import source_dirs
from neural_sorter.defs.resources import SorterResource
from neural_sorter.progress import stage_started
from neural_sorter.stages.embeddings import EmbeddingOptions, build_embeddings
from neural_sorter.stages.trained_autoencoder import load_trained
from neural_sorter.tables import EMBEDDINGS

EmbeddingsConfig = config_class(
    "EmbeddingsConfig", (EmbeddingOptions, ["cnn_model", "cnn_flip", "batch_size", "precision", "runtime"])
)


@dg.asset(
    partitions_def=source_dirs,
    group_name="embed",
    kinds={"pytorch", "parquet"},
    metadata=column_schema(EMBEDDINGS),
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
    key, store, device = context.partition_key, sorter.store_root(), sorter.torch_device()
    with stage_failures():
        options = sorter.options(key).updated(**set_values(config))
        decoded = decoded_frames.loc[decoded_frames["error"].isna(), "relative_path"].nunique()
        stage_started(context, f"embedding {decoded} files ({options.backend} backend)…")
        table, report = build_embeddings(
            decoded_frames,
            store.read(EMBEDDINGS, key),
            options.section(EmbeddingOptions),
            clip_model=clip_model,
            autoencoder=load_trained(trained_autoencoder, device),
            device=device,
            thumbnails=functools.partial(store.iter_thumbnails, key),
            workers=worker_count(options.decode_workers),
        )
    publish(context, report)
    return table
