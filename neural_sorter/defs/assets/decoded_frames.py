import dagster as dg
import pandas as pd

from neural_sorter.defs.config import config_class, set_values
from neural_sorter.defs.metadata import column_schema, publish, stage_failures
from neural_sorter.defs.partitions import source_dirs
from neural_sorter.defs.resources import SorterResource
from neural_sorter.progress import stage_started
from neural_sorter.stages.decoded_frames import FrameOptions, build_decoded_frames
from neural_sorter.tables import DECODED_FRAMES

DecodedFramesConfig = config_class("DecodedFramesConfig", (FrameOptions, None))


@dg.asset(
    partitions_def=source_dirs, group_name="ingest", kinds={"pillow", "parquet"}, metadata=column_schema(DECODED_FRAMES)
)
def decoded_frames(
    context: dg.AssetExecutionContext,
    config: DecodedFramesConfig,
    sorter: SorterResource,
    file_manifest: pd.DataFrame,
) -> pd.DataFrame:
    """Thumbnails (JPEG bytes, short side ~256 px) per file and frame; a failed file keeps a row with its error."""
    with stage_failures():
        options = sorter.options(context.partition_key).updated(**set_values(config)).section(FrameOptions)
        previous = sorter.store_root().read(DECODED_FRAMES, context.partition_key)
        media = int(file_manifest["kind"].isin(["image", "video"]).sum())
        stage_started(context, f"decoding {media} files…")
        table, report = build_decoded_frames(file_manifest, previous, options)
    publish(context, report)
    return table
