"""Counterfeits: the model accepts them, the verifier rejects them; the companion's settings."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from captum_netinv import NetworkInversion
from captum_netinv.examples.models import LeNet5
from captum_netinv.inversion import IMAGE_PRIORS, InversionSettings
from captum_netinv.inversion.network.counterfeits import COUNTERFEIT_TERMS_OFF, counterfeit_settings

SHAPE = (1, 28, 28)


def test_counterfeits_fool_the_model_not_the_verifier(
    fitted: NetworkInversion, trained_lenet: LeNet5
) -> None:
    # a verifier that always names another class than the model; how rare counterfeits are
    # against a trained verifier is measured in benchmarks/
    def disagreeing(inputs: Tensor) -> Tensor:
        return trained_lenet(inputs).roll(1, dims=1)

    fakes = fitted.counterfeits(
        8,
        disagreeing,
        n_samples=4,
        confidence=0.8,
        steps=100,
        batch_size=16,
        seed=0,
        progress=False,
    )
    assert len(fakes) == 4 and fakes.shape[1:] == SHAPE
    assert fitted._counterfeiter is not None
    companion = fitted._counterfeiter[1].settings
    assert companion.jitter == 0 and fitted.settings.jitter > 0
    assert companion.zoom == 0.0 and fitted.settings.zoom > 0
    assert all(companion.loss_weights[term] == 0.0 for term in (*IMAGE_PRIORS, "kl_divergence"))
    with torch.no_grad():
        assert bool((trained_lenet(fakes).softmax(dim=1)[:, 8] >= 0.8).all())
        assert bool((disagreeing(fakes).argmax(dim=1) != 8).all())
    # a verifier that agrees with the model rejects nothing: none found, and a warning
    with pytest.warns(UserWarning, match="found 0 of 2 counterfeits"):
        assert len(fitted.counterfeits(8, trained_lenet, n_samples=2, max_draws=64)) == 0


def test_companion_settings_switch_off_what_makes_samples_natural() -> None:
    settings = InversionSettings(jitter=2, loss_weights={"cosine_similarity": 0.7})
    companion = counterfeit_settings(settings)
    assert companion.jitter == 0 and companion.zoom == 0.0
    assert all(companion.loss_weights[term] == 0.0 for term in COUNTERFEIT_TERMS_OFF)
    assert companion.loss_weights["cross_entropy"] == settings.loss_weights["cross_entropy"]
    assert companion.loss_weights["cosine_similarity"] == 0.7
    restored = companion.replace(jitter=2, zoom=settings.zoom, loss_weights=settings.loss_weights)
    assert restored == settings


def test_a_new_budget_or_seed_fits_a_new_companion(trained_lenet: LeNet5) -> None:
    inversion = NetworkInversion(trained_lenet, input_shape=SHAPE)
    inversion.fit(steps=2, batch_size=4, seed=0, progress=False)
    options = {"n_samples": 1, "max_draws": 8, "confidence": 0.5, "progress": False}
    with pytest.warns(UserWarning):  # an agreeing verifier rejects nothing
        inversion.counterfeits(0, trained_lenet, steps=3, batch_size=4, seed=0, **options)
    assert inversion._counterfeiter is not None
    first = inversion._counterfeiter[1]
    assert first.steps_trained == 3
    with pytest.warns(UserWarning):
        inversion.counterfeits(0, trained_lenet, steps=3, batch_size=4, seed=0, **options)
    assert inversion._counterfeiter[1] is first  # same budget and seed: reused
    with pytest.warns(UserWarning):
        inversion.counterfeits(0, trained_lenet, steps=5, batch_size=4, seed=0, **options)
    assert inversion._counterfeiter[1] is not first
    assert inversion._counterfeiter[1].steps_trained == 5


@pytest.mark.filterwarnings("ignore:.*counterfeits:UserWarning")
def test_other_forward_arguments_fit_a_new_companion() -> None:
    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))

        def forward(self, inputs: Tensor, scale: Tensor) -> Tensor:
            return self.body(inputs) * scale

    torch.manual_seed(0)
    model = Scaled().eval()
    seen: list[Tensor] = []
    model.register_forward_hook(lambda module, args, output: seen.append(args[1]))
    inversion = NetworkInversion(model, input_shape=(1, 8, 8), layer=model.body[1])
    one, other = torch.tensor([[1.0, 1.0, 1.0]]), torch.tensor([[1.0, -1.0, 2.0]])
    inversion.fit(steps=2, batch_size=6, seed=0, progress=False, additional_forward_args=(one,))
    fit = {"steps": 2, "batch_size": 6, "seed": 0}
    options = {"n_samples": 1, "max_draws": 6, "confidence": 0.1, "progress": False, **fit}
    verifier = model.body  # sees the samples alone
    inversion.counterfeits(0, verifier, additional_forward_args=(one,), **options)
    assert inversion._counterfeiter is not None
    first = inversion._counterfeiter[1]
    inversion.counterfeits(0, verifier, additional_forward_args=(one,), **options)
    assert inversion._counterfeiter[1] is first  # the same arguments: reused
    seen.clear()
    inversion.counterfeits(0, verifier, additional_forward_args=(other,), **options)
    assert inversion._counterfeiter[1] is not first  # other arguments: fitted anew with them
    assert seen and any(args is other for args in seen)
