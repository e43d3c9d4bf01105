"""Cluster names from the ImageNet labels members share (offline CNN head), on real photos."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from neural_sorter.naming import imagenet_names, name_by_labels

skimage_data = pytest.importorskip("skimage.data")


def views(image: np.ndarray, count: int = 6) -> list[bytes]:
    """Crops and mirror images of one real photo, as stored thumbnails (JPEG)."""
    picture = Image.fromarray(image).convert("RGB")
    out = []
    for n in range(count):
        w, h = picture.size
        margin = n * min(w, h) // 24
        view = picture.crop((margin, margin, w - margin, h - margin))
        if n % 2:
            view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        buffer = io.BytesIO()
        view.resize((256, 256 * view.height // view.width)).save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def test_clusters_of_real_photos_are_named_after_their_shared_label():
    thumbs = {f"cat/{n}.jpg": t for n, t in enumerate(views(skimage_data.chelsea()))}
    thumbs |= {f"coffee/{n}.jpg": t for n, t in enumerate(views(skimage_data.coffee()))}
    paths = list(thumbs)
    table = pd.DataFrame(
        {
            "relative_path": paths,
            "cluster_id": [0 if p.startswith("cat/") else 1 for p in paths],
            "cluster_name": ["cluster-00" if p.startswith("cat/") else "cluster-01" for p in paths],
            "cluster_category": None,
            "category_confidence": np.nan,
            "distance_to_centroid": np.linspace(0, 1, len(paths)),
        }
    )
    named, looked = name_by_labels(table, lambda wanted: {p: thumbs[p] for p in wanted}, threshold=0.1)
    cat = set(named.loc[named["cluster_id"] == 0, "cluster_name"])
    coffee = set(named.loc[named["cluster_id"] == 1, "cluster_name"])
    assert len(cat) == len(coffee) == 1 and cat != coffee, looked
    cat_label = named.loc[named["cluster_id"] == 0, "cluster_category"].iloc[0]
    assert imagenet_names().index(cat_label) in range(281, 286), looked  # ImageNet's domestic cats
    assert coffee.pop() in {"espresso", "cup", "coffee-mug", "eggnog", "cappuccino"}, looked


def test_below_the_threshold_names_stay_and_threshold_one_turns_labels_off():
    thumbs = {f"cat/{n}.jpg": t for n, t in enumerate(views(skimage_data.chelsea(), 3))}
    table = pd.DataFrame(
        {
            "relative_path": list(thumbs),
            "cluster_id": 0,
            "cluster_name": "cluster-00",
            "cluster_category": None,
            "category_confidence": np.nan,
            "distance_to_centroid": 0.0,
        }
    )
    named, _ = name_by_labels(table, lambda wanted: {p: thumbs[p] for p in wanted}, threshold=1.0)
    assert set(named["cluster_name"]) == {"cluster-00"}
    named, looked = name_by_labels(table, lambda wanted: {p: thumbs[p] for p in wanted}, threshold=0.999)
    assert set(named["cluster_name"]) == {"cluster-00"} and looked["cluster-00"][1] < 0.999
