"""The concepts INVERT labels neurons with: the forms the ``concepts`` argument may take.

A binary label matrix with names, a mapping name -> mask, or Captum ``Concept`` objects whose data
becomes the samples; each is checked and turned into one ``(N, C)`` boolean matrix and its names.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Union

import numpy as np
import torch
from captum.concept import Concept
from torch import Tensor
from torch.utils.data import (
    DataLoader,
    RandomSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from torch.utils.data.distributed import DistributedSampler

from captum_netinv._activations import InputSource, first_tensor
from captum_netinv._utils import excerpt

__all__ = [
    "MIN_SAMPLES",
    "ConceptBatches",
    "ConceptSource",
    "check_constant_concepts",
    "check_sample_order",
    "concept_batches",
    "concept_labels",
]

#: Fewest samples a search can compare: a formula must hold for some and not for others.
MIN_SAMPLES = 2

#: An ``(N, C)`` label matrix, a mapping name -> ``(N,)`` mask, or a list of Captum concepts.
ConceptSource = Union[Tensor, np.ndarray, Mapping[str, Any], Sequence[Concept]]  # noqa: UP007


def concept_labels(
    concepts: Tensor | np.ndarray | Mapping[str, Any], concept_names: Sequence[str] | None
) -> tuple[Tensor, list[str]]:
    r"""
    The ``(N, C)`` boolean label matrix (on its own device, CPU for arrays) and the concept names
    of a label matrix with ``concept_names``, or of a mapping name -> mask.

    Args:
        concepts (Tensor, ndarray or Mapping): ``(N, C)`` binary labels (bool or 0/1), or a
                    mapping concept name -> ``(N,)`` binary mask.
        concept_names (sequence of str or None): Names of the label columns; None for a mapping
                    (its keys are the names) or for the names ``c0``, ``c1``, ...

    Returns:
        *Tensor* of **labels** and *list* of **names**.

    Examples::

        >>> labels, names = concept_labels({"round": [1, 0, 1], "red": [0, 0, 1]}, None)
        >>> labels.tolist(), names
        ([[True, False], [False, False], [True, True]], ['round', 'red'])
    """
    if isinstance(concepts, Mapping):
        return _mapping_labels(concepts, concept_names)
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
    _check_sample_count(labels.shape[0])
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


def check_constant_concepts(labels: Tensor, names: Sequence[str]) -> None:
    r"""
    Warns (``UserWarning``) naming each concept that every sample has or no sample has: it
    carries no information, and the search leaves it out of every formula (its literal holds
    for all samples or none, never admissible, and joined to a formula it gives the formula
    back, all samples or none). Raises a ``ValueError`` when every concept is constant.

    Args:
        labels (Tensor): ``(N, C)`` boolean labels of the whole data set.
        names (sequence of str): The ``C`` concept names.

    Examples::

        >>> labels = torch.tensor([[True, False], [True, True]])
        >>> check_constant_concepts(labels, ["a", "b"])  # warns: 'a' is in every sample
    """
    count = labels.shape[0]
    present = labels.sum(dim=0).cpu()
    constant = [
        f"{excerpt(name)} ({'present in every sample' if total == count else 'in no sample'})"
        for name, total in zip(names, present.tolist(), strict=True)
        if total in (0, count)
    ]
    if len(constant) == len(names):
        captum_hint = (
            "; captum Concepts label each sample with its own concept only, so give at least "
            "two of them"
            if len(names) == 1
            else ""
        )
        raise ValueError(
            f"`concepts`: every concept is constant on these {count} samples "
            f"({', '.join(constant)}): no formula of them holds for some samples and not for "
            f"others, so none can separate activations; give concepts that some of the samples "
            f"have and others lack{captum_hint}"
        )
    if constant:
        warnings.warn(
            f"`concepts`: {len(constant)} concept(s) are constant on these {count} samples and "
            f"carry no information: {', '.join(constant)}; the search leaves them out of every "
            "formula",
            UserWarning,
            stacklevel=4,
        )


def _mapping_labels(
    concepts: Mapping[str, Any], concept_names: Sequence[str] | None
) -> tuple[Tensor, list[str]]:
    """:func:`concept_labels` of a mapping name -> mask."""
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
        raise ValueError(
            f"`concepts` masks must all have the same length, got {sorted(lengths)[:10]}"
        )
    _check_sample_count(lengths.pop())
    return torch.stack([column.to(columns[0].device) for column in columns], 1), names


def _check_sample_count(count: int) -> None:
    if count < MIN_SAMPLES:
        raise ValueError(
            f"`concepts` labels {count} sample(s): INVERT compares the activations of samples "
            f"where a formula holds with the others, and needs at least {MIN_SAMPLES} samples"
        )


def _binary(values: Any, name: str, dims: int) -> Tensor:
    """``values`` as booleans if they are bool or 0/1 with ``dims`` dimensions, else raises."""
    try:
        tensor = torch.as_tensor(values)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(
            f"`{name}` must be binary labels (a bool or 0/1 tensor or array), got "
            f"{type(values).__name__} {excerpt(values)}"
        ) from error
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
    """Raises unless ``names`` are unique strings."""
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
            if self.sample_counts[position] == 0:
                raise ValueError(
                    f"`concepts`: the concept {excerpt(concept.name)} (id {concept.id}) has no "
                    "samples: its data_iter yielded nothing"
                )

    def labels(self) -> Tensor:
        r"""``(N, C)`` labels of the samples streamed so far: one concept per sample."""
        owner = torch.repeat_interleave(
            torch.arange(len(self.concepts)), torch.tensor(self.sample_counts)
        )
        return torch.nn.functional.one_hot(owner, len(self.concepts)).bool()


def concept_batches(
    inputs: InputSource | None, concepts: ConceptSource, concept_names: Sequence[str] | None
) -> ConceptBatches | None:
    r"""
    The concepts' data as :class:`ConceptBatches` when ``concepts`` are Captum concepts (then
    ``inputs`` and ``concept_names`` must be None), else None after checking that ``inputs``
    holds samples.

    Args:
        inputs (Tensor, Iterable or None): The ``inputs`` of ``InverseRecognition.attribute``.
        concepts (ConceptSource): Its ``concepts``.
        concept_names (sequence of str or None): Its ``concept_names``.

    Returns:
        :class:`ConceptBatches` or None.
    """
    is_concept_list = isinstance(concepts, (list, tuple)) and any(
        isinstance(concept, Concept) for concept in concepts
    )
    if is_concept_list:
        if inputs is not None:
            raise ValueError(
                "`inputs` must be None when `concepts` are captum Concepts: the samples are "
                "the concepts' data"
            )
        batches = ConceptBatches(concepts)  # type: ignore[arg-type]
        if concept_names is not None:
            raise ValueError(
                "`concept_names` must be None when `concepts` are captum Concepts: their "
                "names are used"
            )
        return batches
    if inputs is None:
        raise ValueError(
            "`inputs` is None: give the samples (tensor or DataLoader) that `concepts` labels, "
            "or pass a list of captum Concepts as `concepts`"
        )
    if isinstance(inputs, Tensor) and inputs.dim() == 0:
        raise ValueError("`inputs` must hold a batch dimension, got a 0-d tensor")
    check_sample_order(inputs)
    return None


def check_sample_order(inputs: object) -> None:
    r"""
    Refuses a ``DataLoader`` that draws its samples in random order (``shuffle=True`` or a
    random sampler): the rows of a label matrix would then describe other samples.
    """
    if not isinstance(inputs, DataLoader):
        return
    samplers = [inputs.sampler, getattr(inputs.batch_sampler, "sampler", None)]
    random_order = any(
        isinstance(sampler, (RandomSampler, SubsetRandomSampler, WeightedRandomSampler))
        or (isinstance(sampler, DistributedSampler) and sampler.shuffle)
        for sampler in samplers
    )
    if random_order:
        raise ValueError(
            "`inputs` is a DataLoader that shuffles its samples, so the rows of `concepts` "
            "would label other samples than the ones the model sees; use "
            "DataLoader(..., shuffle=False) (or a sequential sampler) with a label matrix"
        )
