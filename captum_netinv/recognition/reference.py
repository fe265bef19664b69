"""INVERT's search exactly as the official implementation (lapalap/invert v1.1) runs it.

Same beam (duplicates kept, same tie order), same torchmetrics AUC arithmetic, same SciPy p-value.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import reduce
from typing import Literal

import numpy as np
import torch
from scipy.stats import mannwhitneyu
from torch import Tensor

from captum_netinv._utils import check_positive_int
from captum_netinv.recognition.formula import And, Atom, Formula, Not, Or
from captum_netinv.recognition.ranking import u_statistic
from captum_netinv.recognition.search import SearchSettings

__all__ = [
    "ReferenceExplanation",
    "ReferenceNeuronResult",
    "reference_auc",
    "reference_p_value",
    "reference_search",
]

#: Most booleans one batch of candidate masks may hold (bounds memory on large workloads).
_BATCH_ELEMENTS = 1 << 26
#: Candidates whose exact AUC is this far behind the beam's cannot enter it once computed in
#: float32 (whose error is ~1e-7); only the others get the official float32 AUC.
_SHORTLIST_MARGIN = 1e-3
_ALTERNATIVES = ("two-sided", "less", "greater")
#: The level of the beam of single literals (the official ``ATOMIC_CONCEPTS``).
_FIRST_LEVEL = 1


@dataclass(frozen=True, eq=False)
class ReferenceExplanation:
    r"""
    One beam slot of the official search.

    - **formula**: the formula, simplified as SymPy simplifies it when the official code builds it
      (``a & a`` is ``a``; nested ``&`` / ``|`` are flattened).
    - **text**: the formula as the official code prints it (``str`` of its SymPy expression).
    - **level**: the search level that produced the slot (the official ``"length"``); duplicates of
      shorter formulas keep the level that re-created them.
    - **auc**: the official AUC (torchmetrics ``binary_auroc``, float32).
    - **support**: number of samples where the formula holds.
    - **fraction**: ``support / N`` as the official code computes it (float32).
    - **mask**: ``(N,)`` bool tensor, the samples where the formula holds.
    - **p_value**: Mann-Whitney U p-value as the official ``get_p_value`` (final beam only).
    """

    formula: Formula
    text: str
    level: int
    auc: float
    support: int
    fraction: float
    mask: Tensor = field(repr=False)
    p_value: float | None = None


@dataclass(frozen=True, eq=False)
class ReferenceNeuronResult:
    r"""
    The official search's result for one neuron.

    - **neuron**: column of the neuron in ``activations``.
    - **beam**: the final beam (``beam_size`` slots, best first), with p-values.
    - **states**: the beam after each level ``1..formula_length`` (the official
      ``memorize_states=True`` output).
    - **best_by_length**: for each ``l`` in ``1..formula_length``, the best formula with at most
      ``l`` concepts (``states[l][0]``).
    """

    neuron: int
    beam: list[ReferenceExplanation]
    states: dict[int, list[ReferenceExplanation]]
    best_by_length: dict[int, ReferenceExplanation]

    @property
    def best(self) -> ReferenceExplanation | None:
        r"""The best formula of the final beam (None when no formula was admissible)."""
        return self.beam[0] if self.beam else None

    @property
    def p_value(self) -> float | None:
        r"""The p-value of the best formula (None when there is none)."""
        best = self.best
        return None if best is None else best.p_value


@dataclass(frozen=True, eq=False)
class _Slot:
    """A beam slot during the search; its formula is rebuilt only if it is kept."""

    mask: Tensor  # in the neuron's descending-activation order
    auc: float
    support: int
    fraction: float
    level: int
    atom: int  # index into the 2C literals: c for concept c, C + c for its negation
    parent: _Slot | None = None
    operator: str = ""


@dataclass(frozen=True)
class _Settings:
    beam_size: int
    min_fraction: float
    max_fraction: float
    descending: bool
    limit_search: int | None


@dataclass(frozen=True)
class _RocCurve:
    """A neuron's activations in torchmetrics' descending order, and where their values change."""

    order: Tensor
    group_ends: Tensor
    doubled_ranks: Tensor  # float64, twice each sample's ascending mid-rank, in ``order``


def _roc_curve(activations: Tensor) -> _RocCurve:
    preds = activations.to(torch.float32).flatten()
    # torchmetrics treats scores outside [0, 1] as logits
    if not torch.all((0 <= preds) * (preds <= 1)):
        preds = preds.sigmoid()
    order = torch.argsort(preds, descending=True)
    ordered = preds[order]
    distinct = torch.nonzero(ordered[1:] - ordered[:-1], as_tuple=True)[0]
    last = torch.tensor([preds.numel() - 1], dtype=distinct.dtype)
    group_ends = torch.cat([distinct, last])
    group_starts = torch.cat([group_ends.new_zeros(1), group_ends[:-1] + 1])
    # a tied group at descending positions s..e shares the ascending mid-rank N - (s + e) / 2
    doubled = 2 * preds.numel() - (group_starts + group_ends)
    sizes = group_ends - group_starts + 1
    doubled_ranks = doubled.to(torch.float64).repeat_interleave(sizes)
    return _RocCurve(order, group_ends, doubled_ranks)


def _curve_auc(curve: _RocCurve, sorted_masks: Tensor) -> Tensor:
    """torchmetrics' ``binary_auroc`` of each row (masks already in ``curve.order``), float32."""
    batch = max(1, _BATCH_ELEMENTS // max(1, sorted_masks.shape[1]))
    if sorted_masks.shape[0] > batch:
        return torch.cat([_curve_auc(curve, rows) for rows in sorted_masks.split(batch)])
    true_positives = sorted_masks.cumsum(1, dtype=torch.int32)[:, curve.group_ends].float()
    false_positives = (1 + curve.group_ends) - true_positives
    zeros = torch.zeros(sorted_masks.shape[0], 1)
    true_positives = torch.cat([zeros, true_positives], 1)
    false_positives = torch.cat([zeros, false_positives], 1)
    auc = torch.trapz(
        true_positives / true_positives[:, -1:], false_positives / false_positives[:, -1:], dim=-1
    )
    # torchmetrics returns a zero rate when one class is empty, so the AUC is 0
    one_class = (true_positives[:, -1] == 0) | (false_positives[:, -1] == 0)
    return auc.masked_fill(one_class, 0.0)


def reference_auc(activations: Tensor | np.ndarray, masks: Tensor | np.ndarray) -> Tensor:
    r"""
    The AUC the official INVERT reports: torchmetrics' ``binary_auroc(activations, mask)``,
    reproduced in float32 (a sigmoid is applied first when an activation is outside ``[0, 1]``).

    Args:
        activations (Tensor or ndarray): ``(N,)`` activations of one neuron.
        masks (Tensor or ndarray): ``(N,)`` or ``(M, N)`` boolean masks.

    Returns:
        *Tensor* float32 of shape ``()`` or ``(M,)``.

    Examples::

        >>> reference_auc(torch.tensor([0.1, 0.9, 0.4]), torch.tensor([False, True, False]))
        tensor(1.)
    """
    curve = _roc_curve(torch.as_tensor(activations))
    masks = torch.as_tensor(masks).to(torch.bool)
    rows = masks.reshape(-1, masks.shape[-1])[:, curve.order]
    auc = _curve_auc(curve, rows)
    return auc.reshape(masks.shape[:-1])


def reference_p_value(
    activations: Tensor | np.ndarray,
    mask: Tensor | np.ndarray,
    alternative: Literal["two-sided", "less", "greater"] = "two-sided",
) -> float:
    r"""
    The official ``Invert.get_p_value``: SciPy's Mann-Whitney U test of the float32 activations
    outside the mask against those inside (``alternative="less"``: outside ranks lower).

    Args:
        activations (Tensor or ndarray): ``(N,)`` activations of one neuron (cast to float32).
        mask (Tensor or ndarray): ``(N,)`` booleans, the samples where the formula holds.
        alternative (str, optional): ``"two-sided"`` (the official default), ``"less"`` or
                    ``"greater"``.

    Returns:
        *float*, the p-value; SciPy computes it in the float32 of its inputs, as in the official
        code (here 1/70 to float32 precision).

    Examples::

        >>> reference_p_value(torch.arange(8.0), torch.arange(8) >= 4, alternative="less")
        0.014285714365541935
    """
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"`alternative` must be one of {_ALTERNATIVES}, got {alternative!r}")
    values = torch.as_tensor(activations).detach().cpu().to(torch.float32).numpy()
    inside = torch.as_tensor(mask).detach().cpu().to(torch.bool).numpy()
    return float(mannwhitneyu(values[~inside], values[inside], alternative=alternative).pvalue)


