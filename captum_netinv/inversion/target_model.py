"""The frozen classifier as an inversion sees it: logits and features of model-space inputs.

:class:`TargetModel` bundles the model, the feature layer, the input normalization and the
checks on the model's output, so that training, sampling, evaluation and counterfeits share them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import torch
from captum._utils.common import _format_additional_forward_args
from torch import Tensor, nn

from captum_netinv._activations import forward_with_layer, iterate_batches
from captum_netinv._utils import eval_mode, excerpt, model_device, modules_of
from captum_netinv.inversion.feature_statistics import FeatureStatistics
from captum_netinv.inversion.losses import pairwise_cosine
from captum_netinv.inversion.settings import Normalization, to_model_space

__all__ = [
    "PROBABILITY_FLOOR",
    "SAMPLE_BATCH_SIZE",
    "ForwardArgumentsError",
    "OutputKind",
    "TargetModel",
    "default_layer",
    "num_classes_of_output",
    "output_kind_of",
    "output_kind_warning",
    "prefers_channels_last",
]

#: Batch size of every forward pass over generated samples outside a fit.
SAMPLE_BATCH_SIZE = 256
#: What a classifier's output holds: logits, probabilities (after a softmax) or their log.
OutputKind = Literal["logits", "probabilities", "log_probabilities"]
#: Smallest probability whose log is taken: a probability of 0 gives log(1e-30), not -inf.
PROBABILITY_FLOOR = 1e-30
#: How far a row's sum (of probabilities, or of exponentials of log-probabilities) may be from 1.
_SUM_TOLERANCE = 1e-4

_Result = TypeVar("_Result")


class ForwardArgumentsError(ValueError):
    r"""The model failed because of its ``additional_forward_args`` (missing, or per-sample ones
    of another batch size); the model's own error is the ``__cause__``."""


