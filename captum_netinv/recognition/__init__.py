"""InverseRecognition (INVERT): label neurons with logical formulas of concepts, scored by AUC.

Exposes the Captum attribution class, the search on precomputed activations, its results and the
formula and rank-statistic building blocks.
"""

from captum_netinv.recognition.distributed import rank_slice
from captum_netinv.recognition.explanations import (
    BeamEntry,
    Explanation,
    Explanations,
    Refinement,
)
from captum_netinv.recognition.formula import And, Atom, Formula, Not, Or
from captum_netinv.recognition.inverse_recognition import InverseRecognition, explain_activations
from captum_netinv.recognition.ranking import (
    MannWhitneyResult,
    mann_whitney_p_values,
    mann_whitney_u,
    mid_ranks,
    rank_auc,
)

__all__ = [
    "And",
    "Atom",
    "BeamEntry",
    "Explanation",
    "Explanations",
    "Formula",
    "InverseRecognition",
    "MannWhitneyResult",
    "Not",
    "Or",
    "Refinement",
    "explain_activations",
    "mann_whitney_p_values",
    "mann_whitney_u",
    "mid_ranks",
    "rank_auc",
    "rank_slice",
]
