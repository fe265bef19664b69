"""What the frozen model sees of a generated batch during a fit: random shifts and zooms.

A generator that must satisfy the classifier at random offsets and scales cannot rely on
pixel-exact patterns that only this classifier reads; it has to draw shapes that survive the
perturbation, which other models then recognize too (DeepInversion's jitter, Yin et al. 2020;
Plug-In Inversion's augmentation ensembles, Ghiasi et al. 2022). The randomness comes from
torch's global generator, which a fit forks and seeds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["augmented", "centered", "colour_shifted", "flipped", "jittered"]


def jittered(inputs: Tensor, jitter: int) -> Tensor:
    r"""
    ``inputs`` rolled by one random offset of at most ``jitter`` pixels along height and width
    (DeepInversion's jitter): one integer shift for the whole batch.

    Args:
        inputs (Tensor): ``(B, C, H, W)`` batch.
        jitter (int): Largest shift in pixels; 0 returns ``inputs`` unchanged.

    Returns:
        *Tensor* of the same shape.

    Examples::

        >>> jittered(torch.zeros(2, 1, 8, 8), 1).shape
        torch.Size([2, 1, 8, 8])
    """
    if jitter == 0:
        return inputs
    shift_y, shift_x = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,)))
    return torch.roll(inputs, shifts=(shift_y, shift_x), dims=(-2, -1))


def flipped(inputs: Tensor) -> Tensor:
    r"""
    ``inputs`` with a random half of its samples (each with probability 1/2) mirrored left to
    right (Plug-In Inversion's and DeepInversion's flips).

    Args:
        inputs (Tensor): ``(B, C, H, W)`` batch.

    Returns:
        *Tensor* of the same shape.

    Examples::

        >>> flipped(torch.zeros(2, 3, 8, 8)).shape
        torch.Size([2, 3, 8, 8])
    """
    mirror = torch.rand(len(inputs), device=inputs.device) < 0.5
    return torch.where(mirror[:, None, None, None], inputs.flip(-1), inputs)


def colour_shifted(inputs: Tensor, strength: float) -> Tensor:
    r"""
    ``inputs`` with every channel of every sample scaled by ``exp(U[-strength, strength])``
    and moved by ``U[-strength, strength]`` (Plug-In Inversion's colour jitter, in the model's
    input space): a generated image keeps its class under the shift only where its colours
    are clear, not balanced on one exact hue.

    Args:
        inputs (Tensor): ``(B, C, H, W)`` batch, in the model's input space.
        strength (float): Largest log-scale and shift; 0 returns ``inputs`` unchanged.

    Returns:
        *Tensor* of the same shape.

    Examples::

        >>> colour_shifted(torch.zeros(2, 3, 8, 8), 0.2).shape
        torch.Size([2, 3, 8, 8])
    """
    if strength == 0:
        return inputs
    shape = (len(inputs), inputs.shape[1], 1, 1)
    draws = (torch.rand((2, *shape), device=inputs.device, dtype=inputs.dtype) * 2 - 1) * strength
    return inputs * draws[0].exp() + draws[1]


def centered(inputs: Tensor, fraction: float) -> Tensor:
    r"""
    The central ``fraction`` of the height and width of ``inputs`` (rounded to whole pixels, at
    least one), resized bilinearly back to the full size (differentiable): Plug-In Inversion's
    centering (Ghiasi et al. 2022), under which the model first sees only the middle of the
    image, so that the generator puts the class's object there before filling the rest.

    Args:
        inputs (Tensor): ``(B, C, H, W)`` batch.
        fraction (float): Side of the crop relative to the image's, in ``(0, 1]``; a crop of
                    the whole image returns ``inputs`` unchanged.

    Returns:
        *Tensor* of the same shape.

    Examples::

        >>> centered(torch.rand(2, 3, 8, 8), 0.5).shape
        torch.Size([2, 3, 8, 8])
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"`fraction` must be in (0, 1], got {fraction}")
    height, width = inputs.shape[-2:]
    crop_height = max(1, min(height, round(fraction * height)))
    crop_width = max(1, min(width, round(fraction * width)))
    if (crop_height, crop_width) == (height, width):
        return inputs
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    crop = inputs[..., top : top + crop_height, left : left + crop_width]
    return F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False)


def augmented(
    inputs: Tensor, jitter: int, zoom: float, *, flips: bool = False, colour_shift: float = 0.0
) -> Tensor:
    r"""
    What the model sees of ``inputs`` in a fit. With ``zoom == 0`` this is
    :func:`jittered`; with ``zoom > 0`` every sample gets its own random affine transform
    (Plug-In Inversion's augmentation ensemble): a shift of up to ``jitter`` pixels along each
    axis and a zoom by a factor drawn uniformly from ``[1 - zoom, 1 + zoom]``, resampled
    bilinearly (differentiable), the border pixels repeated outside the image. Then, where
    asked, :func:`flipped` mirrors half of the samples and :func:`colour_shifted` shifts their
    colours (drawn after the shifts and zooms, so that without them the draws are as before).

    Args:
        inputs (Tensor): ``(B, C, H, W)`` batch, in the model's input space.
        jitter (int): Largest shift in pixels.
        zoom (float): Largest relative change of scale, in ``[0, 1)``.
        flips (bool, optional): Mirror a random half of the samples. Default: False
        colour_shift (float, optional): Strength of the colour shift. Default: 0.0

    Returns:
        *Tensor* of the same shape.

    Examples::

        >>> augmented(torch.rand(4, 1, 28, 28), 2, 0.1).shape
        torch.Size([4, 1, 28, 28])
    """
    moved = _shifted_and_zoomed(inputs, jitter, zoom)
    if flips:
        moved = flipped(moved)
    return colour_shifted(moved, colour_shift)


def _shifted_and_zoomed(inputs: Tensor, jitter: int, zoom: float) -> Tensor:
    if zoom == 0:
        return jittered(inputs, jitter)
    count, _, height, width = inputs.shape
    scale = 1 + (torch.rand(count, device=inputs.device) * 2 - 1) * zoom
    offsets = torch.randint(-jitter, jitter + 1, (count, 2), device=inputs.device)
    theta = torch.zeros(count, 2, 3, device=inputs.device, dtype=inputs.dtype)
    theta[:, 0, 0] = 1 / scale
    theta[:, 1, 1] = 1 / scale
    theta[:, 0, 2] = offsets[:, 0] * (2 / width)
    theta[:, 1, 2] = offsets[:, 1] * (2 / height)
    grid = F.affine_grid(theta, list(inputs.shape), align_corners=False)
    return F.grid_sample(inputs, grid, padding_mode="border", align_corners=False)
