"""The plots' shared pieces: figure types, image display, the image grid, the finishing touch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from captum.attr._utils.visualization import _create_default_plot
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

__all__ = ["FigureAxes", "FigureAxis", "finished", "image_for_display", "visualize_image_grid"]

#: A figure and its one axis.
FigureAxis = tuple[Figure, Axes]
#: A figure and an array of its axes.
FigureAxes = tuple[Figure, np.ndarray]


def image_for_display(image: Tensor) -> np.ndarray:
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
        axis.imshow(image_for_display(images[index]), cmap=cmap, vmin=0.0, vmax=1.0)
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


def finished(
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
