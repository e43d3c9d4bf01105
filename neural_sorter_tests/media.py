"""Synthetic test media written with PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Frame i (after the black intro) has its top half at grey level BAND_BASE + BAND_STEP * i and random noise
# below, so a decoded frame tells which source frame it came from.
BAND_BASE = 40
BAND_STEP = 5


def video_encoder(*names: str) -> str | None:
    import av

    for name in names:
        try:
            av.Codec(name, "w")
            return name
        except Exception:
            continue
    return None


def write_video(
    path: Path,
    codec: str,
    frames: int = 40,
    black: int = 10,
    size: tuple[int, int] = (64, 48),
    fps: int = 10,
    container_format: str | None = None,
) -> Path:
    import av

    rng = np.random.default_rng(1)
    width, height = size
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18"}
        for i in range(frames):
            if i < black:
                array = np.zeros((height, width, 3), np.uint8)
            else:
                array = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                array[: height // 2] = BAND_BASE + BAND_STEP * i
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels but holds no image data: a decompression bomb stand-in."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
