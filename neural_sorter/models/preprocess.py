"""Image-to-tensor preprocessing with Pillow and numpy (no torchvision dependency)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Resizes the short side to ``size`` then crops the centre square, as ImageNet/CLIP models expect."""
    width, height = image.size
    scale = size / min(width, height)
    resized = image.resize(
        (max(size, round(width * scale)), max(size, round(height * scale))), Image.Resampling.BICUBIC
    )
    left = (resized.width - size) // 2
    top = (resized.height - size) // 2
    return resized.crop((left, top, left + size, top + size))


def to_chw_array(image: Image.Image, size: int, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """A float32 CHW array normalised as ``(pixel/255 - mean) / std``."""
    array = np.asarray(resize_center_crop(image.convert("RGB"), size), dtype=np.float32) / 255.0
    return ((array - mean) / std).transpose(2, 0, 1)
