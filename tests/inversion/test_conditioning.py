"""Tests of the conditioning: soft vectors, hot matrices, their resizing and the batch draw."""

from __future__ import annotations

import pytest
import torch

from captum_netinv.inversion.conditioning import (
    CONDITIONING_MODES,
    check_conditioning_mode,
    draw_conditioning,
    hot_matrices,
    matrix_channel,
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
    assert (batch.vectors is not None) == ("vector" in mode)
    assert (batch.matrices is not None) == ("matrix" in mode)


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
