"""``file_manifest`` and ``decoded_frames``: what is in a source folder, and its pixels as thumbnails."""

import time
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from neural_sorter.decoding.frames import DecodeOptions, decode_manifest
from neural_sorter.file_manifest import build_file_manifest
from neural_sorter.io_managers import read_asset
from neural_sorter.partitions import source_dirs
from neural_sorter.previews import as_markdown_image, montage
from neural_sorter.resources.sorter import SorterResource


@dg.asset(partitions_def=source_dirs, group_name="ingest", kinds={"python", "parquet"})
def file_manifest(context: dg.AssetExecutionContext, sorter: SorterResource) -> pd.DataFrame:
    """Every file below the source folder: path, size, mtime, kind (or why unsupported), content hash."""
    root = sorter.source_dir(context.partition_key)
    if not root.exists():
        raise dg.Failure(f"source folder {root} does not exist (moved or deleted?); its outputs are kept")
    if not root.is_dir():
        raise dg.Failure(f"source {root} is a file, not a folder")
    options = sorter.options()
    exclude = [Path(options.output_dir)] if options.output_dir else []
    previous = read_asset(sorter.store_root(), "file_manifest", context.partition_key)
    started = time.perf_counter()
    table = build_file_manifest(root, exclude=exclude, previous=previous)
    kinds = table["kind"].value_counts().to_dict()
    context.log.info(f"{len(table)} entries in {root}: {kinds}")
    unsupported = table[table["kind"] == "unsupported"]
    context.add_output_metadata(
        {
            "source": dg.MetadataValue.path(str(root)),
            "files": len(table),
            "images": int(kinds.get("image", 0)),
            "videos": int(kinds.get("video", 0)),
            "unsupported": int(kinds.get("unsupported", 0)),
            "bytes": int(table["size"].fillna(0).sum()),
            "seconds": round(time.perf_counter() - started, 3),
            "unsupported_reasons": dg.MetadataValue.md(
                unsupported[["relative_path", "reason"]].head(50).to_markdown(index=False)
                if len(unsupported)
                else "none"
            ),
        }
    )
    return table


class DecodeConfig(dg.Config):
    thumbnail_size: int | None = Field(None, description="Short side of stored thumbnails (px).")
    frames_per_video: int | None = Field(None, description="Frames kept per video.")
    max_image_pixels: int | None = Field(None, description="Refuse non-JPEG images above this many pixels.")
    decode_workers: int | None = Field(None, description="Decoder threads; 0 = one per core.")


@dg.asset(partitions_def=source_dirs, group_name="ingest", kinds={"pillow", "parquet"})
def decoded_frames(
    context: dg.AssetExecutionContext, config: DecodeConfig, sorter: SorterResource, file_manifest: pd.DataFrame
) -> pd.DataFrame:
    """Thumbnails (JPEG bytes, short side ~256 px) per file and frame; a failed file keeps a row with its error."""
    options = sorter.options().updated(**config.model_dump())
    decode_options = DecodeOptions(
        thumbnail_size=options.thumbnail_size,
        frames_per_video=options.frames_per_video,
        max_image_pixels=options.max_image_pixels,
        workers=options.decode_workers,
    )
    previous = read_asset(sorter.store_root(), "decoded_frames", context.partition_key)
    started = time.perf_counter()
    frames, stats = decode_manifest(file_manifest, decode_options, reuse=previous)
    seconds = time.perf_counter() - started
    failed = frames[frames["error"].notna()]
    for row in failed.itertuples(index=False):
        context.log.warning(f"could not decode {row.relative_path}: {row.error}")
    good = frames[frames["error"].isna()]
    sample = list(good.drop_duplicates("relative_path")["thumbnail"].head(32))
    context.add_output_metadata(
        {
            "files_decoded": stats["decoded"],
            "files_reused": stats["reused"],
            "files_failed": stats["failed"],
            "frames": len(good),
            "seconds": round(seconds, 3),
            "failures": dg.MetadataValue.md(
                failed[["relative_path", "error"]].head(50).to_markdown(index=False) if len(failed) else "none"
            ),
            "sample": dg.MetadataValue.md(as_markdown_image(montage(sample), "sample") if sample else "no frames"),
        }
    )
    return frames
