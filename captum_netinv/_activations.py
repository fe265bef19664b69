"""Capturing a layer's activations and reducing them to one value per neuron, in batches.

Inputs are streamed (a tensor or a tuple of model inputs is cut into batches, a DataLoader is
iterated), each batch's feature maps are reduced right away, so memory grows with samples x
neurons, never with feature-map size; the model runs in eval mode and is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import torch
from captum._utils.common import _format_additional_forward_args
from captum._utils.gradient import (
    _extract_device_ids,
    _forward_layer_distributed_eval,
    _gather_distributed_tensors,
)
from captum.attr._utils.batching import _tuple_splice_range
from torch import Tensor, nn

from captum_netinv._progress import progress_bar
from captum_netinv._utils import check_positive_int, eval_mode, excerpt, model_device

__all__ = [
    "InputSource",
    "ModelInputs",
    "Reduction",
    "batch_inputs",
    "batch_length",
    "first_tensor",
    "forward_with_layer",
    "iterate_batches",
    "layer_activations",
    "predicted_classes",
    "reduce_activations",
]

Reduction = Literal["mean", "max"] | Callable[[Tensor], Tensor]
#: A tensor of samples, a tuple of tensors (the model's several inputs, as in Captum), or an
#: iterable of batches (e.g. a DataLoader): tensors or ``(inputs, labels, ...)`` tuples whose
#: ``inputs`` are a tensor or, for a model of several inputs, a tuple or list of tensors.
InputSource = Tensor | tuple[Tensor, ...] | Iterable[Any]
#: One batch of model inputs: a tensor, or a tuple of tensors for a model of several inputs.
ModelInputs = Tensor | tuple[Tensor, ...]


def reduce_activations(activations: Tensor, reduction: Reduction = "mean") -> Tensor:
    r"""
    Reduces a batch of layer outputs to one value per neuron, shape ``(batch, neurons)``.

    For outputs with more than two dimensions (conv feature maps ``(B, C, H, W)``, sequences) the
    neurons are the channels of dimension 1 and ``"mean"`` / ``"max"`` reduce all further
    dimensions; a callable receives the whole batch and must return ``(B, K)``. Linear units and
    logits ``(B, K)`` are returned as they are.

    Args:
        activations (Tensor): A layer's output for a batch.
        reduction (str or Callable, optional): ``"mean"``, ``"max"`` or a callable.
                    Default: ``"mean"``

    Returns:
        *Tensor* of shape ``(B, K)``.
    """
    if callable(reduction):
        reduced = reduction(activations)
        if not isinstance(reduced, Tensor) or reduced.dim() != 2:
            raise ValueError(
                "`neuron_reduction` callable must return a (batch, neurons) tensor, got "
                f"{type(reduced).__name__} of shape {getattr(reduced, 'shape', None)}"
            )
        return reduced
    if reduction not in ("mean", "max"):
        raise ValueError(
            f"`neuron_reduction` must be 'mean', 'max' or a callable, got {reduction!r}"
        )
    if activations.dim() == 1:
        return activations.unsqueeze(1)
    if activations.dim() == 2:
        return activations
    flat = activations.flatten(2)
    return flat.mean(dim=2) if reduction == "mean" else flat.amax(dim=2)


def first_tensor(batch: Any, name: str = "inputs") -> Tensor:
    r"""
    The one input tensor of an iterated batch: the batch itself, or element 0 of an
    ``(inputs, labels, ...)`` tuple or list. For the callers that need a single tensor; a batch of
    several model inputs (``((x1, x2), labels)``) is refused naming ``name``, as is anything else.

    Args:
        batch (Any): One batch of an iterable of batches.
        name (str, optional): The argument named in errors. Default: ``"inputs"``

    Returns:
        *Tensor* of the batch's **inputs**.
    """
    single = _single_input(batch)
    if single is not None:
        return single
    if _several_inputs(batch):
        raise TypeError(
            f"each batch of `{name}` must hold one input tensor here (a tensor or an "
            f"(inputs, labels, ...) tuple), got a batch of {len(batch[0])} model inputs "
            "((x1, x2, ...), labels, ...), which this method cannot take"
        )
    raise TypeError(
        f"each batch of `{name}` must be a tensor or an (inputs, labels, ...) tuple, "
        f"got {_batch_kind(batch)}"
    )


def batch_inputs(batch: Any, name: str = "inputs") -> ModelInputs:
    r"""
    The model inputs of an iterated batch, as Captum takes them: a tensor (the batch itself or
    element 0 of an ``(inputs, labels, ...)`` tuple), or a tuple of tensors for a model of
    several inputs when element 0 is itself a tuple or list of tensors (``((x1, x2), labels)``,
    which a ``DataLoader`` over ``((x1, x2), y)`` samples yields as ``[[x1, x2], y]``).

    Args:
        batch (Any): One batch of an iterable of batches.
        name (str, optional): The argument named in errors. Default: ``"inputs"``

    Returns:
        *Tensor* or *tuple* of tensors: the batch's **model inputs**.
    """
    if _several_inputs(batch):
        return tuple(batch[0])
    single = _single_input(batch)
    if single is not None:
        return single
    raise TypeError(
        f"each batch of `{name}` must be a tensor or an (inputs, labels, ...) tuple whose "
        f"inputs are a tensor or a tuple of tensors (the model's inputs), got {_batch_kind(batch)}"
    )


def _single_input(batch: Any) -> Tensor | None:
    """``batch`` if it is a tensor, its element 0 if that is a tensor, else None."""
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    return None


def _several_inputs(batch: Any) -> bool:
    """Whether ``batch`` is ``((x1, x2, ...), labels, ...)``: element 0 a sequence of tensors."""
    if not isinstance(batch, (tuple, list)) or not batch:
        return False
    inputs = batch[0]
    return (
        isinstance(inputs, (tuple, list))
        and bool(inputs)
        and all(isinstance(t, Tensor) for t in inputs)
    )


def _batch_kind(batch: Any) -> str:
    """``batch``'s type, with its first elements' types for a non-empty tuple or list."""
    if not isinstance(batch, (tuple, list)) or not batch:
        return type(batch).__name__
    kinds = ", ".join(type(item).__name__ for item in batch[:4])
    return f"{type(batch).__name__} of ({kinds}{', ...' if len(batch) > 4 else ''})"


def batch_length(inputs: ModelInputs, name: str = "inputs") -> int:
    r"""
    The number of samples of a tensor or of a tuple of model inputs (which must agree);
    raises naming ``name`` for anything else.
    """
    tensors = inputs if isinstance(inputs, tuple) else (inputs,)
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(
            f"`{name}` must be a tensor or a tuple of tensors (the model's inputs), got "
            f"{excerpt(tuple(type(t).__name__ for t in tensors))}"
        )
    if any(t.dim() == 0 for t in tensors):
        raise ValueError(f"`{name}` must hold a batch dimension, got a 0-d tensor")
    lengths = {int(t.shape[0]) for t in tensors}
    if len(lengths) != 1:
        raise ValueError(
            f"`{name}` is a tuple of model inputs with different numbers of samples "
            f"{sorted(lengths)}; each input needs one row per sample (as in Captum)"
        )
    return lengths.pop()


def iterate_batches(
    inputs: InputSource, batch_size: int, *, several_inputs: bool = False
) -> Iterator[Any]:
    r"""
    Yields the model inputs of ``inputs`` batch by batch (see :data:`InputSource`): slices of
    a tensor, tuples of slices of a tuple of tensors, the input part of each iterated batch.

    Args:
        inputs (Tensor, tuple or Iterable): The samples.
        batch_size (int): Batch size when ``inputs`` is a tensor or a tuple of tensors.
        several_inputs (bool, optional): Iterated batches may hold several model inputs
                    (``((x1, x2), labels, ...)``, yielded as a tuple of tensors, see
                    :func:`batch_inputs`); else each must hold one input tensor (see
                    :func:`first_tensor`). Default: False

    Returns:
        *Iterator* of **batches**: tensors, or tuples of tensors (the model's inputs).
    """
    if isinstance(inputs, (Tensor, tuple)):
        for start in range(0, batch_length(inputs), batch_size):
            if isinstance(inputs, Tensor):
                yield inputs[start : start + batch_size]
            else:
                yield tuple(t[start : start + batch_size] for t in inputs)
        return
    if not isinstance(inputs, Iterable) or isinstance(inputs, (str, bytes)):
        raise TypeError(
            "`inputs` must be a tensor, a tuple of tensors (the model's inputs) or an "
            f"iterable of batches (e.g. a DataLoader), got {type(inputs).__name__}"
        )
    for batch in inputs:
        yield batch_inputs(batch) if several_inputs else first_tensor(batch)


def forward_with_layer(
    forward_func: Callable,
    inputs: ModelInputs,
    layer: nn.Module,
    *,
    additional_forward_args: Any = None,
    attribute_to_layer_input: bool = False,
    device_ids: list[int] | None = None,
) -> tuple[Tensor, Tensor]:
    r"""
    One forward pass of ``forward_func`` returning its output and ``layer``'s output (or
    input), both in the autograd graph when gradients are enabled. Captum's distributed layer
    evaluation gathers the layer's values across the devices of a ``DataParallel`` model.

    Args:
        forward_func (Callable): The model.
        inputs (Tensor or tuple): One batch of model inputs.
        layer (nn.Module): The layer whose values are read.
        additional_forward_args (Any, optional): Extra arguments of ``forward_func``, as in
                    Captum (already sliced to this batch).
        attribute_to_layer_input (bool, optional): Read the layer's input instead of its
                    output. Default: False
        device_ids (list[int], optional): Devices of a ``DataParallel`` model.

    Returns:
        *Tensor* of the model's **output**, *Tensor* of the layer's **values** (unreduced; the
        first tensor where the layer has several).
    """
    saved, output = _forward_layer_distributed_eval(
        forward_func,
        inputs,
        layer,
        additional_forward_args=_format_additional_forward_args(additional_forward_args),
        attribute_to_layer_input=attribute_to_layer_input,
        forward_hook_with_return=True,
    )
    ids = _extract_device_ids(forward_func, saved, device_ids)
    return output, _gather_distributed_tensors(saved[layer], device_ids=ids)[0]


def layer_activations(
    forward_func: Callable,
    layer: nn.Module,
    inputs: InputSource,
    *,
    reduction: Reduction = "mean",
    additional_forward_args: Any = None,
    attribute_to_layer_input: bool = False,
    device_ids: list[int] | None = None,
    batch_size: int = 256,
    device: torch.device | None = None,
    progress: bool = False,
) -> Tensor:
    r"""
    Runs ``forward_func`` over ``inputs`` in eval mode (every flag and buffer restored after:
    :func:`~captum_netinv._utils.eval_mode`) and returns ``layer``'s reduced activations.

    Args:
        forward_func (Callable): The model.
        layer (nn.Module): The layer whose outputs (or inputs) are read.
        inputs (Tensor, tuple or Iterable): Samples, streamed in batches (see
                    :data:`InputSource`).
        reduction (str or Callable, optional): See :func:`reduce_activations`.
        additional_forward_args (Any, optional): Extra arguments of ``forward_func``; tensors
                    whose first dimension is the number of samples are sliced with each batch.
        attribute_to_layer_input (bool, optional): Read the layer's input instead of its output.
        device_ids (list[int], optional): Devices of a ``DataParallel`` model (as in Captum).
        batch_size (int, optional): Batch size when ``inputs`` is a tensor. Default: 256
        device (torch.device, optional): Where batches are moved before the forward pass.
                    Default: the model's device.
        progress (bool, optional): Show a progress bar. Default: False

    Returns:
        *Tensor* of shape ``(N, K)`` on the device where the model produced it.
    """
    check_positive_int(batch_size, "batch_size")
    target_device = device if device is not None else model_device(forward_func)
    extra_args = _format_additional_forward_args(additional_forward_args)
    sliced = isinstance(inputs, (Tensor, tuple))
    total = -(-batch_length(inputs) // batch_size) if sliced else None  # type: ignore[arg-type]
    reduced: list[Tensor] = []
    start = 0
    with torch.no_grad(), eval_mode(forward_func):
        for batch in progress_bar(
            iterate_batches(inputs, batch_size, several_inputs=True),
            total=total,
            desc="layer activations",
            enabled=progress,
        ):
            size = batch_length(batch)
            batch_args = (
                _tuple_splice_range(extra_args, start, start + size)
                if extra_args is not None and sliced
                else extra_args
            )
            start += size
            _, layer_output = forward_with_layer(
                forward_func,
                _to_device(batch, target_device),
                layer,
                additional_forward_args=batch_args,
                attribute_to_layer_input=attribute_to_layer_input,
                device_ids=device_ids,
            )
            reduced.append(reduce_activations(layer_output, reduction))
    if not reduced:
        raise ValueError("`inputs` holds no samples")
    return torch.cat(reduced, dim=0)


def _to_device(inputs: ModelInputs, device: torch.device) -> ModelInputs:
    if isinstance(inputs, tuple):
        return tuple(t.to(device) for t in inputs)
    return inputs.to(device)


#: Inputs per forward pass of :func:`predicted_classes`.
_PREDICTION_BATCH_SIZE = 256


def predicted_classes(
    classifier: Callable, inputs: Tensor, batch_size: int = _PREDICTION_BATCH_SIZE
) -> Tensor:
    r"""The argmax class of ``classifier`` for each of ``inputs``, in batches of ``batch_size``
    moved to the classifier's device, in eval mode; the classes on the CPU."""
    device = model_device(classifier)
    with torch.no_grad(), eval_mode(classifier):
        return torch.cat(
            [
                classifier(batch.to(device)).argmax(dim=1).cpu()
                for batch in iterate_batches(inputs, batch_size)
            ]
        )
