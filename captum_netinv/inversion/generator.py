"""The default conditioned generator, sized from the input shape, and its sampling-mode switch.

Transposed convolutions with batch norm and heavy dropout up-sample a projected latent code to
the input shape; the output is mapped into the input range. Any module with the same call
signature (``generator(z, conditioning)``) can replace it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_netinv._utils import eval_mode
from captum_netinv.inversion.conditioning import (
    ConditioningBatch,
    ConditioningMode,
    MatrixEncoding,
    check_conditioning_mode,
    check_matrix_encoding,
    class_code_maps,
    latent_conditioning_size,
    matrix_channel,
)
from captum_netinv.inversion.generator_layers import ResizeConv2d, UnitDropout

__all__ = [
    "ConditionedGenerator",
    "DEFAULT_DROPOUT",
    "UPSAMPLINGS",
    "Upsampling",
    "VECTOR_ENCODERS",
    "VectorEncoder",
    "check_input_shape",
    "sampling_mode",
]

#: Smallest side the default generator supports; it up-samples at least once from half of it.
_MIN_SIDE = 8
#: Feature maps start between 4 and 7 pixels on their short side and double at every stage.
_BASE_SIDE = 4
_WIDEST = 256
_VECTOR_HIDDEN = 128
_NARROWEST = 16
#: Dropout rate after every up-sampling stage (:doc:`/choosing_settings`).
DEFAULT_DROPOUT = 0.3
#: How a soft vector is joined to ``z``: ``"mlp"`` (rescaled to a mean entry of 1 and decoded
#: by a hidden layer) or ``"none"`` (joined as it is, the paper's simplest encoder).
VectorEncoder = Literal["mlp", "none"]
VECTOR_ENCODERS: tuple[str, ...] = get_args(VectorEncoder)
#: How a stage doubles the feature maps: ``"resize"`` (nearest-neighbour up-sampling, then a
#: 3x3 convolution: no checkerboard, Odena et al. 2016) or ``"transposed"`` (a 4x4 transposed
#: convolution of stride 2, the DCGAN stage; its uneven kernel overlap draws checkerboards).
Upsampling = Literal["resize", "transposed"]
UPSAMPLINGS: tuple[str, ...] = get_args(Upsampling)


def check_input_shape(input_shape: object, name: str = "input_shape") -> tuple[int, int, int]:
    r"""Returns ``input_shape`` as a ``(C, H, W)`` tuple of positive ints, else raises."""
    if (
        not isinstance(input_shape, Sequence)
        or len(input_shape) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in input_shape)
    ):
        raise ValueError(
            f"`{name}` must be (channels, height, width) ints > 0, got {input_shape!r}"
        )
    channels, height, width = input_shape
    return channels, height, width


def _upsampling_stages(height: int, width: int) -> int:
    r"""Number of 2x up-sampling stages so that the first feature map is 4 to 7 pixels."""
    if min(height, width) < _MIN_SIDE:
        raise ValueError(
            f"`input_shape` must be at least {_MIN_SIDE}x{_MIN_SIDE} for the default generator, "
            f"got {height}x{width}; pass your own `generator`"
        )
    return max(1, int(math.floor(math.log2(min(height, width) / _BASE_SIDE))))


class ConditionedGenerator(nn.Module):
    r"""
    Default generator ``G(z, conditioning)`` of :class:`~captum_netinv.NetworkInversion`.

    A linear layer projects the latent code (joined with the label embedding or soft vector)
    to a ``(width, h0, w0)`` map with ``h0, w0`` in 4..7; each stage doubles the size (a
    nearest-neighbour resize and a 3x3 convolution, or a transposed convolution: ``upsampling``),
    then batch norm, ReLU and dropout (of single units by default, of whole
    feature maps with ``channel_dropout``; see the ablation in :doc:`/choosing_settings`); a last
    convolution gives the input's channels, resized to ``(H, W)`` where the doubling
    overshoots, and a sigmoid maps it into ``input_range``. With matrix conditioning the class
    matrix is joined as an extra channel to the first feature map with at least ``num_classes``
    pixels (the last one if none has): with the ``"projection"`` encoding as ``sum_k v_k
    code_k`` of the soft vector ``v`` and fixed per-class code maps
    (:func:`~captum_netinv.inversion.conditioning.class_code_maps`), distinct for every class at
    any size; with ``"hot"`` (format-1 checkpoints) as the pooled hot matrix, joined to the
    first map at least ``num_classes`` wide.

    Args:
        input_shape (tuple[int, int, int]): ``(C, H, W)`` of the generated inputs, H, W >= 8.
        num_classes (int): Number of classes.
        latent_dim (int, optional): Length of the noise vector ``z``. Default: 64
        conditioning (str, optional): One of ``"label"``, ``"vector"``, ``"matrix"``,
                    ``"vector+matrix"``. Default: ``"vector"``
        dropout (float, optional): Dropout rate after every up-sampling stage. Default: 0.3
        channel_dropout (bool, optional): Drop whole feature maps (``nn.Dropout2d``) instead of
                    single units (:class:`~captum_netinv.inversion.generator_layers.UnitDropout`,
                    an ``nn.Dropout``). Default: False
        input_range (tuple[float, float], optional): Range of the generated values.
                    Default: (0.0, 1.0)
        vector_encoder (str, optional): ``"mlp"`` or ``"none"`` (:data:`VectorEncoder`).
                    Default: ``"mlp"``
        matrix_encoding (str, optional): ``"projection"`` or ``"hot"``. Default:
                    ``"projection"``
        upsampling (str, optional): ``"resize"`` or ``"transposed"`` (:data:`Upsampling`).
                    Default: ``"resize"``

    Examples::

        >>> generator = ConditionedGenerator((1, 28, 28), num_classes=10)
        >>> batch = draw_conditioning("vector+matrix", torch.tensor([0, 1]), 10)
        >>> generator(torch.randn(2, 64), batch).shape
        torch.Size([2, 1, 28, 28])
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        latent_dim: int = 64,
        conditioning: ConditioningMode = "vector",
        dropout: float = DEFAULT_DROPOUT,
        input_range: tuple[float, float] = (0.0, 1.0),
        channel_dropout: bool = False,
        vector_encoder: VectorEncoder = "mlp",
        matrix_encoding: MatrixEncoding = "projection",
        upsampling: Upsampling = "resize",
    ) -> None:
        super().__init__()
        channels, height, width = check_input_shape(input_shape)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {dropout}")
        self.mode = check_conditioning_mode(conditioning)
        self.matrix_encoding = check_matrix_encoding(matrix_encoding)
        if vector_encoder not in VECTOR_ENCODERS:
            raise ValueError(
                f"`vector_encoder` must be one of {VECTOR_ENCODERS}, got {vector_encoder!r}"
            )
        if upsampling not in UPSAMPLINGS:
            raise ValueError(f"`upsampling` must be one of {UPSAMPLINGS}, got {upsampling!r}")
        self.output_size = (height, width)
        self.input_range = (float(input_range[0]), float(input_range[1]))
        stages = _upsampling_stages(height, width)
        self.base_size = (math.ceil(height / 2**stages), math.ceil(width / 2**stages))
        widths = [min(_WIDEST, 32 * 2 ** (stages - 1))]
        widths += [max(_NARROWEST, widths[0] // 2 ** (i + 1)) for i in range(stages)]
        sizes = [(self.base_size[0] * 2**i, self.base_size[1] * 2**i) for i in range(stages + 1)]
        self.matrix_stage = _matrix_stage(self.mode, self.matrix_encoding, sizes, num_classes)
        if self.matrix_stage >= 0 and self.matrix_encoding == "projection":
            codes = class_code_maps(num_classes, sizes[self.matrix_stage])
            self.register_buffer("class_codes", codes)
        self.embedding = nn.Embedding(num_classes, num_classes) if self.mode == "label" else None
        self.joins_vector = "vector" in self.mode
        # the class is the argmax of the soft vector, a non-linear read-out: a hidden layer
        # decodes it before it is joined to z
        self.vector_encoder = (
            nn.Sequential(
                nn.Linear(num_classes, _VECTOR_HIDDEN),
                nn.ReLU(),
                nn.Linear(_VECTOR_HIDDEN, num_classes),
            )
            if self.joins_vector and vector_encoder == "mlp"
            else None
        )
        self.project = nn.Linear(
            latent_dim + latent_conditioning_size(self.mode, num_classes),
            widths[0] * self.base_size[0] * self.base_size[1],
        )
        self.project_norm = nn.BatchNorm2d(widths[0])
        self.stages = nn.ModuleList(
            nn.Sequential(
                *_doubling(widths[i] + (i == self.matrix_stage), widths[i + 1], upsampling),
                nn.BatchNorm2d(widths[i + 1]),
                nn.ReLU(),
                nn.Dropout2d(dropout) if channel_dropout else UnitDropout(dropout),
            )
            for i in range(stages)
        )
        self.to_input = nn.Conv2d(
            widths[-1] + (stages == self.matrix_stage), channels, 3, padding=1
        )
        self.widths = widths

    def forward(self, z: Tensor, condition: ConditioningBatch) -> Tensor:
        code = z
        if self.embedding is not None:
            code = torch.cat([z, self.embedding(condition.targets)], dim=1)
        elif self.joins_vector:
            if condition.vectors is None:
                raise ValueError(f"conditioning {self.mode!r} needs soft vectors; none were drawn")
            vectors = condition.vectors
            if self.vector_encoder is not None:
                # scaled to a mean entry of 1, so that the vector weighs like the unit-variance z
                vectors = self.vector_encoder(vectors * vectors.shape[1])
            code = torch.cat([z, vectors], dim=1)
        hidden = self.project(code).view(len(z), self.widths[0], *self.base_size)
        hidden = F.relu(self.project_norm(hidden))
        for index, stage in enumerate(self.stages):
            stage_input = self._join_matrix(hidden, condition, index)
            hidden = stage(stage_input)
        hidden = self.to_input(self._join_matrix(hidden, condition, len(self.stages)))
        if tuple(hidden.shape[-2:]) != self.output_size:
            hidden = F.interpolate(
                hidden, size=self.output_size, mode="bilinear", align_corners=False
            )
        low, high = self.input_range
        return low + (high - low) * torch.sigmoid(hidden)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object) -> None:
        # a "resize" stage was [nn.Upsample, nn.Conv2d, BatchNorm, ReLU, Dropout] before it
        # became [ResizeConv2d, ...] (same parameters): shift such saved keys down by one
        for index in range(len(self.stages)):
            stage = f"{prefix}stages.{index}."
            convolution = state_dict.get(f"{stage}1.weight")
            if isinstance(convolution, Tensor) and convolution.dim() == 4:
                saved = {
                    key: state_dict.pop(key) for key in list(state_dict) if key.startswith(stage)
                }
                for key, value in saved.items():
                    layer, _, rest = key[len(stage) :].partition(".")
                    state_dict[f"{stage}{int(layer) - 1}.{rest}"] = value
        super()._load_from_state_dict(state_dict, prefix, *args)

    def class_matrix(self, condition: ConditioningBatch, size: Sequence[int]) -> Tensor:
        r"""
        The ``(B, 1, H, W)`` channel joined to the ``size`` feature map in matrix modes:
        ``sum_k v_k code_k`` of the soft vectors (``"projection"``), or the hot matrices
        resized (``"hot"``).
        """
        if self.matrix_encoding == "projection":
            if condition.vectors is None:
                raise ValueError(f"conditioning {self.mode!r} needs soft vectors; none were drawn")
            codes = self.get_buffer("class_codes")
            return torch.einsum("bk,khw->bhw", condition.vectors.to(codes.dtype), codes)[:, None]
        if condition.matrices is None:
            raise ValueError(f"conditioning {self.mode!r} needs hot matrices; none were drawn")
        return matrix_channel(condition.matrices, (size[0], size[1]))

    def _join_matrix(self, hidden: Tensor, condition: ConditioningBatch, index: int) -> Tensor:
        if index != self.matrix_stage:
            return hidden
        channel = self.class_matrix(condition, (hidden.shape[-2], hidden.shape[-1]))
        return torch.cat([hidden, channel.to(hidden.dtype)], dim=1)


def _doubling(in_channels: int, out_channels: int, upsampling: Upsampling) -> list[nn.Module]:
    r"""The layers that double a feature map's size in a stage of the default generator."""
    if upsampling == "transposed":
        return [nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1)]
    return [ResizeConv2d(in_channels, out_channels)]


