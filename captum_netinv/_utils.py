"""Argument checks and small model helpers shared by both attribution classes.

Each check raises a ``ValueError`` / ``TypeError`` that names the argument, the value received
and what was expected; :func:`eval_mode` leaves every module a model holds as it found it.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import captum
import torch
from torch import nn

__all__ = [
    "MAX_SEED",
    "caller_stacklevel",
    "channels_last",
    "check_forward_func",
    "check_int",
    "check_layer_in_model",
    "check_model_inputs",
    "check_positive_int",
    "check_positive_number",
    "check_seed",
    "eval_mode",
    "excerpt",
    "model_device",
    "modules_of",
    "single_module",
    "timed_warning",
]

#: Seeds are drawn from ``[0, MAX_SEED)``: what ``torch.Generator.manual_seed`` accepts.
MAX_SEED = 2**63

#: How deep :func:`modules_of` looks through wrappers (partial of a closure of an object ...).
_SEARCH_DEPTH = 4
#: How many items of a list, tuple or dict it looks at (a wrapper may hold a whole data set).
_SEARCH_WIDTH = 64


def excerpt(value: object, limit: int = 80) -> str:
    r"""``repr(value)`` cut to ``limit`` characters, so errors never echo a huge input."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def modules_of(forward_func: object) -> list[nn.Module]:
    r"""
    The ``nn.Module`` s that ``forward_func`` runs: itself if it is one, else the modules a
    callable holds (a bound method's ``__self__``, a ``functools.partial``'s function and
    arguments, a function's closure cells and the globals it names, a callable object's
    attributes), searched a few levels deep. Submodules of a found module are not listed.

    Args:
        forward_func (object): The model or the callable running it.

    Returns:
        *list* of the top-level **modules** found, without repeats; empty when none is found.
    """
    found: dict[int, nn.Module] = {}
    pending: list[tuple[object, int]] = [(forward_func, 0)]
    seen: set[int] = set()
    while pending:
        value, depth = pending.pop(0)
        if id(value) in seen or depth > _SEARCH_DEPTH:
            continue
        seen.add(id(value))
        if isinstance(value, nn.Module):
            found.setdefault(id(value), value)
            continue
        pending.extend((child, depth + 1) for child in _held_values(value))
    modules = list(found.values())
    inner = {id(sub) for module in modules for sub in list(module.modules())[1:]}
    return [module for module in modules if id(module) not in inner]


def single_module(forward_func: object) -> nn.Module:
    r"""The one module ``forward_func`` runs, to which layer names refer; else an empty one."""
    modules = modules_of(forward_func)
    return modules[0] if len(modules) == 1 else nn.Module()


def _held_values(value: object) -> list[object]:
    """The values a callable holds and may run: see :func:`modules_of`."""
    if isinstance(value, functools.partial):
        return [value.func, *value.args, *value.keywords.values()]
    if isinstance(value, (list, tuple)):
        return list(value[:_SEARCH_WIDTH])
    if isinstance(value, dict):
        return list(value.values())[:_SEARCH_WIDTH]
    bound_self = getattr(value, "__self__", None)
    function: Any = getattr(value, "__func__", value)
    code = getattr(function, "__code__", None)
    if code is not None:
        cells = [cell.cell_contents for cell in function.__closure__ or () if _filled(cell)]
        named = getattr(function, "__globals__", {})
        return [bound_self, *cells, *(named[n] for n in code.co_names if n in named)]
    if callable(value) and not isinstance(value, type) and hasattr(value, "__dict__"):
        return [*vars(value).values(), type(value).__call__]
    return [] if bound_self is None else [bound_self]


def _filled(cell: object) -> bool:
    try:
        cell.cell_contents  # type: ignore[attr-defined]  # noqa: B018
    except ValueError:  # an empty cell
        return False
    return True


def check_forward_func(forward_func: object, name: str = "forward_func") -> None:
    r"""
    Raises a ``TypeError`` unless ``forward_func`` is callable; warns when it is a callable in
    which no ``nn.Module`` can be found, since its modes and buffers then cannot be protected.
    """
    if not callable(forward_func):
        raise TypeError(
            f"`{name}` must be the model (an nn.Module) or a callable running it, got "
            f"{type(forward_func).__name__}"
        )
    if not modules_of(forward_func):
        warnings.warn(
            f"`{name}` is a callable whose nn.Module could not be found, so its train/eval "
            "flags and BatchNorm buffers cannot be protected: pass the module itself (with "
            "`additional_forward_args` for extra inputs), a bound method, or a "
            "functools.partial / closure holding the module",
            stacklevel=3,
        )


