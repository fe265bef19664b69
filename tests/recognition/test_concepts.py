"""Concept sources: label matrices with names, mappings name -> mask and Captum concepts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from captum.concept import Concept
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
)

from captum_netinv.recognition import explain_activations
from captum_netinv.recognition.concepts import (
    ConceptBatches,
    check_sample_order,
    concept_batches,
    concept_labels,
)

NAMES = ["a", "b", "c", "d", "e"]


def _concept(index: int, name: str, samples: int) -> Concept:
    return Concept(index, name, DataLoader(torch.randn(samples, 3), batch_size=4))


def test_mapping_and_array_concepts_give_the_same_result(
    synthetic: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> None:
    activations, labels = synthetic(samples=300, neurons=2, seed=7)
    from_tensor = explain_activations(activations, labels, concept_names=NAMES)
    from_mapping = explain_activations(
        activations.numpy(), {name: labels[:, i].numpy() for i, name in enumerate(NAMES)}
    )
    from_ints = explain_activations(activations, labels.int().numpy(), concept_names=NAMES)
    for one, other, third in zip(from_tensor, from_mapping, from_ints, strict=True):
        assert one.formula == other.formula == third.formula
        assert one.auc == other.auc == third.auc
    default = explain_activations(activations, labels)
    assert default.concept_names == ["c0", "c1", "c2", "c3", "c4"]


def test_bad_labels_are_rejected(
    synthetic: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> None:
    activations, labels = synthetic(samples=50, neurons=3)
    with pytest.raises(ValueError, match="`concepts` must be binary"):
        explain_activations(activations, labels.float() * 2)
    with pytest.raises(ValueError, match="zero concepts"):
        explain_activations(activations, labels[:, :0])
    with pytest.raises(ValueError, match="zero concepts"):
        explain_activations(activations, {})
    with pytest.raises(TypeError, match="`concepts`"):
        explain_activations(activations, "labels")  # type: ignore[arg-type]


def test_concept_labels_of_a_matrix_and_a_mapping() -> None:
    matrix = torch.tensor([[1, 0], [0, 0], [1, 1]])
    labels, names = concept_labels(matrix, ["round", "red"])
    assert labels.dtype == torch.bool and names == ["round", "red"]
    same, keys = concept_labels({"round": [1, 0, 1], "red": [0, 0, 1]}, None)
    assert torch.equal(same, labels) and keys == names
    with pytest.raises(ValueError, match="`concept_names` must be None"):
        concept_labels({"round": [1, 0, 1]}, ["round"])
    with pytest.raises(ValueError, match="same length"):
        concept_labels({"round": [1, 0, 1], "red": [0, 1]}, None)
    with pytest.raises(ValueError, match=r"`concepts\['red'\]` must be binary"):
        concept_labels({"round": [1, 0, 1], "red": [0, 2, 1]}, None)
    with pytest.raises(TypeError, match="single str"):
        concept_labels(matrix, "rr")
    with pytest.raises(TypeError, match="InverseRecognition.attribute"):
        concept_labels([_concept(0, "a", 4)], None)  # type: ignore[arg-type]


def test_concept_batches_stream_the_data_and_label_each_sample_with_its_concept() -> None:
    batches = concept_batches(None, [_concept(0, "a", 6), _concept(1, "b", 3)], None)
    assert isinstance(batches, ConceptBatches) and batches.names == ["a", "b"]
    assert sum(batch.shape[0] for batch in batches) == 9
    assert batches.labels().tolist() == [[True, False]] * 6 + [[False, True]] * 3
    assert concept_batches(torch.randn(5, 3), torch.ones(5, 2), None) is None


def test_concept_batches_name_the_wrong_argument() -> None:
    concepts = [_concept(0, "a", 4), _concept(1, "b", 4)]
    with pytest.raises(ValueError, match="`inputs` must be None"):
        concept_batches(torch.randn(8, 3), concepts, None)
    with pytest.raises(ValueError, match="`concept_names` must be None"):
        concept_batches(None, concepts, ["a", "b"])
    with pytest.raises(ValueError, match="`inputs` is None"):
        concept_batches(None, torch.ones(5, 2), None)
    with pytest.raises(ValueError, match="0-d tensor"):
        concept_batches(torch.tensor(1.0), torch.ones(5, 2), None)
    with pytest.raises(ValueError, match="must be unique"):
        ConceptBatches([_concept(0, "a", 4), _concept(1, "a", 4)])
    with pytest.raises(TypeError, match="mixes captum Concepts"):
        ConceptBatches([concepts[0], "b"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="no data_iter"):
        ConceptBatches([Concept(0, "a", None)])


def test_random_order_loaders_are_refused_and_sequential_ones_pass() -> None:
    data = TensorDataset(torch.zeros(6, 2))
    random_loaders = [
        DataLoader(data, shuffle=True),
        DataLoader(data, sampler=SubsetRandomSampler(range(6))),
        DataLoader(data, sampler=WeightedRandomSampler([1.0] * 6, 6)),
        DataLoader(data, batch_sampler=BatchSampler(RandomSampler(data), 2, drop_last=False)),
    ]
    for loader in random_loaders:
        with pytest.raises(ValueError, match="DataLoader that shuffles its samples"):
            check_sample_order(loader)
    check_sample_order(DataLoader(data, batch_size=4))
    check_sample_order([torch.zeros(2, 2)])
