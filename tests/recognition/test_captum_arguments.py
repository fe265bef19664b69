"""Captum's argument names on InverseRecognition.attribute and explain_activations."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from captum_netinv.recognition import InverseRecognition, explain_activations

SAMPLES = 100
#: A small search, fast enough for many calls.
SEARCH = {"formula_length": 2, "beam_size": 3}


@pytest.fixture
def data() -> tuple[nn.Module, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    inputs = torch.randn(SAMPLES, 4, generator=generator)
    labels = torch.rand(SAMPLES, 3, generator=generator) < 0.4
    return model, inputs, labels


def _batch_sizes(model: nn.Module, run: Callable[[], object]) -> list[int]:
    """The batch sizes of the forward passes ``run`` makes through ``model``."""
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(lambda _, args: sizes.append(args[0].shape[0]))
    try:
        run()
    finally:
        handle.remove()
    return sizes


def test_internal_batch_size_is_the_batch_size_of_the_forward_passes(data) -> None:
    model, inputs, labels = data
    invert = InverseRecognition(model, model[0])

    def attribute(**kwargs: object) -> object:
        return invert.attribute(inputs, labels, progress=False, **SEARCH, **kwargs)

    assert _batch_sizes(model, lambda: attribute(internal_batch_size=30)) == [30, 30, 30, 10]
    assert _batch_sizes(model, lambda: attribute(batch_size=30)) == [30, 30, 30, 10]
    assert _batch_sizes(model, lambda: attribute(batch_size=30, internal_batch_size=30)) == [
        30,
        30,
        30,
        10,
    ]
    # neither: the documented default of 256 takes all 100 samples at once
    assert _batch_sizes(model, lambda: attribute()) == [SAMPLES]
    with pytest.raises(TypeError, match="`batch_size` and `internal_batch_size`"):
        attribute(batch_size=30, internal_batch_size=40)


def test_neuron_selector_chooses_the_same_neurons_as_neurons(data) -> None:
    model, inputs, labels = data
    invert = InverseRecognition(model, model[0])
    by_selector = invert.attribute(inputs, labels, neuron_selector=[2, 0], progress=False)
    by_neurons = invert.attribute(inputs, labels, neurons=[2, 0], progress=False)
    assert by_selector.neurons == [2, 0]
    assert list(by_selector) == list(by_neurons)
    one = invert.attribute(inputs, labels, neuron_selector=1, progress=False)
    assert one.neurons == [1]
    assert one[1] == invert.attribute(inputs, labels, neurons=1, progress=False)[1]
    activations = model(inputs).detach()
    found = explain_activations(activations, labels, neuron_selector=[1])
    assert found.neurons == [1] and found[1] == explain_activations(activations, labels)[1]


@pytest.mark.parametrize("selector", [(0, 1), (1,), lambda output: output[:, 0]])
def test_captum_selectors_that_are_no_whole_neuron_raise_naming_neurons(data, selector) -> None:
    model, inputs, labels = data
    invert = InverseRecognition(model, model[0])
    with pytest.raises(TypeError, match="pass `neurons` .* an int or a list of ints"):
        invert.attribute(inputs, labels, neuron_selector=selector, progress=False)
    with pytest.raises(TypeError, match="`neuron_selector` .* cannot name INVERT's neurons"):
        explain_activations(model(inputs).detach(), labels, neuron_selector=selector)


def test_neurons_and_neuron_selector_both_given_raise(data) -> None:
    model, inputs, labels = data
    activations = model(inputs).detach()
    with pytest.raises(TypeError, match="`neurons` and `neuron_selector`"):
        explain_activations(activations, labels, neurons=[0], neuron_selector=[1])
    with pytest.raises(TypeError, match="`neurons` and `neuron_selector`"):
        InverseRecognition(model, model[0]).attribute(
            inputs, labels, neurons=0, neuron_selector=2, progress=False
        )


def test_show_progress_is_progress(data, capsys: pytest.CaptureFixture[str]) -> None:
    model, inputs, labels = data
    invert = InverseRecognition(model, model[0])
    activations = model(inputs).detach()

    def bars(run: Callable[[], object]) -> bool:
        capsys.readouterr()
        run()
        return "INVERT beam search" in capsys.readouterr().err

    assert bars(lambda: invert.attribute(inputs, labels, show_progress=True))
    assert not bars(lambda: invert.attribute(inputs, labels, show_progress=False))
    # attribute shows progress by default, explain_activations does not
    assert bars(lambda: invert.attribute(inputs, labels))
    assert not bars(lambda: explain_activations(activations, labels))
    assert bars(lambda: explain_activations(activations, labels, show_progress=True))
    assert bars(lambda: explain_activations(activations, labels, progress=True, show_progress=True))
    with pytest.raises(TypeError, match="`progress` and `show_progress`"):
        explain_activations(activations, labels, progress=True, show_progress=False)
    with pytest.raises(TypeError, match="`progress` and `show_progress`"):
        invert.attribute(inputs, labels, progress=False, show_progress=True)


def test_internal_batch_size_on_precomputed_activations_points_to_batch_size(data) -> None:
    model, inputs, labels = data
    with pytest.raises(TypeError) as error:
        explain_activations(model(inputs).detach(), labels, internal_batch_size=32)
    message = str(error.value)
    assert "`internal_batch_size` (got 32)" in message
    assert "`batch_size` to InverseRecognition.attribute" in message
