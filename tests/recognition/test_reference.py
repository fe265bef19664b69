"""The reference-compatible search against the official INVERT's own outputs (lapalap/invert v1.1).

Truth: `tests/data/invert_reference/` (official run, see its README), a literal transcription of
the official loops, and SciPy.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import mannwhitneyu

from captum_netinv.recognition import InverseRecognition, explain_activations
from captum_netinv.recognition.formula import Formula
from captum_netinv.recognition.reference import (
    ReferenceExplanation,
    ReferenceNeuronResult,
    reference_auc,
    reference_p_value,
    reference_search,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "invert_reference"
AUC_TOLERANCE = 1e-6
P_VALUE_RTOL = 1e-9


@pytest.fixture(scope="module")
def official() -> dict:
    return json.loads((DATA / "ref_outputs.json").read_text())


@pytest.fixture(scope="module")
def workload() -> tuple[np.ndarray, np.ndarray, list[str]]:
    with np.load(DATA / "data.npz") as data:
        names = [str(name) for name in data["concept_names"]]
        return data["activations"], data["labels"], names


@pytest.fixture(scope="module")
def results(official: dict, workload: tuple) -> list[ReferenceNeuronResult]:
    activations, labels, names = workload
    params = official["params"]
    return reference_search(
        activations,
        labels,
        names,
        formula_length=params["L"],
        beam_size=params["B"],
        min_fraction=params["min_fraction"],
        max_fraction=params["max_fraction"],
        mode=params["mode"],
    )


def _mask_sha1(mask: torch.Tensor) -> str:
    return hashlib.sha1(np.packbits(mask.numpy())).hexdigest()[:16]


def _assert_same_beam(ours: list[ReferenceExplanation], theirs: list[dict], where: str) -> None:
    assert len(ours) == len(theirs), where
    # slot for slot: the same mask and AUC (so only identical-mask slots may swap places) ...
    for slot, (entry, expected) in enumerate(zip(ours, theirs, strict=True)):
        assert _mask_sha1(entry.mask) == expected["mask_sha1"], f"{where} slot {slot}"
        assert abs(entry.auc - expected["auc"]) <= AUC_TOLERANCE, f"{where} slot {slot}"
        assert entry.support == expected["support"], f"{where} slot {slot}"
        assert entry.fraction == pytest.approx(expected["concept_fraction"], abs=1e-9)
    # ... and the same formulas, as the official code prints them, with their levels
    found = Counter((entry.text, _mask_sha1(entry.mask), entry.level) for entry in ours)
    wanted = Counter((item["formula"], item["mask_sha1"], item["length"]) for item in theirs)
    assert found == wanted, where


def test_every_level_matches_the_official_beam(results: list, official: dict) -> None:
    assert len(results) == len(official["neurons"]) == 16
    for result, expected in zip(results, official["neurons"], strict=True):
        assert sorted(result.states) == [1, 2, 3]
        for level, beam in expected["states"].items():
            _assert_same_beam(
                result.states[int(level)], beam, f"neuron {expected['neuron']} level {level}"
            )
        _assert_same_beam(result.beam, expected["beam"], f"neuron {expected['neuron']} final")
        assert result.best is not None and result.best.text == expected["best"]
        assert {level: entry.text for level, entry in result.best_by_length.items()} == {
            int(level): beam[0]["formula"] for level, beam in expected["states"].items()
        }


def test_p_values_match_the_official_ones(results: list, official: dict, workload: tuple) -> None:
    activations = workload[0]
    for result, expected in zip(results, official["neurons"], strict=True):
        for entry, item in zip(result.beam, expected["beam"], strict=True):
            less = reference_p_value(activations[:, result.neuron], entry.mask, alternative="less")
            np.testing.assert_allclose(
                entry.p_value, item["p_two_sided"], rtol=P_VALUE_RTOL, atol=0
            )
            np.testing.assert_allclose(less, item["p_less"], rtol=P_VALUE_RTOL, atol=0)
        assert result.p_value == result.beam[0].p_value


def test_formulas_are_our_formula_objects(results: list, official: dict, workload: tuple) -> None:
    _, labels, names = workload
    for result, expected in zip(results, official["neurons"], strict=True):
        for entry, item in zip(result.beam, expected["beam"], strict=True):
            assert isinstance(entry.formula, Formula)
            assert torch.equal(entry.formula.evaluate(torch.as_tensor(labels)), entry.mask)
            assert sorted(entry.formula.concepts) == item["concepts"]
            assert Formula.parse(str(entry.formula), names) == entry.formula


def _torchmetrics_auroc(preds: torch.Tensor, target: torch.Tensor) -> float:
    """torchmetrics' ``binary_auroc`` (v1.9, no thresholds) written out, one mask at a time."""
    if not torch.all((0 <= preds) * (preds <= 1)):
        preds = preds.sigmoid()
    order = torch.argsort(preds, descending=True)
    preds, target = preds[order], target[order]
    ends = F.pad(torch.where(preds[1:] - preds[:-1])[0], [0, 1], value=target.size(0) - 1)
    true_positives = torch.cumsum(target.long() * 1.0, dim=0)[ends]
    false_positives = 1 + ends - true_positives
    true_positives = torch.cat([torch.zeros(1), true_positives])
    false_positives = torch.cat([torch.zeros(1), false_positives])
    if true_positives[-1] <= 0 or false_positives[-1] <= 0:
        return 0.0
    return float(
        torch.trapz(true_positives / true_positives[-1], false_positives / false_positives[-1])
    )


