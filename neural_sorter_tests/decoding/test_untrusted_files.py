"""Files that fight back: FIFOs swapped in after the scan, videos that take too long, videos with a broken tail,
and images whose transparency hides most of their pixels."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neural_sorter.decoding import videos as videos_module
from neural_sorter.decoding.frames import DecodeOptions, decode_file, decode_manifest
from neural_sorter.decoding.images import DecodeError, load_image_thumbnail
from neural_sorter.decoding.videos import load_video_frames
from neural_sorter.inventory import build_file_manifest
from neural_sorter_tests.media import BAND_BASE, BAND_STEP, write_video

BIG = 10**9


def band_index(image: Image.Image) -> float:
    """Which source frame a decoded synthetic frame shows (see media.write_video)."""
    top = np.asarray(image, dtype=np.float32)[: image.height // 2 - 2]
    return (float(top.mean()) - BAND_BASE) / BAND_STEP


# ------------------------------------------------------------------------------------------------- FIFOs


def _release(fifo: Path) -> None:
    """Lets a reader blocked on ``fifo`` go (it reads end-of-file): only needed when the code under test hangs."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_swapped_in_after_the_scan_is_a_quick_per_file_error(
    tmp_path: Path, mp4_codec: str, ogg_codec: str
) -> None:
    root = tmp_path / "media"
    root.mkdir()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(root / "photo.png")
    Image.new("RGB", (64, 48), (30, 200, 30)).save(root / "kept.png")
    write_video(root / "clip.mp4", mp4_codec)
    write_video(root / "clip.ogv", ogg_codec, container_format="ogg")
    manifest = build_file_manifest(root)
    assert set(manifest["kind"]) == {"image", "video"}
    swapped = [root / "photo.png", root / "clip.mp4", root / "clip.ogv"]
    for path in swapped:  # between scan and decode, each file becomes a FIFO nobody writes to
        path.unlink()
        os.mkfifo(path)

    result: dict[str, object] = {}
    worker = threading.Thread(
        target=lambda: result.update(out=decode_manifest(manifest, DecodeOptions(thumbnail_size=32, workers=2))),
        daemon=True,
    )
    started = time.monotonic()
    worker.start()
    worker.join(timeout=5)
    hung = worker.is_alive()
    for path in swapped:
        _release(path)
    worker.join(timeout=5)
    assert not hung, "decoding blocked on a FIFO"
    assert time.monotonic() - started < 5

    frames, stats = result["out"]  # type: ignore[misc]
    assert stats == {"reused": 0, "decoded": 1, "failed": 3}
    errors = {
        p: e if isinstance(e, str) else None for p, e in zip(frames["relative_path"], frames["error"], strict=True)
    }
    assert errors["kept.png"] is None
    for name in ("photo.png", "clip.mp4", "clip.ogv"):
        assert "not a regular file" in errors[name], errors[name]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("kind", ["image", "video"])
def test_decode_file_refuses_a_fifo_without_blocking(tmp_path: Path, kind: str) -> None:
    fifo = tmp_path / ("pipe.png" if kind == "image" else "pipe.mp4")
    os.mkfifo(fifo)
    result: list = []
    worker = threading.Thread(target=lambda: result.append(decode_file(str(fifo), kind, DecodeOptions())), daemon=True)
    worker.start()
    worker.join(timeout=5)
    hung = worker.is_alive()
    _release(fifo)
    worker.join(timeout=5)
    assert not hung, f"{kind} decoding blocked on a FIFO"
    assert "not a regular file" in result[0][0]["error"]


def test_a_directory_named_like_media_is_refused(tmp_path: Path) -> None:
    (tmp_path / "folder.jpg").mkdir()
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(DecodeError, match="not a regular file"):
        load_image_thumbnail(tmp_path / "folder.jpg", 32, BIG)
    with pytest.raises(DecodeError, match="not a regular file"):
        load_video_frames(tmp_path / "folder.mp4", 3, 32)


# ---------------------------------------------------------------------------------------------- time budget


