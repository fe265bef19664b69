"""InversionEvaluation figures checked against the model's and a verifier's own verdicts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from captum_netinv import InversionEvaluation, NetworkInversion
from captum_netinv.examples.models import MLP, LeNet5


def test_short_fit_hits_every_class(
    fitted: NetworkInversion, trained_lenet: LeNet5, predict: Callable[[Callable, Tensor], Tensor]
) -> None:
    result = fitted.evaluate(n_per_class=50)
    assert isinstance(result, InversionEvaluation)
    assert result.hit_rate_per_class.shape == (10,)
    assert float(result.hit_rate_per_class.min()) > 0.9, result.hit_rate_per_class
    # the same samples, judged by the model directly
    targets = torch.arange(10).repeat_interleave(50)
    samples = fitted.attribute(target=targets, seed=0)
    hits = (predict(trained_lenet, samples) == targets).float().view(10, 50).mean(dim=1)
    assert torch.allclose(hits, result.hit_rate_per_class)
    assert result.hit_rate == pytest.approx(float(hits.mean()))
    assert 0.5 < result.mean_confidence <= 1.0
    assert 0.0 < result.diversity < 1.0 and result.verifier_hit_rate is None
    assert result.preset == "default"  # the preset that ran is reported


def test_verifier_hit_rate_is_its_own_verdict(
    fitted: NetworkInversion, verifier: MLP, predict: Callable[[Callable, Tensor], Tensor]
) -> None:
    result = fitted.evaluate(n_per_class=20, verifier=verifier, seed=3)
    targets = torch.arange(10).repeat_interleave(20)
    samples = fitted.attribute(target=targets, seed=3)
    expected = (predict(verifier, samples) == targets).float().mean()
    assert result.verifier_hit_rate == pytest.approx(float(expected))
    assert result.verifier_hit_rate_per_class is not None
    # the samples carry the class for another architecture too, far above chance
    assert result.verifier_hit_rate > 0.3
