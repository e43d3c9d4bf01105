"""A randomly initialised, tiny CLIP checkpoint written with ``save_pretrained``: lets tests exercise the real
Hugging Face loading path (model, tokenizer and image processor from one local folder) with no download."""

from __future__ import annotations

import json
import os
from pathlib import Path

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
IMAGE_SIZE = 32
PROJECTION_DIM = 16


def _write_vocab(folder: Path) -> int:
    """A byte-level BPE vocabulary without merges: every word is tokenised into single byte characters."""
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + [BOS, EOS]
    vocab = {token: index for index, token in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return len(vocab)


def make_tiny_clip(path: str | os.PathLike[str]) -> Path:
    """Writes model weights, tokenizer and image processor into ``path`` (created if needed); returns it."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPTextConfig,
        CLIPTokenizer,
        CLIPVisionConfig,
    )

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = _write_vocab(folder)
    bos_id, eos_id = vocab_size - 2, vocab_size - 1
    common = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}
    text = CLIPTextConfig(
        vocab_size=vocab_size,
        max_position_embeddings=77,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        **common,
    )
    vision = CLIPVisionConfig(image_size=IMAGE_SIZE, patch_size=8, **common)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=PROJECTION_DIM)
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(folder)
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    ).save_pretrained(folder)
    return folder
