"""Rank statistics of neuron activations: mid-ranks, the rank-sum AUC and the Mann-Whitney U test.

The AUC of a concept mask is ``U / (n+ n-)`` with ``U`` from the mask's rank sum, so once each
neuron is ranked the AUC of any mask is one dot product. P-values follow
``scipy.stats.mannwhitneyu`` with ``method="auto"`` and ``use_continuity=True``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal, NamedTuple, TypeVar

import numpy as np
import torch
from scipy.special import ndtr
from torch import Tensor

__all__ = [
    "ALTERNATIVES",
    "Alternative",
    "MannWhitneyResult",
    "auc_from_rank_sums",
    "doubled_row_ranks",
    "mann_whitney_p_values",
    "mann_whitney_u",
    "mid_ranks",
    "rank_auc",
    "u_statistic",
]

Alternative = Literal["two-sided", "greater", "less"]
ALTERNATIVES: tuple[str, ...] = ("two-sided", "greater", "less")
#: ``scipy.stats.mannwhitneyu(method="auto")`` uses the exact null distribution when the smaller
#: sample has at most this many values and no value is tied.
_EXACT_MAX_SAMPLE = 8
_Values = TypeVar("_Values", Tensor, np.ndarray)


class MannWhitneyResult(NamedTuple):
    r"""
    Per-test results of :func:`mann_whitney_p_values` / :func:`mann_whitney_u`.

    - **u**: ``U`` statistic of the positive samples (as ``scipy``'s ``statistic``).
    - **auc**: ``U / (n+ n-)``.
    - **z**: ``(U - n+ n- / 2) / sigma`` with the tie-corrected ``sigma`` and no continuity
      correction; > 0 when the positive samples rank higher.
    - **p_value**: the test's p-value.
    - **exact**: whether the exact null distribution was used (else the normal approximation).
    """

    u: np.ndarray
    auc: np.ndarray
    z: np.ndarray
    p_value: np.ndarray
    exact: np.ndarray


def mid_ranks(activations: Tensor) -> tuple[Tensor, Tensor]:
    r"""
    Ranks each column of ``activations`` (1 = smallest), tied values sharing their mean rank.

    Args:
        activations (Tensor): ``(N,)`` or ``(N, K)`` values; each column is ranked on its own,
                    on the tensor's device.

    Returns:
        *Tensor* of **ranks**, *Tensor* of **tie_terms**:
        - **ranks**: ``float64`` tensor shaped like ``activations``; ranks are multiples of 1/2.
        - **tie_terms**: ``float64`` tensor of ``sum(t**3 - t)`` over the groups of ``t`` tied
          values of each column, as used by the tie-corrected normal approximation.

    Examples::

        >>> ranks, ties = mid_ranks(torch.tensor([3.0, 1.0, 3.0, 2.0]))
        >>> ranks.tolist(), ties.item()
        ([3.5, 1.0, 3.5, 2.0], 6.0)
    """
    doubled, tie_terms = _doubled_mid_ranks(activations)
    return doubled / 2.0, tie_terms


def _doubled_mid_ranks(activations: Tensor) -> tuple[Tensor, Tensor]:
    r"""
    Twice the mid-ranks of :func:`mid_ranks`: whole numbers in ``float64``, so that sums of them
    (and the AUCs built from those sums) are exact for up to ``9e7`` samples.
    """
    if activations.dim() == 1:
        doubled, tie_terms = doubled_row_ranks(activations.unsqueeze(0))
        return doubled.squeeze(0), tie_terms.squeeze(0)
    doubled, tie_terms = doubled_row_ranks(activations.t().contiguous())
    return doubled.t(), tie_terms


def doubled_row_ranks(values: Tensor) -> tuple[Tensor, Tensor]:
    r"""
    Twice the :func:`mid_ranks` of each *row* of a ``(K, N)`` tensor (rows are contiguous, so
    sorting and scanning them is fast), with the tie terms of each row.
    """
    count = values.shape[1]
    ordered, order = torch.sort(_sort_keys(values), dim=1)
    positions = torch.arange(count, device=values.device).expand_as(ordered)
    starts_group = torch.ones_like(ordered, dtype=torch.bool)
    starts_group[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends_group = torch.ones_like(ordered, dtype=torch.bool)
    ends_group[:, :-1] = starts_group[:, 1:]
    first = torch.cummax(torch.where(starts_group, positions, 0), dim=1).values
    last = torch.where(ends_group, positions, count - 1).flip(1).cummin(dim=1).values.flip(1)
    # positions are 0-based: the mid-rank of a group is (first + last) / 2 + 1
    doubled = torch.empty_like(values, dtype=torch.float64)
    doubled.scatter_(1, order, (first + last + 2).to(torch.float64))
    sizes = (last - first + 1).to(torch.float64)
    tie_terms = torch.where(starts_group, sizes**3 - sizes, 0.0).sum(dim=1)
    return doubled, tie_terms


def _sort_keys(values: Tensor) -> Tensor:
    r"""
    Integers ordered and tied exactly as the finite ``values`` (which sort faster than floats on
    the CPU): the bits of a float reinterpreted as a signed integer, with the order of the
    negative ones reversed and ``-0.0`` merged into ``0.0``. Integer inputs come back as they are.
    """
    if not values.is_floating_point():
        return values
    if values.dtype in (torch.float16, torch.bfloat16):
        values = values.to(torch.float32)
    as_int = torch.int64 if values.dtype == torch.float64 else torch.int32
    bits = (values + 0.0).view(as_int)  # + 0.0 turns -0.0 into 0.0
    magnitude = torch.iinfo(as_int).max
    return torch.where(bits < 0, bits ^ magnitude, bits)


def u_statistic(rank_sums: _Values, positives: _Values) -> _Values:
    r"""
    The Mann-Whitney ``U`` of the positive samples from the sum of their mid-ranks:
    ``U = R - n+ (n+ + 1) / 2``, elementwise, in ``float64``.

    Args:
        rank_sums (Tensor or ndarray): Sums ``R`` of the mid-ranks of the positive samples.
        positives (Tensor or ndarray): Numbers ``n+`` of positive samples (broadcast with
                    ``rank_sums``; of the same kind, tensor or array).

    Returns:
        *Tensor* or *ndarray*, as ``rank_sums``, of ``U`` statistics (``scipy.stats.mannwhitneyu``'s
        ``statistic``).

    Examples::

        >>> u_statistic(torch.tensor([7.0]), torch.tensor([2]))
        tensor([4.], dtype=torch.float64)
    """
    if isinstance(rank_sums, Tensor):
        sums = rank_sums.to(torch.float64)
        counts = torch.as_tensor(positives, device=sums.device).to(torch.float64)
        return sums - counts * (counts + 1.0) / 2.0
    sums_array = np.asarray(rank_sums, dtype=np.float64)
    counts_array = np.asarray(positives, dtype=np.float64)
    return sums_array - counts_array * (counts_array + 1.0) / 2.0


def auc_from_rank_sums(rank_sums: Tensor, positives: Tensor, count: int) -> Tensor:
    r"""
    AUC ``U / (n+ n-)`` of masks from the sums of their samples' mid-ranks
    (:func:`u_statistic`).

    Args:
        rank_sums (Tensor): Sums of the mid-ranks of the positive samples.
        positives (Tensor): Number of positive samples ``n+`` (broadcast with ``rank_sums``).
        count (int): Number of samples ``N = n+ + n-``.

    Returns:
        *Tensor* of ``float64`` AUCs; ``nan`` where ``n+`` is 0 or ``N``.
    """
    positives = positives.to(torch.float64)
    return u_statistic(rank_sums, positives) / (positives * (count - positives))


def rank_auc(activations: Tensor, mask: Tensor) -> Tensor:
    r"""
    AUC of ``activations`` for separating the samples in ``mask`` from the rest (ties count 1/2),
    equal to ``sklearn.metrics.roc_auc_score(mask, activations)`` for each column.

    Args:
        activations (Tensor): ``(N,)`` or ``(N, K)`` activations.
        mask (Tensor): ``(N,)`` booleans (shared by all columns) or ``(N, K)``.

    Returns:
        *Tensor* of ``float64`` AUCs, one per column.

    Examples::

        >>> rank_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]).bool())
        tensor(0.7500, dtype=torch.float64)
    """
    rank_sums, positives, _ = _masked_rank_sums(activations, mask)
    return auc_from_rank_sums(rank_sums, positives, activations.shape[0])


def mann_whitney_u(
    activations: Tensor, mask: Tensor, alternative: Alternative = "two-sided"
) -> MannWhitneyResult:
    r"""
    Mann-Whitney U test of the samples in ``mask`` against the rest, per column of
    ``activations``; the same as ``scipy.stats.mannwhitneyu(x[mask], x[~mask], alternative)``
    with its defaults (``method="auto"``, ``use_continuity=True``). See
    :func:`mann_whitney_p_values` for the methods.

    Args:
        activations (Tensor): ``(N,)`` or ``(N, K)`` activations.
        mask (Tensor): ``(N,)`` or ``(N, K)`` booleans, each column with positive and negative
                    samples.
        alternative (str, optional): ``"two-sided"``, ``"greater"`` (the masked samples rank
                    higher) or ``"less"``. Default: ``"two-sided"``

    Returns:
        :class:`MannWhitneyResult` of arrays with one value per column.
    """
    rank_sums, positives, tie_terms = _masked_rank_sums(activations, mask)
    count = activations.shape[0]
    if bool(((positives == 0) | (positives == count)).any()):
        raise ValueError("`mask` must select at least one sample and leave at least one out")
    return mann_whitney_p_values(
        u_statistic(rank_sums, positives).cpu().numpy(),
        positives.cpu().numpy(),
        (count - positives).cpu().numpy(),
        tie_terms.cpu().numpy(),
        alternative,
    )


def _masked_rank_sums(activations: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per column: the mid-rank sum of the samples in ``mask``, their number and the tie terms."""
    doubled, tie_terms = _doubled_mid_ranks(activations)
    positive = torch.as_tensor(mask, device=doubled.device)
    if positive.shape[0] != doubled.shape[0]:
        raise ValueError(
            f"`mask` has {positive.shape[0]} samples but `activations` {doubled.shape[0]}"
        )
    if positive.dim() == 1 and doubled.dim() == 2:
        positive = positive.unsqueeze(1)
    positive = positive.to(torch.float64)
    return (doubled * positive).sum(dim=0) / 2.0, positive.sum(dim=0), tie_terms


