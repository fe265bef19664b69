"""NeuronInversion: the class, the model as a neuron inversion sees it, selectors, evaluation.

Built on the shared machinery of :mod:`captum_netinv.inversion`, with a unit of a layer in the
role of NetworkInversion's class.
"""

from captum_netinv.inversion.neuron.evaluation import NeuronEvaluation
from captum_netinv.inversion.neuron.neuron_inversion import NeuronInversion

__all__ = ["NeuronEvaluation", "NeuronInversion"]
