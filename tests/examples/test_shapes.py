"""The coloured-shapes data set: deterministic, its ground truth true to its pixels."""

from __future__ import annotations

import math

import pytest
import torch

from captum_netinv.examples.shapes import (
    SHAPES_CLASS_NAMES,
    colour_permuted,
    coloured_shapes,
    dominant_colour,
)


def test_same_seed_same_images_other_seed_other_images() -> None:
    first, again, other = (coloured_shapes(50, seed=s) for s in (3, 3, 4))
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert not torch.equal(first.images, other.images)


def test_shapes_types_range_and_balanced_classes() -> None:
    data = coloured_shapes(90, seed=0, size=40)
    assert data.images.shape == (90, 3, 40, 40) and data.images.dtype == torch.float32
    assert float(data.images.min()) >= 0.0 and float(data.images.max()) <= 1.0
    assert torch.equal(data.labels, data.shapes * 3 + data.colours)
    assert torch.bincount(data.labels, minlength=9).tolist() == [10] * 9
    assert SHAPES_CLASS_NAMES[int(data.labels[0])].split() == [
        ("red", "green", "blue")[int(data.colours[0])],
        ("circle", "square", "triangle")[int(data.shapes[0])],
    ]


def test_the_colour_rule_is_right_on_every_real_image() -> None:
    data = coloured_shapes(2000, seed=5)
    assert torch.equal(dominant_colour(data.images), data.colours)


def test_ground_truth_matches_the_pixels() -> None:
    data = coloured_shapes(300, seed=1)
    for index in range(300):
        image, size = data.images[index], float(data.sizes[index])
        centre_y, centre_x = (int(round(float(v))) for v in data.positions[index])
        # the centre pixel carries the shape's colour as its brightest channel
        assert int(image[:, centre_y, centre_x].argmax()) == int(data.colours[index])
        mask = image.amax(dim=0) >= 0.5  # shape pixels: main channel >= 0.6, background <= 0.1
        area = int(mask.sum())
        expected = {
            0: math.pi * size**2,
            1: (2 * size) ** 2,
            2: 3 * math.sqrt(3) / 4 * (1.2 * size) ** 2,
        }[int(data.shapes[index])]
        assert abs(area - expected) <= 0.15 * expected + 4 * size
        rows, columns = mask.nonzero(as_tuple=True)
        assert rows.min() >= 0 and rows.max() < 32 and columns.max() < 32
        if int(data.shapes[index]) == 1:  # a square's bounding box is its side
            assert abs(int(rows.max() - rows.min()) + 1 - 2 * size) <= 1.5


@pytest.mark.parametrize(
    ("arguments", "name"),
    [({"count": 0}, "count"), ({"count": 5, "size": 8}, "size"), ({"count": 2.5}, "count")],
)
def test_bad_arguments_are_refused(arguments: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        coloured_shapes(**arguments)


def test_dominant_colour_refuses_grey_images() -> None:
    with pytest.raises(ValueError, match="images"):
        dominant_colour(torch.zeros(2, 1, 8, 8))


def test_colour_permuted_keeps_each_pixel_s_channel_values_and_scrambles_colour() -> None:
    data = coloured_shapes(300, seed=2)
    scrambled = colour_permuted(data.images, seed=5)
    # every pixel keeps its three values, in another order: the shape's mask is unchanged
    assert torch.equal(scrambled.sort(dim=1).values, data.images.sort(dim=1).values)
    assert torch.equal(scrambled, colour_permuted(data.images, seed=5))
    # one image's channels are one permutation for all its pixels
    for image, original in zip(scrambled[:20], data.images[:20], strict=True):
        order = [next(c for c in range(3) if torch.equal(image[k], original[c])) for k in range(3)]
        assert sorted(order) == [0, 1, 2]
    # about a third of the images keep their colour (the permutations that fix it: 2 of 6)
    kept = float((dominant_colour(scrambled) == data.colours).float().mean())
    assert 0.2 < kept < 0.5


def test_colour_permuted_refuses_grey_images() -> None:
    with pytest.raises(ValueError, match="images"):
        colour_permuted(torch.zeros(2, 1, 8, 8))
