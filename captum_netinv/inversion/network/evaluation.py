"""Measuring an inversion on fresh samples: hit rates, confidence, diversity, a verifier's verdict.

:func:`evaluate_samples` turns generated samples of every class into an
:class:`InversionEvaluation`; ``NetworkInversion.evaluate`` draws the samples and calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from captum._utils.common import _format_additional_forward_args
from torch import Tensor, nn

from captum_netinv._activations import predicted_classes
from captum_netinv._utils import excerpt, modules_of
from captum_netinv.inversion.losses import within_class_diversity
from captum_netinv.inversion.target_model import TargetModel

__all__ = [
    "NEAR_COPY_DISTANCE",
    "InversionEvaluation",
    "early_layer",
    "evaluate_samples",
    "near_copy_share",
    "real_diversity",
]

#: Two samples closer than this root-mean-square pixel distance (in the model's input space) are
#: near-copies: on [0, 1] images, 0.02 is a difference no person sees.
NEAR_COPY_DISTANCE = 0.02


@dataclass
class InversionEvaluation:
    r"""
    Quality of an inversion, measured on freshly generated samples; ``str()`` sums it up.
    Figures are Python floats and every tensor is on the CPU, whatever the devices of the
    model, the samples and the real ``inputs``.

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
        pixel_diversity (float): The within-class diversity of the samples' pixels (flattened
                    model-space inputs), mean over classes: what a person sees varies.
        pixel_diversity_per_class (Tensor): ``(num_classes,)`` its value per class.
        near_copy_share (float): Share of samples with a near-copy in their class
                    (:func:`near_copy_share`).
        real_pixel_diversity (float or None): The pixel diversity of the real ``inputs``.
        pixel_diversity_ratio (float or None): ``pixel_diversity / real_pixel_diversity``.
        pixel_diversity_ratio_per_class (Tensor or None): The ratio per class.
        early_layer (str or None): Name of the model's early layer (:func:`early_layer`: its
                    first ``nn.Conv2d`` or ``nn.Linear``), None where it has none (then the
                    early fields below are None too).
        early_diversity (float or None): The within-class diversity of the samples in the
                    output of that layer, mean over classes: edges and strokes, between the
                    pixels and the features.
        early_diversity_per_class (Tensor or None): ``(num_classes,)`` its value per class.
        real_early_diversity (float or None): The early diversity of the real ``inputs``.
        early_diversity_ratio (float or None): ``early_diversity / real_early_diversity``.
        early_diversity_ratio_per_class (Tensor or None): The ratio per class.
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
    pixel_diversity: float = float("nan")
    pixel_diversity_per_class: Tensor | None = None
    near_copy_share: float = float("nan")
    real_pixel_diversity: float | None = None
    pixel_diversity_ratio: float | None = None
    pixel_diversity_ratio_per_class: Tensor | None = None
    early_layer: str | None = None
    early_diversity: float | None = None
    early_diversity_per_class: Tensor | None = None
    real_early_diversity: float | None = None
    early_diversity_ratio: float | None = None
    early_diversity_ratio_per_class: Tensor | None = None

    def __str__(self) -> str:
        verifier = (
            "" if self.verifier_hit_rate is None else f", verifier {self.verifier_hit_rate:.2f}"
        )
        reference = (
            "no real-data reference (pass inputs=...)"
            if self.real_diversity is None or self.diversity_ratio is None
            else f"real inputs {self.real_diversity:.3f}, ratio {self.diversity_ratio:.2f}"
        )
        pixels = (
            ""
            if self.pixel_diversity_ratio is None
            else f", pixel diversity ratio {self.pixel_diversity_ratio:.2f}"
        )
        if self.early_diversity_ratio is not None:
            pixels += f", early-layer diversity ratio {self.early_diversity_ratio:.2f}"
        return (
            f"hit rate {self.hit_rate:.2f}{verifier}, mean confidence "
            f"{self.mean_confidence:.2f}, diversity {self.diversity:.3f} ({reference}{pixels}), "
            f"near-copies {self.near_copy_share:.0%}"
        )


