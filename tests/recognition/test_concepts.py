"""Concept sources: label matrices with names, mappings name -> mask and Captum concepts."""

from __future__ import annotations

import warnings
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

from captum_netinv.recognition import InverseRecognition, explain_activations
from captum_netinv.recognition.concepts import (
    ConceptBatches,
    check_constant_concepts,
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


def test_constant_concepts_are_named_in_a_warning_and_never_used(
    synthetic: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> None:
    activations, labels = synthetic(samples=200, neurons=3)
    labels = torch.cat([labels, torch.ones(200, 1, dtype=torch.bool), torch.zeros(200, 1)], 1)
    names = [*NAMES, "everywhere", "nowhere"]
    with pytest.warns(UserWarning) as caught:
        found = explain_activations(activations, labels.int(), concept_names=names)
    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 1
    assert messages[0].startswith("`concepts`: 2 concept(s) are constant on these 200 samples")
    assert "'everywhere' (present in every sample)" in messages[0]
    assert "'nowhere' (in no sample)" in messages[0]
    assert (
        "carry no information" in messages[0] and "leaves them out of every formula" in messages[0]
    )
    used = {name for item in found for entry in item.beam for name in entry.formula.concepts}
    assert used and not used & {"everywhere", "nowhere"}
    # the same samples without the constant columns give the same labels
    plain = explain_activations(activations, labels[:, :5], concept_names=NAMES)
    assert [item.formula for item in found] == [item.formula for item in plain]


def test_a_constant_mask_in_a_mapping_warns_too() -> None:
    labels = {"some": torch.arange(10) < 4, "all": torch.ones(10, dtype=torch.bool)}
    with pytest.warns(UserWarning, match="`concepts`: 1 concept\\(s\\) .* 'all'"):
        explain_activations(torch.arange(10.0), labels)


def test_only_constant_concepts_raise_naming_concepts() -> None:
    labels = torch.tensor([[True, False]] * 6)
    with pytest.raises(ValueError, match="`concepts`: every concept is constant on these 6"):
        explain_activations(torch.randn(6, 2), labels)
    with pytest.raises(ValueError, match="'a' \\(present in every sample\\), 'b' \\(in no"):
        check_constant_concepts(labels, ["a", "b"])


def test_a_single_captum_concept_is_constant_and_raises_naming_concepts() -> None:
    model = torch.nn.Linear(3, 2)
    invert = InverseRecognition(model, model)
    with pytest.raises(ValueError) as error:
        invert.attribute(None, [_concept(0, "striped", 8)], progress=False)
    message = str(error.value)
    assert "`concepts`: every concept is constant on these 8 samples" in message
    assert "'striped' (present in every sample)" in message and "at least two" in message
    # two concepts: each sample has one of them, none is constant, nothing is said
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        found = invert.attribute(
            None, [_concept(0, "striped", 8), _concept(1, "dotted", 6)], progress=False
        )
    assert found.n_samples == 14
