"""Coloured shapes: a procedural colour data set with ground truth for shape, colour, size, place.

Nine classes (circle, square, triangle, each red, green or blue) drawn on a dark, slightly noisy
background; the colour examples, tests, tutorial and benchmarks of colour inversion use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "COLOUR_NAMES",
    "SHAPES_CLASS_NAMES",
    "SHAPE_NAMES",
    "ShapesData",
    "colour_permuted",
    "coloured_shapes",
    "dominant_colour",
]

SHAPE_NAMES: tuple[str, ...] = ("circle", "square", "triangle")
COLOUR_NAMES: tuple[str, ...] = ("red", "green", "blue")
#: The class names, class ``shape * 3 + colour``: "red circle", "green circle", ...
SHAPES_CLASS_NAMES: tuple[str, ...] = tuple(
    f"{colour} {shape}" for shape in SHAPE_NAMES for colour in COLOUR_NAMES
)
#: Half-extent of a shape (circle radius, half a square's side, a triangle's circumradius over
#: 1.2), in pixels on a 32-pixel image; scaled with the image side.
_SIZE_RANGE = (5.0, 12.0)
_MIN_SIDE = 16


@dataclass(frozen=True)
class ShapesData:
    r"""
    A batch of coloured shapes and its ground truth.

    Attributes:
        images (Tensor): ``(N, 3, H, W)`` float32 images in [0, 1].
        labels (Tensor): ``(N,)`` int64 classes, ``shapes * 3 + colours``.
        shapes (Tensor): ``(N,)`` index into :data:`SHAPE_NAMES`.
        colours (Tensor): ``(N,)`` index into :data:`COLOUR_NAMES` (the brightest channel).
        sizes (Tensor): ``(N,)`` half-extent of each shape in pixels.
        positions (Tensor): ``(N, 2)`` centre ``(y, x)`` in pixels.
    """

    images: Tensor
    labels: Tensor
    shapes: Tensor
    colours: Tensor
    sizes: Tensor
    positions: Tensor


def coloured_shapes(count: int, *, seed: int = 0, size: int = 32) -> ShapesData:
    r"""
    ``count`` images of a circle, a square or a triangle in red, green or blue, classes
    balanced and shuffled, deterministic for ``seed`` (no global random state is used).

    Each shape has a random size (half-extent 5-12 pixels at 32 pixels) and position (wholly
    inside the frame); a triangle points up, turned by up to 15 degrees. Its colour has the
    main channel drawn in [0.6, 1] and the other two in [0, 0.3], so hues vary within a
    colour; the background is uniform noise in [0, 0.1] per pixel and channel.

    Args:
        count (int): Number of images, > 0.
        seed (int, optional): Seed of every draw. Default: 0
        size (int, optional): Side of the square images, >= 16. Default: 32

    Returns:
        :class:`ShapesData`.

    Examples::

        >>> data = coloured_shapes(9, seed=0)
        >>> data.images.shape, SHAPES_CLASS_NAMES[int(data.labels[0])] in SHAPES_CLASS_NAMES
        (torch.Size([9, 3, 32, 32]), True)
    """
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ValueError(f"`count` must be an int > 0, got {count!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < _MIN_SIDE:
        raise ValueError(f"`size` must be an int >= {_MIN_SIDE} (pixels), got {size!r}")
    rng = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 9
    labels = labels[torch.randperm(count, generator=rng)]
    shapes, colours = labels // 3, labels % 3
    scale = size / 32
    low, high = (value * scale for value in _SIZE_RANGE)
    sizes = low + (high - low) * torch.rand(count, generator=rng)
    margin = sizes * torch.where(shapes == 2, 1.2, 1.0) + 1
    positions = margin[:, None] + (size - 1 - 2 * margin[:, None]) * torch.rand(
        count, 2, generator=rng
    )
    angles = (torch.rand(count, generator=rng) * 2 - 1) * torch.pi / 12
    masks = _masks(shapes=shapes, sizes=sizes, positions=positions, angles=angles, side=size)
    fill = torch.rand(count, 3, generator=rng) * 0.3
    fill[torch.arange(count), colours] = 0.6 + 0.4 * torch.rand(count, generator=rng)
    background = torch.rand(count, 3, size, size, generator=rng) * 0.1
    images = torch.where(masks[:, None], fill[:, :, None, None], background)
    return ShapesData(
        images=images.float(),
        labels=labels,
        shapes=shapes,
        colours=colours,
        sizes=sizes,
        positions=positions,
    )


def _masks(
    *, shapes: Tensor, sizes: Tensor, positions: Tensor, angles: Tensor, side: int
) -> Tensor:
    r"""``(N, side, side)`` boolean masks of the shapes (pixel centres inside the shape)."""
    coordinates = torch.arange(side, dtype=torch.float32)
    y = coordinates[None, :, None] - positions[:, 0, None, None]
    x = coordinates[None, None, :] - positions[:, 1, None, None]
    radius = sizes[:, None, None]
    circle = y.pow(2) + x.pow(2) <= radius.pow(2)
    square = (y.abs() <= radius) & (x.abs() <= radius)
    # an equilateral triangle of circumradius 1.2 * size, pointing up, turned by `angle`
    cos, sin = angles.cos()[:, None, None], angles.sin()[:, None, None]
    turned_y, turned_x = cos * y - sin * x, sin * y + cos * x
    circumradius = 1.2 * radius
    edges = []
    for edge_angle in (
        torch.pi / 2,
        torch.pi / 2 + 2 * torch.pi / 3,
        torch.pi / 2 + 4 * torch.pi / 3,
    ):
        # the inward normal of each edge points to the centre; distance from centre: R / 2
        normal_y, normal_x = torch.tensor(edge_angle).sin(), torch.tensor(edge_angle).cos()
        edges.append(turned_y * normal_y + turned_x * normal_x <= circumradius / 2)
    triangle = edges[0] & edges[1] & edges[2]
    kind = shapes[:, None, None]
    return torch.where(kind == 0, circle, torch.where(kind == 1, square, triangle))


def dominant_colour(images: Tensor) -> Tensor:
    r"""
    The colour rule: per image, the channel with the largest sum over its foreground, the
    pixels whose brightest channel reaches half of the image's brightest pixel. Right on every
    image :func:`coloured_shapes` draws; used to score the colour of generated samples.

    Args:
        images (Tensor): ``(N, 3, H, W)`` images in [0, 1].

    Returns:
        *Tensor* ``(N,)`` int64 index into :data:`COLOUR_NAMES`.

    Examples::

        >>> image = torch.zeros(1, 3, 8, 8)
        >>> image[0, 2, 2:5, 2:5] = 0.9
        >>> dominant_colour(image).tolist()
        [2]
    """
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(
            "`images` must be an (N, 3, H, W) tensor of RGB images, got "
            f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}"
        )
    brightness = images.amax(dim=1)
    peak = brightness.flatten(1).amax(dim=1)[:, None, None]
    foreground = (brightness >= peak / 2).unsqueeze(1)
    return (images * foreground).sum(dim=(2, 3)).argmax(dim=1)


def colour_permuted(images: Tensor, *, seed: int = 0) -> Tensor:
    r"""
    Each image with its three channels in a random order: the shape kept, the colour
    scrambled. A classifier of shapes trained on such images (a *shape probe*) judges the
    shape of generated samples without reading their colour.

    Args:
        images (Tensor): ``(N, 3, H, W)`` images.
        seed (int, optional): Seed of the channel orders. Default: 0

    Returns:
        *Tensor* of the same shape.

    Examples::

        >>> image = torch.zeros(1, 3, 4, 4)
        >>> image[0, 0] = 1.0
        >>> float(colour_permuted(image, seed=0).sum())
        16.0
    """
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(
            "`images` must be a (N, 3, H, W) tensor, got "
            + (f"shape {tuple(images.shape)}" if isinstance(images, Tensor) else repr(images))
        )
    rng = torch.Generator().manual_seed(seed)
    orders = torch.stack([torch.randperm(3, generator=rng) for _ in range(len(images))])
    return images[torch.arange(len(images))[:, None], orders.to(images.device)]
