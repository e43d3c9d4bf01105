"""``decoded_frames``: small JPEG thumbnails per file and frame, or the reason a file could not be decoded."""

from __future__ import annotations

import time

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from neural_sorter.stages import Markdown, StageReport


class FrameOptions(BaseModel):
    """How files become frames: thumbnail size, frames kept per video, the decompression-bomb cap, threads."""

    model_config = ConfigDict(extra="forbid")

    thumbnail_size: int = Field(256, ge=32, le=1024, description="Short side of stored thumbnails (px).")
    frames_per_video: int = Field(5, ge=1, le=64, description="Frames kept per video.")
    max_image_pixels: int = Field(178_956_970, ge=1, description="Refuse non-JPEG images above this many pixels.")
    decode_workers: int = Field(0, ge=0, le=64, description="Decoder threads; 0 picks one per CPU core.")


def build_decoded_frames(
    manifest: pd.DataFrame, previous: pd.DataFrame | None, options: FrameOptions
) -> tuple[pd.DataFrame, StageReport]:
    """Decodes every image and video of the manifest; frames of unchanged content are taken from ``previous``."""
    from neural_sorter.decoding.frames import DecodeOptions, decode_manifest
    from neural_sorter.previews import as_markdown_image, montage

    decode_options = DecodeOptions(
        thumbnail_size=options.thumbnail_size,
        frames_per_video=options.frames_per_video,
        max_image_pixels=options.max_image_pixels,
        workers=options.decode_workers,
    )
    started = time.perf_counter()
    frames, stats = decode_manifest(manifest, decode_options, reuse=previous)
    seconds = time.perf_counter() - started
    failed = frames[frames["error"].notna()]
    good = frames[frames["error"].isna()]
    sample = list(good.drop_duplicates("relative_path")["thumbnail"].head(32))
    report = StageReport(
        metadata={
            "files_decoded": stats["decoded"],
            "files_reused": stats["reused"],
            "files_failed": stats["failed"],
            "frames": len(good),
            "seconds": round(seconds, 3),
            "failures": Markdown(
                failed[["relative_path", "error"]].head(50).to_markdown(index=False) if len(failed) else "none"
            ),
            "sample": Markdown(as_markdown_image(montage(sample), "sample") if sample else "no frames"),
        },
        warnings=[f"could not decode {row.relative_path}: {row.error}" for row in failed.itertuples(index=False)],
    )
    return frames, report
