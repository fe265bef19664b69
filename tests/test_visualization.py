"""The shared plots: INVERT's neuron plots and an inversion's sample grid and training curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from captum_netinv import NetworkInversion  # noqa: E402
from captum_netinv.recognition import Explanations, explain_activations  # noqa: E402
from captum_netinv.visualization import (  # noqa: E402
    visualize_inversion,
    visualize_neuron_explanation,
    visualize_top_activating,
)

NAMES = ["round", "thick", "slant"]


@pytest.fixture(scope="module")
def explained() -> tuple[Explanations, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    labels = torch.rand(300, 3, generator=generator) < 0.25
    activations = torch.randn(300, 2, generator=generator)
    activations[:, 1] += 3.0 * labels[:, 1]
    images = torch.rand(300, 1, 8, 8, generator=generator)
    return explain_activations(activations, labels, concept_names=NAMES), images


def test_neuron_explanation_shows_both_distributions_with_the_auc(explained) -> None:
    explanations, _ = explained
    item = explanations[1]
    fig, axis = visualize_neuron_explanation(explanations, 1, bins=20, use_pyplot=False)
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    assert legend == ["rest", f"{item.formula} (AUC {item.auc:.3f})"]
    assert axis.get_title() == "neuron 1"
    # two histograms of 20 bins over the same edges
    assert len(axis.patches) == 40
    heights = [patch.get_height() for patch in axis.patches]
    values = explanations.activations[:, 1].numpy()
    mask = item.formula.evaluate(explanations.concepts).numpy()
    edges = np.histogram_bin_edges(values, bins=20)
    rest, formula = (
        np.histogram(values[~mask], edges, density=True)[0],
        np.histogram(values[mask], edges, density=True)[0],
    )
    np.testing.assert_allclose(heights, np.concatenate([rest, formula]), rtol=1e-5)
    # the same picture from explicit values, e.g. for explanations read from JSON
    back = Explanations.from_json(explanations.to_json())
    with pytest.raises(ValueError, match="pass `activations`"):
        visualize_neuron_explanation(back, 1, use_pyplot=False)
    _, other = visualize_neuron_explanation(
        back, 1, explanations.activations, explanations.concepts, bins=20, use_pyplot=False
    )
    assert [p.get_height() for p in other.patches] == heights


def test_neuron_explanation_by_length_shows_each_length_side_by_side(explained) -> None:
    explanations, _ = explained
    item = explanations[1]
    fig, axes = visualize_neuron_explanation(explanations, 1, use_pyplot=False, by_length=True)
    assert axes.shape == (1, len(item.by_length)) == (1, 3)
    for axis, (length, entry) in zip(axes.flat, item.best_by_length.items(), strict=True):
        legend = [text.get_text() for text in axis.get_legend().get_texts()]
        assert legend == ["rest", f"{entry.formula} (AUC {entry.auc:.3f})"]
        assert axis.get_title() == f"neuron 1: length <= {length}"


def test_top_activating_grid_titles_show_concept_labels(explained) -> None:
    explanations, images = explained
    fig, axes = visualize_top_activating(explanations, 1, images, k=6, ncols=3, use_pyplot=False)
    assert axes.shape == (2, 3)
    assert explanations.activations is not None and explanations.concepts is not None
    top = torch.topk(explanations.activations[:, 1], 6).indices
    expected = []
    for index in top.tolist():
        present = [NAMES[c] for c in range(3) if explanations.concepts[index, c]]
        extra = len(present) - 2
        expected.append(", ".join(present[:2]) + (f" +{extra}" if extra > 0 else "") or "(none)")
    assert [axis.get_title() for axis in axes.flat] == expected
    assert all("thick" in title for title in expected[:3])
    assert fig._suptitle is not None and "thick" in fig._suptitle.get_text()
    shown = axes.flat[0].get_images()[0].get_array()
    assert torch.allclose(torch.as_tensor(shown.data), images[top[0], 0])


def test_top_activating_from_a_plain_activation_matrix() -> None:
    activations = torch.arange(20.0).reshape(10, 2)
    images = torch.rand(10, 1, 5, 5)
    _, axes = visualize_top_activating(activations, 0, images, k=3, use_pyplot=False)
    assert [axis.get_title() for axis in axes.flat[:3]] == ["18", "16", "14"]
    with pytest.raises(ValueError, match="`neuron`"):
        visualize_top_activating(activations, 2, images, use_pyplot=False)
    with pytest.raises(ValueError, match="`inputs`"):
        visualize_top_activating(activations, 0, images[:5], use_pyplot=False)


def test_inversion_grid_and_curves(fitted: NetworkInversion) -> None:
    fig, axes = fitted.visualize(n_per_class=3, use_pyplot=False)
    assert axes.shape == (10, 3)
    titles = [axis.get_title() for axis in axes.flat]
    assert all(0.0 <= float(title) <= 1.0 for title in titles)
    fig, axis = fitted.visualize_history(keys=["loss", "hit_rate"], use_pyplot=False)
    assert len(axis.get_lines()) == 2


def test_inversion_grid_confidences_are_the_models(fitted: NetworkInversion) -> None:
    _, axes = visualize_inversion(fitted, n_per_class=2, seed=4, use_pyplot=False)
    samples = fitted.attribute(target=torch.arange(10).repeat_interleave(2), seed=4)
    with torch.no_grad():
        probabilities = fitted.forward_func(samples).softmax(dim=1)
    expected = probabilities[torch.arange(20), torch.arange(10).repeat_interleave(2)]
    shown = torch.tensor([float(axis.get_title()) for axis in axes.flat])
    assert torch.allclose(shown, expected, atol=0.006)  # titles have two decimals
    with pytest.raises(ValueError, match="`n_per_class` must be an int >= 1"):
        visualize_inversion(fitted, n_per_class=0, use_pyplot=False)


def test_visualize_neuron_shows_label_histogram_top_and_generated_inputs() -> None:
    from captum_netinv import NeuronInversion
    from captum_netinv.visualization import visualize_neuron

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(72, 4)
    ).eval()
    images = torch.rand(120, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    inversion = NeuronInversion(model, model[3], input_shape=(1, 8, 8))
    inversion.fit(images, steps=3, seed=0, progress=False)
    with torch.no_grad():
        activations = model(images)
    labels = activations[:, 2:3] > activations[:, 2].median()  # a concept the unit separates
    explanations = explain_activations(
        activations, labels, concept_names=["high"], formula_length=1
    )
    fig, axes = visualize_neuron(
        inversion, 2, images, explanations, n_generated=6, k=9, bins=10, use_pyplot=False
    )
    assert axes.shape == (3,)
    legend = [text.get_text() for text in axes[0].get_legend().get_texts()]
    formula = f"high (AUC {explanations[2].auc:.3f})"
    assert sorted(legend) == sorted(["real 99th pct", "generated median", "rest", formula])
    assert len(axes[0].patches) == 20  # two histograms of 10 bins
    # 3 x 3 top inputs and 3 x 2 generated ones, 8 pixels each with 1-pixel gaps
    assert axes[1].images[0].get_array().shape == (26, 26)
    assert axes[2].images[0].get_array().shape == (17, 26)
    assert axes[1].get_title() == "top 9 real inputs" and "unit 2: high" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="were computed on 120 samples"):
        visualize_neuron(inversion, 2, images[:50], explanations, use_pyplot=False)
