"""Videos: several representative frames, via decord where it can open the file and PyAV otherwise."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from neural_sorter.decoding.images import DecodeError, _thumbnail_box

# A frame whose mean brightness or spread is below these is a fade, a black intro or a blank card.
_DARK_MEAN = 12.0
_FLAT_STD = 4.0


@dataclass(frozen=True)
class VideoFrame:
    index: int
    timestamp: float
    image: Image.Image


def is_informative(frame: np.ndarray) -> bool:
    """False for near-black or near-uniform frames, which say nothing about what a video shows."""
    small = frame[::4, ::4].astype(np.float32)
    return float(small.mean()) >= _DARK_MEAN and float(small.std()) >= _FLAT_STD


def candidate_indices(total: int, wanted: int) -> list[int]:
    """Frame indices spread over the video, avoiding the very start and end; extra ones as spares."""
    if total <= 0:
        return []
    count = min(total, wanted * 3)
    positions = np.linspace(0.05, 0.95, count) if total > 2 else np.zeros(count)
    indices = sorted({min(total - 1, int(p * total)) for p in positions})
    # Interleave so the first `wanted` picks are spread out and the rest are spares for skipped frames.
    primary = [indices[int(i)] for i in np.linspace(0, len(indices) - 1, min(wanted, len(indices)))]
    spares = [i for i in indices if i not in set(primary)]
    return primary + spares


def _select(frames: list[tuple[int, float, np.ndarray]], wanted: int, short_side: int) -> list[VideoFrame]:
    good = [f for f in frames if is_informative(f[2])]
    chosen = good[:wanted] if good else frames[:1]  # an all-dark video still gets one frame
    chosen.sort(key=lambda f: f[0])
    result = []
    for index, timestamp, array in chosen:
        image = Image.fromarray(array).convert("RGB")
        image.thumbnail(_thumbnail_box(image.size, short_side), Image.Resampling.BILINEAR)
        result.append(VideoFrame(index, timestamp, image))
    return result


def _with_decord(path: str, wanted: int, short_side: int) -> list[VideoFrame]:
    import decord

    reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    total = len(reader)
    if total == 0:
        raise DecodeError("video has no frames")
    fps = float(reader.get_avg_fps() or 0.0) or 25.0
    indices = candidate_indices(total, wanted)
    batch = reader.get_batch(indices).asnumpy()
    frames = [(i, i / fps, batch[n]) for n, i in enumerate(indices)]
    return _select(frames, wanted, short_side)


def _with_pyav(path: str, wanted: int, short_side: int) -> list[VideoFrame]:
    import av

    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError) as exc:
        raise DecodeError(f"not a readable video: {exc}") from None
    with container:
        if not container.streams.video:
            raise DecodeError("file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        total = stream.frames or 0
        decoded: list[tuple[int, float, np.ndarray]] = []
        all_frames: list[tuple[int, float, np.ndarray]] = []
        try:
            if total > 0:
                targets = set(candidate_indices(total, wanted))
                for number, frame in enumerate(container.decode(stream)):
                    if number in targets:
                        decoded.append((number, float(frame.time or 0.0), frame.to_ndarray(format="rgb24")))
                        if len(decoded) == len(targets):
                            break
            else:  # frame count unknown (e.g. Ogg): decode everything once, keep an even subsample
                all_frames = [
                    (n, float(f.time or 0.0), f.to_ndarray(format="rgb24"))
                    for n, f in enumerate(container.decode(stream))
                ]
                keep = set(candidate_indices(len(all_frames), wanted))
                decoded = [f for f in all_frames if f[0] in keep]
        except av.error.FFmpegError as exc:
            if not decoded:
                raise DecodeError(f"corrupt video: {exc}") from None
    if not decoded:
        raise DecodeError("video has no decodable frames")
    # Decoding runs in playback order; restore the spread-out-first order that candidate_indices chose.
    total_seen = total if total > 0 else len(all_frames)
    rank = {index: n for n, index in enumerate(candidate_indices(total_seen, wanted))}
    decoded.sort(key=lambda f: rank.get(f[0], len(rank)))
    return _select(decoded, wanted, short_side)


def load_video_frames(path: str | os.PathLike[str], wanted: int, short_side: int) -> list[VideoFrame]:
    """Representative frames of a video, skipping near-black or blank ones where possible."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DecodeError("file disappeared before it could be decoded")
    decord_error: Exception | None = None
    if not path.lower().endswith((".ogg", ".ogv")):  # decord 0.6 cannot open Theora
        try:
            return _with_decord(path, wanted, short_side)
        except DecodeError as exc:
            decord_error = exc
        except Exception as exc:  # decord raises bare RuntimeError/DECORDError for anything it dislikes
            decord_error = exc
    try:
        return _with_pyav(path, wanted, short_side)
    except DecodeError as exc:
        if decord_error is not None:
            raise DecodeError(f"{exc} (decord: {str(decord_error).splitlines()[0][:200]})") from None
        raise
