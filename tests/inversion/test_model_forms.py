"""Model-facing behaviour of both inversions: probability outputs, extra forward arguments, the
first-call fit's warning and the real-data reference of the diversity (issue 22)."""

from __future__ import annotations

import random
import re
import warnings

import pytest
import torch
from torch import Tensor, nn

import captum_netinv.inversion.network.network_inversion as network_module
import captum_netinv.inversion.neuron.neuron_inversion as neuron_module
from captum_netinv import NetworkInversion, NeuronInversion
from captum_netinv.examples.models import LeNet5
from captum_netinv.inversion.network.evaluation import real_diversity
from captum_netinv.inversion.target_model import PROBABILITY_FLOOR, TargetModel, output_kind_of

SHAPE = (1, 28, 28)
SMALL = (1, 8, 8)
FAST = {"steps": 3, "batch_size": 6, "seed": 0, "progress": False}
PROBABILITIES = "returns probabilities"


def _small_model(classes: int = 3) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, classes)
    ).eval()


class _Scaled(nn.Module):
    r"""A classifier that needs an extra argument: its logits times ``scale``."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _small_model()

    def forward(self, inputs: Tensor, scale: Tensor) -> Tensor:
        return self.body(inputs) * scale


def _titles(axes: object) -> Tensor:
    return torch.tensor([float(axis.get_title()) for axis in axes.flat])  # type: ignore[attr-defined]


def _probability_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(item.message) for item in record if PROBABILITIES in str(item.message)]


# --- 1. probability outputs ---------------------------------------------------------------


def test_a_softmax_head_is_inverted_through_its_log(trained_lenet: LeNet5) -> None:
    softmax_model = nn.Sequential(trained_lenet, nn.Softmax(dim=1))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        plain = NetworkInversion(trained_lenet, input_shape=SHAPE)
        inversion = NetworkInversion(softmax_model, input_shape=SHAPE)
    messages = _probability_warnings(record)
    assert len(messages) == 1 and "its last module is nn.Softmax" in messages[0]
    assert "uses their log" in messages[0]
    assert [item.filename for item in record if PROBABILITIES in str(item.message)] == [__file__]
    fit = {"steps": 200, "batch_size": 32, "seed": 0, "progress": False}
    for model_inversion in (plain, inversion):
        model_inversion.fit(**fit)  # type: ignore[arg-type]
        result = model_inversion.evaluate(n_per_class=10)
        assert result.hit_rate > 0.9 and result.mean_confidence > 0.9, result
        _, axes = model_inversion.visualize(n_per_class=2, use_pyplot=False)
        assert float(_titles(axes).mean()) > 0.9  # the model's confidence, not <= 0.25
    # the titles are the Softmax model's own probabilities of the shown samples
    targets = torch.arange(10).repeat_interleave(2)
    samples = inversion.attribute(target=targets, seed=0)
    with torch.no_grad():
        expected = softmax_model(samples)[torch.arange(20), targets]
    assert torch.allclose(_titles(axes), expected, atol=0.006)


def test_log_softmax_and_probability_rows_are_detected() -> None:
    base = _small_model()
    probe = torch.rand(2, *SMALL)
    with torch.no_grad():
        logits = base(probe)
    log_softmax = nn.Sequential(base, nn.LogSoftmax(dim=1))
    assert output_kind_of(log_softmax, logits.log_softmax(1)) == (
        "log_probabilities",
        "its last module is nn.LogSoftmax",
    )
    assert output_kind_of(lambda x: base(x).softmax(1), logits.softmax(1))[0] == "probabilities"
    assert output_kind_of(base, logits.log_softmax(1))[0] == "log_probabilities"
    assert output_kind_of(base, logits) == ("logits", "")
    with pytest.warns(UserWarning, match="log-probabilities .* uses them as they are"):
        inversion = NetworkInversion(log_softmax, input_shape=SMALL)
    assert inversion._ensure_input_shape(None).output_kind == "log_probabilities"
    with pytest.warns(UserWarning, match=f"{PROBABILITIES} .*each row sums to 1"):
        by_rows = NetworkInversion(lambda x: base(x).softmax(1), layer=base[3], input_shape=SMALL)
    assert by_rows._ensure_input_shape(None).output_kind == "probabilities"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = NetworkInversion(base, input_shape=SMALL)  # logits: no warning
    assert plain._ensure_input_shape(None).output_kind == "logits"


def test_probabilities_become_log_probabilities_floored() -> None:
    base = _small_model()
    view = TargetModel(base, base[3], True, None, None, output_kind="probabilities")
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(view.logits_of(logits.softmax(1)), logits.log_softmax(1), atol=1e-6)
    floored = view.logits_of(torch.tensor([[1.0, 0.0, 0.0]]))
    assert float(floored[0, 1]) == pytest.approx(torch.tensor(PROBABILITY_FLOOR).log().item())
    # and the whole fit runs on finite log-probabilities
    with pytest.warns(UserWarning, match=PROBABILITIES):
        inversion = NetworkInversion(nn.Sequential(base, nn.Softmax(dim=1)), input_shape=SMALL)
    history = inversion.fit(**FAST)  # type: ignore[arg-type]
    assert all(torch.isfinite(torch.tensor(history["loss"])))


# --- 2. additional_forward_args -------------------------------------------------------------


def test_evaluate_and_visualize_take_additional_forward_args() -> None:
    model = _Scaled()
    scale = torch.tensor([[1.0, 2.0, 3.0]])
    inversion = NetworkInversion(model, input_shape=SMALL, layer=model.body[3])
    inversion.fit(**FAST, additional_forward_args=(scale,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale.*pass them as `additional_forward_args`"):
        inversion.evaluate(n_per_class=2)
    with pytest.raises(ValueError, match="pass them as `additional_forward_args`"):
        inversion.visualize(n_per_class=2, use_pyplot=False)
    _, axes = inversion.visualize(n_per_class=2, use_pyplot=False, additional_forward_args=(scale,))
    targets = torch.arange(3).repeat_interleave(2)
    samples = inversion.attribute(target=targets, seed=0)
    with torch.no_grad():
        expected = model(samples, scale).softmax(1)[torch.arange(6), targets]
    assert torch.allclose(_titles(axes), expected, atol=0.006)


def test_neuron_visualize_and_evaluate_take_additional_forward_args() -> None:
    model = _Scaled()
    scale = torch.tensor([[1.0, 2.0, 3.0]])
    images = torch.rand(40, *SMALL, generator=torch.Generator().manual_seed(1))
    inversion = NeuronInversion(model, model.body[3], input_shape=SMALL)
    inversion.fit(images, steps=2, seed=0, progress=False, additional_forward_args=(scale,))
    fig, axes = inversion.visualize(
        1, images, n_generated=4, k=4, use_pyplot=False, additional_forward_args=(scale,)
    )
    assert axes.shape == (3,)
    with pytest.raises(ValueError, match="pass them as `additional_forward_args`"):
        inversion.visualize(1, images, n_generated=4, k=4, use_pyplot=False)
    with pytest.raises(ValueError, match="scale.*pass them as `additional_forward_args`"):
        inversion.evaluate(images, n_per_unit=2, top_k=4)
    assert (
        inversion.evaluate(
            images, n_per_unit=2, top_k=4, additional_forward_args=(scale,)
        ).diversity_ratio
        is not None
    )


def test_per_sample_forward_args_of_another_batch_size_are_named() -> None:
    model = _Scaled()
    good, per_sample = torch.ones(1, 3), torch.ones(5, 3)
    message = (
        r"`additional_forward_args` hold per-sample tensors of another batch size \(argument 0 "
        r"of shape \(5, 3\)\).*passed unchanged with every batch of generated samples.*"
        r"must broadcast \(first dimension 1\)"
    )
    inversion = NetworkInversion(model, input_shape=SMALL, layer=model.body[3])
    with pytest.raises(ValueError, match=message):
        inversion.fit(**FAST, additional_forward_args=(per_sample,))  # type: ignore[arg-type]
    inversion.fit(**FAST, additional_forward_args=(good,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        inversion.evaluate(n_per_class=2, additional_forward_args=(per_sample,))
    with pytest.raises(ValueError, match=message):
        inversion.visualize(n_per_class=2, use_pyplot=False, additional_forward_args=(per_sample,))
    # a tensor of the batch's own size passes: the check names only real mismatches
    assert inversion.evaluate(n_per_class=2, additional_forward_args=(good,)).hit_rate >= 0.0


def test_the_verifier_gets_its_own_forward_args() -> None:
    model = _small_model()
    verifier = _Scaled()
    flip = torch.tensor([[-1.0, 1.0, -1.0]])
    inversion = NetworkInversion(model, input_shape=SMALL)
    inversion.fit(**FAST)  # type: ignore[arg-type]
    result = inversion.evaluate(n_per_class=4, verifier=verifier, verifier_forward_args=(flip,))
    targets = torch.arange(3).repeat_interleave(4)
    samples = inversion.attribute(target=targets, seed=0)
    with torch.no_grad():
        expected = (verifier(samples, flip).argmax(1) == targets).float().mean()
    assert result.verifier_hit_rate == pytest.approx(float(expected))
    with pytest.raises(ValueError, match="`verifier_forward_args` were given without a `verifier`"):
        inversion.evaluate(n_per_class=2, verifier_forward_args=(flip,))


# --- 3. the first-call fit's warning ------------------------------------------------------------


class _FixedSeed:
    def randrange(self, stop: int) -> int:
        return 11


def test_first_call_warning_points_at_the_caller_and_estimates_the_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(network_module, "DEFAULT_STEPS", 6)
    monkeypatch.setattr(random, "SystemRandom", _FixedSeed)
    inversion = NetworkInversion(_small_model(), input_shape=SMALL)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        samples = inversion.attribute(target=1, n_samples=4, seed=2)
    fitting = [item for item in record if "not fitted yet" in str(item.message)]
    assert len(fitting) == 1 and fitting[0].filename == __file__
    assert re.search(r"\(6 steps of 64 samples, about \d+(\.\d)? s ", str(fitting[0].message))
    # the timed fit is the plain fit of the same seed: same weights, same samples
    plain = NetworkInversion(_small_model(), input_shape=SMALL)
    plain.fit(steps=6, batch_size=64, seed=11, progress=False)
    assert inversion.history == plain.history
    assert torch.equal(samples, plain.attribute(target=1, n_samples=4, seed=2))


def test_neuron_first_call_warning_points_at_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(neuron_module, "NEURON_STEPS", 2)
    model = _small_model()
    inversion = NeuronInversion(model, model[3], input_shape=SMALL)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        inversion.evaluate(n_per_unit=2, top_k=2)
    fitting = [item for item in record if "not fitted yet" in str(item.message)]
    assert len(fitting) == 1 and fitting[0].filename == __file__
    assert "evaluate()" in str(fitting[0].message)
    assert re.search(r"\(2 steps, about \d+(\.\d)? s ", str(fitting[0].message))
    assert inversion.steps_trained == 2


# --- 4. the diversity's real-data reference --------------------------------------------------


def _direct_diversity(features: Tensor, labels: Tensor, classes: int) -> Tensor:
    r"""Mean pairwise cosine distance over pairs i != j of each class, computed directly."""
    values = []
    for label in range(classes):
        members = features[labels == label]
        if len(members) < 2:
            values.append(float("nan"))
            continue
        distances = [
            1.0 - float(torch.cosine_similarity(members[i], members[j], dim=0))
            for i in range(len(members))
            for j in range(len(members))
            if i != j
        ]
        values.append(sum(distances) / len(distances))
    return torch.tensor(values)


def test_evaluate_sets_the_diversity_beside_real_inputs() -> None:
    model = _small_model()
    inversion = NetworkInversion(model, input_shape=SMALL)
    inversion.fit(**FAST)  # type: ignore[arg-type]
    without = inversion.evaluate(n_per_class=3)
    assert without.real_diversity is None and without.diversity_ratio is None
    assert without.real_diversity_per_class is None and without.diversity_ratio_per_class is None
    assert "no real-data reference (pass inputs=...)" in str(without)
    real = torch.rand(60, *SMALL, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        features = model[:3](real)  # the default layer: the last Linear's input
        predicted = model(real).argmax(1)
    result = inversion.evaluate(n_per_class=3, inputs=real)
    expected = _direct_diversity(features, predicted, 3)
    assert result.real_diversity_per_class is not None
    assert torch.allclose(result.real_diversity_per_class, expected, atol=1e-5, equal_nan=True)
    assert result.real_diversity == pytest.approx(float(expected.nanmean()), abs=1e-5)
    assert result.diversity == without.diversity  # the same samples
    assert result.diversity_ratio == pytest.approx(result.diversity / float(expected.nanmean()))
    assert torch.allclose(
        result.diversity_ratio_per_class,  # type: ignore[arg-type]
        result.diversity_per_class / expected,
        atol=1e-5,
        equal_nan=True,
    )
    assert "no real-data reference" not in str(result) and "ratio" in str(result)
    labels = torch.arange(60) % 3
    labelled = inversion.evaluate(n_per_class=3, inputs=real, labels=labels)
    assert torch.allclose(
        labelled.real_diversity_per_class,  # type: ignore[arg-type]
        _direct_diversity(features, labels, 3),
        atol=1e-5,
    )
    with pytest.raises(ValueError, match=r"`labels` must be a \(60,\) integer tensor"):
        inversion.evaluate(n_per_class=2, inputs=real, labels=torch.full((60,), 3))
    with pytest.raises(ValueError, match="`labels` were given without `inputs`"):
        inversion.evaluate(n_per_class=2, labels=labels)
    with pytest.raises(ValueError, match=r"`inputs` have shape \(1, 9, 9\) per sample"):
        inversion.evaluate(n_per_class=2, inputs=torch.rand(4, 1, 9, 9))


def test_real_diversity_of_the_model_view_is_the_direct_measure() -> None:
    model = _small_model()
    view = TargetModel(model, model[3], True, None, None)
    real = torch.rand(30, *SMALL, generator=torch.Generator().manual_seed(5))
    labels = torch.arange(30) % 3
    with torch.no_grad():
        features = model[:3](real)
    measured = real_diversity(view, real, labels, 3)
    assert torch.allclose(measured, _direct_diversity(features, labels, 3), atol=1e-5)


def test_neuron_evaluation_says_when_it_has_no_real_reference() -> None:
    model = _small_model()
    images = torch.rand(40, *SMALL, generator=torch.Generator().manual_seed(1))
    inversion = NeuronInversion(model, model[3], input_shape=SMALL)
    inversion.fit(images, steps=2, seed=0, progress=False)
    without = inversion.evaluate(n_per_unit=2, top_k=4)
    assert without.top_diversity is None
    assert "no real-data reference (pass inputs=...)" in str(without)
    with_inputs = inversion.evaluate(images, n_per_unit=2, top_k=4)
    assert "no real-data reference" not in str(with_inputs) and "ratio" in str(with_inputs)
