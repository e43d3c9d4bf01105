"""CLIP through Hugging Face ``transformers``: image features, text features and zero-shot scores."""

from __future__ import annotations

import functools
import os
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


def _as_tensor(output: object) -> torch.Tensor:
    """transformers 5 returns a model output object where 4.x returned the pooled tensor."""
    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=2)
def load_clip(model_id: str, device: str = "cpu") -> LoadedClip:
    """Loads CLIP from a hub id or a local folder made by ``save_pretrained``.

    Offline (``HF_HUB_OFFLINE=1``) or with no network, a hub id resolves only from the local Hugging Face
    cache, so a missing download turns into ``ClipUnavailable`` with instructions instead of a stack trace.
    """
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

    local = os.path.isdir(os.path.expanduser(model_id))
    source = os.path.expanduser(model_id) if local else model_id
    try:
        model = CLIPModel.from_pretrained(source)
        tokenizer = CLIPTokenizer.from_pretrained(source)
        processor = CLIPImageProcessor.from_pretrained(source)
    except Exception as exc:
        raise ClipUnavailable(
            f"cannot load CLIP weights {model_id!r}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}. "
            "Provide them by running once with network access (they are cached under ~/.cache/huggingface), "
            "or download the model elsewhere, copy the folder here and pass it with --clip-model /path/to/folder "
            "(clip_model: in the config); or use --backend cnn, which needs no download."
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


def zero_shot_probabilities(
    image_vectors: np.ndarray, text_vectors: np.ndarray, logit_scale: float
) -> np.ndarray:
    """Softmax over categories of the scaled cosine similarities (vectors already L2-normalised)."""
    logits = logit_scale * image_vectors @ text_vectors.T
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