@dataclass(frozen=True)
class TargetModel:
    r"""
    The inverted classifier with the layer whose features feed the diversity terms.

    Attributes:
        forward_func (Callable): The classifier, returning ``(batch, num_classes)`` logits.
        layer (nn.Module): The feature layer.
        attribute_to_layer_input (bool): Read the layer's input instead of its output.
        device_ids (list[int] or None): Devices of a ``DataParallel`` model.
        normalization (Normalization or None): Model-space ``(mean, std)``.
        additional_forward_args (Any): Extra arguments of ``forward_func`` after the inputs,
                    as in Captum, passed unchanged with every batch (so never per-sample).
        output_kind (str): What the model returns: ``"logits"``, ``"probabilities"`` (their
                    log, floored at :data:`PROBABILITY_FLOOR`, serves as logits) or
                    ``"log_probabilities"`` (logits as they are); see :func:`output_kind_of`.
        feature_statistics (FeatureStatistics or None): Real inputs' feature moments that a
                    fit matches (``fit(reference_inputs=...)``); None: data-free.
    """

    forward_func: Callable
    layer: nn.Module
    attribute_to_layer_input: bool
    device_ids: list[int] | None
    normalization: Normalization | None
    additional_forward_args: Any = None
    output_kind: OutputKind = "logits"
    feature_statistics: FeatureStatistics | None = None

    def with_args(self, additional_forward_args: Any) -> TargetModel:
        r"""This view with other ``additional_forward_args``."""
        return dataclasses.replace(self, additional_forward_args=additional_forward_args)

    def __call__(self, model_inputs: Tensor) -> Any:
        r"""The model's output for one batch, with the extra arguments."""
        extra = _format_additional_forward_args(self.additional_forward_args) or ()
        return self._checked(lambda: self.forward_func(model_inputs, *extra), len(model_inputs))

    def logits_of(self, output: Tensor) -> Tensor:
        r"""
        The model's ``(B, num_classes)`` output as logits: the log of probabilities (floored
        at :data:`PROBABILITY_FLOOR`, in float32), other outputs as they are. Log-probabilities
        are valid logits: their softmax is the probabilities themselves.

        Args:
            output (Tensor): The model's output for one batch.

        Returns:
            *Tensor* of the same shape.
        """
        if self.output_kind == "probabilities":
            return output.float().clamp_min(PROBABILITY_FLOOR).log()
        return output

    def _checked(self, run: Callable[[], _Result], batch: int) -> _Result:
        r"""``run()``, a forward pass of ``batch`` inputs; a failure caused by the extra
        arguments (none given to a model that takes some, or a per-sample one of another batch
        size) becomes a :class:`ForwardArgumentsError` naming ``additional_forward_args``."""
        try:
            return run()
        except TypeError as error:
            if self.additional_forward_args is not None:
                raise
            raise ForwardArgumentsError(
                "the model fails on a batch of inputs without `additional_forward_args` (None): "
                f"{excerpt(str(error), 200)}; if it takes more inputs, pass them as "
                "`additional_forward_args`"
            ) from error
        except RuntimeError as error:
            mismatched = self._mismatched_args(batch)
            if not mismatched:
                raise
            raise ForwardArgumentsError(
                f"`additional_forward_args` hold per-sample tensors of another batch size "
                f"({mismatched}) than the batch of {batch} generated samples they went with: "
                "they are passed unchanged with every batch of generated samples, so "
                "per-sample ones must broadcast (first dimension 1); the model failed with: "
                f"{excerpt(str(error), 200)}"
            ) from error

    def _mismatched_args(self, batch: int) -> str:
        r"""The extra tensors whose first dimension is neither 1 nor ``batch``, as
        ``"argument 0 of shape (5, 3)"``; empty where there are none."""
        extra = _format_additional_forward_args(self.additional_forward_args) or ()
        return ", ".join(
            f"argument {position} of shape {tuple(value.shape)}"
            for position, value in enumerate(extra)
            if isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] not in (1, batch)
        )

    def outputs(self, model_inputs: Tensor) -> Any:
        r"""The model's output for one batch, in eval mode, without gradients, on its device."""
        with torch.no_grad(), eval_mode(self.forward_func):
            return self(model_inputs.to(model_device(self.forward_func)))

    def output_and_layer(self, model_inputs: Tensor) -> tuple[Any, Tensor]:
        r"""The model's output and ``layer``'s unflattened values, in the autograd graph."""
        return self._checked(
            lambda: forward_with_layer(
                self.forward_func,
                model_inputs,
                self.layer,
                additional_forward_args=self.additional_forward_args,
                attribute_to_layer_input=self.attribute_to_layer_input,
                device_ids=self.device_ids,
            ),
            len(model_inputs),
        )

    def logits_and_features(self, model_inputs: Tensor) -> tuple[Tensor, Tensor]:
        r"""Logits (:meth:`logits_of` the output) and flattened features of one batch, in the
        autograd graph."""
        output, features = self.output_and_layer(model_inputs)
        return self.logits_of(output), features.flatten(1)

    def pairwise_cosine(self, features: Tensor) -> Tensor:
        r"""``(B, B)`` cosine matrix of :meth:`logits_and_features`' features, from which the
        diversity terms are computed (:func:`~captum_netinv.inversion.losses.pairwise_cosine`)."""
        return pairwise_cosine(features)

    def evaluated(self, model_inputs: Tensor) -> tuple[Tensor, Tensor]:
        r"""Logits and features of any number of samples (on any device: each batch is moved to
        the model's), in eval mode, batched, on the CPU."""
        logits, features = [], []
        device = model_device(self.forward_func)
        with torch.no_grad(), eval_mode(self.forward_func):
            for batch in iterate_batches(model_inputs, SAMPLE_BATCH_SIZE):
                output, feature = self.logits_and_features(batch.to(device))
                logits.append(output.cpu())
                features.append(feature.cpu())
        return torch.cat(logits), torch.cat(features)

    def probabilities(self, model_inputs: Tensor) -> Tensor:
        r"""Softmax of the logits (:meth:`logits_of`) of ``model_inputs`` (on any device: each
        batch is moved to the model's), in eval mode, on the CPU: the model's probabilities
        whatever its output holds."""
        device = model_device(self.forward_func)
        with torch.no_grad(), eval_mode(self.forward_func):
            return torch.cat(
                [
                    self.logits_of(self(batch.to(device))).softmax(dim=1).cpu()
                    for batch in iterate_batches(model_inputs, SAMPLE_BATCH_SIZE)
                ]
            )

    def to_model_space(self, images: Tensor) -> Tensor:
        r"""Generated pixels as this model sees them."""
        return to_model_space(images, self.normalization)


def default_layer(forward_func: Callable) -> nn.Linear:
    r"""The last ``nn.Linear`` of ``forward_func`` (or of the modules it wraps)."""
    linears = [
        m
        for module in modules_of(forward_func)
        for m in module.modules()
        if isinstance(m, nn.Linear)
    ]
    if not linears:
        raise ValueError(
            "`layer` is None and the model has no nn.Linear to default to (or none could be "
            "found in the callable); pass the layer whose features the diversity terms use"
        )
    return linears[-1]


