"""Import paths of earlier versions, kept for one release: each warns and names the new home.

A finder on ``sys.meta_path`` answers the old module names with a module that forwards every
attribute to the modules now holding the code; :func:`moved_attribute` serves the names a
module no longer holds itself (through the module's ``__getattr__``, PEP 562).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["MOVED_MODULES", "MOVED_NAMES", "install_moved_modules", "moved_attribute"]

#: Old module -> the modules that hold its public names now (looked up in this order).
MOVED_MODULES: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {
        "captum_netinv.data": ("captum_netinv.examples.data",),
        "captum_netinv.models": ("captum_netinv.examples.models",),
        "captum_netinv.shortcut": ("captum_netinv.examples.shortcut",),
        "captum_netinv.neuron_labels": ("captum_netinv.labeling", "captum_netinv.examples.data"),
        "captum_netinv.demo": ("captum_netinv.app.demo",),
        "captum_netinv.demo_neurons": ("captum_netinv.app.neuron_pages",),
        "captum_netinv.report": ("captum_netinv.app.report",),
        "captum_netinv.inversion.network_inversion": (
            "captum_netinv.inversion.network.network_inversion",
        ),
        "captum_netinv.inversion.evaluation": (
            "captum_netinv.inversion.network.evaluation",
            "captum_netinv._activations",
        ),
        "captum_netinv.inversion.counterfeits": ("captum_netinv.inversion.network.counterfeits",),
        "captum_netinv.inversion.neuron_inversion": (
            "captum_netinv.inversion.neuron.neuron_inversion",
        ),
        "captum_netinv.inversion.neuron_target": (
            "captum_netinv.inversion.neuron.target",
            "captum_netinv.inversion.neuron.selectors",
        ),
        "captum_netinv.inversion.neuron_evaluation": ("captum_netinv.inversion.neuron.evaluation",),
    }
)

#: Module -> {name it no longer holds: the module that holds it now}.
MOVED_NAMES: Mapping[str, Mapping[str, str]] = types.MappingProxyType(
    {
        "captum_netinv.inversion": {
            "NetworkInversion": "captum_netinv.inversion.network",
            "InversionEvaluation": "captum_netinv.inversion.network",
            "NeuronInversion": "captum_netinv.inversion.neuron",
            "NeuronEvaluation": "captum_netinv.inversion.neuron",
        },
        "captum_netinv.inversion.sampling": {
            "CONCEPT_ID_BASE": "captum_netinv.inversion.network.concepts",
            "concept_id_of": "captum_netinv.inversion.network.concepts",
            "samples_as_concept": "captum_netinv.inversion.network.concepts",
        },
    }
)


def _warn_moved(old: str, new: Sequence[str]) -> None:
    homes = " and ".join(f"`{home}`" for home in new)
    warnings.warn(
        f"`{old}` moved to {homes}; the old path will be removed in the next release",
        DeprecationWarning,
        stacklevel=3,
    )


def moved_attribute(module: str) -> Callable[[str], Any]:
    r"""
    A module ``__getattr__`` for ``module`` (its ``__name__``): a name of
    :data:`MOVED_NAMES` is imported from its new module with a ``DeprecationWarning``; any other
    name raises the usual ``AttributeError``.
    """
    moved = MOVED_NAMES.get(module, {})

    def attribute(name: str) -> Any:
        if name not in moved:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        _warn_moved(f"{module}.{name}", [f"{moved[name]}.{name}"])
        return getattr(importlib.import_module(moved[name]), name)

    return attribute


def _forwarding_module(name: str, targets: Sequence[str]) -> types.ModuleType:
    r"""A module ``name`` whose attributes are those of the ``targets`` modules, first first."""
    modules = [importlib.import_module(target) for target in targets]
    forwarding = types.ModuleType(name, f"Deprecated: moved to {', '.join(targets)}.")

    def attribute(attribute_name: str) -> Any:
        for module in modules:
            if hasattr(module, attribute_name):
                return getattr(module, attribute_name)
        raise AttributeError(f"module {name!r} has no attribute {attribute_name!r}")

    forwarding.__getattr__ = attribute  # type: ignore[method-assign]
    forwarding.__all__ = [  # type: ignore[attr-defined]
        public for module in modules for public in getattr(module, "__all__", ())
    ]
    return forwarding


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    r"""Finds the old module names of :data:`MOVED_MODULES` and loads their forwarders."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        _warn_moved(spec.name, MOVED_MODULES[spec.name])
        return _forwarding_module(spec.name, MOVED_MODULES[spec.name])

    def exec_module(self, module: types.ModuleType) -> None:
        r"""Nothing to run: the forwarder was made whole by :meth:`create_module`."""


def install_moved_modules() -> None:
    r"""Puts the finder of the old module names on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
