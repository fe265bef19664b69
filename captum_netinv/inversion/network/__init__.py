"""NetworkInversion (Suhail & Sethi, 2024): the class, its evaluation, counterfeits and concepts.

Built on the shared machinery of :mod:`captum_netinv.inversion`; nothing here is used by
:mod:`captum_netinv.inversion.neuron`.
"""

from captum_netinv.inversion.network.evaluation import InversionEvaluation
from captum_netinv.inversion.network.network_inversion import NetworkInversion

__all__ = ["InversionEvaluation", "NetworkInversion"]
