"""What an INVERT label's AUC can hide: how much of the top activations the formula covers, and
its best refinement by one more literal, flagged when the AUC is saturated.

An AUC of 1 cannot grow: once a formula separates a neuron's activations perfectly, no longer
formula can win the search, even when the neuron fires only on part of the formula's samples
(``blue`` for a unit of blue triangles). The refinement ``formula & literal`` shows that part.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from captum_netinv.recognition.explanations import BeamEntry, Explanation, Refinement
from captum_netinv.recognition.formula import And, Atom, Formula, Not
from captum_netinv.recognition.ranking import auc_from_rank_sums, mid_ranks
from captum_netinv.recognition.search import SearchSettings

__all__ = [
    "SATURATION_TOLERANCE",
    "TOP_K",
    "best_refinement",
    "is_saturated",
    "refined_explanations",
    "top_coverage",
    "top_samples",
]

#: How many top-activating samples a formula's coverage is measured on (all samples in a
#: smaller data set); the same ``top_k`` as :class:`~captum_netinv.NeuronInversion`'s
#: evaluation of its top-activating inputs.
TOP_K = 100
#: An AUC within this distance of 1 (``mode="positive"``) or of 0 (``"negative"``) is saturated:
#: no formula can score better. A margin for rounding, e.g. in the float32 AUC of
#: ``reference_compatible``.
SATURATION_TOLERANCE = 1e-6


def is_saturated(auc: float, mode: str) -> bool:
    r"""
    Whether ``auc`` is as good as an AUC can be in ``mode``: within
    :data:`SATURATION_TOLERANCE` of 1 for ``"positive"``, of 0 for ``"negative"``.

    Args:
        auc (float): An AUC (nan: no formula, never saturated).
        mode (str): ``"positive"`` or ``"negative"``, as in :class:`SearchSettings`.

    Returns:
        *bool*.

    Examples::

        >>> is_saturated(1.0, "positive"), is_saturated(0.98, "positive")
        (True, False)
    """
    if math.isnan(auc):
        return False
    best = 1.0 if mode == "positive" else 0.0
    return abs(auc - best) <= SATURATION_TOLERANCE


def top_samples(activations: Tensor, k: int, mode: str) -> Tensor:
    r"""
    The indices of the ``min(k, N)`` samples a neuron activates most in ``mode``'s direction
    (highest for ``"positive"``, lowest for ``"negative"``), best first; equal activations keep
    the samples' order.

    Args:
        activations (Tensor): ``(N,)`` activations of one neuron.
        k (int): Number of samples.
        mode (str): ``"positive"`` or ``"negative"``.

    Returns:
        *Tensor* of ``min(k, N)`` sample indices.

    Examples::

        >>> top_samples(torch.tensor([0.1, 0.9, 0.5]), 2, "positive")
        tensor([1, 2])
    """
    sign = 1.0 if mode == "positive" else -1.0
    order = torch.sort(sign * activations.to(torch.float64), descending=True, stable=True)
    return order.indices[: min(k, activations.shape[0])]


def top_coverage(mask: Tensor, top: Tensor) -> float:
    r"""
    The share of the samples ``top`` (indices) where ``mask`` holds.

    Args:
        mask (Tensor): ``(N,)`` booleans.
        top (Tensor): Sample indices, e.g. of :func:`top_samples`.

    Returns:
        *float* in ``[0, 1]``.

    Examples::

        >>> top_coverage(torch.tensor([True, False, True]), torch.tensor([0, 1]))
        0.5
    """
    return float(mask[top.to(mask.device)].to(torch.float64).mean())


def best_refinement(
    activations: Tensor,
    labels: Tensor,
    formula: Formula,
    names: list[str],
    settings: SearchSettings,
) -> BeamEntry | None:
    r"""
    The best formula ``formula & literal`` over every literal (each concept and its negation)
    that keeps some but not all of the formula's samples and holds for at least
    ``min_fraction`` of the samples, scored as the search scores formulas (the AUC, highest for
    ``"positive"``, lowest for ``"negative"``); of equal scores the one holding for more
    samples wins (the largest part the neuron still separates as well), then the first literal
    (concepts in order, then their negations).

    Args:
        activations (Tensor): ``(N,)`` activations of the neuron.
        labels (Tensor): ``(N, C)`` boolean labels on the same device.
        formula (Formula): The neuron's formula.
        names (list of str): The ``C`` concept names.
        settings (SearchSettings): The search's settings (``mode``, ``min_fraction``).

    Returns:
        :class:`~captum_netinv.recognition.explanations.BeamEntry` of the refinement with its
        exact (mid-rank) AUC and support, or None when no literal refines the formula.

    Examples::

        >>> labels = torch.tensor([[1, 1], [1, 0], [0, 1], [0, 0]]).bool()
        >>> entry = best_refinement(torch.tensor([3.0, 2.0, 1.0, 0.0]), labels,
        ...                         Atom(0, "blue"), ["blue", "triangle"], SearchSettings())
        >>> str(entry.formula), entry.auc
        ('blue & triangle', 1.0)
    """
    count, concepts = labels.shape
    mask = torch.as_tensor(formula.evaluate(labels)).to(torch.bool)
    inside = labels[mask].to(torch.float64)
    ranks, _ = mid_ranks(activations)
    inside_ranks = ranks[mask]
    # size and rank sum of formula & c for each concept c, then of formula & ~c
    with_concept = inside.sum(dim=0)
    ranks_with = inside_ranks @ inside
    sizes = torch.cat([with_concept, inside.shape[0] - with_concept])
    rank_sums = torch.cat([ranks_with, inside_ranks.sum() - ranks_with])
    auc = auc_from_rank_sums(rank_sums, sizes, count)
    refines = (sizes > 0) & (sizes < inside.shape[0]) & (sizes >= settings.min_fraction * count)
    if not bool(refines.any()):
        return None
    candidates = torch.nonzero(refines).flatten().cpu().numpy()
    scores = (settings.sign * auc[refines]).cpu().numpy()
    # np.lexsort sorts by its last key first
    best = int(candidates[np.lexsort((candidates, -sizes[refines].cpu().numpy(), -scores))[0]])
    literal: Formula = Atom(best % concepts, names[best % concepts])
    if best >= concepts:
        literal = Not(literal)
    return BeamEntry(And(formula, literal), float(auc[best]), int(sizes[best]))


def refined_explanations(
    explanations: list[Explanation],
    activations: Tensor,
    labels: Tensor,
    names: list[str],
    settings: SearchSettings,
) -> list[Explanation]:
    r"""
    ``explanations`` with, for each neuron with a formula, the share of its top
    :data:`TOP_K` samples (:func:`top_samples`) its formula covers, its best refinement
    (:func:`best_refinement`) as a
    :class:`~captum_netinv.recognition.explanations.Refinement` with the share it covers, and
    whether its AUC is saturated (:func:`is_saturated`).

    Args:
        explanations (list of Explanation): One per column of ``activations``, in order.
        activations (Tensor): ``(N, k)`` activations of the explained neurons.
        labels (Tensor): ``(N, C)`` boolean labels on the same device.
        names (list of str): The ``C`` concept names.
        settings (SearchSettings): The search's settings.

    Returns:
        *list* of :class:`~captum_netinv.recognition.explanations.Explanation`, in order.
    """
    found = []
    for column, explanation in enumerate(explanations):
        if explanation.formula is None:
            found.append(explanation)
            continue
        values = activations[:, column]
        top = top_samples(values, TOP_K, settings.mode)
        entry = best_refinement(
            values, labels, formula=explanation.formula, names=names, settings=settings
        )
        refinement = None
        if entry is not None:
            refinement = Refinement(
                formula=entry.formula,
                auc=entry.auc,
                support=entry.support,
                coverage=top_coverage(torch.as_tensor(entry.formula.evaluate(labels)), top),
            )
        found.append(
            replace(
                explanation,
                top_k=int(top.shape[0]),
                coverage=top_coverage(torch.as_tensor(explanation.formula.evaluate(labels)), top),
                refinement=refinement,
                saturated=is_saturated(explanation.auc, settings.mode),
            )
        )
    return found
