"""The frozen model as a neuron inversion sees it: scores of chosen units of a layer, and features.

:class:`NeuronTarget` is a :class:`~captum_netinv.inversion.target_model.TargetModel` whose
"logits" are the chosen units' standardized activations plus a constant threshold column, so that
the shared fit loop (cross-entropy, KL, hit rate) drives a unit above its real-data scale
unchanged; the units' reference statistics are measured here too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_netinv._activations import (
    Reduction,
    iterate_batches,
    reduce_activations,
)
from captum_netinv._utils import check_model_inputs, eval_mode, model_device
from captum_netinv.inversion.settings import InversionSettings
from captum_netinv.inversion.target_model import SAMPLE_BATCH_SIZE, TargetModel

__all__ = [
    "NEURON_REDUCTIONS",
    "REFERENCE_QUANTILE",
    "NeuronTarget",
    "UnitStatistics",
    "noise_reference",
    "pair_weighted",
    "unit_statistics",
]

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
        r"""All the statistics in one 1-D tensor on the CPU (to compare them), whatever the
        device each statistic was given on."""
        return torch.cat([getattr(self, key).detach().flatten().cpu() for key in _STATISTICS])

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

    @classmethod
    def of(cls, view: TargetModel, *, reduction: Reduction, reach_gate: bool) -> NeuronTarget:
        r"""The neuron view of the model ``view`` sees (the same model, layer, devices,
        normalization and forward arguments), before its units are chosen."""
        shared = {item.name: getattr(view, item.name) for item in dataclasses.fields(TargetModel)}
        return cls(**shared, reduction=reduction, reach_gate=reach_gate)

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
        model_inputs (Tensor): ``(N, *input_shape)`` reference inputs in model space, ``N >= 2``,
                    floating-point (checked by :func:`~captum_netinv._utils.check_model_inputs`).

    Returns:
        :class:`UnitStatistics`, float32 on the CPU.
    """
    if len(check_model_inputs(model_inputs)) < 2:
        raise ValueError(
            f"`inputs` must hold at least 2 reference samples, got {len(model_inputs)}"
        )
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
    # on the CPU whatever the device of the inputs (CUDA inputs made a device mismatch once)
    return UnitStatistics(
        center.float().cpu(),
        scale.clamp_min(floor).float().cpu(),
        feature_mean.float().cpu(),
        input_mean.float().cpu(),
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
