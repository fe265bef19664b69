"""The report's data: an ImageFolder directory, an ``.npz`` / ``.pt`` tensor file or a factory.

Every form becomes one :class:`ImageData`: the images as the model reads them, their labels,
class and file names when the source has them, and the normalization the model expects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from captum_netinv._progress import progress_bar
from captum_netinv.app.loading import ReportInputError, imported_object

__all__ = ["ImageData", "load_data"]

#: The keys of an ``.npz`` / ``.pt`` data file: ``images`` (required), ``labels``, ``files``.
IMAGES_KEY, LABELS_KEY, FILES_KEY = "images", "labels", "files"
_TENSOR_SUFFIXES = (".npz", ".pt", ".pth")
_UINT8_MAX = 255.0


@dataclass(frozen=True)
class ImageData:
    r"""
    The samples of a report.

    Attributes:
        images (Tensor): ``(N, C, H, W)`` float inputs, as the model reads them.
        labels (Tensor or None): ``(N,)`` class indices, when the source has them.
        class_names (list[str] or None): Names of the classes (ImageFolder's folders).
        files (list[str] or None): A name per sample (the ImageFolder file path relative to
                    the folder, or the ``files`` key of a tensor file), for concept tables.
        normalization (tuple or None): ``(mean, std)`` per channel that turn ``[0, 1]`` pixels
                    into model inputs; None when the images are pixels.
    """

    images: Tensor
    labels: Tensor | None
    class_names: list[str] | None
    files: list[str] | None
    normalization: tuple[list[float], list[float]] | None


def _normalization(
    mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[list[float], list[float]] | None:
    if (mean is None) != (std is None):
        raise ReportInputError("--mean/--std: give both or neither")
    if mean is None or std is None:
        return None
    if len(mean) != len(std) or any(value <= 0 for value in std):
        raise ReportInputError(
            f"--std: expected one positive value per --mean value, got mean {list(mean)} "
            f"and std {list(std)}"
        )
    return list(mean), list(std)


def _normalized(pixels: Tensor, normalization: tuple[list[float], list[float]] | None) -> Tensor:
    if normalization is None:
        return pixels
    mean, std = (torch.tensor(values).view(-1, 1, 1) for values in normalization)
    if len(mean) not in (1, pixels.shape[1]):
        raise ReportInputError(
            f"--mean: {len(mean)} values for images of {pixels.shape[1]} channels"
        )
    return (pixels - mean) / std


def _stacked(dataset: object, argument: str, progress: bool) -> tuple[Tensor, Tensor | None]:
    r"""Every item of a dataset of ``image`` or ``(image, label)``, stacked."""
    try:
        length = len(dataset)  # type: ignore[arg-type]
    except TypeError as error:
        raise ReportInputError(f"{argument}: the dataset has no length ({error})") from error
    images, labels = [], []
    for index in progress_bar(range(length), desc="loading data", enabled=progress):
        item = dataset[index]  # type: ignore[index]
        image, label = (item[0], item[1]) if isinstance(item, (tuple, list)) else (item, None)
        if not isinstance(image, Tensor):
            raise ReportInputError(
                f"{argument}: item {index} is a {type(image).__name__}, expected a tensor "
                "(give a transform that ends in ToTensor)"
            )
        images.append(image)
        if label is not None:
            labels.append(int(label))
    if not images:
        raise ReportInputError(f"{argument}: the dataset is empty")
    shapes = {tuple(image.shape) for image in images}
    if len(shapes) > 1:
        raise ReportInputError(
            f"{argument}: images of different shapes {sorted(shapes)[:3]}; set --size"
        )
    return torch.stack(images).float(), torch.tensor(labels) if len(labels) == len(images) else None


def _folder_transform(
    size: int | None,
    normalization: tuple[list[float], list[float]] | None,
    transform: str | None,
) -> Callable:
    from torchvision import transforms

    if transform is not None:
        factory = imported_object(transform, "--transform")
        if not callable(factory):
            raise ReportInputError(f"--transform: {transform!r} is not callable")
        return factory()
    steps: list[Callable] = [transforms.Resize(size), transforms.CenterCrop(size)] if size else []
    steps.append(transforms.ToTensor())
    if normalization is not None:
        steps.append(transforms.Normalize(*normalization))
    return transforms.Compose(steps)


def _image_folder(
    folder: Path,
    *,
    size: int | None,
    normalization: tuple[list[float], list[float]] | None,
    transform: str | None,
    progress: bool,
) -> ImageData:
    from torchvision.datasets import ImageFolder

    try:
        dataset = ImageFolder(folder, transform=_folder_transform(size, normalization, transform))
    except (FileNotFoundError, RuntimeError) as error:
        raise ReportInputError(f"--data: {folder} is no ImageFolder ({error})") from error
    images, labels = _stacked(dataset, "--data", progress)
    files = [Path(path).relative_to(folder).as_posix() for path, _ in dataset.samples]
    return ImageData(
        images=images,
        labels=labels,
        class_names=list(dataset.classes),
        files=files,
        normalization=normalization,
    )


def _tensor_file(path: Path, normalization: tuple[list[float], list[float]] | None) -> ImageData:
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                content = {key: archive[key] for key in archive.files}
        else:
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # numpy and torch raise several kinds for a bad file
        raise ReportInputError(f"--data: cannot read {str(path)!r} ({error})") from error
    if isinstance(content, Tensor):
        content = {IMAGES_KEY: content}
    if not isinstance(content, dict) or IMAGES_KEY not in content:
        raise ReportInputError(
            f"--data: {str(path)!r} must hold a tensor or a mapping with an {IMAGES_KEY!r} key "
            f"(and optionally {LABELS_KEY!r}, {FILES_KEY!r})"
        )
    pixels = torch.as_tensor(content[IMAGES_KEY])
    if pixels.dim() == 3:
        pixels = pixels[:, None]
    if pixels.dim() != 4:
        raise ReportInputError(
            f"--data: {IMAGES_KEY!r} must be (N, C, H, W), got shape {tuple(pixels.shape)}"
        )
    pixels = pixels.float() / _UINT8_MAX if pixels.dtype == torch.uint8 else pixels.float()
    labels = content.get(LABELS_KEY)
    files = content.get(FILES_KEY)
    label_tensor = torch.as_tensor(labels).long().view(-1) if labels is not None else None
    if label_tensor is not None and len(label_tensor) != len(pixels):
        raise ReportInputError(
            f"--data: {len(label_tensor)} labels for {len(pixels)} images in {str(path)!r}"
        )
    return ImageData(
        images=_normalized(pixels, normalization),
        labels=label_tensor,
        class_names=None,
        files=[str(name) for name in files] if files is not None else None,
        normalization=normalization,
    )


def load_data(
    spec: str,
    size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    transform: str | None = None,
    progress: bool = True,
) -> ImageData:
    r"""
    Loads the samples named by ``--data``.

    Args:
        spec (str): An ImageFolder directory (one folder per class); an ``.npz`` or ``.pt``
                    file holding ``images`` (``(N, C, H, W)`` or ``(N, H, W)`` pixels in
                    ``[0, 1]``, or ``uint8`` in ``[0, 255]``), optional ``labels`` (``(N,)``
                    ints) and optional ``files`` (``(N,)`` names, for a concept mapping); or
                    ``package.module:factory`` returning a dataset of ``image`` or ``(image,
                    label)`` tensors, taken as the model reads them.
        size (int, optional): ImageFolder: resize and center-crop to ``size`` pixels.
        mean (Sequence[float], optional): Per-channel mean the model's inputs are normalized
                    with (ImageFolder and tensor files: applied to the pixels; a factory's
                    items are taken as already normalized).
        std (Sequence[float], optional): Per-channel standard deviation, with ``mean``.
        transform (str, optional): ImageFolder: ``package.module:factory`` returning the
                    torchvision transform to use instead of ``size`` / ``mean`` / ``std``.
        progress (bool, optional): Show a progress bar while loading. Default: True

    Returns:
        :class:`ImageData`.
    """
    normalization = _normalization(mean, std)
    path = Path(spec)
    if path.is_dir():
        return _image_folder(
            path, size=size, normalization=normalization, transform=transform, progress=progress
        )
    if path.suffix in _TENSOR_SUFFIXES:
        if not path.is_file():
            raise ReportInputError(f"--data: no such file: {spec!r}")
        return _tensor_file(path, normalization)
    if ":" in spec:
        factory = imported_object(spec, "--data")
        if not callable(factory):
            raise ReportInputError(f"--data: {spec!r} is not callable")
        images, labels = _stacked(factory(), "--data", progress)
        return ImageData(
            images=images,
            labels=labels,
            class_names=None,
            files=None,
            normalization=normalization,
        )
    raise ReportInputError(
        f"--data: {spec!r} is no directory, no .npz / .pt file and no module:factory"
    )
