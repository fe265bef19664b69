"""The fit's opt-in ``torch.compile``: the generator and the loss terms compiled, eager as fallback.

Both have static shapes during a fit (the batch share is fixed; centering resizes its crop back
to the full size), so each compiles once; on CUDA ``"reduce-overhead"`` replays them as CUDA graphs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple, cast

import torch
from torch import Tensor, nn

from captum_netinv.inversion.losses import inversion_loss_terms

__all__ = [
    "COMPILE_MODES",
    "StepParts",
    "check_compile",
    "compiled_parts",
    "eager_parts",
    "restorable_step",
    "warn_compile_failed",
]

#: The ``mode`` values of ``torch.compile`` a fit accepts (``compile=True`` is ``"default"``).
COMPILE_MODES: tuple[str, ...] = (
    "default",
    "reduce-overhead",
    "max-autotune",
    "max-autotune-no-cudagraphs",
)


class StepParts(NamedTuple):
    r"""
    What a fit step calls: eager, or compiled by :func:`compiled_parts`.

    Attributes:
        generator (nn.Module): Called as ``generator(z, condition)``.
        loss_terms (Callable): Called as
                    :func:`~captum_netinv.inversion.losses.inversion_loss_terms`.
        compiled (bool): Whether these are compiled.
    """

    generator: nn.Module
    loss_terms: Callable[..., dict[str, Tensor]]
    compiled: bool


def check_compile(compile: object) -> str | None:  # noqa: A002 (the fit argument's name)
    r"""
    The ``torch.compile`` mode ``compile`` asks for: None for ``False``/``None`` (eager),
    ``"default"`` for ``True``, else one of :data:`COMPILE_MODES`; anything else raises.
    """
    if compile is None or compile is False:
        return None
    if compile is True:
        return "default"
    if not isinstance(compile, str):
        raise TypeError(
            f"`compile` must be a bool or one of {COMPILE_MODES}, got {type(compile).__name__}"
        )
    if compile not in COMPILE_MODES:
        raise ValueError(f"`compile` must be a bool or one of {COMPILE_MODES}, got {compile!r}")
    return compile


def eager_parts(generator: nn.Module) -> StepParts:
    r"""``generator`` and :func:`~captum_netinv.inversion.losses.inversion_loss_terms` as they
    are."""
    return StepParts(generator=generator, loss_terms=inversion_loss_terms, compiled=False)


def compiled_parts(generator: nn.Module, mode: str) -> StepParts:
    r"""
    ``generator`` (sharing its parameters) and the loss terms compiled with ``torch.compile``
    in ``mode``. Compilation happens at the first call; :func:`restorable_step` lets a fit
    fall back to :func:`eager_parts` when it fails. The frozen model is left as given: pass
    ``torch.compile(model)`` to compile it too.
    """
    return StepParts(
        generator=cast(nn.Module, torch.compile(generator, mode=mode)),
        loss_terms=torch.compile(inversion_loss_terms, mode=mode),
        compiled=True,
    )


@contextmanager
def restorable_step(generator: nn.Module, device: torch.device) -> Iterator[Callable[[], None]]:
    r"""
    Yields a function that puts back the global random state (of the CPU and of ``device``)
    and ``generator``'s buffers (batch-norm running statistics) as they were on entry: a
    step that failed in compilation is run again eagerly from the same state, so that the
    fit equals an eager one.
    """
    cpu_state = torch.get_rng_state()
    device_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    buffers = {name: buffer.detach().clone() for name, buffer in generator.named_buffers()}

    def restore() -> None:
        torch.set_rng_state(cpu_state)
        if device_state is not None:
            torch.cuda.set_rng_state(device_state, device)
        with torch.no_grad():
            for name, buffer in generator.named_buffers():
                buffer.copy_(buffers[name])

    yield restore


def warn_compile_failed(error: BaseException, mode: str, stacklevel: int) -> None:
    r"""The warning of a fit whose compilation in ``mode`` failed with ``error``."""
    first_line = (str(error).strip().splitlines() or [""])[0][:300]
    warnings.warn(
        f"`compile={mode!r}` failed at the fit's first step ({type(error).__name__}: "
        f"{first_line}); the fit goes on without compilation",
        stacklevel=stacklevel,
    )
