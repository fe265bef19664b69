"""Import paths of earlier versions still work for one release, each with a DeprecationWarning."""

from __future__ import annotations

import importlib
import sys

import pytest

import captum_netinv


def _fresh_import(name: str) -> object:
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("captum_netinv.data", "load_mnist", "captum_netinv.examples.data"),
        ("captum_netinv.models", "LeNet5", "captum_netinv.examples.models"),
        ("captum_netinv.shortcut", "Watermark", "captum_netinv.examples.shortcut"),
        ("captum_netinv.neuron_labels", "label_check", "captum_netinv.labeling"),
        ("captum_netinv.neuron_labels", "digit_concept_detectors", "captum_netinv.examples.data"),
        ("captum_netinv.demo", "run_demo", "captum_netinv.app.demo"),
        ("captum_netinv.report", "HtmlReport", "captum_netinv.app.report"),
        ("captum_netinv.demo_neurons", "neuron_page", "captum_netinv.app.neuron_pages"),
        ("captum_netinv.inversion.evaluation", "predicted_classes", "captum_netinv._activations"),
        (
            "captum_netinv.inversion.neuron_target",
            "resolve_neuron_selector",
            "captum_netinv.inversion.neuron.selectors",
        ),
        (
            "captum_netinv.inversion.neuron_inversion",
            "NEURON_LOSS_WEIGHTS",
            "captum_netinv.inversion.neuron.neuron_inversion",
        ),
        (
            "captum_netinv.inversion.network_inversion",
            "NetworkInversion",
            "captum_netinv.inversion.network.network_inversion",
        ),
    ],
)
def test_an_old_module_path_warns_and_gives_the_moved_name(old: str, name: str, new: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"`{old}` moved to .*`{new}`"):
        module = _fresh_import(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    assert name in module.__all__  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no attribute 'not_there'"):
        module.not_there  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.parametrize("name", ["NetworkInversion", "NeuronInversion", "InversionEvaluation"])
def test_the_methods_imported_from_the_shared_folder_warn(name: str) -> None:
    import captum_netinv.inversion as shared

    with pytest.warns(DeprecationWarning, match=f"captum_netinv.inversion.{name}` moved"):
        moved = getattr(shared, name)
    assert moved is getattr(captum_netinv, name)
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        shared.Nothing  # type: ignore[attr-defined]  # noqa: B018


def test_concept_helpers_imported_from_sampling_warn() -> None:
    from captum_netinv.inversion import sampling
    from captum_netinv.inversion.network import concepts

    with pytest.warns(DeprecationWarning, match="concept_id_of` moved"):
        assert sampling.concept_id_of is concepts.concept_id_of  # type: ignore[attr-defined]


def test_every_public_name_still_imports_from_the_root() -> None:
    for name in captum_netinv.__all__:
        assert getattr(captum_netinv, name) is not None