def _matrix_stage(
    mode: ConditioningMode,
    encoding: MatrixEncoding,
    sizes: Sequence[tuple[int, int]],
    num_classes: int,
) -> int:
    r"""The stage whose input map the class matrix joins; -1 without matrix conditioning."""
    if "matrix" not in mode:
        return -1
    if encoding == "hot":
        # the first map at least as wide as the matrix (format-1 checkpoints)
        fits = [min(size) >= num_classes for size in sizes]
    else:
        # the first map with a pixel per class: orthogonal, equally distant class codes
        fits = [size[0] * size[1] >= num_classes for size in sizes]
    return fits.index(True) if any(fits) else len(sizes) - 1


@contextmanager
def sampling_mode(generator: nn.Module, dropout_active: bool = True) -> Iterator[nn.Module]:
    r"""
    Puts ``generator`` in eval mode (batch norm uses its running statistics) with its dropout
    layers left active when ``dropout_active`` (the paper samples with dropout on, a source of
    diversity); the previous training flags are restored on exit.

    Args:
        generator (nn.Module): The generator.
        dropout_active (bool, optional): Keep dropout on while sampling. Default: True

    Yields:
        ``generator``.
    """
    with eval_mode(generator, _is_dropout if dropout_active else None):
        yield generator


def _is_dropout(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.dropout._DropoutNd)
