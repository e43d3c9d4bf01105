"""A small conv encoder trained with a SimCLR-style contrastive objective on the user's own frames.

Why: an autoencoder trained on a few hundred pictures spends its capacity on reproducing colour and layout,
which is what raw pixels already give (bench/README.md: VAE NMI 0.215 vs pixels 0.199 on tuxpaint8). A
contrastive objective instead asks two strongly augmented views of the same picture (different crop, mirror,
colour, blur) to land close together and away from every other picture in the batch, so what survives is
what the augmentations do not change: shape and texture more than position and exact hue. It still trains
only on the folder itself, from scratch, on CPU.

The augmentations are written in torch (no torchvision dependency) and draw every random number from one
``torch.Generator``, so training is reproducible under a seed.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn
from torch.nn import functional as F

# Grayscale weights (ITU-R 601 luma), as torchvision's rgb_to_grayscale.
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def random_resized_crop(
    x: torch.Tensor, generator: torch.Generator, scale: tuple[float, float] = (0.25, 1.0), flip: bool = True
) -> torch.Tensor:
    """A random crop of ``scale`` of the area (aspect 3/4..4/3) resized back to the input side, mirrored half
    the time; one affine grid for the whole batch, so it costs one ``grid_sample``."""
    n = len(x)
    area = _uniform(n, *scale, generator)
    log_ratio = _uniform(n, math.log(3 / 4), math.log(4 / 3), generator)
    width = torch.sqrt(area * torch.exp(log_ratio))
    height = torch.sqrt(area / torch.exp(log_ratio))
    # A side longer than the picture is cut to the picture and the other side keeps the area (so a full-area
    # draw is the whole picture, whatever the aspect drawn).
    width, height = (
        torch.where(width > 1, 1.0, torch.where(height > 1, area, width)),
        torch.where(height > 1, 1.0, torch.where(width > 1, area, height)),
    )
    # Centres in normalised [-1, 1] coordinates such that the crop stays inside the picture.
    cx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - width)
    cy = (torch.rand(n, generator=generator) * 2 - 1) * (1 - height)
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = width * sign
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = height
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (x * _LUMA.to(x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def colour_jitter(
    x: torch.Tensor,
    generator: torch.Generator,
    strength: float = 0.4,
    hue: float = 0.1,
    p: float = 0.8,
) -> torch.Tensor:
    """Brightness, contrast, saturation and hue changes (applied to a fraction ``p`` of the batch).

    Hue is a rotation of the chroma plane in YIQ space: cheap, batched, and close to an HSV hue shift."""
    n = len(x)
    apply = (torch.rand(n, generator=generator) < p).float().view(n, 1, 1, 1).to(x.device)

    def factor(amount: float) -> torch.Tensor:
        return _uniform(n, 1 - amount, 1 + amount, generator).view(n, 1, 1, 1).to(x.device)

    brightness, contrast, saturation = factor(strength), factor(strength), factor(strength)
    angle = (_uniform(n, -hue, hue, generator) * 2 * math.pi).to(x.device)
    y = x * brightness
    y = (y - _gray(y).mean(dim=(2, 3), keepdim=True)) * contrast + _gray(y).mean(dim=(2, 3), keepdim=True)
    gray = _gray(y)
    y = (y - gray) * saturation + gray
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=x.device)
    yiq = torch.einsum("ij,njhw->nihw", to_yiq, y)
    cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
    y = torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_yiq), yiq).clamp(0, 1)
    return apply * y + (1 - apply) * x


def random_grayscale(x: torch.Tensor, generator: torch.Generator, p: float = 0.2) -> torch.Tensor:
    apply = (torch.rand(len(x), generator=generator) < p).float().view(-1, 1, 1, 1).to(x.device)
    return apply * _gray(x).expand_as(x) + (1 - apply) * x


def random_blur(
    x: torch.Tensor, generator: torch.Generator, p: float = 0.5, sigma: tuple[float, float] = (0.1, 2.0)
) -> torch.Tensor:
    """Gaussian blur with a per-picture sigma, as one grouped separable convolution over the batch."""
    n, c, h, w = x.shape
    radius = max(1, min(h, w) // 20)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    sigmas = _uniform(n, *sigma, generator)
    apply = torch.rand(n, generator=generator) < p
    kernels = torch.exp(-(offsets.view(1, -1) ** 2) / (2 * sigmas.view(-1, 1) ** 2))
    identity = (offsets == 0).float().expand_as(kernels)
    kernels = torch.where(apply.view(-1, 1), kernels, identity)
    kernels = (kernels / kernels.sum(1, keepdim=True)).repeat_interleave(c, 0).to(x.device)  # (n*c, k)
    flat = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernels.view(n * c, 1, 1, -1), groups=n * c)
    flat = F.conv2d(flat, kernels.view(n * c, 1, -1, 1), groups=n * c)
    return flat.view(n, c, h, w)


def augment(
    x: torch.Tensor,
    generator: torch.Generator,
    crop_scale: tuple[float, float] = (0.25, 1.0),
    colour: float = 0.4,
    grayscale: float = 0.2,
) -> torch.Tensor:
    """One SimCLR view of every picture in ``x`` (N, 3, S, S in [0, 1]): crop+mirror, colour jitter of
    ``colour`` strength (hue a quarter of it), grayscale with probability ``grayscale``, blur."""
    y = random_resized_crop(x, generator, crop_scale)
    y = colour_jitter(y, generator, strength=colour, hue=colour / 4)
    y = random_grayscale(y, generator, p=grayscale)
    return random_blur(y, generator)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """SimCLR's normalised-temperature cross entropy: each view must pick its partner among the 2N-1 others."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


