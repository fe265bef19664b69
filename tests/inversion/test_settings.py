"""InversionSettings: defaults, validation, dict round trip, replace; normalization helpers."""

from __future__ import annotations

import pytest
import torch

from captum_netinv import NetworkInversion
from captum_netinv.examples.models import LeNet5
from captum_netinv.inversion import DEFAULT_LOSS_WEIGHTS, InversionSettings
from captum_netinv.inversion.settings import (
    normalization_tensors,
    to_model_space,
    to_pixel_space,
)

SHAPE = (1, 28, 28)


@pytest.mark.parametrize("jitter", [-1, 1.5, True])
def test_bad_jitter_is_refused(trained_lenet: LeNet5, jitter: object) -> None:
    with pytest.raises(ValueError, match="`jitter` must be an int >= 0"):
        NetworkInversion(trained_lenet, input_shape=SHAPE, jitter=jitter)  # type: ignore[arg-type]


def test_constructor_defaults_are_the_settings_defaults(trained_lenet: LeNet5) -> None:
    inversion = NetworkInversion(trained_lenet, input_shape=SHAPE)
    assert inversion.settings == InversionSettings()
    assert dict(inversion.settings.loss_weights) == DEFAULT_LOSS_WEIGHTS


def test_dict_round_trip_and_replace() -> None:
    settings = InversionSettings(
        conditioning="vector+matrix",
        dropout=0.5,
        loss_weights={"pixel_norm": 0.0},
        input_normalization=([0.1, 0.2, 0.3], 0.5),
        jitter=2,
    )
    values = settings.to_dict()
    assert values["input_normalization"] == [
        [pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.3)],
        [0.5],
    ]
    assert InversionSettings.from_dict({**values, "layer": "fc3"}) == settings
    changed = settings.replace(jitter=0)
    assert changed.jitter == 0 and settings.jitter == 2
    with pytest.raises(ValueError, match="`dropout` must be in"):
        settings.replace(dropout=1.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"conditioning": "one-hot"}, "`conditioning` must be one of"),
        ({"latent_dim": 0}, "`latent_dim` must be >= 1"),
        ({"dropout": -0.1}, "`dropout` must be in"),
        ({"dropout": float("nan")}, "`dropout` must be a finite number"),
        ({"vector_scale": 0.0}, "`vector_scale` must be > 0"),
        ({"vector_margin": -1.0}, "`vector_margin` must be >= 0"),
        ({"loss_weights": {"typo": 1.0}}, "unknown term 'typo'"),
        ({"input_range": (1.0, 0.0)}, "`input_range` must be"),
        ({"input_normalization": (0.5,)}, "must be a \\(mean, std\\) pair"),
        ({"input_normalization": (0.5, 0.0)}, "std must be > 0"),
        ({"sample_with_dropout": "yes"}, "`sample_with_dropout` must be a bool"),
    ],
)
def test_bad_settings_are_refused(changes: dict, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        InversionSettings(**changes)


def test_a_wrong_type_is_a_type_error_and_a_wrong_number_a_value_error() -> None:
    for value in ("0.5", True, None):
        with pytest.raises(TypeError, match="`dropout` must be a finite number"):
            InversionSettings(dropout=value)  # type: ignore[arg-type]
    for value in (float("nan"), float("inf"), 1.5):
        with pytest.raises(ValueError, match="`dropout` must be"):
            InversionSettings(dropout=value)


def test_normalization_helpers_invert_each_other() -> None:
    settings = InversionSettings(input_normalization=([0.5, 0.4, 0.3], [0.2, 0.25, 0.5]))
    normalization = normalization_tensors(settings, 3)
    assert normalization is not None and normalization[0].shape == (1, 3, 1, 1)
    pixels = torch.rand(4, 3, 5, 5)
    model_space = to_model_space(pixels, normalization)
    expected = (pixels[:, 1] - 0.4) / 0.25
    assert torch.allclose(model_space[:, 1], expected)
    assert torch.allclose(to_pixel_space(model_space, normalization), pixels, atol=1e-6)
    assert to_model_space(pixels, None) is pixels
    with pytest.raises(ValueError, match="mean must have 1 or 1 values"):
        normalization_tensors(settings, 1)
