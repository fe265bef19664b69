"""Saved inversions and fit checkpoints: format, model fingerprint, atomic write, safe read, resume.

A saved inversion holds the generator, settings, history and the fingerprint of the model it was
fitted on; a fit checkpoint adds the optimizer, the random states and the step, to resume exactly.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from captum_netinv._utils import modules_of
from captum_netinv.inversion.settings import FORMAT1_VALUES

__all__ = [
    "CHECKPOINT_FORMAT",
    "FitCheckpoint",
    "check_fingerprint",
    "check_resumable",
    "model_fingerprint",
    "read_checkpoint",
    "read_saved_inversion",
    "weights_hash",
    "write_atomically",
]

CHECKPOINT_FORMAT = "captum_netinv.NetworkInversion/1"


#: Optimizer settings that choose an implementation, not the arithmetic: kept on resume.
_IMPLEMENTATION_FLAGS = ("fused", "foreach", "capturable", "differentiable")


#: Keys every saved inversion holds (a fit checkpoint adds :meth:`FitCheckpoint.to_dict`'s).
_REQUIRED_KEYS = ("fingerprint", "config", "generator", "history", "steps_trained")
#: Values read from each tensor for :func:`weights_hash`.
_SAMPLES_PER_TENSOR = 257


def model_fingerprint(
    model: object, input_shape: Sequence[int], num_classes: int
) -> dict[str, Any]:
    r"""
    What a checkpoint must match: input shape, class count, parameter names and shapes, and a
    hash of the weights (:func:`weights_hash`), of the modules ``model`` runs.
    """
    modules = modules_of(model)
    prefixes = [""] if len(modules) == 1 else [f"{index}." for index in range(len(modules))]
    named = [
        (prefix + name, parameter)
        for prefix, module in zip(prefixes, modules, strict=False)
        for name, parameter in module.named_parameters()
    ]
    return {
        "input_shape": list(input_shape),
        "num_classes": int(num_classes),
        "parameters": [[name, list(parameter.shape)] for name, parameter in named],
        "weights": weights_hash(modules),
    }


def weights_hash(modules: Sequence[torch.nn.Module]) -> str:
    r"""
    A cheap hash of the weights of ``modules``: SHA-1 of evenly strided samples (as float32
    bytes, so the device does not matter) of every parameter and floating-point buffer. Models
    trained separately differ in every tensor, so the samples tell them apart.
    """
    digest = hashlib.sha1(usedforsecurity=False)
    for module in modules:
        tensors = [*module.parameters(), *module.buffers()]
        for tensor in tensors:
            if not tensor.is_floating_point():
                continue
            flat = tensor.detach().reshape(-1)
            stride = max(1, flat.numel() // _SAMPLES_PER_TENSOR)
            samples = torch.cat([flat[::stride], flat[-1:]]).float().cpu()
            digest.update(samples.numpy().tobytes())
    return digest.hexdigest()


def check_fingerprint(stored: Mapping[str, Any], current: Mapping[str, Any], path: str) -> None:
    r"""
    Refuses a checkpoint written for another model, weights or input shape, saying what
    differs; a file written before weights were fingerprinted loads with a warning.
    """
    unchecked = "weights" not in stored
    checks = [
        ("input_shape", "input shape"),
        ("num_classes", "number of classes"),
        ("parameters", "model parameters (names and shapes)"),
        ("weights", "model weights (the model was trained further or differently)"),
    ]
    if unchecked:  # format-1 files of wrapped models stored no parameters either
        checks = checks[:3] if stored.get("parameters") else checks[:2]
    for key, what in checks:
        if stored.get(key) != current.get(key):
            detail = (
                f"{stored.get(key)} != {current.get(key)}"
                if key in ("input_shape", "num_classes")
                else "differ"
            )
            raise ValueError(
                f"checkpoint {path!r} was written for another model or shape: its {what} "
                f"{detail}; load it with the model it was trained on"
            )
    if unchecked:
        warnings.warn(
            f"checkpoint {path!r} was written before weights were fingerprinted: only the "
            "model's architecture could be checked; make sure it is the model it was fitted on",
            stacklevel=4,
        )


def write_atomically(state: Mapping[str, Any], path: str) -> None:
    r"""
    ``torch.save`` to a temporary file beside ``path``, then rename: a crash never leaves half a
    file, and a failure leaves no temporary file behind.
    """
    if os.path.isdir(path):
        raise ValueError(f"`path` {path!r} is a directory; give a file name to save to")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(dict(state), file)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def read_checkpoint(path: str, method: str = "NetworkInversion") -> dict[str, Any]:
    r"""
    A checkpoint written by an inversion, loaded with ``weights_only=True``; anything else
    (empty, truncated, foreign or damaged files) raises a ``ValueError`` naming ``path`` and
    ``method``, the class that reads it.
    """
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, not a {method} checkpoint file")
    not_ours = f"{path!r} is not a {method} checkpoint"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        ValueError,
        zipfile.BadZipFile,
        AttributeError,
        TypeError,
        KeyError,
        IndexError,
        OSError,
    ) as error:
        # torch's own message would advise weights_only=False: never for a file we cannot vouch for
        raise ValueError(
            f"{not_ours} (torch.load cannot read it: {type(error).__name__}); give a file "
            f"written by {method}.save() or fit(checkpoint_path=...)"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = type(state).__name__ if not isinstance(state, dict) else "a dict of other keys"
        raise ValueError(f"{not_ours}: it holds {found}, not format {CHECKPOINT_FORMAT!r}")
    missing = [key for key in _REQUIRED_KEYS if key not in state]
    if missing:
        raise ValueError(f"{not_ours}: it is damaged, the keys {missing} are missing")
    return state


def read_saved_inversion(
    path: str, model: object, generator_given: bool, method: str = "NetworkInversion"
) -> dict[str, Any]:
    r"""
    The ``method`` inversion saved at ``path``, once shown to be one (files without the key are
    NetworkInversion's), to fit ``model`` (:func:`check_fingerprint`) and to have a
    ``generator`` when it was fitted with a custom one; format-1 files get the settings added
    since (``jitter`` 0) filled in.
    """
    state = read_checkpoint(path, method)
    config = {"jitter": 0, **state["config"]}
    if (saved := config.get("method", "NetworkInversion")) != method:
        raise ValueError(f"{path!r} holds a {saved}, not a {method}: load it with {saved}.load()")
    fingerprint = state["fingerprint"]
    if config.get("custom_generator") and not generator_given:
        raise ValueError(
            f"{path!r} was fitted with a custom generator: pass a module of the same "
            "architecture as `generator`"
        )
    current = model_fingerprint(model, fingerprint["input_shape"], fingerprint["num_classes"])
    check_fingerprint(fingerprint, current, path)
    return {**state, "config": config}


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
        optimizer: torch.optim.Optimizer,
        rng: torch.Generator,
        device: torch.device,
        *,
        seed: int,
        batch_size: int,
        lr: float,
    ) -> FitCheckpoint:
        r"""The state now of a fit with ``optimizer``, ``rng`` and the global random streams
        (CUDA's too on a ``device`` of that type), after ``step`` steps of the given
        ``seed``, ``batch_size`` and ``lr``."""
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
        r"""Puts the optimizer and every random state back where the fit left them. The
        optimizer keeps its own implementation flags (``fused``, ``foreach``): a state saved
        by another implementation (a CPU checkpoint resumed on a GPU) carries the other's."""
        flags = [
            {key: group[key] for key in _IMPLEMENTATION_FLAGS if key in group}
            for group in optimizer.param_groups
        ]
        optimizer.load_state_dict(self.optimizer)
        for group, own in zip(optimizer.param_groups, flags, strict=True):
            group.update(own)
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
    method: str = "NetworkInversion",
) -> FitCheckpoint:
    r"""
    The fit part of the checkpoint ``state`` read from ``path``, once it is shown to belong to
    this model (``fingerprint``), these settings (``config``) and these fit ``arguments``
    (``seed``, ``batch_size``, ``lr``; None matches anything); else raises naming the difference
    and ``method``, the class that resumes. The preset's name is a label (every setting is
    stored explicitly), so it may differ.
    """
    check_fingerprint(state["fingerprint"], fingerprint, path)
    if "step" not in state:
        raise ValueError(
            f"{path!r} holds a saved inversion (from save()), not a fit checkpoint: load it "
            f"with {method}.load(), or give fit() another checkpoint_path"
        )
    # files from before a setting existed ran with its old behaviour (FORMAT1_VALUES)
    stored = {**FORMAT1_VALUES, **state["config"]}
    differing = [key for key in config if key != "preset" and stored.get(key) != config[key]]
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
