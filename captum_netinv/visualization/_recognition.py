"""Plots of INVERT labels: activation distributions split by a formula, top-activating inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from captum.attr._utils.visualization import _create_default_plot
from matplotlib import pyplot as plt
from torch import Tensor

from captum_netinv._utils import check_positive_int
from captum_netinv.visualization._common import (
    FigureAxes,
    FigureAxis,
    finished,
    visualize_image_grid,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from captum_netinv.recognition import Explanation, Explanations

#: Points between the axis and its title that make room for the line of detail under the title.
_DETAIL_TITLE_PAD = 16.0
#: Font size of that line.
_DETAIL_FONT_SIZE = 7

__all__ = [
    "concept_titles",
    "detail_line",
    "visualize_activation_distribution",
    "visualize_neuron_explanation",
    "visualize_top_activating",
]


def visualize_activation_distribution(
    activations: Tensor | np.ndarray,
    mask: Tensor | np.ndarray,
    auc: float | None = None,
    label: str = "concept",
    bins: int = 40,
    plt_fig_axis: FigureAxis | None = None,
    use_pyplot: bool = True,
    fig_size: tuple[float, float] = (5.0, 3.2),
    title: str | None = None,
) -> FigureAxis:
    r"""
    Histograms of a neuron's activations on the samples inside ``mask`` against the rest.

    Args:
        activations (Tensor or ndarray): ``(N,)`` activations of one neuron.
        mask (Tensor or ndarray): ``(N,)`` booleans, the samples where the concept is present.
        auc (float, optional): The AUC to show in the legend.
        label (str, optional): Name of the concept / formula. Default: ``"concept"``
        bins (int, optional): Histogram bins. Default: 40
        plt_fig_axis (tuple, optional): ``(figure, axis)`` to draw into.
        use_pyplot (bool, optional): Create and show with pyplot. Default: True
        fig_size (tuple, optional): Figure size. Default: (5, 3.2)
        title (str, optional): Axis title.

    Returns:
        *tuple* of **figure** and **axis**.

    Examples::

        >>> values = torch.randn(100)
        >>> fig, axis = visualize_activation_distribution(values, values > 0.5, use_pyplot=False)
    """
    values = torch.as_tensor(activations).detach().float().cpu().reshape(-1).numpy()
    present = torch.as_tensor(mask).detach().bool().cpu().reshape(-1).numpy()
    if values.shape != present.shape:
        raise ValueError(
            f"`activations` ({values.shape[0]} values) and `mask` ({present.shape[0]}) must "
            "have the same length"
        )
    fig, axis = _create_default_plot(plt_fig_axis, use_pyplot, fig_size)
    edges = np.histogram_bin_edges(values, bins=bins)
    suffix = f" (AUC {auc:.3f})" if auc is not None else ""
    axis.hist(values[~present], bins=edges, alpha=0.6, density=True, label="rest")
    axis.hist(values[present], bins=edges, alpha=0.6, density=True, label=f"{label}{suffix}")
    axis.set_ylabel("density")
    return finished(fig, axis, "activation", title, use_pyplot)


def visualize_neuron_explanation(
    explanations: Explanations,
    neuron: int,
    activations: Tensor | np.ndarray | None = None,
    concepts: Tensor | np.ndarray | None = None,
    bins: int = 40,
    plt_fig_axis: FigureAxis | FigureAxes | None = None,
    use_pyplot: bool = True,
    fig_size: tuple[float, float] = (5.0, 3.2),
    title: str | None = None,
    by_length: bool = False,
) -> FigureAxis | FigureAxes:
    r"""
    Activation distribution of an INVERT-labeled neuron where its formula holds against the
    rest, with the AUC; with ``by_length``, one plot per length side by side (as in the INVERT
    paper), each for the best formula of at most that many literals. A line under the title
    (of the last plot with ``by_length``) gives the share of the neuron's top samples its
    formula covers and its best refinement by one more literal, and says when the AUC is
    saturated, e.g. ``AUC saturated; refinement: blue & triangle (covers 0.93 of the top
    100)`` (:class:`~captum_netinv.Explanation`'s ``coverage``, ``refinement``,
    ``saturated``); explanations without them (read from an older file) show no such line.

    Args:
        explanations (Explanations): Result of ``InverseRecognition.attribute`` or
                    ``explain_activations``.
        neuron (int): The neuron to show.
        activations (Tensor or ndarray, optional): ``(N, K)`` layer activations (column =
                    neuron) or the neuron's ``(N,)`` activations. Default: those kept in
                    ``explanations``.
        concepts (Tensor or ndarray, optional): ``(N, C)`` labels. Default: those kept in
                    ``explanations``.
        bins, use_pyplot: As in :func:`visualize_activation_distribution`.
        plt_fig_axis (tuple, optional): ``(figure, axis)`` to draw into; with ``by_length``
                    ``(figure, axes)`` with one axis per length.
        fig_size, title: Figure size (of each plot with ``by_length``); axis title (default
                    ``"neuron <neuron>"``).
        by_length (bool, optional): One plot per length. Default: False

    Returns:
        *tuple* of **figure** and **axis** (with ``by_length``, a ``(1, L)`` array of axes).

    Examples::

        >>> explanations = explain_activations(torch.randn(500, 3), torch.rand(500, 4) < 0.3)
        >>> fig, axis = visualize_neuron_explanation(explanations, 0, use_pyplot=False)
    """
    explanation = explanations[neuron]
    if explanation.formula is None:
        raise ValueError(f"`neuron` {neuron} has no admissible formula to show")
    values = explanations.neuron_activations(neuron, activations)
    heading = title if title is not None else f"neuron {neuron}"
    if not by_length:
        fig, axis = _create_default_plot(plt_fig_axis, use_pyplot, fig_size)
        visualize_activation_distribution(
            values,
            explanations.mask(neuron, concepts),
            auc=explanation.auc,
            label=str(explanation.formula),
            bins=bins,
            plt_fig_axis=(fig, axis),
            use_pyplot=False,
            title=heading,
        )
        _show_detail(axis, explanation)
        if use_pyplot:
            plt.show()
        return fig, axis
    lengths = explanation.best_by_length
    size = (fig_size[0] * len(lengths), fig_size[1])
    fig, axes = _create_default_plot(
        plt_fig_axis, use_pyplot, size, ncols=len(lengths), squeeze=False
    )
    for axis, (length, entry) in zip(np.asarray(axes).flat, lengths.items(), strict=True):
        visualize_activation_distribution(
            values,
            explanations.mask(neuron, concepts, length=length),
            auc=entry.auc,
            label=str(entry.formula),
            bins=bins,
            plt_fig_axis=(fig, axis),
            use_pyplot=False,
            title=f"{heading}: length <= {length}",
        )
    _show_detail(np.asarray(axes).flat[-1], explanation)
    fig.tight_layout()
    if use_pyplot:
        plt.show()
    return fig, axes


def detail_line(explanation: Explanation) -> str | None:
    r"""
    The line of detail :func:`visualize_neuron_explanation` writes under its title: the share
    of the top samples the formula covers (or that its AUC is saturated) and its best
    refinement with the share it covers; None when they were not measured.

    Args:
        explanation (Explanation): One neuron's explanation.

    Returns:
        *str* or None.

    Examples::

        >>> detail_line(explanations[3])
        'AUC saturated; refinement: blue & triangle (covers 0.93 of the top 100)'
    """
    if explanation.formula is None or explanation.top_k == 0:
        return None
    top = f"of the top {explanation.top_k}"
    if explanation.saturated:
        lead = "AUC saturated"
    else:
        lead = f"covers {explanation.coverage:.2f} {top}"
    refinement = explanation.refinement
    if refinement is None:
        return f"{lead}; no literal refines the formula"
    if explanation.saturated:
        shown = f"covers {refinement.coverage:.2f} {top}"
    else:
        shown = f"AUC {refinement.auc:.3f}, covers {refinement.coverage:.2f}"
    return f"{lead}; refinement: {refinement.formula} ({shown})"


def _show_detail(axis: Axes, explanation: Explanation) -> None:
    """Writes :func:`detail_line` between ``axis`` and its title (moved up to make room)."""
    text = detail_line(explanation)
    if text is None:
        return
    axis.set_title(axis.get_title(), pad=_DETAIL_TITLE_PAD)
    axis.text(
        0.5,
        1.01,
        text,
        transform=axis.transAxes,
        ha="center",
        va="bottom",
        fontsize=_DETAIL_FONT_SIZE,
    )


def visualize_top_activating(
    activations: Explanations | Tensor | np.ndarray,
    neuron: int,
    inputs: Tensor,
    concepts: Tensor | np.ndarray | None = None,
    concept_names: Sequence[str] | None = None,
    k: int = 16,
    ncols: int | None = None,
    max_labels: int = 2,
    plt_fig_axis: FigureAxes | None = None,
    use_pyplot: bool = True,
    fig_size: tuple[float, float] | None = None,
    title: str | None = None,
) -> FigureAxes:
    r"""
    The ``k`` inputs on which a neuron activates most, titled with the concepts they show (at
    most ``max_labels`` names, then ``+n``) or, without labels, with their activation.

    Args:
        activations (Explanations, Tensor or ndarray): An :class:`Explanations` (its
                    activations, labels, names and formula are used), or ``(N, K)`` / ``(N,)``.
        neuron (int): The neuron.
        inputs (Tensor): ``(N, C, H, W)`` images, the samples of the activations; they,
                    the activations and the labels may lie on any devices.
        concepts (Tensor or ndarray, optional): ``(N, C)`` binary labels; with an
                    ``Explanations``, default its labels.
        concept_names (sequence of str, optional): Names of the label columns; with an
                    ``Explanations``, default its names, else ``c0``, ``c1``, ...
        k (int, optional): Number of inputs shown. Default: 16
        ncols, plt_fig_axis, use_pyplot, fig_size: As in :func:`visualize_image_grid`.
        max_labels (int, optional): Concept names per title. Default: 2
        title (str, optional): Figure title. Default: the neuron and its formula.

    Returns:
        *tuple* of **figure** and **axes**.

    Examples::

        >>> fig, axes = visualize_top_activating(torch.randn(100, 8), 3, images, k=9)
    """
    heading = f"neuron {neuron}: top {k} activations"
    names: Sequence[str] | None
    if not isinstance(activations, (Tensor, np.ndarray)):  # Explanations, without importing it
        explanation = activations[neuron]
        values = activations.neuron_activations(neuron)
        labels = concepts if concepts is not None else activations.concepts
        names = concept_names if concept_names is not None else activations.concept_names
        if explanation.formula is not None:
            heading += f" ({explanation.formula}, AUC {explanation.auc:.3f})"
    else:
        values = torch.as_tensor(activations)
        if values.dim() == 2:
            if not 0 <= neuron < values.shape[1]:
                raise ValueError(
                    f"`neuron` {neuron} out of range for {values.shape[1]} activation columns"
                )
            values = values[:, neuron]
        labels, names = concepts, concept_names
    values = values.detach().float().cpu().reshape(-1)
    if not isinstance(inputs, Tensor) or inputs.shape[0] != values.shape[0]:
        raise ValueError(
            f"`inputs` must be a tensor of the {values.shape[0]} samples of the activations, got "
            f"{getattr(inputs, 'shape', type(inputs).__name__)}"
        )
    check_positive_int(k, "k")
    top = torch.topk(values, min(k, values.shape[0])).indices
    titles = (
        concept_titles(labels, names, top, max_labels)
        if labels is not None
        else [f"{float(values[index]):.3g}" for index in top]
    )
    return visualize_image_grid(
        inputs[top.to(inputs.device)],
        ncols=ncols,
        titles=titles,
        plt_fig_axis=plt_fig_axis,
        use_pyplot=use_pyplot,
        fig_size=fig_size,
        title=title if title is not None else heading,
    )


def concept_titles(
    labels: Tensor | np.ndarray,
    names: Sequence[str] | None,
    rows: Tensor,
    max_labels: int,
) -> list[str]:
    """For each of ``rows``, the names of the concepts it shows (``max_labels``, then +n)."""
    shown = torch.as_tensor(labels)[rows.to(torch.as_tensor(labels).device)].bool().cpu()
    names = list(names) if names is not None else [f"c{c}" for c in range(shown.shape[1])]
    if len(names) != shown.shape[1]:
        raise ValueError(f"`concept_names` has {len(names)} names for {shown.shape[1]} concepts")
    titles = []
    for row in shown:
        present = [names[c] for c in torch.nonzero(row).flatten().tolist()]
        extra = len(present) - max_labels
        text = ", ".join(present[:max_labels]) + (f" +{extra}" if extra > 0 else "")
        titles.append(text or "(none)")
    return titles
