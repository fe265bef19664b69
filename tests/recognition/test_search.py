"""Beam search against brute force, planted formulas, deduplication and argument checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu
from sklearn.metrics import roc_auc_score

from captum_netinv.recognition import explain_activations
from captum_netinv.recognition.formula import And, Atom, Formula, Not, Or
from captum_netinv.recognition.search import beam_search, check_search_arguments

NAMES = ["a", "b", "c", "d", "e"]


def _data(samples: int = 400, neurons: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.rand(samples, len(NAMES), generator=generator) < torch.tensor(
        [0.3, 0.45, 0.2, 0.6, 0.1]
    )
    activations = torch.randn(samples, neurons, generator=generator).round(decimals=1)
    activations += labels.float() @ torch.randn(len(NAMES), neurons, generator=generator)
    return activations, labels


def _all_formulas(names: list[str], length: int) -> list[Formula]:
    literals: list[Formula] = [Atom(i, name) for i, name in enumerate(names)]
    literals += [Not(atom) for atom in list(literals)]
    formulas = list(literals)
    if length >= 2:
        for left, right in itertools.product(literals, repeat=2):
            formulas += [And(left, right), Or(left, right)]
    return formulas


def _brute_force(
    activations: torch.Tensor, labels: torch.Tensor, low: float, high: float
) -> tuple[np.ndarray, np.ndarray]:
    """Best and worst AUC over every admissible formula of length <= 2, with scikit-learn."""
    best, worst = [], []
    masks = {str(f): f.evaluate(labels.numpy()) for f in _all_formulas(NAMES, 2)}
    for column in activations.numpy().T:
        aucs = [
            roc_auc_score(mask, column)
            for mask in masks.values()
            if 0 < mask.sum() < mask.size and low <= mask.mean() <= high
        ]
        best.append(max(aucs))
        worst.append(min(aucs))
    return np.array(best), np.array(worst)


@pytest.mark.parametrize("max_fraction", [1.0, 0.5])
def test_wide_beam_finds_the_brute_force_optimum(max_fraction: float) -> None:
    activations, labels = _data()
    best, worst = _brute_force(activations, labels, 0.0, max_fraction)
    # with every literal admissible and in the beam, every length-2 formula is scored
    for mode, optimum in (("positive", best), ("negative", worst)):
        found = explain_activations(
            activations,
            labels,
            concept_names=NAMES,
            formula_length=2,
            beam_size=2 * len(NAMES),
            max_fraction=max_fraction,
            mode=mode,
        )
        aucs = np.array([item.auc for item in found])
        if max_fraction == 1.0:
            np.testing.assert_allclose(aucs, optimum, atol=1e-12)
        else:
            # literals above half the samples cannot seed a beam, so the optimum is a bound
            assert (
                (aucs <= optimum + 1e-12) if mode == "positive" else (aucs >= optimum - 1e-12)
            ).all()
        for item in found:
            mask = item.formula.evaluate(labels.numpy())
            assert item.support == mask.sum() and 0 < item.fraction <= max_fraction
            column = activations[:, item.neuron].numpy()
            assert item.auc == pytest.approx(roc_auc_score(mask, column), abs=1e-12)


def test_every_beam_entry_scores_its_own_mask() -> None:
    activations, labels = _data(samples=600, neurons=3, seed=3)
    found = explain_activations(
        activations, labels, concept_names=NAMES, formula_length=3, beam_size=6, max_fraction=0.9
    )
    for item in found:
        assert [entry.auc for entry in item.beam] == sorted(
            (entry.auc for entry in item.beam), reverse=True
        )
        masks = set()
        for entry in item.beam:
            mask = entry.formula.evaluate(labels.numpy())
            masks.add(mask.tobytes())
            column = activations[:, item.neuron].numpy()
            assert entry.auc == pytest.approx(roc_auc_score(mask, column), abs=1e-12)
            assert entry.support == mask.sum()
        assert len(masks) == len(item.beam), "beam holds two formulas with the same mask"


@pytest.mark.parametrize(
    "planted",
    ["(a | b) & ~c", "a & ~d", "~c & d", "c | e", "a | ~b"],
)
def test_planted_formulas_are_recovered(planted: str) -> None:
    generator = torch.Generator().manual_seed(1)
    labels = torch.rand(3000, len(NAMES), generator=generator) < 0.3
    truth = Formula.parse(planted, NAMES).evaluate(labels)
    activations = torch.randn(3000, 2, generator=generator) * 0.5
    activations[:, 0] += 2.0 * truth
    activations[:, 1] -= 2.0 * truth
    positive = explain_activations(activations, labels, concept_names=NAMES, max_fraction=1.0)
    negative = explain_activations(
        activations, labels, concept_names=NAMES, max_fraction=1.0, mode="negative"
    )
    for item in (positive[0], negative[1]):
        assert item.formula is not None
        assert torch.equal(item.formula.evaluate(labels), truth), str(item.formula)
    assert positive[0].auc > 0.95 and negative[1].auc < 0.05


def test_identical_masks_are_one_candidate_keeping_the_first() -> None:
    activations, labels = _data(samples=500, neurons=2, seed=4)
    doubled = torch.cat([labels, labels[:, :1]], dim=1)
    names = [*NAMES, "a_copy"]
    found = explain_activations(
        activations, doubled, concept_names=names, formula_length=3, beam_size=8, max_fraction=1.0
    )
    for item in found:
        assert all("a_copy" not in entry.formula.concepts for entry in item.beam)
        masks = {entry.formula.evaluate(doubled.numpy()).tobytes() for entry in item.beam}
        assert len(masks) == len(item.beam)


def test_shorter_duplicate_wins_over_a_longer_one() -> None:
    # b is a subset of a: "a & b" and "b" share a mask, "b" is kept
    labels = torch.zeros(200, 2, dtype=torch.bool)
    labels[:80, 0] = True
    labels[:30, 1] = True
    activations = torch.zeros(200, 1)
    activations[:30, 0] = 1.0
    found = explain_activations(
        activations, labels, concept_names=["a", "b"], formula_length=3, beam_size=4
    )
    assert str(found[0].formula) == "b"
    assert found[0].auc == 1.0


def test_chunked_and_whole_searches_agree() -> None:
    activations, labels = _data(samples=300, neurons=7, seed=5)
    settings = check_search_arguments(3, 3, 0.0, 0.5, "positive", None)
    whole = beam_search(activations, labels, settings)
    chunked = beam_search(activations, labels, settings, neurons_per_chunk=2)
    for one, other in zip(whole.__dict__.values(), chunked.__dict__.values(), strict=True):
        assert torch.equal(one, other)


def test_neuron_without_admissible_formula_gets_an_empty_explanation() -> None:
    labels = torch.zeros(100, 2, dtype=torch.bool)
    labels[:10, 0] = True
    labels[:20, 1] = True
    found = explain_activations(
        torch.randn(100, 2), labels, formula_length=1, min_fraction=0.3, max_fraction=0.7
    )
    assert all(item.formula is None and np.isnan(item.auc) for item in found)


def test_constant_neuron_and_selected_neurons() -> None:
    activations, labels = _data(samples=200, neurons=3, seed=6)
    activations[:, 1] = 0.5
    found = explain_activations(activations, labels, neurons=[2, 1], formula_length=2)
    assert found.neurons == [2, 1]
    constant = found[1]
    assert constant.auc == 0.5 and np.isnan(constant.z)
    mask = constant.formula.evaluate(labels.numpy())
    assert (
        constant.p_value
        == mannwhitneyu(
            activations[mask, 1].numpy(), activations[~mask, 1].numpy(), alternative="greater"
        ).pvalue
    )
    assert found[2].formula is not None


@pytest.mark.parametrize(
    ("changes", "error", "argument"),
    [
        ({"formula_length": 0}, ValueError, "`formula_length`"),
        ({"formula_length": 2.0}, TypeError, "`formula_length`"),
        ({"beam_size": 0}, ValueError, "`beam_size`"),
        ({"min_fraction": -0.1}, ValueError, "`min_fraction`"),
        ({"max_fraction": 1.5}, ValueError, "`max_fraction`"),
        ({"min_fraction": 0.6, "max_fraction": 0.4}, ValueError, "`min_fraction`"),
        ({"mode": "both"}, ValueError, "`mode`"),
        ({"alternative": "up"}, ValueError, "`alternative`"),
        ({"neurons": [0, 9]}, ValueError, "`neurons`"),
        ({"neurons": [0.5]}, TypeError, "`neurons`"),
        ({"concept_names": ["a", "a", "b", "c", "d"]}, ValueError, "`concept_names`"),
        ({"concept_names": ["a", "b"]}, ValueError, "`concept_names`"),
    ],
)
def test_bad_arguments_name_the_argument(changes: dict, error: type, argument: str) -> None:
    activations, labels = _data(samples=50, neurons=3)
    with pytest.raises(error, match=argument):
        explain_activations(activations, labels, **changes)


def test_bad_labels_and_activations_are_rejected() -> None:
    activations, labels = _data(samples=50, neurons=3)
    with pytest.raises(ValueError, match="`concepts` must be binary"):
        explain_activations(activations, labels.float() * 2)
    with pytest.raises(ValueError, match="`concepts` labels 49 samples but `activations` holds 50"):
        explain_activations(activations, labels[:49])
    with pytest.raises(ValueError, match="zero concepts"):
        explain_activations(activations, labels[:, :0])
    with pytest.raises(ValueError, match="zero concepts"):
        explain_activations(activations, {})
    broken = activations.clone()
    broken[3, 1] = float("nan")
    broken[0, 2] = float("inf")
    with pytest.raises(
        ValueError, match=r"`activations` holds NaN or infinite values for neurons \[1, 2\]"
    ):
        explain_activations(broken, labels)
    with pytest.raises(TypeError, match="`concepts`"):
        explain_activations(activations, "labels")  # type: ignore[arg-type]


def test_mapping_and_array_concepts_give_the_same_result() -> None:
    activations, labels = _data(samples=300, neurons=2, seed=7)
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
