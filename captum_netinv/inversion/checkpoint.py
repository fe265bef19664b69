"""Saved inversions and fit checkpoints: format, model fingerprint, atomic write, safe read, resume.

A saved inversion holds the generator, settings, history and the fingerprint of the model it was
fitted on; a fit checkpoint adds the optimizer, the random states and the step, to resume exactly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "CHECKPOINT_FORMAT",
    "FitCheckpoint",
    "check_fingerprint",
    "check_resumable",
    "model_fingerprint",
    "read_checkpoint",
    "write_atomically",
]

CHECKPOINT_FORMAT = "captum_netinv.NetworkInversion/1"


def model_fingerprint(
    model: object, input_shape: Sequence[int], num_classes: int
) -> dict[str, Any]:
    r"""What a checkpoint must match: input shape, class count, parameter names and shapes."""
    parameters = (
        [[name, list(p.shape)] for name, p in model.named_parameters()]
        if isinstance(model, nn.Module)
        else []
    )
    return {
        "input_shape": list(input_shape),
        "num_classes": int(num_classes),
        "parameters": parameters,
    }


def check_fingerprint(stored: Mapping[str, Any], current: Mapping[str, Any], path: str) -> None:
    r"""Refuses a checkpoint written for another model or input shape, saying what differs."""
    for key, what in (
        ("input_shape", "input shape"),
        ("num_classes", "number of classes"),
        ("parameters", "model parameters (names and shapes)"),
    ):
        if stored.get(key) != current.get(key):
            detail = f"{stored.get(key)} != {current.get(key)}" if key != "parameters" else "differ"
            raise ValueError(
                f"checkpoint {path!r} was written for another model or shape: its {what} "
                f"{detail}; load it with the model it was trained on"
            )


def write_atomically(state: Mapping[str, Any], path: str) -> None:
    r"""``torch.save`` to a temporary file then rename, so a crash never leaves half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = f"{path}.tmp"
    torch.save(dict(state), temporary)
    os.replace(temporary, path)


def read_checkpoint(path: str) -> dict[str, Any]:
    r"""A checkpoint written by :class:`NetworkInversion`, loaded with ``weights_only=True``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path!r} is not a NetworkInversion checkpoint")
    return state


@dataclass
class FitCheckpoint:
    r"""
    What a fit needs to resume besides the inversion's own state: the arguments it ran with,
    the optimizer, and the random states (global CPU, CUDA, and the fit's ``rng``).
    """

    step: int
    seed: int
    batch_size: int
    lr: float
    optimizer: dict[str, Any]
    torch_rng: torch.Tensor
    cuda_rng: torch.Tensor | None
    rng: torch.Tensor

    @classmethod
    def capture(
        cls,
        step: int,
        seed: int,
        batch_size: int,
        lr: float,
        optimizer: torch.optim.Optimizer,
        rng: torch.Generator,
        device: torch.device,
    ) -> FitCheckpoint:
        r"""The fit's state now."""
        return cls(
            step=step,
            seed=seed,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer.state_dict(),
            torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            rng=rng.get_state(),
        )

    def to_dict(self) -> dict[str, Any]:
        r"""The keys a fit checkpoint adds to a saved inversion (names kept from format 1)."""
        return {
            "step": self.step,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "optimizer": self.optimizer,
            "torch_rng": self.torch_rng,
            "cuda_rng": self.cuda_rng,
            "sampler_rng": self.rng,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> FitCheckpoint:
        r"""The fit part of a checkpoint file's ``state``."""
        return cls(
            step=int(state["step"]),
            seed=int(state["seed"]),
            batch_size=int(state["batch_size"]),
            lr=float(state["lr"]),
            optimizer=state["optimizer"],
            torch_rng=state["torch_rng"],
            cuda_rng=state.get("cuda_rng"),
            rng=state["sampler_rng"],
        )

    def restore(
        self, optimizer: torch.optim.Optimizer, rng: torch.Generator, device: torch.device
    ) -> None:
        r"""Puts the optimizer and every random state back where the fit left them."""
        optimizer.load_state_dict(self.optimizer)
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None and device.type == "cuda":
            torch.cuda.set_rng_state(self.cuda_rng, device)
        rng.set_state(self.rng)


def check_resumable(
    state: Mapping[str, Any],
    path: str,
    fingerprint: Mapping[str, Any],
    config: Mapping[str, Any],
    arguments: Mapping[str, Any],
) -> FitCheckpoint:
    r"""
    The fit part of the checkpoint ``state`` read from ``path``, once it is shown to belong to
    this model (``fingerprint``), these settings (``config``) and these fit ``arguments``
    (``seed``, ``batch_size``, ``lr``; None matches anything); else raises naming the difference.
    """
    check_fingerprint(state["fingerprint"], fingerprint, path)
    if "step" not in state:
        raise ValueError(
            f"{path!r} holds a saved inversion (from save()), not a fit checkpoint: load it "
            "with NetworkInversion.load(), or give fit() another checkpoint_path"
        )
    stored = state["config"]
    differing = [key for key in config if stored.get(key) != config[key]]
    if differing:
        raise ValueError(
            f"checkpoint {path!r} was written with other settings ({differing}); "
            "resume with the settings it was trained with, or use another path"
        )
    fit = FitCheckpoint.from_dict(state)
    for name, expected in (("seed", fit.seed), ("batch_size", fit.batch_size), ("lr", fit.lr)):
        value = arguments.get(name)
        if value is not None and value != expected:
            raise ValueError(
                f"`{name}` is {value} but the checkpoint {path!r} was written by a fit with "
                f"{name}={expected}; resume with the same value"
            )
    return fit
