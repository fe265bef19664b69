"""Beam search against brute force, planted formulas, deduplication and argument checks."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu
from sklearn.metrics import roc_auc_score

from captum_netinv.recognition import InverseRecognition, explain_activations
from captum_netinv.recognition.explanations import formula_from_steps
from captum_netinv.recognition.formula import And, Atom, Formula, Not, Or
from captum_netinv.recognition.search import SearchSettings, beam_search

NAMES = ["a", "b", "c", "d", "e"]


def _all_formulas(names: list[str], length: int) -> list[Formula]:
    literals: list[Formula] = [Atom(i, name) for i, name in enumerate(names)]
    literals += [Not(atom) for atom in list(literals)]
    formulas = list(literals)
    if length >= 2:
        for left, right in itertools.product(literals, repeat=2):
            formulas += [And(left, right), Or(left, right)]
    return formulas


def _brute_force(
    activations: torch.Tensor, labels: torch.Tensor, low: float, high: float, length: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Best and worst AUC over every admissible formula of ``length`` <= 2, with scikit-learn."""
    best, worst = [], []
    masks = {str(f): f.evaluate(labels.numpy()) for f in _all_formulas(NAMES, length)}
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
def test_wide_beam_finds_the_brute_force_optimum(
    max_fraction: float, synthetic: Callable[..., tuple[torch.Tensor, torch.Tensor]]
) -> None:
    activations, labels = synthetic()
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
            # and the best of at most one literal is the best literal
            singles = _brute_force(activations, labels, 0.0, 1.0, length=1)
            single = singles[0] if mode == "positive" else singles[1]
            by_length = [[item.best_by_length[n].auc for item in found] for n in (1, 2)]
            np.testing.assert_allclose(by_length, [single, optimum], atol=1e-12)
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


def test_every_beam_entry_scores_its_own_mask(
    synthetic: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> None:
    activations, labels = synthetic(samples=600, neurons=3, seed=3)
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


def test_identical_masks_are_one_candidate_keeping_the_first(
    synthetic: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> None:
    activations, labels = synthetic(samples=500, neurons=2, seed=4)
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


def test_chunked_and_whole_searches_agree(
    synthetic: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> None:
    activations, labels = synthetic(samples=300, neurons=7, seed=5)
    settings = SearchSettings(formula_length=3, beam_size=3)  # the other settings' defaults
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


def test_constant_neuron_and_selected_neurons(
    synthetic: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> None:
    activations, labels = synthetic(samples=200, neurons=3, seed=6)
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
def test_bad_arguments_name_the_argument(
    changes: dict,
    error: type,
    argument: str,
    synthetic: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> None:
    activations, labels = synthetic(samples=50, neurons=3)
    with pytest.raises(error, match=argument):
        explain_activations(activations, labels, **changes)


def test_bad_activations_are_rejected(
    synthetic: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> None:
    activations, labels = synthetic(samples=50, neurons=3)
    with pytest.raises(ValueError, match="`concepts` labels 49 samples but `activations` holds 50"):
        explain_activations(activations, labels[:49])
    broken = activations.clone()
    broken[3, 1] = float("nan")
    broken[0, 2] = float("inf")
    with pytest.raises(
        ValueError, match=r"`activations` holds NaN or infinite values for neurons \[1, 2\]"
    ):
        explain_activations(broken, labels)


def test_settings_are_validated_on_creation() -> None:
    defaults = SearchSettings()
    assert defaults.to_dict() == {
        "formula_length": 3,
        "beam_size": 5,
        "min_fraction": 0.0,
        "max_fraction": 0.5,
        "mode": "positive",
        "alternative": "greater",
        "reference_compatible": False,
    }
    assert SearchSettings(mode="negative").alternative == "less"
    assert SearchSettings(reference_compatible=True).alternative == "two-sided"
    assert SearchSettings(min_fraction=0, max_fraction=1).to_dict()["max_fraction"] == 1.0
    assert SearchSettings(alternative="two-sided").alternative == "two-sided"
    with pytest.raises(TypeError, match="`min_fraction`"):
        SearchSettings(min_fraction=True)
    with pytest.raises(ValueError, match="`alternative`"):
        SearchSettings(alternative="up")


def test_public_signatures_take_their_defaults_from_the_settings() -> None:
    for function in (explain_activations, InverseRecognition.attribute):
        parameters = inspect.signature(function).parameters
        for field in dataclasses.fields(SearchSettings):
            assert parameters[field.name].default == field.default, (function, field.name)


def test_formula_from_steps_decodes_left_nested_formulas() -> None:
    names = ["a", "b", "c"]
    # operator * 2C + literal, literal C + c for NOT c; -1 ends the formula
    steps = [1, 2 * 3 + 3 + 2, 0 * 6 + 0, -1]
    formula = formula_from_steps(steps, names)
    assert formula == And(Or(Atom(1, "b"), Not(Atom(2, "c"))), Atom(0, "a"))
    assert formula_from_steps([3 + 0], names) == Not(Atom(0, "a"))
    with pytest.raises(ValueError, match="`steps`"):
        formula_from_steps([-1, -1], names)


def test_best_of_each_length_scores_its_mask_and_never_gets_worse(
    synthetic: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> None:
    activations, labels = synthetic(samples=500, neurons=4, seed=5)
    found = explain_activations(
        activations, labels, concept_names=NAMES, formula_length=4, beam_size=3
    )
    for item in found:
        bests = item.best_by_length
        assert sorted(bests) == [1, 2, 3, 4] and bests[4] == item.beam[0]
        column = activations[:, item.neuron].numpy()
        for length, entry in bests.items():
            mask = entry.formula.evaluate(labels.numpy())
            assert entry.formula.length <= length and entry.support == mask.sum()
            assert entry.auc == pytest.approx(roc_auc_score(mask, column), abs=1e-12)
        assert all(bests[n].auc <= bests[n + 1].auc for n in (1, 2, 3))


def test_huge_formula_length_is_capped_with_a_warning(
    synthetic: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> None:
    activations, labels = synthetic(samples=300, neurons=2)
    with pytest.warns(UserWarning, match="formula_length` 1000000000 is more than the 10"):
        huge = explain_activations(activations, labels, concept_names=NAMES, formula_length=10**9)
    assert huge.settings["formula_length"] == 10
    capped = explain_activations(activations, labels, concept_names=NAMES, formula_length=10)
    for one, other in zip(huge, capped, strict=True):
        assert one.beam == other.beam and len(one.by_length) == 10


def test_search_stops_once_no_beam_can_change() -> None:
    labels = torch.rand(200, 5, generator=torch.Generator().manual_seed(1)) < 0.3
    # neuron 0 is concept c0 itself (AUC 1: nothing beats it), neuron 1 is constant (all 0.5)
    activations = torch.stack([labels[:, 0].double(), torch.zeros(200, dtype=torch.float64)], 1)
    result = beam_search(activations, labels, SearchSettings(formula_length=6, beam_size=1))
    assert result.level_steps.shape[1] == 1  # level 2 left every beam as it was
    found = explain_activations(activations, labels, formula_length=6, beam_size=1)
    assert [str(e.formula) for e in found[0].by_length] == ["c0"] * 6
    assert all(entry.auc == 0.5 for entry in found[1].by_length)