def near_copy_share(
    samples: Tensor, targets: Tensor, distance: float = NEAR_COPY_DISTANCE
) -> float:
    r"""
    The share of ``samples`` whose nearest other sample of the same class lies within
    ``distance`` (root-mean-square difference of their pixels): copies in all but noise.

    Args:
        samples (Tensor): ``(N, ...)`` samples.
        targets (Tensor): ``(N,)`` their classes.
        distance (float, optional): The largest RMS distance of a near-copy. Default: 0.02

    Returns:
        *float* in [0, 1].

    Examples::

        >>> near_copy_share(torch.zeros(3, 1, 2, 2), torch.tensor([0, 0, 1]))
        0.6666666865348816
    """
    flat = samples.detach().flatten(1).float()
    gaps = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    same = targets.to(flat.device)[:, None] == targets.to(flat.device)[None, :]
    same.fill_diagonal_(False)
    close = (gaps <= distance) & same
    return float(close.any(dim=1).float().mean())


def real_diversity(
    model: TargetModel, inputs: Tensor, labels: Tensor | None, num_classes: int
) -> Tensor:
    r"""
    Per class, the within-class diversity (as :attr:`InversionEvaluation.diversity_per_class`
    measures samples) of real ``inputs``, grouped by ``labels`` or the model's predictions.

    Args:
        model (TargetModel): The inverted model; its features at the layer are compared.
        inputs (Tensor): ``(N, *input_shape)`` real model-space inputs, on any device (moved
                    to the model's batch by batch).
        labels (Tensor, optional): ``(N,)`` their classes in ``[0, num_classes)``, on any
                    device (or a list / array). Default: the model's predicted classes.
        num_classes (int): The model's number of classes.

    Returns:
        *Tensor* of shape ``(num_classes,)`` on the CPU, NaN for a class with fewer than two
        inputs.
    """
    features, classes = _real_features_and_classes(model, inputs, labels, num_classes)
    return within_class_diversity(features, classes, num_classes)


def _real_features_and_classes(
    model: TargetModel, inputs: Tensor, labels: object, num_classes: int
) -> tuple[Tensor, Tensor]:
    r"""The model's features of real ``inputs`` (on any device; moved to the model's batch by
    batch) and their classes (``labels`` on any device, or a list / array, checked; else the
    model's predictions), both on the CPU, from one forward pass."""
    logits, features = model.evaluated(inputs)
    if labels is None:
        return features, logits.argmax(dim=1)
    return features, _checked_labels(labels, len(inputs), num_classes)


def _checked_labels(labels: object, count: int, num_classes: int) -> Tensor:
    r"""``labels`` as a ``(count,)`` integer tensor of classes in ``[0, num_classes)`` on the
    CPU (a tensor on any device, a list or an array), else a ``ValueError``."""
    try:
        classes = torch.as_tensor(labels).cpu()
    except (TypeError, ValueError, RuntimeError):
        classes = None
    if (
        classes is None
        or classes.dtype.is_floating_point
        or classes.dtype.is_complex
        or tuple(classes.shape) != (count,)
        or bool(((classes < 0) | (classes >= num_classes)).any())
    ):
        raise ValueError(
            f"`labels` must be a ({count},) integer tensor of classes in [0, "
            f"{num_classes - 1}], one per row of `inputs`, got {excerpt(labels)}"
        )
    return classes


def early_layer(forward_func: Callable) -> tuple[str, nn.Module] | None:
    r"""
    The model's early layer: its first ``nn.Conv2d`` or ``nn.Linear`` in module order (of the
    modules ``forward_func`` runs, :func:`~captum_netinv._utils.modules_of`), with its name.

    Args:
        forward_func (Callable): The model or the callable running it.

    Returns:
        *tuple* of the layer's **name** and the **layer**, or None where there is none.

    Examples::

        >>> early_layer(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
        ('1', Linear(in_features=4, out_features=2, bias=True))
    """
    for module in modules_of(forward_func):
        for name, layer in module.named_modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                return name, layer
    return None


