"""Tests of the conditioning: soft vectors, hot matrices, class code maps and the batch draw."""

from __future__ import annotations

import pytest
import torch

from captum_netinv.inversion.conditioning import (
    CONDITIONING_MODES,
    check_conditioning_mode,
    class_code_maps,
    draw_conditioning,
    hot_matrices,
    matrix_channel,
    soft_hot_matrices,
    soft_vectors,
)


def test_soft_vectors_are_distributions_with_the_target_as_argmax() -> None:
    targets = torch.arange(10).repeat(50)
    vectors = soft_vectors(targets, 10, torch.Generator().manual_seed(0), scale=1.0, margin=0.0)
    assert vectors.shape == (500, 10)
    assert torch.allclose(vectors.sum(dim=1), torch.ones(500))
    assert torch.equal(vectors.argmax(dim=1), targets)
    # soft, not one-hot: the target keeps well under all the mass and the vectors differ
    assert 0.15 < float(vectors.max(dim=1).values.mean()) < 0.6
    assert len(torch.unique(vectors, dim=0)) == 500


def test_soft_vectors_are_the_softmax_of_a_permuted_gaussian_draw() -> None:
    targets = torch.tensor([2, 0, 4])
    vectors = soft_vectors(targets, 5, torch.Generator().manual_seed(3), scale=2.0, margin=0.0)
    draws = 2.0 * torch.randn(3, 5, generator=torch.Generator().manual_seed(3))
    # the values are a softmax of the same draw, only two entries swapped per row
    expected = draws.softmax(dim=1)
    assert torch.allclose(vectors.sort(dim=1).values, expected.sort(dim=1).values)


def test_hot_matrix_sets_row_and_column_of_the_target() -> None:
    matrices = hot_matrices(torch.tensor([0, 3]), 4)
    assert matrices.shape == (2, 1, 4, 4)
    for index, target in enumerate((0, 3)):
        expected = torch.zeros(4, 4)
        expected[target, :] = 1.0
        expected[:, target] = 1.0
        assert torch.equal(matrices[index, 0], expected)


def test_matrix_channel_resizes_with_binary_values() -> None:
    matrices = hot_matrices(torch.tensor([1]), 10)
    resized = matrix_channel(matrices, (7, 7))
    assert resized.shape == (1, 1, 7, 7)
    assert set(resized.unique().tolist()) <= {0.0, 1.0}
    assert matrix_channel(matrices, (10, 10)) is matrices
    enlarged = matrix_channel(matrices, (20, 20))
    assert torch.equal(enlarged[0, 0, ::2, ::2], matrices[0, 0])


@pytest.mark.parametrize("mode", CONDITIONING_MODES)
def test_draw_conditioning_holds_what_each_mode_needs(mode: str) -> None:
    targets = torch.tensor([1, 2, 3])
    batch = draw_conditioning(check_conditioning_mode(mode), targets, 10)
    assert torch.equal(batch.targets, targets)
    # the projected class matrix is derived from a soft vector: matrix modes draw one too
    assert (batch.vectors is not None) == (mode != "label")
    assert batch.matrices is None
    hot = draw_conditioning(check_conditioning_mode(mode), targets, 10, matrix_encoding="hot")
    assert (hot.vectors is not None) == ("vector" in mode)
    assert (hot.matrices is not None) == ("matrix" in mode)
    with pytest.raises(ValueError, match="`matrix_encoding` must be one of"):
        draw_conditioning("matrix", targets, 10, matrix_encoding="pooled")  # type: ignore[arg-type]


def test_soft_hot_matrix_of_a_one_hot_vector_marks_row_and_column() -> None:
    vectors = torch.tensor([[0.2, 0.7, 0.1]])
    matrices = soft_hot_matrices(vectors)
    assert matrices.shape == (1, 1, 3, 3)
    assert torch.allclose(matrices[0, 0], (vectors.T + vectors) / 2)
    one_hot = soft_hot_matrices(torch.eye(4)[[2]])[0, 0]
    assert float(one_hot[2, 2]) == 1.0 and float(one_hot.sum()) == 1.0 + 6 * 0.5


@pytest.mark.parametrize(("num_classes", "size"), [(10, (7, 7)), (1000, (4, 4)), (100, (4, 6))])
def test_class_code_maps_are_fixed_distinct_and_unit_scaled(
    num_classes: int, size: tuple[int, int]
) -> None:
    before = torch.random.get_rng_state()
    codes = class_code_maps(num_classes, size)
    assert torch.equal(torch.random.get_rng_state(), before)  # no global random state used
    assert codes.shape == (num_classes, *size)
    assert torch.equal(codes, class_code_maps(num_classes, size))
    flat = codes.flatten(1).double()
    assert torch.allclose(flat.pow(2).mean(dim=1), torch.ones(num_classes, dtype=torch.float64))
    distances = torch.cdist(flat, flat) + torch.eye(num_classes, dtype=torch.float64) * 1e9
    assert float(distances.min()) > 0.1
    if size[0] * size[1] >= num_classes:  # orthogonal: every pair equally far apart
        identity = torch.eye(num_classes, dtype=torch.float64)
        assert torch.allclose(flat @ flat.T / flat.shape[1], identity, atol=1e-5)


def test_unknown_mode_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="`conditioning` must be one of"):
        check_conditioning_mode("one-hot")


def test_matrix_channel_keeps_the_target_when_shrinking() -> None:
    matrices = hot_matrices(torch.arange(10), 10)
    shrunk = matrix_channel(matrices, (4, 4))
    assert shrunk.shape == (10, 1, 4, 4)
    # every class still marks a full row and column of the smaller map
    assert bool((shrunk.amax(dim=(2, 3)) == 1).all())
    assert bool((shrunk[:, 0].sum(dim=(1, 2)) >= 7).all())


def test_soft_vector_scale_sharpens_the_vectors() -> None:
    targets = torch.arange(10).repeat(20)
    soft = soft_vectors(targets, 10, torch.Generator().manual_seed(0), scale=1.0, margin=0.0)
    sharp = soft_vectors(targets, 10, torch.Generator().manual_seed(0), scale=3.0, margin=0.0)
    assert torch.equal(sharp.argmax(dim=1), targets)
    assert float(sharp.max(dim=1).values.mean()) > float(soft.max(dim=1).values.mean()) + 0.2


def test_soft_vector_margin_separates_target_from_runner_up() -> None:
    targets = torch.arange(10).repeat(100)
    plain = soft_vectors(targets, 10, torch.Generator().manual_seed(0), margin=0.0)
    vectors = soft_vectors(targets, 10, torch.Generator().manual_seed(0), margin=1.0)
    top_two = vectors.topk(2, dim=1).values
    assert torch.equal(vectors.argmax(dim=1), targets)
    assert bool((top_two[:, 0] / top_two[:, 1] >= torch.e - 1e-4).all())
    plain_two = plain.topk(2, dim=1).values
    assert float((plain_two[:, 0] / plain_two[:, 1]).min()) < 1.1  # why the margin exists
