"""Results of INVERT: per neuron the best formula with its AUC, Mann-Whitney test and final beam.

:func:`explanations_from_search` decodes a beam search's result into them. :class:`Explanations` is
indexed by neuron, prints as a table, round-trips through JSON, becomes a ``pandas`` data frame, and
keeps the activations and labels it was computed from for the plots.
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

from captum_netinv.recognition.formula import Formula
from captum_netinv.recognition.ranking import Alternative, mann_whitney_p_values, u_statistic
from captum_netinv.recognition.search import BeamSearchResult, SearchSettings, formula_from_steps

__all__ = ["BeamEntry", "Explanation", "Explanations", "explanations_from_search"]

_JSON_FORMAT = "captum_netinv.InverseRecognition/1"


@dataclass(frozen=True)
class BeamEntry:
    r"""A formula of a neuron's final beam: the formula, its AUC and its support (mask size)."""

    formula: Formula
    auc: float
    support: int


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

    @classmethod
    def empty(cls, neuron: int) -> Explanation:
        r"""The explanation of a neuron for which no formula was admissible."""
        return cls(neuron)

    @property
    def has_formula(self) -> bool:
        r"""Whether an admissible formula was found."""
        return self.formula is not None


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
                    neuron index), kept for plots; not serialized.
        concepts (Tensor, optional): ``(N, C)`` boolean labels, kept for plots; not serialized.
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

    def mask(self, neuron: int, concepts: Tensor | np.ndarray | None = None) -> Tensor:
        r"""
        The samples where ``neuron``'s formula holds.

        Args:
            neuron (int): The neuron.
            concepts (Tensor or ndarray, optional): ``(N, C)`` labels. Default: the labels the
                        explanations were computed from.

        Returns:
            *Tensor* of ``N`` booleans.
        """
        explanation = self[neuron]
        if explanation.formula is None:
            raise ValueError(f"neuron {neuron} has no admissible formula, hence no mask")
        labels = concepts if concepts is not None else self.concepts
        if labels is None:
            raise ValueError(
                "these explanations carry no labels (e.g. read from JSON): pass `concepts`"
            )
        return torch.as_tensor(explanation.formula.evaluate(torch.as_tensor(labels)))

    def neuron_activations(
        self, neuron: int, activations: Tensor | np.ndarray | None = None
    ) -> Tensor:
        r"""
        The ``(N,)`` activations of ``neuron``: column ``neuron`` of ``activations`` (default:
        the activations the explanations were computed from).
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
        ``auc``, ``p_value``, ``z``, ``support``, ``fraction``, ``exact_test``.
        """
        try:
            import pandas as pd
        except ImportError as error:
            raise ImportError("to_dataframe() needs pandas: pip install pandas") from error
        return pd.DataFrame(
            [_table_row(item) for item in self], columns=list(_table_row(Explanation.empty(0)))
        )

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
            f"{'neuron':>6}  {'formula':<{width}}  {'AUC':>6}  {'p-value':>9}  support",
        ]
        for item, text in zip(self, texts, strict=True):
            support = f"{item.support} ({100 * item.fraction:.1f}%)" if item.formula else "-"
            lines.append(
                f"{item.neuron:>6}  {text:<{width}}  {item.auc:>6.3f}  {item.p_value:>9.2e}  "
                f"{support}"
            )
        return "\n".join(lines)

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
    The explanations a beam search found: per neuron its final beam decoded into formulas and a
    Mann-Whitney U test of the best formula.

    Args:
        result (BeamSearchResult): The search's result, one row per neuron.
        neurons (list of int): The layer index of each row's neuron.
        names (list of str): The concept names the formulas' steps index.
        count (int): Number of samples ``N`` the search ran on.
        settings (SearchSettings): The search's settings (its ``alternative`` is tested).

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
        beam = tuple(
            BeamEntry(
                formula_from_steps(result.steps[row, slot].tolist(), names),
                float(result.auc[row, slot]),
                int(result.counts[row, slot]),
            )
            for slot in range(result.valid.shape[1])
            if bool(result.valid[row, slot])
        )
        if not beam:
            explanations.append(Explanation.empty(neuron))
            continue
        explanations.append(
            Explanation(
                neuron=neuron,
                formula=beam[0].formula,
                auc=beam[0].auc,
                p_value=float(tests.p_value[tested[row]]),
                z=float(tests.z[tested[row]]),
                support=beam[0].support,
                fraction=beam[0].support / count,
                exact_test=bool(tests.exact[tested[row]]),
                beam=beam,
            )
        )
    return explanations


def _table_row(item: Explanation) -> dict[str, Any]:
    """The fields of an explanation but its beam, the formula as text followed by its length."""
    row: dict[str, Any] = {}
    for field in fields(item):
        value = getattr(item, field.name)
        if field.name == "formula":
            row["formula"] = None if value is None else str(value)
            row["length"] = 0 if value is None else value.length
        elif field.name != "beam":
            row[field.name] = value
    return row


def _to_record(item: Explanation | BeamEntry) -> dict[str, Any]:
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
    return value


def _from_record(kind: type[Any], record: Mapping[str, Any], names: Sequence[str]) -> Any:
    """The :class:`Explanation` or :class:`BeamEntry` that :func:`_to_record` wrote."""
    hints = get_type_hints(kind)
    return kind(
        **{
            field.name: _from_json_value(hints[field.name], record[field.name], names)
            for field in fields(kind)
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
    return value


def _preview(values: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(value) for value in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")
