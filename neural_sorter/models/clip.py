"""CLIP through Hugging Face ``transformers``: image features, text features and zero-shot scores."""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from neural_sorter.models.preprocess import to_chw_array


class ClipUnavailable(RuntimeError):
    """CLIP weights could not be loaded; the message tells the user how to provide them."""


@dataclass
class LoadedClip:
    model: torch.nn.Module
    tokenizer: object
    model_id: str
    revision: str
    image_size: int
    mean: np.ndarray
    std: np.ndarray
    device: str

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return to_chw_array(image, self.image_size, self.mean, self.std)

    @torch.inference_mode()
    def embed_images(self, batch: torch.Tensor) -> torch.Tensor:
        return _as_tensor(self.model.get_image_features(pixel_values=batch))

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(self.device)
        features = _as_tensor(self.model.get_text_features(**tokens))
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())


class VisionFeatures(torch.nn.Module):
    """CLIP's image tower and projection (``get_image_features``) as a module with one input and one output:
    what is exported for other runtimes."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.vision_model = model.vision_model
        self.visual_projection = model.visual_projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual_projection(self.vision_model(pixel_values=x).pooler_output)


def _as_tensor(output: object) -> torch.Tensor:
    """transformers 5 returns a model output object where 4.x returned the pooled tensor."""
    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output  # type: ignore[attr-defined]


_FAILURES: dict[tuple[str, str], ClipUnavailable] = {}


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the Hugging Face endpoint: without it, an offline machine spends about a minute
    in the hub client's retries before giving up on every run."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    from urllib.parse import urlparse

    from huggingface_hub import constants

    endpoint = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _in_hub_cache(model_id: str) -> bool:
    """Whether the Hugging Face cache holds this hub id's config (a cheap file lookup, no transformers)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except Exception:  # an id the hub client rejects: let from_pretrained give its own reason
        return True


def _unavailable(model_id: str, why: str) -> str:
    return (
        f"cannot load CLIP weights {model_id!r}: {why}. "
        "Provide them by running once with network access (they are cached under ~/.cache/huggingface), "
        "or download the model elsewhere, copy the folder here and pass it with --clip-model /path/to/folder "
        "(clip_model: in the config); or use --backend cnn, which needs no download."
    )


def load_clip(model_id: str, device: str = "cpu") -> LoadedClip:
    """Loads CLIP from a hub id or a local folder made by ``save_pretrained``, once per process.

    A hub id is looked up in the local Hugging Face cache first and downloaded only when the hub answers,
    so a missing download turns into ``ClipUnavailable`` with instructions instead of a minute of retries.
    """
    key = (model_id, device)
    if key in _FAILURES:
        raise _FAILURES[key]
    try:
        return _load_clip_cached(model_id, device)
    except ClipUnavailable as exc:
        _FAILURES[key] = exc
        raise


@functools.lru_cache(maxsize=2)
def _load_clip_cached(model_id: str, device: str) -> LoadedClip:
    local = os.path.isdir(os.path.expanduser(model_id))
    source = os.path.expanduser(model_id) if local else model_id
    if not local and not _in_hub_cache(model_id) and not hub_reachable():
        # Decided before transformers is imported: on an offline machine without the weights,
        # the default backend ``auto`` spent seconds importing it only to fall back to the cnn.
        raise ClipUnavailable(
            _unavailable(model_id, "not in the local Hugging Face cache, and the hub is not reachable")
        )

    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

    def load(local_only: bool):
        return (
            CLIPModel.from_pretrained(source, local_files_only=local_only),
            CLIPTokenizer.from_pretrained(source, local_files_only=local_only),
            CLIPImageProcessor.from_pretrained(source, local_files_only=local_only),
        )

    try:
        try:
            model, tokenizer, processor = load(local_only=True)
        except OSError:
            if local or not hub_reachable():
                raise
            model, tokenizer, processor = load(local_only=False)
    except Exception as exc:
        raise ClipUnavailable(
            _unavailable(model_id, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
        ) from None
    size = processor.crop_size["height"] if isinstance(processor.crop_size, dict) else int(processor.crop_size)
    revision = getattr(model.config, "_commit_hash", None) or ("local" if local else "unknown")
    return LoadedClip(
        model=model.eval().to(device),
        tokenizer=tokenizer,
        model_id=model_id,
        revision=str(revision),
        image_size=int(size),
        mean=np.asarray(processor.image_mean, dtype=np.float32),
        std=np.asarray(processor.image_std, dtype=np.float32),
        device=device,
    )


def zero_shot_probabilities(image_vectors: np.ndarray, text_vectors: np.ndarray, logit_scale: float) -> np.ndarray:
    """Softmax over categories of the scaled cosine similarities (vectors already L2-normalised)."""
    logits = torch.from_numpy(np.asarray(logit_scale * image_vectors @ text_vectors.T))
    return torch.softmax(logits, dim=1).numpy().astype(np.float32, copy=False)
