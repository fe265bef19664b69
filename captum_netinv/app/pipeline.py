"""The report pipeline over any classifier and data: INVERT labels, NeuronInversion, inversion.

:func:`run_report` runs each stage on a :class:`ReportJob` and writes the HTML report; the MNIST
demo (:mod:`captum_netinv.app.demo`) is one such job with sections of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from matplotlib import pyplot as plt
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_netinv._utils import model_device
from captum_netinv.app.inputs import ImageData
from captum_netinv.app.neuron_pages import LabelJudge, neuron_page
from captum_netinv.app.report import HtmlReport
from captum_netinv.inversion.network import NetworkInversion
from captum_netinv.labeling import ConceptDetector
from captum_netinv.recognition import Explanations, InverseRecognition
from captum_netinv.visualization import visualize_neuron_explanation, visualize_top_activating

__all__ = ["ReportBudget", "ReportJob", "Section", "class_judge", "run_report"]

#: A section of one kind of job: writes into the report, given the labels of each layer, and
#: returns what it adds to the summary JSON.
Section = Callable[[HtmlReport, Mapping[str, Explanations]], Mapping[str, object]]

_CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class ReportBudget:
    r"""
    How much work the report does.

    Attributes:
        inversion_steps (int): Steps of the NetworkInversion fit.
        samples_per_class (int): Samples per class in the report's grid.
        evaluation_per_class (int): Fresh samples per class of the evaluation (>= 2).
        neuron_units (int): Labeled units of the NeuronInversion page (best AUC first).
        neuron_steps (int): Steps of the NeuronInversion fit.
        neuron_figures (int): Unit figures on the page ``neurons.html``.
        formula_length (int): Longest INVERT formula. Default: 3
        beam_size (int): INVERT beam size. Default: 5
        min_fraction (float): Smallest share of samples a label may hold (INVERT's default
                    of 0 lets a formula that holds for one or two samples win). Default: 0.02
        label_figures (int or None): Label figures per layer, best AUC first; None: one per
                    labeled unit. Default: None
    """

    inversion_steps: int
    samples_per_class: int
    evaluation_per_class: int
    neuron_units: int
    neuron_steps: int
    neuron_figures: int
    formula_length: int = 3
    beam_size: int = 5
    min_fraction: float = 0.02
    label_figures: int | None = None


@dataclass(frozen=True)
class ReportJob:
    r"""
    Everything one report is made of: the model, its data and concepts, what to run, where.

    Attributes:
        model (nn.Module): The classifier, ``(N, C, H, W)`` inputs to ``(N, classes)`` logits,
                    on the device the work runs on.
        data (ImageData): The samples (kept on the CPU; streamed to the model's device).
        layers (Mapping[str, nn.Module]): The layers whose units INVERT labels, by name; the
                    last one also gets the NeuronInversion page.
        class_names (Sequence[str]): One name per output of the model.
        concepts (tuple or None): ``(N, C)`` booleans and their names; None: no INVERT pages.
        budget (ReportBudget): How much work.
        out (Path): The report folder.
        title (str): The page title.
        description (str): The report's opening paragraph (model and data).
        seed (int): Seed of every fit and draw.
        progress (bool): Show progress bars.
        resume (bool): Continue the fits from their checkpoints in ``out/checkpoints``.
        verifier (nn.Module, optional): A second classifier judging the generated samples.
        judge (LabelJudge, optional): The detectors of the label check; None: no check.
        after_labels (Sequence[Section]): Sections of this kind of job after the labels.
        at_end (Sequence[Section]): Sections of this kind of job at the end.
        summary_file (str): File name of the summary JSON. Default: ``"summary.json"``
    """

    model: nn.Module
    data: ImageData
    layers: Mapping[str, nn.Module]
    class_names: Sequence[str]
    concepts: tuple[Tensor, list[str]] | None
    budget: ReportBudget
    out: Path
    title: str
    description: str
    seed: int = 0
    progress: bool = True
    resume: bool = False
    verifier: nn.Module | None = None
    judge: LabelJudge | None = None
    after_labels: Sequence[Section] = field(default_factory=tuple)
    at_end: Sequence[Section] = field(default_factory=tuple)
    summary_file: str = "summary.json"


def class_judge(model: nn.Module, class_names: Sequence[str]) -> LabelJudge:
    r"""
    A label check for class concepts: ``name`` holds for an input the model assigns to the
    class ``name``. Other concepts have no detector (their formulas are not checked).
    """
    device = model_device(model)

    def detector(index: int) -> ConceptDetector:
        def detect(inputs: Tensor) -> Tensor:
            with torch.no_grad():
                return model(inputs.to(device)).argmax(dim=1).cpu() == index

        return detect

    return LabelJudge(
        detectors={name: detector(index) for index, name in enumerate(class_names)},
        description="class concepts judged by the model's own class; formulas with other "
        "concepts are not checked",
    )


def _stage(text: str, progress: bool) -> None:
    if progress:
        tqdm.write(f"== {text}")


def _checkpoint(job: ReportJob, name: str) -> str:
    r"""The fit checkpoint ``name`` in the report folder; removed first unless resuming."""
    path = job.out / _CHECKPOINTS / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not job.resume:
        path.unlink(missing_ok=True)
    return str(path)


def _label_layer(
    report: HtmlReport, job: ReportJob, *, layer_name: str, concepts: tuple[Tensor, list[str]]
) -> Explanations:
    labeler = InverseRecognition(job.model, job.layers[layer_name])
    explanations = labeler.attribute(
        job.data.images,
        concepts[0],
        concept_names=concepts[1],
        formula_length=job.budget.formula_length,
        beam_size=job.budget.beam_size,
        min_fraction=job.budget.min_fraction,
        progress=job.progress,
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
    labeled = [item for item in explanations if item.formula is not None]
    if job.budget.label_figures is not None:  # the best labels of a wide layer
        labeled = sorted(labeled, key=lambda item: -item.auc)[: job.budget.label_figures]
    for item in labeled:
        fig, _ = visualize_neuron_explanation(explanations, item.neuron, use_pyplot=False)
        report.add_figure(fig, f"{layer_name}_neuron_{item.neuron}", f"{layer_name} #{item.neuron}")
        plt.close(fig)
    return explanations


def _label_section(report: HtmlReport, job: ReportJob) -> dict[str, Explanations]:
    r"""INVERT labels of every layer, their plots and JSON exports."""
    report.add_heading("INVERT: neuron labels")
    if job.concepts is None:
        report.add_paragraph(
            "No concepts were given (--concepts), so this report has no INVERT labels and no "
            "NeuronInversion page of labeled units."
        )
        return {}
    budget = job.budget
    report.add_paragraph(
        "Concepts: " + ", ".join(job.concepts[1]) + f". Formulas up to length "
        f"{budget.formula_length}, beam {budget.beam_size}, support between "
        f"{budget.min_fraction:.0%} and 50% of the samples; AUC of the formula's samples "
        "against the rest, one-sided Mann-Whitney U p-value."
    )
    tables = {}
    for layer_name in job.layers:
        _stage(f"INVERT labels of {layer_name}", job.progress)
        tables[layer_name] = _label_layer(report, job, layer_name=layer_name, concepts=job.concepts)
        (job.out / f"labels_{layer_name}.json").write_text(tables[layer_name].to_json())
    first = next(iter(tables))
    grid, _ = visualize_top_activating(tables[first], 0, job.data.images, use_pyplot=False)
    report.add_figure(grid, f"{first}_top_activating_0", f"{first} #0: top-activating inputs")
    plt.close(grid)
    return tables


def _neuron_section(report: HtmlReport, job: ReportJob, tables: Mapping[str, Explanations]) -> list:
    r"""The NeuronInversion page of the last layer's labeled units."""
    if not tables:
        return []
    layer_name = list(job.layers)[-1]
    _stage(f"NeuronInversion of the labeled units of {layer_name}", job.progress)
    return neuron_page(
        report,
        job.model,
        layer=job.layers[layer_name],
        layer_name=layer_name,
        images=job.data.images,
        explanations=tables[layer_name],
        units=job.budget.neuron_units,
        steps=job.budget.neuron_steps,
        figures=job.budget.neuron_figures,
        seed=job.seed,
        progress=job.progress,
        judge=job.judge or LabelJudge(detectors={}, description="no concept detectors given"),
        input_normalization=job.data.normalization,
        checkpoint_path=_checkpoint(job, "neuron_inversion"),
    )


def _inversion_section(report: HtmlReport, job: ReportJob) -> dict[str, object]:
    r"""Network Inversion: fit, evaluation table, sample grid, curves."""
    _stage("Network Inversion", job.progress)
    report.add_heading("Network Inversion")
    has_linear = any(isinstance(module, nn.Linear) for module in job.model.modules())
    inversion = NetworkInversion(
        job.model,
        layer=None if has_linear else job.model,  # no nn.Linear: the logits feed diversity
        input_shape=tuple(job.data.images.shape[1:]),
        num_classes=len(job.class_names),
        input_normalization=job.data.normalization,
    )
    budget = job.budget
    history = inversion.fit(
        steps=budget.inversion_steps,
        progress=job.progress,
        seed=job.seed,
        checkpoint_path=_checkpoint(job, "network_inversion"),
    )
    evaluation = inversion.evaluate(n_per_class=budget.evaluation_per_class, verifier=job.verifier)
    verifier_text = (
        f", hit rate under the verifier {evaluation.verifier_hit_rate:.3f}"
        if evaluation.verifier_hit_rate is not None
        else ""
    )
    report.add_paragraph(
        f"Generator trained for {budget.inversion_steps} steps. On "
        f"{budget.evaluation_per_class} fresh samples per class: hit rate "
        f"{evaluation.hit_rate:.3f}, mean target confidence {evaluation.mean_confidence:.3f}, "
        f"within-class diversity {evaluation.diversity:.3f}{verifier_text}."
    )
    verifier_rates = evaluation.verifier_hit_rate_per_class
    report.add_table(
        ["class", "name", "hit rate", "confidence", "diversity", "verifier hit rate"],
        [
            [
                k,
                name,
                float(evaluation.hit_rate_per_class[k]),
                float(evaluation.confidence_per_class[k]),
                float(evaluation.diversity_per_class[k]),
                float(verifier_rates[k]) if verifier_rates is not None else float("nan"),
            ]
            for k, name in enumerate(job.class_names)
        ],
        table_id="inversion-per-class",
    )
    fig, _ = inversion.visualize(
        n_per_class=budget.samples_per_class, seed=job.seed, use_pyplot=False
    )
    report.add_figure(fig, "inversion_grid", "generated samples per class (model confidence)")
    plt.close(fig)
    fig, _ = inversion.visualize_history(use_pyplot=False)
    report.add_figure(fig, "inversion_training_curves", "generator training curves")
    plt.close(fig)
    (job.out / "inversion_history.json").write_text(json.dumps(history))
    return {
        "hit_rate": evaluation.hit_rate,
        "mean_confidence": evaluation.mean_confidence,
        "diversity": evaluation.diversity,
        "hit_rate_per_class": [float(rate) for rate in evaluation.hit_rate_per_class],
    }


def _written(out: Path) -> list[str]:
    r"""The files of the report folder, one line each with its size."""
    files = sorted(path for path in out.rglob("*") if path.is_file())
    pages = [path for path in files if path.suffix == ".html"]
    images = [path for path in files if path.suffix == ".png"]
    lines = [f"  {path.relative_to(out)}" for path in pages]
    lines.append(f"  images/: {len(images)} figures")
    lines += [
        f"  {path.relative_to(out)} ({path.stat().st_size // 1024} KiB)"
        for path in files
        if path.suffix not in (".html", ".png")
    ]
    return lines


def run_report(job: ReportJob) -> Path:
    r"""
    Writes the report of ``job`` into ``job.out``: INVERT labels of each layer (with
    ``labels_<layer>.json``), the job's sections after the labels, the NeuronInversion page
    of the last layer's labeled units (``neurons.html``), the Network Inversion section
    (``inversion_history.json``), the job's closing sections, and the summary JSON.

    Args:
        job (ReportJob): The model, data, concepts, budget and folder.

    Returns:
        *Path* of the written ``index.html``.

    Examples::

        >>> index = run_report(job)
    """
    started = time.perf_counter()
    job.out.mkdir(parents=True, exist_ok=True)
    report = HtmlReport(job.out, job.title)
    report.add_paragraph(job.description)
    tables = _label_section(report, job)
    summary: dict[str, object] = {}
    for section in job.after_labels:
        summary.update(section(report, tables))
    summary["neuron_label_check"] = _neuron_section(report, job, tables)
    summary["inversion"] = _inversion_section(report, job)
    for section in job.at_end:
        summary.update(section(report, tables))
    (job.out / job.summary_file).write_text(json.dumps(summary, indent=2))
    report.add_paragraph(f"Written in {time.perf_counter() - started:.0f} s.")
    index = report.write()
    print(f"\nReport written to {index.resolve()}:\n" + "\n".join(_written(job.out)))
    return index
