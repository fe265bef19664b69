"""One unit at a glance: its INVERT label, activation histogram, top real and generated inputs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from captum.attr._utils.visualization import _create_default_plot
from matplotlib import pyplot as plt
from torch import Tensor

from captum_netinv._utils import check_positive_int
from captum_netinv.visualization._common import FigureAxes, image_for_display

if TYPE_CHECKING:
    from captum_netinv.inversion.neuron import NeuronInversion
    from captum_netinv.recognition import Explanations

__all__ = ["image_mosaic", "visualize_neuron"]


def image_mosaic(images: Tensor, ncols: int | None = None, gap: int = 1) -> np.ndarray:
    r"""
    ``(N, C, H, W)`` images tiled into one displayable array (``ncols`` per row, default
    ``ceil(sqrt(N))``), separated by ``gap`` white pixels; each image as
    :func:`~captum_netinv.visualization._common.image_for_display` shows it.
    """
    count = len(images)
    if count == 0:
        raise ValueError("`images` is empty: nothing to tile")
    ncols = ncols or math.ceil(math.sqrt(count))
    nrows = math.ceil(count / ncols)
    tiles = [image_for_display(image) for image in images]
    height, width = tiles[0].shape[:2]
    shape = (nrows * (height + gap) - gap, ncols * (width + gap) - gap, *tiles[0].shape[2:])
    mosaic = np.ones(shape, dtype=np.float32)
    for index, tile in enumerate(tiles):
        row, col = divmod(index, ncols)
        top, left = row * (height + gap), col * (width + gap)
        mosaic[top : top + height, left : left + width] = tile
    return mosaic


def _show_mosaic(axis: object, images: Tensor, heading: str) -> None:
    axis.imshow(image_mosaic(images), cmap="gray", vmin=0.0, vmax=1.0)  # type: ignore[attr-defined]
    axis.set_xticks([])  # type: ignore[attr-defined]
    axis.set_yticks([])  # type: ignore[attr-defined]
    axis.set_title(heading, fontsize=9)  # type: ignore[attr-defined]


def _formula_mask(
    explanations: Explanations | None, neuron: int, count: int
) -> tuple[Tensor | None, str]:
    """The samples where the unit's formula holds and the histogram's legend text."""
    if explanations is None or neuron not in explanations:
        return None, "all inputs"
    explanation = explanations[neuron]
    if explanation.formula is None:
        return None, "all inputs (no admissible formula)"
    mask = explanations.mask(neuron).bool().cpu().reshape(-1)
    if len(mask) != count:
        raise ValueError(
            f"`explanations` were computed on {len(mask)} samples but `inputs` holds {count}: "
            "give the inputs the labels were computed on"
        )
    return mask, f"{explanation.formula} (AUC {explanation.auc:.3f})"


def _histogram(
    axis: Any,
    *,
    real: Tensor,
    generated: Tensor,
    mask: Tensor | None,
    legend: str,
    bins: int,
    quantile: float,
) -> None:
    """The unit's real activations (split by ``mask``), its real 99th pct, generated median."""
    values = real.numpy()
    edges = np.histogram_bin_edges(np.concatenate([values, generated.numpy()]), bins=bins)
    if mask is None:
        axis.hist(values, bins=edges, alpha=0.6, density=True, label=legend)
    else:
        present = mask.numpy()
        axis.hist(values[~present], bins=edges, alpha=0.6, density=True, label="rest")
        axis.hist(values[present], bins=edges, alpha=0.6, density=True, label=legend)
    axis.axvline(quantile, color="k", linestyle="--", label="real 99th pct")
    axis.axvline(float(generated.median()), color="C3", label="generated median")
    axis.set_xlabel("activation")
    axis.set_ylabel("density")
    axis.legend(fontsize=7)


