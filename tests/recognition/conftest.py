"""Fixtures of the INVERT tests: synthetic activations that depend on known concepts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

#: Names of the five synthetic concepts of :func:`synthetic`.
NAMES = ["a", "b", "c", "d", "e"]
Synthetic = Callable[..., tuple[Tensor, Tensor]]


def _synthetic(samples: int = 400, neurons: int = 4, seed: int = 0) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.rand(samples, len(NAMES), generator=generator) < torch.tensor(
        [0.3, 0.45, 0.2, 0.6, 0.1]
    )
    activations = torch.randn(samples, neurons, generator=generator).round(decimals=1)
    activations += labels.float() @ torch.randn(len(NAMES), neurons, generator=generator)
    return activations, labels


@pytest.fixture
def synthetic() -> Synthetic:
    """``synthetic(samples, neurons, seed)``: ``(activations, labels)`` over concepts a..e, each
    neuron a random mix of the concepts plus noise rounded to 0.1 (so ties occur)."""
    return _synthetic
