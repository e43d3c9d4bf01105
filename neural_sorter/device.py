"""Picks the fastest torch device present; nothing here ever requires a GPU."""

from __future__ import annotations

import os

import torch

from neural_sorter.entry import match_torch

# One pool size for the whole process (neural_sorter.entry): torch's threads match the BLAS/OpenMP pools.
match_torch(torch)


def pick_device(preferred: str | None = None) -> torch.device:
    """``NEURAL_SORTER_DEVICE`` or ``preferred`` wins; else CUDA, then Apple MPS, then CPU."""
    choice = preferred or os.environ.get("NEURAL_SORTER_DEVICE")
    if choice:
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
