"""InversionSettings: defaults, validation, dict round trip, replace; normalization helpers."""

from __future__ import annotations

import pytest
import torch

from captum_netinv import NetworkInversion, NeuronInversion
from captum_netinv.examples.models import LeNet5
from captum_netinv.inversion import DEFAULT_LOSS_WEIGHTS, InversionSettings, training
from captum_netinv.inversion.settings import (
    DEFAULT_CENTERING,
    FORMAT1_VALUES,
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


def test_centering_is_a_validated_setting_on_in_the_default_preset_only(
    trained_lenet: LeNet5,
) -> None:
    assert InversionSettings().centering == DEFAULT_CENTERING == 0.3
    assert NetworkInversion(trained_lenet, input_shape=SHAPE).settings.centering == 0.3
    assert (
        NetworkInversion(trained_lenet, input_shape=SHAPE, preset="paper").settings.centering == 0
    )
    units = NeuronInversion(trained_lenet, trained_lenet.fc1, input_shape=SHAPE)
    assert units.settings.centering == 0.0  # the neuron preset: untuned there
    assert FORMAT1_VALUES["centering"] == 0.0  # files from before it: no centering
    settings = InversionSettings(centering=0.25)
    assert settings.to_dict()["centering"] == 0.25
    assert InversionSettings.from_dict(settings.to_dict()) == settings
    for value in (-0.1, 1.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="`centering` must be"):
            InversionSettings(centering=value)
    with pytest.raises(TypeError, match="`centering` must be a finite number"):
        InversionSettings(centering="0.5")  # type: ignore[arg-type]
    inversion = NetworkInversion(trained_lenet, input_shape=SHAPE, centering=0.3)
    assert inversion.settings.centering == 0.3
    units = NeuronInversion(trained_lenet, trained_lenet.fc1, input_shape=SHAPE, centering=0.2)
    assert units.settings.centering == 0.2
    rebuilt = NetworkInversion._from_settings(trained_lenet, settings, input_shape=SHAPE)
    assert rebuilt.settings.centering == 0.25


def test_the_centering_crop_grows_from_half_to_the_whole_image() -> None:
    settings = InversionSettings(centering=0.5)
    crops = [training.centering_crop(settings, p) for p in (0.0, 0.25, 0.5, 0.9)]
    assert crops == [0.5, 0.75, 1.0, 1.0]
    assert training.centering_crop(InversionSettings(centering=0.0), 0.0) == 1.0


def test_a_fit_with_centering_crops_early_steps_and_centering_0_changes_nothing(
    trained_lenet: LeNet5, monkeypatch: pytest.MonkeyPatch
) -> None:
    fit: dict = {"steps": 3, "batch_size": 8, "seed": 0, "progress": False}
    plain = NetworkInversion(trained_lenet, input_shape=SHAPE).fit(**fit)
    off = NetworkInversion(trained_lenet, input_shape=SHAPE, centering=0.0).fit(**fit)
    assert off == plain
    fractions: list[float] = []
    real_centered = training.centered

    def spy(inputs: torch.Tensor, fraction: float) -> torch.Tensor:
        fractions.append(fraction)
        return real_centered(inputs, fraction)

    monkeypatch.setattr(training, "centered", spy)
    inversion = NetworkInversion(trained_lenet, input_shape=SHAPE, centering=0.5)
    history = inversion.fit(**fit)
    assert fractions == pytest.approx([0.5 + 0.5 * (1 / 3) / 0.5, 1.0, 1.0])
    assert len(history["loss"]) == 3
    assert all(torch.isfinite(torch.tensor(history["loss"])))
    assert history["loss"][0] != plain["loss"][0]  # the first step saw the crop
    assert history["loss"][1:] != plain["loss"][1:]  # and the generator it trained
