"""What both generator-based methods share: settings and presets, conditioning, the generator,
augmentation, losses, the fit loop (one process and distributed) and its Adam, checkpoints,
sampling.

The methods live beside this machinery: :mod:`captum_netinv.inversion.network`
(:class:`~captum_netinv.NetworkInversion`) and :mod:`captum_netinv.inversion.neuron`
(:class:`~captum_netinv.NeuronInversion`); both are also public names of :mod:`captum_netinv`.
"""

from captum_netinv._moved import moved_attribute
from captum_netinv.inversion.augmentation import (
    augmented,
    centered,
    colour_shifted,
    flipped,
    jittered,
)
from captum_netinv.inversion.conditioning import (
    CONDITIONING_MODES,
    ConditioningBatch,
    draw_conditioning,
    hot_matrices,
    soft_hot_matrices,
    soft_vectors,
)
from captum_netinv.inversion.generator import ConditionedGenerator, sampling_mode
from captum_netinv.inversion.losses import DEFAULT_LOSS_WEIGHTS, IMAGE_PRIORS
from captum_netinv.inversion.optimizer import HostFreeAdam
from captum_netinv.inversion.presets import DEFAULT, NEURON, PAPER, PRESETS, Preset
from captum_netinv.inversion.settings import InversionSettings
from captum_netinv.inversion.training import NonFiniteLossError

__all__ = [
    "CONDITIONING_MODES",
    "DEFAULT",
    "DEFAULT_LOSS_WEIGHTS",
    "IMAGE_PRIORS",
    "NEURON",
    "PAPER",
    "PRESETS",
    "ConditionedGenerator",
    "ConditioningBatch",
    "HostFreeAdam",
    "InversionSettings",
    "NonFiniteLossError",
    "Preset",
    "augmented",
    "centered",
    "colour_shifted",
    "draw_conditioning",
    "flipped",
    "hot_matrices",
    "jittered",
    "sampling_mode",
    "soft_hot_matrices",
    "soft_vectors",
]

# NetworkInversion, NeuronInversion and their evaluations were imported from here before
__getattr__ = moved_attribute(__name__)
