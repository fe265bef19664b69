"""Measuring an inversion on fresh samples: hit rates, confidence, diversity, a verifier's verdict.

:func:`evaluate_samples` turns generated samples of every class into an
:class:`InversionEvaluation`; ``NetworkInversion.evaluate`` draws the samples and calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from captum_netinv._activations import predicted_classes
from captum_netinv.inversion.losses import within_class_diversity
from captum_netinv.inversion.target_model import TargetModel

__all__ = ["InversionEvaluation", "evaluate_samples"]


@dataclass
class InversionEvaluation:
    r"""
    Quality of an inversion, measured on freshly generated samples.

    Attributes:
        hit_rate (float): Fraction of samples the model assigns to their target class.
        hit_rate_per_class (Tensor): ``(num_classes,)`` hit rate of each target class.
        mean_confidence (float): Mean softmax probability of the target class.
        confidence_per_class (Tensor): ``(num_classes,)`` mean target probability per class.
        diversity (float): Mean over classes of the within-class diversity.
        diversity_per_class (Tensor): ``(num_classes,)`` mean pairwise cosine distance between
                    the model's features (at the inversion's ``layer``) of a class's samples.
        verifier_hit_rate (float or None): Hit rate under ``verifier``, when one was given.
        verifier_hit_rate_per_class (Tensor or None): Its value per class.
        preset (str or None): The preset the inversion ran with (``"default"``, ``"paper"``),
                    None where the samples did not come from a
                    :class:`~captum_netinv.NetworkInversion`.
    """

    hit_rate: float
    hit_rate_per_class: Tensor
    mean_confidence: float
    confidence_per_class: Tensor
    diversity: float
    diversity_per_class: Tensor
    verifier_hit_rate: float | None = None
    verifier_hit_rate_per_class: Tensor | None = None
    preset: str | None = None


def evaluate_samples(
    model: TargetModel,
    samples: Tensor,
    targets: Tensor,
    num_classes: int,
    verifier: Callable | None = None,
) -> InversionEvaluation:
    r"""
    Measures generated ``samples`` of the classes ``targets``, the same number per class,
    sorted by class.

    Args:
        model (TargetModel): The inverted model; its logits and features are measured.
        samples (Tensor): ``(num_classes * n, *input_shape)`` samples in model space.
        targets (Tensor): ``(num_classes * n,)`` their classes, ``n`` of each, in order.
        num_classes (int): The model's number of classes.
        verifier (Callable, optional): A second classifier of the same inputs.

    Returns:
        :class:`InversionEvaluation`.
    """
    logits, features = model.evaluated(samples)
    probabilities = logits.softmax(dim=1)
    hits = (probabilities.argmax(dim=1) == targets).float().view(num_classes, -1)
    confidence = probabilities[torch.arange(len(targets)), targets].view(num_classes, -1)
    diversity = within_class_diversity(features, targets, num_classes)
    verifier_hits = (
        None
        if verifier is None
        else (predicted_classes(verifier, samples) == targets).float().view(num_classes, -1)
    )
    return InversionEvaluation(
        hit_rate=float(hits.mean()),
        hit_rate_per_class=hits.mean(dim=1),
        mean_confidence=float(confidence.mean()),
        confidence_per_class=confidence.mean(dim=1),
        diversity=float(diversity.nanmean()),
        diversity_per_class=diversity,
        verifier_hit_rate=None if verifier_hits is None else float(verifier_hits.mean()),
        verifier_hit_rate_per_class=None if verifier_hits is None else verifier_hits.mean(1),
    )
