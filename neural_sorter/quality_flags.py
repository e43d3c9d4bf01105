"""Quality flags for dataset cleaning, per file with a score: blurry, too dark, too bright (washed out), low
information (blank, near-uniform), tiny, extreme aspect ratio; and outliers (far from every cluster) from the
vectors and the cluster labels.

The pixel flags are computed on the stored thumbnails (short side <= 256 px), so they judge the picture as a
whole: a 24-megapixel photo with a slightly soft focus is not "blurry" here, a picture that is soft at
thumbnail size is. Size and shape come from the file's own width and height (``file_manifest``). The
thresholds were measured by ``bench/duplicates.py --quality`` on pictures degraded on purpose.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

# In the order a file flagged for several reasons is reviewed under (``_review/<reason>/``).
FLAG_NAMES = ("low_information", "too_dark", "too_bright", "blurry", "tiny", "extreme_aspect")


class QualityOptions(BaseModel):
    """When a file is flagged for review."""

    model_config = ConfigDict(extra="forbid")

    blur_threshold: float = Field(
        0.45,
        ge=0.0,
        le=1.0,
        description="Blur effect (0 sharp - 1 blurred, Crete-Roffet) above which a file is blurry.",
    )
    dark_threshold: float = Field(
        0.30,
        ge=0.0,
        le=1.0,
        description="Brightest tones (95th percentile luminance, 0-1) below which a file is too dark.",
    )
    bright_threshold: float = Field(
        0.58,
        ge=0.0,
        le=1.0,
        description="Darkest tones (1st percentile luminance, 0-1) above which a file is too bright / washed out.",
    )
    low_information_threshold: float = Field(
        0.008,
        ge=0.0,
        description="Coarse variation (std of a 16x16 grid of block means, 0-1) below which a file is blank.",
    )
    tiny_side: int = Field(64, ge=1, description="Short side in pixels below which a file is tiny.")
    max_aspect: float = Field(4.0, ge=1.0, description="Long side / short side above which the shape is extreme.")
    outlier_z: float = Field(
        4.0,
        ge=0.0,
        description="Robust z-score of the distance to the nearest cluster centre above which a file is an outlier.",
    )


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def blur_effect(grey: np.ndarray, h_size: int = 11) -> float:
    """Crete-Roffet et al. (2007) no-reference blur metric: 0 for sharp, towards 1 for blurred. The picture is
    blurred again along each axis; a sharp picture loses much of its local variation, a blurred one little."""
    from scipy.ndimage import uniform_filter1d

    results = []
    for axis in (0, 1):
        if grey.shape[axis] < h_size + 2:
            continue
        blurred = uniform_filter1d(grey, h_size, axis=axis)
        d_f = np.abs(np.diff(grey, axis=axis))
        d_b = np.abs(np.diff(blurred, axis=axis))
        t = np.maximum(0.0, d_f - d_b)
        total = float(d_f.sum())
        results.append(1.0 - float(t.sum()) / total if total > 0 else 1.0)
    return max(results) if results else 0.0


def structure(rgb: np.ndarray, cells: int = 16) -> float:
    """How much the picture varies at a coarse scale: the largest standard deviation (0-1 scale), over the three
    channels, of a ``cells`` x ``cells`` grid of block means. Sensor or JPEG noise averages away on the grid, so
    a blank picture scores ~0 whatever its tone, while any real picture, however dark, keeps its layout."""
    from PIL import Image

    small = np.asarray(Image.fromarray(rgb).resize((cells, cells), Image.Resampling.BOX), dtype=np.float32) / 255.0
    return float(small.reshape(-1, 3).std(axis=0).max())


def pixel_scores(rgb: np.ndarray) -> dict[str, float]:
    """Pixel scores of one RGB picture (H, W, 3) uint8: blur effect (NaN below 64 px, too small to judge),
    brightest and darkest tones, coarse variation."""
    x = rgb.astype(np.float32) / 255.0
    lum = _luminance(x)
    return {
        "blurry": blur_effect(lum) if min(lum.shape) >= 64 else float("nan"),
        "too_dark": float(np.percentile(lum, 95)),
        "too_bright": float(np.percentile(lum, 1)),
        "low_information": structure(rgb),
    }


def thumbnail_scores(thumbnails: Iterable[tuple[str, bytes]]) -> pd.DataFrame:
    """relative_path plus the pixel scores, for (relative path, JPEG thumbnail) pairs (first frame each)."""
    from PIL import Image

    rows = []
    seen: set[str] = set()
    for path, data in thumbnails:
        if path in seen or data is None:
            continue
        seen.add(path)
        try:
            with Image.open(io.BytesIO(data)) as image:
                rgb = np.asarray(image.convert("RGB"))
        except Exception:
            continue
        rows.append({"relative_path": path, **pixel_scores(rgb)})
    return pd.DataFrame(rows, columns=["relative_path", "blurry", "too_dark", "too_bright", "low_information"])


def quality_flags(
    manifest: pd.DataFrame,
    thumbnails: Iterable[tuple[str, bytes]] | pd.DataFrame,
    options: QualityOptions | None = None,
) -> pd.DataFrame:
    """One row per image/video file of ``manifest``: a bool column per flag (``FLAG_NAMES``), its score in
    ``<flag>_score``, ``flags`` (the flag names joined by ``,``; empty when none) and ``review_reason`` (the first
    flag in ``FLAG_NAMES`` order, or None). ``thumbnails`` yields (relative path, JPEG thumbnail) or is a ready
    ``thumbnail_scores`` table. A file without a thumbnail gets only the size and shape flags."""
    options = options or QualityOptions()
    files = manifest[manifest["kind"].isin(["image", "video"])]
    out = files[["relative_path", "content_hash"]].reset_index(drop=True)
    scores = thumbnails if isinstance(thumbnails, pd.DataFrame) else thumbnail_scores(thumbnails)
    out = out.merge(scores, on="relative_path", how="left")
    out = out.rename(columns={c: f"{c}_score" for c in ("blurry", "too_dark", "too_bright", "low_information")})
    width = pd.to_numeric(files["width"], errors="coerce").to_numpy(dtype=float)
    height = pd.to_numeric(files["height"], errors="coerce").to_numpy(dtype=float)
    out["tiny_score"] = np.fmin(width, height)
    out["extreme_aspect_score"] = np.fmax(width, height) / np.maximum(np.fmin(width, height), 1)

    low_info = out["low_information_score"] < options.low_information_threshold
    out["low_information"] = low_info
    # a uniform picture is reported as low information, not also as dark or bright
    out["too_dark"] = (out["too_dark_score"] < options.dark_threshold) & ~low_info
    out["too_bright"] = (out["too_bright_score"] > options.bright_threshold) & ~low_info
    out["blurry"] = (out["blurry_score"] > options.blur_threshold) & ~low_info
    out["tiny"] = out["tiny_score"] < options.tiny_side
    out["extreme_aspect"] = out["extreme_aspect_score"] > options.max_aspect
    for flag in FLAG_NAMES:
        out[flag] = out[flag].fillna(False).astype(bool)
    flagged = out[list(FLAG_NAMES)].to_numpy()
    names = np.array(FLAG_NAMES)
    out["flags"] = [",".join(names[row]) for row in flagged]
    out["review_reason"] = [names[row][0] if row.any() else None for row in flagged]
    return out


def outlier_scores(vectors: np.ndarray, labels: np.ndarray, z_threshold: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """(score, flag) per file: the score is the cosine distance to the nearest cluster centre (labels < 0, e.g.
    HDBSCAN noise, make no centre); a file is an outlier when its score's robust z-score over the folder
    (median and MAD) is above ``z_threshold``."""
    vectors = np.asarray(vectors, dtype=np.float32)
    labels = np.asarray(labels)
    ids = np.unique(labels[labels >= 0])
    if len(vectors) == 0 or len(ids) == 0:
        return np.zeros(len(vectors), dtype=np.float32), np.zeros(len(vectors), dtype=bool)
    centres = np.stack([vectors[labels == i].mean(axis=0) for i in ids])
    centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    score = 1.0 - (vectors @ centres.T).max(axis=1)
    median = float(np.median(score))
    mad = float(np.median(np.abs(score - median))) * 1.4826
    z = (score - median) / mad if mad > 0 else np.zeros_like(score)
    return score.astype(np.float32), z > z_threshold
