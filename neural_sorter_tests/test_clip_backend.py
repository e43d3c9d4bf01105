"""The CLIP backend against a tiny, randomly initialised checkpoint saved locally (no download)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from neural_sorter import encoders
from neural_sorter.decoding.frames import DecodeOptions, decode_manifest
from neural_sorter.encoders import (
    BackendUnavailable,
    build_embeddings,
    clip_encoder,
    embed_thumbnails,
    encoder_for,
    resolve_backend,
)
from neural_sorter.inventory import build_file_manifest
from neural_sorter.models import clip as clip_module
from neural_sorter.models.clip import ClipUnavailable, load_clip
from neural_sorter_tests.tiny_clip import IMAGE_SIZE, PROJECTION_DIM

CPU = torch.device("cpu")
MISSING = "no-such-org/no-such-model"
CATEGORIES = ["a photo of a bird", "a photo of a fish", "a photo of fruit"]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub access, and a fresh failure cache so earlier tests cannot answer for this one."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(clip_module, "_FAILURES", {})


def test_load_clip_from_local_folder(tiny_clip_dir: Path) -> None:
    clip = load_clip(str(tiny_clip_dir))

    assert clip.image_size == IMAGE_SIZE
    assert clip.revision == "local"
    assert clip.logit_scale > 0
    pixels = clip.preprocess(Image.new("RGB", (50, 40), (200, 10, 10)))
    assert pixels.shape == (3, IMAGE_SIZE, IMAGE_SIZE) and pixels.dtype == np.float32

    texts = clip.embed_texts(CATEGORIES)
    assert texts.shape == (3, PROJECTION_DIM)
    assert texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(texts[0], texts[1]) and not np.allclose(texts[1], texts[2])


def test_text_embedding_does_not_depend_on_padding(tiny_clip_dir: Path) -> None:
    clip = load_clip(str(tiny_clip_dir))
    alone = clip.embed_texts(["bird"])[0]
    padded = clip.embed_texts(["bird", "a much longer description of a tropical fish"])[0]
    np.testing.assert_allclose(alone, padded, atol=1e-5)


def test_missing_model_offline_raises_with_instructions(offline: None) -> None:
    with pytest.raises(ClipUnavailable) as info:
        load_clip(MISSING)
    message = str(info.value)
    assert MISSING in message
    assert "--clip-model" in message
    assert "--backend cnn" in message

    assert (MISSING, "cpu") in clip_module._FAILURES
    with pytest.raises(ClipUnavailable) as again:
        load_clip(MISSING)
    assert again.value is info.value  # the failure is remembered, not retried


def test_missing_hub_model_offline_is_decided_without_importing_transformers(tmp_path: Path) -> None:
    """bench/peers.py found the default ``auto`` backend spending 4-10 s of every cold sort in ``clip_model`` on
    an offline machine: transformers was imported only to learn that the weights are not there."""
    import subprocess
    import sys

    script = (
        "import sys; from neural_sorter.models.clip import ClipUnavailable, load_clip\n"
        "try:\n    load_clip(sys.argv[1])\nexcept ClipUnavailable as exc:\n    print(exc)\n"
        "print('transformers' in sys.modules)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([sys.executable, "-c", script, MISSING], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    message, imported = done.stdout.strip().splitlines()
    assert MISSING in message and "not in the local Hugging Face cache" in message and "--backend cnn" in message
    assert imported == "False"


def test_encoder_for_missing_clip_is_backend_unavailable(offline: None) -> None:
    with pytest.raises(BackendUnavailable, match="--backend cnn"):
        encoder_for("clip", MISSING, CPU, None)


def test_resolve_backend_auto_prefers_loadable_clip(tiny_clip_dir: Path) -> None:
    assert resolve_backend("auto", str(tiny_clip_dir), CPU) == ("clip", [])


def test_resolve_backend_explicit_choice_is_kept(offline: None) -> None:
    assert resolve_backend("cnn", MISSING, CPU) == ("cnn", [])
    assert clip_module._FAILURES == {}  # nothing was even tried


def test_resolve_backend_auto_falls_back_to_cnn_offline(offline: None) -> None:
    backend, notes = resolve_backend("auto", MISSING, CPU)
    assert backend == "cnn"
    assert len(notes) == 1
    assert notes[0].startswith("clip unavailable: ")
    assert MISSING in notes[0] and "--clip-model" in notes[0]


@pytest.fixture
def decoded(tuxpaint_sample, make_video) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest, decoded_frames) for six real images in three class folders plus one synthetic video."""
    root = tuxpaint_sample(2)
    (root / "videos").mkdir()
    make_video("images/videos/intro.mp4")  # same tmp_path as the sample
    manifest = build_file_manifest(root)
    frames, stats = decode_manifest(manifest, DecodeOptions(thumbnail_size=64, frames_per_video=3, workers=2))
    assert stats == {"reused": 0, "decoded": 7, "failed": 0}
    return manifest, frames