def mann_whitney_p_values(
    u: np.ndarray,
    positives: np.ndarray,
    negatives: np.ndarray,
    tie_terms: np.ndarray,
    alternative: Alternative = "two-sided",
) -> MannWhitneyResult:
    r"""
    P-values of Mann-Whitney U tests from their statistics, vectorized over tests.

    The method is the one ``scipy.stats.mannwhitneyu(method="auto")`` picks: the **exact** null
    distribution of ``U`` when the smaller sample has at most 8 values and no value is tied
    (``tie_terms == 0``), otherwise the **asymptotic** normal approximation with the tie
    correction of the variance and a continuity correction of 1/2. One-sided p-values are
    ``P(U' >= U)`` for ``"greater"`` and ``P(U' <= U)`` for ``"less"``; two-sided ones are twice
    the smaller tail, capped at 1.

    Args:
        u (ndarray): ``U`` statistics of the positive samples.
        positives (ndarray): Numbers of positive samples ``n+``.
        negatives (ndarray): Numbers of negative samples ``n-``.
        tie_terms (ndarray): ``sum(t**3 - t)`` over groups of tied values of the pooled sample.
        alternative (str, optional): ``"two-sided"``, ``"greater"`` or ``"less"``.
                    Default: ``"two-sided"``

    Returns:
        :class:`MannWhitneyResult`.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"`alternative` must be one of {ALTERNATIVES}, got {alternative!r}")
    arrays = np.broadcast_arrays(
        *(np.asarray(value, dtype=np.float64) for value in (u, positives, negatives, tie_terms))
    )
    shape = arrays[0].shape
    u1, n1, n2, ties = (value.reshape(-1).copy() for value in arrays)
    u2 = n1 * n2 - u1
    tested, factor = {
        "greater": (u1, 1.0),
        "less": (u2, 1.0),
        "two-sided": (np.maximum(u1, u2), 2.0),
    }[alternative]
    total = n1 + n2
    mean = n1 * n2 / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.sqrt(n1 * n2 / 12.0 * ((total + 1.0) - ties / (total * (total - 1.0))))
        z = (u1 - mean) / sigma
        p_value = ndtr(-(tested - mean - 0.5) / sigma)
    exact = (np.minimum(n1, n2) <= _EXACT_MAX_SAMPLE) & (ties == 0)
    for index in np.flatnonzero(exact):
        p_value[index] = _exact_upper_tail(int(n1[index]), int(n2[index]), int(tested[index]))
    p_value = np.clip(p_value * factor, 0.0, 1.0)
    with np.errstate(invalid="ignore"):
        auc = u1 / (n1 * n2)
    return MannWhitneyResult(
        u=u1.reshape(shape),
        auc=auc.reshape(shape),
        z=z.reshape(shape),
        p_value=p_value.reshape(shape),
        exact=exact.reshape(shape),
    )


def _exact_upper_tail(n1: int, n2: int, u: int) -> float:
    """``P(U' >= u)`` under the null hypothesis, from the exact distribution of ``U``."""
    probabilities = _u_null_distribution(min(n1, n2), max(n1, n2))
    # the distribution is symmetric; summing the short lower tail keeps small p-values accurate
    complement = n1 * n2 - u
    if u > complement:
        return float(probabilities[: complement + 1].sum())
    return float(1.0 - probabilities[:u].sum())


@lru_cache(maxsize=64)
def _u_null_distribution(small: int, large: int) -> np.ndarray:
    """
    ``P(U = u)`` for ``u = 0 .. small * large`` with no ties: the coefficients of the Gaussian
    binomial ``[small + large choose small]_q`` over ``binom(small + large, small)``.
    """
    degree = small * large
    counts = np.zeros(degree + small + 2)
    counts[0] = 1.0
    for step in range(1, small + 1):
        # [large + step choose step] = [large + step - 1 choose step - 1]
        #                              * (1 - q^(large + step)) / (1 - q^step)
        shift = large + step
        counts[shift:] -= counts[:-shift].copy()
        for residue in range(step):
            counts[residue::step] = np.cumsum(counts[residue::step])
    counts = counts[: degree + 1]
    # the lower half is summed without cancellation; mirror it onto the upper half
    half = degree // 2
    counts[degree - half :] = counts[: half + 1][::-1]
    return counts / counts.sum()
