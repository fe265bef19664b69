"""How the generator is told which class to produce: a label embedding, a soft vector, a matrix.

Implements the conditioning of Suhail & Sethi (2024): soft vectors whose argmax is the target
(the generator never sees the label itself) and n x n "hot" matrices joined to a feature map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "CONDITIONING_MODES",
    "ConditioningBatch",
    "ConditioningMode",
    "DEFAULT_VECTOR_MARGIN",
    "DEFAULT_VECTOR_SCALE",
    "check_conditioning_mode",
    "draw_conditioning",
    "hot_matrices",
    "latent_conditioning_size",
    "matrix_channel",
    "soft_vectors",
]

ConditioningMode = Literal["label", "vector", "matrix", "vector+matrix"]
CONDITIONING_MODES: tuple[str, ...] = get_args(ConditioningMode)
#: Standard deviation of the soft vectors' Gaussian draws (benchmarks/bench_inversion.py).
DEFAULT_VECTOR_SCALE = 3.0
#: Lead of the target's logit over the runner-up in a soft vector.
DEFAULT_VECTOR_MARGIN = 1.0


@dataclass
class ConditioningBatch:
    r"""
    The conditioning of one batch of generated samples.

    Attributes:
        targets (Tensor): ``(B,)`` class of each sample; only the ``"label"`` mode passes it to
                    the generator, the other modes use it for the losses alone.
        vectors (Tensor or None): ``(B, num_classes)`` soft vectors (modes with ``"vector"``).
        matrices (Tensor or None): ``(B, 1, num_classes, num_classes)`` hot matrices (modes
                    with ``"matrix"``).
    """

    targets: Tensor
    vectors: Tensor | None = None
    matrices: Tensor | None = None

    def to(self, device: torch.device) -> ConditioningBatch:
        r"""This batch with every tensor on ``device``."""
        return ConditioningBatch(
            self.targets.to(device),
            None if self.vectors is None else self.vectors.to(device),
            None if self.matrices is None else self.matrices.to(device),
        )


def check_conditioning_mode(mode: object) -> ConditioningMode:
    r"""Returns ``mode`` if it is one of :data:`CONDITIONING_MODES`, else raises naming it."""
    if mode not in CONDITIONING_MODES:
        raise ValueError(f"`conditioning` must be one of {CONDITIONING_MODES}, got {mode!r}")
    return mode  # type: ignore[return-value]


def soft_vectors(
    targets: Tensor,
    num_classes: int,
    rng: torch.Generator | None = None,
    *,
    scale: float = DEFAULT_VECTOR_SCALE,
    margin: float = DEFAULT_VECTOR_MARGIN,
) -> Tensor:
    r"""
    Soft label vectors: the softmax of a Gaussian draw (standard deviation ``scale``) of length
    ``num_classes`` whose largest entry is swapped into the target's position, so that the
    argmax is the target, and raised by ``margin`` so that the target's probability is at
    least ``exp(margin)`` times the runner-up's. A larger ``scale`` gives peakier vectors;
    ``margin=0`` gives draws whose top two entries can be arbitrarily close, which no generator
    can tell apart (the measured cause of most misses, see benchmarks/RESULTS.md).

    Args:
        targets (Tensor): ``(B,)`` class indices.
        num_classes (int): Length of each vector.
        rng (torch.Generator, optional): Source of the Gaussian draws (on the CPU).
        scale (float, optional): Standard deviation of the draw. Default: 3.0
        margin (float, optional): Lead of the target's logit over the runner-up. Default: 1.0

    Returns:
        *Tensor* of shape ``(B, num_classes)``, rows summing to 1, on the device of ``targets``.

    Examples::

        >>> vectors = soft_vectors(torch.tensor([3, 7]), 10)
        >>> vectors.argmax(dim=1)
        tensor([3, 7])
    """
    rows = torch.arange(len(targets))
    draws = scale * torch.randn(len(targets), num_classes, generator=rng)
    largest = draws.argmax(dim=1)
    cpu_targets = targets.cpu()
    swapped = draws.clone()
    swapped[rows, largest] = draws[rows, cpu_targets]
    swapped[rows, cpu_targets] = draws[rows, largest] + margin
    return swapped.softmax(dim=1).to(targets.device)


def hot_matrices(targets: Tensor, num_classes: int) -> Tensor:
    r"""
    Hot matrices: ``num_classes x num_classes`` zeros with the target's row and column set to 1.

    Args:
        targets (Tensor): ``(B,)`` class indices.
        num_classes (int): Side of each matrix.

    Returns:
        *Tensor* of shape ``(B, 1, num_classes, num_classes)``.

    Examples::

        >>> hot_matrices(torch.tensor([1]), 3)[0, 0]
        tensor([[0., 1., 0.],
                [1., 1., 1.],
                [0., 1., 0.]])
    """
    one_hot = F.one_hot(targets, num_classes).float()
    rows = one_hot.unsqueeze(2).expand(-1, -1, num_classes)
    columns = one_hot.unsqueeze(1).expand(-1, num_classes, -1)
    return torch.maximum(rows, columns).unsqueeze(1)


def matrix_channel(matrices: Tensor, size: tuple[int, int]) -> Tensor:
    r"""
    Resizes hot matrices to a feature map's ``(H, W)``, ready to be joined to the map as an
    extra channel: nearest-neighbour where the map is larger (every row and column of the
    matrix is kept), max pooling where it is smaller (the target's row and column survive).

    Args:
        matrices (Tensor): ``(B, 1, n, n)`` hot matrices.
        size (tuple[int, int]): ``(H, W)`` of the feature map.

    Returns:
        *Tensor* of shape ``(B, 1, H, W)`` with entries 0 or 1.
    """
    if tuple(matrices.shape[-2:]) == tuple(size):
        return matrices
    if size[0] >= matrices.shape[-2] and size[1] >= matrices.shape[-1]:
        return F.interpolate(matrices, size=size, mode="nearest")
    return F.adaptive_max_pool2d(
        F.interpolate(
            matrices,
            size=(max(size[0], matrices.shape[-2]), max(size[1], matrices.shape[-1])),
            mode="nearest",
        ),
        size,
    )


def draw_conditioning(
    mode: ConditioningMode,
    targets: Tensor,
    num_classes: int,
    *,
    vector_scale: float = DEFAULT_VECTOR_SCALE,
    vector_margin: float = DEFAULT_VECTOR_MARGIN,
    rng: torch.Generator | None = None,
) -> ConditioningBatch:
    r"""
    The conditioning of a batch for ``mode``: soft vectors for ``"vector"`` modes, hot matrices
    for ``"matrix"`` modes; the targets are always kept for the losses.

    Args:
        mode (str): One of :data:`CONDITIONING_MODES`.
        targets (Tensor): ``(B,)`` class indices.
        num_classes (int): Number of classes of the inverted model.
        vector_scale (float, optional): Standard deviation of the soft vectors' Gaussian
                    draws. Default: 3.0
        vector_margin (float, optional): Lead of the target's logit. Default: 1.0
        rng (torch.Generator, optional): Source of those draws.

    Returns:
        :class:`ConditioningBatch`.
    """
    vectors = (
        soft_vectors(targets, num_classes, rng, scale=vector_scale, margin=vector_margin)
        if "vector" in mode
        else None
    )
    matrices = hot_matrices(targets, num_classes) if "matrix" in mode else None
    return ConditioningBatch(targets, vectors, matrices)


def latent_conditioning_size(mode: ConditioningMode, num_classes: int) -> int:
    r"""Number of values joined to the latent code: the embedding or soft vector length."""
    return 0 if mode == "matrix" else num_classes