def visualize_neuron(
    inversion: NeuronInversion,
    neuron: int,
    inputs: Tensor,
    explanations: Explanations | None = None,
    n_generated: int = 16,
    k: int = 16,
    seed: int | None = 0,
    bins: int = 40,
    plt_fig_axis: FigureAxes | None = None,
    use_pyplot: bool = True,
    fig_size: tuple[float, float] = (12.0, 3.6),
    title: str | None = None,
    additional_forward_args: Any = None,
) -> FigureAxes:
    r"""
    What one unit encodes, in one figure of three panels: its activation histogram on the real
    ``inputs``, split by its INVERT formula (with the AUC) and marked with the real 99th
    percentile and the median of its generated samples; its ``k`` top-activating real inputs;
    and ``n_generated`` samples of a :class:`~captum_netinv.NeuronInversion` for it.

    Args:
        inversion (NeuronInversion): A fitted neuron inversion covering ``neuron``.
        neuron (int): The unit (index of the layer's reduced output).
        inputs (Tensor): ``(N, C, H, W)`` real model-space inputs, on any device (moved to
                    the model's batch by batch); with ``explanations``, the samples the labels
                    were computed on (their activations and labels on any device too).
        explanations (Explanations, optional): INVERT labels of the layer; the unit's formula
                    splits the histogram. Default: None (one histogram)
        n_generated (int, optional): Generated samples shown. Default: 16
        k (int, optional): Top-activating real inputs shown. Default: 16
        seed (int, optional): Seed of the generated samples. Default: 0
        bins (int, optional): Histogram bins. Default: 40
        plt_fig_axis (tuple, optional): ``(figure, axes)`` to draw into, three axes.
        use_pyplot (bool, optional): Create and show with pyplot. Default: True
        fig_size (tuple, optional): Figure size. Default: (12, 3.6)
        title (str, optional): Figure title. Default: the layer's unit and its label.
        additional_forward_args (Any, optional): The model's extra arguments, as in
                    :meth:`~captum_netinv.NeuronInversion.fit`.

    Returns:
        *tuple* of **figure** and **axes** (a ``(3,)`` array of ``Axes``).

    Examples::

        >>> fig, axes = visualize_neuron(inversion, 7, images, explanations, use_pyplot=False)
    """
    check_positive_int(n_generated, "n_generated")
    check_positive_int(k, "k")
    if not isinstance(inputs, Tensor) or inputs.dim() != 4:
        raise ValueError(
            f"`inputs` must be real inputs (N, C, H, W), got "
            f"{getattr(inputs, 'shape', type(inputs).__name__)}"
        )
    generated = inversion.attribute(
        neuron_selector=int(neuron),
        n_samples=n_generated,
        seed=seed,
        additional_forward_args=additional_forward_args,
    )
    position = inversion.neurons.index(int(neuron))
    real = inversion.unit_activations(inputs, additional_forward_args)[:, position]
    own = inversion.unit_activations(generated, additional_forward_args)[:, position]
    mask, legend = _formula_mask(explanations, int(neuron), len(real))
    fig, axes = _create_default_plot(plt_fig_axis, use_pyplot, fig_size, ncols=3, squeeze=False)
    axes = np.asarray(axes).reshape(-1)
    quantile = float(torch.quantile(real.double(), inversion.reference_quantile))
    _histogram(
        axes[0],
        real=real,
        generated=own,
        mask=mask,
        legend=legend,
        bins=bins,
        quantile=quantile,
    )
    top = torch.topk(real, min(k, len(real))).indices
    _show_mosaic(
        axes[1],
        inversion.to_pixel_space(inputs[top.to(inputs.device)]).cpu(),
        f"top {len(top)} real inputs",
    )
    _show_mosaic(axes[2], inversion.to_pixel_space(generated).cpu(), f"{n_generated} generated")
    fig.suptitle(title if title is not None else f"unit {neuron}: {legend}", fontsize=10)
    fig.tight_layout()
    if use_pyplot:
        plt.show()
    return fig, axes
