"""Small PNG previews for the Dagster UI: cluster montages and a projection scatter, drawn with Pillow."""

from __future__ import annotations

import base64
import colorsys
import io

import numpy as np
from PIL import Image, ImageDraw

from neural_sorter.decoding.images import decode_jpeg


def palette(n: int) -> list[tuple[int, int, int]]:
    """Distinct colours, evenly spaced in hue."""
    return [
        tuple(int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65, 0.9))  # type: ignore[misc]
        for i in range(max(1, n))
    ]


def montage(thumbnails: list[bytes], tile: int = 64, columns: int = 8) -> Image.Image:
    """A grid of square tiles (centre crops) from JPEG thumbnails."""
    count = max(1, len(thumbnails))
    rows = (count + columns - 1) // columns
    sheet = Image.new("RGB", (tile * min(columns, count), tile * rows), "white")
    for i, data in enumerate(thumbnails):
        image = decode_jpeg(data)
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((tile, tile))
        sheet.paste(image, ((i % columns) * tile, (i // columns) * tile))
    return sheet


def scatter(coords: np.ndarray, labels: np.ndarray, size: int = 360) -> Image.Image:
    """The first two projected dimensions, one colour per cluster (noise in grey)."""
    canvas = Image.new("RGB", (size, size), "white")
    if not len(coords):
        return canvas
    draw = ImageDraw.Draw(canvas)
    xy = coords[:, :2].astype(np.float64)
    low, high = xy.min(axis=0), xy.max(axis=0)
    span = np.where(high - low > 0, high - low, 1.0)
    pixels = 8 + (xy - low) / span * (size - 16)
    colours = palette(int(labels.max(initial=0)) + 1)
    for (x, y), label in zip(pixels, labels):
        colour = (150, 150, 150) if label < 0 else colours[int(label)]
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
    return canvas


def as_markdown_image(image: Image.Image, title: str = "") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![{title}](data:image/png;base64,{encoded})"
