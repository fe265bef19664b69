"""Each loss term against an independent computation (loops, scipy, hand-made cases)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cosine as cosine_distance
from scipy.special import rel_entr, softmax
from torch import nn

from captum_netinv.inversion.conditioning import draw_conditioning
from captum_netinv.inversion.losses import (
    DEFAULT_LOSS_WEIGHTS,
    batchnorm_layers,
    batchnorm_statistics,
    cosine_similarity,
    cross_entropy,
    feature_orthogonality,
    inversion_loss_terms,
    kl_divergence,
    pairwise_cosine,
    pixel_norm,
    pixel_range,
    record_batchnorm_inputs,
    resolve_loss_weights,
    total_variation,
    weighted_sum,
    within_class_diversity,
)


@pytest.fixture
def features() -> torch.Tensor:
    return torch.randn(6, 9, generator=torch.Generator().manual_seed(0)).double()


def test_kl_divergence_matches_scipy() -> None:
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 4, generator=generator).double()
    vectors = torch.randn(5, 4, generator=generator).double().softmax(dim=1)
    pairs = zip(vectors.numpy(), logits.numpy(), strict=True)
    expected = np.mean([rel_entr(v, softmax(row)).sum() for v, row in pairs])
    assert float(kl_divergence(logits, vectors)) == pytest.approx(expected, rel=1e-9)


def test_cross_entropy_matches_negative_log_softmax() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]]).double()
    targets = torch.tensor([0, 2])
    expected = np.mean(
        [-np.log(softmax(logits[0].numpy())[0]), -np.log(softmax(logits[1].numpy())[2])]
    )
    assert float(cross_entropy(logits, targets)) == pytest.approx(expected, rel=1e-9)


def test_cosine_similarity_is_the_mean_over_distinct_pairs(features: torch.Tensor) -> None:
    values = features.numpy()
    pairs = [(i, j) for i, j in itertools.permutations(range(len(values)), 2)]
    expected = np.mean([1.0 - cosine_distance(values[i], values[j]) for i, j in pairs])
    assert float(cosine_similarity(features)) == pytest.approx(expected, rel=1e-9)
    same = features[:1].repeat(4, 1)
    assert float(cosine_similarity(same)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2"):
        cosine_similarity(features[:1])


def test_feature_orthogonality_matches_a_loop(features: torch.Tensor) -> None:
    values = features.numpy()
    unit = values / np.linalg.norm(values, axis=1, keepdims=True)
    count = len(values)
    expected = (
        sum(
            (float(unit[i] @ unit[j]) - (1.0 if i == j else 0.0)) ** 2
            for i in range(count)
            for j in range(count)
        )
        / count**2
    )
    assert float(feature_orthogonality(features)) == pytest.approx(expected, rel=1e-9)
    assert float(feature_orthogonality(torch.eye(5))) == pytest.approx(0.0, abs=1e-12)


def test_total_variation_matches_a_loop() -> None:
    images = torch.rand(2, 3, 5, 4, generator=torch.Generator().manual_seed(2)).double()
    array = images.numpy()
    vertical = np.mean(
        [
            abs(array[b, c, h + 1, w] - array[b, c, h, w])
            for b in range(2)
            for c in range(3)
            for h in range(4)
            for w in range(4)
        ]
    )
    horizontal = np.mean(
        [
            abs(array[b, c, h, w + 1] - array[b, c, h, w])
            for b in range(2)
            for c in range(3)
            for h in range(5)
            for w in range(3)
        ]
    )
    assert float(total_variation(images)) == pytest.approx(vertical + horizontal, rel=1e-9)
    assert float(total_variation(torch.ones(1, 1, 4, 4))) == 0.0


def test_pixel_range_penalises_only_values_outside() -> None:
    images = torch.tensor([-0.5, 0.0, 0.3, 1.0, 1.2]).view(1, 1, 1, 5)
    assert float(pixel_range(images, 0.0, 1.0)) == pytest.approx((0.25 + 0.04) / 5)
    assert float(pixel_range(torch.rand(2, 1, 3, 3), 0.0, 1.0)) == 0.0


def test_pixel_norm_is_the_mean_square_of_the_model_input() -> None:
    images = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(6)).double()
    assert float(pixel_norm(images)) == pytest.approx(float(np.mean(images.numpy() ** 2)))
    normalized = (images - 0.5) / 0.25
    terms = inversion_loss_terms(
        torch.randn(3, 2),
        torch.rand(3, 4),
        images,
        conditioning=draw_conditioning("label", torch.tensor([0, 1, 0]), 2),
        weights=resolve_loss_weights({"pixel_norm": 1.0}),
        input_range=(0.0, 1.0),
        model_inputs=normalized,
    )
    assert float(terms["pixel_norm"]) == pytest.approx(float(np.mean(normalized.numpy() ** 2)))


def test_batchnorm_statistics_matches_the_running_statistics() -> None:
    norm = nn.BatchNorm2d(3)
    norm.running_mean = torch.tensor([0.5, -1.0, 2.0])
    norm.running_var = torch.tensor([1.0, 4.0, 0.25])
    inputs = torch.randn(8, 3, 5, 5, generator=torch.Generator().manual_seed(4)).double()
    array = inputs.numpy()
    mean = array.mean(axis=(0, 2, 3))
    variance = array.var(axis=(0, 2, 3))
    expected = np.linalg.norm(mean - norm.running_mean.numpy()) + np.linalg.norm(
        variance - norm.running_var.numpy()
    )
    assert float(batchnorm_statistics(inputs, norm)) == pytest.approx(expected, rel=1e-6)
    matching = norm.running_mean.view(1, 3, 1, 1) + norm.running_var.sqrt().view(1, 3, 1, 1) * (
        torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1).expand(2, 3, 1, 1)
    )
    assert float(batchnorm_statistics(matching, norm)) == pytest.approx(0.0, abs=1e-6)


def test_record_batchnorm_inputs_captures_and_removes_hooks() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.BatchNorm2d(2))
    norms = batchnorm_layers(model)
    assert norms == [model[1], model[3]]
    inputs = torch.randn(3, 1, 6, 6)
    with record_batchnorm_inputs(norms) as records:
        model.eval()(inputs)
    assert [module for module, _ in records] == norms
    assert torch.allclose(records[0][1], model[0](inputs))
    assert all(not norm._forward_pre_hooks for norm in norms)
    with pytest.raises(RuntimeError), record_batchnorm_inputs(norms):
        raise RuntimeError("boom")
    assert all(not norm._forward_pre_hooks for norm in norms)


def test_inversion_loss_terms_computes_the_weighted_terms_only() -> None:
    targets = torch.tensor([0, 1, 2, 0])
    batch = draw_conditioning("vector", targets, 3)
    logits, features, images = torch.randn(4, 3), torch.rand(4, 5), torch.rand(4, 1, 6, 6)
    weights = resolve_loss_weights(
        {"total_variation": 0.0, "pixel_norm": 0.0, "batchnorm_statistics": 1.0}
    )
    terms = inversion_loss_terms(
        logits, features, images, conditioning=batch, weights=weights, input_range=(0.0, 1.0)
    )
    assert set(terms) == {
        "cross_entropy",
        "kl_divergence",
        "cosine_similarity",
        "feature_orthogonality",
        "pixel_range",
    }
    assert torch.equal(terms["cross_entropy"], cross_entropy(logits, targets))
    assert vars(batch)["vectors"] is not None
    assert torch.equal(terms["kl_divergence"], kl_divergence(logits, batch.vectors))  # type: ignore[arg-type]
    no_vectors = draw_conditioning("label", targets, 3)
    assert "kl_divergence" not in inversion_loss_terms(
        logits, features, images, conditioning=no_vectors, weights=weights, input_range=(0.0, 1.0)
    )
    total = weighted_sum(terms, weights)
    assert float(total) == pytest.approx(sum(weights[k] * float(v) for k, v in terms.items()))


def test_resolve_loss_weights_refuses_unknown_and_negative() -> None:
    assert resolve_loss_weights(None) == DEFAULT_LOSS_WEIGHTS
    with pytest.raises(ValueError, match="unknown term 'style'"):
        resolve_loss_weights({"style": 1.0})
    with pytest.raises(ValueError, match="cross_entropy"):
        resolve_loss_weights({"cross_entropy": -1.0})


def test_within_class_diversity_matches_pairwise_cosine_distances() -> None:
    generator = torch.Generator().manual_seed(5)
    features = torch.rand(9, 4, generator=generator).double()
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 0])
    diversity = within_class_diversity(features, labels, 4)
    for label in range(2):
        rows = features[labels == label].numpy()
        expected = np.mean([cosine_distance(a, b) for a, b in itertools.permutations(rows, 2)])
        assert float(diversity[label]) == pytest.approx(expected, rel=1e-6)
    assert torch.isnan(diversity[2]) and torch.isnan(diversity[3])


def test_the_diversity_terms_share_one_cosine_matrix_and_equal_the_terms_alone() -> None:
    torch.manual_seed(0)
    features = torch.randn(6, 5)
    calls: list[int] = []

    def counted(values: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return pairwise_cosine(values)

    terms = inversion_loss_terms(
        torch.randn(6, 3),
        features,
        torch.rand(6, 1, 4, 4),
        conditioning=draw_conditioning("vector", torch.arange(6) % 3, 3),
        weights={"cosine_similarity": 1.0, "feature_orthogonality": 1.0},
        input_range=(0.0, 1.0),
        similarity=counted,
    )
    assert len(calls) == 1
    assert torch.equal(terms["cosine_similarity"], cosine_similarity(features))
    assert torch.equal(terms["feature_orthogonality"], feature_orthogonality(features))
