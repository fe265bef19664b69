"""captum_netinv: Network Inversion and INVERT neuron labeling as Captum attribution methods.

Public names only; the methods live in :mod:`captum_netinv.inversion.network`,
:mod:`captum_netinv.inversion.neuron` and :mod:`captum_netinv.recognition`, the shared plots in
:mod:`captum_netinv.visualization` (``docs/architecture.md`` maps the package).
"""

from captum_netinv._moved import install_moved_modules
from captum_netinv.inversion import NonFiniteLossError
from captum_netinv.inversion.network import InversionEvaluation, NetworkInversion
from captum_netinv.inversion.neuron import NeuronEvaluation, NeuronInversion
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
    "NeuronEvaluation",
    "NeuronInversion",
    "NonFiniteLossError",
    "explain_activations",
    *(name for name in _visualization_names if name.startswith("visualize_")),
]

install_moved_modules()  # the import paths of earlier versions, for one release
