"""How the generator is told which class to produce: a label embedding, a soft vector, a matrix.

Implements the conditioning of Suhail & Sethi (2024): soft vectors whose argmax is the target
(the generator never sees the label itself) and class matrices joined to a feature map.
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
    "MATRIX_ENCODINGS",
    "DEFAULT_VECTOR_SCALE",
    "MatrixEncoding",
    "check_conditioning_mode",
    "check_matrix_encoding",
    "class_code_maps",
    "draw_conditioning",
    "hot_matrices",
    "latent_conditioning_size",
    "matrix_channel",
    "soft_hot_matrices",
    "soft_vectors",
]

ConditioningMode = Literal["label", "vector", "matrix", "vector+matrix"]
CONDITIONING_MODES: tuple[str, ...] = get_args(ConditioningMode)
#: How a matrix mode's class matrix reaches the feature map: ``"projection"``, a fixed code map
#: per class weighted by the soft vector (distinct classes at any size), or ``"hot"``, the
#: one-hot matrix resized by max pooling (format-1 checkpoints; merges classes on small maps).
MatrixEncoding = Literal["projection", "hot"]
MATRIX_ENCODINGS: tuple[str, ...] = get_args(MatrixEncoding)
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
        vectors (Tensor or None): ``(B, num_classes)`` soft vectors (modes with ``"vector"``,
                    and every matrix mode of the ``"projection"`` encoding, whose class
                    matrix is derived from the soft vector).
        matrices (Tensor or None): ``(B, 1, num_classes, num_classes)`` hot matrices (matrix
                    modes of the ``"hot"`` encoding only).
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


def check_matrix_encoding(encoding: object) -> MatrixEncoding:
    r"""Returns ``encoding`` if it is one of :data:`MATRIX_ENCODINGS`, else raises naming it."""
    if encoding not in MATRIX_ENCODINGS:
        raise ValueError(f"`matrix_encoding` must be one of {MATRIX_ENCODINGS}, got {encoding!r}")
    return encoding  # type: ignore[return-value]


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
    can tell apart (the measured cause of most misses, see :doc:`/methods/network_inversion`).

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


def soft_hot_matrices(vectors: Tensor) -> Tensor:
    r"""
    Soft hot matrices: ``S_ij = (v_i + v_j) / 2`` of each soft vector ``v``, the hot matrix
    weighted by the soft vector's class distribution (a one-hot ``v`` of class ``y`` gives
    ``S_yy = 1``, the rest of row and column ``y`` at 1/2, every other entry 0). Any linear map
    of ``S`` is a linear map of ``v``: the generator joins ``S`` through one
    (:func:`class_code_maps`) without building the ``K x K`` matrix.

    Args:
        vectors (Tensor): ``(B, K)`` soft vectors.

    Returns:
        *Tensor* of shape ``(B, 1, K, K)``.

    Examples::

        >>> soft_hot_matrices(torch.tensor([[0.0, 1.0, 0.0]]))[0, 0]
        tensor([[0.0000, 0.5000, 0.0000],
                [0.5000, 1.0000, 0.5000],
                [0.0000, 0.5000, 0.0000]])
    """
    return ((vectors.unsqueeze(2) + vectors.unsqueeze(1)) / 2).unsqueeze(1)


def class_code_maps(num_classes: int, size: tuple[int, int], seed: int = 0) -> Tensor:
    r"""
    One fixed ``(H, W)`` code map per class, the columns of a random projection drawn from
    ``seed`` (no global random state is used): orthogonal columns where ``H * W >= K``,
    independent Gaussian directions otherwise; every map is scaled to a root-mean-square
    entry of 1. Distinct classes get distinct maps at any size (pairwise distance ``sqrt(2 H
    W)`` when orthogonal); a soft vector ``v`` is joined as ``sum_k v_k code_k``.

    Args:
        num_classes (int): ``K``.
        size (tuple[int, int]): ``(H, W)`` of the feature map the codes are joined to.
        seed (int, optional): Seed of the projection. Default: 0

    Returns:
        *Tensor* of shape ``(K, H, W)``.
    """
    rng = torch.Generator().manual_seed(seed)
    area = size[0] * size[1]
    draws = torch.randn(area, num_classes, generator=rng, dtype=torch.float64)
    if area >= num_classes:
        draws = torch.linalg.qr(draws).Q
    codes = draws / draws.norm(dim=0, keepdim=True) * area**0.5
    return codes.T.reshape(num_classes, *size).float()


def matrix_channel(matrices: Tensor, size: tuple[int, int]) -> Tensor:
    r"""
    Resizes hot matrices to a feature map's ``(H, W)``, ready to be joined to the map as an
    extra channel: nearest-neighbour where the map is larger (every row and column of the
    matrix is kept), max pooling where it is smaller (the target's row and column survive, but
    classes can merge). The ``"hot"`` matrix encoding of format-1 checkpoints only.

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
    matrix_encoding: MatrixEncoding = "projection",
) -> ConditioningBatch:
    r"""
    The conditioning of a batch for ``mode``: soft vectors for ``"vector"`` modes; for
    ``"matrix"`` modes soft vectors too with the ``"projection"`` encoding (the generator
    derives the class matrix from them, so it never sees the label), hot matrices with the
    ``"hot"`` one; the targets are always kept for the losses.

    Args:
        mode (str): One of :data:`CONDITIONING_MODES`.
        targets (Tensor): ``(B,)`` class indices.
        num_classes (int): Number of classes of the inverted model.
        vector_scale (float, optional): Standard deviation of the soft vectors' Gaussian
                    draws. Default: 3.0
        vector_margin (float, optional): Lead of the target's logit. Default: 1.0
        rng (torch.Generator, optional): Source of those draws.
        matrix_encoding (str, optional): ``"projection"`` or ``"hot"``. Default: ``"projection"``

    Returns:
        :class:`ConditioningBatch`.
    """
    hot = "matrix" in mode and check_matrix_encoding(matrix_encoding) == "hot"
    vectors = (
        soft_vectors(targets, num_classes, rng, scale=vector_scale, margin=vector_margin)
        if "vector" in mode or ("matrix" in mode and not hot)
        else None
    )
    matrices = hot_matrices(targets, num_classes) if hot else None
    return ConditioningBatch(targets, vectors, matrices)


def latent_conditioning_size(mode: ConditioningMode, num_classes: int) -> int:
    r"""Number of values joined to the latent code: the embedding or soft vector length."""
    return 0 if mode == "matrix" else num_classes
