"""The frozen classifier as an inversion sees it: logits and features of model-space inputs.

:class:`TargetModel` bundles the model, the feature layer, the input normalization and the
checks on the model's output, so that training, sampling, evaluation and counterfeits share them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from captum._utils.common import _format_additional_forward_args
from torch import Tensor, nn

from captum_netinv._activations import forward_with_layer, iterate_batches
from captum_netinv._utils import eval_mode, model_device, modules_of
from captum_netinv.inversion.losses import pairwise_cosine
from captum_netinv.inversion.settings import Normalization, to_model_space

__all__ = ["SAMPLE_BATCH_SIZE", "TargetModel", "default_layer", "num_classes_of_output"]

#: Batch size of every forward pass over generated samples outside a fit.
SAMPLE_BATCH_SIZE = 256


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
    """

    forward_func: Callable
    layer: nn.Module
    attribute_to_layer_input: bool
    device_ids: list[int] | None
    normalization: Normalization | None
    additional_forward_args: Any = None

    def with_args(self, additional_forward_args: Any) -> TargetModel:
        r"""This view with other ``additional_forward_args``."""
        return dataclasses.replace(self, additional_forward_args=additional_forward_args)

    def __call__(self, model_inputs: Tensor) -> Any:
        r"""The model's output for one batch, with the extra arguments."""
        extra = _format_additional_forward_args(self.additional_forward_args) or ()
        return self.forward_func(model_inputs, *extra)

    def outputs(self, model_inputs: Tensor) -> Any:
        r"""The model's output for one batch, in eval mode, without gradients, on its device."""
        with torch.no_grad(), eval_mode(self.forward_func):
            return self(model_inputs.to(model_device(self.forward_func)))

    def output_and_layer(self, model_inputs: Tensor) -> tuple[Any, Tensor]:
        r"""The model's output and ``layer``'s unflattened values, in the autograd graph."""
        return forward_with_layer(
            self.forward_func,
            model_inputs,
            self.layer,
            additional_forward_args=self.additional_forward_args,
            attribute_to_layer_input=self.attribute_to_layer_input,
            device_ids=self.device_ids,
        )

    def logits_and_features(self, model_inputs: Tensor) -> tuple[Tensor, Tensor]:
        r"""Logits and flattened features of one batch, in the autograd graph."""
        logits, features = self.output_and_layer(model_inputs)
        return logits, features.flatten(1)

    def pairwise_cosine(self, features: Tensor) -> Tensor:
        r"""``(B, B)`` cosine matrix of :meth:`logits_and_features`' features, from which the
        diversity terms are computed (:func:`~captum_netinv.inversion.losses.pairwise_cosine`)."""
        return pairwise_cosine(features)

    def evaluated(self, model_inputs: Tensor) -> tuple[Tensor, Tensor]:
        r"""Logits and features of any number of samples, in eval mode, batched, on the CPU."""
        logits, features = [], []
        with torch.no_grad(), eval_mode(self.forward_func):
            for batch in iterate_batches(model_inputs, SAMPLE_BATCH_SIZE):
                output, feature = self.logits_and_features(batch)
                logits.append(output.cpu())
                features.append(feature.cpu())
        return torch.cat(logits), torch.cat(features)

    def probabilities(self, model_inputs: Tensor) -> Tensor:
        r"""Softmax of the logits of ``model_inputs``, in eval mode, on the CPU."""
        with torch.no_grad(), eval_mode(self.forward_func):
            return torch.cat(
                [
                    self(batch).softmax(dim=1).cpu()
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
