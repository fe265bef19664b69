"""Checking a neuron's INVERT label with generated inputs: does its formula hold for them?

:func:`label_check` evaluates a unit's formula on its generated samples and on its top-activating
real inputs with concept detectors the user gives (inputs -> booleans), and returns both shares
(:func:`~captum_netinv.examples.data.digit_concept_detectors` builds the demo's detectors).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from captum_netinv.recognition import Formula

__all__ = [
    "ConceptDetector",
    "LabelCheck",
    "concept_matrix",
    "label_check",
]

#: Tells for each of a batch of inputs whether a concept is present: ``(N, ...) -> (N,)`` bools.
ConceptDetector = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class LabelCheck:
    r"""
    How often a unit's INVERT formula holds on its generated and its top-activating real inputs.

    Attributes:
        formula (str): The formula checked.
        generated_share (float): Share of the generated samples for which it holds.
        real_share (float): Share of the top-activating real inputs for which it holds.
        n_generated (int): Number of generated samples judged.
        n_real (int): Number of real inputs judged.
    """

    formula: str
    generated_share: float
    real_share: float
    n_generated: int
    n_real: int


def concept_matrix(
    inputs: Tensor, concept_names: Sequence[str], detectors: Mapping[str, ConceptDetector]
) -> Tensor:
    r"""
    ``(N, C)`` booleans: column ``c`` is ``detectors[concept_names[c]](inputs)``.

    Args:
        inputs (Tensor): ``(N, ...)`` inputs the detectors judge, on any device (given to
                    them as they are).
        concept_names (sequence of str): The concepts, in column order.
        detectors (Mapping[str, Callable]): Concept name -> detector.

    Returns:
        *Tensor* of shape ``(N, C)``, bool, on the CPU.
    """
    missing = [name for name in concept_names if name not in detectors]
    if missing:
        raise ValueError(
            f"`detectors` has no detector for the concepts {missing}; it covers "
            f"{sorted(detectors)[:20]}"
        )
    columns = []
    for name in concept_names:
        values = torch.as_tensor(detectors[name](inputs)).detach().cpu().reshape(-1)
        if len(values) != len(inputs):
            raise ValueError(
                f"`detectors[{name!r}]` returned {len(values)} values for {len(inputs)} inputs"
            )
        columns.append(values.bool())
    return torch.stack(columns, dim=1)


def label_check(
    formula: Formula | str,
    generated: Tensor,
    real: Tensor,
    detectors: Mapping[str, ConceptDetector],
) -> LabelCheck:
    r"""
    The share of a unit's ``generated`` samples for which its INVERT ``formula`` holds, judged
    by ``detectors``, against the same share on its top-activating ``real`` inputs: a label
    that describes what the unit encodes holds on both; one that holds on real inputs only
    describes the data the unit saw rather than what drives it.

    Args:
        formula (Formula or str): The unit's formula (e.g. ``Explanation.formula``); a string
                    is parsed with the names of ``detectors``.
        generated (Tensor): ``(n, ...)`` generated samples of the unit (``n >= 1``).
        real (Tensor): ``(m, ...)`` its top-activating real inputs (``m >= 1``).
        detectors (Mapping[str, Callable]): Concept name -> detector (inputs -> bools), for
                    every concept of the formula. ``generated`` and ``real`` may lie on any
                    devices: each detector gets them where they lie, and its answers are
                    read on the CPU (:func:`concept_matrix`).

    Returns:
        :class:`LabelCheck` (Python values).

    Examples::

        >>> detectors = {"bright": lambda x: x.mean((1, 2, 3)) > 0.5}
        >>> generated, real = torch.ones(4, 1, 2, 2), torch.zeros(2, 1, 2, 2)
        >>> check = label_check("bright", generated, real, detectors)
        >>> check.generated_share, check.real_share
        (1.0, 0.0)
    """
    if isinstance(formula, str):
        formula = Formula.parse(formula, list(detectors))
    if not isinstance(formula, Formula):
        raise TypeError(f"`formula` must be a Formula or a str, got {type(formula).__name__}")
    for name, batch in (("generated", generated), ("real", real)):
        if not isinstance(batch, Tensor) or batch.dim() < 1 or len(batch) == 0:
            raise ValueError(f"`{name}` must be a non-empty batch of inputs")
    names = sorted(formula.concepts)
    local = Formula.parse(str(formula), names)  # columns in the order of `names`

    def share(inputs: Tensor) -> float:
        holds = torch.as_tensor(local.evaluate(concept_matrix(inputs, names, detectors)))
        return float(holds.float().mean())

    return LabelCheck(str(formula), share(generated), share(real), len(generated), len(real))
