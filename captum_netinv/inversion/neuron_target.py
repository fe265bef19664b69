"""The frozen model as a neuron inversion sees it: scores of chosen units of a layer, and features.

:class:`NeuronTarget` is a :class:`~captum_netinv.inversion.target_model.TargetModel` whose
"logits" are the chosen units' standardized activations plus a constant threshold column, so that
the shared fit loop (cross-entropy, KL, hit rate) drives a unit above its real-data scale
unchanged; the module also resolves Captum's ``neuron_selector`` forms to fitted units.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from captum_netinv._activations import (
    Reduction,
    iterate_batches,
    reduce_activations,
)
from captum_netinv._utils import check_positive_int, eval_mode, excerpt, model_device
from captum_netinv.inversion.sampling import DEFAULT_SAMPLES
from captum_netinv.inversion.settings import InversionSettings
from captum_netinv.inversion.target_model import SAMPLE_BATCH_SIZE, TargetModel

__all__ = [
    "MAX_NEURONS",
    "NEURON_REDUCTIONS",
    "REFERENCE_QUANTILE",
    "NeuronTarget",
    "UnitStatistics",
    "chosen_neurons",
    "noise_reference",
    "pair_weighted",
    "resolve_neuron_selector",
    "unit_statistics",
]

#: Most units one generator is conditioned on (a whole layer of a few hundred units).
MAX_NEURONS = 512
#: How a conv channel becomes one value (as INVERT reduces it); callables cannot be saved.
NEURON_REDUCTIONS: tuple[str, ...] = ("mean", "max")
#: The quantile of a unit's reference activations its score is centred on.
REFERENCE_QUANTILE = 0.99
#: Smallest scale of a unit, as a share of the median unit's scale (dead units stay finite).
_SCALE_FLOOR = 0.05
#: Largest ``K * D`` of the block features; wider layers are average-pooled to fit.
_MAX_BLOCK_FEATURES = 2**16
_STATISTICS = ("center", "scale", "feature_mean", "input_mean")


@dataclass(frozen=True)
class UnitStatistics:
    r"""
    What a neuron inversion measures once on reference inputs.

    Attributes:
        center (Tensor): ``(K,)`` each chosen unit's 99th percentile.
        scale (Tensor): ``(K,)`` each chosen unit's standard deviation (floored).
        feature_mean (Tensor): ``(C,)`` mean of each channel (unit) of the layer's output,
                    subtracted from the diversity terms' features.
        input_mean (Tensor): ``(C_in,)`` mean of each input channel, subtracted likewise.
    """

    center: Tensor
    scale: Tensor
    feature_mean: Tensor
    input_mean: Tensor

    def flat(self) -> Tensor:
        r"""All the statistics in one 1-D tensor (to compare them)."""
        return torch.cat([getattr(self, key).flatten() for key in _STATISTICS])

    def to_dict(self) -> dict[str, list[float]]:
        r"""Plain lists, as saved files hold them."""
        return {key: getattr(self, key).tolist() for key in _STATISTICS}

    @classmethod
    def from_dict(cls, values: dict[str, list[float]]) -> UnitStatistics:
        r"""The statistics of :meth:`to_dict`'s form."""
        return cls(*(torch.tensor(values[key]) for key in _STATISTICS))


