"""Adam that steps without reading a tensor to the host: torch's default and fused Adam read
every parameter's step counter each step on the CPU; this one keeps the counts in Python.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

__all__ = ["HostFreeAdam"]

#: Flags of ``torch.optim.Adam`` whose update :class:`HostFreeAdam` does not implement.
_UNSUPPORTED_FLAGS = ("amsgrad", "maximize", "decoupled_weight_decay")


class _Batch:
    r"""The tensors of one parameter group on one device and dtype, stepped together."""

    def __init__(self) -> None:
        self.params: list[Tensor] = []
        self.grads: list[Tensor] = []
        self.exp_avgs: list[Tensor] = []
        self.exp_avg_sqs: list[Tensor] = []
        self.steps: list[Tensor] = []
        self.counts: list[int] = []


def _check_hyperparameters(
    *, lr: float, betas: tuple[float, float], eps: float, weight_decay: float
) -> None:
    r"""Raises a ValueError naming the first hyperparameter out of its range."""
    if not lr >= 0.0:
        raise ValueError(f"`lr` must be >= 0, got {lr}")
    for index, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"`betas[{index}]` must be in [0, 1), got {beta}")
    if not eps >= 0.0:
        raise ValueError(f"`eps` must be >= 0, got {eps}")
    if not weight_decay >= 0.0:
        raise ValueError(f"`weight_decay` must be >= 0, got {weight_decay}")


def _real(tensor: Tensor) -> Tensor:
    r"""``tensor`` as a real view (a complex tensor as pairs), as torch's Adam steps it."""
    return torch.view_as_real(tensor) if torch.is_complex(tensor) else tensor


class HostFreeAdam(torch.optim.Optimizer):
    r"""
    Adam (Kingma & Ba, 2015) computed exactly as ``torch.optim.Adam`` with its default flags
    (L2 ``weight_decay`` added to the gradient; no AMSGrad, no maximize), with no host read
    of a tensor while it steps.

    torch's default and fused Adam read each parameter's step counter from its tensor every
    step on the CPU (``aten::_local_scalar_dense``). This optimizer also keeps the counter
    as a float32 0-dim tensor per parameter (updated in place, never read), and beside it the
    same count as a Python int, from which the bias corrections are computed on the host;
    each parameter group is updated with ``torch._foreach_*`` operations per device and dtype.

    The state per parameter is torch Adam's: ``"step"``, ``"exp_avg"`` and ``"exp_avg_sq"``,
    so a :meth:`state_dict` of either optimizer loads into the other. Loading one reads the
    step counters once, to rebuild the Python counts. Sparse gradients are not supported.

    Args:
        params (iterable): The parameters to optimize, or dicts of parameter groups.
        lr (float, optional): The learning rate, >= 0. Default: 1e-3
        betas (tuple[float, float], optional): The decay rates of the running averages of the
                    gradient and its square, each in [0, 1). Default: (0.9, 0.999)
        eps (float, optional): Added to the denominator, >= 0. Default: 1e-8
        weight_decay (float, optional): L2 penalty, added to the gradient as
                    ``weight_decay * param``, >= 0. Default: 0.0

    Examples::

        >>> model = torch.nn.Linear(4, 2)
        >>> optimizer = HostFreeAdam(model.parameters(), lr=1e-2)
        >>> model(torch.randn(8, 4)).square().mean().backward()
        >>> optimizer.step()
        >>> torch.optim.Adam(model.parameters()).load_state_dict(optimizer.state_dict())
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        _check_hyperparameters(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        self._counts: dict[Tensor, int] = {}
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        r"""
        Loads a state of this optimizer or of ``torch.optim.Adam`` (with AMSGrad, maximize and
        decoupled weight decay off), then reads its step counters to the host once.

        Args:
            state_dict (dict): A :meth:`state_dict` of either optimizer.
        """
        for group in state_dict["param_groups"]:
            flags = [flag for flag in _UNSUPPORTED_FLAGS if group.get(flag, False)]
            if flags:
                raise ValueError(f"HostFreeAdam does not implement Adam with {flags} on")
            _check_hyperparameters(
                lr=group["lr"],
                betas=group["betas"],
                eps=group["eps"],
                weight_decay=group["weight_decay"],
            )
        super().load_state_dict(state_dict)

    def __setstate__(self, state: dict[str, Any]) -> None:
        r"""Takes a state (unpickling, :meth:`load_state_dict`) and rebuilds the Python step
        counts from its step tensors, all read to the host at once."""
        super().__setstate__(state)
        stepped = [
            param
            for group in self.param_groups
            for param in group["params"]
            if "step" in self.state.get(param, {})
        ]
        for param in stepped:
            step = self.state[param]["step"]
            if not torch.is_tensor(step):  # the state of an old torch: a number
                self.state[param]["step"] = torch.tensor(float(step), dtype=torch.float32)
        steps = [self.state[p]["step"].detach().to("cpu", torch.float64) for p in stepped]
        counts = torch.stack(steps).tolist() if steps else []
        self._counts = {param: int(count) for param, count in zip(stepped, counts, strict=True)}

    def _count(self, param: Tensor) -> int:
        r"""The steps taken so far of ``param``, from the Python count (read from the step
        tensor only where that count is missing: a state set by hand)."""
        count = self._counts.get(param)
        return int(self.state[param]["step"]) if count is None else count

    def _batches(self, group: dict[str, Any]) -> list[_Batch]:
        r"""The parameters of ``group`` with a gradient, their state (made on their first
        step) and step counts after this step, in batches of one device and dtype."""
        batches: dict[tuple[torch.device, torch.dtype], _Batch] = {}
        for param in group["params"]:
            if param.grad is None:
                continue
            if param.grad.is_sparse:
                raise RuntimeError("HostFreeAdam does not support sparse gradients")
            state = self.state[param]
            if not state:
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                self._counts[param] = 0
            count = self._count(param) + 1
            self._counts[param] = count
            batch = batches.setdefault((param.device, param.dtype), _Batch())
            batch.params.append(_real(param))
            batch.grads.append(_real(param.grad))
            batch.exp_avgs.append(_real(state["exp_avg"]))
            batch.exp_avg_sqs.append(_real(state["exp_avg_sq"]))
            batch.steps.append(state["step"])
            batch.counts.append(count)
        return list(batches.values())

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        r"""
        Takes one Adam step of every parameter with a gradient.

        Args:
            closure (Callable, optional): Re-evaluates the model and returns the loss (run
                        with gradients enabled). Default: None

        Returns:
            *float* or *None*: The closure's loss, None without a closure.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for batch in self._batches(group):
                grads = batch.grads
                torch._foreach_add_(batch.steps, 1.0)
                if group["weight_decay"] != 0:
                    grads = list(
                        torch._foreach_add(grads, batch.params, alpha=group["weight_decay"])
                    )
                torch._foreach_lerp_(batch.exp_avgs, grads, 1 - beta1)
                torch._foreach_mul_(batch.exp_avg_sqs, beta2)
                torch._foreach_addcmul_(batch.exp_avg_sqs, grads, grads, 1 - beta2)
                # the bias corrections, on the host from the Python counts (torch reads them)
                step_sizes = [-(group["lr"] / (1 - beta1**count)) for count in batch.counts]
                corrections = [(1 - beta2**count) ** 0.5 for count in batch.counts]
                denominators = torch._foreach_sqrt(batch.exp_avg_sqs)
                torch._foreach_div_(denominators, corrections)
                torch._foreach_add_(denominators, group["eps"])
                torch._foreach_addcdiv_(batch.params, batch.exp_avgs, denominators, step_sizes)
        return loss
