"""The objects of PyTorch, torchvision, Captum and friends that these docs link to.

The build has no network, so intersphinx cannot download the projects' ``objects.inv``; conf.py
writes small local inventories from this table instead, each URL the object's real page.
"""

from __future__ import annotations

import zlib
from pathlib import Path

#: project -> (base URL, {object name: (domain:role, page#anchor relative to the base URL)})
EXTERNAL_OBJECTS: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "python": (
        "https://docs.python.org/3/",
        {
            "int": ("py:class", "library/functions.html#int"),
            "float": ("py:class", "library/functions.html#float"),
            "bool": ("py:class", "library/functions.html#bool"),
            "str": ("py:class", "library/stdtypes.html#str"),
            "list": ("py:class", "library/stdtypes.html#list"),
            "tuple": ("py:class", "library/stdtypes.html#tuple"),
            "dict": ("py:class", "library/stdtypes.html#dict"),
            "object": ("py:class", "library/functions.html#object"),
            "abc.ABC": ("py:class", "library/abc.html#abc.ABC"),
            "pathlib.Path": ("py:class", "library/pathlib.html#pathlib.Path"),
            "os.PathLike": ("py:class", "library/os.html#os.PathLike"),
            "typing.Any": ("py:data", "library/typing.html#typing.Any"),
            "typing.Literal": ("py:data", "library/typing.html#typing.Literal"),
            "typing.Union": ("py:data", "library/typing.html#typing.Union"),
            "collections.abc.Callable": (
                "py:class",
                "library/collections.abc.html#collections.abc.Callable",
            ),
            "collections.abc.Iterable": (
                "py:class",
                "library/collections.abc.html#collections.abc.Iterable",
            ),
            "collections.abc.Iterator": (
                "py:class",
                "library/collections.abc.html#collections.abc.Iterator",
            ),
            "collections.abc.Mapping": (
                "py:class",
                "library/collections.abc.html#collections.abc.Mapping",
            ),
            "collections.abc.Sequence": (
                "py:class",
                "library/collections.abc.html#collections.abc.Sequence",
            ),
            "ValueError": ("py:exception", "library/exceptions.html#ValueError"),
            "TypeError": ("py:exception", "library/exceptions.html#TypeError"),
            "RuntimeError": ("py:exception", "library/exceptions.html#RuntimeError"),
            "FloatingPointError": ("py:exception", "library/exceptions.html#FloatingPointError"),
            "ImportError": ("py:exception", "library/exceptions.html#ImportError"),
        },
    ),
    "torch": (
        "https://docs.pytorch.org/docs/stable/",
        {
            "torch.Tensor": ("py:class", "tensors.html#torch.Tensor"),
            "torch.device": ("py:class", "tensor_attributes.html#torch.device"),
            "torch.dtype": ("py:class", "tensor_attributes.html#torch.dtype"),
            "torch.Generator": ("py:class", "generated/torch.Generator.html#torch.Generator"),
            "torch.load": ("py:function", "generated/torch.load.html#torch.load"),
            "torch.save": ("py:function", "generated/torch.save.html#torch.save"),
            "torch.manual_seed": ("py:function", "generated/torch.manual_seed.html"),
            "torch.nn.Module": ("py:class", "generated/torch.nn.Module.html#torch.nn.Module"),
            # where autodoc finds the class (its defining module) links to the public page
            "torch.nn.modules.module.Module": (
                "py:class",
                "generated/torch.nn.Module.html#torch.nn.Module",
            ),
            "torch.nn.Linear": ("py:class", "generated/torch.nn.Linear.html#torch.nn.Linear"),
            "torch.nn.Conv2d": ("py:class", "generated/torch.nn.Conv2d.html#torch.nn.Conv2d"),
            "torch.nn.ConvTranspose2d": (
                "py:class",
                "generated/torch.nn.ConvTranspose2d.html#torch.nn.ConvTranspose2d",
            ),
            "torch.nn.BatchNorm2d": (
                "py:class",
                "generated/torch.nn.BatchNorm2d.html#torch.nn.BatchNorm2d",
            ),
            "torch.nn.Dropout": ("py:class", "generated/torch.nn.Dropout.html#torch.nn.Dropout"),
            "torch.nn.Dropout2d": (
                "py:class",
                "generated/torch.nn.Dropout2d.html#torch.nn.Dropout2d",
            ),
            "torch.nn.modules.batchnorm._BatchNorm": (
                "py:class",
                "generated/torch.nn.BatchNorm2d.html#torch.nn.BatchNorm2d",
            ),
            "torch.nn.DataParallel": (
                "py:class",
                "generated/torch.nn.DataParallel.html#torch.nn.DataParallel",
            ),
            "torch.optim.Adam": ("py:class", "generated/torch.optim.Adam.html#torch.optim.Adam"),
            "torch.utils.data.DataLoader": ("py:class", "data.html#torch.utils.data.DataLoader"),
            "torch.utils.data.Dataset": ("py:class", "data.html#torch.utils.data.Dataset"),
        },
    ),
    "torchvision": (
        "https://docs.pytorch.org/vision/stable/",
        {
            "torchvision.datasets.MNIST": (
                "py:class",
                "generated/torchvision.datasets.MNIST.html#torchvision.datasets.MNIST",
            ),
            "torchvision.datasets.ImageFolder": (
                "py:class",
                "generated/torchvision.datasets.ImageFolder.html#torchvision.datasets.ImageFolder",
            ),
            "torchvision.models.resnet18": (
                "py:function",
                "models/generated/torchvision.models.resnet18.html#torchvision.models.resnet18",
            ),
        },
    ),
    "captum": (
        "https://captum.ai/api/",
        {
            "captum.attr.Attribution": ("py:class", "base_classes.html#captum.attr.Attribution"),
            "captum.attr.LayerAttribution": (
                "py:class",
                "base_classes.html#captum.attr.LayerAttribution",
            ),
            "captum.attr._utils.attribution.LayerAttribution": (
                "py:class",
                "base_classes.html#captum.attr.LayerAttribution",
            ),
            "captum.attr._utils.attribution.GradientAttribution": (
                "py:class",
                "base_classes.html#captum.attr.GradientAttribution",
            ),
            "captum.attr.GradientAttribution": (
                "py:class",
                "base_classes.html#captum.attr.GradientAttribution",
            ),
            "captum.attr.IntegratedGradients": (
                "py:class",
                "integrated_gradients.html#captum.attr.IntegratedGradients",
            ),
            "captum.attr.LayerGradCam": ("py:class", "layer.html#captum.attr.LayerGradCam"),
            "captum.attr.LayerActivation": ("py:class", "layer.html#captum.attr.LayerActivation"),
            "captum.attr.visualization.visualize_image_attr": (
                "py:function",
                "utilities.html#captum.attr.visualization.visualize_image_attr",
            ),
            "captum.concept.Concept": ("py:class", "concept.html#captum.concept.Concept"),
            "captum.concept._core.concept.Concept": (
                "py:class",
                "concept.html#captum.concept.Concept",
            ),
            "captum.attr.visualization": ("py:module", "utilities.html#visualization"),
            "captum.concept.TCAV": ("py:class", "concept.html#captum.concept.TCAV"),
            "captum.robust.PGD": ("py:class", "robust.html#captum.robust.PGD"),
            "captum.robust.FGSM": ("py:class", "robust.html#captum.robust.FGSM"),
        },
    ),
    "numpy": (
        "https://numpy.org/doc/stable/",
        {"numpy.ndarray": ("py:class", "reference/generated/numpy.ndarray.html#numpy.ndarray")},
    ),
    "matplotlib": (
        "https://matplotlib.org/stable/",
        {
            "matplotlib.figure.Figure": (
                "py:class",
                "api/_as_gen/matplotlib.figure.Figure.html#matplotlib.figure.Figure",
            ),
            "matplotlib.axes.Axes": (
                "py:class",
                "api/_as_gen/matplotlib.axes.Axes.html#matplotlib.axes.Axes",
            ),
            "matplotlib.axes._axes.Axes": (
                "py:class",
                "api/_as_gen/matplotlib.axes.Axes.html#matplotlib.axes.Axes",
            ),
        },
    ),
    "pandas": (
        "https://pandas.pydata.org/docs/",
        {
            "pandas.DataFrame": (
                "py:class",
                "reference/api/pandas.DataFrame.html#pandas.DataFrame",
            )
        },
    ),
}


def write_inventory(path: Path, project: str, objects: dict[str, tuple[str, str]]) -> None:
    r"""Writes ``objects`` as a Sphinx version-2 ``objects.inv`` (zlib-compressed body)."""
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        "# Version: \n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    body = "".join(
        f"{name} {role} 1 {location} -\n" for name, (role, location) in sorted(objects.items())
    )
    content = header.encode() + zlib.compress(body.encode())
    if not path.exists() or path.read_bytes() != content:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def intersphinx_mapping(folder: Path) -> dict[str, tuple[str, str]]:
    r"""Writes one inventory per project under ``folder``; returns ``intersphinx_mapping``."""
    mapping = {}
    for project, (base_url, objects) in EXTERNAL_OBJECTS.items():
        path = folder / f"{project}.inv"
        write_inventory(path, project, objects)
        mapping[project] = (base_url, str(path))
    return mapping
