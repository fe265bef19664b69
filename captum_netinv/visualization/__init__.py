"""Plots shared by the methods: image grids, activation distributions, training curves, units.

Every function follows :mod:`captum.attr.visualization`: it takes ``plt_fig_axis`` (draw into an
existing figure) and ``use_pyplot`` (show with pyplot, or build a bare ``Figure``) and returns
``(fig, axis)``. The code lives in private modules by method; every public name is here.
"""

from captum_netinv.visualization._common import FigureAxes, FigureAxis, visualize_image_grid
from captum_netinv.visualization._inversion import (
    visualize_class_samples,
    visualize_inversion,
    visualize_training_curves,
)
from captum_netinv.visualization._neuron import visualize_neuron
from captum_netinv.visualization._recognition import (
    visualize_activation_distribution,
    visualize_neuron_explanation,
    visualize_top_activating,
)

__all__ = [
    "FigureAxes",
    "FigureAxis",
    "visualize_activation_distribution",
    "visualize_class_samples",
    "visualize_image_grid",
    "visualize_inversion",
    "visualize_neuron",
    "visualize_neuron_explanation",
    "visualize_top_activating",
    "visualize_training_curves",
]
