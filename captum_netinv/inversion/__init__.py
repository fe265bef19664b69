"""Network inversion (Suhail & Sethi, 2024): a conditioned generator that inverts a classifier.

:class:`NetworkInversion` is the attribution class; the modules beside it hold the conditioning,
the default generator and the loss terms.
"""

from captum_netinv.inversion.conditioning import (
    CONDITIONING_MODES,
    ConditioningBatch,
    draw_conditioning,
    hot_matrices,
    soft_vectors,
)
from captum_netinv.inversion.generator import ConditionedGenerator, sampling_mode
from captum_netinv.inversion.losses import DEFAULT_LOSS_WEIGHTS, IMAGE_PRIORS
from captum_netinv.inversion.network_inversion import (
    InversionEvaluation,
    NetworkInversion,
    NonFiniteLossError,
    jittered,
)

__all__ = [
    "CONDITIONING_MODES",
    "DEFAULT_LOSS_WEIGHTS",
    "IMAGE_PRIORS",
    "ConditionedGenerator",
    "ConditioningBatch",
    "InversionEvaluation",
    "NetworkInversion",
    "NonFiniteLossError",
    "draw_conditioning",
    "hot_matrices",
    "jittered",
    "sampling_mode",
    "soft_vectors",
]
