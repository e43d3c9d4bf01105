"""``zero_shot_probabilities`` (``torch.softmax`` over the scaled cosine similarities) against SciPy's softmax in
float64 and against the hand-written, max-subtracted softmax it replaced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neural_sorter.models.clip import load_clip, zero_shot_probabilities

special = pytest.importorskip("scipy.special")

CATEGORIES = ["a photo of a bird", "a photo of a fish", "a photo of fruit", "a drawing of a car"]


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _previous(image_vectors: np.ndarray, text_vectors: np.ndarray, logit_scale: float) -> np.ndarray:
    logits = logit_scale * image_vectors @ text_vectors.T
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("logit_scale", [1.0, 14.3, 100.0])  # 100 is CLIP's trained (clamped) maximum
def test_matches_float64_softmax(tiny_clip_dir: Path, logit_scale: float) -> None:
    """Measured: at most 8e-7 from SciPy in float64 (the logits are float32, scaled by up to 100) and 6e-8, one
    float32 ulp, from the previous formula."""
    texts = load_clip(str(tiny_clip_dir)).embed_texts(CATEGORIES)
    images = _unit(np.random.default_rng(0).normal(size=(64, texts.shape[1])))
    probs = zero_shot_probabilities(images, texts, logit_scale)

    assert probs.shape == (64, len(CATEGORIES)) and probs.dtype == np.float32
    reference = special.softmax(logit_scale * images.astype(np.float64) @ texts.astype(np.float64).T, axis=1)
    np.testing.assert_allclose(probs, reference, rtol=0, atol=2e-6)
    np.testing.assert_allclose(probs, _previous(images, texts, logit_scale), rtol=0, atol=2e-7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_large_logits_do_not_overflow() -> None:
    texts = _unit(np.eye(3, 8))
    images = _unit(np.eye(2, 8))
    probs = zero_shot_probabilities(images, texts, 1e4)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs, [[1, 0, 0], [0, 1, 0]], atol=1e-6)


def test_no_images() -> None:
    assert zero_shot_probabilities(np.zeros((0, 8), np.float32), _unit(np.eye(3, 8)), 100.0).shape == (0, 3)