def _stable_order(values: Tensor, descending: bool) -> Tensor:
    """Python's stable ``sorted(..., reverse=descending)`` of float32 values, as indices."""
    return torch.sort(values, descending=descending, stable=True).indices


def _admissible(fraction: Tensor, settings: _Settings) -> Tensor:
    # float32 fractions against Python floats, as the official code compares them
    inside = (fraction >= settings.min_fraction) & (fraction <= settings.max_fraction)
    return inside & (fraction > 0) & (fraction < 1)


def _first_level(
    curve: _RocCurve, literals: Tensor, settings: _Settings
) -> tuple[list[_Slot], Tensor]:
    """Level 1: the official ``ATOMIC_CONCEPTS``; returns the beam and the expansion order."""
    positive = literals[: literals.shape[0] // 2]
    auc, support = _curve_auc(curve, positive), positive.sum(1)
    fraction = support / literals.shape[1]  # integer counts / N: float32, as in the official code
    # the official code derives each negation's AUC and fraction from its concept's, in float32
    metric = torch.cat([auc, 1 - auc])
    fraction = torch.cat([fraction, 1 - fraction])
    support = torch.cat([support, literals.shape[1] - support])
    ranked = _stable_order(metric, settings.descending)
    keep = _admissible(fraction[ranked], settings)
    beam = [
        _Slot(
            mask=literals[i],
            auc=float(metric[i]),
            support=int(support[i]),
            fraction=float(fraction[i]),
            level=_FIRST_LEVEL,
            atom=int(i),
        )
        for i in ranked[keep][: settings.beam_size].tolist()
    ]
    differentiability = 2 * (0.5 - metric[ranked]).abs()
    expansion = ranked[_stable_order(differentiability, descending=True)]
    return beam, expansion[: settings.limit_search]


def _candidate_masks(parents: Tensor, expanding: Tensor, candidates: Tensor) -> Tensor:
    """Masks of candidates numbered as the official loops meet them: (parent, literal, AND/OR)."""
    parent, rest = candidates // (2 * expanding.shape[0]), candidates % (2 * expanding.shape[0])
    left, right = parents[parent], expanding[rest // 2]
    return torch.where((rest % 2 == 0)[:, None], left & right, left | right)


def _candidate_statistics(
    curve: _RocCurve, parents: Tensor, expanding: Tensor
) -> tuple[Tensor, Tensor]:
    """Support and exact (float64 rank-sum) AUC of every candidate, in the official order."""
    samples = parents.shape[1]
    parents64, ranks = parents.to(torch.float64), curve.doubled_ranks
    batch = max(1, _BATCH_ELEMENTS // (8 * samples))
    overlap, rank_overlap, literal_support, literal_ranks = [], [], [], []
    for rows in expanding.split(batch):
        rows64 = rows.to(torch.float64).t()
        overlap.append(parents64 @ rows64)
        rank_overlap.append((parents64 * ranks) @ rows64)
        literal_support.append(rows.sum(1))
        literal_ranks.append(ranks @ rows64)
    both, both_ranks = torch.cat(overlap, 1), torch.cat(rank_overlap, 1)
    either = parents64.sum(1, keepdim=True) + torch.cat(literal_support) - both
    either_ranks = (parents64 @ ranks)[:, None] + torch.cat(literal_ranks) - both_ranks
    # candidates in the official order: per parent and literal, AND then OR
    support = torch.stack([both, either], dim=2).flatten()
    rank_sums = torch.stack([both_ranks, either_ranks], dim=2).flatten() / 2
    # Mann-Whitney: the trapezoidal ROC area with ties counted half is U / (n+ n-)
    exact_auc = u_statistic(rank_sums, support) / (support * (samples - support))
    return support.round().long(), exact_auc


def _shortlist(bounds: Tensor, fixed: int, settings: _Settings) -> Tensor:
    """Which candidates (``bounds[fixed:]``) can still reach the beam; the first ``fixed`` can."""
    if bounds.numel() <= settings.beam_size:
        return torch.ones(bounds.numel() - fixed, dtype=torch.bool)
    sign = 1.0 if settings.descending else -1.0
    cut = torch.topk(sign * bounds, settings.beam_size).values[-1]
    return sign * bounds[fixed:] >= cut - _SHORTLIST_MARGIN


def _next_level(
    *,
    curve: _RocCurve,
    literals: Tensor,
    beam: list[_Slot],
    expansion: Tensor,
    settings: _Settings,
    level: int,
) -> list[_Slot]:
    """One more level: each beam slot ``&`` and ``|`` each literal, appended to the old beam."""
    samples, expanding = literals.shape[1], literals[expansion]
    parents = torch.stack([slot.mask for slot in beam])
    support, exact_auc = _candidate_statistics(curve, parents, expanding)
    fraction = support / samples
    candidates = torch.nonzero(_admissible(fraction, settings)).flatten()
    beam_auc = torch.tensor([slot.auc for slot in beam], dtype=torch.float32)
    # dropping candidates that cannot reach the beam keeps the others' stable order
    bounds = torch.cat([beam_auc.double(), exact_auc[candidates]])
    candidates = candidates[_shortlist(bounds, len(beam), settings)]
    metrics, batch = [beam_auc], max(1, _BATCH_ELEMENTS // samples)
    for start in range(0, candidates.numel(), batch):
        masks = _candidate_masks(parents, expanding, candidates[start : start + batch])
        metrics.append(_curve_auc(curve, masks))
    metric = torch.cat(metrics)
    pool: list[_Slot] = []
    for index in _stable_order(metric, settings.descending)[: settings.beam_size].tolist():
        if index < len(beam):
            pool.append(beam[index])
            continue
        candidate = candidates[index - len(beam)]
        rest = int(candidate) % (2 * expansion.numel())
        mask = _candidate_masks(parents, expanding, candidate[None])[0]
        parent = beam[int(candidate) // (2 * expansion.numel())]
        pool.append(
            _Slot(
                mask=mask,
                auc=float(metric[index]),
                support=int(support[candidate]),
                fraction=float(fraction[candidate]),
                level=level,
                atom=int(expansion[rest // 2]),
                parent=parent,
                operator="&|"[rest % 2],
            )
        )
    return pool


def _sympy_expression(slot: _Slot, symbols: list) -> object:
    """The SymPy expression the official code builds (its ``&``/``|`` flatten and deduplicate)."""
    concepts = len(symbols)
    literal = symbols[slot.atom % concepts]
    literal = ~literal if slot.atom >= concepts else literal
    if slot.parent is None:
        return literal
    parent = _sympy_expression(slot.parent, symbols)
    return parent & literal if slot.operator == "&" else parent | literal


def _formula_from_sympy(expression: object, atoms: dict[str, Atom]) -> Formula:
    import sympy

    if isinstance(expression, sympy.Symbol):
        return atoms[expression.name]
    if isinstance(expression, sympy.Not):
        return Not(_formula_from_sympy(expression.args[0], atoms))
    operator = And if isinstance(expression, sympy.And) else Or
    if not isinstance(expression, (sympy.And, sympy.Or)):
        raise ValueError(f"unexpected SymPy expression {expression!r} in a beam")
    return reduce(operator, [_formula_from_sympy(argument, atoms) for argument in expression.args])


def _explanation(
    slot: _Slot, curve: _RocCurve, symbols: list, atoms: dict[str, Atom]
) -> ReferenceExplanation:
    expression = _sympy_expression(slot, symbols)
    mask = torch.empty_like(slot.mask)
    mask[curve.order] = slot.mask
    return ReferenceExplanation(
        formula=_formula_from_sympy(expression, atoms),
        text=str(expression),
        level=slot.level,
        auc=slot.auc,
        support=slot.support,
        fraction=slot.fraction,
        mask=mask,
    )


def _search_neuron(
    activations: Tensor, labels: Tensor, formula_length: int, settings: _Settings
) -> tuple[_RocCurve, dict[int, list[_Slot]]]:
    """The official ``explain_representation(memorize_states=True)`` for one neuron."""
    curve = _roc_curve(activations)
    # every mask lives in the neuron's sorted sample order; only kept slots are mapped back
    positive = labels.t()[:, curve.order]
    literals = torch.cat([positive, ~positive])
    beam, expansion = _first_level(curve, literals, settings)
    states = {_FIRST_LEVEL: beam}
    for level in range(_FIRST_LEVEL + 1, formula_length + 1):
        new_beam = beam
        if beam:
            new_beam = _next_level(
                curve=curve,
                literals=literals,
                beam=beam,
                expansion=expansion,
                settings=settings,
                level=level,
            )
        # a beam of its own slots, in order, gives the same next level: it is every later state
        if len(new_beam) == len(beam) and all(map(operator.is_, new_beam, beam)):
            states.update(dict.fromkeys(range(level, formula_length + 1), beam))
            break
        states[level] = beam = new_beam
    return curve, states


def _validated(
    activations: Tensor | np.ndarray, labels: Tensor | np.ndarray, concept_names: Sequence[str]
) -> tuple[Tensor, Tensor, list[str]]:
    activations = torch.as_tensor(activations).detach().cpu().to(torch.float32)
    if activations.ndim == 1:
        activations = activations[:, None]
    labels = torch.as_tensor(labels).detach().cpu()
    if activations.ndim != 2 or labels.ndim != 2 or labels.shape[0] != activations.shape[0]:
        raise ValueError(
            "`activations` must be (N, K) and `labels` (N, C) with the same N, got shapes "
            f"{tuple(activations.shape)} and {tuple(labels.shape)}"
        )
    names = [str(name) for name in concept_names]
    if len(names) != labels.shape[1] or len(set(names)) != len(names):
        raise ValueError(
            f"`concept_names` must hold {labels.shape[1]} unique names (one per label column), "
            f"got {len(names)} names, {len(set(names))} unique"
        )
    return activations, labels != 0, names


def _settings(
    given: SearchSettings, concepts: int, limit_search: int | None
) -> tuple[_Settings, int]:
    """The search's settings, checked as ours are, and ``formula_length`` capped at ``2C``."""
    given = given.for_concepts(concepts)
    if limit_search is not None:
        check_positive_int(limit_search, "limit_search")
    settings = _Settings(
        beam_size=given.beam_size,
        min_fraction=given.min_fraction,
        max_fraction=given.max_fraction,
        descending=given.mode == "positive",
        limit_search=limit_search,
    )
    return settings, given.formula_length


def reference_search(
    activations: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    concept_names: Sequence[str],
    formula_length: int = 3,
    beam_size: int = 5,
    min_fraction: float = 0.0,
    max_fraction: float = 0.5,
    mode: Literal["positive", "negative"] = "positive",
    alternative: Literal["two-sided", "less", "greater"] = "two-sided",
    limit_search: int | None = None,
) -> list[ReferenceNeuronResult]:
    r"""
    Labels each neuron as the official INVERT implementation does (lapalap/invert v1.1,
    ``Invert.explain_representation(..., memorize_states=True)`` then ``get_p_value``).

    Level 1 ranks every concept and its negation by AUC (a negation's AUC and fraction are
    ``1 -`` its concept's, in float32) and keeps the first ``beam_size`` whose fraction of samples
    lies in ``[min_fraction, max_fraction]`` (and in ``(0, 1)``). Each later level appends to the
    current beam every admissible ``slot & literal`` and ``slot | literal`` (for each slot, for
    each literal ordered by ``|AUC - 0.5|``, AND before OR), stable-sorts the whole list by AUC and
    keeps the first ``beam_size``: formulas with equal masks are kept as separate slots. AUCs are
    torchmetrics' ``binary_auroc`` in float32 (sigmoid of activations outside ``[0, 1]``).

    Args:
        activations (Tensor or ndarray): ``(N, K)`` activations of ``K`` neurons (or ``(N,)``);
                    cast to float32 as in the official runs.
        labels (Tensor or ndarray): ``(N, C)`` concept labels (bool or 0/1).
        concept_names (sequence of str): ``C`` unique concept names.
        formula_length (int, optional): Longest formula, the official ``L``. Default: 3
        beam_size (int, optional): Beam width, the official ``B``. Default: 5
        min_fraction (float, optional): Smallest admissible fraction of samples. Default: 0.0
        max_fraction (float, optional): Largest admissible fraction of samples. Default: 0.5
        mode (str, optional): ``"positive"`` (highest AUC first) or ``"negative"``.
                    Default: ``"positive"``
        alternative (str, optional): Alternative of the final beam's Mann-Whitney p-values,
                    ``"two-sided"`` (the official default), ``"less"`` or ``"greater"``.
        limit_search (int or None, optional): Only the first ``limit_search`` literals are
                    combined at levels ``>= 2`` (the official option). Default: None (all)

    Unlike the official code, ``formula_length`` is capped at ``2C`` (with a warning), and the
    search stops once a level leaves the beam as it was (later levels would too).

    Returns:
        *list* of :class:`ReferenceNeuronResult`, one per neuron.

    Examples::

        >>> labels = torch.tensor([[1, 0], [1, 1], [0, 1], [0, 0]], dtype=torch.bool)
        >>> activations = torch.tensor([[2.0], [3.0], [0.0], [0.5]])
        >>> result = reference_search(activations, labels, ["a", "b"], beam_size=2)[0]
        >>> result.best.text, round(result.best.auc, 3)
        ('a', 1.0)
    """
    activations, labels, names = _validated(activations, labels, concept_names)
    given = SearchSettings(
        formula_length=formula_length,
        beam_size=beam_size,
        min_fraction=min_fraction,
        max_fraction=max_fraction,
        mode=mode,
        alternative=alternative,
    )
    settings, formula_length = _settings(given, len(names), limit_search)
    import sympy

    symbols = [sympy.Symbol(name) for name in names]
    atoms = {name: Atom(index, name) for index, name in enumerate(names)}
    results = []
    for neuron in range(activations.shape[1]):
        values = activations[:, neuron]
        curve, slots = _search_neuron(values, labels, formula_length, settings)
        states = {
            level: [_explanation(slot, curve, symbols, atoms) for slot in beam]
            for level, beam in slots.items()
        }
        beam = [
            replace(entry, p_value=reference_p_value(values, entry.mask, alternative))
            for entry in states[formula_length]
        ]
        best = {level: entries[0] for level, entries in states.items() if entries}
        results.append(ReferenceNeuronResult(neuron, beam, states, best))
    return results
