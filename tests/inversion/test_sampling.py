"""Sampling a fitted generator: target forms, reproducibility, range and model space."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from captum_netinv.inversion import NetworkInversion
from captum_netinv.models import LeNet5

SHAPE = (1, 28, 28)


def test_samples_are_diverse_and_in_range(fitted: NetworkInversion) -> None:
    samples = fitted.attribute(target=4, n_samples=20, seed=1)
    assert samples.shape == (20, *SHAPE)
    assert float(samples.min()) >= 0.0 and float(samples.max()) <= 1.0
    distances = torch.cdist(samples.flatten(1), samples.flatten(1))
    assert float(distances[~torch.eye(20, dtype=torch.bool)].min()) > 0.5


@pytest.mark.parametrize("target", [3, [1, 2, 3], torch.tensor([7, 0]), torch.tensor(5)])
def test_target_forms(
    fitted: NetworkInversion,
    trained_lenet: LeNet5,
    target: object,
    predict: Callable[[Callable, Tensor], Tensor],
) -> None:
    samples = fitted.attribute(target=target, seed=0)  # type: ignore[arg-type]
    expected = torch.as_tensor(target).reshape(-1)
    if expected.numel() == 1:
        expected = expected.repeat(16)
    assert samples.shape == (len(expected), *SHAPE)
    assert float((predict(trained_lenet, samples) == expected).float().mean()) >= 0.8


def test_seed_and_latents_make_sampling_reproducible(fitted: NetworkInversion) -> None:
    first = fitted.attribute(target=2, n_samples=4, seed=5)
    assert torch.equal(first, fitted.attribute(target=2, n_samples=4, seed=5))
    assert not torch.equal(first, fitted.attribute(target=2, n_samples=4, seed=6))
    latents = torch.randn(4, fitted.settings.latent_dim)
    with_latents = fitted.attribute(target=2, n_samples=4, latents=latents, seed=5)
    assert torch.equal(
        with_latents, fitted.attribute(target=2, n_samples=4, latents=latents, seed=5)
    )
    assert not torch.equal(with_latents, first)


def test_bad_target_is_refused(fitted: NetworkInversion) -> None:
    with pytest.raises(ValueError, match=r"`target` must lie in \[0, 9\].*\[10\]"):
        fitted.attribute(target=10)
    with pytest.raises(ValueError, match="`target` is required"):
        fitted.attribute()
    with pytest.raises(TypeError, match="`target` must be an int"):
        fitted.attribute(target=(1, 2))
    with pytest.raises(ValueError, match="`n_samples`"):
        fitted.attribute(target=[1, 2], n_samples=3)


def test_normalization_returns_model_space(trained_lenet: LeNet5) -> None:
    normalized = nn.Sequential(nn.Identity(), trained_lenet)
    inversion = NetworkInversion(normalized, input_shape=SHAPE, input_normalization=(0.5, 0.25))
    inversion.fit(steps=2, batch_size=4, seed=0, progress=False)
    samples = inversion.attribute(target=1, n_samples=8, seed=0)
    assert float(samples.min()) >= -2.0 and float(samples.max()) <= 2.0
    assert float(samples.min()) < 0.0
