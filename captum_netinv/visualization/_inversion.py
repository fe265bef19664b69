"""Plots of network inversion: samples per class, the inversion's grid, training curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from captum.attr._utils.visualization import _create_default_plot
from torch import Tensor

from captum_netinv.visualization._common import (
    FigureAxes,
    FigureAxis,
    finished,
    visualize_image_grid,
)

if TYPE_CHECKING:
    from captum_netinv.inversion.network import NetworkInversion

__all__ = ["visualize_class_samples", "visualize_inversion", "visualize_training_curves"]


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
        [f"{p:.2f}" for p in confidences.detach().cpu().reshape(-1).tolist()]
        if confidences is not None
        else None
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
    additional_forward_args: Any = None,
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
        additional_forward_args (Any, optional): The model's extra arguments, as in
                    :meth:`~captum_netinv.NetworkInversion.fit`.

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
    samples = inversion.attribute(
        target=targets, seed=seed, additional_forward_args=additional_forward_args
    )
    probabilities = inversion.class_probabilities(samples, additional_forward_args)
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
    return finished(fig, axis, "step", title, use_pyplot)