class SlowClock:
    """A clock that advances one second each time it is read: a decode that takes many steps "takes" long."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        self.now += 1.0
        return self.now


@pytest.mark.parametrize("name", ["long.mp4", "long.ogv", "long.mkv"])
def test_video_decode_over_its_time_budget_is_a_per_file_error(
    tmp_path: Path, mp4_codec: str, ogg_codec: str, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    if name.endswith(".ogv"):
        path = write_video(tmp_path / name, ogg_codec, frames=40, black=0, container_format="ogg")
    else:
        path = write_video(tmp_path / name, mp4_codec, frames=40, black=0)
    assert len(load_video_frames(path, 3, 32)) == 3  # decodes fine within the default budget

    clock = SlowClock()
    monkeypatch.setattr(videos_module, "_now", clock)
    rows = decode_file(str(path), "video", DecodeOptions(thumbnail_size=32, frames_per_video=3, video_seconds=8))
    assert len(rows) == 1
    assert rows[0]["error"] == "video decode took longer than 8 s"
    assert clock.reads <= 8 + 3, "the decoder must stop soon after the budget is spent"


def test_time_budget_stops_a_real_decode_promptly(tmp_path: Path, ogg_codec: str) -> None:
    path = write_video(tmp_path / "long.ogv", ogg_codec, frames=40, black=0, size=(320, 240), container_format="ogg")
    started = time.monotonic()
    with pytest.raises(DecodeError, match=r"video decode took longer than 1e-06 s"):
        load_video_frames(path, 3, 32, time_budget=1e-6)
    assert time.monotonic() - started < 2


# ----------------------------------------------------------------------------------------- broken tails


def _garble_tail(data: bytes, keep: float) -> bytes:
    cut = int(len(data) * keep)
    noise = np.random.default_rng(0).integers(0, 256, len(data) - cut, dtype=np.uint8).tobytes()
    return data[:cut] + noise


@pytest.mark.parametrize("keep", [0.3, 0.45, 0.6])
def test_ogg_video_with_a_garbled_tail_keeps_its_early_frames(tmp_path: Path, ogg_codec: str, keep: float) -> None:
    """A real phone Theora .ogg decodes dozens of frames and then fails; those frames must be kept."""
    source = write_video(tmp_path / "whole.ogv", ogg_codec, frames=40, black=0, size=(160, 120), container_format="ogg")
    broken = tmp_path / "broken.ogv"
    broken.write_bytes(_garble_tail(source.read_bytes(), keep))

    frames = load_video_frames(broken, 3, 32)

    assert len(frames) == 3
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))
    assert indices[-1] - indices[0] >= 3, indices  # spread over what could be decoded
    for frame in frames:
        assert abs(band_index(frame.image) - frame.index) < 0.6, (frame.index, band_index(frame.image))

    rows = decode_file(str(broken), "video", DecodeOptions(thumbnail_size=32, frames_per_video=3))
    assert [r["error"] for r in rows] == [None] * 3


def _noise_video(path: Path, codec: str, frames: int) -> Path:
    import av

    rng = np.random.default_rng(2)
    with av.open(str(path), "w", format="ogg") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(frames):
            array = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_unknown_length_video_keeps_few_frames_in_memory(
    tmp_path: Path, ogg_codec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Ogg file has no frame count; decoding it must not hold every frame at once, yet still sample all of it."""
    path = _noise_video(tmp_path / "long.ogv", ogg_codec, frames=200)
    held: list[int] = []
    spreads: list = []
    original = videos_module._Spread.add

    def add(self, number, frame):
        original(self, number, frame)
        held.append(len(self.kept))
        spreads.append(self)

    monkeypatch.setattr(videos_module._Spread, "add", add)
    frames = load_video_frames(path, 3, 32)
    assert len(frames) == 3
    assert frames[-1].index - frames[0].index >= 100  # spread over the whole video
    assert max(held) <= 2 * 3 * 3
    kept = [f[0] for f in spreads[-1].kept]
    assert kept[0] == 0 and kept[-1] >= 180, kept  # the sample spans the whole video


# ------------------------------------------------------------------------------------------- transparency


def test_mostly_transparent_image_with_light_content_is_not_blank(tmp_path: Path) -> None:
    """A transparent wallpaper/overlay whose visible pixels are light must not embed as a blank white image."""
    image = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    rng = np.random.default_rng(5)
    for _ in range(12):  # light-yellow and white strokes over about a tenth of the picture
        x, y = int(rng.integers(0, 360)), int(rng.integers(0, 280))
        image.paste((255, 250, 220, 255) if rng.random() < 0.5 else (255, 255, 255, 255), (x, y, x + 40, y + 12))
    path = tmp_path / "overlay.png"
    image.save(path)
    assert np.asarray(image)[..., 3].mean() / 255 < 0.2

    thumb = np.asarray(load_image_thumbnail(path, 64, BIG).convert("L"), dtype=np.float32)
    assert thumb.std() > 40, thumb.std()  # the strokes stand out from the background


def test_transparent_dark_content_still_gets_a_light_background(tmp_path: Path) -> None:
    image = Image.new("RGBA", (100, 80), (0, 0, 0, 0))
    image.paste((20, 20, 60, 255), (30, 20, 70, 60))
    path = tmp_path / "dark.png"
    image.save(path)
    thumb = load_image_thumbnail(path, 40, BIG)
    assert min(thumb.getpixel((0, 0))) >= 250
    assert max(thumb.getpixel((25, 20))) <= 80