def check_layer_in_model(forward_func: Callable, layer: nn.Module, name: str = "layer") -> None:
    r"""
    Raises a ``TypeError`` if ``layer`` is not a module, and a ``ValueError`` if none of the
    modules ``forward_func`` runs (see :func:`modules_of`) contains it.
    """
    if not isinstance(layer, nn.Module):
        raise TypeError(f"`{name}` must be a torch.nn.Module, got {type(layer).__name__}")
    models = modules_of(forward_func)
    if models and not any(module is layer for model in models for module in model.modules()):
        raise ValueError(
            f"`{name}` ({layer.__class__.__name__}) is not a submodule of the model "
            f"({models[0].__class__.__name__}); pass one of model.modules()"
        )


def model_device(forward_func: Callable) -> torch.device:
    r"""The device of the first parameter or buffer of the model; CPU when it has none."""
    for module in modules_of(forward_func):
        for tensor in (*module.parameters(), *module.buffers()):
            return tensor.device
    return torch.device("cpu")


def check_int(value: object, name: str, expected: str = "an int") -> int:
    r"""``value`` as an ``int`` if it is an integer (numpy's too, not a bool), else a
    ``TypeError`` saying that ``name`` must be ``expected``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be {expected}, got {excerpt(value)}")
    return int(value)


def check_positive_int(value: object, name: str) -> int:
    r"""``value`` as an ``int`` if it is an integer (numpy's too) >= 1, else raises naming it."""
    number = check_int(value, name, "an int >= 1")
    if number < 1:
        raise ValueError(f"`{name}` must be >= 1, got {value}")
    return number


def check_positive_number(value: object, name: str) -> float:
    r"""
    ``value`` as a ``float`` if it is a finite real number (numpy's too) > 0, else raises naming
    it: a ``TypeError`` for another type (a bool, a string, a tensor), a ``ValueError`` for a
    number <= 0, NaN or infinite.
    """
    if isinstance(value, (bool, torch.Tensor)) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number > 0 (an int or a float), got {excerpt(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        number = math.inf
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"`{name}` must be a finite number > 0, got {excerpt(value)}")
    return number


def check_seed(seed: object, name: str = "seed") -> int | None:
    r"""``seed`` as an ``int`` in ``[0, 2**63)``, or None; else raises naming ``name``."""
    if seed is None:
        return None
    number = check_int(seed, name, "an int in [0, 2**63) or None")
    if not 0 <= number < MAX_SEED:
        raise ValueError(f"`{name}` must be in [0, 2**63), got {excerpt(seed)}")
    return number


@contextmanager
def channels_last(module: nn.Module, enabled: bool = True) -> Iterator[None]:
    r"""
    Inside, ``module``'s 4-d parameters and buffers are in channels-last memory format (where
    ``enabled``); on exit each one that was not is put back in the contiguous format. Values
    and tensor identities (an optimizer's references) are unchanged; only strides change, so
    that whatever follows (a sample's dropout masks, drawn in memory order) is as before.
    """
    tensors = [*module.parameters(), *module.buffers()] if enabled else []
    changed = [
        tensor
        for tensor in tensors
        if tensor.dim() == 4 and not tensor.is_contiguous(memory_format=torch.channels_last)
    ]
    for tensor in changed:
        tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    try:
        yield
    finally:
        for tensor in changed:
            tensor.data = tensor.data.contiguous()


@contextmanager
def eval_mode(
    model: object, keep_training: Callable[[nn.Module], bool] | None = None
) -> Iterator[None]:
    r"""
    Puts every module ``model`` runs (see :func:`modules_of`) in eval mode for the block
    (modules for which ``keep_training`` is true stay in training mode), and afterwards restores
    each module's own flag and every buffer's values exactly, whatever happens: BatchNorm
    running statistics and counters are never changed by the block.

    Args:
        model (object): The module, or a callable running modules.
        keep_training (Callable, optional): Predicate of the submodules left in training
                    mode, e.g. dropout layers that should stay active. Default: None

    Examples::

        >>> with eval_mode(model):
        ...     logits = model(images)
    """
    modules = [sub for module in modules_of(model) for sub in module.modules()]
    flags = [(module, module.training) for module in modules]
    buffers = [
        (module, key, buffer, buffer.detach().clone())
        for module in modules
        for key, buffer in module._buffers.items()
        if buffer is not None
    ]
    for module in modules:
        module.training = keep_training is not None and keep_training(module)
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training
        with torch.no_grad():
            for module, key, buffer, saved in buffers:
                module._buffers[key] = buffer
                buffer.copy_(saved)


def check_model_inputs(inputs: object, name: str = "inputs") -> torch.Tensor:
    r"""
    ``inputs`` if they are one non-empty ``(N, C, H, W)`` floating-point tensor of model-space
    inputs, as both inversions take them (the ones they generate are one such tensor); else a
    ``TypeError`` (a tuple of model inputs, another type, an integer dtype such as uint8
    images) or a ``ValueError`` (another number of dimensions, no rows) naming ``name``.

    Args:
        inputs (object): The argument to check.
        name (str, optional): Its name in the messages. Default: ``"inputs"``

    Returns:
        *Tensor*, ``inputs`` unchanged.
    """
    if isinstance(inputs, (tuple, list)) and any(isinstance(v, torch.Tensor) for v in inputs):
        raise TypeError(
            f"`{name}` must be one tensor (N, C, H, W), got a {type(inputs).__name__} of "
            f"{len(inputs)} values: an inversion generates one input tensor; pass the model's "
            "other inputs as `additional_forward_args` (the same for every sample)"
        )
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(
            f"`{name}` must be a tensor (N, C, H, W) of the model's inputs, got "
            f"{type(inputs).__name__} {excerpt(inputs)}"
        )
    if inputs.dim() != 4 or len(inputs) == 0:
        raise ValueError(
            f"`{name}` must be an example batch (N, C, H, W) of the model's inputs with N >= 1, "
            f"got shape {tuple(inputs.shape)}"
        )
    if not inputs.dtype.is_floating_point:
        raise TypeError(
            f"`{name}` must be floating-point model-space inputs, got dtype {inputs.dtype}: "
            f"convert images first, e.g. `images.float() / 255` (then normalize them as the "
            "model expects)"
        )
    return inputs


#: The folders of the packages whose frames :func:`caller_stacklevel` skips: this package and
#: Captum (whose ``log_usage`` wraps the public methods).
_LIBRARY_FOLDERS = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep for path in (__file__, captum.__file__ or "")
)


def caller_stacklevel() -> int:
    r"""
    The ``stacklevel`` that makes a warning raised by the function calling this one point at
    the user's line: the first frame outside ``captum_netinv`` and ``captum``, however many
    wrappers (``log_usage``, first-call fits, callbacks) lie between.

    Returns:
        *int*, for ``warnings.warn(..., stacklevel=caller_stacklevel())``.
    """
    frame = sys._getframe(1)  # the function that calls warnings.warn: stacklevel 1
    level = 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        _LIBRARY_FOLDERS
    ):
        frame = frame.f_back
        level += 1
    return level


