"""Argument checks and small model helpers shared by both attribution classes.

Each check raises a ``ValueError`` / ``TypeError`` that names the argument, the value received
and what was expected, so that bad input never surfaces as a deep stack trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = [
    "check_layer_in_model",
    "check_positive_int",
    "eval_mode",
    "model_device",
]


def check_layer_in_model(forward_func: Callable, layer: nn.Module, name: str = "layer") -> None:
    r"""
    Raises a ``TypeError`` if ``layer`` is not a module, and a ``ValueError`` if
    ``forward_func`` is a module that does not contain it.
    """
    if not isinstance(layer, nn.Module):
        raise TypeError(f"`{name}` must be a torch.nn.Module, got {type(layer).__name__}")
    if isinstance(forward_func, nn.Module) and not any(
        module is layer for module in forward_func.modules()
    ):
        raise ValueError(
            f"`{name}` ({layer.__class__.__name__}) is not a submodule of the model "
            f"({forward_func.__class__.__name__}); pass one of model.modules()"
        )


def model_device(forward_func: Callable) -> torch.device:
    r"""The device of the first parameter or buffer of ``forward_func``; CPU when it has none."""
    if isinstance(forward_func, nn.Module):
        for parameter in forward_func.parameters():
            return parameter.device
        for buffer in forward_func.buffers():
            return buffer.device
    return torch.device("cpu")


def check_positive_int(value: object, name: str) -> int:
    r"""Returns ``value`` if it is an ``int`` >= 1, else raises naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"`{name}` must be >= 1, got {value}")
    return value


@contextmanager
def eval_mode(
    model: object, keep_training: Callable[[nn.Module], bool] | None = None
) -> Iterator[None]:
    r"""
    Puts a module ``model`` in eval mode for the block (modules for which ``keep_training``
    is true stay in training mode) and restores every module's own flag afterwards, whatever
    happens; anything that is not a module is left alone.

    Args:
        model (object): The module, or any callable (then nothing is switched).
        keep_training (Callable, optional): Predicate of the submodules left in training
                    mode, e.g. dropout layers that should stay active. Default: None

    Examples::

        >>> with eval_mode(model):
        ...     logits = model(images)
    """
    if not isinstance(model, nn.Module):
        yield
        return
    previous = {module: module.training for module in model.modules()}
    model.eval()
    if keep_training is not None:
        for module in model.modules():
            if keep_training(module):
                module.train()
    try:
        yield
    finally:
        for module, training in previous.items():
            module.training = training
