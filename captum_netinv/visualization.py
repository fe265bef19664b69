"""Plots shared by both methods: image grids, activation distributions and training curves.

Every function follows :mod:`captum.attr.visualization`: it takes ``plt_fig_axis`` (draw into an
existing figure) and ``use_pyplot`` (show with pyplot, or build a bare ``Figure``) and returns
``(fig, axis)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from captum.attr._utils.visualization import _create_default_plot
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from captum_netinv._utils import check_positive_int, eval_mode

if TYPE_CHECKING:
    from captum_netinv.inversion import NetworkInversion
    from captum_netinv.recognition import Explanations

__all__ = [
    "FigureAxes",
    "FigureAxis",
    "visualize_activation_distribution",
    "visualize_class_samples",
    "visualize_image_grid",
    "visualize_inversion",
    "visualize_neuron_explanation",
    "visualize_top_activating",
    "visualize_training_curves",
]

FigureAxis = tuple[Figure, Axes]
FigureAxes = tuple[Figure, np.ndarray]


def _image_for_display(image: Tensor) -> np.ndarray:
    """(C, H, W) or (H, W) tensor -> array imshow accepts; scaled to [0, 1] if outside it."""
    array = image.detach().float().cpu()
    if array.dim() == 3:
        array = array[0] if array.shape[0] == 1 else array[:3].permute(1, 2, 0)
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 1.0:
        array = (array - low) / max(high - low, 1e-12)
    return array.numpy()


def visualize_image_grid(
    images: Tensor | Sequence[Tensor],
    ncols: int | None = None,
    titles: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    plt_fig_axis: FigureAxes | None = None,
    use_pyplot: bool = True,
    fig_size: tuple[float, float] | None = None,
    cmap: str = "gray",
    title: str | None = None,
) -> FigureAxes:
    r"""
    Shows images in a grid, with a title per image and a label per row.

    Args:
        images (Tensor or sequence of Tensor): ``(N, C, H, W)`` (or ``(N, H, W)``) images. Images
                    whose values leave [0, 1] are min-max scaled for display.
        ncols (int, optional): Images per row. Default: ``ceil(sqrt(N))``.
        titles (sequence of str, optional): One title per image.
        row_labels (sequence of str, optional): One label per row, shown left of it.
        plt_fig_axis (tuple, optional): ``(figure, array of axes)`` to draw into; the array must
                    have ``nrows x ncols`` axes.
        use_pyplot (bool, optional): Create and show the figure with pyplot; otherwise a bare
                    ``Figure`` is built and nothing is shown. Default: True
        fig_size (tuple, optional): Figure size in inches. Default: 1.3 inch per image.
        cmap (str, optional): Colour map of single-channel images. Default: ``"gray"``
        title (str, optional): Title of the whole figure.

    Returns:
        *tuple* of **figure** and **axes** (a 2-D ``numpy`` array of ``Axes``).

    Examples::

        >>> fig, axes = visualize_image_grid(torch.rand(8, 1, 28, 28), ncols=4, use_pyplot=False)
    """
    count = len(images)
    if count == 0:
        raise ValueError("`images` is empty: nothing to show")
    if titles is not None and len(titles) != count:
        raise ValueError(f"`titles` has {len(titles)} entries for {count} images")
    ncols = ncols or int(np.ceil(np.sqrt(count)))
    nrows = int(np.ceil(count / ncols))
    if row_labels is not None and len(row_labels) != nrows:
        raise ValueError(f"`row_labels` has {len(row_labels)} entries for {nrows} rows")
    size = fig_size or (1.3 * ncols + (0.8 if row_labels else 0.0), 1.4 * nrows)
    fig, axes = _create_default_plot(
        plt_fig_axis, use_pyplot, size, nrows=nrows, ncols=ncols, squeeze=False
    )
    axes = np.asarray(axes).reshape(nrows, ncols)
    for index, axis in enumerate(axes.flat):
        axis.set_xticks([])
        axis.set_yticks([])
        if index >= count:
            axis.axis("off")
            continue
        axis.imshow(_image_for_display(images[index]), cmap=cmap, vmin=0.0, vmax=1.0)
        if titles is not None:
            axis.set_title(titles[index], fontsize=8)
    if row_labels is not None:
        for axis, label in zip(axes[:, 0], row_labels, strict=True):
            axis.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if use_pyplot:
        plt.show()
    return fig, axes


def visualize_class_samples(
    samples: Tensor,
    confidences: Tensor | None = None,
    class_names: Sequence[str] | None = None,
    plt_fig_axis: FigureAxes | None = None,
    use_pyplot: bool = True,
    fig_size: tuple[float, float] | None = None,
    title: str | None = None,
) -> FigureAxes:
    r"""
    Grid of samples per class: one row per class, each sample titled with the model's confidence.

    Args:
        samples (Tensor): ``(num_classes, n, C, H, W)`` samples, row ``k`` generated for class
                    ``k``.
        confidences (Tensor, optional): ``(num_classes, n)`` probabilities the model gives each
                    sample's class; shown as titles.
        class_names (sequence of str, optional): Row labels. Default: the class indices.
        plt_fig_axis, use_pyplot, fig_size, title: As in :func:`visualize_image_grid`.

    Returns:
        *tuple* of **figure** and **axes**.

    Examples::

        >>> fig, axes = visualize_class_samples(torch.rand(10, 6, 1, 28, 28), use_pyplot=False)
    """
    if samples.dim() < 4:
        raise ValueError(
            f"`samples` must be (num_classes, n, C, H, W), got shape {tuple(samples.shape)}"
        )
    num_classes, per_class = samples.shape[:2]
    if confidences is not None and tuple(confidences.shape) != (num_classes, per_class):
        raise ValueError(
            f"`confidences` must have shape {(num_classes, per_class)}, got "
            f"{tuple(confidences.shape)}"
        )
    names = list(class_names) if class_names is not None else [str(k) for k in range(num_classes)]
    titles = (
        [f"{float(p):.2f}" for p in confidences.reshape(-1)] if confidences is not None else None
    )
    return visualize_image_grid(
        samples.reshape(num_classes * per_class, *samples.shape[2:]),
        ncols=per_class,
        titles=titles,
        row_labels=names,
        plt_fig_axis=plt_fig_axis,
        use_pyplot=use_pyplot,
        fig_size=fig_size,
        title=title,
    )


def visualize_inversion(
    inversion: NetworkInversion,
    n_per_class: int = 8,
    seed: int | None = 0,
    class_names: Sequence[str] | None = None,
    plt_fig_axis: FigureAxes | None = None,
    use_pyplot: bool = True,
    title: str | None = "generated samples per class",
) -> FigureAxes:
    r"""
    Grid of a :class:`~captum_netinv.NetworkInversion`'s samples, one row per class, each
    titled with the model's confidence in its class (:func:`visualize_class_samples`).

    Args:
        inversion (NetworkInversion): The inversion (fitted first if it is not).
        n_per_class (int, optional): Samples per class. Default: 8
        seed (int, optional): Seed of the samples. Default: 0
        class_names (sequence of str, optional): Row labels.
        plt_fig_axis, use_pyplot, title: As in :func:`visualize_image_grid`.

    Returns:
        *tuple* of **figure** and **axes**.

    Examples::

        >>> fig, axes = visualize_inversion(inversion, n_per_class=4, use_pyplot=False)
    """
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, int) or n_per_class < 1:
        raise ValueError(f"`n_per_class` must be an int >= 1, got {n_per_class!r}")
    num_classes = inversion.num_classes
    if num_classes is None or inversion.input_shape is None:
        raise ValueError("the inversion's input shape is unknown: fit it first")
    targets = torch.arange(num_classes).repeat_interleave(n_per_class)
    samples = inversion.attribute(target=targets, seed=seed)
    with torch.no_grad(), eval_mode(inversion.forward_func):
        probabilities = inversion.forward_func(samples).softmax(dim=1).cpu()
    confidences = probabilities[torch.arange(len(targets)), targets]
    pixels = inversion.to_pixel_space(samples).cpu()
    return visualize_class_samples(
        pixels.view(num_classes, n_per_class, *inversion.input_shape),
        confidences.view(num_classes, n_per_class),
        class_names=class_names,
        plt_fig_axis=plt_fig_axis,
        use_pyplot=use_pyplot,
        title=title,
    )


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
    return _finished(fig, axis, "activation", title, use_pyplot)


def visualize_training_curves(
    history: Mapping[str, Sequence[float]],
    keys: Sequence[str] | None = None,
    plt_fig_axis: FigureAxis | None = None,
    use_pyplot: bool = True,
    fig_size: tuple[float, float] = (6.0, 3.5),
    title: str | None = "training curves",
) -> FigureAxis:
    r"""
    Plots per-step curves (loss terms, hit rate) against the step.

    Args:
        history (Mapping[str, Sequence[float]]): Name -> value per step.
        keys (sequence of str, optional): Curves to draw. Default: all of ``history``.
        plt_fig_axis, use_pyplot, fig_size, title: As in
                    :func:`visualize_activation_distribution`.

    Returns:
        *tuple* of **figure** and **axis**.

    Examples::

        >>> fig, axis = visualize_training_curves({"loss": [2.0, 1.0, 0.5]}, use_pyplot=False)
    """
    names = list(keys) if keys is not None else list(history)
    missing = [name for name in names if name not in history]
    if missing:
        raise ValueError(f"`keys` names curves not in `history`: {missing}")
    fig, axis = _create_default_plot(plt_fig_axis, use_pyplot, fig_size)
    for name in names:
        axis.plot(np.arange(1, len(history[name]) + 1), np.asarray(history[name]), label=name)
    return _finished(fig, axis, "step", title, use_pyplot)


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
    paper), each for the best formula of at most that many literals.

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
        return visualize_activation_distribution(
            values,
            explanations.mask(neuron, concepts),
            auc=explanation.auc,
            label=str(explanation.formula),
            bins=bins,
            plt_fig_axis=plt_fig_axis,  # type: ignore[arg-type]
            use_pyplot=use_pyplot,
            fig_size=fig_size,
            title=heading,
        )
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
    fig.tight_layout()
    if use_pyplot:
        plt.show()
    return fig, axes


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
        inputs (Tensor): ``(N, C, H, W)`` images, the samples of the activations.
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
        _concept_titles(labels, names, top, max_labels)
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


def _finished(
    fig: Figure, axis: Axes, xlabel: str, title: str | None, use_pyplot: bool
) -> FigureAxis:
    """A one-axis plot with its x label, legend and title, shown when ``use_pyplot``."""
    axis.set_xlabel(xlabel)
    axis.legend(fontsize=8)
    if title:
        axis.set_title(title)
    if use_pyplot:
        plt.show()
    return fig, axis


def _concept_titles(
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
