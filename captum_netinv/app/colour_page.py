"""The demo report's colour page: NetworkInversion of a coloured-shapes CNN, judged on truth.

A colour target, a verifier of another architecture and a shape probe blind to colour are trained
on :func:`~captum_netinv.examples.shapes.coloured_shapes`; the page ``colour.html`` shows real and
generated images per class beside what each judge says of the generated ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from matplotlib import pyplot as plt
from torch import Tensor, nn

from captum_netinv.app.report import HtmlReport
from captum_netinv.examples.models import MLP, ShapesCNN, accuracy, train_classifier
from captum_netinv.examples.shapes import (
    SHAPES_CLASS_NAMES,
    colour_permuted,
    coloured_shapes,
    dominant_colour,
)
from captum_netinv.inversion.network import NetworkInversion
from captum_netinv.inversion.network.evaluation import near_copy_share
from captum_netinv.visualization import visualize_class_samples

__all__ = ["ColourBudget", "colour_page"]

_CLASSES = len(SHAPES_CLASS_NAMES)
#: Real and generated images per class in the page's two grids.
_SHOWN = 8


@dataclass(frozen=True)
class ColourBudget:
    r"""
    How much work the colour page does.

    Attributes:
        train_size (int): Coloured shapes the three classifiers are trained on.
        epochs (int): Training epochs of each classifier.
        inversion_steps (int): Steps of the NetworkInversion fit.
        evaluation_per_class (int): Generated (and real) images per class that are judged.
    """

    train_size: int
    epochs: int
    inversion_steps: int
    evaluation_per_class: int


@dataclass(frozen=True)
class _Judges:
    target: nn.Module
    verifier: nn.Module
    shape_probe: nn.Module


def _trained_judges(budget: ColourBudget, *, seed: int, device: torch.device) -> _Judges:
    r"""The target CNN, an MLP verifier and a shape probe trained on colour-scrambled images."""
    train = coloured_shapes(budget.train_size, seed=seed)
    torch.manual_seed(seed)
    models_and_data = (
        (ShapesCNN(), train.images, train.labels),
        (MLP(in_features=3 * 32 * 32, num_classes=_CLASSES), train.images, train.labels),
        (ShapesCNN(num_classes=3), colour_permuted(train.images, seed=seed), train.shapes),
    )
    target, verifier, shape_probe = (
        train_classifier(model.to(device), images, labels, epochs=budget.epochs, seed=seed + k)
        for k, (model, images, labels) in enumerate(models_and_data)
    )
    return _Judges(target=target, verifier=verifier, shape_probe=shape_probe)


@torch.no_grad()
def _predicted(model: nn.Module, images: Tensor) -> Tensor:
    device = next(model.parameters()).device
    return torch.cat([model(batch.to(device)).argmax(1).cpu() for batch in images.split(512)])


def _per_class_rates(hits: Tensor, targets: Tensor) -> Tensor:
    return torch.stack([hits[targets == k].float().mean() for k in range(_CLASSES)])


def _judged(judges: _Judges, samples: Tensor, targets: Tensor) -> dict[str, Tensor]:
    r"""Per class: the target's, the verifier's and the shape probe's verdicts, and the colour."""
    return {
        "target hit": _per_class_rates(_predicted(judges.target, samples) == targets, targets),
        "verifier hit": _per_class_rates(_predicted(judges.verifier, samples) == targets, targets),
        "shape probe": _per_class_rates(
            _predicted(judges.shape_probe, samples) == targets // 3, targets
        ),
        "colour right": _per_class_rates(dominant_colour(samples) == targets % 3, targets),
    }


def _grid(images: Tensor, name: str, caption: str, page: HtmlReport) -> None:
    fig, _ = visualize_class_samples(
        images.view(_CLASSES, -1, *images.shape[1:])[:, :_SHOWN],
        class_names=list(SHAPES_CLASS_NAMES),
        use_pyplot=False,
    )
    page.add_figure(fig, name, caption)
    plt.close(fig)