@dataclass(frozen=True)
class NeuronTarget(TargetModel):
    r"""
    The model with the layer whose units are inverted.

    :meth:`logits_and_features` returns ``(B, K + 1)`` **scores**: column ``k`` is unit
    ``neurons[k]``'s reduced activation standardized as ``(a - center) / scale`` (``center``:
    its 99th percentile on reference inputs), the last column a constant 0. Cross-entropy to
    unit ``k`` thus asks the unit both to beat the other chosen units and to exceed its own
    99th percentile; the diversity terms' features are compared within a unit only
    (:meth:`logits_and_features`, :meth:`pairwise_cosine`).

    Attributes:
        neurons (tuple[int, ...]): The chosen units (indices of the reduced layer output).
        reduction (str): ``"mean"`` or ``"max"``: how a channel's map becomes one value.
        statistics (UnitStatistics or None): The reference statistics (set by a fit).
        reach_gate (bool): Compare in the diversity terms only samples whose unit is above its
                    99th percentile (:meth:`logits_and_features`).
    """

    neurons: tuple[int, ...] = ()
    reduction: Reduction = "mean"
    statistics: UnitStatistics | None = None
    reach_gate: bool = True

    def layer_output(self, model_inputs: Tensor) -> Tensor:
        r"""The layer's unreduced output for one batch, in the autograd graph."""
        return self.output_and_layer(model_inputs)[1]

    def units_and_features(self, model_inputs: Tensor) -> tuple[Tensor, Tensor]:
        r"""``(B, K)`` activations of the chosen units and ``(B, D)`` layer features."""
        values = self.layer_output(model_inputs)
        units = reduce_activations(values, self.reduction)[:, list(self.neurons)]
        return units, values.flatten(1)

    def standardized(self, units: Tensor) -> Tensor:
        r"""``(a - center) / scale`` of ``(B, K)`` unit activations."""
        if self.statistics is None:
            raise ValueError("the units' reference statistics are not set: fit first")
        center = self.statistics.center.to(units.device)
        return (units - center) / self.statistics.scale.to(units.device)

    def logits_and_features(self, model_inputs: Tensor) -> tuple[Tensor, Tensor]:
        r"""
        ``(B, K + 1)`` scores (see the class) and the diversity terms' features of one batch,
        ``(B, 2 + D)``: column 0 the position of the unit the sample drives most (its
        *block*), column 1 its *gate* (1 where that unit's score is above 0, i.e. above its
        99th percentile, or always without ``reach_gate``; both without gradient), then the
        sample's layer output (centred on the reference channel means, without that unit's
        channel, which would dominate every direction) joined to its centred input, each part
        of unit length (average-pooled where wide). :meth:`pairwise_cosine` reads them as the
        Kronecker layout ``(B, K D)`` in which each sample's features sit in its block's ``D``
        columns, so that pairwise terms compare samples of the same unit only (samples of
        different units are orthogonal), without building that ``K`` times wider tensor; a
        pair with a closed gate is left out (cosine 0): diversity is asked only of samples
        that fire their unit, so that it cannot be bought with samples that never reach it.
        """
        values = self.layer_output(model_inputs)
        units = reduce_activations(values, self.reduction)[:, list(self.neurons)]
        scores = self.standardized(units)
        threshold = scores.new_zeros(len(scores), 1)
        count = scores.shape[1]
        owner = scores.detach().argmax(dim=1)
        assert self.statistics is not None
        parts = [
            _centred_without_owner(values, self, owner),
            _centred(model_inputs, self.statistics.input_mean).flatten(1),
        ]
        width = max(8, _MAX_BLOCK_FEATURES // (2 * count))
        features = torch.cat(
            [
                F.normalize(
                    part
                    if part.shape[1] <= width
                    else F.adaptive_avg_pool1d(part.unsqueeze(1), width).squeeze(1),
                    dim=1,
                    eps=1e-8,
                )
                for part in parts
            ],
            dim=1,
        )
        # float32 whatever the autocast dtype: block indices stay exact (bfloat16 holds
        # integers exactly only up to 256); the owner's score is the sample's highest score
        blocks = owner.unsqueeze(1).float()
        reached = scores.detach().amax(dim=1, keepdim=True) > 0
        gates = (reached if self.reach_gate else torch.ones_like(reached)).float()
        packed = torch.cat([blocks, gates, features.float()], dim=1)
        return torch.cat([scores, threshold], dim=1), packed

    def pairwise_cosine(self, features: Tensor) -> Tensor:
        r"""
        The ``(B, B)`` cosine matrix of :meth:`logits_and_features`' features in their
        Kronecker layout: the cosine of two samples' features where they share a block and
        both gates are open, 0 otherwise.
        """
        block, gate = features[:, 0].detach().round(), features[:, 1].detach()
        own = F.normalize(features[:, 2:], eps=1e-8)
        kept = (block.unsqueeze(1) == block.unsqueeze(0)).to(own.dtype) * gate.outer(gate)
        return (own @ own.T) * kept

    def measured(self, model_inputs: Tensor) -> tuple[Tensor, Tensor]:
        r"""Unit activations and features of any number of samples, batched, on the CPU."""
        units, features = [], []
        device = model_device(self.forward_func)
        with torch.no_grad(), eval_mode(self.forward_func):
            for batch in iterate_batches(model_inputs, SAMPLE_BATCH_SIZE):
                unit, feature = self.units_and_features(batch.to(device))
                units.append(unit.cpu())
                features.append(feature.cpu())
        return torch.cat(units), torch.cat(features)

    def with_statistics(self, statistics: UnitStatistics | None) -> NeuronTarget:
        r"""This view with other reference statistics."""
        return dataclasses.replace(self, statistics=statistics)


def _centred_without_owner(values: Tensor, model: NeuronTarget, owner: Tensor) -> Tensor:
    """``(B, D)``: the layer output minus the channel means, the owner unit's channel zeroed."""
    assert model.statistics is not None
    centred = _centred(values, model.statistics.feature_mean)
    keep = torch.ones(values.shape[:2], device=values.device, dtype=values.dtype)
    units = torch.tensor(model.neurons, device=values.device)[owner]
    keep[torch.arange(len(values), device=values.device), units] = 0.0
    return (centred * keep.view(*values.shape[:2], *(1,) * (values.dim() - 2))).flatten(1)


def _centred(values: Tensor, mean: Tensor) -> Tensor:
    """``values`` minus a mean per channel (dimension 1)."""
    return values - mean.to(values.device).view((1, -1) + (1,) * (values.dim() - 2))


def unit_statistics(model: NeuronTarget, model_inputs: Tensor) -> UnitStatistics:
    r"""
    Each chosen unit's 99th percentile and standard deviation on ``model_inputs`` (floored at
    5% of the median unit's, so that a unit that never varies gets a finite score), and the
    mean of every channel of the layer's output.

    Args:
        model (NeuronTarget): The model view with its chosen units.
        model_inputs (Tensor): ``(N, *input_shape)`` reference inputs in model space, ``N >= 2``.

    Returns:
        :class:`UnitStatistics`, float32 on the CPU.
    """
    if not isinstance(model_inputs, Tensor) or len(model_inputs) < 2:
        raise ValueError("`inputs` must hold at least 2 reference samples")
    units, features = model.measured(model_inputs)
    units = units.double()
    center = torch.quantile(units, REFERENCE_QUANTILE, dim=0)
    scale = units.std(dim=0)
    floor = max(float(scale.median()) * _SCALE_FLOOR, 1e-6)
    with torch.no_grad(), eval_mode(model.forward_func):
        first = model_inputs[:1].to(model_device(model.forward_func))
        channels = model.layer_output(first).shape[1]
    feature_mean = features.double().view(len(features), channels, -1).mean(dim=(0, 2))
    input_mean = model_inputs.double().transpose(0, 1).reshape(model_inputs.shape[1], -1).mean(1)
    return UnitStatistics(
        center.float(), scale.clamp_min(floor).float(), feature_mean.float(), input_mean.float()
    )


def pair_weighted(
    settings: InversionSettings, batch_size: int, count: int, names: Sequence[str]
) -> InversionSettings:
    r"""
    The settings a fit of ``batch_size`` samples of ``count`` units trains with: the diversity
    terms ``names`` compare only pairs of one unit's samples (:class:`NeuronTarget`), a share
    ``(n - 1) / (B - 1)`` of the batch's pairs with ``n`` samples per unit, so their weights
    are divided by that share and the declared weights weigh the mean over a unit's pairs.
    """
    weights = dict(settings.loss_weights)
    per_unit = batch_size // count
    for name in names:
        weights[name] *= (batch_size - 1) / (per_unit - 1)
    return settings.replace(loss_weights=weights)


def noise_reference(
    input_shape: Sequence[int], input_range: tuple[float, float], count: int = 512
) -> Tensor:
    r"""
    Reference inputs when no real ones are given: half uniform noise in ``input_range``, half
    the same noise blurred (3x3 mean), from a fixed seed; pixel space.
    """
    rng = torch.Generator().manual_seed(0)
    low, high = input_range
    noise = low + (high - low) * torch.rand(count, *input_shape, generator=rng)
    blurred = torch.nn.functional.avg_pool2d(noise, 3, stride=1, padding=1, count_include_pad=False)
    half = count // 2
    return torch.cat([noise[:half], blurred[half:]])


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
