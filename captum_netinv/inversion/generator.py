"""The default conditioned generator, sized from the input shape, and its sampling-mode switch.

Transposed convolutions with batch norm and heavy dropout up-sample a projected latent code to
the input shape; the output is mapped into the input range. Any module with the same call
signature (``generator(z, conditioning)``) can replace it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_netinv._utils import eval_mode
from captum_netinv.inversion.conditioning import (
    ConditioningBatch,
    ConditioningMode,
    check_conditioning_mode,
    latent_conditioning_size,
    matrix_channel,
)

__all__ = [
    "ConditionedGenerator",
    "DEFAULT_DROPOUT",
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
#: Dropout rate after every up-sampling stage (benchmarks/bench_inversion.py, RESULTS.md).
DEFAULT_DROPOUT = 0.3


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
    to a ``(width, h0, w0)`` map with ``h0, w0`` in 4..7; each stage doubles the size with a
    transposed convolution, batch norm, ReLU and dropout (of single units by default, of whole
    feature maps with ``channel_dropout``; see the ablation in ``benchmarks/RESULTS.md``); a last
    convolution gives the input's
    channels, resized to ``(H, W)`` where the doubling overshoots, and a sigmoid maps it into
    ``input_range``. With matrix conditioning the hot matrix is joined as an extra channel to
    the first feature map at least ``num_classes`` wide (the last one if none is).

    Args:
        input_shape (tuple[int, int, int]): ``(C, H, W)`` of the generated inputs, H, W >= 8.
        num_classes (int): Number of classes.
        latent_dim (int, optional): Length of the noise vector ``z``. Default: 64
        conditioning (str, optional): One of ``"label"``, ``"vector"``, ``"matrix"``,
                    ``"vector+matrix"``. Default: ``"vector"``
        dropout (float, optional): Dropout rate after every up-sampling stage. Default: 0.3
        channel_dropout (bool, optional): Drop whole feature maps (``nn.Dropout2d``) instead of
                    single units (``nn.Dropout``). Default: False
        input_range (tuple[float, float], optional): Range of the generated values.
                    Default: (0.0, 1.0)

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
    ) -> None:
        super().__init__()
        channels, height, width = check_input_shape(input_shape)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {dropout}")
        self.mode = check_conditioning_mode(conditioning)
        self.output_size = (height, width)
        self.input_range = (float(input_range[0]), float(input_range[1]))
        stages = _upsampling_stages(height, width)
        self.base_size = (math.ceil(height / 2**stages), math.ceil(width / 2**stages))
        widths = [min(_WIDEST, 32 * 2 ** (stages - 1))]
        widths += [max(_NARROWEST, widths[0] // 2 ** (i + 1)) for i in range(stages)]
        sizes = [(self.base_size[0] * 2**i, self.base_size[1] * 2**i) for i in range(stages + 1)]
        # the first map at least as large as the matrix, so that no row or column is merged
        self.matrix_stage = (
            next((i for i in range(stages + 1) if min(sizes[i]) >= num_classes), stages)
            if "matrix" in self.mode
            else -1
        )
        self.embedding = nn.Embedding(num_classes, num_classes) if self.mode == "label" else None
        # the class is the argmax of the soft vector, a non-linear read-out: a hidden layer
        # decodes it before it is joined to z
        self.vector_encoder = (
            nn.Sequential(
                nn.Linear(num_classes, _VECTOR_HIDDEN),
                nn.ReLU(),
                nn.Linear(_VECTOR_HIDDEN, num_classes),
            )
            if "vector" in self.mode
            else None
        )
        self.project = nn.Linear(
            latent_dim + latent_conditioning_size(self.mode, num_classes),
            widths[0] * self.base_size[0] * self.base_size[1],
        )
        self.project_norm = nn.BatchNorm2d(widths[0])
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.ConvTranspose2d(
                    widths[i] + (i == self.matrix_stage), widths[i + 1], 4, stride=2, padding=1
                ),
                nn.BatchNorm2d(widths[i + 1]),
                nn.ReLU(),
                nn.Dropout2d(dropout) if channel_dropout else nn.Dropout(dropout),
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
        elif self.vector_encoder is not None and condition.vectors is not None:
            # scaled to a mean entry of 1, so that the vector weighs like the unit-variance z
            vectors = condition.vectors * condition.vectors.shape[1]
            code = torch.cat([z, self.vector_encoder(vectors)], dim=1)
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

    def _join_matrix(self, hidden: Tensor, condition: ConditioningBatch, index: int) -> Tensor:
        if index != self.matrix_stage:
            return hidden
        if condition.matrices is None:
            raise ValueError(f"conditioning {self.mode!r} needs hot matrices; none were drawn")
        channel = matrix_channel(condition.matrices, (hidden.shape[-2], hidden.shape[-1]))
        return torch.cat([hidden, channel.to(hidden.dtype)], dim=1)


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
