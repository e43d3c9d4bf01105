"""Shared fixtures: a tiny local CLIP checkpoint, the real tuxpaint8 images, and synthetic test videos."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from neural_sorter_tests.media import video_encoder, write_video
from neural_sorter_tests.tiny_clip import make_tiny_clip

TUXPAINT_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tuxpaint8"


def pytest_configure(config: pytest.Config) -> None:
    """Tests never touch the user's own neural-sorter home or Dagster instance: each session gets its own."""
    import os
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="neural-sorter-test-home-"))
    (home / "dagster").mkdir()
    os.environ["NEURAL_SORTER_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    os.environ.pop("NEURAL_SORTER_STORE", None)
    os.environ.pop("NEURAL_SORTER_CONFIG", None)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tuxpaint_dir() -> Path:
    if not TUXPAINT_DIR.is_dir() or not any(TUXPAINT_DIR.glob("*/*.png")):
        pytest.skip(f"real-image data set not found at {TUXPAINT_DIR}")
    return TUXPAINT_DIR


@pytest.fixture
def tuxpaint_sample(tuxpaint_dir: Path, tmp_path: Path) -> Callable[[int], Path]:
    """Copies the first ``per_class`` PNGs of three classes into ``tmp_path/images``; returns that folder."""

    def sample(per_class: int = 2) -> Path:
        target = tmp_path / "images"
        for cls in ("birds", "fish", "fruit"):
            files = sorted((tuxpaint_dir / cls).glob("*.png"))[:per_class]
            if len(files) < per_class:
                pytest.skip(f"tuxpaint8/{cls} has fewer than {per_class} images")
            (target / cls).mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copy2(f, target / cls / f.name)
        return target

    return sample


@pytest.fixture(scope="session")
def mp4_codec() -> str:
    codec = video_encoder("libx264", "mpeg4")
    if codec is None:
        pytest.skip("PyAV has neither an H.264 nor an MPEG-4 encoder")
    return codec


@pytest.fixture(scope="session")
def ogg_codec() -> str:
    # Theora is what .ogv files usually hold; PyAV wheels often lack its encoder, and VP8 in Ogg is an equally
    # valid .ogv that decord cannot open either (broken frame-count metadata), so it takes the same PyAV path.
    codec = video_encoder("libtheora", "libvpx")
    if codec is None:
        pytest.skip("PyAV has neither a Theora nor a VP8 encoder")
    return codec


@pytest.fixture
def make_video(tmp_path: Path, mp4_codec: str) -> Callable[..., Path]:
    """``make_video(name, **kwargs)`` writes a synthetic .mp4 (default) under ``tmp_path``."""

    def make(name: str = "clip.mp4", codec: str | None = None, **kwargs: object) -> Path:
        return write_video(tmp_path / name, codec or mp4_codec, **kwargs)  # type: ignore[arg-type]

    return make
