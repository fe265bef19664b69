"""Results of INVERT: per neuron the best formula with its AUC, Mann-Whitney test, final beam and
best formula of each length.

:func:`explanations_from_search` and :func:`explanations_from_reference` decode our search's and the
reference search's results into them. :class:`Explanations` is indexed by neuron, prints as a table,
round-trips through JSON, becomes a ``pandas`` data frame, and keeps the activations and labels it
was computed from for the plots.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, cast, get_type_hints

import numpy as np
import torch
from torch import Tensor

from captum_netinv.recognition.formula import And, Atom, Formula, Not, Or
from captum_netinv.recognition.ranking import (
    Alternative,
    mann_whitney_p_values,
    mann_whitney_u,
    u_statistic,
)
from captum_netinv.recognition.reference import ReferenceNeuronResult
from captum_netinv.recognition.search import BeamSearchResult, SearchSettings

__all__ = [
    "BeamEntry",
    "Explanation",
    "Explanations",
    "Refinement",
    "explanations_from_reference",
    "explanations_from_search",
    "formula_from_steps",
]

_JSON_FORMAT = "captum_netinv.InverseRecognition/1"


@dataclass(frozen=True)
class BeamEntry:
    r"""A formula of a neuron's beam: the formula, its AUC and its support (mask size)."""

    formula: Formula
    auc: float
    support: int


@dataclass(frozen=True)
class Refinement:
    r"""
    The best formula of one literal more that implies a neuron's formula, ``formula &
    literal`` (:func:`~captum_netinv.recognition.refinement.best_refinement`).

    Attributes:
        formula (Formula): ``formula & literal``.
        auc (float): Its AUC (exact, from mid-ranks).
        support (int): Number of samples where it holds.
        coverage (float): Share of the neuron's ``top_k`` top-activating samples
                    (:attr:`Explanation.top_k`) where it holds.
    """

    formula: Formula
    auc: float
    support: int
    coverage: float


@dataclass(frozen=True)
class Explanation:
    r"""
    The INVERT label of one neuron; the defaults describe a neuron for which no formula was
    admissible (:meth:`empty`).

    Attributes:
        neuron (int): Index of the neuron in its layer.
        formula (Formula or None): The formula whose samples the neuron separates best; None
                    when no formula was admissible.
        auc (float): AUC of the activations for the formula's samples against the rest (nan
                    when there is no formula).
        p_value (float): Mann-Whitney U test p-value (see ``Explanations.settings``).
        z (float): Tie-corrected normal statistic of ``U``, > 0 when the formula's samples
                    activate higher.
        support (int): Number of samples where the formula holds.
        fraction (float): ``support / N``.
        exact_test (bool): Whether the p-value used the exact null distribution.
        beam (tuple of BeamEntry): The final beam, best first (``beam[0]`` is the formula).
        by_length (tuple of BeamEntry): ``by_length[l - 1]`` is the best formula of the beam
                    after level ``l``: the best formula of at most ``l`` literals the search
                    reached (the official ``memorize_states``), for ``l = 1 .. formula_length``;
                    read it as :attr:`best_by_length`.
        top_k (int): Number of top-activating samples the coverages are measured on: the
                    :data:`~captum_netinv.recognition.refinement.TOP_K` (100) samples the
                    neuron activates most in the mode's direction, fewer in a smaller data set
                    (0: not measured).
        coverage (float): Share of those ``top_k`` samples where the formula holds.
        refinement (Refinement or None): The best formula of one literal more that implies
                    the formula, ``formula & literal``, with its exact AUC, support and
                    coverage of the ``top_k`` samples; None when no literal refines it.
        saturated (bool): Whether the AUC is as good as an AUC can be (1, or 0 with
                    ``mode="negative"``, within
                    :data:`~captum_netinv.recognition.refinement.SATURATION_TOLERANCE`): then no
                    longer formula could win the search, and the refinement shows the part of
                    the formula's samples the neuron may really respond to.
    """

    neuron: int
    formula: Formula | None = None
    auc: float = math.nan
    p_value: float = math.nan
    z: float = math.nan
    support: int = 0
    fraction: float = 0.0
    exact_test: bool = False
    beam: tuple[BeamEntry, ...] = ()
    by_length: tuple[BeamEntry, ...] = ()
    top_k: int = 0
    coverage: float = math.nan
    refinement: Refinement | None = None
    saturated: bool = False

    @classmethod
    def empty(cls, neuron: int) -> Explanation:
        r"""The explanation of a neuron for which no formula was admissible."""
        return cls(neuron)

    @property
    def has_formula(self) -> bool:
        r"""Whether an admissible formula was found."""
        return self.formula is not None

    @property
    def best_by_length(self) -> dict[int, BeamEntry]:
        r"""Length ``l`` -> the best formula of at most ``l`` literals (see ``by_length``)."""
        return {length: entry for length, entry in enumerate(self.by_length, start=1)}


