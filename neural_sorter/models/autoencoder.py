"""A small convolutional autoencoder / VAE trained on the user's own frames.

Lessons from the first design are built in: embeddings are the posterior mean (never a random sample), KL
warm-up is counted in epochs so it ends on small folders too, and the KL weight is modest so the means do
not collapse onto the prior.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from neural_sorter.settings import AutoencoderOptions


@dataclass
class TrainingReport:
    losses: list[float] = field(default_factory=list)
    reconstruction: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    seconds: float = 0.0
    images: int = 0


class ConvAutoencoder(nn.Module):
    """Encoder: strided convs to a latent vector (mean, and log-variance for the VAE); decoder mirrors it."""

    def __init__(self, image_size: int = 64, latent_dim: int = 64, variational: bool = True) -> None:
        super().__init__()
        self.image_size = image_size
        self.latent_dim = latent_dim
        self.variational = variational
        channels = [3, 32, 64, 128, 256]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels, channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
        self.encoder = nn.Sequential(*layers)
        self.feature_side = image_size // 16
        flat = channels[-1] * self.feature_side**2
        self.to_mean = nn.Linear(flat, latent_dim)
        self.to_logvar = nn.Linear(flat, latent_dim) if variational else None
        self.from_latent = nn.Linear(latent_dim, flat)
        rev = channels[::-1]
        decoder: list[nn.Module] = []
        for c_in, c_out in zip(rev, rev[1:-1]):
            decoder += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
        decoder += [nn.ConvTranspose2d(rev[-2], 3, 4, 2, 1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*decoder)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.encoder(x).flatten(1)
        mean = self.to_mean(h)
        logvar = self.to_logvar(h).clamp(-10, 10) if self.to_logvar is not None else None
        return mean, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_latent(z).view(-1, 256, self.feature_side, self.feature_side)
        return self.decoder(h)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        mean, logvar = self.encode(x)
        # Sample only while training a VAE; evaluation and embedding use the mean.
        sampling = logvar is not None and self.training
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if sampling else mean
        return self.decode(z), mean, logvar

    @torch.inference_mode()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean: deterministic, so the same picture always lands in the same place."""
        was_training = self.training
        self.eval()
        mean, _ = self.encode(x)
        self.train(was_training)
        return mean


def images_to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """HWC uint8 arrays to an NCHW float tensor in [0, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)


def train_autoencoder(
    data: torch.Tensor, options: AutoencoderOptions, device: torch.device, seed: int = 0
) -> tuple[ConvAutoencoder, TrainingReport]:
    """Trains on ``data`` (N, 3, S, S in [0, 1]); reconstruction is per-pixel BCE, KL warmed up over epochs.

    The ``simclr`` variant is trained by ``contrastive.train_contrastive`` instead (no decoder at all)."""
    if options.variant == "simclr":
        from neural_sorter.models.contrastive import train_contrastive

        return train_contrastive(data, options, device, seed=seed)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = ConvAutoencoder(options.image_size, options.latent_dim, options.variant == "vae").to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=options.epochs)
    report = TrainingReport(images=len(data))
    started = time.perf_counter()
    batch = max(1, min(options.batch_size, len(data)))
    for epoch in range(options.epochs):
        model.train()
        warm = 1.0 if options.kl_warmup_epochs == 0 else min(1.0, (epoch + 1) / options.kl_warmup_epochs)
        order = torch.randperm(len(data), generator=generator)
        totals = [0.0, 0.0, 0.0]
        for start in range(0, len(data), batch):
            idx = order[start : start + batch]
            if len(idx) < 2 and len(data) >= 2:
                continue  # BatchNorm needs two samples
            x = data[idx].to(device)
            if torch.rand(1, generator=generator).item() < 0.5:
                x = x.flip(3)  # mirror augmentation: cheap and keeps semantics
            recon, mean, logvar = model(x)
            rec = nn.functional.binary_cross_entropy(recon, x, reduction="sum") / len(x)
            if logvar is not None:
                kl = -0.5 * torch.sum(1 + logvar - mean.pow(2) - logvar.exp()) / len(x)
            else:
                kl = torch.zeros((), device=device)
            loss = rec + options.kl_weight * warm * kl
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            totals[0] += loss.item() * len(x)
            totals[1] += rec.item() * len(x)
            totals[2] += kl.item() * len(x)
        scheduler.step()
        seen = max(1, len(data))
        report.losses.append(totals[0] / seen)
        report.reconstruction.append(totals[1] / seen)
        report.kl.append(totals[2] / seen)
        if not math.isfinite(report.losses[-1]):
            raise RuntimeError(f"autoencoder training diverged at epoch {epoch + 1} (loss {report.losses[-1]})")
    report.seconds = time.perf_counter() - started
    return model.eval(), report


def save_checkpoint(model: nn.Module, fileobj) -> None:
    """Weights plus what rebuilds the architecture; ``kind`` tells the contrastive encoder from the autoencoder."""
    from neural_sorter.models.contrastive import ContrastiveEncoder

    if isinstance(model, ContrastiveEncoder):
        shape = {"kind": "simclr", "width": model.width}
    else:
        shape = {"kind": "autoencoder", "variational": model.variational}
    torch.save(
        {"state_dict": model.state_dict(), "image_size": model.image_size, "latent_dim": model.latent_dim} | shape,
        fileobj,
    )


def load_checkpoint(fileobj, device: torch.device) -> nn.Module:
    """The model saved by ``save_checkpoint`` (checkpoints written before ``kind`` existed are autoencoders)."""
    payload = torch.load(fileobj, map_location=device, weights_only=True)
    if payload.get("kind", "autoencoder") == "simclr":
        from neural_sorter.models.contrastive import ContrastiveEncoder

        model: nn.Module = ContrastiveEncoder(payload["image_size"], payload["latent_dim"], payload["width"])
    else:
        model = ConvAutoencoder(payload["image_size"], payload["latent_dim"], payload["variational"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()
