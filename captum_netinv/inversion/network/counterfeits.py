"""Counterfeits: inputs the model confidently assigns to a class that a second classifier rejects.

A companion inversion without the terms that make samples natural (:func:`counterfeit_settings`)
is fitted, and its samples are drawn until enough pass both tests (:func:`search_counterfeits`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from captum_netinv._activations import predicted_classes
from captum_netinv.inversion.losses import IMAGE_PRIORS
from captum_netinv.inversion.settings import InversionSettings
from captum_netinv.inversion.target_model import SAMPLE_BATCH_SIZE, TargetModel

__all__ = ["COUNTERFEIT_TERMS_OFF", "counterfeit_settings", "search_counterfeits"]

#: Loss terms the companion switches off: the image priors make samples that other models
#: recognize, and the KL term holds the model's confidence at the soft vector's, below a high
#: threshold. Cross-entropy and the diversity terms stay.
COUNTERFEIT_TERMS_OFF: tuple[str, ...] = (*IMAGE_PRIORS, "kl_divergence")


def counterfeit_settings(settings: InversionSettings) -> InversionSettings:
    r"""The companion's settings: ``settings`` without :data:`COUNTERFEIT_TERMS_OFF` and
    augmentation (jitter and zoom 0)."""
    weights = {**settings.loss_weights, **dict.fromkeys(COUNTERFEIT_TERMS_OFF, 0.0)}
    return settings.replace(loss_weights=weights, jitter=0, zoom=0.0)


def search_counterfeits(
    draw: Callable[[Tensor, int | None], Tensor],
    *,
    model: TargetModel,
    verifier: Callable,
    target: int,
    n_samples: int,
    confidence: float,
    max_draws: int,
    seed: int | None,
) -> Tensor:
    r"""
    Draws samples of ``target`` in batches until ``n_samples`` are accepted by ``model`` with
    probability >= ``confidence`` and rejected by ``verifier``, or ``max_draws`` were tried (a
    warning then says how many were found).

    Args:
        draw (Callable): ``draw(targets, seed)`` returns model-space samples of ``targets``.
        model (TargetModel): The model that must accept the samples.
        verifier (Callable): The classifier that must reject them.
        target (int): The class.
        n_samples (int): Counterfeits wanted.
        confidence (float): Minimum target probability under ``model``.
        max_draws (int): Most samples drawn.
        seed (int, optional): Seed of the first batch; later batches use ``seed + draws``.

    Returns:
        *Tensor* of at most ``n_samples`` counterfeits.
    """
    found: list[Tensor] = []
    draws = 0
    while sum(len(batch) for batch in found) < n_samples and draws < max_draws:
        count = min(SAMPLE_BATCH_SIZE, max_draws - draws)
        samples = draw(torch.full((count,), target), None if seed is None else seed + draws)
        draws += count
        accepted = model.probabilities(samples)[:, target] >= confidence
        rejected = predicted_classes(verifier, samples) != target
        found.append(samples[(accepted & rejected).to(samples.device)])
    counterfeits = torch.cat(found)[:n_samples]
    if len(counterfeits) < n_samples:
        warnings.warn(
            f"found {len(counterfeits)} of {n_samples} counterfeits of class {target} in "
            f"{draws} draws; raise `max_draws` or lower `confidence`",
            stacklevel=3,
        )
    return counterfeits
