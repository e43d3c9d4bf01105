"""The CLIP input the pipeline prepares by hand (``LoadedClip.preprocess``, i.e. ``to_chw_array``: one Pillow
bicubic resample of the centre box, then ``(x/255 - mean)/std``) against the model's own
``transformers.CLIPImageProcessor`` (resize the short side, centre-crop, rescale, normalise), on the real
pictures the pipeline sees: JPEG thumbnails of tuxpaint8, decoded as ``embedding.py`` decodes them.

Where the two agree on the resized size, the only difference is that Pillow resamples the crop box instead of
the whole image and then cropping, which is not bit-identical in Pillow: within 1 level when only one axis is
resampled, more at the high-contrast outlines of these drawings when both are. Measured over all 254 pictures
(one uint8 level is 1/(255*std), about 0.015 after normalisation): tiny model (32 px) at most 2 levels; the
ViT-B/32 settings (224 px) at most 12 levels, on at most 0.35% of the values, 0.18 level on average per
picture. The tolerances below sit just above these figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neural_sorter.decoding.images import decode_jpeg, encode_jpeg, load_image_thumbnail
from neural_sorter.models.clip import load_clip
from neural_sorter.models.preprocess import resize_center_crop, to_chw_array

transformers = pytest.importorskip("transformers")

MAX_LEVELS = 16.0  # largest single difference, in uint8 levels (measured 12)
MEAN_LEVELS = 0.25  # mean difference per picture, in levels (measured 0.18)
FRACTION_ABOVE_2_LEVELS = 0.01  # share of values off by more than 2 levels (measured 0.0035)


@pytest.fixture(scope="module")
def thumbnails(tuxpaint_dir: Path) -> list[Image.Image]:
    """Every tuxpaint8 picture as the pipeline stores it (256 px thumbnail, JPEG) and decodes it to embed."""
    files = sorted(tuxpaint_dir.glob("*/*.png"))
    return [decode_jpeg(encode_jpeg(load_image_thumbnail(f, 256, 10**9))) for f in files]


@pytest.fixture(scope="module", params=["tiny-clip", "vit-b-32"])
def processor(request: pytest.FixtureRequest, tiny_clip_dir: Path):
    """The tiny test model's processor (32 px), and the ViT-B/32 one (the processor defaults: 224 px,
    bicubic, OpenAI mean and std), which is what a real CLIP checkpoint ships."""
    if request.param == "tiny-clip":
        return transformers.CLIPImageProcessor.from_pretrained(tiny_clip_dir)
    return transformers.CLIPImageProcessor()


def _params(processor) -> tuple[int, np.ndarray, np.ndarray]:
    size = processor.crop_size["height"]
    return size, np.asarray(processor.image_mean, np.float32), np.asarray(processor.image_std, np.float32)


def _reference(processor, image: Image.Image) -> np.ndarray:
    return processor(images=image, return_tensors="np")["pixel_values"][0]


def _same_resized_size(image: Image.Image, size: int) -> bool:
    """True when ``resize_center_crop`` (which rounds the scaled long side) and the processor (which truncates
    it, as torchvision does) resize to the same size before cropping."""
    scaled_long = max(image.size) * size / min(image.size)
    return round(scaled_long) == int(scaled_long)


def _levels(ours: np.ndarray, reference: np.ndarray, std: np.ndarray) -> np.ndarray:
    return np.abs(ours - reference) * (255.0 * std.reshape(3, 1, 1))


def _assert_close(levels: np.ndarray) -> None:
    assert levels.max() <= MAX_LEVELS
    assert levels.mean() <= MEAN_LEVELS
    assert (levels > 2.01).mean() <= FRACTION_ABOVE_2_LEVELS


def test_loaded_clip_preprocess_is_to_chw_array_with_the_processor_settings(
    tiny_clip_dir: Path, thumbnails: list[Image.Image]
) -> None:
    clip = load_clip(str(tiny_clip_dir))
    size, mean, std = _params(transformers.CLIPImageProcessor.from_pretrained(tiny_clip_dir))
    assert clip.image_size == size
    np.testing.assert_array_equal(clip.mean, mean)
    np.testing.assert_array_equal(clip.std, std)
    for image in thumbnails[:8]:
        np.testing.assert_array_equal(clip.preprocess(image), to_chw_array(image, size, mean, std))


def test_normalisation_matches_processor(processor, thumbnails: list[Image.Image]) -> None:
    """Pictures already at the crop size are not resampled by either side: only the arithmetic is compared.
    Measured 2.4e-7, one float32 ulp at the values' magnitude (up to ~2.2)."""
    size, mean, std = _params(processor)
    worst = 0.0
    for image in thumbnails:
        square = resize_center_crop(image, size)
        ours = to_chw_array(square, size, mean, std)
        assert ours.shape == (3, size, size) and ours.dtype == np.float32
        worst = max(worst, float(np.abs(ours - _reference(processor, square)).max()))
    assert worst <= 1e-6


def test_pixels_match_processor_where_resize_geometry_agrees(processor, thumbnails: list[Image.Image]) -> None:
    size, mean, std = _params(processor)
    same = [image for image in thumbnails if _same_resized_size(image, size)]
    assert len(same) >= 100  # about half of the 254 pictures
    for image in same:
        _assert_close(_levels(to_chw_array(image, size, mean, std), _reference(processor, image), std))


@pytest.mark.xfail(
    strict=True,
    reason="known deviation, kept so existing embeddings do not change: resize_center_crop rounds the scaled "
    "long side, CLIPImageProcessor truncates it; a one-pixel larger resize moves hard edges by up to half a "
    "pixel (up to ~200 levels on single values, 7 to 22 levels on average)",
)
def test_pixels_match_processor_where_the_long_side_rounds_differently(
    processor, thumbnails: list[Image.Image]
) -> None:
    """Documents the deviation: strict, so aligning the rounding makes this pass and the marker must go."""
    size, mean, std = _params(processor)
    for image in [image for image in thumbnails if not _same_resized_size(image, size)]:
        _assert_close(_levels(to_chw_array(image, size, mean, std), _reference(processor, image), std))
