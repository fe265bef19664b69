"""InversionEvaluation figures checked against the model's and a verifier's own verdicts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from captum_netinv import InversionEvaluation, NetworkInversion
from captum_netinv.examples.models import MLP, LeNet5
from captum_netinv.inversion.network.evaluation import early_layer, evaluate_samples
from captum_netinv.inversion.target_model import TargetModel


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


def _direct_diversity(features: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    r"""Per class, the mean of ``1 - cos`` over the ordered pairs ``i != j`` of its samples."""
    values = []
    for label in range(num_classes):
        members = features[labels == label].double()
        cosines = torch.cosine_similarity(members[:, None], members[None], dim=-1)
        count = len(members)
        values.append(float((1 - cosines).sum() / (count * (count - 1))))  # diagonal: 1 - 1
    return torch.tensor(values, dtype=torch.float64)


def _hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_early_diversity_is_measured_on_the_first_layer_beside_real_inputs(
    fitted: NetworkInversion, trained_lenet: LeNet5, digits: tuple[Tensor, Tensor]
) -> None:
    images, labels = digits[0][4000:4100], digits[1][4000:4100]
    result = fitted.evaluate(n_per_class=4, seed=2, inputs=images, labels=labels)
    assert _hooks_left(trained_lenet) == 0
    targets = torch.arange(10).repeat_interleave(4)
    samples = fitted.attribute(target=targets, seed=2)
    with torch.no_grad():  # the first Conv2d in module order, run here directly
        expected = _direct_diversity(trained_lenet.conv1(samples).flatten(1), targets, 10)
        real = _direct_diversity(trained_lenet.conv1(images).flatten(1), labels, 10)
    assert result.early_layer == "conv1"
    assert result.early_diversity_per_class is not None
    assert torch.allclose(result.early_diversity_per_class.double(), expected, atol=1e-5)
    assert result.early_diversity == pytest.approx(float(expected.mean()), abs=1e-5)
    assert result.real_early_diversity == pytest.approx(float(real.mean()), abs=1e-5)
    assert result.early_diversity_ratio == pytest.approx(
        float(expected.mean() / real.mean()), rel=1e-4
    )
    assert torch.allclose(
        result.early_diversity_ratio_per_class.double(),  # type: ignore[union-attr]
        expected / real,
        rtol=1e-4,
    )
    assert f"early-layer diversity ratio {result.early_diversity_ratio:.2f}" in str(result)
    without = fitted.evaluate(n_per_class=4, seed=2)
    assert without.early_diversity == result.early_diversity  # the same samples
    assert without.real_early_diversity is None and without.early_diversity_ratio is None
    assert without.early_diversity_ratio_per_class is None
    assert "early-layer" not in str(without)
    assert _hooks_left(trained_lenet) == 0


class _Scaled(nn.Module):
    r"""Logits without a Conv2d or Linear: the flattened input times a fixed matrix; fails on
    demand."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(16, 3, generator=torch.Generator().manual_seed(0)))
        self.fail = False

    def forward(self, x: Tensor) -> Tensor:
        if self.fail:
            raise RuntimeError("planted failure")
        return x.flatten(1) @ self.weight


def test_early_fields_are_none_without_a_first_layer_and_hooks_go_on_failure() -> None:
    plain = nn.Sequential(nn.Identity(), _Scaled())
    assert early_layer(plain) is None
    found = early_layer(nn.Sequential(nn.ReLU(), nn.Conv2d(1, 2, 3), nn.Linear(2, 2)))
    assert found is not None and found[0] == "1"
    view = TargetModel(plain, plain[0], False, None, None)
    samples = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    result = evaluate_samples(view, samples, torch.arange(3).repeat_interleave(2), 3)
    assert result.early_layer is None and result.early_diversity is None
    assert result.early_diversity_per_class is None and result.early_diversity_ratio is None
    failing = _Scaled()
    with_layer = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Identity(), failing)
    view = TargetModel(with_layer, with_layer[1], False, None, None)
    failing.fail = True
    with pytest.raises(RuntimeError, match="planted failure"):
        evaluate_samples(view, samples, torch.arange(3).repeat_interleave(2), 3)
    assert _hooks_left(with_layer) == 0


def test_real_labels_may_be_a_list_or_an_array_and_every_tensor_is_on_the_cpu() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3))
    view = TargetModel(model, model[2], False, None, None)
    generator = torch.Generator().manual_seed(2)
    samples = torch.rand(6, 1, 4, 4, generator=generator)
    targets = torch.arange(3).repeat_interleave(2)
    labels = torch.tensor([0, 1, 1, 0, 2, 2, 0, 1, 2, 1, 0, 2])
    real = torch.rand(12, 1, 4, 4, generator=generator).transpose(2, 3)  # not contiguous
    assert not real.is_contiguous()
    expected = evaluate_samples(view, samples, targets, 3, inputs=real.contiguous(), labels=labels)
    for given in (labels.tolist(), labels.numpy(), labels.int()):
        result = evaluate_samples(view, samples, targets, 3, inputs=real, labels=given)  # type: ignore[arg-type]
        assert result.real_diversity == expected.real_diversity
        assert result.real_pixel_diversity == expected.real_pixel_diversity
        assert result.real_early_diversity == expected.real_early_diversity
    tensors = [value for value in vars(expected).values() if isinstance(value, Tensor)]
    assert len(tensors) == 9 and {tensor.device.type for tensor in tensors} == {"cpu"}
    for wrong in (labels.float(), [0.5] * 12, ["a"] * 12, labels[:5].tolist()):
        with pytest.raises(ValueError, match=r"`labels` must be a \(12,\) integer tensor"):
            evaluate_samples(view, samples, targets, 3, inputs=real, labels=wrong)  # type: ignore[arg-type]
