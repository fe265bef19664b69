"""Every entry point whatever the devices of its inputs and of the model (needs CUDA).

Each test runs over the four pairs (model on the CPU / the GPU) x (inputs and labels on the CPU /
the GPU), checks that the call works, that its result lies on the device its docstring names,
and where cheap that it equals the all-CPU result. Without CUDA every test is skipped
(``tests/conftest.py``); nothing here touches CUDA at import or in the parameter ids.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
from torch import Tensor  # noqa: E402

from captum_netinv import (  # noqa: E402
    InverseRecognition,
    NetworkInversion,
    NeuronInversion,
    explain_activations,
)
from captum_netinv.examples.data import digit_concept_detectors, digit_concepts  # noqa: E402
from captum_netinv.examples.models import LeNet5  # noqa: E402
from captum_netinv.inversion.network.concepts import samples_as_concept  # noqa: E402
from captum_netinv.labeling import label_check  # noqa: E402
from captum_netinv.recognition import Explanations  # noqa: E402
from captum_netinv.visualization import (  # noqa: E402
    visualize_activation_distribution,
    visualize_inversion,
    visualize_neuron,
    visualize_neuron_explanation,
    visualize_top_activating,
)

pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures("one_thread", "exact_cuda_math")]

DEVICES = ("cpu", "cuda")
#: The four (model device, inputs device) pairs, named without touching CUDA.
MATRIX = pytest.mark.parametrize(
    ("model_device", "inputs_device"),
    [pytest.param(m, i, id=f"model_{m}-inputs_{i}") for m in DEVICES for i in DEVICES],
)
SHAPE = (1, 28, 28)
#: Held-out digits (the fixture LeNet-5 trained on the first 4,000).
HELD_OUT = slice(4000, 5000)
#: Units of ``fc2`` the neuron inversions cover, and the neurons INVERT labels.
UNITS = [0, 1, 2, 3]
LABELED = list(range(16))
#: A few steps: these tests check devices, not quality.
FIT = {"steps": 3, "seed": 0, "progress": False}
NEURON_FIT = {**FIT, "batch_size": 16}
NETWORK_FIT = {**FIT, "batch_size": 20}


@pytest.fixture(scope="module")
def exact_cuda_math() -> Iterator[None]:
    """No TF32 convolutions or matrix products: GPU results then match the CPU's closely."""
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags


@pytest.fixture(scope="module")
def held_out(digits: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor, list[str]]:
    """Held-out images, their classes, their digit concepts and the concepts' names (CPU)."""
    images, labels = digits[0][HELD_OUT], digits[1][HELD_OUT]
    concepts, names = digit_concepts(images, labels)
    return images, labels, concepts, names


def _model(trained_lenet: LeNet5, device: str) -> LeNet5:
    """A copy of the fixture LeNet-5 on ``device``."""
    return copy.deepcopy(trained_lenet).to(device).eval()


def _same_search(one: Explanations, other: Explanations, auc: float) -> None:
    """The same neurons with the same formulas and supports, their AUCs within ``auc``."""
    assert one.neurons == other.neurons
    for a, b in zip(one, other, strict=True):
        assert (a.formula, a.support) == (b.formula, b.support)
        assert a.auc == pytest.approx(b.auc, abs=auc, nan_ok=True)


def _same_entries(one: object, other: object) -> None:
    """Beam entries (or refinements) of the same formulas and supports, AUCs within 1e-12
    (GPU kernels may round the last bit otherwise)."""
    if one is None or other is None:
        assert one is other
        return
    assert (one.formula, one.support) == (other.formula, other.support)  # type: ignore[attr-defined]
    assert one.auc == pytest.approx(other.auc, abs=1e-12)  # type: ignore[attr-defined]


