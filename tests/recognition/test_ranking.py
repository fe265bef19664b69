"""Rank statistics against independent truth: scipy's ranks and U test, scikit-learn's AUC."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu, rankdata
from sklearn.metrics import roc_auc_score

from captum_netinv.recognition.ranking import (
    mann_whitney_p_values,
    mann_whitney_u,
    mid_ranks,
    rank_auc,
    u_statistic,
)

ALTERNATIVES = ["greater", "less", "two-sided"]


def _tied_data(samples: int, columns: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Activations with many ties (few distinct values, ReLU-like zeros) and random masks."""
    rng = np.random.default_rng(seed)
    values = np.round(rng.normal(size=(samples, columns)), 1)
    values[rng.random((samples, columns)) < 0.3] = 0.0
    masks = rng.random((samples, columns)) < rng.uniform(0.05, 0.6, size=columns)
    values += 0.4 * masks
    return values, masks


def test_mid_ranks_and_tie_terms_match_scipy() -> None:
    values, _ = _tied_data(500, 6, seed=0)
    ranks, tie_terms = mid_ranks(torch.as_tensor(values, dtype=torch.float32))
    np.testing.assert_array_equal(ranks.numpy(), rankdata(values.astype(np.float32), axis=0))
    for column in range(values.shape[1]):
        _, sizes = np.unique(values[:, column].astype(np.float32), return_counts=True)
        assert tie_terms[column].item() == float((sizes.astype(float) ** 3 - sizes).sum())


def test_auc_matches_sklearn_with_many_ties() -> None:
    values, masks = _tied_data(2000, 12, seed=1)
    ours = rank_auc(torch.as_tensor(values), torch.as_tensor(masks)).numpy()
    reference = [roc_auc_score(masks[:, k], values[:, k]) for k in range(values.shape[1])]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-12)
    shared = rank_auc(torch.as_tensor(values), torch.as_tensor(masks[:, 0])).numpy()
    np.testing.assert_allclose(
        shared, [roc_auc_score(masks[:, 0], values[:, k]) for k in range(12)], atol=1e-12
    )


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_asymptotic_p_values_match_scipy_with_ties(alternative: str) -> None:
    values, masks = _tied_data(3000, 10, seed=2)
    result = mann_whitney_u(torch.as_tensor(values), torch.as_tensor(masks), alternative)
    assert not result.exact.any()
    for k in range(values.shape[1]):
        x, y = values[masks[:, k], k], values[~masks[:, k], k]
        reference = mannwhitneyu(x, y, alternative=alternative)
        assert result.u[k] == reference.statistic
        np.testing.assert_allclose(result.p_value[k], reference.pvalue, rtol=1e-6)
        assert result.auc[k] == pytest.approx(roc_auc_score(masks[:, k], values[:, k]), abs=1e-12)
        # z is the tie-corrected statistic; its sign says which side ranks higher
        assert np.sign(result.z[k]) == np.sign(result.auc[k] - 0.5)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize(("positives", "negatives"), [(5, 9), (3, 400), (8, 8), (9, 4)])
def test_exact_p_values_match_scipy_for_small_samples_without_ties(
    alternative: str, positives: int, negatives: int
) -> None:
    rng = np.random.default_rng(positives * 1000 + negatives)
    values = rng.normal(size=positives + negatives)
    mask = np.zeros(values.size, dtype=bool)
    mask[rng.choice(values.size, positives, replace=False)] = True
    values[mask] += 1.0
    result = mann_whitney_u(torch.as_tensor(values), torch.as_tensor(mask), alternative)
    reference = mannwhitneyu(values[mask], values[~mask], alternative=alternative)
    assert bool(result.exact)
    np.testing.assert_allclose(result.p_value, reference.pvalue, rtol=1e-9)


def test_small_samples_with_ties_use_the_asymptotic_method_like_scipy() -> None:
    values = np.array([1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    mask = np.array([1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0], dtype=bool)
    result = mann_whitney_u(torch.as_tensor(values), torch.as_tensor(mask), "two-sided")
    reference = mannwhitneyu(values[mask], values[~mask], alternative="two-sided")
    assert not bool(result.exact)
    np.testing.assert_allclose(result.p_value, reference.pvalue, rtol=1e-9)


def test_vectorized_p_values_mix_methods() -> None:
    result = mann_whitney_p_values(
        np.array([20.0, 200.0]),
        np.array([4, 30]),
        np.array([10, 20]),
        np.array([0.0, 24.0]),
        "greater",
    )
    assert result.exact.tolist() == [True, False]
    assert result.p_value.shape == (2,)
    with pytest.raises(ValueError, match="`alternative`"):
        mann_whitney_p_values(np.array([1.0]), np.array([2]), np.array([2]), np.array([0.0]), "up")


def test_mask_must_split_the_samples() -> None:
    with pytest.raises(ValueError, match="`mask`"):
        mann_whitney_u(torch.randn(10), torch.ones(10, dtype=torch.bool))
    with pytest.raises(ValueError, match="`mask`"):
        rank_auc(torch.randn(10), torch.ones(9, dtype=torch.bool))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64, torch.int64])
def test_mid_ranks_of_signed_zeros_extremes_and_integers_match_scipy(dtype: torch.dtype) -> None:
    """Ranks are computed on integer sort keys: -0.0 ties with 0.0, negatives order correctly."""
    if dtype.is_floating_point:
        extremes = [-0.0, 0.0, -1e-7, 1e-7, -3.5, 3.5, -6e4, 6e4, 0.0, -0.0]
        values = torch.tensor(extremes + np.round(np.linspace(-5, 5, 40), 1).tolist(), dtype=dtype)
    else:
        values = torch.tensor([-(2**40), 2**40, -1, 0, 1, 0, -1, 7, 7], dtype=dtype)
    ranks, _ = mid_ranks(values)
    expected = rankdata(values.to(torch.float64).numpy())
    np.testing.assert_array_equal(ranks.numpy(), expected)


def test_u_statistic_of_tensors_and_arrays_matches_scipy() -> None:
    values, masks = _tied_data(300, 8, seed=5)
    ranks = rankdata(values, axis=0)
    rank_sums = (ranks * masks).sum(axis=0)
    positives = masks.sum(axis=0)
    expected = [
        mannwhitneyu(values[masks[:, k], k], values[~masks[:, k], k]).statistic
        for k in range(values.shape[1])
    ]
    from_arrays = u_statistic(rank_sums, positives)
    from_tensors = u_statistic(torch.as_tensor(rank_sums), torch.as_tensor(positives))
    assert isinstance(from_arrays, np.ndarray) and from_tensors.dtype == torch.float64
    np.testing.assert_array_equal(from_arrays, expected)
    np.testing.assert_array_equal(from_tensors.numpy(), expected)
