"""The fit loop: every conditioning mode trains, the model is untouched, NaNs stop the fit."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from captum_netinv import NetworkInversion
from captum_netinv.examples.models import LeNet5, train_classifier
from captum_netinv.inversion import CONDITIONING_MODES, NonFiniteLossError
from captum_netinv.inversion.losses import DEFAULT_LOSS_WEIGHTS
from captum_netinv.inversion.training import balanced_targets

SHAPE = (1, 28, 28)


def test_fit_leaves_model_and_global_rng_untouched(trained_lenet: LeNet5) -> None:
    trained_lenet.train()
    for parameter in trained_lenet.parameters():
        parameter.grad = None
    before = {name: value.clone() for name, value in trained_lenet.state_dict().items()}
    rng = torch.get_rng_state()
    inversion = NetworkInversion(trained_lenet, input_shape=SHAPE)
    inversion.fit(steps=3, batch_size=8, seed=0, progress=False)
    trained_lenet.eval()
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in trained_lenet.state_dict().items())
    assert all(p.grad is None for p in trained_lenet.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in trained_lenet.modules())


@pytest.mark.parametrize("mode", CONDITIONING_MODES)
def test_each_conditioning_mode_trains(
    trained_lenet: LeNet5, mode: str, predict: Callable[[Callable, Tensor], Tensor]
) -> None:
    inversion = NetworkInversion(trained_lenet, input_shape=SHAPE, conditioning=mode)  # type: ignore[arg-type]
    history = inversion.fit(steps=100, batch_size=16, seed=0, progress=False)
    start = sum(history["hit_rate"][:10]) / 10
    end = sum(history["hit_rate"][-10:]) / 10
    assert end > start + 0.1, (mode, start, end)
    assert ("kl_divergence" in history) == (mode != "label")  # matrices come from soft vectors
    samples = inversion.attribute(target=torch.arange(10).repeat(10), seed=0)
    hits = predict(trained_lenet, samples) == torch.arange(10).repeat(10)
    assert float(hits.float().mean()) > 0.2  # chance is 0.1


class _NanAfter(nn.Module):
    """Wraps a model; its outputs turn NaN from the given call on."""

    def __init__(self, model: nn.Module, calls: int) -> None:
        super().__init__()
        self.model, self.calls, self.count = model, calls, 0

    def forward(self, x: Tensor) -> Tensor:
        self.count += 1
        output = self.model(x)
        return output * float("nan") if self.count > self.calls else output


def test_non_finite_loss_stops_naming_the_term(trained_lenet: LeNet5, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "fit.pt")
    model = _NanAfter(trained_lenet, calls=7)  # one probe, then six steps
    inversion = NetworkInversion(model, input_shape=SHAPE)
    with pytest.raises(NonFiniteLossError, match="loss term 'cross_entropy' became nan at step 7"):
        inversion.fit(
            steps=20, batch_size=8, checkpoint_path=path, checkpoint_every=3, progress=False
        )
    assert inversion.steps_trained == 6
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["step"] == 6
    assert inversion.generator is not None
    assert all(bool(torch.isfinite(p).all()) for p in inversion.generator.parameters())


def test_batchnorm_prior_matches_running_statistics(digits: tuple[Tensor, Tensor]) -> None:
    images, labels = digits
    torch.manual_seed(0)
    model = train_classifier(LeNet5(batch_norm=True), images[:1000], labels[:1000], epochs=1)
    inversion = NetworkInversion(
        model, input_shape=SHAPE, loss_weights={"batchnorm_statistics": 1.0, "pixel_norm": 0.0}
    )
    history = inversion.fit(steps=40, batch_size=16, seed=0, progress=False)
    assert len(history["batchnorm_statistics"]) == 40
    # recomputed by hand on fresh samples: conv1's output statistics against bn1's buffers
    samples = inversion.attribute(target=torch.arange(10).repeat(10), seed=0)
    with torch.no_grad():
        conv = model.conv1(samples)
    running = model.bn1.running_mean, model.bn1.running_var  # type: ignore[union-attr]
    gap = torch.linalg.vector_norm(
        conv.mean(dim=(0, 2, 3)) - running[0]
    ) + torch.linalg.vector_norm(conv.var(dim=(0, 2, 3), unbiased=False) - running[1])
    untrained = NetworkInversion(
        model, input_shape=SHAPE, loss_weights={"batchnorm_statistics": 0.0, "pixel_norm": 0.0}
    )
    untrained.fit(steps=40, batch_size=16, seed=0, progress=False)
    assert "batchnorm_statistics" not in untrained.history
    with torch.no_grad():
        other = model.conv1(untrained.attribute(target=torch.arange(10).repeat(10), seed=0))
    other_gap = torch.linalg.vector_norm(
        other.mean(dim=(0, 2, 3)) - running[0]
    ) + torch.linalg.vector_norm(other.var(dim=(0, 2, 3), unbiased=False) - running[1])
    assert float(gap) < float(other_gap)


def test_balanced_targets_cover_every_class_evenly() -> None:
    targets = balanced_targets(25, 10, torch.Generator().manual_seed(0))
    counts = torch.bincount(targets, minlength=10)
    assert counts.sum() == 25 and set(counts.tolist()) == {2, 3}


def test_consecutive_slices_of_ranks_keep_the_global_batch_balanced() -> None:
    # two ranks drawing 32 rows each of a global batch of 64 over 10 classes: together every
    # class 6 or 7 times, as one process drawing 64 (without the offset: 8 or 6)
    parts = [
        balanced_targets(32, 10, torch.Generator().manual_seed(rank), offset=rank * 32)
        for rank in range(2)
    ]
    together = torch.bincount(torch.cat(parts), minlength=10)
    assert torch.equal(together, torch.bincount(torch.arange(64) % 10, minlength=10))


def _small_bn_model() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 3),
    )
    with torch.no_grad():
        model(torch.randn(16, 1, 8, 8))  # running statistics that differ from the initial ones
    return model.train()


FAST = {"steps": 3, "batch_size": 6, "seed": 0, "progress": False}


def test_a_wrapped_model_keeps_its_buffers_and_the_batchnorm_prior() -> None:
    model = _small_bn_model()
    buffers = {name: value.clone() for name, value in model.named_buffers()}

    def wrapped(inputs: Tensor) -> Tensor:  # the FAQ's wrapper for dict outputs and the like
        return model(inputs)

    inversion = NetworkInversion(wrapped, input_shape=(1, 8, 8), layer=model[5])
    history = inversion.fit(**FAST)  # type: ignore[arg-type]
    inversion.evaluate(n_per_class=2)
    assert len(history["batchnorm_statistics"]) == 3  # the prior found the wrapped BatchNorm
    assert all(module.training for module in model.modules())
    for name, value in model.named_buffers():
        assert torch.equal(value, buffers[name]), name


def test_each_fit_starts_over_from_the_initial_weights() -> None:
    model = _small_bn_model()
    inversion = NetworkInversion(model, input_shape=(1, 8, 8))
    inversion.fit(**{**FAST, "steps": 6})  # type: ignore[arg-type]
    history = inversion.fit(**FAST)  # type: ignore[arg-type]
    assert inversion.steps_trained == 3 and len(history["loss"]) == 3
    fresh = NetworkInversion(model, input_shape=(1, 8, 8))
    assert fresh.fit(**FAST)["loss"] == history["loss"]  # type: ignore[arg-type]
    custom = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.Unflatten(1, (1, 8, 8)))
    generator = _Conditioned(custom)
    with_custom = NetworkInversion(model, input_shape=(1, 8, 8), generator=generator)
    first = with_custom.fit(**FAST)["loss"]  # type: ignore[arg-type]
    assert with_custom.fit(**FAST)["loss"] == first  # type: ignore[arg-type]


class _Conditioned(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, z: Tensor, condition: object) -> Tensor:
        return torch.sigmoid(self.body(z[:, :64].reshape(-1, 1, 8, 8)))


def test_settings_that_train_nothing_or_are_ignored() -> None:
    model = _small_bn_model()
    zero = dict.fromkeys(DEFAULT_LOSS_WEIGHTS, 0.0)
    with pytest.raises(ValueError, match="`loss_weights` are all 0"):
        NetworkInversion(model, input_shape=(1, 8, 8), loss_weights=zero)
    generator = _Conditioned(nn.Sequential(nn.Flatten(), nn.Linear(64, 64)))
    with pytest.warns(UserWarning, match="`dropout` .* ignored with a custom `generator`"):
        NetworkInversion(model, input_shape=(1, 8, 8), generator=generator, dropout=0.5)
    with pytest.warns(UserWarning, match="kl_divergence.*ignored with conditioning='label'"):
        NetworkInversion(
            model, input_shape=(1, 8, 8), conditioning="label", loss_weights={"kl_divergence": 2.0}
        )


def test_additional_forward_args_reach_the_model() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = _small_bn_model()

        def forward(self, inputs: Tensor, scale: Tensor, shift: float = 0.0) -> Tensor:
            return self.body(inputs) * scale + shift

    model = Scaled()
    seen: list[Tensor] = []
    model.register_forward_hook(lambda module, args, output: seen.append(args[1]))
    scale = torch.tensor([[1.0, 2.0, 3.0]])  # broadcastable, not per-sample
    inversion = NetworkInversion(model, input_shape=(1, 8, 8), layer=model.body[5])
    history = inversion.fit(**FAST, additional_forward_args=(scale, 0.5))  # type: ignore[arg-type]
    assert len(history["loss"]) == 3 and all(args is scale for args in seen)
    result = inversion.evaluate(n_per_class=2, additional_forward_args=(scale,))
    assert 0.0 <= result.hit_rate <= 1.0
    with pytest.raises(ValueError, match="scale.*pass them as `additional_forward_args`"):
        inversion.evaluate(n_per_class=2)
    fresh = NetworkInversion(model, input_shape=(1, 8, 8), layer=model.body[5])
    with pytest.raises(ValueError, match="the model fails .*pass `additional_forward_args`"):
        fresh.fit(**FAST)  # type: ignore[arg-type]


def test_a_convolutional_model_sees_channels_last_batches_and_the_generator_is_restored() -> None:
    torch.manual_seed(0)
    convolutional = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3)
    ).eval()
    dense = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 3)).eval()
    for model, expected in ((convolutional, True), (dense, False)):
        seen: list[bool] = []

        def record(_: nn.Module, args: tuple[Tensor, ...], seen: list[bool] = seen) -> None:
            seen.append(args[0].is_contiguous(memory_format=torch.channels_last))

        handle = model[0].register_forward_pre_hook(record)
        inversion = NetworkInversion(model, input_shape=(3, 8, 8))
        inversion.fit(steps=2, batch_size=4, seed=0, progress=False)
        handle.remove()
        assert seen[-2:] == [expected, expected]  # the fit's two steps (after a shape probe)
        assert inversion.generator is not None
        assert all(p.is_contiguous() for p in inversion.generator.parameters())
