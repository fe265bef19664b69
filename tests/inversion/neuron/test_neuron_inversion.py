"""NeuronInversion: one generator for the units of a layer, on a small CNN of 8x8 digits."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from captum.attr._utils.attribution import NeuronAttribution
from torch import Tensor, nn

import captum_netinv
from captum_netinv import NetworkInversion, NeuronInversion
from captum_netinv.labeling import concept_matrix, label_check
from captum_netinv.recognition import Formula

SHAPE = (1, 8, 8)
#: A short fit of the 12 hidden units: 2 samples of each unit per step.
FIT = {"steps": 60, "batch_size": 24, "lr": 5e-3, "seed": 0, "progress": False}


class _SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.hidden = nn.Linear(4 * 6 * 6, 12)
        self.out = nn.Linear(12, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.conv(x)).flatten(1)
        return self.out(torch.relu(self.hidden(x)))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits8() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0, torch.tensor(
        digits.target
    )


@pytest.fixture(scope="module")
def small_cnn(digits8: tuple[Tensor, Tensor]) -> nn.Module:
    images, labels = digits8
    torch.manual_seed(0)
    model = _SmallCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(25):
        for batch in torch.randperm(len(labels)).split(128):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimizer.step()
    model.eval()
    accuracy = float((model(images).argmax(1) == labels).float().mean())
    assert accuracy > 0.9, f"fixture classifier only {accuracy:.3f} accurate"
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


@pytest.fixture(scope="module")
def fitted_units(small_cnn: nn.Module, digits8: tuple[Tensor, Tensor]) -> NeuronInversion:
    inversion = NeuronInversion(small_cnn, small_cnn.hidden, input_shape=SHAPE)
    inversion.fit(digits8[0], **FIT)  # type: ignore[arg-type]
    return inversion


def test_is_a_captum_neuron_attribution_exported_from_the_package(fitted_units) -> None:
    assert isinstance(fitted_units, NeuronAttribution)
    assert captum_netinv.NeuronInversion is NeuronInversion
    assert "NeuronInversion" in captum_netinv.__all__
    assert fitted_units.neurons == list(range(12)) and fitted_units.num_classes == 12
    assert fitted_units.default_batch_size() == 72  # max(64, 4 K) rounded to a multiple of K


def test_samples_drive_their_unit_above_its_real_99th_percentile(
    small_cnn: nn.Module, digits8: tuple[Tensor, Tensor]
) -> None:
    images = digits8[0]
    # no jitter: a roll by one pixel moves an eighth of an 8 x 8 digit across the border
    inversion = NeuronInversion(small_cnn, small_cnn.hidden, input_shape=SHAPE, jitter=0)
    inversion.fit(images[:1200], steps=150, batch_size=48, lr=5e-3, seed=1, progress=False)
    result = inversion.evaluate(images[1200:], n_per_unit=16, top_k=50)
    # the truth: the units' activations on held-out real digits, measured here directly
    with torch.no_grad():
        real = torch.relu(small_cnn.conv(images[1200:])).flatten(1) @ small_cnn.hidden.weight.T
        real = real + small_cnn.hidden.bias
    expected = torch.quantile(real.double(), 0.99, dim=0).float()
    torch.testing.assert_close(result.reference_quantile, expected, rtol=1e-4, atol=1e-4)
    assert result.share_reached >= 0.75, result.median_activation / expected
    assert result.diversity_ratio is not None and bool(torch.isfinite(result.diversity_ratio).all())
    # a unit's samples drive it more than the other units' samples do
    samples = inversion.attribute(neuron_selector=list(range(12)) * 8, seed=2)
    activations = inversion.unit_activations(samples).view(8, 12, 12).mean(dim=0)
    assert int((activations.argmax(dim=0) == torch.arange(12)).sum()) >= 9


def test_bfloat16_autocast_fit_of_units_runs_on_cpu(
    small_cnn: nn.Module, digits8: tuple[Tensor, Tensor]
) -> None:
    inversion = NeuronInversion(small_cnn, small_cnn.hidden, input_shape=SHAPE)
    history = inversion.fit(digits8[0][:200], **{**FIT, "steps": 3}, autocast="bfloat16")
    assert all(len(values) == 3 for values in history.values())
    assert all(math.isfinite(value) for values in history.values() for value in values)
    with pytest.raises(ValueError, match="autocast"):
        inversion.fit(digits8[0][:200], **FIT, autocast="int8")


def test_every_neuron_selector_form_names_the_same_unit(fitted_units) -> None:
    by_int = fitted_units.attribute(neuron_selector=3, n_samples=4, seed=0)
    assert by_int.shape == (4, *SHAPE)
    assert torch.equal(by_int, fitted_units.attribute(neuron_selector=(3,), n_samples=4, seed=0))
    by_callable = fitted_units.attribute(neuron_selector=lambda out: out[:, 3], n_samples=4, seed=0)
    assert torch.equal(by_int, by_callable)
    assert torch.equal(
        by_int, fitted_units.attribute(neuron_selector=torch.tensor(3), n_samples=4, seed=0)
    )
    several = fitted_units.attribute(neuron_selector=[3, 3, 3, 3], seed=0)
    assert torch.equal(by_int, several)
    assert fitted_units.attribute(neuron_selector=torch.tensor([0, 5, 11]), seed=0).shape[0] == 3


def test_bad_neuron_selectors_raise_naming_it(fitted_units) -> None:
    with pytest.raises(ValueError, match="neuron_selector.*outside"):
        fitted_units.attribute(neuron_selector=12)
    with pytest.raises(ValueError, match="neuron_selector"):
        fitted_units.attribute(neuron_selector=-1)
    with pytest.raises(TypeError, match="neuron_selector"):
        fitted_units.attribute(neuron_selector="3")
    with pytest.raises(TypeError, match="neuron_selector"):
        fitted_units.attribute(neuron_selector=2.0)
    with pytest.raises(ValueError, match="neuron_selector.*tuple must be"):
        fitted_units.attribute(neuron_selector=(1, 2))
    with pytest.raises(ValueError, match="neuron_selector.*exactly one unit"):
        fitted_units.attribute(neuron_selector=lambda out: out[:, 1] + out[:, 2])
    with pytest.raises(ValueError, match="neuron_selector.*required"):
        fitted_units.attribute()
    with pytest.raises(ValueError, match="n_samples"):
        fitted_units.attribute(neuron_selector=[1, 2], n_samples=3)


def test_conv_channels_and_a_subset_of_units(small_cnn: nn.Module) -> None:
    inversion = NeuronInversion(small_cnn, small_cnn.conv, neurons=[1, 3], input_shape=SHAPE)
    assert inversion.layer_shape == (4, 6, 6) and inversion.num_classes == 2
    inversion.fit(steps=5, seed=0, progress=False)  # noise reference: no inputs
    assert inversion.statistics is not None and inversion.statistics.center.shape == (2,)
    assert inversion.statistics.feature_mean.shape == (4,)
    samples = inversion.attribute(
        neuron_selector=lambda out: out[:, 3].amax(dim=(1, 2)), n_samples=2
    )
    assert samples.shape == (2, *SHAPE)
    with pytest.raises(ValueError, match="neuron_selector` 2 was not fitted"):
        inversion.attribute(neuron_selector=2)
    with pytest.raises(ValueError, match="not on a position|tuple must be"):
        inversion.attribute(neuron_selector=(3, 0, 0))
    with pytest.raises(ValueError, match="batch_size"):
        inversion.fit(steps=2, batch_size=3, progress=False)
    with pytest.raises(TypeError, match="`lr` must be a number > 0 .*, got '0.1'"):
        inversion.fit(steps=2, lr="0.1", progress=False)  # type: ignore[arg-type]
    statistics = inversion.statistics
    with pytest.raises(ValueError, match="`lr` must be a finite number > 0, got 0"):
        inversion.fit(torch.rand(8, *SHAPE), steps=2, lr=0, progress=False)
    assert inversion.statistics is statistics  # refused before the reference was measured


def test_real_inputs_must_be_one_tensor_per_batch(fitted_units, digits8) -> None:
    images = digits8[0][:40]
    from_tensor = fitted_units.unit_activations(images)
    from_pairs = fitted_units.unit_activations([(images[:25], None), (images[25:], None)])
    torch.testing.assert_close(from_pairs, from_tensor)
    several = [((images, images), None)]  # a batch of two model inputs: no single image batch
    with pytest.raises(TypeError, match="`inputs` must hold one input tensor.*2 model inputs"):
        fitted_units.unit_activations(several)


def test_bad_construction_arguments(small_cnn: nn.Module) -> None:
    with pytest.raises(ValueError, match="neurons.*\\[0, 11\\]"):
        NeuronInversion(small_cnn, small_cnn.hidden, neurons=[0, 12], input_shape=SHAPE)
    with pytest.raises(ValueError, match="neurons.*repeats"):
        NeuronInversion(small_cnn, small_cnn.hidden, neurons=[1, 1], input_shape=SHAPE)
    with pytest.raises(TypeError, match="neurons"):
        NeuronInversion(small_cnn, small_cnn.hidden, neurons="all")
    with pytest.raises(ValueError, match="neuron_reduction"):
        NeuronInversion(small_cnn, small_cnn.conv, neuron_reduction="median")
    with pytest.raises(TypeError, match="layer"):
        NeuronInversion(small_cnn, "hidden")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reach_gate"):
        NeuronInversion(small_cnn, small_cnn.hidden, reach_gate=1)  # type: ignore[arg-type]


def test_per_block_cosines_equal_the_gated_kronecker_product_and_its_gradient(
    fitted_units, digits8
) -> None:
    from captum_netinv.inversion.losses import cosine_similarity, feature_orthogonality

    model = fitted_units._neuron_view()
    generated = fitted_units.attribute(neuron_selector=list(range(12)) * 2, seed=0).detach()
    # generated samples (mostly above their unit's 99th percentile) and real digits (mostly below)
    images = torch.cat([generated, digits8[0][:24]]).clone().requires_grad_(True)
    scores, features = model.logits_and_features(images)
    owners = scores[:, :-1].argmax(1)  # the unit each sample drives most is its block
    above = scores[torch.arange(len(scores)), owners] > 0  # ... and its gate
    assert torch.equal(features[:, 0], owners.float())
    assert torch.equal(features[:, 1], above.float())
    assert len(set(owners.tolist())) > 2  # several blocks, so that cross-block zeros matter
    assert 4 <= int(above.sum()) <= len(images) - 4  # open and closed gates
    placement = torch.nn.functional.one_hot(owners, len(model.neurons)).float()
    kronecker = (placement.unsqueeze(2) * features[:, 2:].unsqueeze(1)).flatten(1)
    kronecker = kronecker * above.unsqueeze(1)  # a closed gate: a zero row, cosine 0
    for term in (cosine_similarity, feature_orthogonality):
        fast = term(features, model.pairwise_cosine)
        (fast_grad,) = torch.autograd.grad(fast, images, retain_graph=True)
        dense = term(kronecker)  # the generic product of the (B, K D) layout
        (dense_grad,) = torch.autograd.grad(dense, images, retain_graph=True)
        torch.testing.assert_close(fast, dense)
        torch.testing.assert_close(fast_grad, dense_grad)
        # samples below their unit's 99th percentile get no push from the diversity terms
        assert float(fast_grad[~above].abs().max()) == 0.0
        assert float(fast_grad[above].abs().max()) > 0.0
    ungated = dataclasses.replace(model, reach_gate=False).logits_and_features(images)[1]
    assert bool((ungated[:, 1] == 1).all())


def test_default_batch_draws_every_unit_four_times() -> None:
    wide = nn.Sequential(nn.Flatten(), nn.Linear(64, 40))
    inversion = NeuronInversion(wide, wide[1], input_shape=(1, 8, 8))
    assert inversion.default_batch_size() == 160  # 4 x 40 units, above the floor of 64


def test_no_shift_or_zoom_unless_asked(small_cnn: nn.Module) -> None:
    plain = NeuronInversion(small_cnn, small_cnn.hidden, input_shape=SHAPE)
    assert (plain.settings.jitter, plain.settings.zoom) == (0, 0.0)
    assert NetworkInversion(small_cnn, input_shape=SHAPE).settings.jitter > 0  # the class default
    asked = NeuronInversion(small_cnn, small_cnn.hidden, input_shape=SHAPE, jitter=2, zoom=0.1)
    assert (asked.settings.jitter, asked.settings.zoom) == (2, 0.1)


def test_save_and_load_round_trip(fitted_units, small_cnn: nn.Module, tmp_path: Path) -> None:
    path = str(tmp_path / "units.pt")
    fitted_units.save(path)
    loaded = NeuronInversion.load(path, small_cnn)
    assert loaded.layer is small_cnn.hidden and loaded.neurons == fitted_units.neurons
    assert loaded.statistics.to_dict() == fitted_units.statistics.to_dict()
    assert loaded.steps_trained == FIT["steps"] and loaded.history == fitted_units.history
    expected = fitted_units.attribute(neuron_selector=[0, 4, 7], seed=3)
    assert torch.equal(loaded.attribute(neuron_selector=[0, 4, 7], seed=3), expected)
    assert loaded.reach_gate is True and loaded._neuron_view().reach_gate is True
    ungated = NeuronInversion(small_cnn, small_cnn.hidden, input_shape=SHAPE, reach_gate=False)
    ungated.fit(steps=2, batch_size=24, seed=0, progress=False)
    ungated.save(str(tmp_path / "ungated.pt"))
    assert NeuronInversion.load(str(tmp_path / "ungated.pt"), small_cnn).reach_gate is False
    classes = NetworkInversion(small_cnn, input_shape=SHAPE)
    classes.fit(steps=2, batch_size=4, seed=0, progress=False)
    classes.save(str(tmp_path / "classes.pt"))
    with pytest.raises(ValueError, match="not a NeuronInversion"):
        NeuronInversion.load(str(tmp_path / "classes.pt"), small_cnn)


def test_a_neuron_inversion_of_ten_logits_is_not_loaded_as_a_class_inversion(
    small_cnn: nn.Module, tmp_path: Path
) -> None:
    # ten units of the ten-class output layer: the fingerprint alone cannot tell the two apart
    logits = NeuronInversion(small_cnn, small_cnn.out, input_shape=SHAPE)
    logits.fit(steps=2, batch_size=20, seed=0, progress=False)
    path = str(tmp_path / "logits.pt")
    logits.save(path)
    with pytest.raises(ValueError, match="holds a NeuronInversion, not a NetworkInversion"):
        NetworkInversion.load(path, small_cnn)
    assert NeuronInversion.load(path, small_cnn).neurons == logits.neurons


def test_an_interrupted_fit_resumes_to_the_uninterrupted_weights(
    small_cnn: nn.Module, digits8: tuple[Tensor, Tensor], tmp_path: Path
) -> None:
    images = digits8[0][:300]
    fit = {"steps": 20, "batch_size": 24, "seed": 5, "progress": False}
    whole = NeuronInversion(small_cnn, small_cnn.hidden, input_shape=SHAPE)
    whole.fit(images, **fit)  # type: ignore[arg-type]
    path = str(tmp_path / "fit.pt")
    first = NeuronInversion(small_cnn, small_cnn.hidden, input_shape=SHAPE)
    first.fit(
        images, checkpoint_path=path, checkpoint_every=5, callback=lambda s, _: s == 10, **fit
    )  # type: ignore[arg-type]
    assert first.steps_trained == 10
    resumed = NeuronInversion(small_cnn, small_cnn.hidden, input_shape=SHAPE)
    resumed.fit(images, checkpoint_path=path, **fit)  # type: ignore[arg-type]
    assert resumed.steps_trained == 20 and resumed.history == whole.history
    for name, value in whole.generator.state_dict().items():
        assert torch.equal(resumed.generator.state_dict()[name], value), name
    other = NeuronInversion(small_cnn, small_cnn.hidden, input_shape=SHAPE)
    with pytest.raises(ValueError, match="other settings"):
        other.fit(digits8[0][300:600], checkpoint_path=path, **fit)  # type: ignore[arg-type]


def test_label_check_counts_the_samples_where_the_formula_holds() -> None:
    detectors = {
        "bright": lambda x: x.mean(dim=(1, 2, 3)) > 0.5,
        "left": lambda x: x[..., :2].mean(dim=(1, 2, 3)) > x[..., 2:].mean(dim=(1, 2, 3)),
    }
    generated = torch.zeros(5, 1, 2, 4)
    generated[:3] = 1.0  # bright, not left-heavy
    generated[3, ..., :2] = 1.0  # half bright (mean 0.5: not bright), left-heavy
    real = torch.zeros(4, 1, 2, 4)
    real[0] = 1.0
    real[1, ..., :2] = 1.0
    real[1, ..., 2:] = 0.2  # mean 0.6: bright and left-heavy
    check = label_check("bright & ~left", generated, real, detectors)
    # by hand: generated 0, 1, 2 hold (3 of 5); real 0 holds, real 1 is left-heavy (1 of 4)
    assert (check.generated_share, check.real_share) == (pytest.approx(0.6), 0.25)
    assert (check.n_generated, check.n_real, check.formula) == (5, 4, "bright & ~left")
    formula = Formula.parse("left | bright", ["x", "bright", "left"])  # indices of other names
    assert label_check(formula, generated, real, detectors).generated_share == pytest.approx(0.8)
    with pytest.raises(ValueError, match="detectors.*missing|no detector"):
        concept_matrix(generated, ["round"], detectors)


def test_one_identity_on_captums_neuron_base(
    small_cnn: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    from captum.attr._utils.attribution import LayerAttribution

    calls: list[tuple[object, ...]] = []
    original = NeuronAttribution.__init__

    def recording_init(self: NeuronAttribution, *args: object, **kwargs: object) -> None:
        calls.append(args)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(NeuronAttribution, "__init__", recording_init)
    inversion = NeuronInversion(small_cnn, small_cnn.hidden, input_shape=SHAPE)
    assert calls == [(small_cnn, small_cnn.hidden, None)]  # Captum's neuron base is set up
    assert not isinstance(inversion, LayerAttribution)
    assert inversion.layer is small_cnn.hidden and inversion.forward_func is small_cnn


def test_settings_come_from_the_neuron_preset(small_cnn: nn.Module) -> None:
    from captum_netinv.inversion.neuron.neuron_inversion import NEURON_LOSS_WEIGHTS
    from captum_netinv.inversion.presets import NEURON, PAPER

    units = NeuronInversion(small_cnn, small_cnn.hidden, input_shape=SHAPE)
    assert units.settings == NEURON.settings() and units.settings.preset == "neuron"
    for name, weight in NEURON_LOSS_WEIGHTS.items():
        assert units.settings.loss_weights[name] == weight
    assert (units.settings.jitter, units.settings.zoom) == (0, 0.0)
    overridden = NeuronInversion(
        small_cnn, small_cnn.hidden, input_shape=SHAPE, loss_weights={"cosine_similarity": 1.0}
    )
    assert overridden.settings.loss_weights["cosine_similarity"] == 1.0
    assert overridden.settings.loss_weights["feature_orthogonality"] == 0.2
    paper = NeuronInversion(small_cnn, small_cnn.hidden, input_shape=SHAPE, preset="paper")
    assert paper.settings == PAPER.settings()


def test_a_fit_leaves_the_declared_settings_alone(
    fitted_units: NeuronInversion, small_cnn: nn.Module
) -> None:
    from captum_netinv.inversion.presets import NEURON

    # the pair weighting of the diversity terms is the fit's, never written into the object
    assert fitted_units.settings == NEURON.settings()
    assert fitted_units._config()["loss_weights"] == dict(NEURON.settings().loss_weights)


def test_messages_name_neuron_inversion(small_cnn: nn.Module) -> None:
    units = NeuronInversion(small_cnn, small_cnn.hidden)
    with pytest.raises(ValueError, match=r"input_shape=\(C, H, W\)` to NeuronInversion"):
        units.attribute(neuron_selector=0)


@pytest.mark.cuda
def test_fit_with_the_model_and_the_inputs_on_cuda(
    small_cnn: nn.Module, digits8: tuple[Tensor, Tensor]
) -> None:
    model = _SmallCNN().cuda().eval()
    model.load_state_dict(small_cnn.state_dict())
    on_cpu = NeuronInversion(small_cnn, small_cnn.hidden, input_shape=SHAPE)
    on_cpu.fit(digits8[0], **FIT)  # type: ignore[arg-type]
    units = NeuronInversion(model, model.hidden, input_shape=SHAPE)
    units.fit(digits8[0].cuda(), **FIT)  # type: ignore[arg-type]
    assert units.statistics is not None and on_cpu.statistics is not None
    assert units.statistics.center.device.type == "cpu"  # documented: statistics on the CPU
    assert torch.allclose(units.statistics.flat(), on_cpu.statistics.flat(), atol=1e-4)
    samples = units.attribute(neuron_selector=3, n_samples=4, seed=0)
    assert samples.device.type == "cuda" and samples.shape == (4, *SHAPE)
