"""Network inversion (Suhail & Sethi, 2024): a conditioned generator that inverts a classifier.

:class:`NetworkInversion` is the attribution class; the modules beside it hold one idea each:
settings, conditioning, generator, augmentation, losses, training, sampling, evaluation,
checkpoint, counterfeits.
"""

from captum_netinv.inversion.augmentation import augmented, jittered
from captum_netinv.inversion.conditioning import (
    CONDITIONING_MODES,
    ConditioningBatch,
    draw_conditioning,
    hot_matrices,
    soft_hot_matrices,
    soft_vectors,
)
from captum_netinv.inversion.evaluation import InversionEvaluation
from captum_netinv.inversion.generator import ConditionedGenerator, sampling_mode
from captum_netinv.inversion.losses import DEFAULT_LOSS_WEIGHTS, IMAGE_PRIORS
from captum_netinv.inversion.network_inversion import NetworkInversion
from captum_netinv.inversion.neuron_evaluation import NeuronEvaluation
from captum_netinv.inversion.neuron_inversion import NeuronInversion
from captum_netinv.inversion.presets import DEFAULT, PAPER, PRESETS, Preset
from captum_netinv.inversion.settings import InversionSettings
from captum_netinv.inversion.training import NonFiniteLossError

__all__ = [
    "CONDITIONING_MODES",
    "DEFAULT",
    "DEFAULT_LOSS_WEIGHTS",
    "IMAGE_PRIORS",
    "PAPER",
    "PRESETS",
    "ConditionedGenerator",
    "ConditioningBatch",
    "InversionEvaluation",
    "InversionSettings",
    "NetworkInversion",
    "NeuronEvaluation",
    "NeuronInversion",
    "NonFiniteLossError",
    "Preset",
    "augmented",
    "draw_conditioning",
    "hot_matrices",
    "jittered",
    "sampling_mode",
    "soft_hot_matrices",
    "soft_vectors",
]
