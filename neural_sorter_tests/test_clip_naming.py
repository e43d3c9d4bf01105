"""CLIP names without categories (issue 12): clusters are named by CLIP's zero-shot over a built-in vocabulary
(the ImageNet classes plus scene words), with the score stored and ``cluster-NN`` when nothing reaches the
threshold; the vocabulary's text vectors are computed once per model and cached in the store.

The tiny CLIP the tests save locally has random weights, so these tests check the mechanism (the words come
from the vocabulary through the model's own text tower, the score is the one stored, the cache holds), not
the quality of the names: that needs real weights, which the tests cannot download."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neural_sorter.models.clip import load_clip, zero_shot_probabilities
from neural_sorter.naming import (
    VOCABULARY_FOLDER,
    clip_vocabulary,
    imagenet_names,
    label_slug,
    name_by_vocabulary,
    vocabulary_loader,
)
from neural_sorter.store import Store
from neural_sorter_tests.viewer_store import copy_images, tuxpaint_available

CLI = str(Path(sys.executable).with_name("neural-sorter"))


def test_vocabulary_is_imagenet_plus_the_scene_words_it_lacks():
    words = clip_vocabulary()
    assert words[:1000] == imagenet_names() and "beach" in words and "screenshot" in words
    scene = words[1000:]
    assert scene and len(set(scene)) == len(scene) and not set(scene) & set(words[:1000])


def test_clusters_take_the_word_clip_puts_first_and_the_score_is_stored(tiny_clip_dir: Path, tmp_path: Path):
    store = Store(tmp_path / "store")
    vocabulary = vocabulary_loader(store, str(tiny_clip_dir), "cpu", "a photo of {}")
    words, text, scale = vocabulary("tiny@local")
    clip = load_clip(str(tiny_clip_dir))
    # the vectors are the model's own text tower on the prompts (not stored constants)
    expected = clip.embed_texts(["a photo of goldfish", "a photo of beach"])
    assert np.allclose(text[[words.index("goldfish"), words.index("beach")]], expected, atol=1e-5)
    assert scale == pytest.approx(clip.logit_scale)

    # Pictures whose CLIP vectors are exactly those of "goldfish" and "beach" (what a perfect CLIP would give).
    vectors = {f"fish/{n}.png": text[words.index("goldfish")] for n in range(3)}
    vectors |= {f"sea/{n}.png": text[words.index("beach")] for n in range(2)}
    table = pd.DataFrame(
        {
            "relative_path": list(vectors),
            "cluster_id": [0, 0, 0, 1, 1],
            "cluster_name": ["cluster-00"] * 3 + ["cluster-01"] * 2,
            "cluster_category": None,
            "category_confidence": np.nan,
            "distance_to_centroid": 0.0,
        }
    )
    named, looked = name_by_vocabulary(table, vectors, (words, text, scale), threshold=0.0)
    assert list(named["cluster_name"]) == ["goldfish"] * 3 + ["beach"] * 2, looked
    assert list(named["cluster_category"]) == ["goldfish"] * 3 + ["beach"] * 2
    fish_score = zero_shot_probabilities(text[[words.index("goldfish")]], text, scale)[0].max()
    assert named["category_confidence"].iloc[0] == pytest.approx(fish_score, rel=1e-5)
    assert looked["cluster-00"] == ("goldfish", round(float(fish_score), 3))

    # Nothing shared enough: the clusters keep cluster-NN (the cnn naming's rule), and 1 turns naming off.
    above = float(named["category_confidence"].max()) + 1e-6
    kept, _ = name_by_vocabulary(table, vectors, (words, text, scale), threshold=above)
    assert list(kept["cluster_name"]) == list(table["cluster_name"]) and kept["cluster_category"].isna().all()
    off, looked_off = name_by_vocabulary(table, vectors, (words, text, scale), threshold=1.0)
    assert looked_off == {} and list(off["cluster_name"]) == list(table["cluster_name"])


def test_vocabulary_vectors_are_computed_once_per_model(tiny_clip_dir: Path, tmp_path: Path, monkeypatch):
    from neural_sorter.models import clip as clip_module

    store = Store(tmp_path / "store")
    calls = []
    real = clip_module.load_clip
    monkeypatch.setattr(clip_module, "load_clip", lambda *a, **k: calls.append(a) or real(*a, **k))
    vocabulary = vocabulary_loader(store, str(tiny_clip_dir), "cpu", "a photo of {}")
    first = vocabulary("tiny@local")
    assert len(calls) == 1
    cached = list(store.model_path(VOCABULARY_FOLDER).iterdir())
    assert len(cached) == 1 and cached[0].name.startswith("tiny-local-") and cached[0].suffix == ".npz"
    again = vocabulary_loader(store, str(tiny_clip_dir), "cpu", "a photo of {}")("tiny@local")  # a later run
    assert len(calls) == 1 and np.array_equal(first[1], again[1]) and first[2] == again[2]
    vocabulary("tiny@local+int8")  # another model id: its own vectors
    assert len(calls) == 2 and len(list(store.model_path(VOCABULARY_FOLDER).iterdir())) == 2


@pytest.mark.slow
def test_cli_sort_with_clip_and_no_categories_names_clusters_from_the_vocabulary(tiny_clip_dir: Path, tmp_path):
    if not tuxpaint_available():
        pytest.skip("real-image data set ../shared/datasets/tuxpaint8 not found")
    src = copy_images(tmp_path / "photos", 9, classes=("birds", "fish", "fruit"))
    home, out = tmp_path / "home", tmp_path / "out"
    config = tmp_path / "sorter.yaml"
    config.write_text("label_threshold: 0.0\n")  # the random tiny CLIP's scores are low; real ones are not
    env = {**os.environ, "NEURAL_SORTER_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    for name in ("DAGSTER_HOME", "NEURAL_SORTER_STORE", "NEURAL_SORTER_CONFIG"):
        env.pop(name, None)
    command = [CLI, "--config", str(config), "sort", str(src), "--out", str(out), "--backend", "clip"]
    command += ["--clip-model", str(tiny_clip_dir), "--k", "2", "--projection", "pca", "--json"]
    command += ["--duplicates", "keep"]  # the random tiny CLIP sees most pictures as near copies of each other
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["backend"] == "clip"
    clusters = Store(home / "store").read("clusters", summary["partition"])
    named = clusters[clusters["cluster_id"] >= 0]
    for name, rows in named.groupby("cluster_name"):
        label = rows["cluster_category"].iloc[0]
        assert label in clip_vocabulary(), label
        assert name == label_slug(label) or name.startswith(f"{label_slug(label)}-"), (name, label)
        assert 0 < rows["category_confidence"].iloc[0] <= 1
    assert set(summary["clusters"]) == set(named["cluster_name"])
    assert {p.name for p in (out / "photos").iterdir()} == set(named["cluster_name"])  # the folders on disk
    assert len(list((home / "store" / "models" / VOCABULARY_FOLDER).glob("*.npz"))) == 1
    # the stored score is CLIP's zero-shot of the stored image vectors (not the cnn head's ImageNet label)
    embeddings = Store(home / "store").read("embeddings", summary["partition"]).set_index("relative_path")
    model_id = str(embeddings["model_id"].iloc[0])
    words, text, scale = vocabulary_loader(Store(home / "store"), "unused: cached", "cpu", "a photo of {}")(model_id)
    for _, rows in named.groupby("cluster_id"):
        points = rows[rows["is_representative"].fillna(True).astype(bool)]  # clustering saw one point per copy group
        members = points.sort_values("distance_to_centroid")["relative_path"].head(12)
        images = np.stack([np.asarray(embeddings.at[p, "vector"], np.float32) for p in members])
        mean = zero_shot_probabilities(images, text, scale).mean(axis=0)
        assert words[int(mean.argmax())] == rows["cluster_category"].iloc[0]
        assert rows["category_confidence"].iloc[0] == pytest.approx(float(mean.max()), rel=1e-4)
