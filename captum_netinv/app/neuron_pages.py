"""The demo's NeuronInversion page: what the INVERT-labeled units of fc2 encode, seen and checked.

One generator for the labeled units; per unit the label check (does the formula hold on its
generated inputs as on its top-activating real ones?) and a :func:`visualize_neuron` figure, on
the page ``neurons.html`` that the main report links to.
"""

from __future__ import annotations

from matplotlib import pyplot as plt
from torch import Tensor, nn

from captum_netinv.app.report import HtmlReport
from captum_netinv.examples.data import digit_concept_detectors
from captum_netinv.inversion.neuron import NeuronInversion
from captum_netinv.inversion.neuron.evaluation import top_activating
from captum_netinv.labeling import label_check
from captum_netinv.recognition import Explanations
from captum_netinv.visualization import visualize_neuron

__all__ = ["neuron_page"]

#: Generated samples and top-activating real inputs per unit in the label check.
_PER_UNIT = 32


def neuron_page(
    report: HtmlReport,
    model: nn.Module,
    *,
    images: Tensor,
    explanations: Explanations,
    units: int,
    steps: int,
    figures: int,
    seed: int,
    progress: bool,
) -> list[dict[str, object]]:
    r"""
    Fits one NeuronInversion to the (at most ``units``, best AUC first) labeled units of
    ``model.fc2`` for ``steps`` steps on ``images``, writes ``neurons.html`` with the label
    check table and ``figures`` unit figures, links it from ``report`` and returns the rows.
    """
    labeled = sorted(
        (item for item in explanations if item.formula is not None), key=lambda e: -e.auc
    )[:units]
    report.add_heading("NeuronInversion: seeing what the labeled units encode")
    if not labeled:
        report.add_paragraph("No unit of fc2 has an admissible label.")
        return []
    neurons = sorted(item.neuron for item in labeled)
    inversion = NeuronInversion(
        model, model.get_submodule("fc2"), neurons=neurons, input_shape=(1, 28, 28)
    )
    inversion.fit(images, steps=steps, seed=seed, progress=progress)
    evaluation = inversion.evaluate(images, n_per_unit=_PER_UNIT, top_k=_PER_UNIT)
    detectors = digit_concept_detectors(model, images)
    activations = inversion.unit_activations(images)
    rows: list[dict[str, object]] = []
    for position, unit in enumerate(neurons):
        generated = inversion.attribute(neuron_selector=unit, n_samples=_PER_UNIT, seed=seed)
        top = top_activating(activations[:, position : position + 1], _PER_UNIT)[0]
        formula = explanations[unit].formula
        assert formula is not None
        check = label_check(formula, generated, images[top], detectors)
        rows.append(
            {
                "unit": unit,
                "formula": check.formula,
                "auc": explanations[unit].auc,
                "median_over_q99": float(
                    evaluation.median_activation[position] / evaluation.reference_quantile[position]
                ),
                "generated_share": check.generated_share,
                "real_share": check.real_share,
            }
        )
    rows.sort(key=lambda row: -float(row["auc"]))  # type: ignore[arg-type]
    _write_page(
        report,
        inversion,
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
    images: Tensor,
    explanations: Explanations,
    rows: list[dict[str, object]],
    figures: int,
    seed: int,
) -> None:
    """The table on the main page, the table and the unit figures on ``neurons.html``."""
    text = (
        f"One generator for {len(rows)} INVERT-labeled units of fc2 (best AUC first), fitted "
        f"for {inversion.steps_trained} steps with the digits as reference. Label check: the "
        f"share of {_PER_UNIT} generated inputs of a unit for which its formula holds (digit "
        "concepts judged by the CNN's own class, shape concepts by the pixel measures), "
        f"against the share of its {_PER_UNIT} top-activating real digits."
    )
    columns = ["unit", "formula", "AUC", "generated median / real 99th pct", "holds: generated"]
    columns.append("holds: top real")
    table = [list(row.values()) for row in rows]
    report.add_paragraph(text)
    report.add_table(columns, table, table_id="neuron-label-check")
    report.add_link(
        "Unit figures: label, activations, top real and generated inputs", "neurons.html"
    )
    page = HtmlReport(report.folder, "What the labeled units of fc2 encode", page="neurons.html")
    page.add_paragraph(text)
    page.add_table(columns, table, table_id="neuron-label-check")
    for row in rows[:figures]:
        unit = int(row["unit"])  # type: ignore[call-overload]
        fig, _ = visualize_neuron(
            inversion, unit, images, explanations, seed=seed, use_pyplot=False
        )
        page.add_figure(fig, f"fc2_unit_{unit}", f"fc2 #{unit}: {row['formula']}")
        plt.close(fig)
    page.write()