@contextmanager
def _recorded_outputs(layer: nn.Module | None) -> Iterator[list[Tensor]]:
    r"""Records ``layer``'s outputs (flattened per sample, on the CPU) during the forward
    passes run inside the block; the hook is removed on exit, whatever happens. None records
    nothing."""
    outputs: list[Tensor] = []
    handle = (
        None
        if layer is None
        else layer.register_forward_hook(
            lambda module, args, output: outputs.append(output.detach().flatten(1).cpu())
        )
    )
    try:
        yield outputs
    finally:
        if handle is not None:
            handle.remove()


def _early_fields(
    found: tuple[str, nn.Module] | None,
    outputs: list[Tensor],
    targets: Tensor,
    num_classes: int,
    *,
    real_outputs: list[Tensor] | None,
    classes: Tensor | None,
) -> dict[str, Any]:
    r"""The early-layer fields of :class:`InversionEvaluation` from the recorded outputs of the
    samples (of ``targets``) and of the real inputs (of ``classes``; None without them)."""
    if found is None:
        return {}
    diversity = within_class_diversity(torch.cat(outputs), targets, num_classes)
    fields: dict[str, Any] = {
        "early_layer": found[0],
        "early_diversity": float(diversity.nanmean()),
        "early_diversity_per_class": diversity,
    }
    if real_outputs is not None and classes is not None:
        real = within_class_diversity(torch.cat(real_outputs), classes, num_classes)
        fields["real_early_diversity"] = float(real.nanmean())
        fields["early_diversity_ratio"] = float(diversity.nanmean() / real.nanmean())
        fields["early_diversity_ratio_per_class"] = diversity / real
    return fields


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
        samples (Tensor): ``(num_classes * n, *input_shape)`` samples in model space, on any
                    device (moved to the model's batch by batch).
        targets (Tensor): ``(num_classes * n,)`` their classes, ``n`` of each, in order, on
                    any device.
        num_classes (int): The model's number of classes.
        verifier (Callable, optional): A second classifier of the same inputs.
        verifier_forward_args (Any, optional): The verifier's own extra arguments after the
                    inputs, as Captum's ``additional_forward_args``.
        inputs (Tensor, optional): Real model-space inputs on any device: the diversity's
                    reference (:func:`real_diversity`).
        labels (Tensor, optional): Their classes, on any device (or a list / array). Default:
                    the model's predictions.

    Returns:
        :class:`InversionEvaluation` (floats, and tensors on the CPU).
    """
    targets = targets.cpu()
    early = early_layer(model.forward_func)
    with _recorded_outputs(None if early is None else early[1]) as early_outputs:
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
    pixel_diversity = within_class_diversity(samples.flatten(1), targets, num_classes)
    reference = real_pixels = classes = real_early = None
    if inputs is not None:  # one forward pass gives the real inputs' features and classes
        with _recorded_outputs(None if early is None else early[1]) as real_early:
            real_features, classes = _real_features_and_classes(model, inputs, labels, num_classes)
        reference = within_class_diversity(real_features, classes, num_classes)
        real_pixels = within_class_diversity(inputs.flatten(1), classes, num_classes)
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
        pixel_diversity=float(pixel_diversity.nanmean()),
        pixel_diversity_per_class=pixel_diversity,
        near_copy_share=near_copy_share(samples, targets),
        real_pixel_diversity=None if real_pixels is None else float(real_pixels.nanmean()),
        pixel_diversity_ratio=(
            None
            if real_pixels is None
            else float(pixel_diversity.nanmean() / real_pixels.nanmean())
        ),
        pixel_diversity_ratio_per_class=(
            None if real_pixels is None else pixel_diversity / real_pixels
        ),
        **_early_fields(
            early, early_outputs, targets, num_classes, real_outputs=real_early, classes=classes
        ),
    )
