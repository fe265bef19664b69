"""Loss terms and image priors of network inversion, one small function each, and their sum.

Class terms (KL to the soft vector, cross-entropy), diversity terms on the classifier's
features (pairwise cosine similarity, orthogonality) and in pixel space (mode seeking), and image
priors (total variation, pixel range and norm, contrast, BatchNorm running-statistics matching as
in DeepInversion, feature statistics of reference inputs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_netinv._utils import modules_of
from captum_netinv.inversion.conditioning import ConditioningBatch
from captum_netinv.inversion.feature_statistics import FeatureStatistics, record_inputs

__all__ = [
    "DEFAULT_LOSS_WEIGHTS",
    "IMAGE_PRIORS",
    "batchnorm_distance",
    "batchnorm_layers",
    "batchnorm_statistics",
    "cosine_similarity",
    "cross_entropy",
    "feature_orthogonality",
    "Similarity",
    "inversion_loss_terms",
    "kl_divergence",
    "mode_seeking",
    "pairwise_cosine",
    "pixel_contrast",
    "pixel_norm",
    "pixel_range",
    "record_batchnorm_inputs",
    "resolve_loss_weights",
    "total_variation",
    "weighted_sum",
    "within_class_diversity",
]

#: Every loss term's name and its default weight (chosen from benchmarks/bench_inversion.py).
DEFAULT_LOSS_WEIGHTS: dict[str, float] = {
    "cross_entropy": 1.0,
    "kl_divergence": 1.0,
    "cosine_similarity": 0.3,
    "feature_orthogonality": 0.1,
    "total_variation": 0.2,
    "pixel_range": 1.0,
    "pixel_norm": 4.0,
    "batchnorm_statistics": 0.1,
    "feature_statistics": 1.0,
    "pixel_contrast": 0.0,
    "mode_seeking": 0.0,
}
#: The image priors; counterfeits are searched with these switched off.
IMAGE_PRIORS: tuple[str, ...] = (
    "total_variation",
    "pixel_range",
    "pixel_norm",
    "batchnorm_statistics",
    "feature_statistics",
    "pixel_contrast",
)
#: The brightness the brightest pixels of an image should reach, as a share of the input range
#: (:func:`pixel_contrast`): real MNIST strokes average 0.90, the example colour shapes 0.8 (their
#: main channel is drawn in 0.6-1.0).
CONTRAST_LEVEL = 0.8
#: The share of an image's pixels counted as its brightest: less than the thinnest real object
#: covers (a "1" covers about 8% of a 28x28 digit, the smallest example shape about 10%).
CONTRAST_SHARE = 0.05


def resolve_loss_weights(loss_weights: Mapping[str, float] | None) -> dict[str, float]:
    r"""
    The default weights updated with ``loss_weights``; unknown names or negative or
    non-finite weights raise a ``ValueError``.
    """
    weights = dict(DEFAULT_LOSS_WEIGHTS)
    for name, value in (loss_weights or {}).items():
        if name not in weights:
            raise ValueError(
                f"`loss_weights` has an unknown term {name!r}; terms are {sorted(weights)}"
            )
        if not isinstance(value, (int, float)) or not 0.0 <= float(value) < float("inf"):
            raise ValueError(f"`loss_weights[{name!r}]` must be a finite float >= 0, got {value!r}")
        weights[name] = float(value)
    return weights


def kl_divergence(logits: Tensor, vectors: Tensor) -> Tensor:
    r"""
    ``KL(vectors || softmax(logits))`` averaged over the batch: the classifier's output
    distribution should match the conditioning vector.

    Args:
        logits (Tensor): ``(B, K)`` classifier outputs; only the first ``K`` columns are
                    compared where there are more (a neuron inversion's threshold column).
        vectors (Tensor): ``(B, K)`` conditioning vectors (rows summing to 1).

    Returns:
        *Tensor*, a scalar.
    """
    compared = logits[:, : vectors.shape[1]]
    return F.kl_div(compared.log_softmax(dim=1), vectors, reduction="batchmean")


def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    r"""Cross-entropy of the classifier's ``(B, K)`` ``logits`` to the ``(B,)`` ``targets``."""
    return F.cross_entropy(logits, targets)


#: ``features -> (B, B)`` cosine similarities of every pair of samples.
Similarity = Callable[[Tensor], Tensor]


def pairwise_cosine(features: Tensor) -> Tensor:
    r"""
    ``(B, B)`` cosine similarities of the rows of ``(B, ...)`` ``features`` (flattened per
    sample): the matrix the diversity terms are computed from.
    """
    unit = F.normalize(features.flatten(1), dim=1, eps=1e-8)
    return unit @ unit.T


def cosine_similarity(features: Tensor, similarity: Similarity = pairwise_cosine) -> Tensor:
    r"""
    Mean cosine similarity over all pairs ``i != j`` of the batch's ``features``; minimising it
    spreads the generated samples apart in the classifier's feature space.

    Args:
        features (Tensor): ``(B, ...)`` features, flattened per sample; ``B >= 2``.
        similarity (Callable, optional): ``features -> (B, B)`` cosine matrix; a model view
                    whose features have a structure may compute it faster. Default:
                    :func:`pairwise_cosine`

    Returns:
        *Tensor*, a scalar in [-1, 1].
    """
    count = features.shape[0]
    if count < 2:
        raise ValueError(f"pairwise similarity needs a batch of at least 2, got {count}")
    matrix = similarity(features)
    return (matrix.sum() - matrix.diagonal().sum()) / (count * (count - 1))


def feature_orthogonality(features: Tensor, similarity: Similarity = pairwise_cosine) -> Tensor:
    r"""
    ``||F F^T - I||^2 / B^2`` with ``F`` the row-normalised ``(B, D)`` features: zero when the
    samples' features are mutually orthogonal.

    Args:
        features (Tensor): ``(B, ...)`` features, flattened per sample.
        similarity (Callable, optional): As for :func:`cosine_similarity`.

    Returns:
        *Tensor*, a scalar >= 0.
    """
    matrix = similarity(features)
    identity = torch.eye(len(matrix), device=matrix.device, dtype=matrix.dtype)
    return (matrix - identity).pow(2).sum() / len(matrix) ** 2


def total_variation(images: Tensor) -> Tensor:
    r"""
    Anisotropic total variation: mean absolute difference of vertically plus horizontally
    adjacent pixels of ``(B, C, H, W)`` ``images``.
    """
    vertical = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    horizontal = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    return vertical + horizontal


def pixel_range(images: Tensor, low: float, high: float) -> Tensor:
    r"""Mean squared amount by which ``images`` leave ``[low, high]``; zero inside it."""
    return (F.relu(images - high) + F.relu(low - images)).pow(2).mean()


def pixel_norm(inputs: Tensor) -> Tensor:
    r"""
    DeepInversion's l2 prior: the mean squared value of the model-space ``inputs``; it pulls
    pixels towards zero (the normalisation mean, or black for [0, 1] inputs) so that only what
    the class needs is drawn.
    """
    return inputs.pow(2).mean()


def pixel_contrast(
    images: Tensor,
    low: float,
    high: float,
    level: float = CONTRAST_LEVEL,
    share: float = CONTRAST_SHARE,
) -> Tensor:
    r"""
    A brightness prior that keeps contrast: per image, the mean brightness of its brightest
    ``share`` of pixels (a pixel's brightness is its largest channel, as a share of ``[low,
    high]``) should reach ``level``; the loss is the mean squared shortfall. Unlike the l2
    prior it leaves the background free to be dark and asks the drawn strokes to be bright.

    Args:
        images (Tensor): ``(B, C, H, W)`` generated images in the generator's range.
        low (float): Bottom of the range.
        high (float): Top of the range.
        level (float, optional): Target brightness of the brightest pixels. Default: 0.8
        share (float, optional): Share of pixels counted as the brightest. Default: 0.05

    Returns:
        *Tensor*, a scalar >= 0.

    Examples::

        >>> float(pixel_contrast(torch.ones(2, 1, 8, 8), 0.0, 1.0))
        0.0
    """
    brightness = ((images - low) / (high - low)).amax(dim=1).flatten(1)
    count = max(1, int(brightness.shape[1] * share))
    brightest = brightness.topk(count, dim=1).values.mean(dim=1)
    return F.relu(level - brightest).pow(2).mean()


def mode_seeking(images: Tensor, latents: Tensor, targets: Tensor) -> Tensor:
    r"""
    MSGAN's mode-seeking term (Mao et al., 2019) over the pairs of a batch that share a class:
    the mean of ``1 / (d_image / d_latent + 1e-5)``, with ``d`` the mean absolute difference of
    two samples' pixels and of their latent codes. Minimising it makes samples of one class
    move apart in pixel space as their codes do, so the generator cannot ignore its noise.

    Args:
        images (Tensor): ``(B, C, H, W)`` generated images.
        latents (Tensor): ``(B, D)`` their latent codes.
        targets (Tensor): ``(B,)`` their classes.

    Returns:
        *Tensor*, a scalar >= 0; zero where no two samples share a class.
    """
    pixels = images.flatten(1)
    image_distance = torch.cdist(pixels, pixels, p=1) / pixels.shape[1]
    latent_distance = torch.cdist(latents, latents, p=1) / latents.shape[1]
    same = targets[:, None] == targets[None, :]
    pairs = same & ~torch.eye(len(targets), dtype=torch.bool, device=targets.device)
    if not bool(pairs.any()):
        return images.sum() * 0.0
    ratios = image_distance[pairs] / latent_distance[pairs].clamp_min(1e-8)
    return (1.0 / (ratios + 1e-5)).mean()


def batchnorm_statistics(inputs: Tensor, norm: nn.modules.batchnorm._BatchNorm) -> Tensor:
    r"""
    DeepInversion's feature-statistics prior for one BatchNorm layer: ``||mu - mu_run||_2 +
    ||var - var_run||_2`` between the per-channel mean / variance of the layer's ``inputs``
    and the running statistics stored in ``norm``.

    Args:
        inputs (Tensor): ``(B, C, ...)`` input of ``norm`` for the generated batch.
        norm (nn.Module): A BatchNorm layer tracking running statistics.

    Returns:
        *Tensor*, a scalar.
    """
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError(
            f"{norm.__class__.__name__} does not track running statistics "
            "(track_running_stats=False); set the 'batchnorm_statistics' weight to 0"
        )
    dims = [0, *range(2, inputs.dim())]
    mean = inputs.mean(dim=dims)
    variance = inputs.var(dim=dims, unbiased=False)
    return batchnorm_distance(mean, variance, norm)


def batchnorm_distance(
    mean: Tensor, variance: Tensor, norm: nn.modules.batchnorm._BatchNorm
) -> Tensor:
    r"""
    ``||mean - mu_run||_2 + ||variance - var_run||_2``: the distance of per-channel batch
    statistics (of one rank's batch or of the global batch) to ``norm``'s running statistics.
    """
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError(f"{norm.__class__.__name__} does not track running statistics")
    return torch.linalg.vector_norm(mean - norm.running_mean) + torch.linalg.vector_norm(
        variance - norm.running_var
    )


def batchnorm_layers(model: object) -> list[nn.modules.batchnorm._BatchNorm]:
    r"""
    The BatchNorm layers that hold running statistics in ``model``, or in the modules a callable
    ``model`` runs (:func:`~captum_netinv._utils.modules_of`); none where no module is found.
    """
    return [
        norm
        for module in modules_of(model)
        for norm in module.modules()
        if isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.running_mean is not None
    ]


def record_batchnorm_inputs(
    norms: list[nn.modules.batchnorm._BatchNorm],
) -> AbstractContextManager[list[tuple[nn.Module, Tensor]]]:
    r"""
    Records the input of each of ``norms`` during the forward passes run inside the block
    (:func:`~captum_netinv.inversion.feature_statistics.record_inputs`); the hooks are removed
    on exit, whatever happens.

    Yields:
        The list that receives ``(layer, input)`` pairs.
    """
    return record_inputs(norms)


def inversion_loss_terms(
    logits: Tensor,
    features: Tensor,
    images: Tensor,
    *,
    conditioning: ConditioningBatch,
    weights: Mapping[str, float],
    input_range: tuple[float, float],
    batchnorm_inputs: Sequence[tuple[nn.Module, Tensor]] | None = None,
    model_inputs: Tensor | None = None,
    similarity: Similarity = pairwise_cosine,
    feature_statistics: FeatureStatistics | None = None,
    recorded_inputs: list[tuple[nn.Module, Tensor]] | None = None,
    latents: Tensor | None = None,
) -> dict[str, Tensor]:
    r"""
    The loss terms with a positive weight, unweighted: class terms on ``logits``, diversity
    terms on ``features``, priors on ``images`` and on the recorded BatchNorm inputs. The KL
    term needs soft vectors and the BatchNorm term needs recorded inputs; they are left out
    where these are missing.

    Args:
        logits (Tensor): ``(B, K)`` classifier outputs for the generated batch.
        features (Tensor): ``(B, ...)`` the classifier's features at the diversity layer.
        images (Tensor): ``(B, C, H, W)`` generated inputs in the generator's range.
        conditioning (ConditioningBatch): The batch's conditioning.
        weights (Mapping[str, float]): Weight of each term (see :data:`DEFAULT_LOSS_WEIGHTS`).
        input_range (tuple[float, float]): Valid range of ``images``.
        batchnorm_inputs (list, optional): ``(layer, input)`` pairs from
                    :func:`record_batchnorm_inputs`.
        model_inputs (Tensor, optional): ``images`` in the model's (normalised) input space,
                    for the l2 prior. Default: ``images``.
        similarity (Callable, optional): The diversity terms' cosine matrix of ``features``
                    (:meth:`TargetModel.pairwise_cosine
                    <captum_netinv.inversion.target_model.TargetModel.pairwise_cosine>`).
                    Default: :func:`pairwise_cosine`
        feature_statistics (FeatureStatistics, optional): Reference inputs' feature moments
                    (:func:`~captum_netinv.inversion.feature_statistics.reference_statistics`).
        recorded_inputs (list, optional): ``(layer, input)`` pairs of this batch for
                    ``feature_statistics``' layers.
        latents (Tensor, optional): ``(B, D)`` latent codes of the batch, for mode seeking.

    Returns:
        *dict* mapping term name to a scalar tensor.
    """
    shared = _computed_once(similarity)  # both diversity terms read one cosine matrix
    available = {
        "cross_entropy": lambda: cross_entropy(logits, conditioning.targets),
        "cosine_similarity": lambda: cosine_similarity(features, shared),
        "feature_orthogonality": lambda: feature_orthogonality(features, shared),
        "total_variation": lambda: total_variation(images),
        "pixel_range": lambda: pixel_range(images, *input_range),
        "pixel_norm": lambda: pixel_norm(images if model_inputs is None else model_inputs),
        "pixel_contrast": lambda: pixel_contrast(images, *input_range),
    }
    if latents is not None:
        codes = latents
        available["mode_seeking"] = lambda: mode_seeking(images, codes, conditioning.targets)
    if feature_statistics is not None and recorded_inputs is not None:
        statistics, records = feature_statistics, recorded_inputs
        available["feature_statistics"] = lambda: statistics.distance(records)
    if conditioning.vectors is not None:
        vectors = conditioning.vectors
        available["kl_divergence"] = lambda: kl_divergence(logits, vectors)
    norm_records = [
        (norm, inputs)
        for norm, inputs in batchnorm_inputs or []
        if isinstance(norm, nn.modules.batchnorm._BatchNorm)
    ]
    if norm_records:
        available["batchnorm_statistics"] = lambda: torch.stack(
            [batchnorm_statistics(inputs, norm) for norm, inputs in norm_records]
        ).sum()
    return {name: term() for name, term in available.items() if weights.get(name, 0.0) > 0.0}


def _computed_once(similarity: Similarity) -> Similarity:
    r"""``similarity`` that computes its matrix at the first call and returns it again after:
    for the terms of one batch, which all pass the same features."""
    matrices: list[Tensor] = []

    def once(features: Tensor) -> Tensor:
        if not matrices:
            matrices.append(similarity(features))
        return matrices[0]

    return once


def weighted_sum(terms: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    r"""``sum(weights[name] * term)`` over ``terms``."""
    return torch.stack([weights[name] * term for name, term in terms.items()]).sum()


def within_class_diversity(features: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    r"""
    Per class, the mean pairwise cosine distance (``1 - cosine similarity`` over pairs
    ``i != j``) between the features of that class's samples; NaN where a class has fewer than
    two samples.

    Args:
        features (Tensor): ``(N, ...)`` features, flattened per sample.
        labels (Tensor): ``(N,)`` class of each sample.
        num_classes (int): Number of classes.

    Returns:
        *Tensor* of shape ``(num_classes,)``.

    Examples::

        >>> within_class_diversity(torch.eye(4), torch.tensor([0, 0, 1, 1]), 2)
        tensor([1., 1.])
    """
    diversity = torch.full((num_classes,), float("nan"))
    for label in range(num_classes):
        members = features[labels.to(features.device) == label]
        if len(members) >= 2:
            diversity[label] = 1.0 - float(cosine_similarity(members))
    return diversity
