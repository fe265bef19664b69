"""The feature-statistics prior: a few real inputs' per-channel feature moments, matched in a fit.

DeepInversion's BatchNorm prior (Yin et al., 2020) generalised by hooks to models without
BatchNorm: the inputs of every convolution and linear layer are recorded on ``reference_inputs``
once, and a fit pulls the generated batch's per-channel means and standard deviations there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from captum_netinv._utils import eval_mode, modules_of

__all__ = [
    "FeatureStatistics",
    "channel_moments",
    "record_inputs",
    "reference_statistics",
    "statistics_layers",
]

#: Added to the reference variances before dividing by them: channels that the reference inputs
#: leave constant (a border pixel, a dead unit) are compared in absolute terms, not blown up.
_VARIANCE_FLOOR = 1e-4
_LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass(frozen=True)
class FeatureStatistics:
    r"""
    Per-channel means and standard deviations of the inputs of a model's layers on real data.

    Attributes:
        layers (tuple[nn.Module, ...]): The layers whose inputs were recorded.
        means (tuple[Tensor, ...]): ``(C,)`` per layer: the mean of each input channel (over
                    samples and positions).
        stds (tuple[Tensor, ...]): ``(C,)`` per layer: the standard deviation of each channel.
        count (int): Number of reference inputs.
    """

    layers: tuple[nn.Module, ...]
    means: tuple[Tensor, ...]
    stds: tuple[Tensor, ...]
    count: int

    def distance(self, records: Sequence[tuple[nn.Module, Tensor]]) -> Tensor:
        r"""
        The prior's loss for a generated batch: per layer, the mean over channels of the squared
        differences of means and of standard deviations, each divided by the reference variance
        (scale-free, so every layer counts alike), then averaged over the layers.

        Args:
            records (list): ``(layer, input)`` pairs of this batch (:func:`record_inputs`),
                        one for each of :attr:`layers`.

        Returns:
            *Tensor*, a scalar >= 0.
        """
        inputs = dict((id(layer), value) for layer, value in records)
        missing = [layer for layer in self.layers if id(layer) not in inputs]
        if missing:
            raise ValueError(
                f"the feature-statistics prior saw no input for {len(missing)} of its "
                f"{len(self.layers)} layers (first: {missing[0].__class__.__name__}); the model "
                "must run every layer it ran on `reference_inputs`"
            )
        distances = []
        for layer, mean, std in zip(self.layers, self.means, self.stds, strict=True):
            batch_mean, batch_std = channel_moments(inputs[id(layer)])
            scale = std.to(batch_mean.device).pow(2) + _VARIANCE_FLOOR
            gap = (batch_mean - mean.to(batch_mean.device)).pow(2)
            gap = gap + (batch_std - std.to(batch_std.device)).pow(2)
            distances.append((gap / scale).mean())
        return torch.stack(distances).mean()


def channel_moments(inputs: Tensor) -> tuple[Tensor, Tensor]:
    r"""
    Per-channel mean and standard deviation of ``(B, C, ...)`` ``inputs`` over the samples and
    positions (over the samples alone for ``(B, C)``).

    Examples::

        >>> mean, std = channel_moments(torch.ones(4, 3, 2, 2))
        >>> mean.tolist(), std.tolist()
        ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    """
    dims = [0, *range(2, inputs.dim())]
    mean = inputs.mean(dim=dims)
    variance = inputs.var(dim=dims, unbiased=False)
    return mean, (variance + 1e-12).sqrt()


def statistics_layers(model: object) -> list[nn.Module]:
    r"""The convolution and linear layers of ``model`` (or of the modules a callable runs) whose
    inputs the prior matches, in module order."""
    return [
        layer
        for module in modules_of(model)
        for layer in module.modules()
        if isinstance(layer, _LAYER_TYPES)
    ]


@contextmanager
def record_inputs(layers: Iterable[nn.Module]) -> Iterator[list[tuple[nn.Module, Tensor]]]:
    r"""
    Records the input of each of ``layers`` during the forward passes run inside the block; the
    hooks are removed on exit, whatever happens.

    Yields:
        The list that receives ``(layer, input)`` pairs.
    """
    records: list[tuple[nn.Module, Tensor]] = []
    handles = [
        layer.register_forward_pre_hook(lambda module, args: records.append((module, args[0])))
        for layer in layers
    ]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def reference_statistics(
    forward: Callable[[Tensor], object],
    model: object,
    reference_inputs: Tensor,
    *,
    batch_size: int = 256,
) -> FeatureStatistics:
    r"""
    The :class:`FeatureStatistics` of ``reference_inputs``: each convolution and linear layer's
    input moments, pooled over batches exactly (sums of values and of squares, in float64).

    Args:
        forward (Callable): Runs a batch of model-space inputs through the model.
        model (nn.Module or Callable): Where the layers are found (:func:`statistics_layers`);
                    put in eval mode for the passes.
        reference_inputs (Tensor): ``(N, C, H, W)`` real inputs in model space, N >= 2.
        batch_size (int, optional): Inputs per forward pass. Default: 256

    Returns:
        :class:`FeatureStatistics`.
    """
    if not isinstance(reference_inputs, Tensor) or not reference_inputs.is_floating_point():
        raise TypeError(
            "`reference_inputs` must be a floating-point tensor of real model-space inputs, got "
            f"{type(reference_inputs).__name__}"
            + (f" of {reference_inputs.dtype}" if isinstance(reference_inputs, Tensor) else "")
        )
    if len(reference_inputs) < 2:
        raise ValueError(
            f"`reference_inputs` must hold at least 2 inputs, got {len(reference_inputs)}"
        )
    layers = statistics_layers(model)
    if not layers:
        raise ValueError(
            "`reference_inputs` were given but the model has no convolution or linear layer "
            "whose inputs the feature-statistics prior could match"
        )
    sums: dict[int, list[Tensor]] = {}
    with eval_mode(model):
        for batch in reference_inputs.split(batch_size):
            with record_inputs(layers) as records:
                forward(batch)
            for layer, value in records:
                flat = value.detach().double().transpose(0, 1).reshape(value.shape[1], -1)
                moments = [flat.sum(1), flat.pow(2).sum(1), torch.tensor(flat.shape[1])]
                totals = sums.setdefault(id(layer), [torch.zeros_like(m) for m in moments])
                for total, moment in zip(totals, moments, strict=True):
                    total += moment.to(total.device)
    seen = [layer for layer in layers if id(layer) in sums]
    means, stds = [], []
    for layer in seen:
        total, squares, count = sums[id(layer)]
        mean = total / count
        variance = (squares / count - mean.pow(2)).clamp_min(0)
        means.append(mean.float().cpu())
        stds.append(variance.sqrt().float().cpu())
    return FeatureStatistics(
        layers=tuple(seen), means=tuple(means), stds=tuple(stds), count=len(reference_inputs)
    )
