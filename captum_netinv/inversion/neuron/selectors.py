"""Which units a neuron inversion covers and samples: ``neurons`` and Captum's selectors.

:func:`chosen_neurons` checks the units a generator is conditioned on;
:func:`resolve_neuron_selector` turns Captum's selector forms into positions among them.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_netinv._utils import check_positive_int, excerpt
from captum_netinv.inversion.sampling import DEFAULT_SAMPLES

__all__ = ["MAX_NEURONS", "chosen_neurons", "resolve_neuron_selector"]

#: Most units one generator is conditioned on (a whole layer of a few hundred units).
MAX_NEURONS = 512


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
) -> Tensor:
    r"""
    The fitted-unit position (index into ``neurons``) of each sample to generate, from
    Captum's ``neuron_selector`` forms: an int (a unit; a channel of a conv layer), a tuple
    ``(unit,)`` (a longer tuple indexes a position inside a channel, which the generator,
    conditioned on the reduced channel, cannot honour), a callable (resolved to the one unit
    it reads, see :meth:`NeuronInversion.attribute`), or a list / 1-D tensor of those, one
    sample each.
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
        if n_samples is not None and n_samples != len(neuron_selector):
            raise ValueError(
                f"`n_samples` ({excerpt(n_samples)}) must be None or equal the number of "
                f"selectors ({len(neuron_selector)}) when `neuron_selector` is a list or tensor"
            )
        units = [_unit_of(item, neurons, layer_shape) for item in neuron_selector]
    else:
        unit = _unit_of(neuron_selector, neurons, layer_shape)
        count = check_positive_int(DEFAULT_SAMPLES if n_samples is None else n_samples, "n_samples")
        units = [unit] * count
    position = {unit: index for index, unit in enumerate(neurons)}
    return torch.tensor([position[unit] for unit in units], dtype=torch.long)


def _unit_of(selector: object, neurons: Sequence[int], layer_shape: Sequence[int]) -> int:
    """The fitted unit one selector names; raises naming ``neuron_selector`` otherwise."""
    width = _layer_width(layer_shape)
    if callable(selector):
        unit = _unit_read_by(selector, width, layer_shape)
    elif isinstance(selector, tuple):
        if len(selector) != 1:
            raise ValueError(
                f"`neuron_selector` {excerpt(selector)}: a tuple must be (unit,); the generator "
                "is conditioned on a whole unit (a conv channel reduced to one value, as INVERT "
                "does), not on a position inside it; pass the channel"
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
    for start in range(0, width, 64):
        count = min(64, width - start)
        indicators = torch.zeros(count, *layer_shape)
        indicators[torch.arange(count), torch.arange(start, start + count)] = 1.0
        try:
            values = torch.as_tensor(selector(indicators)).detach().float().reshape(count, -1)
        except (RuntimeError, ValueError, TypeError, IndexError) as error:
            raise ValueError(
                f"`neuron_selector` callable fails on a (n, {', '.join(map(str, layer_shape))}) "
                f"layer output: {excerpt(str(error), 200)}"
            ) from error
        responding += [start + int(i) for i in torch.nonzero(values.abs().sum(dim=1) > 0).flatten()]
    if len(responding) != 1:
        raise ValueError(
            "`neuron_selector` callable must read exactly one unit (channel) of the layer's "
            f"output to be generated for; it responds to {len(responding)} "
            f"({excerpt(responding)})"
        )
    return responding[0]
