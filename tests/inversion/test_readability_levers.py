"""The readability levers of issue 21, each against an independent computation."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from captum_netinv import NetworkInversion
from captum_netinv.examples.models import LeNet5
from captum_netinv.inversion.augmentation import augmented, colour_shifted, flipped
from captum_netinv.inversion.feature_statistics import (
    FeatureStatistics,
    record_inputs,
    reference_statistics,
    statistics_layers,
)
from captum_netinv.inversion.generator import ConditionedGenerator
from captum_netinv.inversion.generator_layers import ResizeConv2d
from captum_netinv.inversion.losses import mode_seeking, pixel_contrast, within_class_diversity
from captum_netinv.inversion.network.evaluation import near_copy_share
from captum_netinv.inversion.presets import PAPER
from captum_netinv.inversion.settings import InversionSettings


def test_resize_stages_have_no_transposed_convolution_and_make_no_checkerboard() -> None:
    torch.manual_seed(0)
    resize = ConditionedGenerator((3, 32, 32), num_classes=9, upsampling="resize")
    transposed = ConditionedGenerator((3, 32, 32), num_classes=9, upsampling="transposed")
    kinds = {type(m) for m in resize.modules()}
    assert nn.ConvTranspose2d not in kinds and ResizeConv2d in kinds
    assert nn.ConvTranspose2d in {type(m) for m in transposed.modules()}

    # the checkerboard: a transposed stage's output differs by pixel parity even for a constant
    # input; a resize stage's does not (away from the border)
    def parity_spread(stage: nn.Module) -> float:
        with torch.no_grad():
            out = stage(torch.ones(1, 8, 6, 6))[0, :, 2:-2, 2:-2]
        means = [out[:, i::2, j::2].mean(dim=(1, 2)) for i in (0, 1) for j in (0, 1)]
        return float(torch.stack(means).std(dim=0).max())

    torch.manual_seed(1)
    convt = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)
    torch.manual_seed(1)
    resized = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(8, 4, 3, padding=1))
    assert parity_spread(convt) > 1e-3
    assert parity_spread(resized) < 1e-6
    assert parity_spread(ResizeConv2d(8, 4)) < 1e-6


def test_bad_upsampling_is_refused() -> None:
    with pytest.raises(ValueError, match="upsampling"):
        InversionSettings(upsampling="bicubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="upsampling"):
        ConditionedGenerator((1, 28, 28), 10, upsampling="pixelshuffle")  # type: ignore[arg-type]


def test_flips_mirror_about_half_of_the_samples_and_nothing_else() -> None:
    images = torch.rand(400, 3, 5, 7)
    torch.manual_seed(0)
    out = flipped(images)
    mirrored = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, images, strict=True)])
    assert bool((mirrored ^ kept).all())
    assert 0.4 < float(mirrored.float().mean()) < 0.6


def test_colour_shift_is_a_per_sample_per_channel_affine_map_within_its_bounds() -> None:
    images = torch.rand(50, 3, 6, 6)
    out = colour_shifted(images, 0.3)
    for source, shifted in zip(images, out, strict=True):
        for channel in range(3):
            x, y = source[channel].flatten(), shifted[channel].flatten()
            slope = float(((x - x.mean()) * (y - y.mean())).sum() / (x - x.mean()).pow(2).sum())
            intercept = float(y.mean() - slope * x.mean())
            assert torch.allclose(y, slope * x + intercept, atol=1e-5)
            assert torch.exp(torch.tensor(-0.3)) - 1e-4 <= slope <= torch.exp(torch.tensor(0.3))
            assert abs(intercept) <= 0.3 + 1e-5
    assert colour_shifted(images, 0.0) is images


def test_without_flips_and_colour_the_draws_are_as_before() -> None:
    images = torch.rand(4, 3, 12, 12)
    torch.manual_seed(3)
    plain = augmented(images, 2, 0.1)
    torch.manual_seed(3)
    assert torch.equal(augmented(images, 2, 0.1, flips=False, colour_shift=0.0), plain)


def test_pixel_contrast_is_the_shortfall_of_the_brightest_tenth() -> None:
    images = torch.zeros(2, 3, 10, 10)
    images[0, 1, :1, :] = 0.5  # a dim stroke: the brightest 5 pixels average 0.5
    images[1, 0, :1, :5] = 1.0  # a bright one: 1.0
    expected = ((0.8 - 0.5) ** 2 + 0.0) / 2
    assert float(pixel_contrast(images, 0.0, 1.0)) == pytest.approx(expected)
    # the range is respected: the same images in [-1, 1]
    assert float(pixel_contrast(images * 2 - 1, -1.0, 1.0)) == pytest.approx(expected)


def test_mode_seeking_against_a_loop_over_same_class_pairs() -> None:
    torch.manual_seed(0)
    images, latents = torch.rand(6, 1, 4, 4), torch.randn(6, 5)
    targets = torch.tensor([0, 1, 0, 2, 1, 0])
    values = []
    for i, j in itertools.permutations(range(6), 2):
        if targets[i] == targets[j]:
            d_image = (images[i] - images[j]).abs().mean()
            d_latent = (latents[i] - latents[j]).abs().mean()
            values.append(1 / (d_image / d_latent + 1e-5))
    assert float(mode_seeking(images, latents, targets)) == pytest.approx(
        float(torch.stack(values).mean()), rel=1e-5
    )
    assert float(mode_seeking(images[:3], latents[:3], torch.arange(3))) == 0.0


def test_reference_statistics_equal_a_direct_computation_and_the_distance_is_zero_there() -> None:
    torch.manual_seed(0)
    model = LeNet5().eval()
    inputs = torch.rand(70, 1, 28, 28)
    statistics = reference_statistics(model, model, inputs, batch_size=32)
    assert list(statistics.layers) == statistics_layers(model)
    with record_inputs(statistics.layers) as records, torch.no_grad():
        model(inputs)
    for (_, value), mean, std in zip(records, statistics.means, statistics.stds, strict=True):
        dims = [0, *range(2, value.dim())]
        assert torch.allclose(mean, value.mean(dim=dims), atol=1e-5)
        assert torch.allclose(std, value.std(dim=dims, unbiased=False), atol=1e-4)
    assert float(statistics.distance(records)) < 1e-6
    with record_inputs(statistics.layers) as records, torch.no_grad():
        model(inputs * 0.5)
    assert float(statistics.distance(records)) > 0.01


def test_reference_statistics_refuse_bad_inputs() -> None:
    model = LeNet5()
    with pytest.raises(TypeError, match="reference_inputs"):
        reference_statistics(model, model, torch.zeros(4, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="at least 2"):
        reference_statistics(model, model, torch.zeros(1, 1, 28, 28))
    with pytest.raises(ValueError, match="no input for"):
        FeatureStatistics((nn.Linear(2, 2),), (torch.zeros(2),), (torch.ones(2),), 2).distance([])


def test_fit_with_reference_inputs_pulls_the_statistics_towards_the_reference(
    trained_lenet: LeNet5, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    images = digits[0][:200]
    statistics = reference_statistics(trained_lenet, trained_lenet, images)
    distances = {}
    for weight in (0.0, 3.0):
        inversion = NetworkInversion(
            trained_lenet, input_shape=(1, 28, 28), loss_weights={"feature_statistics": weight}
        )
        history = inversion.fit(steps=60, seed=0, progress=False, reference_inputs=images)
        assert ("feature_statistics" in history) == (weight > 0)
        samples = inversion.attribute(target=torch.arange(10).repeat(10), seed=0)
        with record_inputs(statistics.layers) as records, torch.no_grad():
            trained_lenet(samples)
        distances[weight] = float(statistics.distance(records))
    assert distances[3.0] < 0.7 * distances[0.0]


def test_reference_inputs_of_another_shape_are_refused(trained_lenet: LeNet5) -> None:
    inversion = NetworkInversion(trained_lenet, input_shape=(1, 28, 28))
    with pytest.raises(ValueError, match="reference_inputs"):
        inversion.fit(steps=1, progress=False, reference_inputs=torch.rand(4, 1, 20, 20))


def test_the_paper_preset_uses_the_hot_matrix_and_transposed_stages() -> None:
    settings = PAPER.settings(conditioning="matrix")
    assert settings.matrix_encoding == "hot" and settings.upsampling == "transposed"
    generator = ConditionedGenerator(
        (1, 28, 28),
        10,
        conditioning="matrix",
        matrix_encoding=settings.matrix_encoding,
        upsampling=settings.upsampling,
    )
    assert not hasattr(generator, "class_codes")  # no projection code maps


def test_near_copy_share_against_a_loop() -> None:
    torch.manual_seed(0)
    samples = torch.rand(12, 1, 4, 4)
    samples[3] = samples[0] + 0.01  # a near-copy of sample 0 (same class)
    samples[7] = samples[1] + 0.005  # a close sample of another class: not a copy
    targets = torch.tensor([0, 1, 2, 0, 1, 2, 0, 2, 1, 0, 1, 2])
    expected = []
    for i in range(12):
        gaps = [
            float((samples[i] - samples[j]).pow(2).mean().sqrt())
            for j in range(12)
            if j != i and targets[j] == targets[i]
        ]
        expected.append(min(gaps) <= 0.02)
    assert near_copy_share(samples, targets) == pytest.approx(sum(expected) / 12)
    assert sum(expected) == 2


def test_evaluate_reports_pixel_diversity_against_real_inputs(
    trained_lenet: LeNet5, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    inversion = NetworkInversion(trained_lenet, input_shape=(1, 28, 28))
    inversion.fit(steps=30, seed=0, progress=False)
    images, labels = digits[0][4000:4200], digits[1][4000:4200]
    evaluation = inversion.evaluate(n_per_class=6, seed=1, inputs=images, labels=labels)
    samples = inversion.attribute(target=torch.arange(10).repeat_interleave(6), seed=1)
    expected = within_class_diversity(samples.flatten(1), torch.arange(10).repeat_interleave(6), 10)
    real = within_class_diversity(images.flatten(1), labels, 10)
    assert evaluation.pixel_diversity == pytest.approx(float(expected.mean()), rel=1e-4)
    assert evaluation.pixel_diversity_ratio == pytest.approx(
        float(expected.mean() / real.mean()), rel=1e-4
    )
    assert 0.0 <= evaluation.near_copy_share <= 1.0
    assert "near-copies" in str(evaluation)


def test_the_default_colour_shift_is_for_colour_inputs_only() -> None:
    settings = InversionSettings()
    assert settings.colour_shift is None
    assert settings.colour_shift_for(3) == 0.1 and settings.colour_shift_for(1) == 0.0
    assert settings.replace(colour_shift=0.3).colour_shift_for(1) == 0.3
    assert PAPER.settings().colour_shift_for(3) == 0.0
    assert InversionSettings.from_dict({}).colour_shift_for(3) == 0.0  # files from before
    with pytest.raises(ValueError, match="colour_shift"):
        InversionSettings(colour_shift=1.5)