def timed_warning(
    message: Callable[[str], str], steps: int, timed_steps: int = 3
) -> Callable[[int, Any], None]:
    r"""
    A fit callback that times steps ``2 .. timed_steps + 1`` (the first one warms up; a fit of
    one step times it from this call), then warns once, pointing at the user's line
    (:func:`caller_stacklevel`), with ``message("about N s")``: the time the ``steps`` of the
    whole fit take at that pace. It never stops the fit, so the fit ends as one without it.

    Args:
        message (Callable[[str], str]): The warning's text, given the estimate.
        steps (int): The fit's number of steps.
        timed_steps (int, optional): Steps timed. Default: 3

    Returns:
        *Callable* ``(step, values) -> None``.
    """
    created = time.perf_counter()
    first_step_done: list[float] = []
    warn_at = min(steps, timed_steps + 1)

    def callback(step: int, values: Any) -> None:
        now = time.perf_counter()
        if step == 1:
            first_step_done.append(now)
        if step != warn_at or not first_step_done:
            return
        per_step = (now - first_step_done[0]) / (step - 1) if step > 1 else now - created
        seconds = per_step * steps
        estimate = f"about {seconds:.0f} s" if seconds >= 10 else f"about {seconds:.1f} s"
        warnings.warn(message(estimate), stacklevel=caller_stacklevel())

    return callback
