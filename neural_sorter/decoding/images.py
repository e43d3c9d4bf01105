"""Still images via Pillow: orientation, alpha, animation and oversized files handled the way users expect."""

from __future__ import annotations

import io
import os
import stat
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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


_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def open_regular_file(path: str | os.PathLike[str]) -> int:
    """Opens a user file for reading without ever blocking and returns the descriptor, or raises ``DecodeError``.

    A FIFO, device or socket swapped in for a file between the scan and the decode would block a plain
    ``open`` (or feed endless bytes): the open is non-blocking and the opened file must be a regular file.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise DecodeError("file disappeared before it could be decoded") from None
    except OSError as exc:
        raise DecodeError(f"cannot open the file: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise DecodeError(f"not a regular file ({_file_type(mode)}); refused")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # a regular file never blocks; decoders expect ordinary reads
    except BaseException:
        os.close(fd)
        raise
    return fd


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a plain file"


def load_image_thumbnail(path: str | os.PathLike[str], short_side: int, max_pixels: int) -> Image.Image:
    """Decodes one image into an RGB thumbnail whose short side is at most ``short_side``.

    JPEGs are decoded with ``draft`` (DCT scaling), so a 50-megapixel photo costs a fraction of a full
    decode; other formats above ``max_pixels`` are refused instead of exhausting memory.
    """
    with os.fdopen(open_regular_file(path), "rb") as handle:
        return _thumbnail_of(handle, short_side, max_pixels)


def _thumbnail_of(handle: io.BufferedReader, short_side: int, max_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(handle)
        except UnidentifiedImageError:
            raise DecodeError("not a readable image: unknown or damaged image format") from None
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
            image = _flatten(image)
            image.thumbnail(_thumbnail_box(image.size, short_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
            return image
    except DecodeError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DecodeError(f"corrupt or truncated image: {exc}") from None


def _flatten(image: Image.Image) -> Image.Image:
    """RGB pixels for any mode; transparency is composited on a background that contrasts with what shows."""
    if image.mode in ("RGBA", "LA", "PA", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _contrasting_background(rgba))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _high_depth_to_rgb(image)
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def _contrasting_background(rgba: Image.Image) -> tuple[int, int, int, int]:
    """White, the way cut-outs are usually shown and exported (so a transparent PNG and its JPEG copy flattened
    on white stay near duplicates), unless white would blank the picture out: when the visible pixels are so
    light that the picture on white is near-uniform (white text or strokes on an overlay, a light logo), black.

    Compositing everything on white made such transparent images embed as identical blank pictures. Choosing
    by the mean brightness of the visible pixels alone (black behind anything lighter than mid-grey) was tried
    and measured: it fixed more blank thumbnails on 23,665 real transparent PNGs (Debian icon themes, game
    sprites, tuxpaint stamps) but put colourful cut-outs on black, so their white-flattened copies were no
    longer found as duplicates.
    """
    small = rgba.copy()
    small.thumbnail((64, 64), Image.Resampling.NEAREST)
    if _grey_spread(small, (255, 255, 255, 255)) >= BLANK_SPREAD:
        return (255, 255, 255, 255)
    if _grey_spread(small, (0, 0, 0, 255)) > _grey_spread(small, (255, 255, 255, 255)):
        return (0, 0, 0, 255)
    return (255, 255, 255, 255)


# A thumbnail whose grey levels spread less than this is near-uniform: a blank picture to a person and a model.
BLANK_SPREAD = 8.0


def _grey_spread(rgba: Image.Image, background: tuple[int, int, int, int]) -> float:
    flat = Image.alpha_composite(Image.new("RGBA", rgba.size, background), rgba).convert("L")
    return float(np.asarray(flat, dtype=np.float32).std())


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
