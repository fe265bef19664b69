"""Measuring a neuron inversion: how high its samples drive each unit, and how varied they are.

:func:`evaluate_neurons` compares each unit's generated samples with real inputs (its 99th
percentile, its top-activating inputs) and returns a :class:`NeuronEvaluation`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from captum_netinv._activations import iterate_batches
from captum_netinv.inversion.losses import cosine_similarity, within_class_diversity
from captum_netinv.inversion.neuron.target import REFERENCE_QUANTILE, NeuronTarget
from captum_netinv.inversion.target_model import SAMPLE_BATCH_SIZE

__all__ = ["NeuronEvaluation", "evaluate_neurons", "top_activating"]


@dataclass
class NeuronEvaluation:
    r"""
    Quality of a neuron inversion per fitted unit, measured on fresh samples; ``str()`` sums
    it up (and says when there is no real-data reference). Every tensor is on the CPU.

    Attributes:
        neurons (list[int]): The fitted units, in the order of every per-unit tensor.
        median_activation (Tensor): ``(K,)`` median activation of each unit on its samples.
        reference_quantile (Tensor): ``(K,)`` each unit's 99th percentile on the real
                    ``inputs`` given to :meth:`~captum_netinv.NeuronInversion.evaluate`, else
                    on the fit's reference inputs.
        reached (Tensor): ``(K,)`` booleans, ``median_activation >= reference_quantile``.
        share_reached (float): Share of units that reached their reference quantile.
        above_rate (Tensor): ``(K,)`` share of each unit's samples above the quantile.
        diversity (Tensor): ``(K,)`` mean pairwise cosine distance of the features of each
                    unit's samples (the layer's output, or ``feature_func``'s).
        top_diversity (Tensor or None): ``(K,)`` the same on the unit's ``top_k``
                    top-activating real inputs (with ``inputs``).
        diversity_ratio (Tensor or None): ``(K,)`` ``diversity / top_diversity``.
        reference (str): ``"inputs"`` or ``"fit reference"``: where the quantile comes from.
    """

    neurons: list[int]
    median_activation: Tensor
    reference_quantile: Tensor
    reached: Tensor
    share_reached: float
    above_rate: Tensor
    diversity: Tensor
    top_diversity: Tensor | None = None
    diversity_ratio: Tensor | None = None
    reference: str = "fit reference"

    def __str__(self) -> str:
        diversity = f"diversity {float(self.diversity.nanmean()):.3f}"
        if self.top_diversity is None or self.diversity_ratio is None:
            reference = "no real-data reference (pass inputs=...)"
        else:
            reference = (
                f"top real inputs {float(self.top_diversity.nanmean()):.3f}, ratio "
                f"{float(self.diversity_ratio.nanmean()):.2f}"
            )
        return (
            f"{self.share_reached:.2f} of {len(self.neurons)} units reached their 99th "
            f"percentile ({self.reference}), {diversity} ({reference})"
        )


def top_activating(activations: Tensor, k: int) -> Tensor:
    r"""
    ``(K, min(k, N))`` indices of the ``k`` samples with the highest activation of each of the
    ``K`` columns of ``(N, K)`` ``activations``, highest first.
    """
    return torch.topk(activations, min(k, activations.shape[0]), dim=0).indices.T


def _features(
    model: NeuronTarget, samples: Tensor, feature_func: Callable[[Tensor], Tensor] | None
) -> tuple[Tensor, Tensor]:
    units, features = model.measured(samples)
    if feature_func is not None:
        with torch.no_grad():
            features = torch.cat(
                [
                    feature_func(batch).flatten(1).cpu()
                    for batch in iterate_batches(samples, SAMPLE_BATCH_SIZE)
                ]
            )
    return units, features


def evaluate_neurons(
    model: NeuronTarget,
    samples: Tensor,
    positions: Tensor,
    inputs: Tensor | None = None,
    top_k: int = 100,
    feature_func: Callable[[Tensor], Tensor] | None = None,
) -> NeuronEvaluation:
    r"""
    Measures generated ``samples`` of the fitted units at ``positions``.

    Args:
        model (NeuronTarget): The model view with the fitted units and reference statistics.
        samples (Tensor): ``(n, *input_shape)`` generated samples in model space.
        positions (Tensor): ``(n,)`` position (in ``model.neurons``) of each sample's unit;
                    every unit needs at least 2 samples.
        inputs (Tensor, optional): Real model-space inputs: the 99th percentile and the
                    top-activating inputs are measured on them.
        top_k (int, optional): Top-activating real inputs per unit for the diversity ratio.
                    Default: 100
        feature_func (Callable, optional): Features of a batch of inputs for the diversity
                    measure. Default: the layer's output.

    Returns:
        :class:`NeuronEvaluation`.
    """
    count = len(model.neurons)
    units, features = _features(model, samples, feature_func)
    own = units[torch.arange(len(positions)), positions]
    median = torch.stack([own[positions == k].median() for k in range(count)])
    diversity = within_class_diversity(features, positions, count)
    top_diversity = None
    if inputs is not None:
        real_units, real_features = _features(model, inputs, feature_func)
        quantile = torch.quantile(real_units.double(), REFERENCE_QUANTILE, dim=0).float()
        top = top_activating(real_units, top_k)
        top_diversity = torch.stack([1.0 - cosine_similarity(real_features[rows]) for rows in top])
    else:
        assert model.statistics is not None
        quantile = model.statistics.center.cpu()
    above = torch.stack([(own[positions == k] >= quantile[k]).float().mean() for k in range(count)])
    reached = median >= quantile
    return NeuronEvaluation(
        neurons=list(model.neurons),
        median_activation=median,
        reference_quantile=quantile,
        reached=reached,
        share_reached=float(reached.float().mean()),
        above_rate=above,
        diversity=diversity,
        top_diversity=top_diversity,
        diversity_ratio=None if top_diversity is None else diversity / top_diversity,
        reference="fit reference" if inputs is None else "inputs",
    )