def _official_loops(
    activations: torch.Tensor,
    labels: torch.Tensor,
    *,
    length: int,
    beam_size: int,
    low: float,
    high: float,
    descending: bool,
    limit: int | None,
) -> list[list[tuple]]:
    """``Invert.explain_representation`` transcribed with masks in place of SymPy formulas."""
    samples, concepts = labels.shape
    atoms = []
    for index in range(2 * concepts):
        column = labels[:, index % concepts]
        if index < concepts:
            metric = torch.tensor(_torchmetrics_auroc(activations, column))
            atoms.append((column, metric, column.sum() / samples))
        else:
            positive = atoms[index - concepts]
            atoms.append((~column, 1 - positive[1], 1 - positive[2]))
    atoms = sorted(atoms, key=lambda atom: float(atom[1]), reverse=descending)
    admissible = lambda fraction: low <= fraction <= high and 0 < fraction < 1  # noqa: E731
    beam = [atom for atom in atoms if admissible(atom[2])][:beam_size]
    states = [list(beam)]
    atoms = sorted(atoms, key=lambda atom: float(2 * abs(0.5 - atom[1])), reverse=True)[:limit]
    for _ in range(2, length + 1):
        for index in range(min(beam_size, len(beam))):
            for atom in atoms:
                for mask in (beam[index][0] & atom[0], beam[index][0] | atom[0]):
                    fraction = mask.sum() / samples
                    if admissible(fraction):
                        beam.append((mask, torch.tensor(_torchmetrics_auroc(activations, mask)), 0))
        beam = sorted(beam, key=lambda slot: float(slot[1]), reverse=descending)[:beam_size]
        states.append(list(beam))
    return states


@pytest.mark.parametrize("mode, limit_search", [("positive", None), ("negative", 5)])
def test_search_follows_the_official_loops(mode: str, limit_search: int | None) -> None:
    rng = np.random.default_rng(3)
    labels = torch.as_tensor(rng.random((300, 6)) < [0.1, 0.2, 0.3, 0.45, 0.6, 0.0])
    values = rng.normal(size=300) + 1.5 * labels[:, 1].numpy() - labels[:, 3].numpy()
    activations = torch.as_tensor(np.round(np.maximum(values, 0), 1), dtype=torch.float32)
    expected = _official_loops(
        activations,
        labels,
        length=3,
        beam_size=4,
        low=0.05,
        high=0.5,
        descending=mode == "positive",
        limit=limit_search,
    )
    (result,) = reference_search(
        activations[:, None],
        labels,
        list("abcdef"),
        formula_length=3,
        beam_size=4,
        min_fraction=0.05,
        max_fraction=0.5,
        mode=mode,
        limit_search=limit_search,
    )
    for level, beam in enumerate(expected, start=1):
        pairs = zip(result.states[level], beam, strict=True)
        assert all(torch.equal(entry.mask, slot[0]) for entry, slot in pairs)
        assert [entry.auc for entry in result.states[level]] == [float(slot[1]) for slot in beam]


