"""The argument forms of both inversions' ``fit`` and ``attribute`` (issue 22), on tiny models.

One-element targets, one sample per example input row, Captum's neuron argument name, selectors
of a position inside a conv channel, and inputs the inversions cannot take (uint8 images, another
channel count, a tuple of model inputs): each form does what a Captum user expects or raises an
error naming the argument.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from captum_netinv import NetworkInversion, NeuronInversion
from captum_netinv.inversion.neuron.selectors import resolve_neuron_selector
from captum_netinv.inversion.neuron.target import NeuronTarget, unit_statistics
from captum_netinv.inversion.sampling import (
    DEFAULT_SAMPLES,
    sample_count,
    samples_per_entry,
    targets_from,
)

SHAPE = (1, 8, 8)
#: The conv layer's output of one 8 x 8 input: 4 channels of 6 x 6.
LAYER_SHAPE = (4, 6, 6)
#: The shortest fit: these tests look at argument forms, not at sample quality.
FIT: dict[str, Any] = {"steps": 1, "batch_size": 8, "seed": 0, "progress": False}
ROWS = 8
UINT8_MESSAGE = r"`inputs` must be floating-point model-space inputs, got dtype torch\.uint8"
UINT8_HINT = re.escape("images.float() / 255")
TUPLE_MESSAGE = r"`inputs` must be one tensor \(N, C, H, W\), got a tuple of 2 values"


class _OneChannelCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.out = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(torch.relu(self.conv(x)).flatten(1))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> _OneChannelCNN:
    torch.manual_seed(0)
    return _OneChannelCNN().eval()


@pytest.fixture(scope="module")
def network(model: _OneChannelCNN) -> NetworkInversion:
    inversion = NetworkInversion(model, input_shape=SHAPE)
    inversion.fit(**FIT)
    return inversion


@pytest.fixture(scope="module")
def channels(model: _OneChannelCNN) -> NeuronInversion:
    inversion = NeuronInversion(model, model.conv, input_shape=SHAPE)
    inversion.fit(**FIT)
    return inversion


def _rows(count: int = ROWS) -> Tensor:
    return torch.rand(count, *SHAPE, generator=torch.Generator().manual_seed(1))


def _uint8_images() -> Tensor:
    return (_rows() * 255).to(torch.uint8)


# --- NetworkInversion: target forms ------------------------------------------------------------


@pytest.mark.parametrize(
    "target", [torch.tensor([2]), [2], np.array([2])], ids=["tensor", "list", "array"]
)
def test_a_one_element_target_with_n_samples_gives_that_many_of_its_class(
    network: NetworkInversion, target: object
) -> None:
    assert torch.equal(targets_from(target, 4, num_classes=3), torch.full((4,), 2))
    samples = network.attribute(target=target, n_samples=4, seed=0)
    assert torch.equal(samples, network.attribute(target=2, n_samples=4, seed=0))


def test_a_one_element_target_alone_still_gives_one_sample(network: NetworkInversion) -> None:
    assert targets_from([2], None, num_classes=3).tolist() == [2]
    assert network.attribute(target=torch.tensor([2]), seed=0).shape == (1, *SHAPE)


@pytest.mark.parametrize("target", [True, torch.tensor(True)], ids=["bool", "bool tensor"])
def test_a_bool_target_is_no_class_index(network: NetworkInversion, target: object) -> None:
    with pytest.raises(TypeError, match=r"`target` must be an int class index.*got the bool True"):
        network.attribute(target=target, n_samples=2)


# --- one sample per example input row ----------------------------------------------------------


def test_example_inputs_give_one_sample_per_row(network: NetworkInversion) -> None:
    samples = network.attribute(_rows(), target=1, seed=0)
    assert samples.shape == (ROWS, *SHAPE)
    assert torch.equal(samples, network.attribute(target=1, n_samples=ROWS, seed=0))
    assert network.attribute(target=1).shape[0] == DEFAULT_SAMPLES  # without inputs
    per_row = [0, 1, 2, 0, 1, 2, 0, 1]
    by_row = network.attribute(_rows(), target=per_row, seed=0)
    assert torch.equal(by_row, network.attribute(target=per_row, seed=0))
    assert network.attribute(_rows(), target=1, n_samples=ROWS, seed=0).shape[0] == ROWS
    assert network.attribute(_rows(), target=[1], seed=0).shape[0] == ROWS


def test_the_count_is_n_samples_else_one_per_row_else_the_default() -> None:
    assert sample_count(None, None) == DEFAULT_SAMPLES
    assert sample_count(5, None) == 5
    assert sample_count(None, ROWS) == ROWS
    assert sample_count(ROWS, ROWS) == ROWS
    # a list gives one sample per entry; a single entry all of them
    assert samples_per_entry(3, n_samples=None, rows=None, name="target") == 1
    assert samples_per_entry(3, n_samples=3, rows=None, name="target") == 1
    assert samples_per_entry(1, n_samples=None, rows=None, name="target") == 1
    assert samples_per_entry(1, n_samples=4, rows=None, name="target") == 4
    assert samples_per_entry(1, n_samples=None, rows=ROWS, name="target") == ROWS
    with pytest.raises(
        ValueError, match=r"`n_samples` \(4\) must be None or equal.*`target` \(3\)"
    ):
        samples_per_entry(3, n_samples=4, rows=None, name="target")


def test_example_inputs_and_a_disagreeing_count_raise_naming_both(
    network: NetworkInversion,
) -> None:
    with pytest.raises(ValueError, match=r"`target` has 3 entries but `inputs` has 8 rows"):
        network.attribute(_rows(), target=[0, 1, 2])
    with pytest.raises(ValueError, match=r"`n_samples` \(4\) and `inputs` \(8 rows\) disagree"):
        network.attribute(_rows(), target=1, n_samples=4)


def test_neuron_inversion_gives_one_sample_per_example_row(channels: NeuronInversion) -> None:
    samples = channels.attribute(_rows(), neuron_selector=2, seed=0)
    assert samples.shape == (ROWS, *SHAPE)
    assert torch.equal(samples, channels.attribute(neuron_selector=2, n_samples=ROWS, seed=0))
    assert channels.attribute(neuron_selector=[2], n_samples=3, seed=0).shape[0] == 3
    with pytest.raises(ValueError, match=r"`neuron_selector` has 2 entries but `inputs` has 8"):
        channels.attribute(_rows(), neuron_selector=[1, 2])
    with pytest.raises(ValueError, match=r"`n_samples` \(3\) and `inputs` \(8 rows\) disagree"):
        channels.attribute(_rows(), neuron_selector=2, n_samples=3)


# --- NeuronInversion: Captum's neuron argument name --------------------------------------------


def test_neuron_inversion_refuses_target_naming_neuron_selector(
    channels: NeuronInversion,
) -> None:
    message = (
        "`target` (got 53) has no use here: NeuronInversion.attribute takes the unit as "
        "`neuron_selector` (Captum's neuron methods' name), not `target`"
    )
    with pytest.raises(TypeError, match=re.escape(message)):
        channels.attribute(target=53)


# --- selectors of a position inside a channel --------------------------------------------------


@pytest.mark.parametrize(
    "selector",
    [lambda out: out[:, 2, 3, 3], lambda out: out[:, 2, :2].sum((1, 2))],
    ids=["one position", "two rows"],
)
def test_a_callable_reading_part_of_a_channel_is_refused_like_the_tuple(
    selector: Callable[[Tensor], Tensor],
) -> None:
    with pytest.raises(ValueError, match=r"`neuron_selector` callable reads \d+ of the 36 .*"):
        resolve_neuron_selector(selector, 2, neurons=[0, 1, 2, 3], layer_shape=LAYER_SHAPE)
    with pytest.raises(ValueError, match="not on a position inside it"):
        resolve_neuron_selector((2, 3, 3), 2, neurons=[0, 1, 2, 3], layer_shape=LAYER_SHAPE)


@pytest.mark.parametrize(
    "selector",
    [
        lambda out: out[:, 2].mean((1, 2)),
        lambda out: out[:, 2].amax((1, 2)),
        lambda out: out[:, 2].amin((1, 2)),
    ],
    ids=["mean", "amax", "amin"],
)
def test_a_callable_reducing_the_whole_channel_names_it(
    selector: Callable[[Tensor], Tensor], channels: NeuronInversion
) -> None:
    positions = resolve_neuron_selector(selector, 3, neurons=[0, 2], layer_shape=LAYER_SHAPE)
    assert positions.tolist() == [1, 1, 1]
    by_callable = channels.attribute(neuron_selector=selector, n_samples=2, seed=0)
    assert torch.equal(by_callable, channels.attribute(neuron_selector=2, n_samples=2, seed=0))


def test_a_callable_of_a_linear_unit_needs_no_position_probe() -> None:
    positions = resolve_neuron_selector(lambda out: out[:, 5], 2, neurons=[5], layer_shape=(8,))
    assert positions.tolist() == [0, 0]


# --- inputs the inversions cannot take ----------------------------------------------------------


def test_uint8_images_are_refused_naming_inputs_with_the_conversion(
    model: _OneChannelCNN, network: NetworkInversion, channels: NeuronInversion
) -> None:
    calls: list[Callable[[], object]] = [
        lambda: NetworkInversion(model).fit(inputs=_uint8_images(), **FIT),
        lambda: NeuronInversion(model, model.conv).fit(_uint8_images(), **FIT),
        lambda: NeuronInversion(model, model.conv, input_shape=SHAPE).fit(_uint8_images(), **FIT),
        lambda: network.attribute(_uint8_images(), target=1),
        lambda: channels.attribute(_uint8_images(), neuron_selector=1),
    ]
    for call in calls:
        with pytest.raises(TypeError, match=f"{UINT8_MESSAGE}.*{UINT8_HINT}"):
            call()


def test_unit_statistics_refuse_uint8_and_single_inputs(channels: NeuronInversion) -> None:
    view = channels._neuron_view()
    assert isinstance(view, NeuronTarget)
    with pytest.raises(TypeError, match=f"{UINT8_MESSAGE}.*{UINT8_HINT}"):
        unit_statistics(view, _uint8_images())
    with pytest.raises(ValueError, match="`inputs` must hold at least 2 reference samples, got 1"):
        unit_statistics(view, _rows(1))


def test_three_channel_inputs_to_a_one_channel_model_name_inputs(model: _OneChannelCNN) -> None:
    three = torch.rand(4, 3, 8, 8)
    expected = r"`inputs` have shape \(3, 8, 8\) per sample, which the model does not accept: .*"
    network = NetworkInversion(model)
    with pytest.raises(ValueError, match=expected + "1 channels"):
        network.fit(inputs=three, **FIT)
    assert network.input_shape is None  # nothing was set from the refused inputs
    with pytest.raises(ValueError, match=expected + "1 channels"):
        NeuronInversion(model, model.conv).fit(three, **FIT)
    with pytest.raises(ValueError, match=r"`inputs` have shape \(3, 8, 8\) per sample but"):
        NeuronInversion(model, model.conv, input_shape=SHAPE).fit(three, **FIT)


def test_a_tuple_of_model_inputs_is_refused_naming_additional_forward_args(
    model: _OneChannelCNN, network: NetworkInversion
) -> None:
    pair = (_rows(), _rows())
    calls: list[Callable[[], object]] = [
        lambda: NetworkInversion(model).fit(inputs=pair, **FIT),  # type: ignore[arg-type]
        lambda: NeuronInversion(model, model.conv).fit(pair, **FIT),  # type: ignore[arg-type]
        lambda: network.attribute(pair, target=1),
    ]
    for call in calls:
        with pytest.raises(TypeError, match=f"{TUPLE_MESSAGE}.*`additional_forward_args`"):
            call()


def test_other_example_inputs_are_refused_naming_inputs(network: NetworkInversion) -> None:
    with pytest.raises(TypeError, match=r"`inputs` must be a tensor \(N, C, H, W\).*str"):
        network.attribute("images", target=1)
    with pytest.raises(ValueError, match=r"`inputs` must be an example batch.*N >= 1.*\(0, 1"):
        network.attribute(torch.zeros(0, *SHAPE), target=1)


def test_fit_accepts_float_inputs_converted_from_uint8(model: _OneChannelCNN) -> None:
    inversion = NetworkInversion(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inversion.fit(inputs=_uint8_images().float() / 255, **FIT)
    assert inversion.input_shape == SHAPE and inversion.fitted


# --- Captum's argument names ---------------------------------------------------------------------


def _bar_labels(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    r"""Records whether each fit's progress bar is enabled."""
    from captum_netinv.inversion import training

    enabled: list[bool] = []
    real_bar = training.progress_bar

    def recording_bar(*args: Any, **kwargs: Any) -> Any:
        enabled.append(bool(kwargs.get("enabled")))
        return real_bar(*args, **{**kwargs, "enabled": False})

    monkeypatch.setattr(training, "progress_bar", recording_bar)
    return enabled


