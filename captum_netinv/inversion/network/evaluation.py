"""Measuring an inversion on fresh samples: hit rates, confidence, diversity, a verifier's verdict.

:func:`evaluate_samples` turns generated samples of every class into an
:class:`InversionEvaluation`; ``NetworkInversion.evaluate`` draws the samples and calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from captum._utils.common import _format_additional_forward_args
from torch import Tensor

from captum_netinv._activations import predicted_classes
from captum_netinv._utils import excerpt, model_device
from captum_netinv.inversion.losses import within_class_diversity
from captum_netinv.inversion.target_model import TargetModel

__all__ = ["InversionEvaluation", "evaluate_samples", "real_diversity"]


@dataclass
class InversionEvaluation:
    r"""
    Quality of an inversion, measured on freshly generated samples; ``str()`` sums it up.

    Attributes:
        hit_rate (float): Fraction of samples the model assigns to their target class.
        hit_rate_per_class (Tensor): ``(num_classes,)`` hit rate of each target class.
        mean_confidence (float): Mean probability the model gives the target class.
        confidence_per_class (Tensor): ``(num_classes,)`` mean target probability per class.
        diversity (float): Mean over classes of the within-class diversity.
        diversity_per_class (Tensor): ``(num_classes,)`` mean pairwise cosine distance between
                    the model's features (at the inversion's ``layer``) of a class's samples.
        verifier_hit_rate (float or None): Hit rate under ``verifier``, when one was given.
        verifier_hit_rate_per_class (Tensor or None): Its value per class.
        preset (str or None): The preset the inversion ran with (``"default"``, ``"paper"``),
                    None where the samples did not come from a
                    :class:`~captum_netinv.NetworkInversion`.
        real_diversity (float or None): The same diversity measured on real ``inputs`` (each
                    class's real inputs: their ``labels``, or the model's predicted classes),
                    the reference that gives ``diversity`` a meaning; None without inputs.
        real_diversity_per_class (Tensor or None): ``(num_classes,)`` its value per class
                    (NaN for a class with fewer than two real inputs).
        diversity_ratio (float or None): ``diversity / real_diversity``.
        diversity_ratio_per_class (Tensor or None): ``(num_classes,)`` the ratio per class.
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
    real_diversity: float | None = None
    real_diversity_per_class: Tensor | None = None
    diversity_ratio: float | None = None
    diversity_ratio_per_class: Tensor | None = None

    def __str__(self) -> str:
        verifier = (
            "" if self.verifier_hit_rate is None else f", verifier {self.verifier_hit_rate:.2f}"
        )
        reference = (
            "no real-data reference (pass inputs=...)"
            if self.real_diversity is None or self.diversity_ratio is None
            else f"real inputs {self.real_diversity:.3f}, ratio {self.diversity_ratio:.2f}"
        )
        return (
            f"hit rate {self.hit_rate:.2f}{verifier}, mean confidence "
            f"{self.mean_confidence:.2f}, diversity {self.diversity:.3f} ({reference})"
        )


def real_diversity(
    model: TargetModel, inputs: Tensor, labels: Tensor | None, num_classes: int
) -> Tensor:
    r"""
    Per class, the within-class diversity (as :attr:`InversionEvaluation.diversity_per_class`
    measures samples) of real ``inputs``, grouped by ``labels`` or the model's predictions.

    Args:
        model (TargetModel): The inverted model; its features at the layer are compared.
        inputs (Tensor): ``(N, *input_shape)`` real model-space inputs.
        labels (Tensor, optional): ``(N,)`` their classes in ``[0, num_classes)``. Default:
                    the model's predicted classes.
        num_classes (int): The model's number of classes.

    Returns:
        *Tensor* of shape ``(num_classes,)``, NaN for a class with fewer than two inputs.
    """
    logits, features = model.evaluated(inputs.to(model_device(model.forward_func)))
    if labels is None:
        labels = logits.argmax(dim=1)
    elif (
        not isinstance(labels, Tensor)
        or labels.dtype.is_floating_point
        or tuple(labels.shape) != (len(inputs),)
        or bool(((labels < 0) | (labels >= num_classes)).any())
    ):
        raise ValueError(
            f"`labels` must be a ({len(inputs)},) integer tensor of classes in [0, "
            f"{num_classes - 1}], one per row of `inputs`, got {excerpt(labels)}"
        )
    return within_class_diversity(features, labels.cpu(), num_classes)


def _verifier_classes(verifier: Callable, samples: Tensor, verifier_forward_args: Any) -> Tensor:
    r"""The verifier's class of each sample, given its own extra arguments."""
    extra = _format_additional_forward_args(verifier_forward_args) or ()
    return predicted_classes(lambda batch: verifier(batch, *extra), samples)


def evaluate_samples(
    model: TargetModel,
    samples: Tensor,
    targets: Tensor,
    num_classes: int,
    verifier: Callable | None = None,
    *,
    verifier_forward_args: Any = None,
    inputs: Tensor | None = None,
    labels: Tensor | None = None,
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
        verifier_forward_args (Any, optional): The verifier's own extra arguments after the
                    inputs, as Captum's ``additional_forward_args``.
        inputs (Tensor, optional): Real model-space inputs: the diversity's reference
                    (:func:`real_diversity`).
        labels (Tensor, optional): Their classes. Default: the model's predictions.

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
        else (_verifier_classes(verifier, samples, verifier_forward_args) == targets)
        .float()
        .view(num_classes, -1)
    )
    reference = None if inputs is None else real_diversity(model, inputs, labels, num_classes)
    return InversionEvaluation(
        hit_rate=float(hits.mean()),
        hit_rate_per_class=hits.mean(dim=1),
        mean_confidence=float(confidence.mean()),
        confidence_per_class=confidence.mean(dim=1),
        diversity=float(diversity.nanmean()),
        diversity_per_class=diversity,
        verifier_hit_rate=None if verifier_hits is None else float(verifier_hits.mean()),
        verifier_hit_rate_per_class=None if verifier_hits is None else verifier_hits.mean(1),
        real_diversity=None if reference is None else float(reference.nanmean()),
        real_diversity_per_class=reference,
        diversity_ratio=(
            None if reference is None else float(diversity.nanmean() / reference.nanmean())
        ),
        diversity_ratio_per_class=None if reference is None else diversity / reference,
    )