def test_reference_auc_is_the_rank_auc_without_ties_or_sigmoid() -> None:
    rng = np.random.default_rng(0)
    activations = torch.as_tensor(rng.permutation(1000) / 1000.0, dtype=torch.float32)
    masks = torch.as_tensor(rng.random((5, 1000)) < 0.3)
    for mask, auc in zip(masks, reference_auc(activations, masks), strict=True):
        u = mannwhitneyu(activations[mask].numpy(), activations[~mask].numpy()).statistic
        assert auc.dtype == torch.float32
        assert abs(float(auc) - u / (mask.sum().item() * (~mask).sum().item())) < 1e-6


def test_arguments_are_checked(workload: tuple) -> None:
    activations, labels, names = workload
    with pytest.raises(ValueError, match="concept_names"):
        reference_search(activations[:, :1], labels, names[:-1])
    with pytest.raises(ValueError, match="mode"):
        reference_search(activations[:, :1], labels, names, mode="both")
    with pytest.raises(ValueError, match="alternative"):
        reference_p_value(activations[:, 0], labels[:, 0], alternative="one-sided")


def test_reference_mode_of_the_public_api_is_the_official_search(
    results: list, official: dict, workload: tuple
) -> None:
    activations, labels, names = workload
    params = official["params"]
    settings = {
        "formula_length": params["L"],
        "beam_size": params["B"],
        "min_fraction": params["min_fraction"],
        "max_fraction": params["max_fraction"],
    }
    found = explain_activations(
        activations, labels, concept_names=names, reference_compatible=True, **settings
    )
    assert found.settings["reference_compatible"] is True
    assert found.settings["alternative"] == "two-sided"  # the official default
    for item, result, expected in zip(found, results, official["neurons"], strict=True):
        assert item.formula == result.best.formula and item.auc == result.best.auc
        assert abs(item.auc - expected["beam"][0]["auc"]) <= AUC_TOLERANCE
        np.testing.assert_allclose(item.p_value, expected["beam"][0]["p_two_sided"], rtol=1e-9)
        assert [(e.formula, e.auc, e.support) for e in item.beam] == [
            (e.formula, e.auc, e.support) for e in result.beam
        ]
        assert {length: e.formula for length, e in item.best_by_length.items()} == {
            level: entry.formula for level, entry in result.best_by_length.items()
        }
        official_bests = {int(level): beam[0]["auc"] for level, beam in expected["states"].items()}
        for length, entry in item.best_by_length.items():
            assert abs(entry.auc - official_bests[length]) <= AUC_TOLERANCE
    # the layer attribution routes the same way (an identity layer gives the same activations)
    model = torch.nn.Sequential(torch.nn.Identity())
    chosen = [1, 9, 14]
    layered = InverseRecognition(model, model[0]).attribute(
        torch.as_tensor(activations),
        labels,
        concept_names=names,
        neurons=chosen,
        reference_compatible=True,
        alternative="less",
        progress=False,
        **settings,
    )
    for neuron in chosen:
        assert layered[neuron].formula == found[neuron].formula
        assert layered[neuron].by_length == found[neuron].by_length
        expected_less = official["neurons"][neuron]["beam"][0]["p_less"]
        np.testing.assert_allclose(layered[neuron].p_value, expected_less, rtol=1e-9)


def test_reference_length_is_capped_and_the_search_stops_when_the_beam_is_stable() -> None:
    labels = torch.tensor([[1, 0], [1, 1], [0, 1], [0, 0]] * 5, dtype=torch.bool)
    activations = labels[:, :1].float() + 0.01 * torch.arange(20.0)[:, None]
    with pytest.warns(UserWarning, match="formula_length"):
        (result,) = reference_search(
            activations, labels, ["a", "b"], formula_length=10**9, beam_size=1
        )
    assert sorted(result.states) == [1, 2, 3, 4]  # capped at 2C = 4
    # "a" separates perfectly: nothing can enter the beam after level 1, so it is every state
    texts = {level: [entry.text for entry in beam] for level, beam in result.states.items()}
    assert texts[1][0] == "a" and texts[4] == texts[3] == texts[2] == texts[1]
