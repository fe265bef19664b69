"""Presets: the paper's configuration, explicit arguments over a preset, reported and saved."""

from __future__ import annotations

import os

import pytest

from captum_netinv import NetworkInversion
from captum_netinv.examples.models import LeNet5
from captum_netinv.inversion import (
    CONDITIONING_MODES,
    DEFAULT,
    IMAGE_PRIORS,
    NEURON,
    PAPER,
    PRESETS,
    InversionSettings,
    Preset,
)
from captum_netinv.inversion.presets import preset_named

SHAPE = (1, 28, 28)


def test_the_default_preset_is_the_settings_defaults() -> None:
    assert DEFAULT.settings() == InversionSettings()
    assert PRESETS == {"default": DEFAULT, "paper": PAPER, "neuron": NEURON}


def test_the_paper_preset_holds_only_what_the_paper_describes() -> None:
    paper = PAPER.settings()
    assert paper.preset == "paper"
    assert paper.dropout == 0.5 and paper.sample_with_dropout
    assert paper.jitter == 0 and paper.zoom == 0.0 and paper.vector_margin == 0.0
    assert paper.vector_encoder == "none"
    assert all(paper.loss_weights[name] == 0.0 for name in IMAGE_PRIORS)
    kept = ("cross_entropy", "kl_divergence", "cosine_similarity", "feature_orthogonality")
    assert all(paper.loss_weights[name] > 0.0 for name in kept)


def test_overrides_win_and_loss_weights_merge_term_by_term() -> None:
    settings = PAPER.settings(dropout=0.4, loss_weights={"total_variation": 0.1}, jitter=None)
    assert settings.dropout == 0.4 and settings.jitter == 0  # None: the preset's value
    assert settings.loss_weights["total_variation"] == 0.1
    assert settings.loss_weights["pixel_norm"] == 0.0  # the preset's other weights kept


def test_constructor_arguments_override_the_preset(trained_lenet: LeNet5) -> None:
    inversion = NetworkInversion(
        trained_lenet, input_shape=SHAPE, preset="paper", dropout=0.6, conditioning="matrix"
    )
    assert inversion.settings == PAPER.settings(dropout=0.6, conditioning="matrix")
    custom = Preset("mine", "a test preset", {"latent_dim": 8})
    assert (
        NetworkInversion(trained_lenet, input_shape=SHAPE, preset=custom).settings.latent_dim == 8
    )
    with pytest.raises(ValueError, match="`preset` must be one of"):
        NetworkInversion(trained_lenet, input_shape=SHAPE, preset="papr")
    assert preset_named(PAPER) is PAPER


def test_a_preset_that_does_not_validate_fails_where_it_is_defined() -> None:
    with pytest.raises(ValueError, match="`dropout` must be in"):
        Preset("broken", "dropout out of range", {"dropout": 1.5})


@pytest.mark.parametrize("mode", CONDITIONING_MODES)
def test_the_paper_preset_runs_in_every_mode_and_is_reported(
    trained_lenet: LeNet5, mode: str, tmp_path: object
) -> None:
    inversion = NetworkInversion(
        trained_lenet,
        input_shape=SHAPE,
        preset="paper",
        conditioning=mode,  # type: ignore[arg-type]
    )
    inversion.fit(steps=3, batch_size=16, seed=0, progress=False)
    assert inversion.evaluate(n_per_class=2).preset == "paper"
    path = os.path.join(str(tmp_path), "paper.pt")
    inversion.save(path)
    loaded = NetworkInversion.load(path, trained_lenet)
    assert loaded.settings == inversion.settings and loaded.settings.preset == "paper"


def test_a_short_fit_in_matrix_mode_trains(trained_lenet: LeNet5) -> None:
    inversion = NetworkInversion(trained_lenet, input_shape=SHAPE, conditioning="matrix")
    history = inversion.fit(steps=300, batch_size=32, seed=0, progress=False)
    first, last = history["hit_rate"][:10], history["hit_rate"][-10:]
    # 0.1 at the start, 0.85 at 400 steps (the pooled hot matrix: 0.74)
    assert sum(last) / 10 > max(0.5, sum(first) / 10 + 0.3)


def test_files_without_the_new_keys_keep_their_old_behaviour() -> None:
    values = InversionSettings().to_dict()
    for key in ("vector_encoder", "matrix_encoding", "preset", "jitter", "zoom"):
        del values[key]
    old = InversionSettings.from_dict(values)
    assert (old.vector_encoder, old.matrix_encoding, old.jitter) == ("mlp", "hot", 0)
    assert old.zoom == 0.0
    assert old.preset == "default"
