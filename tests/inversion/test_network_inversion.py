"""NetworkInversion end to end on a small CNN trained on package-shipped digits.

Every claim is checked against the classifier's own verdict (or a second classifier), with
Captum's TCAV, IntegratedGradients and LayerGradCam consuming the generated samples.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import matplotlib
import pytest
import torch
from captum.attr import IntegratedGradients, LayerGradCam
from captum.concept import TCAV
from torch import Tensor, nn

from captum_netinv.inversion import (
    CONDITIONING_MODES,
    IMAGE_PRIORS,
    InversionEvaluation,
    NetworkInversion,
    NonFiniteLossError,
)
from captum_netinv.inversion import network_inversion as module
from captum_netinv.models import MLP, LeNet5, train_classifier

matplotlib.use("Agg")

SHAPE = (1, 28, 28)
FIT = {"steps": 150, "batch_size": 32, "seed": 0, "progress": False}


@pytest.fixture(scope="module")
def fitted(trained_lenet: LeNet5) -> NetworkInversion:
    inversion = NetworkInversion(trained_lenet, input_shape=SHAPE)
    inversion.fit(**FIT)  # type: ignore[arg-type]
    return inversion


@pytest.fixture(scope="module")
def verifier(digits: tuple[Tensor, Tensor]) -> MLP:
    images, labels = digits
    torch.manual_seed(1)
    model = train_classifier(MLP(), images[:4000], labels[:4000], epochs=3)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _predict(model: Callable, samples: Tensor) -> Tensor:
    with torch.no_grad():
        return model(samples).argmax(dim=1)


def test_short_fit_hits_every_class(fitted: NetworkInversion, trained_lenet: LeNet5) -> None:
    result = fitted.evaluate(n_per_class=50)
    assert isinstance(result, InversionEvaluation)
    assert result.hit_rate_per_class.shape == (10,)
    assert float(result.hit_rate_per_class.min()) > 0.9, result.hit_rate_per_class
    # the same samples, judged by the model directly
    targets = torch.arange(10).repeat_interleave(50)
    samples = fitted.attribute(target=targets, seed=0)
    hits = (_predict(trained_lenet, samples) == targets).float().view(10, 50).mean(dim=1)
    assert torch.allclose(hits, result.hit_rate_per_class)
    assert result.hit_rate == pytest.approx(float(hits.mean()))
    assert 0.5 < result.mean_confidence <= 1.0
    assert 0.0 < result.diversity < 1.0 and result.verifier_hit_rate is None


def test_samples_are_diverse_and_in_range(fitted: NetworkInversion) -> None:
    samples = fitted.attribute(target=4, n_samples=20, seed=1)
    assert samples.shape == (20, *SHAPE)
    assert float(samples.min()) >= 0.0 and float(samples.max()) <= 1.0
    distances = torch.cdist(samples.flatten(1), samples.flatten(1))
    assert float(distances[~torch.eye(20, dtype=torch.bool)].min()) > 0.5


def test_verifier_hit_rate_is_its_own_verdict(fitted: NetworkInversion, verifier: MLP) -> None:
    result = fitted.evaluate(n_per_class=20, verifier=verifier, seed=3)
    targets = torch.arange(10).repeat_interleave(20)
    samples = fitted.attribute(target=targets, seed=3)
    expected = (_predict(verifier, samples) == targets).float().mean()
    assert result.verifier_hit_rate == pytest.approx(float(expected))
    assert result.verifier_hit_rate_per_class is not None
    # the samples carry the class for another architecture too, far above chance
    assert result.verifier_hit_rate > 0.3


@pytest.mark.parametrize("target", [3, [1, 2, 3], torch.tensor([7, 0]), torch.tensor(5)])
def test_target_forms(fitted: NetworkInversion, trained_lenet: LeNet5, target: object) -> None:
    samples = fitted.attribute(target=target, seed=0)  # type: ignore[arg-type]
    expected = torch.as_tensor(target).reshape(-1)
    if expected.numel() == 1:
        expected = expected.repeat(16)
    assert samples.shape == (len(expected), *SHAPE)
    assert float((_predict(trained_lenet, samples) == expected).float().mean()) >= 0.8


def test_seed_and_latents_make_sampling_reproducible(fitted: NetworkInversion) -> None:
    first = fitted.attribute(target=2, n_samples=4, seed=5)
    assert torch.equal(first, fitted.attribute(target=2, n_samples=4, seed=5))
    assert not torch.equal(first, fitted.attribute(target=2, n_samples=4, seed=6))
    latents = torch.randn(4, fitted.latent_dim)
    with_latents = fitted.attribute(target=2, n_samples=4, latents=latents, seed=5)
    assert torch.equal(
        with_latents, fitted.attribute(target=2, n_samples=4, latents=latents, seed=5)
    )
    assert not torch.equal(with_latents, first)


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
def test_each_conditioning_mode_trains(trained_lenet: LeNet5, mode: str) -> None:
    inversion = NetworkInversion(trained_lenet, input_shape=SHAPE, conditioning=mode)  # type: ignore[arg-type]
    history = inversion.fit(steps=100, batch_size=16, seed=0, progress=False)
    start = sum(history["hit_rate"][:10]) / 10
    end = sum(history["hit_rate"][-10:]) / 10
    assert end > start + 0.1, (mode, start, end)
    assert ("kl_divergence" in history) == ("vector" in mode)
    samples = inversion.attribute(target=torch.arange(10).repeat(10), seed=0)
    hits = _predict(trained_lenet, samples) == torch.arange(10).repeat(10)
    assert float(hits.float().mean()) > 0.2  # chance is 0.1


def test_resumed_fit_equals_uninterrupted(trained_lenet: LeNet5, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "fit.pt")
    settings = {"steps": 20, "batch_size": 16, "seed": 7, "progress": False}
    whole = NetworkInversion(trained_lenet, input_shape=SHAPE)
    whole.fit(**settings)  # type: ignore[arg-type]

    stopped = NetworkInversion(trained_lenet, input_shape=SHAPE)
    stopped.fit(
        checkpoint_path=path,
        checkpoint_every=5,
        callback=lambda step, values: step == 12,
        **settings,  # type: ignore[arg-type]
    )
    assert stopped.steps_trained == 12
    resumed = NetworkInversion(trained_lenet, input_shape=SHAPE)
    history = resumed.fit(checkpoint_path=path, **settings)  # type: ignore[arg-type]
    assert resumed.steps_trained == 20 and len(history["loss"]) == 20
    assert history["loss"] == whole.history["loss"]
    assert whole.generator is not None and resumed.generator is not None
    for (name, a), b in zip(
        whole.generator.state_dict().items(), resumed.generator.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="`seed` is 8"):
        NetworkInversion(trained_lenet, input_shape=SHAPE).fit(
            checkpoint_path=path,
            **{**settings, "seed": 8},  # type: ignore[arg-type]
        )


def test_save_load_round_trip(
    fitted: NetworkInversion, trained_lenet: LeNet5, tmp_path: object
) -> None:
    path = os.path.join(str(tmp_path), "inversion.pt")
    fitted.save(path)
    loaded = NetworkInversion.load(path, trained_lenet)
    assert loaded.fitted and loaded.layer is fitted.layer
    assert loaded.history == fitted.history
    assert torch.equal(
        loaded.attribute(target=[0, 5, 9], seed=2), fitted.attribute(target=[0, 5, 9], seed=2)
    )


def test_load_refuses_another_model(fitted: NetworkInversion, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "inversion.pt")
    fitted.save(path)
    with pytest.raises(ValueError, match="another model or shape: its model parameters"):
        NetworkInversion.load(path, MLP())
    with pytest.raises(ValueError, match="another model or shape"):
        NetworkInversion.load(path, LeNet5(num_classes=5))
    with pytest.raises(ValueError, match="not a NetworkInversion checkpoint"):
        torch.save({"weights": torch.zeros(1)}, path)
        NetworkInversion.load(path, LeNet5())


def test_checkpoint_from_another_shape_is_refused(trained_lenet: LeNet5, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "fit.pt")
    model = nn.Sequential(nn.Flatten(), nn.LazyLinear(10))
    model(torch.zeros(1, 1, 12, 12))
    NetworkInversion(model, input_shape=(1, 12, 12)).fit(
        steps=2, batch_size=4, checkpoint_path=path, progress=False
    )
    other = nn.Sequential(nn.Flatten(), nn.Linear(144, 10))
    with pytest.raises(ValueError, match="input shape"):
        NetworkInversion(other, input_shape=(1, 16, 9)).fit(
            steps=2, batch_size=4, checkpoint_path=path, progress=False
        )


def test_as_concept_plugs_into_tcav(
    fitted: NetworkInversion, trained_lenet: LeNet5, digits: tuple[Tensor, Tensor], tmp_path: object
) -> None:
    ones = fitted.as_concept(1, n_samples=40, batch_size=10, seed=0)
    sevens = fitted.as_concept(7, n_samples=40, batch_size=10, seed=1)
    batches = list(ones.data_iter)  # type: ignore[arg-type]
    assert len(batches) == 4 and batches[0].shape == (10, *SHAPE)
    assert bool((_predict(trained_lenet, torch.cat(batches)) == 1).float().mean() > 0.8)
    tcav = TCAV(trained_lenet, layers=["fc1"], save_path=str(tmp_path))
    images, labels = digits
    scores = tcav.interpret(
        inputs=images[labels == 1][:20], experimental_sets=[[ones, sevens]], target=1
    )
    (result,) = scores.values()
    sign_count = result["fc1"]["sign_count"]
    assert sign_count.shape == (2,)
    assert float(sign_count.sum()) == pytest.approx(1.0)
    # real ones move along the "inverted ones" direction more than along "inverted sevens"
    assert float(sign_count[0]) > float(sign_count[1])


def test_samples_feed_captum_attributions(fitted: NetworkInversion, trained_lenet: LeNet5) -> None:
    samples = fitted.attribute(target=6, n_samples=4, seed=0)
    integrated = IntegratedGradients(trained_lenet)
    attributions, delta = integrated.attribute(
        samples, target=6, n_steps=64, return_convergence_delta=True
    )
    assert attributions.shape == samples.shape
    assert float(delta.abs().max()) < 0.05 * float(trained_lenet(samples)[:, 6].abs().max())
    cam = LayerGradCam(trained_lenet, trained_lenet.conv2).attribute(samples, target=6)
    assert cam.shape == (4, 1, 10, 10) and bool(torch.isfinite(cam).all())
    assert float(cam.abs().sum()) > 0.0


def test_counterfeits_fool_the_model_not_the_verifier(
    fitted: NetworkInversion, trained_lenet: LeNet5
) -> None:
    # a verifier that always names another class than the model; how rare counterfeits are
    # against a trained verifier is measured in benchmarks/
    def disagreeing(inputs: Tensor) -> Tensor:
        return trained_lenet(inputs).roll(1, dims=1)

    fakes = fitted.counterfeits(
        8,
        disagreeing,
        n_samples=4,
        confidence=0.8,
        steps=100,
        batch_size=16,
        seed=0,
        progress=False,
    )
    assert len(fakes) == 4 and fakes.shape[1:] == SHAPE
    companion = fitted._counterfeiter
    assert companion is not None and companion.jitter == 0 and fitted.jitter > 0
    assert all(companion.loss_weights[term] == 0.0 for term in (*IMAGE_PRIORS, "kl_divergence"))
    with torch.no_grad():
        assert bool((trained_lenet(fakes).softmax(dim=1)[:, 8] >= 0.8).all())
        assert bool((disagreeing(fakes).argmax(dim=1) != 8).all())
    # a verifier that agrees with the model rejects nothing: none found, and a warning
    with pytest.warns(UserWarning, match="found 0 of 2 counterfeits"):
        assert len(fitted.counterfeits(8, trained_lenet, n_samples=2, max_draws=64)) == 0


def test_unfitted_attribute_fits_first_with_a_warning(
    trained_lenet: LeNet5, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "DEFAULT_STEPS", 3)
    inversion = NetworkInversion(trained_lenet)
    example = torch.zeros(2, *SHAPE)
    with pytest.warns(UserWarning, match="not fitted yet"):
        samples = inversion.attribute(example, target=0, n_samples=2)
    assert inversion.steps_trained == 3 and samples.shape == (2, *SHAPE)


def test_normalization_returns_model_space(trained_lenet: LeNet5) -> None:
    normalized = nn.Sequential(nn.Identity(), trained_lenet)
    inversion = NetworkInversion(normalized, input_shape=SHAPE, input_normalization=(0.5, 0.25))
    inversion.fit(steps=2, batch_size=4, seed=0, progress=False)
    samples = inversion.attribute(target=1, n_samples=8, seed=0)
    assert float(samples.min()) >= -2.0 and float(samples.max()) <= 2.0
    assert float(samples.min()) < 0.0


def test_visualizations(fitted: NetworkInversion) -> None:
    fig, axes = fitted.visualize(n_per_class=3, use_pyplot=False)
    assert axes.shape == (10, 3)
    titles = [axis.get_title() for axis in axes.flat]
    assert all(0.0 <= float(title) <= 1.0 for title in titles)
    fig, axis = fitted.visualize_history(keys=["loss", "hit_rate"], use_pyplot=False)
    assert len(axis.get_lines()) == 2


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


def test_bad_target_is_refused(fitted: NetworkInversion) -> None:
    with pytest.raises(ValueError, match=r"`target` must lie in \[0, 9\].*\[10\]"):
        fitted.attribute(target=10)
    with pytest.raises(ValueError, match="`target` is required"):
        fitted.attribute()
    with pytest.raises(TypeError, match="`target` must be an int"):
        fitted.attribute(target=(1, 2))
    with pytest.raises(ValueError, match="`n_samples`"):
        fitted.attribute(target=[1, 2], n_samples=3)


def test_jitter_rolls_by_at_most_jitter_pixels() -> None:
    images = torch.arange(2 * 9 * 9, dtype=torch.float32).view(2, 1, 9, 9)
    offsets = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)]
    torch.manual_seed(0)
    drawn = set()
    for _ in range(100):
        shifted = module.jittered(images, 2)
        rolls = [o for o in offsets if torch.equal(shifted, torch.roll(images, o, dims=(2, 3)))]
        assert len(rolls) == 1 and max(map(abs, rolls[0])) <= 2
        drawn.add(rolls[0])
    assert len(drawn) == 25  # every offset in [-2, 2]^2 is drawn
    assert module.jittered(images, 0) is images


@pytest.mark.parametrize("jitter", [-1, 1.5, True])
def test_bad_jitter_is_refused(trained_lenet: LeNet5, jitter: object) -> None:
    with pytest.raises(ValueError, match="`jitter` must be an int >= 0"):
        NetworkInversion(trained_lenet, input_shape=SHAPE, jitter=jitter)  # type: ignore[arg-type]


def test_input_shape_the_model_cannot_take(trained_lenet: LeNet5) -> None:
    with pytest.raises(ValueError, match=r"`input_shape` \(1, 32, 20\): the model fails"):
        NetworkInversion(trained_lenet, input_shape=(1, 32, 20))
    inversion = NetworkInversion(trained_lenet)
    with pytest.raises(ValueError, match="input shape is unknown"):
        inversion.fit(steps=1, progress=False)


def test_layer_not_in_the_model(trained_lenet: LeNet5) -> None:
    with pytest.raises(ValueError, match="`layer` .* is not a submodule"):
        NetworkInversion(trained_lenet, layer=nn.Linear(84, 10), input_shape=SHAPE)


def test_model_output_must_be_batch_by_classes() -> None:
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.Linear(3 * 26 * 26, 4))
    features_only = nn.Sequential(*list(model)[:1])
    with pytest.raises(ValueError, match=r"must be a \(batch, num_classes\) tensor"):
        NetworkInversion(features_only, layer=features_only[0], input_shape=SHAPE)
    with pytest.raises(ValueError, match="`num_classes` is 10 but the model outputs 4"):
        NetworkInversion(model, input_shape=SHAPE, num_classes=10)


@pytest.mark.cuda
def test_fit_and_sample_on_cuda(trained_lenet: LeNet5) -> None:
    model = LeNet5().cuda().eval()
    model.load_state_dict(trained_lenet.state_dict())
    inversion = NetworkInversion(model, input_shape=SHAPE)
    inversion.fit(steps=150, batch_size=32, seed=0, progress=False)
    assert inversion.generator is not None
    assert next(inversion.generator.parameters()).is_cuda
    samples = inversion.attribute(target=torch.arange(10).repeat(5), seed=0)
    assert samples.is_cuda
    assert float(inversion.evaluate(n_per_class=20).hit_rate) > 0.8


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
