"""The report's NeuronInversion page: what the INVERT-labeled units of a layer encode, checked.

One generator for the labeled units; per unit the label check (does the formula hold on its
generated inputs as on its top-activating real ones?) and a :func:`visualize_neuron` figure, on
the page ``neurons.html`` that the main report links to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from matplotlib import pyplot as plt
from torch import Tensor, nn

from captum_netinv.app.report import HtmlReport
from captum_netinv.inversion.neuron import NeuronInversion
from captum_netinv.inversion.neuron.evaluation import top_activating
from captum_netinv.labeling import ConceptDetector, label_check
from captum_netinv.recognition import Explanations
from captum_netinv.visualization import visualize_neuron

__all__ = ["LabelJudge", "neuron_page"]

#: Generated samples and top-activating real inputs per unit in the label check.
_PER_UNIT = 32


@dataclass(frozen=True)
class LabelJudge:
    r"""
    The concept detectors of the label check and a sentence that says how they judge.

    Attributes:
        detectors (Mapping[str, ConceptDetector]): Concept name -> detector (inputs -> bools);
                    a formula with a concept that has none is not checked.
        description (str): How the detectors judge, for the report's text.
    """

    detectors: Mapping[str, ConceptDetector]
    description: str


def neuron_page(
    report: HtmlReport,
    model: nn.Module,
    *,
    layer: nn.Module,
    layer_name: str,
    images: Tensor,
    explanations: Explanations,
    units: int,
    steps: int,
    figures: int,
    seed: int,
    progress: bool,
    judge: LabelJudge,
    input_normalization: tuple[list[float], list[float]] | None = None,
    checkpoint_path: str | None = None,
) -> list[dict[str, object]]:
    r"""
    Fits one NeuronInversion to the (at most ``units``, best AUC first) labeled units of
    ``layer`` for ``steps`` steps on ``images``, writes ``neurons.html`` with the label
    check table (judged by ``judge``) and ``figures`` unit figures, links it from ``report``
    and returns the rows. The fit resumes from ``checkpoint_path`` when it holds one.
    """
    labeled = sorted(
        (item for item in explanations if item.formula is not None), key=lambda e: -e.auc
    )[:units]
    report.add_heading("NeuronInversion: seeing what the labeled units encode")
    if not labeled:
        report.add_paragraph(f"No unit of {layer_name} has an admissible label.")
        return []
    neurons = sorted(item.neuron for item in labeled)
    inversion = NeuronInversion(
        model,
        layer,
        neurons=neurons,
        input_shape=tuple(images.shape[1:]),
        input_normalization=input_normalization,
    )
    inversion.fit(
        images, steps=steps, seed=seed, progress=progress, checkpoint_path=checkpoint_path
    )
    evaluation = inversion.evaluate(images, n_per_unit=_PER_UNIT, top_k=_PER_UNIT)
    activations = inversion.unit_activations(images).cpu()
    rows: list[dict[str, object]] = []
    for position, unit in enumerate(neurons):
        generated = inversion.attribute(neuron_selector=unit, n_samples=_PER_UNIT, seed=seed)
        top = top_activating(activations[:, position : position + 1], _PER_UNIT)[0]
        formula = explanations[unit].formula
        assert formula is not None
        checked = formula.concepts <= set(judge.detectors)
        check = label_check(formula, generated, images[top], judge.detectors) if checked else None
        rows.append(
            {
                "unit": unit,
                "formula": str(formula),
                "auc": explanations[unit].auc,
                "median_over_q99": float(
                    evaluation.median_activation[position] / evaluation.reference_quantile[position]
                ),
                "generated_share": check.generated_share if check is not None else None,
                "real_share": check.real_share if check is not None else None,
            }
        )
    rows.sort(key=lambda row: -float(row["auc"]))  # type: ignore[arg-type]
    _write_page(
        report,
        inversion,
        layer_name=layer_name,
        judge=judge,
        images=images,
        explanations=explanations,
        rows=rows,
        figures=figures,
        seed=seed,
    )
    return rows


def _write_page(
    report: HtmlReport,
    inversion: NeuronInversion,
    *,
    layer_name: str,
    judge: LabelJudge,
    images: Tensor,
    explanations: Explanations,
    rows: list[dict[str, object]],
    figures: int,
    seed: int,
) -> None:
    """The table on the main page, the table and the unit figures on ``neurons.html``."""
    text = (
        f"One generator for {len(rows)} INVERT-labeled units of {layer_name} (best AUC first), "
        f"fitted for {inversion.steps_trained} steps with the data as reference. Label check: "
        f"the share of {_PER_UNIT} generated inputs of a unit for which its formula holds "
        f"({judge.description}), against the share of its {_PER_UNIT} top-activating real "
        "inputs."
    )
    columns = ["unit", "formula", "AUC", "generated median / real 99th pct", "holds: generated"]
    columns.append("holds: top real")
    table = [list(row.values()) for row in rows]
    report.add_paragraph(text)
    report.add_table(columns, table, table_id="neuron-label-check")
    report.add_link(
        "Unit figures: label, activations, top real and generated inputs", "neurons.html"
    )
    title = f"What the labeled units of {layer_name} encode"
    page = HtmlReport(report.folder, title, page="neurons.html")
    page.add_paragraph(text)
    page.add_table(columns, table, table_id="neuron-label-check")
    for row in rows[:figures]:
        unit = int(row["unit"])  # type: ignore[call-overload]
        fig, _ = visualize_neuron(
            inversion, unit, images, explanations, seed=seed, use_pyplot=False
        )
        page.add_figure(fig, f"{layer_name}_unit_{unit}", f"{layer_name} #{unit}: {row['formula']}")
        plt.close(fig)
    page.write()
