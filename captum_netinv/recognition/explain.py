"""INVERT on precomputed activations, and the forms the ``concepts`` argument may take.

:func:`explain_activations` checks its input, runs the beam search and assembles
:class:`~captum_netinv.recognition.explanations.Explanations`; ``InverseRecognition`` calls it
after computing a layer's activations, so both give the same results.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Union

import numpy as np
import torch
from captum.concept import Concept
from torch import Tensor

from captum_netinv._activations import first_tensor
from captum_netinv.recognition.explanations import BeamEntry, Explanation, Explanations
from captum_netinv.recognition.formula import And, Atom, Formula, Not, Or
from captum_netinv.recognition.ranking import mann_whitney_p_values
from captum_netinv.recognition.search import (
    BeamSearchResult,
    SearchSettings,
    beam_search,
    check_search_arguments,
)

#: An ``(N, C)`` label matrix, a mapping name -> ``(N,)`` mask, or a list of Captum concepts.
ConceptSource = Union[Tensor, np.ndarray, Mapping[str, Any], Sequence[Concept]]  # noqa: UP007


def explain_activations(
    activations: Tensor | np.ndarray,
    concepts: Tensor | np.ndarray | Mapping[str, Any],
    *,
    concept_names: Sequence[str] | None = None,
    neurons: int | Sequence[int] | None = None,
    formula_length: int = 3,
    beam_size: int = 5,
    min_fraction: float = 0.0,
    max_fraction: float = 0.5,
    mode: str = "positive",
    alternative: str | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> Explanations:
    r"""
    Labels each neuron of a precomputed activation matrix with the formula of concepts whose
    presence its activations separate best (INVERT, Bykov et al., NeurIPS 2023), scored by AUC
    and tested with the Mann-Whitney U test. Gives the same results as
    :meth:`InverseRecognition.attribute` on the same activations.

    Args:
        activations (Tensor or ndarray): ``(N, K)`` activations of ``K`` neurons on ``N``
                    samples (``(N,)`` for one neuron), used as they are (no squashing).
        concepts (Tensor, ndarray or Mapping): ``(N, C)`` binary labels (bool or 0/1), or a
                    mapping concept name -> ``(N,)`` binary mask.
        concept_names (sequence of str, optional): Names of the label columns; only with a
                    matrix. Default: ``c0``, ``c1``, ...
        neurons (int or sequence of int, optional): Columns to explain. Default: all.
        formula_length (int, optional): Longest formula, in literals. Default: 3
        beam_size (int, optional): Formulas kept per level. Default: 5
        min_fraction (float, optional): Smallest admissible fraction of samples a formula may
                    hold. Default: 0.0
        max_fraction (float, optional): Largest admissible fraction. Default: 0.5
        mode (str, optional): ``"positive"`` maximizes the AUC (concepts that raise the
                    activation), ``"negative"`` minimizes it. Default: ``"positive"``
        alternative (str, optional): P-value test: None for one-sided in the mode's direction,
                    ``"two-sided"``, ``"greater"`` or ``"less"``. Default: None
        device (torch.device or str, optional): Where the search runs. Default: the device of
                    ``activations``.
        progress (bool, optional): Show a progress bar. Default: False

    Returns:
        :class:`Explanations`, one per neuron, carrying ``activations`` and the label matrix
        for plots.

    Examples::

        >>> activations = torch.randn(1000, 4)
        >>> labels = torch.rand(1000, 6) < 0.2
        >>> explanations = explain_activations(activations, labels, formula_length=2)
        >>> print(explanations[0].formula, explanations[0].auc)
    """
    return explain(
        activations,
        concepts,
        concept_names=concept_names,
        neurons=neurons,
        settings=check_search_arguments(
            formula_length, beam_size, min_fraction, max_fraction, mode, alternative
        ),
        device=device,
        progress=progress,
        source="activations",
    )


def explain(
    activations: Tensor | np.ndarray,
    concepts: Tensor | np.ndarray | Mapping[str, Any],
    *,
    concept_names: Sequence[str] | None,
    neurons: int | Sequence[int] | None,
    settings: SearchSettings,
    device: torch.device | str | None,
    progress: bool,
    source: str,
) -> Explanations:
    r"""
    :func:`explain_activations` with validated ``settings``; ``source`` names the argument the
    activations came from in error messages.
    """
    labels, names = concept_labels(concepts, concept_names)
    values = torch.as_tensor(activations)
    if values.dim() == 1:
        values = values.unsqueeze(1)
    if values.dim() != 2:
        raise ValueError(
            f"`{source}` must give (samples, neurons) activations, got shape {tuple(values.shape)}"
        )
    if values.shape[0] != labels.shape[0]:
        raise ValueError(
            f"`concepts` labels {labels.shape[0]} samples but `{source}` holds "
            f"{values.shape[0]}; they must be the same samples"
        )
    if values.dtype == torch.bool or values.is_complex():
        raise TypeError(f"`{source}` must hold real numbers, got {values.dtype}")
    chosen = neuron_indices(neurons, values.shape[1])
    target = torch.device(device) if device is not None else values.device
    selected = values[:, chosen].to(target)
    finite = torch.isfinite(selected).all(dim=0)
    if not bool(finite.all()):
        bad = [chosen[index] for index in torch.nonzero(~finite).flatten().tolist()]
        raise ValueError(f"`{source}` holds NaN or infinite values for neurons {bad}")
    result = beam_search(selected, labels.to(target), settings, progress=progress)
    return Explanations(
        _explanations(result, chosen, names, labels.shape[0], settings),
        names,
        n_samples=labels.shape[0],
        settings={
            "formula_length": settings.formula_length,
            "beam_size": settings.beam_size,
            "min_fraction": settings.min_fraction,
            "max_fraction": settings.max_fraction,
            "mode": settings.mode,
            "alternative": settings.alternative,
        },
        activations=values,
        concepts=labels,
    )


def neuron_indices(neurons: int | Sequence[int] | Tensor | None, width: int) -> list[int]:
    r"""The neuron indices to explain, checked against the layer's ``width``."""
    if neurons is None:
        return list(range(width))
    values = torch.as_tensor(neurons).reshape(-1)
    if values.is_floating_point() or values.dtype == torch.bool or values.numel() == 0:
        raise TypeError(
            f"`neurons` must be an int or a non-empty sequence of ints, got {neurons!r}"
        )
    indices = values.tolist()
    wrong = [index for index in indices if not 0 <= index < width]
    if wrong:
        raise ValueError(f"`neurons` {wrong} out of range: the layer has {width} neurons")
    if len(set(indices)) != len(indices):
        raise ValueError(f"`neurons` must not repeat a neuron, got {indices}")
    return indices