def test_show_progress_is_captums_name_for_progress(
    model: _OneChannelCNN, monkeypatch: pytest.MonkeyPatch
) -> None:
    enabled = _bar_labels(monkeypatch)
    network = NetworkInversion(model, input_shape=SHAPE)
    network.fit(steps=1, batch_size=8, seed=0, show_progress=False)
    network.fit(steps=1, batch_size=8, seed=0, show_progress=True)
    network.fit(steps=1, batch_size=8, seed=0)  # our default: a bar
    units = NeuronInversion(model, model.conv, input_shape=SHAPE)
    units.fit(steps=1, batch_size=8, seed=0, show_progress=False)
    assert enabled == [False, True, True, False]
    with pytest.raises(TypeError, match="`progress` and `show_progress`"):
        network.fit(steps=1, batch_size=8, progress=True, show_progress=False)


def test_internal_batch_size_is_refused_by_a_fit_naming_batch_size(
    network: NetworkInversion, channels: NeuronInversion
) -> None:
    for inversion in (network, channels):
        with pytest.raises(TypeError, match="`internal_batch_size` .* pass `batch_size`"):
            inversion.fit(steps=1, batch_size=8, progress=False, internal_batch_size=4)


def test_internal_batch_size_sets_the_sampling_batches(
    network: NetworkInversion, channels: NeuronInversion, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert network.generator is not None and channels.generator is not None
    for inversion, selector in ((network, {"target": 1}), (channels, {"neuron_selector": 2})):
        sizes: list[int] = []

        def record(module: nn.Module, args: Any, output: Tensor, sizes: list[int] = sizes) -> None:
            sizes.append(len(output))

        handle = inversion.generator.register_forward_hook(record)  # type: ignore[union-attr]
        try:
            samples = inversion.attribute(n_samples=10, seed=0, internal_batch_size=4, **selector)
        finally:
            handle.remove()
        assert sizes == [4, 4, 2] and samples.shape == (10, *SHAPE)
        # the default: one pass of up to 256 samples
        assert inversion.attribute(n_samples=10, seed=0, **selector).shape == (10, *SHAPE)
        with pytest.raises(ValueError, match="internal_batch_size"):
            inversion.attribute(n_samples=2, internal_batch_size=0, **selector)
