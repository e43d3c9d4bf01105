"""Still images via Pillow: orientation, alpha, animation and oversized files handled the way users expect."""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps

try:  # HEIC/HEIF/AVIF support is optional at runtime even though it is a dependency.
    import pillow_heif

    pillow_heif.register_heif_opener()
except Exception:  # pragma: no cover - only when the wheel is missing on an exotic platform
    pillow_heif = None


# Pillow's own bomb check fires at ~89 MP, before JPEG draft decoding could make a 100 MP photo cheap; the
# cap is enforced here instead, per format (see ``load_image_thumbnail``).
Image.MAX_IMAGE_PIXELS = None

# A JPEG decoded with ``draft`` is scaled by up to 1/8 per side while decoding, i.e. 1/64 of the pixels.
_JPEG_DRAFT_FACTOR = 64


class DecodeError(Exception):
    """A file that cannot be turned into pixels; the message is the per-file reason users see."""


def load_image_thumbnail(path: str | os.PathLike[str], short_side: int, max_pixels: int) -> Image.Image:
    """Decodes one image into an RGB thumbnail whose short side is at most ``short_side``.

    JPEGs are decoded with ``draft`` (DCT scaling), so a 50-megapixel photo costs a fraction of a full
    decode; other formats above ``max_pixels`` are refused instead of exhausting memory.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except FileNotFoundError:
            raise DecodeError("file disappeared before it could be decoded") from None
        except OSError as exc:
            raise DecodeError(f"not a readable image: {exc}") from None
    try:
        with image:
            width, height = image.size
            cap = max_pixels * (_JPEG_DRAFT_FACTOR if image.format == "JPEG" else 1)
            if width * height > cap:
                raise DecodeError(
                    f"image too large: {width}x{height} = {width * height} pixels exceeds the cap of {cap}"
                    f" (max_image_pixels = {max_pixels}{', x64 for JPEG draft decoding' if cap != max_pixels else ''})"
                )
            if image.format == "JPEG":
                scale = short_side / max(1, min(width, height))
                image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
            image.seek(0)  # first frame of animated GIF/WebP/APNG
            image.load()
            image = ImageOps.exif_transpose(image) or image
            image = _flatten_on_white(image)
            image.thumbnail(_thumbnail_box(image.size, short_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
            return image
    except DecodeError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DecodeError(f"corrupt or truncated image: {exc}") from None


def _flatten_on_white(image: Image.Image) -> Image.Image:
    """Composites transparency on white: cut-outs on transparent backgrounds would otherwise turn black."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _high_depth_to_rgb(image)
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit and float greyscale scaled to 8 bits; Pillow's ``convert`` would clip everything above 255."""
    array = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low or 1.0) * 255.0
    else:
        scaled = array / (257.0 if array.max(initial=0) <= 65535 else array.max() / 255.0)
    grey = Image.fromarray(np.clip(scaled + 0.5, 0, 255).astype(np.uint8), mode="L")
    return grey.convert("RGB")


def _thumbnail_box(size: tuple[int, int], short_side: int) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, short_side / max(1, min(width, height)))
    return max(1, round(width * scale)), max(1, round(height * scale))


def encode_jpeg(image: Image.Image, quality: int = 88) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")
