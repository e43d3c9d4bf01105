"""Still images via Pillow: orientation, alpha, animation and oversized files handled the way users expect."""

from __future__ import annotations

import io
import os
import warnings

from PIL import Image, ImageOps

try:  # HEIC/HEIF/AVIF support is optional at runtime even though it is a dependency.
    import pillow_heif

    pillow_heif.register_heif_opener()
except Exception:  # pragma: no cover - only when the wheel is missing on an exotic platform
    pillow_heif = None


class DecodeError(Exception):
    """A file that cannot be turned into pixels; the message is the per-file reason users see."""


def load_image_thumbnail(
    path: str | os.PathLike[str], short_side: int, max_pixels: int
) -> Image.Image:
    """Decodes one image into an RGB thumbnail whose short side is at most ``short_side``.

    JPEGs are decoded with ``draft`` (DCT scaling), so a 50-megapixel photo costs a fraction of a full
    decode; other formats above ``max_pixels`` are refused instead of exhausting memory.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except Image.DecompressionBombError as exc:
            raise DecodeError(f"image too large ({exc})") from None
        except Image.DecompressionBombWarning as exc:
            raise DecodeError(f"image too large ({exc})") from None
        except FileNotFoundError:
            raise DecodeError("file disappeared before it could be decoded") from None
        except OSError as exc:
            raise DecodeError(f"not a readable image: {exc}") from None
    try:
        with image:
            width, height = image.size
            if image.format == "JPEG":
                scale = short_side / max(1, min(width, height))
                image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
            elif width * height > max_pixels:
                raise DecodeError(
                    f"image too large: {width}x{height} = {width * height} pixels exceeds the cap of "
                    f"{max_pixels} (max_image_pixels)"
                )
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
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


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
