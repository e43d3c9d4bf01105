"""Videos: several representative frames, via decord where it can open the file and PyAV otherwise."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image

from neural_sorter.decoding.images import DecodeError, _thumbnail_box, open_regular_file

# A frame whose mean brightness or spread is below these is a fade, a black intro or a blank card.
_DARK_MEAN = 12.0
_FLAT_STD = 4.0

# A per-file time limit: a video whose decoding takes longer is reported and the worker moves on. Generous,
# since an Ogg file (no frame count) is decoded from start to end; a hang is what it is for.
VIDEO_SECONDS = 300.0

_now = time.monotonic  # the clock the budget is checked against (between frames and packets); tests replace it


class DecodeTimeout(DecodeError):
    """The video's time budget ran out; never retried with another decoder."""

    def __init__(self, budget: float) -> None:
        super().__init__(f"video decode took longer than {budget:g} s")


class _Deadline:
    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.end = _now() + budget

    def remaining(self) -> float:
        return max(0.0, self.end - _now())

    def check(self) -> None:
        if _now() > self.end:
            raise DecodeTimeout(self.budget)


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


def _small(array: np.ndarray, short_side: int) -> np.ndarray:
    """A decoded frame shrunk at once to thumbnail size: a dozen kept 4K frames would hold 300 MB per worker."""
    image = Image.fromarray(array)
    box = _thumbnail_box(image.size, short_side)
    if box == image.size:
        return array
    image.thumbnail(box, Image.Resampling.BILINEAR)
    return np.asarray(image.convert("RGB"))


@contextmanager
def _opened(path: str) -> Iterator[str]:
    """A path the decoders can open that is the regular file opened here without blocking (see
    ``open_regular_file``): on Linux ``/proc/self/fd/N``, so a file swapped for a FIFO after the check is
    never opened; elsewhere the checked path itself."""
    fd = open_regular_file(path)
    try:
        proxy = f"/proc/self/fd/{fd}"
        yield proxy if sys.platform.startswith("linux") and os.path.exists(proxy) else path
    finally:
        os.close(fd)


def _with_decord(path: str, wanted: int, short_side: int, deadline: _Deadline | None = None) -> list[VideoFrame]:
    import decord

    deadline = deadline or _Deadline(VIDEO_SECONDS)

    reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    deadline.check()
    total = len(reader)
    if total == 0:
        raise DecodeError("video has no frames")
    fps = float(reader.get_avg_fps() or 0.0) or 25.0
    frames: list[tuple[int, float, np.ndarray]] = []
    for i in candidate_indices(total, wanted):  # one at a time: the clock is checked and a late error keeps some
        try:
            array = reader.get_batch([i]).asnumpy()[0]
        except Exception:
            if not frames:
                raise
            break
        frames.append((i, i / fps, _small(array, short_side)))
        deadline.check()
    return _select(frames, wanted, short_side)


class _Spread:
    """An evenly spaced sample of a frame sequence of unknown length, in bounded memory: every ``step``-th frame
    is kept, and when more than ``capacity`` are held, every other one is dropped and the step doubles."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(2, capacity)
        self.step = 1
        self.kept: list[tuple[int, float, np.ndarray]] = []

    def wants(self, number: int) -> bool:
        return number % self.step == 0

    def add(self, number: int, frame: tuple[int, float, np.ndarray]) -> None:
        self.kept.append(frame)
        while len(self.kept) > self.capacity:
            self.step *= 2
            self.kept = [f for f in self.kept if f[0] % self.step == 0]


def _with_pyav(path: str, wanted: int, short_side: int, deadline: _Deadline | None = None) -> list[VideoFrame]:
    import av

    deadline = deadline or _Deadline(VIDEO_SECONDS)

    try:
        container = av.open(path, timeout=(max(deadline.remaining(), 0.001), max(deadline.remaining(), 0.001)))
    except (av.error.FFmpegError, OSError) as exc:
        deadline.check()
        raise DecodeError(f"not a readable video: {getattr(exc, 'strerror', None) or exc}") from None
    with container:
        deadline.check()
        if not container.streams.video:
            raise DecodeError("file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        total = stream.frames or 0
        targets = set(candidate_indices(total, wanted)) if total > 0 else set()
        decoded: list[tuple[int, float, np.ndarray]] = []
        spread = _Spread(3 * wanted * 2)
        number = -1
        try:
            for packet in container.demux(stream):
                deadline.check()
                for frame in packet.decode():
                    number += 1
                    target, sampled = number in targets, spread.wants(number)
                    if not (target or sampled):
                        continue
                    item = (number, float(frame.time or 0.0), _small(frame.to_ndarray(format="rgb24"), short_side))
                    if target:
                        decoded.append(item)
                    if sampled:
                        spread.add(number, item)
                if total > 0 and len(decoded) == len(targets):
                    break
        except av.error.FFmpegError as exc:  # a late error keeps the frames decoded before it
            deadline.check()
            if not spread.kept:
                raise DecodeError(f"corrupt video: {getattr(exc, 'strerror', None) or exc}") from None
    if total > 0 and len(decoded) == len(targets):
        # decoding runs in playback order; restore the spread-out-first order candidate_indices chose
        rank = {index: n for n, index in enumerate(candidate_indices(total, wanted))}
        decoded.sort(key=lambda f: rank.get(f[0], len(rank)))
    else:  # no frame count (e.g. Ogg), or the video ended early: an even sample of the frames that decoded
        pool = spread.kept
        decoded = [pool[i] for i in candidate_indices(len(pool), wanted)]  # spread-out first, then spares
    if not decoded:
        raise DecodeError("video has no decodable frames")
    return _select(decoded, wanted, short_side)


def load_video_frames(
    path: str | os.PathLike[str], wanted: int, short_side: int, time_budget: float = VIDEO_SECONDS
) -> list[VideoFrame]:
    """Representative frames of a video, skipping near-black or blank ones where possible.

    Frames decoded before a late decode error are kept (a damaged tail still leaves the video sortable); a
    decode that takes longer than ``time_budget`` seconds raises ``DecodeTimeout``.
    """
    path = os.fspath(path)
    deadline = _Deadline(time_budget)
    with _opened(path) as readable:
        decord_error: Exception | None = None
        if not path.lower().endswith((".ogg", ".ogv")):  # decord 0.6 cannot open Theora
            try:
                return _with_decord(readable, wanted, short_side, deadline)
            except DecodeTimeout:
                raise
            except DecodeError as exc:
                decord_error = exc
            except Exception as exc:  # decord raises bare RuntimeError/DECORDError for anything it dislikes
                decord_error = exc
            deadline.check()
        try:
            return _with_pyav(readable, wanted, short_side, deadline)
        except DecodeTimeout:
            raise
        except DecodeError as exc:
            if decord_error is not None:
                message = str(decord_error).replace(readable, path).splitlines()[0][:200] if str(decord_error) else ""
                raise DecodeError(f"{exc} (decord: {message})") from None
            raise
