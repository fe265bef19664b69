"""captum_netinv: Network Inversion and INVERT neuron labeling as Captum attribution methods.

Public names only; the algorithms live in :mod:`captum_netinv.inversion` and
:mod:`captum_netinv.recognition`, the shared plots in :mod:`captum_netinv.visualization`.
"""

from captum_netinv.inversion import InversionEvaluation, NetworkInversion, NonFiniteLossError
from captum_netinv.recognition import (
    BeamEntry,
    Explanation,
    Explanations,
    Formula,
    InverseRecognition,
    explain_activations,
)
from captum_netinv.visualization import (
    visualize_activation_distribution,
    visualize_class_samples,
    visualize_image_grid,
    visualize_neuron_explanation,
    visualize_top_activating,
    visualize_training_curves,
)

__version__ = "0.1.0"

__all__ = [
    "BeamEntry",
    "Explanation",
    "Explanations",
    "Formula",
    "InverseRecognition",
    "InversionEvaluation",
    "NetworkInversion",
    "NonFiniteLossError",
    "explain_activations",
    "visualize_activation_distribution",
    "visualize_class_samples",
    "visualize_image_grid",
    "visualize_neuron_explanation",
    "visualize_top_activating",
    "visualize_training_curves",
]