@MATRIX
def test_neuron_inversion_fit(
    trained_lenet: LeNet5, held_out: tuple, model_device: str, inputs_device: str
) -> None:
    images = held_out[0][:256]
    on_cpu = NeuronInversion(trained_lenet, trained_lenet.fc2, neurons=UNITS)
    on_cpu.fit(images, **NEURON_FIT)  # type: ignore[arg-type]
    model = _model(trained_lenet, model_device)
    units = NeuronInversion(model, model.fc2, neurons=UNITS)
    history = units.fit(images.to(inputs_device), **NEURON_FIT)  # type: ignore[arg-type]
    assert len(history["loss"]) == 3
    assert units.statistics is not None and on_cpu.statistics is not None
    # documented: the reference statistics on the CPU, equal to the all-CPU ones
    assert {getattr(units.statistics, key).device.type for key in ("center", "input_mean")} == {
        "cpu"
    }
    assert torch.allclose(units.statistics.flat(), on_cpu.statistics.flat(), atol=1e-4)
    samples = units.attribute(neuron_selector=UNITS[1], n_samples=4, seed=0)
    assert samples.device.type == model_device and samples.shape == (4, *SHAPE)
    activations = units.unit_activations(images.to(inputs_device))
    assert activations.device.type == "cpu"
    assert torch.allclose(activations, on_cpu.unit_activations(images), atol=1e-4)
    result = units.evaluate(inputs=images.to(inputs_device), n_per_unit=4, top_k=8)
    expected = on_cpu.evaluate(inputs=images, n_per_unit=4, top_k=8)
    assert {result.median_activation.device.type, result.reference_quantile.device.type} == {"cpu"}
    assert torch.allclose(result.reference_quantile, expected.reference_quantile, atol=1e-4)


@MATRIX
def test_network_inversion_fit_with_example_inputs(
    trained_lenet: LeNet5, held_out: tuple, model_device: str, inputs_device: str
) -> None:
    images = held_out[0][:64]
    inversion = NetworkInversion(_model(trained_lenet, model_device))
    history = inversion.fit(images[:8].to(inputs_device), **NETWORK_FIT)  # type: ignore[arg-type]
    assert inversion.input_shape == SHAPE and len(history["loss"]) == 3
    targets = torch.arange(10).to(inputs_device)
    samples = inversion.attribute(target=targets, seed=0)
    assert samples.device.type == model_device and samples.shape == (10, *SHAPE)
    probabilities = inversion.class_probabilities(images.to(inputs_device))
    assert probabilities.device.type == "cpu"
    with torch.no_grad():
        expected = trained_lenet(images).softmax(dim=1)
    assert torch.allclose(probabilities, expected, atol=1e-5)


@MATRIX
def test_network_inversion_fit_with_reference_inputs(
    trained_lenet: LeNet5, held_out: tuple, model_device: str, inputs_device: str
) -> None:
    images = held_out[0][:128]
    model = _model(trained_lenet, model_device)
    histories = []
    for device in ("cpu", inputs_device):  # the fit does not depend on the inputs' device
        inversion = NetworkInversion(model)
        history = inversion.fit(reference_inputs=images.to(device), **NETWORK_FIT)  # type: ignore[arg-type]
        assert inversion.input_shape == SHAPE and inversion.generator is not None
        assert next(inversion.generator.parameters()).device.type == model_device
        histories.append(history)
    one, other = histories
    assert one.keys() == other.keys()
    for key in one:
        assert len(one[key]) == 3
        assert one[key] == pytest.approx(other[key], rel=1e-3, abs=1e-5, nan_ok=True)


@MATRIX
def test_network_inversion_evaluate(
    trained_lenet: LeNet5, held_out: tuple, model_device: str, inputs_device: str
) -> None:
    images, labels = held_out[0][:200], held_out[1][:200]
    results = []
    for model_on, inputs_on in (("cpu", "cpu"), (model_device, inputs_device)):
        inversion = NetworkInversion(_model(trained_lenet, model_on), input_shape=SHAPE)
        inversion.fit(**NETWORK_FIT)  # type: ignore[arg-type]
        results.append(
            inversion.evaluate(
                n_per_class=2,
                verifier=_model(trained_lenet, inputs_on),  # the model's device or another
                inputs=images.to(inputs_on),
                labels=labels.to(inputs_on),
            )
        )
    expected, result = results
    for name in ("hit_rate_per_class", "diversity_per_class", "real_diversity_per_class"):
        assert getattr(result, name).device.type == "cpu", name
    assert result.verifier_hit_rate_per_class is not None
    assert result.verifier_hit_rate_per_class.device.type == "cpu"
    # the real-data figures depend on the model and the inputs alone
    for name in ("real_diversity", "real_pixel_diversity", "real_early_diversity"):
        assert getattr(result, name) == pytest.approx(getattr(expected, name), rel=1e-4), name


