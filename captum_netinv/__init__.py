"""captum_netinv: Network Inversion and INVERT neuron labeling as Captum attribution methods.

Public names only; the algorithms live in :mod:`captum_netinv.inversion` and
:mod:`captum_netinv.recognition`, the shared plots in :mod:`captum_netinv.visualization`.
"""

from captum_netinv.inversion import (
    InversionEvaluation,
    NetworkInversion,
    NeuronInversion,
    NonFiniteLossError,
)
from captum_netinv.recognition import (
    BeamEntry,
    Explanation,
    Explanations,
    Formula,
    InverseRecognition,
    explain_activations,
)
from captum_netinv.visualization import *  # noqa: F403 (every plot is a public name here)
from captum_netinv.visualization import __all__ as _visualization_names

__version__ = "0.1.0"

__all__ = [
    "BeamEntry",
    "Explanation",
    "Explanations",
    "Formula",
    "InverseRecognition",
    "InversionEvaluation",
    "NetworkInversion",
    "NeuronInversion",
    "NonFiniteLossError",
    "explain_activations",
    *(name for name in _visualization_names if name.startswith("visualize_")),
]