class Explanations:
    r"""
    INVERT explanations of a set of neurons: indexable by neuron index (``explanations[7]``),
    iterable in neuron order, ``len`` = number of neurons; ``str`` gives a table.

    Args:
        explanations (sequence of Explanation): One per neuron.
        concept_names (sequence of str): Names of the label columns the formulas index.
        n_samples (int): Number of samples the search ran on.
        settings (Mapping, optional): Search settings by name (``formula_length``, ``beam_size``,
                    ``min_fraction``, ``max_fraction``, ``mode``, ``alternative``), as
                    ``SearchSettings.to_dict()`` gives them.
        activations (Tensor, optional): ``(N, K)`` activations of the whole layer (column =
                    neuron index), kept for plots; not serialized. The search's results keep
                    them where they were computed (the model's device for
                    ``InverseRecognition.attribute``, the given ones' device for
                    ``explain_activations``).
        concepts (Tensor, optional): ``(N, C)`` boolean labels, kept for plots; not serialized.
                    The search's results keep them on the device of ``activations``.
    """

    def __init__(
        self,
        explanations: Sequence[Explanation],
        concept_names: Sequence[str],
        *,
        n_samples: int,
        settings: Mapping[str, Any] | None = None,
        activations: Tensor | None = None,
        concepts: Tensor | None = None,
    ) -> None:
        self._by_neuron = {explanation.neuron: explanation for explanation in explanations}
        if len(self._by_neuron) != len(explanations):
            raise ValueError("`explanations` holds two explanations of the same neuron")
        self.concept_names = list(concept_names)
        self.n_samples = n_samples
        self.settings = dict(settings or {})
        self.activations = activations
        self.concepts = concepts

    @property
    def neurons(self) -> list[int]:
        r"""The explained neurons, in order."""
        return list(self._by_neuron)

    def __getitem__(self, neuron: int) -> Explanation:
        try:
            return self._by_neuron[int(neuron)]
        except KeyError:
            raise KeyError(
                f"neuron {neuron} was not explained; explained neurons: {_preview(self.neurons)}"
            ) from None

    def __contains__(self, neuron: object) -> bool:
        return neuron in self._by_neuron

    def __iter__(self) -> Iterator[Explanation]:
        return iter(self._by_neuron.values())

    def __len__(self) -> int:
        return len(self._by_neuron)

    def mask(
        self, neuron: int, concepts: Tensor | np.ndarray | None = None, length: int | None = None
    ) -> Tensor:
        r"""
        The samples where ``neuron``'s formula (with ``length``: its best formula of at most
        ``length`` literals, :attr:`Explanation.best_by_length`) holds, as ``N`` booleans.

        Args:
            neuron (int): The neuron.
            concepts (Tensor or ndarray, optional): ``(N, C)`` labels. Default: the labels the
                        explanations were computed from.
            length (int, optional): A key of ``best_by_length``. Default: None (the formula)

        Returns:
            *Tensor* of ``N`` booleans, on the device of the labels (the CPU for an array).
        """
        explanation = self[neuron]
        if explanation.formula is None:
            raise ValueError(f"neuron {neuron} has no admissible formula, hence no mask")
        lengths = explanation.best_by_length
        if length is not None and length not in lengths:
            raise ValueError(f"`length` must be one of {list(lengths)}, got {length!r}")
        formula = explanation.formula if length is None else lengths[length].formula
        labels = concepts if concepts is not None else self.concepts
        if labels is None:
            raise ValueError(
                "these explanations carry no labels (read from JSON?): pass `concepts`"
            )
        return torch.as_tensor(formula.evaluate(torch.as_tensor(labels)))

    def neuron_activations(
        self, neuron: int, activations: Tensor | np.ndarray | None = None
    ) -> Tensor:
        r"""
        The ``(N,)`` activations of ``neuron``: column ``neuron`` of ``activations`` (default:
        the activations the explanations were computed from), on their device.
        """
        explained = self[neuron]
        values = activations if activations is not None else self.activations
        if values is None:
            raise ValueError(
                "these explanations carry no activations (e.g. read from JSON): pass `activations`"
            )
        values = torch.as_tensor(values)
        return values if values.dim() == 1 else values[:, explained.neuron]

    def to_json(self, indent: int | None = None) -> str:
        r"""
        The explanations as JSON text (formulas as their ``str``; activations and labels are not
        included). Read back with :meth:`from_json`.
        """
        return json.dumps(
            {
                "format": _JSON_FORMAT,
                "concept_names": self.concept_names,
                "n_samples": self.n_samples,
                "settings": self.settings,
                "explanations": [_to_record(item) for item in self],
            },
            indent=indent,
        )

    @classmethod
    def from_json(cls, text: str) -> Explanations:
        r"""Reads explanations written by :meth:`to_json`."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != _JSON_FORMAT:
            raise ValueError(f"`text` is not JSON written by Explanations.to_json ({_JSON_FORMAT})")
        names = data["concept_names"]
        explanations = [_from_record(Explanation, record, names) for record in data["explanations"]]
        return cls(explanations, names, n_samples=data["n_samples"], settings=data["settings"])

    def to_dataframe(self) -> Any:
        r"""
        A ``pandas.DataFrame`` with one row per neuron: ``neuron``, ``formula`` (text), ``length``,
        ``auc``, ``p_value``, ``z``, ``support``, ``fraction``, ``exact_test``, ``top_k``,
        ``coverage``, ``refinement`` (text), ``refinement_auc``, ``refinement_support``,
        ``refinement_coverage``, ``saturated``, then ``formula_1``, ``auc_1``, ``formula_2``,
        ... the best formula of at most each length (:attr:`Explanation.best_by_length`).
        """
        try:
            import pandas as pd
        except ImportError as error:
            raise ImportError("to_dataframe() needs pandas: pip install pandas") from error
        lengths = max([0, *(len(item.by_length) for item in self)])
        columns = list(_table_row(Explanation.empty(0), lengths))
        return pd.DataFrame([_table_row(item, lengths) for item in self], columns=columns)

    def __str__(self) -> str:
        settings = ", ".join(f"{key}={value}" for key, value in self.settings.items())
        header = (
            f"INVERT explanations of {len(self)} neurons on {self.n_samples} samples, "
            f"{len(self.concept_names)} concepts" + (f" ({settings})" if settings else "")
        )
        texts = [
            str(item.formula) if item.formula is not None else "(no admissible formula)"
            for item in self
        ]
        width = max([len("formula"), *(len(text) for text in texts)])
        lines = [
            header,
            f"{'neuron':>6}  {'formula':<{width}}  {'AUC':>6}   {'p-value':>9}  "
            f"{'support':<14}  {'coverage':>8}  refinement",
        ]
        for item, text in zip(self, texts, strict=True):
            support = f"{item.support} ({100 * item.fraction:.1f}%)" if item.formula else "-"
            marker = "*" if item.saturated else " "
            lines.append(
                f"{item.neuron:>6}  {text:<{width}}  {item.auc:>6.3f}{marker}"
                f"  {item.p_value:>9.2e}  {support:<14}  {_share(item.coverage):>8}  "
                f"{_refinement_text(item)}"
            )
        return "\n".join(lines + _table_notes(list(self)))

    def __repr__(self) -> str:
        return (
            f"Explanations(neurons={len(self)}, n_samples={self.n_samples}, "
            f"concepts={len(self.concept_names)})"
        )


def explanations_from_search(
    result: BeamSearchResult,
    neurons: list[int],
    names: list[str],
    count: int,
    settings: SearchSettings,
) -> list[Explanation]:
    r"""
    The explanations a beam search found: per neuron its final beam and its best formula of each
    length decoded into formulas, and a Mann-Whitney U test of the best formula.

    Args:
        result (BeamSearchResult): The search's result, one row per neuron.
        neurons (list of int): The layer index of each row's neuron.
        names (list of str): The concept names the formulas' steps index.
        count (int): Number of samples ``N`` the search ran on.
        settings (SearchSettings): The search's settings, ``formula_length`` capped as the
                    search caps it (:meth:`~SearchSettings.for_concepts`).

    Returns:
        *list* of :class:`Explanation`, in the order of ``neurons``.
    """
    # tests only for neurons with a formula; test row `tested[row]` belongs to neuron row `row`
    has_formula = result.valid[:, 0].numpy()
    tested = np.cumsum(has_formula) - 1
    best_counts = result.counts[has_formula, 0].numpy()
    tests = mann_whitney_p_values(
        u_statistic(result.rank_sums[has_formula, 0].numpy() / 2.0, best_counts),
        best_counts,
        count - best_counts,
        result.tie_terms[has_formula].numpy(),
        cast(Alternative, settings.alternative),
    )
    explanations = []
    for row, neuron in enumerate(neurons):
        beam = _decoded(
            result.steps[row], result.auc[row], result.counts[row], result.valid[row], names
        )
        if not beam:
            explanations.append(Explanation.empty(neuron))
            continue
        levels = _decoded(
            result.level_steps[row],
            result.level_auc[row],
            result.level_counts[row],
            result.level_valid[row],
            names,
        )
        test = tested[row]
        explanations.append(
            Explanation(
                neuron=neuron,
                formula=beam[0].formula,
                auc=beam[0].auc,
                p_value=float(tests.p_value[test]),
                z=float(tests.z[test]),
                support=beam[0].support,
                fraction=beam[0].support / count,
                exact_test=bool(tests.exact[test]),
                beam=beam,
                # levels after the search stopped have the last level's beam
                by_length=levels + (levels[-1],) * (settings.formula_length - len(levels)),
            )
        )
    return explanations


def _decoded(
    steps: Tensor, auc: Tensor, counts: Tensor, valid: Tensor, names: list[str]
) -> tuple[BeamEntry, ...]:
    """The ``(S,)`` slots of ``(S, L)`` steps that hold a formula, with their AUCs and supports."""
    return tuple(
        BeamEntry(
            formula_from_steps(steps[slot].tolist(), names), float(auc[slot]), int(counts[slot])
        )
        for slot in range(steps.shape[0])
        if bool(valid[slot])
    )


def explanations_from_reference(
    results: Sequence[ReferenceNeuronResult],
    neurons: list[int],
    activations: Tensor,
) -> list[Explanation]:
    r"""
    The explanations of :func:`~captum_netinv.recognition.reference.reference_search`: its
    formulas, official AUCs and p-values, final beams and best formulas after each level; ``z``
    and ``exact_test`` from our Mann-Whitney test of the same float32 activations.

    Args:
        results (sequence of ReferenceNeuronResult): One per searched column.
        neurons (list of int): The layer index of each result's neuron.
        activations (Tensor): ``(N, len(results))`` the activations that were searched.

    Returns:
        *list* of :class:`Explanation`, in the order of ``neurons``.
    """
    explanations = []
    for result, neuron in zip(results, neurons, strict=True):
        best = result.best
        if best is None or best.p_value is None:
            explanations.append(Explanation.empty(neuron))
            continue
        values = activations[:, result.neuron].to(torch.float32)
        levels = [result.best_by_length[level] for level in sorted(result.best_by_length)]
        test = mann_whitney_u(values, best.mask)
        explanations.append(
            Explanation(
                neuron=neuron,
                formula=best.formula,
                auc=best.auc,
                p_value=best.p_value,
                z=float(test.z),
                support=best.support,
                fraction=best.support / values.shape[0],
                exact_test=bool(test.exact),
                beam=tuple(BeamEntry(e.formula, e.auc, e.support) for e in result.beam),
                by_length=tuple(BeamEntry(e.formula, e.auc, e.support) for e in levels),
            )
        )
    return explanations


def _table_row(item: Explanation, lengths: int) -> dict[str, Any]:
    """The fields of an explanation but its beams, the formula as text followed by its length,
    then the best formula and AUC of at most each of ``1 .. lengths`` literals."""
    row: dict[str, Any] = {}
    for field in fields(item):
        value = getattr(item, field.name)
        if field.name == "formula":
            row["formula"] = None if value is None else str(value)
            row["length"] = 0 if value is None else value.length
        elif field.name == "refinement":
            row["refinement"] = None if value is None else str(value.formula)
            row["refinement_auc"] = math.nan if value is None else value.auc
            row["refinement_support"] = 0 if value is None else value.support
            row["refinement_coverage"] = math.nan if value is None else value.coverage
        elif field.name not in ("beam", "by_length"):
            row[field.name] = value
    for length in range(1, lengths + 1):
        entry = item.best_by_length.get(length)
        row[f"formula_{length}"] = None if entry is None else str(entry.formula)
        row[f"auc_{length}"] = math.nan if entry is None else entry.auc
    return row


def _share(value: float) -> str:
    """A share with two decimals, ``-`` when not measured (nan)."""
    return "-" if math.isnan(value) else f"{value:.2f}"


def _refinement_text(item: Explanation) -> str:
    """The refinement column of the table: formula, AUC and coverage, ``-`` without one."""
    if item.refinement is None:
        return "-"
    return (
        f"{item.refinement.formula} (AUC {item.refinement.auc:.3f}, coverage "
        f"{_share(item.refinement.coverage)})"
    )


def _table_notes(items: list[Explanation]) -> list[str]:
    """The lines under the table that say what its coverage, refinement and ``*`` mean."""
    top_k = max([0, *(item.top_k for item in items)])
    if not top_k:
        return []
    notes = [
        f"coverage: share of the neuron's top {top_k} samples where the formula holds; "
        "refinement: the best formula & one more literal"
    ]
    if any(item.saturated for item in items):
        notes.append(
            "* AUC saturated: no longer formula can score higher, so the label may hide "
            "detail; see the refinement"
        )
    return notes


def _to_record(item: Explanation | BeamEntry | Refinement) -> dict[str, Any]:
    """The fields of an explanation or beam entry as JSON values."""
    return {field.name: _json_value(getattr(item, field.name)) for field in fields(item)}


def _json_value(value: Any) -> Any:
    """Formulas as their text, the beam as records, and nan / infinity (which JSON lacks) as the
    strings ``"nan"``, ``"inf"``."""
    if isinstance(value, Formula):
        return str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, tuple):
        return [_to_record(entry) for entry in value]
    if isinstance(value, Refinement):
        return _to_record(value)
    return value


def _from_record(kind: type[Any], record: Mapping[str, Any], names: Sequence[str]) -> Any:
    """The :class:`Explanation` or :class:`BeamEntry` that :func:`_to_record` wrote."""
    hints = get_type_hints(kind)
    # files written before a field existed lack it: it keeps its default
    return kind(
        **{
            field.name: _from_json_value(hints[field.name], record[field.name], names)
            for field in fields(kind)
            if field.name in record
        }
    )


def _from_json_value(hint: Any, value: Any, names: Sequence[str]) -> Any:
    """A value of :func:`_json_value` back as the field's type ``hint`` asks."""
    if value is None:
        return None
    if hint is float:
        return float(value)
    if hint in (Formula, Formula | None):
        return Formula.parse(value, names)
    if hint == tuple[BeamEntry, ...]:
        return tuple(_from_record(BeamEntry, entry, names) for entry in value)
    if hint == Refinement | None:
        return _from_record(Refinement, value, names)
    return value


def _preview(values: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(value) for value in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def formula_from_steps(steps: Sequence[int], names: Sequence[str]) -> Formula:
    r"""
    The :class:`~captum_netinv.Formula` that
    :class:`~captum_netinv.recognition.search.BeamSearchResult` encodes as steps
    ``operator * 2C + literal`` (see there), nested to the left.

    Args:
        steps (sequence of int): One formula's steps; the first negative one ends it.
        names (sequence of str): The ``C`` concept names.

    Examples::

        >>> str(formula_from_steps([0, 2 * 2 + 3, -1], ["a", "b"]))
        'a | ~b'
    """
    concepts = len(names)
    formula: Formula | None = None
    for step in steps:
        if step < 0:
            break
        operator, literal = divmod(step, 2 * concepts)
        concept = literal % concepts
        term: Formula = Atom(concept, names[concept])
        if literal >= concepts:
            term = Not(term)
        if formula is None:
            formula = term
        else:
            formula = Or(formula, term) if operator else And(formula, term)
    if formula is None:
        raise ValueError(f"`steps` {list(steps)} encode no formula")
    return formula
