"""The report's model: a TorchScript file, a ``torch.export`` program or a factory with weights.

Each loader turns what the command line names into an ``nn.Module`` whose layers can be hooked,
and every failure into a :class:`ReportInputError` that names the argument.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from captum_netinv._utils import model_device

__all__ = [
    "OUTPUT_LAYER",
    "ReportInputError",
    "check_model_on_inputs",
    "imported_object",
    "load_model",
    "resolve_device",
    "resolve_layers",
]

#: The layer name that always means the model's output (its logits), for any kind of model.
OUTPUT_LAYER = "output"
_EXPORT_SUFFIX = ".pt2"


class ReportInputError(ValueError):
    r"""
    A command-line input of the report is wrong; the message starts with the argument's flag
    (``--model: ...``) so that the command line can show it as one line.
    """


class _ScriptedModel(nn.Module):
    r"""
    A TorchScript module in a Python module: the scripted code cannot be hooked, the wrapper
    can, so its own output (the logits) can still be labeled and inverted.
    """

    def __init__(self, scripted: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.scripted = scripted

    def forward(self, inputs: Tensor) -> Tensor:
        return self.scripted(inputs)


def imported_object(spec: str, argument: str) -> object:
    r"""
    The object named by ``spec`` (``package.module:name``), imported.

    Args:
        spec (str): ``module:attribute``; the module must be importable (on ``sys.path``).
        argument (str): The flag named in the error, e.g. ``"--model"``.

    Returns:
        The attribute of the module.
    """
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ReportInputError(f"{argument}: expected `package.module:name`, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ReportInputError(f"{argument}: cannot import {module_name!r} ({error})") from error
    if not hasattr(module, name):
        raise ReportInputError(f"{argument}: module {module_name!r} has no attribute {name!r}")
    return getattr(module, name)


def _is_factory(spec: str) -> bool:
    return ":" in spec and not Path(spec).exists()


def _existing_file(path: str, argument: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise ReportInputError(f"{argument}: no such file: {path!r}")
    return file


def _state_dict(path: str) -> dict[str, Tensor]:
    try:
        state = torch.load(_existing_file(path, "--weights"), map_location="cpu", weights_only=True)
    except ReportInputError:
        raise
    except Exception as error:  # any unreadable file: torch raises several kinds
        raise ReportInputError(
            f"--weights: cannot read {path!r} as a state dict ({error})"
        ) from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ReportInputError(f"--weights: {path!r} holds a {type(state).__name__}, not a dict")
    return state


def _factory_model(spec: str, weights: str | None) -> nn.Module:
    factory = imported_object(spec, "--model")
    if not callable(factory):
        raise ReportInputError(f"--model: {spec!r} is not callable")
    model = factory()
    if not isinstance(model, nn.Module):
        raise ReportInputError(
            f"--model: {spec!r} returned a {type(model).__name__}, expected an nn.Module"
        )
    if weights is not None:
        try:
            model.load_state_dict(_state_dict(weights))
        except RuntimeError as error:
            raise ReportInputError(
                f"--weights: do not fit the model of {spec!r}: {error}"
            ) from error
    return model


def _file_model(path: str, weights: str | None) -> nn.Module:
    file = _existing_file(path, "--model")
    if weights is not None:
        raise ReportInputError("--weights: only for a `module:factory` --model")
    try:
        if file.suffix == _EXPORT_SUFFIX:
            # unflatten keeps the module hierarchy, so that layers can be named and hooked
            return torch.export.unflatten(torch.export.load(file))
        with warnings.catch_warnings():  # the user chose TorchScript: no deprecation notice
            warnings.simplefilter("ignore", FutureWarning)
            return _ScriptedModel(torch.jit.load(file, map_location="cpu"))
    except Exception as error:  # torch raises several kinds for a file of the wrong format
        kind = "torch.export program" if file.suffix == _EXPORT_SUFFIX else "TorchScript file"
        raise ReportInputError(f"--model: cannot load {path!r} as a {kind} ({error})") from error


def load_model(spec: str, weights: str | None = None) -> nn.Module:
    r"""
    Loads the model named by ``--model``, in eval mode, on the CPU.

    Args:
        spec (str): A TorchScript file (``torch.jit.save``), a ``torch.export`` program
                    (``.pt2``, ``torch.export.save``) or ``package.module:factory`` (a callable
                    returning the ``nn.Module``).
        weights (str, optional): With a factory: a state dict file, read with
                    ``torch.load(weights_only=True)``.

    Returns:
        *nn.Module* whose layers can be hooked. A TorchScript model is wrapped, and only its
        output can be named (as :data:`OUTPUT_LAYER`).
    """
    model = _factory_model(spec, weights) if _is_factory(spec) else _file_model(spec, weights)
    return model.eval()


def resolve_device(name: str) -> torch.device:
    r"""``--device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    if name not in ("auto", "cpu", "cuda"):
        raise ReportInputError(f"--device: expected auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ReportInputError("--device: cuda asked for, but no CUDA device is available")
    cuda = name == "cuda" or (name == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if cuda else "cpu")


def resolve_layers(model: nn.Module, names: Sequence[str]) -> dict[str, nn.Module]:
    r"""
    The modules of ``model`` named by ``--layer`` (dotted names, as ``model.named_modules()``
    gives them; :data:`OUTPUT_LAYER` is the model's output).

    Args:
        model (nn.Module): The loaded model.
        names (Sequence[str]): The layer names.

    Returns:
        *dict[str, nn.Module]*: name -> module, in the order given.
    """
    if isinstance(model, _ScriptedModel):
        modules: dict[str, nn.Module] = {}
        hint = " (a TorchScript model runs compiled code that cannot be hooked: save it with "
        hint += "torch.export or give a module:factory to label inner layers)"
    else:
        modules = {name: module for name, module in model.named_modules() if name}
        hint = ""
    layers = {}
    for name in names:
        if name == OUTPUT_LAYER:
            layers[name] = model
        elif name in modules:
            layers[name] = modules[name]
        else:
            valid = ", ".join([OUTPUT_LAYER, *modules])
            raise ReportInputError(
                f"--layer: the model has no layer {name!r}; valid: {valid}{hint}"
            )
    return layers


def check_model_on_inputs(model: nn.Module, inputs: Tensor, num_classes: int | None) -> int:
    r"""
    Runs ``model`` on two of ``inputs`` and returns its number of outputs (classes).

    Raises a :class:`ReportInputError` naming ``--model`` with the shapes when the model fails
    on the data or returns no ``(batch, classes)`` logits, and naming ``--classes`` when their
    count differs from the model's outputs.
    """
    probe = inputs[:2]
    try:
        with torch.no_grad():
            output = model(probe.to(model_device(model)))
    except Exception as error:  # the model's own code raises anything on a wrong shape
        raise ReportInputError(
            f"--model: fails on --data's inputs of shape {tuple(probe.shape)} "
            f"(one sample {tuple(probe.shape[1:])}): {str(error).splitlines()[0]}"
        ) from error
    if not isinstance(output, Tensor) or output.dim() != 2 or output.shape[0] != len(probe):
        shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ReportInputError(
            f"--model: expected (batch, classes) logits for inputs of shape "
            f"{tuple(probe.shape)}, got {shape}"
        )
    classes = int(output.shape[1])
    if num_classes is not None and num_classes != classes:
        raise ReportInputError(
            f"--classes: {num_classes} classes, but the model has {classes} outputs"
        )
    return classes
