"""Quality flags on real images degraded in the test: blurred, darkened, washed out, blanked, shrunk, stretched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance, ImageFilter
from pydantic import ValidationError

from neural_sorter.quality_flags import FLAG_NAMES, QualityOptions, outlier_scores, quality_flags


def _flat(path: Path) -> Image.Image:
    with Image.open(path) as image:
        rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _degrade(image: Image.Image, kind: str) -> Image.Image:
    w, h = image.size
    if kind == "blurry":
        return image.filter(ImageFilter.GaussianBlur(max(2.0, 0.02 * min(w, h))))
    if kind == "too_dark":
        return ImageEnhance.Brightness(image).enhance(0.18)
    if kind == "too_bright":
        return Image.blend(Image.new("RGB", image.size, (255, 255, 255)), image, 0.3)
    if kind == "low_information":
        noise = np.random.default_rng(0).integers(-3, 4, (h, w, 3))
        return Image.fromarray(np.clip(90 + noise, 0, 255).astype(np.uint8))
    if kind == "tiny":
        return image.resize((40, max(1, round(40 * h / w))), Image.Resampling.LANCZOS)
    if kind == "extreme_aspect":  # a strip of six copies side by side: sharp, but 6x as wide
        strip = Image.new("RGB", (w * 6, h))
        for i in range(6):
            strip.paste(image, (i * w, 0))
        return strip
    return image


@pytest.fixture(scope="module")
def flagged(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    from neural_sorter_tests.conftest import TUXPAINT_DIR

    sources = [
        p for cls in ("birds", "fish", "fruit", "vehicles") for p in sorted((TUXPAINT_DIR / cls).glob("*.png"))[:6]
    ]
    if not sources:
        pytest.skip(f"real-image data set not found at {TUXPAINT_DIR}")
    from neural_sorter.decoding.frames import DecodeOptions, decode_manifest
    from neural_sorter.inventory import build_file_manifest

    folder = tmp_path_factory.mktemp("quality")
    kinds = ["clean", "blurry", "too_dark", "too_bright", "low_information", "tiny", "extreme_aspect"]
    truth = {}
    for source in sources:
        image = _flat(source)
        if min(image.size) < 100 or image.width < 0.8 * image.height:
            continue
        for kind in kinds:
            name = f"{source.parent.name}-{source.stem}-{kind}.png"
            _degrade(image, kind).save(folder / name)
            truth[name] = kind
    manifest = build_file_manifest(folder)
    frames, _ = decode_manifest(manifest, DecodeOptions(workers=2))
    first = frames[frames["error"].isna()].drop_duplicates("relative_path")
    table = quality_flags(manifest, zip(first["relative_path"], first["thumbnail"]))
    table["truth"] = table["relative_path"].map(truth)
    assert table["truth"].value_counts().min() >= 10
    return table


@pytest.mark.parametrize("flag", FLAG_NAMES)
def test_each_degradation_is_flagged_and_only_it(flagged: pd.DataFrame, flag: str) -> None:
    predicted = flagged[flag]
    actual = flagged["truth"] == flag
    recall = (predicted & actual).sum() / actual.sum()
    precision = (predicted & actual).sum() / max(1, predicted.sum())
    assert recall >= 0.9 and precision >= 0.9, (flag, precision, recall)
    assert flagged.loc[actual, f"{flag}_score"].notna().all()


def test_clean_pictures_are_not_flagged(flagged: pd.DataFrame) -> None:
    clean = flagged[flagged["truth"] == "clean"]
    assert (clean["flags"] == "").mean() >= 0.9
    assert clean["review_reason"].isna().mean() >= 0.9


def test_review_reason_is_the_first_flag(flagged: pd.DataFrame) -> None:
    for row in flagged.itertuples():
        if row.flags:
            assert row.review_reason == row.flags.split(",")[0]
            assert row.review_reason in FLAG_NAMES


def test_file_without_thumbnail_gets_size_flags_only() -> None:
    manifest = pd.DataFrame(
        {
            "relative_path": ["a.png", "b.png"],
            "content_hash": ["x", "y"],
            "kind": ["image", "image"],
            "width": [30, 2000],
            "height": [20, 300],
        }
    )
    table = quality_flags(manifest, []).set_index("relative_path")
    assert table.loc["a.png", "flags"] == "tiny"
    assert table.loc["b.png", "flags"] == "extreme_aspect"
    assert table.loc["b.png", "extreme_aspect_score"] == pytest.approx(2000 / 300)


def test_outliers_are_far_from_every_cluster() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(8, dtype=np.float32)[:3]
    vectors = np.concatenate([c + 0.05 * rng.normal(size=(40, 8)) for c in centres] + [np.eye(8)[7:8] * 1.0])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = [*np.repeat([0, 1, 2], 40).tolist(), 1]
    score, flag = outlier_scores(vectors, np.array(labels))
    assert flag[-1] and flag.mean() < 0.05
    assert score[-1] > score[:-1].max()


def test_options_validated() -> None:
    assert QualityOptions().tiny_side == 64
    with pytest.raises(ValidationError):
        QualityOptions(blur_threshold=2)
    with pytest.raises(ValidationError):
        QualityOptions(nope=True)