def prefers_channels_last(forward_func: Callable) -> bool:
    r"""
    Whether a fit feeds ``forward_func`` channels-last batches (and keeps its own generator
    channels-last): where the model runs 2-d convolutions. Their kernels (oneDNN on CPUs,
    cuDNN on GPUs, tensor cores in half precision) are faster on channels-last inputs; the
    model's own parameters are left as they are, since a convolution follows the format of its
    input. Measured on two CPU cores: the LeNet-5 and ShapesCNN steps about 10% faster
    (:doc:`/performance`).
    """
    return any(
        isinstance(layer, nn.Conv2d)
        for module in modules_of(forward_func)
        for layer in module.modules()
    )


def num_classes_of_output(output: object, batch: int, num_classes: int | None) -> int:
    r"""
    The number of classes of a ``(batch, num_classes)`` model output; raises where the
    output has another form or disagrees with a given ``num_classes``.
    """
    if not isinstance(output, Tensor) or output.dim() != 2 or output.shape[0] != batch:
        raise ValueError(
            "the model's output must be a (batch, num_classes) tensor of logits; for a batch "
            f"of {batch} it returned {getattr(output, 'shape', type(output).__name__)}"
        )
    if output.shape[1] < 2:
        raise ValueError(
            f"the model outputs {output.shape[1]} logit per sample: NetworkInversion needs a "
            "classifier with >= 2 classes (for a binary model with one logit, wrap it to "
            "return torch.cat([-logit, logit], dim=1))"
        )
    if num_classes is not None and output.shape[1] != num_classes:
        raise ValueError(
            f"`num_classes` is {num_classes} but the model outputs {output.shape[1]} logits"
        )
    return int(output.shape[1])


def _last_module(forward_func: Callable) -> nn.Module | None:
    r"""The module an ``nn.Sequential`` ends with (through nested ones), the module itself for
    another ``nn.Module``, None for a plain callable."""
    if not isinstance(forward_func, nn.Module):
        return None
    module = forward_func
    while isinstance(module, nn.Sequential) and len(module) > 0:
        module = module[-1]
    return module


def output_kind_of(forward_func: Callable, output: Tensor) -> tuple[OutputKind, str]:
    r"""
    What a classifier's output holds, and the evidence: a final ``nn.Softmax`` /
    ``nn.LogSoftmax`` module, or rows of the probe ``output`` that are non-negative and sum to
    1 (probabilities) or whose exponentials do (log-probabilities); logits otherwise.

    Args:
        forward_func (Callable): The classifier.
        output (Tensor): Its ``(batch, num_classes)`` output on a probe batch.

    Returns:
        *str* **kind** (:data:`OutputKind`) and *str* **evidence** (empty for logits).
    """
    last = _last_module(forward_func)
    if isinstance(last, nn.LogSoftmax):
        return "log_probabilities", "its last module is nn.LogSoftmax"
    if isinstance(last, nn.Softmax):
        return "probabilities", "its last module is nn.Softmax"
    rows = output.detach().float().cpu()
    ones = torch.ones(len(rows))
    if bool((rows >= 0).all()) and torch.allclose(rows.sum(dim=1), ones, atol=_SUM_TOLERANCE):
        return "probabilities", "its outputs are non-negative and each row sums to 1"
    if bool((rows <= 0).all()) and torch.allclose(rows.exp().sum(dim=1), ones, atol=_SUM_TOLERANCE):
        return "log_probabilities", "the exponentials of its outputs sum to 1 in each row"
    return "logits", ""


def output_kind_warning(method: str, kind: OutputKind, evidence: str) -> str:
    r"""
    The warning an inversion gives at construction when the model does not return logits.

    Args:
        method (str): The inversion's class name.
        kind (str): ``"probabilities"`` or ``"log_probabilities"``.
        evidence (str): How it was detected (:func:`output_kind_of`).

    Returns:
        *str*, the message.
    """
    if kind == "probabilities":
        return (
            f"{method}: the model returns probabilities ({evidence}), not logits; "
            "cross-entropy on probabilities would cap the confidence near chance, so the "
            f"inversion uses their log (floored at {PROBABILITY_FLOOR:g}) as the logits of "
            "its fit, hit rate, evaluate() and visualize() (confidences are the model's own "
            "probabilities)"
        )
    return (
        f"{method}: the model returns log-probabilities ({evidence}), not logits; they are "
        "valid logits (their softmax is the model's probabilities), so the inversion uses "
        "them as they are"
    )