def test_build_embeddings_with_clip(tiny_clip_dir: Path, decoded) -> None:
    manifest, frames = decoded
    encoder = clip_encoder(str(tiny_clip_dir), CPU)
    assert encoder.backend == "clip" and encoder.clip is not None
    category_vectors = encoder.clip.embed_texts(CATEGORIES)

    table, stats = build_embeddings(frames, encoder, CATEGORIES, category_vectors, batch_size=4)

    assert list(table.columns) == encoders.EMBEDDING_COLUMNS
    assert sorted(table["relative_path"]) == sorted(manifest["relative_path"])  # one row per file
    assert table["relative_path"].is_unique
    assert (table["backend"] == "clip").all()
    assert (table["model_id"] == f"{tiny_clip_dir}@local").all()
    assert not table["reused"].any()
    assert stats["files"] == 7 and stats["embedded"] == 7 and stats["frames_embedded"] == 9
    hashes = dict(zip(manifest["relative_path"], manifest["content_hash"], strict=True))
    assert (table["content_hash"] == table["relative_path"].map(hashes)).all()

    for row in table.itertuples():
        assert row.vector.dtype == np.float32 and row.vector.shape == (PROJECTION_DIM,)
        assert np.linalg.norm(row.vector) == pytest.approx(1.0, abs=1e-5)
        probs = np.asarray(row.category_probs)
        assert probs.shape == (3,) and (probs >= 0).all()
        assert probs.sum() == pytest.approx(1.0, abs=1e-5)
        assert row.top_category in CATEGORIES
        assert row.top_category == CATEGORIES[int(probs.argmax())]
        assert row.top_probability == pytest.approx(float(probs.max()))
        assert row.frames == (3 if row.kind == "video" else 1)

    # An image's vector is its thumbnail's embedding; a video's is the normalised mean of its frames'.
    by_path = table.set_index("relative_path")
    image_path = next(p for p in by_path.index if p.endswith(".png"))
    thumb = frames.loc[frames["relative_path"] == image_path, "thumbnail"].iloc[0]
    image_vector = by_path.loc[image_path, "vector"]
    np.testing.assert_allclose(image_vector, embed_thumbnails([thumb], encoder)[0], atol=1e-5)
    video_thumbs = list(frames.loc[frames["relative_path"] == "videos/intro.mp4", "thumbnail"])
    mean = embed_thumbnails(video_thumbs, encoder).mean(axis=0)
    video_vector = by_path.loc["videos/intro.mp4", "vector"]
    np.testing.assert_allclose(video_vector, mean / np.linalg.norm(mean), atol=1e-5)
    assert not np.allclose(image_vector, video_vector)  # a cut-out and frames of noise differ

    again, stats2 = build_embeddings(frames, encoder, CATEGORIES, category_vectors, reuse=table)
    assert stats2["embedded"] == 0 and stats2["frames_embedded"] == 0
    assert stats2["reused"] == 7
    assert again["reused"].all()
    assert list(again["relative_path"]) == list(table["relative_path"])
    for before, after in zip(table.itertuples(), again.itertuples(), strict=True):
        np.testing.assert_array_equal(before.vector, after.vector)
        np.testing.assert_allclose(before.category_probs, after.category_probs, atol=1e-6)
        assert before.top_category == after.top_category


def test_reuse_ignores_vectors_of_another_model(tiny_clip_dir: Path, decoded) -> None:
    _, frames = decoded
    encoder = clip_encoder(str(tiny_clip_dir), CPU)
    table, _ = build_embeddings(frames, encoder)
    assert table["category_probs"].isna().all() and table["top_category"].isna().all()  # no categories given

    stale = table.assign(model_id="some-other-model@abc")
    _, stats = build_embeddings(frames, encoder, reuse=stale)
    assert stats["embedded"] == 7 and stats["reused"] == 0


def test_int8_precision_is_close_to_fp32_and_never_reuses_fp32_vectors(tiny_clip_dir: Path, decoded) -> None:
    _, frames = decoded
    fp32 = clip_encoder(str(tiny_clip_dir), CPU)
    int8 = encoder_for("clip", str(tiny_clip_dir), CPU, None, precision="int8")
    assert int8.model_id == fp32.model_id + "+int8"
    reference, _ = build_embeddings(frames, fp32)
    quantized, stats = build_embeddings(frames, int8, reuse=reference)
    assert stats["reused"] == 0 and stats["embedded"] == 7  # fp32 vectors are another model's
    a, b = encoders.vectors_of(reference), encoders.vectors_of(quantized)
    assert not np.array_equal(a, b)  # the quantized model really ran
    assert (a * b).sum(axis=1).min() > 0.95  # a random tiny model; the real ViT-B/32 figure is in bench/


def test_unknown_precision_is_refused(tiny_clip_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        encoder_for("clip", str(tiny_clip_dir), CPU, None, precision="fp8")


def test_decode_and_embed_matches_the_two_stages(tiny_clip_dir: Path, decoded) -> None:
    """The streamed path (decoding overlapped with the model) gives the same rows as decode_manifest then
    build_embeddings, and honours both kinds of reuse."""
    manifest, frames = decoded
    encoder = clip_encoder(str(tiny_clip_dir), CPU)
    options = DecodeOptions(thumbnail_size=64, frames_per_video=3, workers=2)
    two_stage, _ = build_embeddings(frames, encoder, batch_size=4)

    streamed_frames, decode_stats, streamed, stats = encoders.decode_and_embed(manifest, encoder, options, batch_size=4)
    assert decode_stats == {"reused": 0, "decoded": 7, "failed": 0}
    pd.testing.assert_frame_equal(streamed_frames.drop(columns="thumbnail"), frames.drop(columns="thumbnail"))
    assert list(streamed["relative_path"]) == list(two_stage["relative_path"])
    np.testing.assert_allclose(encoders.vectors_of(streamed), encoders.vectors_of(two_stage), atol=1e-5)
    assert stats["embedded"] == 7

    _, decode_stats, again, stats = encoders.decode_and_embed(
        manifest, encoder, options, reuse_frames=streamed_frames, reuse=streamed
    )
    assert decode_stats["reused"] == 7 and stats["embedded"] == 0 and again["reused"].all()