def colour_page(
    report: HtmlReport,
    *,
    budget: ColourBudget,
    seed: int,
    device: torch.device,
    progress: bool,
) -> dict[str, object]:
    r"""
    Trains a :class:`~captum_netinv.examples.models.ShapesCNN` target, an
    :class:`~captum_netinv.examples.models.MLP` verifier and a shape probe (a ShapesCNN of
    the three shapes, trained on colour-scrambled images) on coloured shapes, inverts the
    target with the default :class:`~captum_netinv.NetworkInversion`, and writes
    ``colour.html``: real and generated images per class, and per class the target's and the
    verifier's hit rates, the shape probe's verdict, the colour rule's
    (:func:`~captum_netinv.examples.shapes.dominant_colour`), the pixel diversity against
    real images and the share of near-copies. ``report`` gets a summary and a link.

    Args:
        report (HtmlReport): The main page.
        budget (ColourBudget): How much work.
        seed (int): Seed of the data, the training and the fit.
        device (torch.device): Where the classifiers and the fit run.
        progress (bool): Show the fit's progress bar.

    Returns:
        *dict* for the summary JSON, key ``"colour"``, the per-class figures as lists.

    Examples::

        >>> summary = colour_page(report, budget=budget, seed=0, device=torch.device("cpu"),
        ...                       progress=False)
    """
    judges = _trained_judges(budget, seed=seed, device=device)
    test = coloured_shapes(_CLASSES * budget.evaluation_per_class * 4, seed=seed + 100)
    picks = torch.cat(
        [(test.labels == k).nonzero()[: budget.evaluation_per_class, 0] for k in range(_CLASSES)]
    )
    real, targets = test.images[picks], test.labels[picks]
    inversion = NetworkInversion(judges.target, input_shape=(3, 32, 32))
    inversion.fit(steps=budget.inversion_steps, seed=seed, progress=progress)
    samples = inversion.attribute(target=targets.to(device), seed=seed).cpu()
    evaluation = inversion.evaluate(
        n_per_class=budget.evaluation_per_class, seed=seed, inputs=real.to(device), labels=targets
    )
    columns = _judged(judges, samples, targets)
    assert evaluation.pixel_diversity_ratio_per_class is not None  # real inputs were given
    columns["pixel diversity / real"] = evaluation.pixel_diversity_ratio_per_class.cpu()
    real_columns = _judged(judges, real, targets)
    copies = near_copy_share(samples, targets)
    text = (
        f"A ShapesCNN trained on {budget.train_size} coloured shapes (nine classes: circle, "
        f"square or triangle in red, green or blue; test accuracy "
        f"{accuracy(judges.target, test.images, test.labels):.3f}), inverted with the default "
        f"NetworkInversion for {budget.inversion_steps} steps. Judges of "
        f"{budget.evaluation_per_class} generated images per class: the target; an MLP "
        f"verifier (another architecture, test accuracy "
        f"{accuracy(judges.verifier, test.images, test.labels):.3f}); a shape probe trained on "
        "colour-scrambled images (blind to colour); and the colour rule, the brightest channel "
        "of the foreground (right on "
        f"{float(real_columns['colour right'].mean()):.0%} of real images). Overall: target "
        f"{float(columns['target hit'].mean()):.0%}, verifier "
        f"{float(columns['verifier hit'].mean()):.0%}, shape probe "
        f"{float(columns['shape probe'].mean()):.0%} (chance 33%), colour "
        f"{float(columns['colour right'].mean()):.0%}, pixel diversity "
        f"{evaluation.pixel_diversity_ratio:.2f} of real, near-copies {copies:.0%}."
    )
    report.add_heading("A colour model: coloured shapes")
    report.add_paragraph(text)
    report.add_link("Real and generated coloured shapes, judged per class", "colour.html")
    page = HtmlReport(report.folder, "Inverting a colour model", page="colour.html")
    page.add_paragraph(text)
    page.add_paragraph(
        "Read the two grids side by side: where a row of generated images shows the colour of "
        "its class but no clear outline, the model's evidence for the class is its colour and "
        "texture, not the shape; the shape probe's column says the same in numbers. Near-copies "
        "are generated images of a class within an RMS pixel distance of 0.02 of another one."
    )
    page.add_table(
        ["class", *columns, "real: verifier", "real: shape probe"],
        [
            [name, *(float(values[k]) for values in columns.values())]
            + [float(real_columns["verifier hit"][k]), float(real_columns["shape probe"][k])]
            for k, name in enumerate(SHAPES_CLASS_NAMES)
        ],
        table_id="colour-per-class",
    )
    _grid(real, "colour_real", "real coloured shapes per class", page)
    _grid(samples, "colour_generated", "generated images per class (default preset)", page)
    page.write()
    figures = {name: values.tolist() for name, values in columns.items()}
    return {"colour": {**figures, "near_copy_share": copies, "steps": budget.inversion_steps}}
