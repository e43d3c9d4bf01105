import functools

import dagster as dg
import pandas as pd

from neural_sorter.decoding.frames import FRAME_INDEX_COLUMNS
from neural_sorter.defs.config import config_class, set_values
from neural_sorter.defs.metadata import column_schema, publish, stage_failures
from neural_sorter.defs.partitions import source_dirs
from neural_sorter.defs.resources import SorterResource
from neural_sorter.stages.embeddings import EmbeddingOptions
from neural_sorter.stages.trained_autoencoder import AutoencoderOptions, build_trained_autoencoder
from neural_sorter.tables import TRAINED_AUTOENCODER

TrainedAutoencoderConfig = config_class("TrainedAutoencoderConfig", (AutoencoderOptions, None))


@dg.asset(
    partitions_def=source_dirs,
    group_name="models",
    kinds={"pytorch", "parquet"},
    metadata=column_schema(TRAINED_AUTOENCODER),
    ins={"decoded_frames": dg.AssetIn(metadata={"columns": FRAME_INDEX_COLUMNS})},  # thumbnails only if used
)
def trained_autoencoder(
    context: dg.AssetExecutionContext,
    config: TrainedAutoencoderConfig,
    sorter: SorterResource,
    decoded_frames: pd.DataFrame,
) -> pd.DataFrame:
    """A convolutional VAE (or plain autoencoder) trained on this folder's frames, when the backend needs it."""
    key, store = context.partition_key, sorter.store_root()
    with stage_failures():
        options = sorter.options(key).updated(autoencoder=set_values(config))
        table, report = build_trained_autoencoder(
            decoded_frames,
            store.read(TRAINED_AUTOENCODER, key),
            options.autoencoder,
            models=options.section(EmbeddingOptions),
            seed=options.seed,
            device=sorter.torch_device(),
            store=store,
            partition_key=key,
            thumbnails=functools.partial(store.iter_thumbnails, key),
        )
    publish(context, report)
    return table
