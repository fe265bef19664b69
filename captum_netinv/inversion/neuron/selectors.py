"""Which units a neuron inversion covers and samples: ``neurons`` and Captum's selectors.

:func:`chosen_neurons` checks the units a generator is conditioned on;
:func:`resolve_neuron_selector` turns Captum's selector forms into positions among them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_netinv._utils import excerpt
from captum_netinv.inversion.sampling import sample_count, samples_per_entry

__all__ = ["MAX_NEURONS", "chosen_neurons", "resolve_neuron_selector"]

#: Most units one generator is conditioned on (a whole layer of a few hundred units).
MAX_NEURONS = 512
#: Most values of one batch of indicator outputs a selector callable is probed with.
_PROBE_VALUES = 2**22
#: Why a selector of a position inside a conv channel is refused.
_WHOLE_UNIT_ONLY = (
    "the generator is conditioned on a whole unit (a conv channel reduced to one value, as "
    "INVERT does), not on a position inside it; pass the channel"
)


def chosen_neurons(neurons: object, width: int) -> list[int]:
    r"""
    The units a generator covers: all ``width`` units for None (at most :data:`MAX_NEURONS`),
    or the given int / sequence of ints, each in ``[0, width)``, without repeats.
    """
    if neurons is None:
        if width > MAX_NEURONS:
            raise ValueError(
                f"the layer has {width} units, more than one generator covers "
                f"({MAX_NEURONS}): pass `neurons` (the units to invert)"
            )
        return list(range(width))
    if isinstance(neurons, Tensor | np.ndarray):
        neurons = neurons.tolist()
    values = [neurons] if isinstance(neurons, numbers.Integral) else neurons
    if (
        isinstance(neurons, (bool, str, bytes))
        or not isinstance(values, Sequence)
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values)
    ):
        raise TypeError(f"`neurons` must be an int or a sequence of ints, got {excerpt(neurons)}")
    chosen = [int(v) for v in values]
    if not chosen:
        raise ValueError("`neurons` is empty: give at least one unit")
    if len(chosen) > MAX_NEURONS:
        raise ValueError(
            f"`neurons` holds {len(chosen)} units; one generator covers <= {MAX_NEURONS}"
        )
    outside = [v for v in chosen if not 0 <= v < width]
    if outside:
        raise ValueError(
            f"`neurons` must lie in [0, {width - 1}] (the layer's units), got {outside[:5]}"
        )
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"`neurons` repeats units: {excerpt(chosen)}")
    return chosen


def resolve_neuron_selector(
    neuron_selector: object,
    n_samples: int | None,
    neurons: Sequence[int],
    layer_shape: Sequence[int],
    rows: int | None = None,
) -> Tensor:
    r"""
    The fitted-unit position (index into ``neurons``) of each sample to generate, from
    Captum's ``neuron_selector`` forms: an int (a unit; a channel of a conv layer), a tuple
    ``(unit,)`` (a longer tuple indexes a position inside a channel, which the generator,
    conditioned on the reduced channel, cannot honour), a callable (resolved to the one unit
    it reads, which it must read whole, see :meth:`NeuronInversion.attribute`), or a list /
    1-D tensor of those, one sample each (a single entry counts as one selector).

    Args:
        neuron_selector (int, tuple, Callable, list or Tensor): The unit or units.
        n_samples (int or None): The number of samples asked for
                    (:func:`~captum_netinv.inversion.sampling.sample_count`).
        neurons (Sequence[int]): The fitted units.
        layer_shape (Sequence[int]): The shape of one sample's layer output.
        rows (int, optional): The number of rows of the example ``inputs``, if given.

    Returns:
        *Tensor* of the ``(n,)`` **positions** among ``neurons``, long.
    """
    if neuron_selector is None:
        raise ValueError("`neuron_selector` is required: the unit (or units) to generate for")
    if isinstance(neuron_selector, (Tensor, np.ndarray)) and neuron_selector.ndim == 0:
        neuron_selector = neuron_selector.item()
    if isinstance(neuron_selector, (Tensor, np.ndarray)):
        array = torch.as_tensor(neuron_selector)
        if array.dim() != 1 or not _integer_dtype(array.dtype):
            raise ValueError(
                f"`neuron_selector` as a tensor must be 1-D ints (one unit per sample), got "
                f"{excerpt(neuron_selector)}"
            )
        neuron_selector = [int(v) for v in array.tolist()]
    if isinstance(neuron_selector, list):
        if not neuron_selector:
            raise ValueError("`neuron_selector` is empty: give at least one unit")
        repeats = samples_per_entry(
            len(neuron_selector), n_samples=n_samples, rows=rows, name="neuron_selector"
        )
        units = [_unit_of(item, neurons, layer_shape) for item in neuron_selector] * repeats
    else:
        unit = _unit_of(neuron_selector, neurons, layer_shape)
        units = [unit] * sample_count(n_samples, rows)
    position = {unit: index for index, unit in enumerate(neurons)}
    return torch.tensor([position[unit] for unit in units], dtype=torch.long)


def _unit_of(selector: object, neurons: Sequence[int], layer_shape: Sequence[int]) -> int:
    """The fitted unit one selector names; raises naming ``neuron_selector`` otherwise."""
    width = _layer_width(layer_shape)
    if callable(selector):
        unit = _unit_read_by(selector, width, layer_shape)
        _check_reads_whole_unit(selector, unit, layer_shape)
    elif isinstance(selector, tuple):
        if len(selector) != 1:
            raise ValueError(
                f"`neuron_selector` {excerpt(selector)}: a tuple must be (unit,); "
                + _WHOLE_UNIT_ONLY
            )
        unit = _int_unit(selector[0])
    else:
        unit = _int_unit(selector)
    if not 0 <= unit < width:
        raise ValueError(f"`neuron_selector` {unit} is outside the layer's units [0, {width - 1}]")
    if unit not in neurons:
        raise ValueError(
            f"`neuron_selector` {unit} was not fitted: this generator covers the units "
            f"{excerpt(list(neurons))} (choose them with `neurons=` when constructing)"
        )
    return unit


def _integer_dtype(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def _int_unit(selector: object) -> int:
    if isinstance(selector, (Tensor, np.ndarray)) and selector.ndim == 0:
        selector = selector.item()
    if isinstance(selector, bool) or not isinstance(selector, numbers.Integral):
        raise TypeError(
            "`neuron_selector` must be an int, a tuple (unit,), a callable of the layer's "
            f"output, or a list / 1-D tensor of those; got {type(selector).__name__} "
            f"{excerpt(selector)}"
        )
    return int(selector)


def _layer_width(layer_shape: Sequence[int]) -> int:
    return int(layer_shape[0]) if layer_shape else 1


def _unit_read_by(selector: Callable[[Tensor], Any], width: int, layer_shape: Sequence[int]) -> int:
    """The one unit whose indicator (its unit / channel set to 1) ``selector`` responds to."""
    responding: list[int] = []
    for start, count in _probe_batches(width, layer_shape):
        indicators = torch.zeros(count, *layer_shape)
        indicators[torch.arange(count), torch.arange(start, start + count)] = 1.0
        responses = _responses(selector, indicators)
        responding += [start + int(i) for i in torch.nonzero(responses).flatten()]
    if len(responding) != 1:
        raise ValueError(
            "`neuron_selector` callable must read exactly one unit (channel) of the layer's "
            f"output to be generated for; it responds to {len(responding)} "
            f"({excerpt(responding)})"
        )
    return responding[0]


def _check_reads_whole_unit(
    selector: Callable[[Tensor], Any], unit: int, layer_shape: Sequence[int]
) -> None:
    """Raises naming ``neuron_selector`` when ``selector`` responds to only some positions of
    the channel ``unit`` (one indicator per position: that position alone set to 1)."""
    positions = math.prod(layer_shape[1:])
    if positions <= 1:
        return
    read = 0
    for start, count in _probe_batches(positions, layer_shape):
        indicators = torch.zeros(count, layer_shape[0], positions)
        indicators[torch.arange(count), unit, torch.arange(start, start + count)] = 1.0
        read += int(_responses(selector, indicators.view(count, *layer_shape)).sum())
    # none: a reduction that needs the channel jointly (e.g. a minimum) still reads all of it
    if 0 < read < positions:
        dims = tuple(range(1, len(layer_shape)))
        raise ValueError(
            f"`neuron_selector` callable reads {read} of the {positions} positions of channel "
            f"{unit}, not the whole channel: {_WHOLE_UNIT_ONLY} (an int, or a callable that "
            f"reduces all of it, e.g. `lambda out: out[:, {unit}].mean({dims})`)"
        )


def _probe_batches(total: int, layer_shape: Sequence[int]) -> list[tuple[int, int]]:
    """``(start, count)`` of the batches of ``total`` indicator outputs of ``layer_shape``."""
    size = max(1, min(64, _PROBE_VALUES // max(1, math.prod(layer_shape))))
    return [(start, min(size, total - start)) for start in range(0, total, size)]


def _responses(selector: Callable[[Tensor], Any], indicators: Tensor) -> Tensor:
    """``(n,)`` bools: whether ``selector``'s value on each indicator output is not 0."""
    shape = ", ".join(map(str, indicators.shape[1:]))
    try:
        values = torch.as_tensor(selector(indicators)).detach().float()
        values = values.reshape(len(indicators), -1)
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        raise ValueError(
            f"`neuron_selector` callable fails on a (n, {shape}) layer output: "
            f"{excerpt(str(error), 200)}"
        ) from error
    return values.abs().sum(dim=1) > 0