@MATRIX
def test_inverse_recognition_attribute(
    trained_lenet: LeNet5, held_out: tuple, model_device: str, inputs_device: str
) -> None:
    images, _, concepts, names = held_out
    on_cpu = InverseRecognition(trained_lenet, trained_lenet.fc2).attribute(
        images, concepts, concept_names=names, neurons=LABELED, progress=False
    )
    model = _model(trained_lenet, model_device)
    explanations = InverseRecognition(model, model.fc2).attribute(
        images.to(inputs_device),
        concepts.to(inputs_device),
        concept_names=names,
        neurons=LABELED,
        progress=False,
    )
    # documented: activations on the model's device, the labels beside them
    assert explanations.activations is not None and explanations.concepts is not None
    assert explanations.activations.device.type == model_device
    assert explanations.concepts.device.type == model_device
    _same_search(explanations, on_cpu, auc=1e-3)
    neuron = next(n for n in LABELED if explanations[n].formula is not None)
    assert explanations.mask(neuron).device.type == model_device
    assert torch.equal(explanations.mask(neuron).cpu(), on_cpu.mask(neuron))


@MATRIX
def test_inverse_recognition_of_captum_concepts(
    trained_lenet: LeNet5, held_out: tuple, model_device: str, inputs_device: str
) -> None:
    images, labels = held_out[0], held_out[1]
    model = _model(trained_lenet, model_device)
    inversion = NetworkInversion(model, input_shape=SHAPE)
    inversion.fit(**NETWORK_FIT)  # type: ignore[arg-type]
    inverted = inversion.as_concept(3, n_samples=16, batch_size=8, seed=0)
    batches = list(inverted.data_iter)  # type: ignore[arg-type]
    # documented: the samples on the model's device (where TCAV runs the model on them)
    assert [batch.device.type for batch in batches] == [model_device] * 2
    real = samples_as_concept(
        images[labels == 3][:16].to(inputs_device), concept_id=1, name="real_3", batch_size=8
    )
    assert next(iter(real.data_iter)).device.type == inputs_device  # type: ignore[arg-type]
    explanations = InverseRecognition(model, model.fc2).attribute(
        None, [inverted, real], neurons=LABELED, progress=False
    )
    assert explanations.concept_names == [inverted.name, "real_3"]
    assert explanations.n_samples == 32 and explanations.activations is not None
    assert explanations.activations.device.type == model_device


@pytest.mark.parametrize("labels_device", DEVICES)
@MATRIX
def test_explain_activations(model_device: str, inputs_device: str, labels_device: str) -> None:
    # no model here: "model_device" is where the search runs (``device``), "inputs_device"
    # where the activations lie
    generator = torch.Generator().manual_seed(0)
    labels = torch.rand(400, 5, generator=generator) < torch.tensor([0.3, 0.45, 0.2, 0.6, 0.1])
    activations = torch.randn(400, 4, generator=generator).round(decimals=1)  # ties occur
    activations += labels.float() @ torch.randn(5, 4, generator=generator)
    names = ["a", "b", "c", "d", "e"]
    on_cpu = explain_activations(activations, labels, concept_names=names)
    result = explain_activations(
        activations.to(inputs_device),
        labels.to(labels_device),
        concept_names=names,
        device=model_device,
    )
    _same_search(result, on_cpu, auc=1e-12)
    for a, b in zip(result, on_cpu, strict=True):
        assert len(a.beam) == len(b.beam) and len(a.by_length) == len(b.by_length)
        for x, y in zip(
            (*a.beam, *a.by_length, a.refinement),
            (*b.beam, *b.by_length, b.refinement),
            strict=True,
        ):
            _same_entries(x, y)
        assert a.p_value == pytest.approx(b.p_value, rel=1e-9)
    assert result.activations is not None and result.concepts is not None
    assert result.activations.device.type == inputs_device
    assert result.concepts.device.type == inputs_device  # beside the activations
    mask = result.mask(0)
    assert mask.device.type == inputs_device
    assert result.neuron_activations(0)[mask].device.type == inputs_device
    official = explain_activations(
        activations.to(inputs_device),
        labels.to(labels_device),
        concept_names=names,
        reference_compatible=True,
    )
    _same_search(
        official,
        explain_activations(activations, labels, concept_names=names, reference_compatible=True),
        auc=1e-12,
    )


