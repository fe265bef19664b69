"""What an AUC hides: top-k coverage, the best refinement by one literal, saturation."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from torch import Tensor  # noqa: E402

from captum_netinv.recognition import Atom, Explanations, explain_activations  # noqa: E402
from captum_netinv.recognition.refinement import (  # noqa: E402
    SATURATION_TOLERANCE,
    TOP_K,
    is_saturated,
    top_samples,
)
from captum_netinv.visualization import visualize_neuron_explanation  # noqa: E402
from captum_netinv.visualization._recognition import detail_line  # noqa: E402

SHAPES = ["blue", "red", "green", "triangle", "square", "circle"]
SAMPLES = 600


@pytest.fixture(scope="module")
def planted() -> tuple[Tensor, Tensor]:
    """A neuron that fires on blue triangles, weakly on other blue shapes, never otherwise:
    ``blue`` alone already separates it perfectly (AUC 1), hiding the triangles."""
    generator = torch.Generator().manual_seed(0)
    color = torch.randint(0, 3, (SAMPLES,), generator=generator)
    shape = torch.randint(0, 3, (SAMPLES,), generator=generator)
    labels = torch.stack(
        [color == 0, color == 1, color == 2, shape == 0, shape == 1, shape == 2], 1
    )
    blue, triangle = labels[:, 0], labels[:, 3]
    noise = 0.1 * torch.rand(SAMPLES, generator=generator)
    activations = 3.0 * (blue & triangle) + 1.0 * blue + noise
    return activations, labels


def _top_count(activations: np.ndarray, mask: np.ndarray, k: int) -> float:
    """The share of the ``k`` highest activations where ``mask`` holds, counted directly."""
    top = np.argsort(-activations, kind="stable")[:k]
    return sum(bool(mask[index]) for index in top) / k


def _brute_force_refinement(
    activations: np.ndarray, labels: np.ndarray, mask: np.ndarray, sign: float, min_size: int = 1
) -> tuple[int, bool, float, int]:
    """(concept, negated, AUC, support) of the best ``mask & literal``, each AUC from sklearn:
    the best score, then the largest support, then the first literal (concepts, then their
    negations)."""
    concepts = labels.shape[1]
    candidates = []
    for literal in range(2 * concepts):
        concept, negated = literal % concepts, literal >= concepts
        refined = mask & (labels[:, concept] != negated)
        size = int(refined.sum())
        if min_size <= size < int(mask.sum()):
            auc = roc_auc_score(refined, activations)
            candidates.append(((sign * auc, size, -literal), (concept, negated, auc, size)))
    return max(candidates)[1]


def test_a_saturated_label_shows_its_refinement_and_coverage(planted) -> None:
    activations, labels = planted
    values, masks = activations.numpy(), labels.numpy()
    blue, blue_triangle = masks[:, 0], masks[:, 0] & masks[:, 3]
    # the premise: blue separates perfectly, blue triangles fill only part of the top 100
    assert roc_auc_score(blue, values) == 1.0 and roc_auc_score(blue_triangle, values) == 1.0
    assert 0.5 < _top_count(values, blue_triangle, TOP_K) < 1.0
    item = explain_activations(activations, labels, concept_names=SHAPES, formula_length=2)[0]
    assert str(item.formula) == "blue" and item.auc == 1.0 and item.saturated
    assert item.refinement is not None and str(item.refinement.formula) == "blue & triangle"
    assert item.refinement.auc == 1.0 and item.refinement.support == int(blue_triangle.sum())
    assert item.top_k == TOP_K
    assert item.coverage == _top_count(values, blue, TOP_K) == 1.0
    assert item.refinement.coverage == pytest.approx(_top_count(values, blue_triangle, TOP_K))
    line = detail_line(item)
    assert line == (
        "AUC saturated; refinement: blue & triangle "
        f"(covers {item.refinement.coverage:.2f} of the top {TOP_K})"
    )


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_refinement_is_the_best_one_literal_extension(synthetic, mode: str) -> None:
    activations, labels = synthetic(samples=300, neurons=4, seed=3)
    names = ["a", "b", "c", "d", "e"]
    min_fraction = 0.05
    found = explain_activations(
        activations, labels, concept_names=names, mode=mode, min_fraction=min_fraction
    )
    sign = 1.0 if mode == "positive" else -1.0
    for item in found:
        assert item.formula is not None and item.refinement is not None
        values, masks = activations[:, item.neuron].numpy(), labels.numpy()
        mask = item.formula.evaluate(masks)
        concept, negated, auc, support = _brute_force_refinement(
            values, masks, mask, sign, min_size=math.ceil(min_fraction * len(mask))
        )
        literal = ~Atom(concept, names[concept]) if negated else Atom(concept, names[concept])
        assert item.refinement.formula == (item.formula & literal)
        assert item.refinement.auc == pytest.approx(auc, abs=1e-12)
        assert item.refinement.support == support
        # coverage of the top samples in the mode's direction, counted directly
        ordered = sign * values
        refined = item.refinement.formula.evaluate(masks)
        assert item.coverage == pytest.approx(_top_count(ordered, mask, TOP_K))
        assert item.refinement.coverage == pytest.approx(_top_count(ordered, refined, TOP_K))
        assert item.saturated == (abs(roc_auc_score(mask, values) - (sign > 0)) <= 1e-6)


def test_saturation_tolerance_and_direction() -> None:
    assert is_saturated(1.0, "positive") and is_saturated(
        1.0 - SATURATION_TOLERANCE / 2, "positive"
    )
    assert not is_saturated(1.0 - 10 * SATURATION_TOLERANCE, "positive")
    assert is_saturated(0.0, "negative") and not is_saturated(1.0, "negative")
    assert not is_saturated(math.nan, "positive")


def test_top_samples_follow_the_mode_and_keep_the_order_of_ties() -> None:
    values = torch.tensor([0.5, 2.0, 0.5, -1.0, 2.0])
    assert top_samples(values, 3, "positive").tolist() == [1, 4, 0]
    assert top_samples(values, 2, "negative").tolist() == [3, 0]
    # fewer samples than k: all of them
    assert top_samples(values, 100, "positive").tolist() == [1, 4, 0, 2, 3]


def test_the_reference_search_gets_the_same_detail(planted) -> None:
    activations, labels = planted
    ours = explain_activations(activations, labels, concept_names=SHAPES, formula_length=2)[0]
    reference = explain_activations(
        activations, labels, concept_names=SHAPES, formula_length=2, reference_compatible=True
    )[0]
    assert reference.formula == ours.formula and reference.saturated
    assert reference.refinement == ours.refinement
    assert (reference.coverage, reference.refinement.coverage) == (
        ours.coverage,
        ours.refinement.coverage,
    )


def test_exports_carry_the_detail(planted) -> None:
    activations, labels = planted
    found = explain_activations(activations, labels, concept_names=SHAPES, formula_length=2)
    item = found[0]
    back = Explanations.from_json(found.to_json())
    assert back[0] == item
    frame = found.to_dataframe()
    assert frame.loc[0, "refinement"] == "blue & triangle" and frame.loc[0, "saturated"]
    assert frame.loc[0, "refinement_auc"] == 1.0
    assert frame.loc[0, "refinement_support"] == item.refinement.support
    assert frame.loc[0, "coverage"] == item.coverage
    assert frame.loc[0, "refinement_coverage"] == item.refinement.coverage
    lines = str(found).splitlines()
    assert "1.000*" in lines[2]
    assert f"blue & triangle (AUC 1.000, coverage {item.refinement.coverage:.2f})" in lines[2]
    assert lines[3].startswith(f"coverage: share of the neuron's top {TOP_K} samples")
    assert lines[4].startswith("* AUC saturated")
    # files written before the detail existed read with none of it, and plot without its line
    data = json.loads(found.to_json())
    for record in data["explanations"]:
        for name in ("top_k", "coverage", "refinement", "saturated"):
            del record[name]
    before = Explanations.from_json(json.dumps(data))[0]
    assert before.refinement is None and before.top_k == 0 and not before.saturated
    assert detail_line(before) is None


def test_the_plot_shows_the_detail_under_the_title(planted) -> None:
    activations, labels = planted
    found = explain_activations(activations, labels, concept_names=SHAPES, formula_length=2)
    _, axis = visualize_neuron_explanation(found, 0, use_pyplot=False)
    assert axis.get_title() == "neuron 0"
    assert [text.get_text() for text in axis.texts] == [detail_line(found[0])]
    _, axes = visualize_neuron_explanation(found, 0, use_pyplot=False, by_length=True)
    shown = [[text.get_text() for text in axis.texts] for axis in axes.flat]
    assert shown == [[], [detail_line(found[0])]]


def test_a_label_below_saturation_says_its_coverage(synthetic) -> None:
    activations, labels = synthetic(samples=300, neurons=1, seed=5)
    item = explain_activations(activations, labels, formula_length=1)[0]
    assert not item.saturated and item.refinement is not None
    assert detail_line(item) == (
        f"covers {item.coverage:.2f} of the top {TOP_K}; refinement: {item.refinement.formula} "
        f"(AUC {item.refinement.auc:.3f}, covers {item.refinement.coverage:.2f})"
    )
