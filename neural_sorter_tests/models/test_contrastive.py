"""The contrastive (simclr) variant of the self-trained backend: augmentations, NT-Xent loss, training and
checkpoints. Fast: tiny tensors and a couple of epochs; the real-image run is in stages/test_trained_autoencoder."""

import io

import pytest
import torch

from neural_sorter.models.autoencoder import load_checkpoint, save_checkpoint, train_autoencoder
from neural_sorter.models.contrastive import (
    ContrastiveEncoder,
    augment,
    colour_jitter,
    nt_xent,
    random_blur,
    random_resized_crop,
)
from neural_sorter.settings import AutoencoderOptions


def pictures(n: int = 8, side: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


def test_loss_is_lower_for_matching_pairs_than_for_shuffled_pairs():
    generator = torch.Generator().manual_seed(1)
    z1 = torch.randn(32, 16, generator=generator)
    z2 = z1 + 0.1 * torch.randn(32, 16, generator=generator)
    shuffled = z2[torch.randperm(32, generator=generator)]
    matching, mismatched = nt_xent(z1, z2).item(), nt_xent(z1, shuffled).item()
    assert matching < 0.5 * mismatched
    # Chance level is log(2N - 1): a mismatched pairing cannot do much better than guessing.
    assert mismatched > 0.5 * torch.log(torch.tensor(63.0)).item()


def test_loss_is_symmetric_in_the_two_views():
    generator = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(10, 8, generator=generator), torch.randn(10, 8, generator=generator)
    assert nt_xent(z1, z2).item() == pytest.approx(nt_xent(z2, z1).item(), rel=1e-5)


def test_augment_is_deterministic_under_a_seed_and_differs_across_seeds():
    x = pictures()
    a = augment(x, torch.Generator().manual_seed(7))
    b = augment(x, torch.Generator().manual_seed(7))
    c = augment(x, torch.Generator().manual_seed(8))
    assert a.shape == x.shape
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_two_views_of_one_batch_differ_and_each_picture_is_changed():
    x = pictures()
    generator = torch.Generator().manual_seed(3)
    v1, v2 = augment(x, generator), augment(x, generator)
    assert (v1 - v2).abs().flatten(1).mean(1).min() > 1e-3


def test_a_full_unmirrored_crop_is_the_picture_itself():
    x = pictures()
    same = random_resized_crop(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), flip=False)
    # Aspect is still drawn in 3/4..4/3 but clamped to the full side, so the grid is the identity.
    assert torch.allclose(same, x, atol=1e-5)


def test_a_crop_of_a_mirrored_picture_can_be_the_mirror():
    """With flips on and the full area, each output is either the picture or its mirror image."""
    x = pictures(16)
    out = random_resized_crop(x, torch.Generator().manual_seed(4), scale=(1.0, 1.0), flip=True)
    plain = (out - x).abs().flatten(1).amax(1) < 1e-5
    mirrored = (out - x.flip(3)).abs().flatten(1).amax(1) < 1e-5
    assert torch.all(plain | mirrored)
    assert plain.any() and mirrored.any()


def test_colour_jitter_of_zero_strength_and_blur_never_applied_keep_the_picture():
    x = pictures()
    unchanged = colour_jitter(x, torch.Generator().manual_seed(0), strength=0.0, hue=0.0, p=1.0)
    assert torch.allclose(unchanged, x, atol=1e-4)  # the YIQ round trip is exact up to float error
    assert torch.allclose(random_blur(x, torch.Generator().manual_seed(0), p=0.0), x, atol=1e-6)


def test_blur_smooths():
    x = pictures()
    blurred = random_blur(x, torch.Generator().manual_seed(0), p=1.0, sigma=(2.0, 2.0))
    roughness = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    assert roughness(blurred) < 0.5 * roughness(x)


def test_training_is_deterministic_under_a_seed_and_embeds_pooled_features():
    options = AutoencoderOptions(variant="simclr", image_size=32, width=8, latent_dim=16, epochs=2, batch_size=8)
    data = pictures(12)
    model_a, report = train_autoencoder(data, options, torch.device("cpu"), seed=5)
    model_b, _ = train_autoencoder(data, options, torch.device("cpu"), seed=5)
    assert isinstance(model_a, ContrastiveEncoder)
    assert len(report.losses) == 2 and all(loss > 0 for loss in report.losses)
    a, b = model_a.embed(data), model_b.embed(data)
    assert a.shape == (12, 8 * 8)  # the pooled backbone feature (width * 8), not the 16-d head output
    assert torch.equal(a, b)


def test_a_contrastive_checkpoint_round_trips():
    options = AutoencoderOptions(variant="simclr", image_size=32, width=8, epochs=1, batch_size=6)
    data = pictures(6)
    model, _ = train_autoencoder(data, options, torch.device("cpu"), seed=0)
    buffer = io.BytesIO()
    save_checkpoint(model, buffer)
    buffer.seek(0)
    loaded = load_checkpoint(buffer, torch.device("cpu"))
    assert isinstance(loaded, ContrastiveEncoder)
    assert loaded.image_size == 32
    assert torch.equal(loaded.embed(data), model.embed(data))


def test_the_fingerprint_changes_with_the_variant():
    """An old VAE checkpoint must not be reused when the folder is retrained with the contrastive objective."""
    import pandas as pd

    from neural_sorter.stages.trained_autoencoder import frames_fingerprint

    frames = pd.DataFrame({"content_hash": ["a", "b"], "frame_index": [0, 0]})
    fingerprints = {
        frames_fingerprint(frames, AutoencoderOptions(variant=v).model_dump(exclude={"retrain"}))
        for v in ("vae", "ae", "simclr")
    }
    assert len(fingerprints) == 3