@MATRIX
def test_label_check(
    trained_lenet: LeNet5, held_out: tuple, model_device: str, inputs_device: str
) -> None:
    images = held_out[0][:200]
    model = _model(trained_lenet, model_device)
    inversion = NetworkInversion(model, input_shape=SHAPE)
    inversion.fit(**NETWORK_FIT)  # type: ignore[arg-type]
    generated = inversion.attribute(target=3, n_samples=8, seed=0)  # on the model's device
    detectors = digit_concept_detectors(model, images.to(inputs_device))
    check = label_check("round | thick", generated, images.to(inputs_device), detectors)
    on_cpu = label_check(
        "round | thick",
        generated.cpu(),
        images,
        digit_concept_detectors(trained_lenet, images),
    )
    assert (check.formula, check.n_generated, check.n_real) == ("round | thick", 8, 200)
    assert check.real_share == on_cpu.real_share
    assert check.generated_share == pytest.approx(on_cpu.generated_share, abs=0.13)
    # the example concepts of images and labels on other devices: on the labels' device
    labels = held_out[1][:200]
    concepts, _ = digit_concepts(images.to(inputs_device), labels.to(model_device))
    assert concepts.device.type == model_device
    assert float((concepts.cpu() != digit_concepts(images, labels)[0]).float().mean()) < 0.01


@MATRIX
def test_visualizations(
    trained_lenet: LeNet5, held_out: tuple, model_device: str, inputs_device: str
) -> None:
    _, _, _, names = held_out
    images, concepts = (value[:300].to(inputs_device) for value in (held_out[0], held_out[2]))
    model = _model(trained_lenet, model_device)
    units = NeuronInversion(model, model.fc2, neurons=LABELED)
    units.fit(images[:64], **{**NEURON_FIT, "batch_size": 32})  # type: ignore[arg-type]
    explanations = InverseRecognition(model, model.fc2).attribute(
        images, concepts, concept_names=names, neurons=LABELED, progress=False
    )
    neuron = next(n for n in LABELED if explanations[n].formula is not None)
    figures = [
        visualize_neuron(units, neuron, images, explanations, n_generated=4, k=4, use_pyplot=False),
        units.visualize(neuron, images, n_generated=4, k=4, use_pyplot=False),
        visualize_top_activating(explanations, neuron, images, k=4, use_pyplot=False),
        visualize_top_activating(
            explanations.activations.cpu(),  # type: ignore[union-attr]
            neuron,
            images,
            concepts=concepts,
            concept_names=names,
            k=4,
            use_pyplot=False,
        ),
        visualize_neuron_explanation(explanations, neuron, use_pyplot=False),
        visualize_neuron_explanation(explanations, neuron, by_length=True, use_pyplot=False),
        visualize_activation_distribution(
            explanations.neuron_activations(neuron), concepts[:, 0], use_pyplot=False
        ),
    ]
    inversion = NetworkInversion(model, input_shape=SHAPE)
    inversion.fit(**NETWORK_FIT)  # type: ignore[arg-type]
    figures.append(visualize_inversion(inversion, n_per_class=2, use_pyplot=False))
    for figure, _ in figures:
        assert figure.axes
        plt.close(figure)
