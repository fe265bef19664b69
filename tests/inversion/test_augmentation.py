"""What the model sees in a fit: one roll per batch, or a shift and zoom per sample."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from captum_netinv.inversion.augmentation import augmented, centered, jittered


def test_jitter_rolls_by_at_most_jitter_pixels() -> None:
    images = torch.arange(2 * 9 * 9, dtype=torch.float32).view(2, 1, 9, 9)
    offsets = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)]
    torch.manual_seed(0)
    drawn = set()
    for _ in range(100):
        shifted = jittered(images, 2)
        rolls = [o for o in offsets if torch.equal(shifted, torch.roll(images, o, dims=(2, 3)))]
        assert len(rolls) == 1 and max(map(abs, rolls[0])) <= 2
        drawn.add(rolls[0])
    assert len(drawn) == 25  # every offset in [-2, 2]^2 is drawn
    assert jittered(images, 0) is images


def test_zoom_zero_is_the_batch_roll() -> None:
    images = torch.rand(3, 1, 12, 12)
    torch.manual_seed(5)
    expected = jittered(images, 2)
    torch.manual_seed(5)
    assert torch.equal(augmented(images, 2, 0.0), expected)


def test_unit_scale_shifts_each_sample_by_its_own_whole_pixels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    images = torch.zeros(6, 1, 16, 16)
    images[:, :, 5:11, 5:11] = torch.rand(6, 1, 6, 6)  # content away from the border
    monkeypatch.setattr(torch, "rand", lambda *args, **kwargs: torch.full((6,), 0.5))  # scale 1
    torch.manual_seed(1)
    offsets = torch.randint(-3, 4, (6, 2))  # the draw augmented() makes next
    torch.manual_seed(1)
    out = augmented(images, 3, 0.2)
    for sample, (dx, dy) in enumerate(offsets.tolist()):
        rolled = torch.roll(images[sample], shifts=(-dy, -dx), dims=(-2, -1))
        assert torch.allclose(out[sample], rolled, atol=1e-5)
    assert len({tuple(o) for o in offsets.tolist()}) > 1  # the samples moved differently


def test_zoom_scales_the_content_and_is_differentiable() -> None:
    torch.manual_seed(0)
    square = torch.zeros(64, 1, 32, 32)
    square[:, :, 12:20, 12:20] = 1.0
    square.requires_grad_(True)
    out = augmented(square, 0, 0.3)
    areas = out.detach().sum(dim=(1, 2, 3)) / 64.0  # relative to the 8x8 square
    assert 0.7**2 - 0.05 <= float(areas.min()) and float(areas.max()) <= 1.3**2 + 0.05
    assert float(areas.std()) > 0.05  # every sample its own zoom
    out.sum().backward()
    assert square.grad is not None and float(square.grad.abs().sum()) > 0


@pytest.mark.parametrize("zoom", [-0.1, 1.0, float("nan")])
def test_bad_zoom_is_refused(zoom: float) -> None:
    from captum_netinv.inversion import InversionSettings

    with pytest.raises((ValueError, TypeError), match="`zoom`"):
        InversionSettings(zoom=zoom)


def test_centering_the_whole_image_returns_it() -> None:
    images = torch.rand(2, 3, 8, 8)
    assert centered(images, 1.0) is images


@pytest.mark.parametrize(
    ("shape", "rows", "columns"), [((8, 8), (2, 6), (2, 6)), ((10, 6), (2, 7), (1, 4))]
)
def test_centering_is_the_central_crop_resized_back(
    shape: tuple[int, int], rows: tuple[int, int], columns: tuple[int, int]
) -> None:
    images = torch.rand(2, 3, *shape)
    crop = images[:, :, rows[0] : rows[1], columns[0] : columns[1]]
    expected = F.interpolate(crop, size=shape, mode="bilinear", align_corners=False)
    assert torch.allclose(centered(images, 0.5), expected)


def test_centering_passes_gradients_to_the_crop_alone() -> None:
    images = torch.rand(2, 1, 8, 8, requires_grad=True)
    centered(images, 0.5).pow(2).sum().backward()
    assert images.grad is not None
    assert bool((images.grad[:, :, 2:6, 2:6] != 0).all())
    outside = images.grad.clone()
    outside[:, :, 2:6, 2:6] = 0
    assert not bool(outside.any())


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_a_centering_fraction_outside_0_1_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="`fraction` must be in"):
        centered(torch.rand(1, 1, 4, 4), fraction)
