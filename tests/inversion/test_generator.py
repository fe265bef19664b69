"""Tests of the default generator: shapes from 8x8 to 224x224, range, conditioning, dropout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_netinv.inversion.conditioning import (
    CONDITIONING_MODES,
    ConditioningBatch,
    draw_conditioning,
    hot_matrices,
)
from captum_netinv.inversion.generator import ConditionedGenerator, sampling_mode


def _batch(mode: str, count: int = 4, num_classes: int = 10):
    return draw_conditioning(mode, torch.arange(count) % num_classes, num_classes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "shape", [(1, 8, 8), (1, 12, 12), (1, 28, 28), (3, 32, 32), (3, 30, 45), (1, 64, 64)]
)
@pytest.mark.parametrize("mode", CONDITIONING_MODES)
def test_output_has_the_input_shape_and_range(shape: tuple[int, int, int], mode: str) -> None:
    torch.manual_seed(0)
    generator = ConditionedGenerator(shape, 10, latent_dim=16, conditioning=mode)  # type: ignore[arg-type]
    images = generator(torch.randn(4, 16) * 5, _batch(mode))
    assert images.shape == (4, *shape)
    assert float(images.detach().min()) >= 0.0 and float(images.detach().max()) <= 1.0


def test_output_is_mapped_into_input_range() -> None:
    generator = ConditionedGenerator((3, 16, 16), 10, input_range=(-2.0, 3.0))
    images = generator(torch.randn(8, 64) * 20, _batch("vector+matrix", 8)).detach()
    assert float(images.min()) >= -2.0 and float(images.max()) <= 3.0
    assert float(images.min()) < 0.0  # the range is used, not [0, 1]


def test_224_runs() -> None:
    generator = ConditionedGenerator((3, 224, 224), 1000, latent_dim=32)
    with torch.no_grad():
        images = generator(torch.randn(2, 32), _batch("vector+matrix", 2, 1000))
    assert images.shape == (2, 3, 224, 224)


def test_hot_matrix_joins_the_first_feature_map_as_wide_as_num_classes() -> None:
    generator = ConditionedGenerator(
        (1, 28, 28), 10, conditioning="matrix", matrix_encoding="hot", upsampling="transposed"
    )
    # maps are 7, 14, 28: 14 is the first >= 10, so the second up-sampling gets the channel
    assert generator.matrix_stage == 1
    second = generator.stages[1][0]
    assert isinstance(second, nn.ConvTranspose2d)
    assert second.in_channels == generator.widths[1] + 1


@pytest.mark.parametrize(
    ("side", "num_classes", "stage"),
    [(28, 10, 0), (28, 100, 1), (28, 1000, 2), (8, 1000, 1), (224, 1000, 3)],
)
def test_projected_matrix_joins_the_first_map_with_a_pixel_per_class(
    side: int, num_classes: int, stage: int
) -> None:
    # maps of 28x28: 7, 14, 28; of 8x8: 4, 8; of 224x224: 7, 14, 28, 56, ...
    generator = ConditionedGenerator((1, side, side), num_classes, conditioning="matrix")
    assert generator.matrix_stage == stage
    joined = (
        _first_convolution(generator.stages[stage])
        if stage < len(generator.stages)
        else generator.to_input
    )
    assert joined.in_channels == generator.widths[stage] + 1


def _first_convolution(stage: nn.Module) -> nn.Conv2d | nn.ConvTranspose2d:
    return next(m for m in stage.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


def _class_maps(generator: ConditionedGenerator, num_classes: int) -> torch.Tensor:
    size = generator.get_buffer("class_codes").shape[1:]
    condition = ConditioningBatch(torch.arange(num_classes), vectors=torch.eye(num_classes))
    return generator.class_matrix(condition, tuple(size)).flatten(1)


@pytest.mark.parametrize("num_classes", [10, 100, 1000])
@pytest.mark.parametrize("side", [8, 28, 32, 224])
def test_every_class_gets_a_distinct_matrix_at_any_size(num_classes: int, side: int) -> None:
    generator = ConditionedGenerator(
        (1, side, side), num_classes, latent_dim=4, conditioning="vector+matrix"
    )
    maps = _class_maps(generator, num_classes)
    distances = torch.cdist(maps, maps) + torch.eye(num_classes) * 1e9
    assert float(distances.min()) > 0.5  # pairwise distinct, with room to tell apart


def test_pooled_hot_matrices_merged_classes_that_the_projection_keeps() -> None:
    # the measured defect of the "hot" encoding: 100 classes on a 4x4 map (32x32 inputs)
    hot = ConditionedGenerator((1, 32, 32), 100, conditioning="matrix", matrix_encoding="hot")
    size = (4 * 2**hot.matrix_stage,) * 2
    condition = ConditioningBatch(torch.arange(100), matrices=hot_matrices(torch.arange(100), 100))
    assert len(torch.unique(hot.class_matrix(condition, size).flatten(1), dim=0)) < 100
    projected = ConditionedGenerator((1, 32, 32), 100, conditioning="matrix")
    assert len(torch.unique(_class_maps(projected, 100), dim=0)) == 100


def test_the_matrix_hides_the_label_but_encodes_it() -> None:
    generator = ConditionedGenerator((1, 28, 28), 10, conditioning="matrix")
    rng = torch.Generator().manual_seed(0)
    batch = draw_conditioning("matrix", torch.tensor([4, 4, 4]), 10, rng=rng)
    maps = generator.class_matrix(batch, (7, 7)).flatten(1)
    assert not torch.allclose(maps[0], maps[1])  # each sample of a class its own matrix
    nearest = torch.cdist(maps, _class_maps(generator, 10)).argmin(dim=1)
    assert nearest.tolist() == [4, 4, 4]  # the class's own code dominates


def test_vector_encoder_none_joins_the_soft_vector_as_it_is() -> None:
    generator = ConditionedGenerator((1, 28, 28), 10, vector_encoder="none")
    assert generator.vector_encoder is None
    assert generator.project.in_features == 64 + 10
    with pytest.raises(ValueError, match="`vector_encoder` must be one of"):
        ConditionedGenerator((1, 28, 28), 10, vector_encoder="linear")  # type: ignore[arg-type]


def test_the_conditioning_changes_the_output() -> None:
    torch.manual_seed(0)
    for mode in CONDITIONING_MODES:
        generator = ConditionedGenerator((1, 28, 28), 10, conditioning=mode, dropout=0.0).eval()  # type: ignore[arg-type]
        z = torch.randn(1, 64).repeat(2, 1)
        batch = draw_conditioning(mode, torch.tensor([0, 5]), 10)  # type: ignore[arg-type]
        images = generator(z, batch)
        assert not torch.allclose(images[0], images[1]), mode


def test_sampling_mode_keeps_dropout_active_only_when_asked() -> None:
    torch.manual_seed(0)
    generator = ConditionedGenerator((1, 16, 16), 10, dropout=0.5)
    generator.train()
    z = torch.randn(1, 64).repeat(2, 1)
    batch = draw_conditioning("vector+matrix", torch.tensor([3, 3]), 10)
    batch.vectors = batch.vectors[:1].repeat(2, 1)  # type: ignore[index]
    with torch.no_grad():
        with sampling_mode(generator, dropout_active=True):
            noisy = generator(z, batch)
            assert not generator.project_norm.training
        with sampling_mode(generator, dropout_active=False):
            plain = generator(z, batch)
    assert not torch.allclose(noisy[0], noisy[1])
    assert torch.allclose(plain[0], plain[1])
    assert all(module.training for module in generator.modules())


@pytest.mark.parametrize("channel_dropout", [True, False])
def test_dropout_drops_whole_feature_maps_or_single_units(channel_dropout: bool) -> None:
    torch.manual_seed(0)
    generator = ConditionedGenerator((1, 28, 28), 10, dropout=0.5, channel_dropout=channel_dropout)
    outputs: list[torch.Tensor] = []
    dropouts = [m for m in generator.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    assert len(dropouts) == len(generator.stages)
    dropouts[-1].register_forward_hook(lambda module, args, out: outputs.append(out))
    with torch.no_grad(), sampling_mode(generator, dropout_active=True):
        generator(torch.randn(8, 64), _batch("vector", count=8))
    maps = outputs[0].flatten(2)  # (samples, channels, pixels)
    zero_share = (maps == 0).float().mean(dim=2)
    # ReLU zeros are scattered; dropout of whole maps zeroes about half of the maps entirely
    whole_maps_zero = float((zero_share == 1.0).float().mean())
    if channel_dropout:
        assert 0.3 < whole_maps_zero < 0.7
    else:
        assert whole_maps_zero < 0.05


@pytest.mark.parametrize(
    "shape, match",
    [((1, 4, 4), "at least 8x8"), ((28, 28), "channels, height, width"), ((1, 0, 9), "> 0")],
)
def test_bad_shapes_are_refused(shape: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ConditionedGenerator(shape, 10)


def test_bad_dropout_is_refused() -> None:
    with pytest.raises(ValueError, match="`dropout`"):
        ConditionedGenerator((1, 28, 28), 10, dropout=1.0)
