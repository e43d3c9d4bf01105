"""Duplicates: exact, near and similar tiers on real images transformed in the test, through the pipeline's own
inventory, decoding and CNN encoder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance, ImageOps
from pydantic import ValidationError

from neural_sorter.duplicates import (
    DUPLICATE_COLUMNS,
    DuplicateOptions,
    duplicate_summary,
    find_duplicates,
    grey_32,
    hash_distance,
    signature,
    thumbnail_signatures,
    top_k,
)

ORIGINALS = [("birds", 0), ("birds", 1), ("birds", 2), ("fish", 0), ("fish", 1), ("fruit", 0), ("fruit", 1)]


def _flat(path: Path) -> Image.Image:
    with Image.open(path) as image:
        rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _variants(image: Image.Image) -> dict[str, tuple[Image.Image, str, dict]]:
    w, h = image.size
    return {
        "resized": (image.resize((w // 2, h // 2), Image.Resampling.LANCZOS), "JPEG", {"quality": 60}),
        "rotated": (image.transpose(Image.Transpose.ROTATE_90), "PNG", {}),
        "mirrored": (ImageOps.mirror(image), "PNG", {}),
        "cropped": (image.crop((round(w * 0.06), round(h * 0.04), w, h - round(h * 0.04))), "PNG", {}),
        "colour": (ImageEnhance.Brightness(image).enhance(1.12), "PNG", {}),
        "webp": (image, "WEBP", {"quality": 80}),
    }


@pytest.fixture(scope="module")
def transformed(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame, list, dict[str, str]]:
    """(manifest, embeddings, thumbnails, relative path -> original) of 7 tuxpaint pictures from 3 classes,
    each with an exact copy and six transformed copies; the original is the oldest file."""
    from neural_sorter_tests.conftest import TUXPAINT_DIR

    if not any(TUXPAINT_DIR.glob("*/*.png")):
        pytest.skip(f"real-image data set not found at {TUXPAINT_DIR}")
    import torch

    from neural_sorter.decoding.frames import DecodeOptions, decode_manifest
    from neural_sorter.encoders import build_embeddings, cnn_encoder
    from neural_sorter.inventory import build_file_manifest

    folder = tmp_path_factory.mktemp("dups")
    origin: dict[str, str] = {}
    for cls, index in ORIGINALS:
        source = sorted((TUXPAINT_DIR / cls).glob("*.png"))[index]
        name = f"{cls}-{source.stem}"
        shutil.copy2(source, folder / f"{name}.png")
        os.utime(folder / f"{name}.png", ns=(1_000_000_000, 1_000_000_000))
        shutil.copyfile(source, folder / f"{name}-copy.png")
        origin[f"{name}.png"] = origin[f"{name}-copy.png"] = name
        for kind, (picture, fmt, kw) in _variants(_flat(source)).items():
            file = f"{name}-{kind}.{fmt.lower().replace('jpeg', 'jpg')}"
            picture.save(folder / file, format=fmt, **kw)
            origin[file] = name
    manifest = build_file_manifest(folder)
    frames, _ = decode_manifest(manifest, DecodeOptions(workers=2))
    embeddings, _ = build_embeddings(frames, cnn_encoder(torch.device("cpu")))
    first = frames[frames["error"].isna()].drop_duplicates("relative_path")
    thumbnails = list(zip(first["relative_path"], first["thumbnail"]))
    return manifest, embeddings, thumbnails, origin


def test_every_copy_grouped_with_its_original_and_nothing_else(transformed) -> None:
    manifest, embeddings, thumbnails, origin = transformed
    table = find_duplicates(embeddings, manifest, thumbnails, DuplicateOptions())
    assert list(table.columns) == DUPLICATE_COLUMNS
    assert len(table) == len(embeddings)
    assert table["duplicate_group"].notna().all(), table[table["duplicate_group"].isna()]
    by_origin = table.groupby(table["relative_path"].map(origin))["duplicate_group"].nunique()
    assert (by_origin == 1).all(), by_origin  # no copy left out of its group
    by_group = table.groupby("duplicate_group")["relative_path"].agg(lambda p: {origin[x] for x in p})
    assert by_group.map(len).eq(1).all(), by_group  # no two originals in one group
    assert (table["group_size"] == 8).all()


def test_representative_and_tiers(transformed) -> None:
    manifest, embeddings, thumbnails, origin = transformed
    table = find_duplicates(embeddings, manifest, thumbnails).set_index("relative_path")
    facts = manifest.set_index("relative_path")
    pixels = facts["width"] * facts["height"]
    bpp = facts["size"] / pixels
    for _group, members in table.groupby("duplicate_group"):
        rep = members.index[members["is_representative"]]
        assert len(rep) == 1 and (members["representative"] == rep[0]).all()
        largest = pixels[members.index].max()
        assert pixels[rep[0]] == largest
        assert bpp[rep[0]] == bpp[[m for m in members.index if pixels[m] == largest]].max()
    for name in {origin[p] for p in table.index}:
        rep = table.loc[f"{name}.png", "representative"]
        assert table.loc[f"{name}-copy.png", "duplicate_tier"] == (
            "exact" if rep in (f"{name}.png", f"{name}-copy.png") else "near"
        )
        if rep == f"{name}-copy.png" or rep == f"{name}.png":
            assert rep == f"{name}.png"  # same bytes: the older one
            assert table.loc[f"{name}-copy.png", "similarity"] == 1.0
        assert table.loc[f"{name}-rotated.png", "duplicate_tier"] == "near"
        assert table.loc[rep, "duplicate_tier"] == "near"  # its group holds other pictures too
    summary = duplicate_summary(table.reset_index())
    assert summary["groups"] == len(ORIGINALS) and summary["files_in_groups"] == len(table)
    assert summary["exact_copies"] + summary["near_copies"] == 7 * len(ORIGINALS)


def test_without_hash_rotations_need_the_hash(transformed) -> None:
    """The embedding alone misses copies turned by 90 degrees; the hash is what brings them in."""
    manifest, embeddings, _thumbnails, origin = transformed
    without = find_duplicates(embeddings, manifest, None, DuplicateOptions(use_hash=False)).set_index("relative_path")
    rotated = [p for p in without.index if "-rotated" in p]
    joined = [
        p for p in rotated if without.loc[p, "duplicate_group"] == without.loc[f"{origin[p]}.png", "duplicate_group"]
    ]
    assert len(joined) < len(rotated)


def test_only_exact_copies_at_threshold_one(transformed) -> None:
    manifest, embeddings, thumbnails, _origin = transformed
    table = find_duplicates(embeddings, manifest, thumbnails, DuplicateOptions(near_threshold=1.0, use_hash=False))
    grouped = table[table["duplicate_group"].notna()]
    assert set(grouped["duplicate_tier"]) == {"exact"}
    assert grouped.groupby("duplicate_group")["content_hash"].nunique().eq(1).all()
    assert (grouped["group_size"] == 2).all() and len(grouped) == 2 * len(ORIGINALS)
    ungrouped = table[table["duplicate_group"].isna()]
    assert ungrouped["is_representative"].all() and (ungrouped["group_size"] == 1).all()
    # merely similar: most transformed copies' nearest other picture is still very close (by the embedding alone:
    # 33 of 42 with EfficientNet-Lite1, the default since issue 12, 34 of 42 with Lite0; the misses are the
    # 90-degree turns and some half-size JPEGs, which the perceptual hash catches when it is on)
    assert (ungrouped["duplicate_tier"] == "similar").mean() >= 0.75


def test_representative_is_largest_then_least_compressed_then_oldest() -> None:
    vector = np.ones(4, dtype=np.float32) / 2
    paths = ["small.jpg", "big-compressed.jpg", "big-raw-new.png", "big-raw-old.png"]
    embeddings = pd.DataFrame({"relative_path": paths, "content_hash": ["a", "b", "c", "d"], "vector": [vector] * 4})
    manifest = pd.DataFrame(
        {
            "relative_path": paths,
            "width": [100, 400, 400, 400],
            "height": [100, 300, 300, 300],
            "size": [5_000, 30_000, 360_000, 360_000],
            "mtime_ns": [1, 1, 9, 5],
        }
    )
    table = find_duplicates(embeddings, manifest, None).set_index("relative_path")
    assert table["is_representative"].sum() == 1
    assert table.loc["big-raw-old.png", "is_representative"]
    assert set(table["representative"]) == {"big-raw-old.png"}
    assert table["duplicate_group"].nunique() == 1 and (table["group_size"] == 4).all()


def test_hash_sees_through_rotations_and_mirrors(tuxpaint_dir: Path) -> None:
    from neural_sorter.decoding.images import encode_jpeg

    picture = _flat(sorted((tuxpaint_dir / "birds").glob("*.png"))[3])
    other = _flat(sorted((tuxpaint_dir / "birds").glob("*.png"))[4])
    turned = [picture.transpose(t) for t in Image.Transpose] + [picture, picture.resize((90, 70))]
    sig = thumbnail_signatures([(str(i), encode_jpeg(p)) for i, p in enumerate([*turned, other])])
    hashes = np.stack([sig[str(i)][0] for i in range(len(turned) + 1)])
    base = np.repeat(hashes[-3:-2], len(hashes), axis=0)
    distance = hash_distance(base, hashes)
    assert distance[:-1].max() <= 6, distance
    assert distance[-1] >= 16, distance
    # the descriptor is exactly invariant to the eight rotations and mirrors of the 32x32 grid
    grey = grey_32(encode_jpeg(picture))
    descs = [signature(op)[1] for op in (grey, np.rot90(grey), grey[:, ::-1], grey.T, np.rot90(grey, 3))]
    assert all(np.allclose(d, descs[0], atol=1e-5) for d in descs)


def test_top_k_matches_brute_force_in_small_chunks() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index, value = top_k(x, 5, memory_floats=1000)  # 3 rows per chunk
    full = x @ x.T
    np.fill_diagonal(full, -np.inf)
    expected = np.sort(full, axis=1)[:, ::-1][:, :5]
    assert np.allclose(np.sort(value, axis=1)[:, ::-1], expected, atol=1e-5)
    assert not (index == np.arange(300)[:, None]).any()


def test_options_declared_once_with_bounds() -> None:
    options = DuplicateOptions()
    assert options.duplicates == "separate" and options.review is False and 0.5 < options.near_threshold < 1
    for field in DuplicateOptions.model_fields.values():
        assert field.description
    with pytest.raises(ValidationError):
        DuplicateOptions(duplicates="delete")
    with pytest.raises(ValidationError):
        DuplicateOptions(near_threshold=1.5)
    with pytest.raises(ValidationError):
        DuplicateOptions(unknown=1)


def test_empty_and_single() -> None:
    empty = pd.DataFrame(columns=["relative_path", "content_hash", "vector"])
    assert list(find_duplicates(empty, pd.DataFrame(columns=["relative_path"]), None).columns) == DUPLICATE_COLUMNS
    one = pd.DataFrame({"relative_path": ["a.png"], "content_hash": ["h"], "vector": [np.ones(3, np.float32)]})
    table = find_duplicates(
        one, pd.DataFrame({"relative_path": ["a.png"], "width": [1], "height": [1], "size": [1], "mtime_ns": [1]}), None
    )
    assert table["duplicate_group"].isna().all() and table["is_representative"].all()