def concept_labels(
    concepts: Tensor | np.ndarray | Mapping[str, Any], concept_names: Sequence[str] | None
) -> tuple[Tensor, list[str]]:
    r"""
    The ``(N, C)`` boolean label matrix (on its own device, CPU for arrays) and the concept names
    of a label matrix with ``concept_names``, or of a mapping name -> mask.
    """
    if isinstance(concepts, Mapping):
        if concept_names is not None:
            raise ValueError(
                "`concept_names` must be None when `concepts` is a mapping: its keys are the names"
            )
        names = list(concepts)
        if not names:
            raise ValueError("`concepts` holds zero concepts; give at least one")
        not_text = [name for name in names if not isinstance(name, str)]
        if not_text:
            raise TypeError(f"`concepts` keys must be concept names (str), got {not_text[:5]}")
        columns = [_binary(concepts[name], f"concepts[{name!r}]", dims=1) for name in names]
        lengths = {column.shape[0] for column in columns}
        if len(lengths) != 1:
            raise ValueError(f"`concepts` masks must all have the same length, got {lengths}")
        return torch.stack([column.to(columns[0].device) for column in columns], 1), names
    if isinstance(concepts, (list, tuple)) and concepts and isinstance(concepts[0], Concept):
        raise TypeError(
            "a list of captum Concepts needs the model to run on its data: use "
            "InverseRecognition.attribute(None, concepts)"
        )
    if not isinstance(concepts, (Tensor, np.ndarray)):
        raise TypeError(
            "`concepts` must be an (N, C) boolean tensor or array, a mapping name -> mask, or a "
            f"list of captum.concept.Concept, got {type(concepts).__name__}"
        )
    labels = _binary(concepts, "concepts", dims=2)
    if labels.shape[1] == 0:
        raise ValueError("`concepts` holds zero concepts; give at least one column")
    if concept_names is None:
        names = [f"c{index}" for index in range(labels.shape[1])]
    else:
        if isinstance(concept_names, str):
            raise TypeError("`concept_names` must be a sequence of str, got a single str")
        names = list(concept_names)
        if len(names) != labels.shape[1]:
            raise ValueError(
                f"`concept_names` has {len(names)} names for {labels.shape[1]} concept columns"
            )
    _check_names(names, "concept_names")
    return labels, names


