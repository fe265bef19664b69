"""Explanations: indexing, the printed table, JSON round trip, data frame, empty explanations."""

from __future__ import annotations

import math

import pytest
import torch

from captum_netinv.recognition import Explanation, Explanations, explain_activations

NAMES = ["round", "thick stroke", "a|b", "slant"]


@pytest.fixture(scope="module")
def explanations() -> Explanations:
    generator = torch.Generator().manual_seed(0)
    labels = torch.rand(400, 4, generator=generator) < 0.2
    activations = torch.randn(400, 3, generator=generator)
    activations[:, 0] += 2.0 * (labels[:, 0] | labels[:, 2])
    found = explain_activations(activations, labels, concept_names=NAMES, formula_length=2)
    # a neuron without an admissible formula, as the search reports it
    items = [*found, Explanation.empty(7)]
    return Explanations(
        items,
        NAMES,
        n_samples=400,
        settings=found.settings,
        activations=activations,
        concepts=labels,
    )


def _same(one: Explanation, other: Explanation) -> bool:
    numbers = ("auc", "p_value", "z", "fraction")
    return all(
        getattr(one, name) == getattr(other, name)
        or (math.isnan(getattr(one, name)) and math.isnan(getattr(other, name)))
        for name in numbers
    ) and (one.neuron, one.formula, one.support, one.exact_test, one.beam, one.by_length) == (
        other.neuron,
        other.formula,
        other.support,
        other.exact_test,
        other.beam,
        other.by_length,
    )


def test_indexing_by_neuron_iteration_and_len(explanations: Explanations) -> None:
    assert len(explanations) == 4 and explanations.neurons == [0, 1, 2, 7]
    assert [item.neuron for item in explanations] == [0, 1, 2, 7]
    assert explanations[7].formula is None and 7 in explanations
    assert str(explanations[0].formula) == 'round | "a|b"'
    with pytest.raises(KeyError, match="neuron 5 was not explained"):
        explanations[5]


def test_json_round_trip_keeps_everything(explanations: Explanations) -> None:
    text = explanations.to_json(indent=2)
    back = Explanations.from_json(text)
    assert back.concept_names == NAMES and back.settings == explanations.settings
    assert back.n_samples == 400 and back.activations is None
    assert all(_same(one, other) for one, other in zip(explanations, back, strict=True))
    assert back.to_json(indent=2) == text
    with pytest.raises(ValueError, match="`text`"):
        Explanations.from_json('{"something": 1}')


def test_dataframe_has_a_row_per_neuron(explanations: Explanations) -> None:
    frame = explanations.to_dataframe()
    assert list(frame["neuron"]) == [0, 1, 2, 7]
    assert frame.loc[0, "formula"] == 'round | "a|b"' and frame.loc[0, "length"] == 2
    assert frame.loc[0, "auc"] == explanations[0].auc
    assert frame["formula"].isna()[3] and math.isnan(frame.loc[3, "auc"])


def test_str_is_a_readable_table(explanations: Explanations) -> None:
    lines = str(explanations).splitlines()
    assert lines[0].startswith("INVERT explanations of 4 neurons on 400 samples, 4 concepts")
    assert lines[1].split() == [
        "neuron",
        "formula",
        "AUC",
        "p-value",
        "support",
        "coverage",
        "refinement",
    ]
    first = explanations[0]
    assert lines[2].split()[0] == "0" and f"{first.auc:.3f}" in lines[2]
    assert "(no admissible formula)" in lines[5]
    assert repr(explanations) == "Explanations(neurons=4, n_samples=400, concepts=4)"


def test_mask_and_activations_of_a_neuron(explanations: Explanations) -> None:
    labels = explanations.concepts
    assert labels is not None
    assert torch.equal(explanations.mask(0), labels[:, 0] | labels[:, 2])
    assert explanations.mask(0).sum().item() == explanations[0].support
    assert explanations.activations is not None
    assert torch.equal(explanations.neuron_activations(2), explanations.activations[:, 2])
    with pytest.raises(ValueError, match="no admissible formula"):
        explanations.mask(7)
    back = Explanations.from_json(explanations.to_json())
    with pytest.raises(ValueError, match="pass `concepts`"):
        back.mask(0)
    assert torch.equal(back.mask(0, labels), explanations.mask(0))


def test_best_of_each_length_in_exports_and_masks(explanations: Explanations) -> None:
    item = explanations[0]
    assert sorted(item.best_by_length) == [1, 2] and item.best_by_length[2] == item.beam[0]
    frame = explanations.to_dataframe()
    for length in (1, 2):
        entry = item.best_by_length[length]
        assert frame.loc[0, f"formula_{length}"] == str(entry.formula)
        assert frame.loc[0, f"auc_{length}"] == entry.auc
        mask = explanations.mask(0, length=length)
        assert torch.equal(mask, entry.formula.evaluate(explanations.concepts))
        assert int(mask.sum()) == entry.support
    assert frame["formula_1"].isna()[3] and explanations[7].best_by_length == {}
    with pytest.raises(ValueError, match="`length` must be one of \\[1, 2\\], got 3"):
        explanations.mask(0, length=3)
    # files written before per-length results existed still read
    old = explanations.to_json().replace(', "by_length": []', "")
    assert Explanations.from_json(old)[7].by_length == ()
