"""Sampling a fitted generator: target forms, reproducibility, range and model space."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from captum_netinv import NetworkInversion
from captum_netinv.examples.models import LeNet5
from captum_netinv.inversion.network.concepts import CONCEPT_ID_BASE

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


def test_target_forms_a_user_may_try(fitted: NetworkInversion) -> None:
    assert fitted.attribute(target=np.int64(3), n_samples=2, seed=0).shape == (2, *SHAPE)
    assert fitted.attribute(target=np.array([1, 2]), seed=0).shape == (2, *SHAPE)
    for target, error, message in [
        ("3", TypeError, "`target` must be an int.*got str '3'"),
        ([], ValueError, "`target` is empty"),
        (3.0, TypeError, "`target` must be an int"),
        ([[1, 2], [3, 4]], ValueError, r"`target` must be an int or 1-D .* shape \(2, 2\)"),
        (torch.tensor([[1, 2]]), ValueError, "must be an int or 1-D"),
        ([True, False], TypeError, "must hold ints, got dtype torch.bool"),
        (["a", "b"], TypeError, "`target` must hold ints"),
    ]:
        with pytest.raises(error, match=message):
            fitted.attribute(target=target, seed=0)
    with pytest.raises(ValueError, match=r"`seed` must be in \[0, 2\*\*63\), got 1180591620717"):
        fitted.attribute(target=1, seed=2**70)
    with pytest.raises(TypeError, match="`n_samples` must be an int >= 1, got True"):
        fitted.attribute(target=1, n_samples=True)


def test_non_finite_latents_are_refused(fitted: NetworkInversion) -> None:
    latents = torch.randn(2, fitted.settings.latent_dim)
    latents[1, 0] = float("nan")
    with pytest.raises(ValueError, match="`latents` must hold finite .* NaN or infinite"):
        fitted.attribute(target=1, n_samples=2, latents=latents)
    with pytest.raises(ValueError, match="`latents` must hold finite floating-point"):
        fitted.attribute(target=1, n_samples=2, latents=latents.long())


def test_as_concept_ids_are_unique_per_draw(fitted: NetworkInversion) -> None:
    first = fitted.as_concept(3, n_samples=4, batch_size=2, seed=0)
    again = fitted.as_concept(3, n_samples=4, batch_size=2, seed=0)
    other_seed = fitted.as_concept(3, n_samples=4, batch_size=2, seed=1)
    other_class = fitted.as_concept(4, n_samples=4, batch_size=2, seed=0)
    unseeded = [fitted.as_concept(3, n_samples=4, batch_size=2) for _ in range(2)]
    ids = [first.id, other_seed.id, other_class.id, *(c.id for c in unseeded)]
    assert len(set(ids)) == len(ids) and first.id == again.id
    assert all(CONCEPT_ID_BASE <= concept_id < 2 * CONCEPT_ID_BASE for concept_id in ids)
    assert all(
        float(torch.tensor(concept_id, dtype=torch.float32)) == concept_id for concept_id in ids
    )
    assert (first.name, unseeded[0].name) == ("inverted_class_3_seed_0", "inverted_class_3_random")
    chosen = fitted.as_concept(3, n_samples=2, concept_id=12, name="threes", seed=0)
    assert (chosen.id, chosen.name) == (12, "threes")
    with pytest.raises(TypeError, match="`concept_id` must be an int"):
        fitted.as_concept(3, n_samples=2, concept_id="12")  # type: ignore[arg-type]