class ContrastiveEncoder(nn.Module):
    """Conv blocks (3x3 conv, BatchNorm, ReLU, 2x2 max-pool) to a globally pooled feature, plus a two-layer
    projection head used only by the loss. The pooled feature is the embedding: SimCLR's finding that the
    layer before the head keeps more of what the augmentations discard holds here too (bench/README.md)."""

    def __init__(self, image_size: int = 64, latent_dim: int = 64, width: int = 16) -> None:
        super().__init__()
        self.image_size = image_size
        self.latent_dim = latent_dim
        self.width = width
        channels = [3, width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(channels, channels[1:])):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            if i < len(channels) - 2:
                layers.append(nn.MaxPool2d(2))
        self.backbone = nn.Sequential(*layers)
        self.feature_dim = channels[-1]
        self.head = nn.Sequential(
            nn.Linear(self.feature_dim, self.feature_dim),
            nn.BatchNorm1d(self.feature_dim),
            nn.ReLU(),
            nn.Linear(self.feature_dim, latent_dim),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.inference_mode()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled backbone feature of the un-augmented picture (eval mode: deterministic)."""
        was_training = self.training
        self.eval()
        out = self.features(x)
        self.train(was_training)
        return out


def train_contrastive(data: torch.Tensor, options, device: torch.device, seed: int = 0):
    """Trains a ``ContrastiveEncoder`` on ``data`` (N, 3, S, S in [0, 1]) with NT-Xent over two views a picture.

    Returns the model in eval mode and a ``TrainingReport`` whose ``losses`` are the contrastive loss per epoch
    (``reconstruction`` is NaN and ``kl`` 0: there is neither)."""
    from neural_sorter.models.autoencoder import TrainingReport

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = ContrastiveEncoder(options.image_size, options.latent_dim, options.width).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=options.epochs)
    report = TrainingReport(images=len(data))
    started = time.perf_counter()
    batch = max(2, min(options.batch_size, len(data)))
    crop = (options.min_crop, 1.0)
    for epoch in range(options.epochs):
        model.train()
        order = torch.randperm(len(data), generator=generator)
        total, seen = 0.0, 0
        for start in range(0, len(data), batch):
            idx = order[start : start + batch]
            if len(idx) < 2:
                continue  # BatchNorm and the loss need two pictures
            x = data[idx]
            v1, v2 = (augment(x, generator, crop, options.colour, options.grayscale).to(device) for _ in range(2))
            loss = nt_xent(model(v1), model(v2), options.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        scheduler.step()
        report.losses.append(total / max(1, seen))
        report.reconstruction.append(float("nan"))
        report.kl.append(0.0)
        if not math.isfinite(report.losses[-1]):
            raise RuntimeError(f"contrastive training diverged at epoch {epoch + 1} (loss {report.losses[-1]})")
    report.seconds = time.perf_counter() - started
    return model.eval(), report