def _binary(values: Any, name: str, dims: int) -> Tensor:
    tensor = torch.as_tensor(values)
    if tensor.dim() != dims:
        expected = "(N, C)" if dims == 2 else "(N,)"
        raise ValueError(f"`{name}` must have shape {expected}, got {tuple(tensor.shape)}")
    if tensor.dtype == torch.bool:
        return tensor
    if tensor.is_complex() or not bool(((tensor == 0) | (tensor == 1)).all()):
        found = torch.unique(tensor[(tensor != 0) & (tensor != 1)])[:5].tolist()
        raise ValueError(f"`{name}` must be binary (bool or 0/1), found values {found}")
    return tensor != 0


def _check_names(names: list[str], argument: str) -> None:
    not_text = [name for name in names if not isinstance(name, str)]
    if not_text:
        raise TypeError(f"`{argument}` must be str, got {not_text[:5]}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"`{argument}` must be unique, got duplicates {duplicates}")


class ConceptBatches:
    r"""
    The data of a list of ``captum.concept.Concept`` as one stream of batches: the concepts'
    ``data_iter`` batches one after the other. Counting the samples while they stream gives the
    label matrix, each sample positive for its own concept only.

    Args:
        concepts (sequence of Concept): Concepts with a ``data_iter`` each.
    """

    def __init__(self, concepts: Sequence[Concept]) -> None:
        if len(concepts) == 0:
            raise ValueError("`concepts` holds zero concepts; give at least one")
        wrong = [type(concept).__name__ for concept in concepts if not isinstance(concept, Concept)]
        if wrong:
            raise TypeError(f"`concepts` mixes captum Concepts with {sorted(set(wrong))}")
        missing = [concept.name for concept in concepts if concept.data_iter is None]
        if missing:
            raise ValueError(f"`concepts` {missing} have no data_iter to take samples from")
        self.concepts = list(concepts)
        self.names = [str(concept.name) for concept in self.concepts]
        _check_names(self.names, "concepts (names)")
        self.sample_counts = [0] * len(self.concepts)

    def __iter__(self) -> Iterator[Tensor]:
        self.sample_counts = [0] * len(self.concepts)
        for position, concept in enumerate(self.concepts):
            assert concept.data_iter is not None
            for batch in concept.data_iter:
                inputs = first_tensor(batch, "concepts")
                self.sample_counts[position] += inputs.shape[0]
                yield inputs

    def labels(self) -> Tensor:
        r"""``(N, C)`` labels of the samples streamed so far: one concept per sample."""
        owner = torch.repeat_interleave(
            torch.arange(len(self.concepts)), torch.tensor(self.sample_counts)
        )
        return torch.nn.functional.one_hot(owner, len(self.concepts)).bool()


def _explanations(
    result: BeamSearchResult,
    neurons: list[int],
    names: list[str],
    count: int,
    settings: SearchSettings,
) -> list[Explanation]:
    # tests only for neurons with a formula; test row `tested[row]` belongs to neuron row `row`
    has_formula = result.valid[:, 0].numpy()
    tested = np.cumsum(has_formula) - 1
    best_counts = result.counts[has_formula, 0].numpy()
    u = (result.rank_sums[has_formula, 0].numpy() - best_counts * (best_counts + 1.0)) / 2.0
    tests = mann_whitney_p_values(
        u,
        best_counts,
        count - best_counts,
        result.tie_terms[has_formula].numpy(),
        settings.alternative,
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


def formula_from_steps(steps: Sequence[int], names: Sequence[str]) -> Formula:
    r"""
    The formula that :class:`~captum_netinv.recognition.search.BeamSearchResult` encodes as
    steps ``operator * 2C + literal`` (see there), nested to the left.
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
