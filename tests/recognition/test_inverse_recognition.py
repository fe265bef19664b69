"""InverseRecognition end to end on a LeNet-5 trained on real MNIST digits."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerActivation
from captum.concept import Concept
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from captum_netinv.examples.data import DIGIT_NAMES, digit_concepts
from captum_netinv.examples.models import LeNet5
from captum_netinv.recognition import Explanations, InverseRecognition, explain_activations

HELD_OUT = slice(4000, 5000)


@pytest.fixture(scope="module")
def held_out(digits: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor, list[str]]:
    images, labels = digits
    images, labels = images[HELD_OUT], labels[HELD_OUT]
    concepts, names = digit_concepts(images, labels)
    return images, labels, concepts, names


def _same(one: Explanations, other: Explanations) -> None:
    assert one.neurons == other.neurons
    for a, b in zip(one, other, strict=True):
        assert (a.formula, a.support, a.beam) == (b.formula, b.support, b.beam)
        assert a.auc == pytest.approx(b.auc, abs=1e-12)
        assert a.p_value == pytest.approx(b.p_value, rel=1e-9)


def test_each_logit_is_labeled_with_its_own_digit(trained_lenet: LeNet5, held_out) -> None:
    images, _, concepts, names = held_out
    invert = InverseRecognition(trained_lenet, trained_lenet.fc3)
    found = invert.attribute(
        images, concepts, concept_names=names, formula_length=1, beam_size=3, progress=False
    )
    assert [str(item.formula) for item in found] == list(DIGIT_NAMES)
    assert all(item.auc > 0.95 and item.p_value < 1e-20 for item in found), str(found)
    # longer formulas refine the digit but keep it
    longer = invert.attribute(images, concepts, concept_names=names, progress=False)
    for digit, item in enumerate(longer):
        assert item.formula is not None and f"digit_{digit}" in item.formula.concepts
        assert item.auc >= found[digit].auc


def test_attribute_equals_explain_activations_and_dataloader_equals_tensor(
    trained_lenet: LeNet5, held_out
) -> None:
    images, labels, concepts, names = held_out
    invert = InverseRecognition(trained_lenet, trained_lenet.conv2)
    from_tensor = invert.attribute(
        images, concepts, concept_names=names, neurons=[0, 3, 9], batch_size=300, progress=False
    )
    loader = DataLoader(TensorDataset(images, labels), batch_size=128)
    from_loader = invert.attribute(
        loader, concepts, concept_names=names, neurons=[0, 3, 9], progress=False
    )
    _same(from_tensor, from_loader)
    # the conv channels' spatial means, as Captum's LayerActivation computes them
    with torch.no_grad():
        maps = LayerActivation(trained_lenet, trained_lenet.conv2).attribute(images)
    means = maps.mean(dim=(2, 3))
    assert torch.allclose(from_tensor.activations, means, atol=1e-5)
    direct = explain_activations(
        from_tensor.activations, concepts, concept_names=names, neurons=[0, 3, 9]
    )
    _same(from_tensor, direct)
    assert all(item.formula is not None and item.auc > 0.5 for item in from_tensor)


def test_max_reduction_and_negative_mode_run_on_conv_layer(trained_lenet: LeNet5, held_out) -> None:
    images, _, concepts, names = held_out
    invert = InverseRecognition(trained_lenet, trained_lenet.conv1)
    found = invert.attribute(
        images[:300],
        concepts[:300],
        concept_names=names,
        neuron_reduction="max",
        mode="negative",
        formula_length=2,
        progress=False,
        alternative="two-sided",
    )
    assert len(found) == 6 and found.settings["alternative"] == "two-sided"
    assert all(item.formula is not None and item.auc < 0.5 for item in found)


def test_concept_list_input(trained_lenet: LeNet5, held_out) -> None:
    images, labels, _, _ = held_out
    concepts = [
        Concept(digit, f"digit_{digit}", DataLoader(images[labels == digit][:40], batch_size=16))
        for digit in range(10)
    ]
    invert = InverseRecognition(trained_lenet, trained_lenet.fc3)
    found = invert.attribute(None, concepts, formula_length=1, beam_size=2, progress=False)
    assert found.concept_names == list(DIGIT_NAMES) and found.n_samples == 400
    assert [str(item.formula) for item in found] == list(DIGIT_NAMES)
    assert found.concepts is not None and found.concepts.sum(dim=0).tolist() == [40] * 10
    with pytest.raises(ValueError, match="`inputs` must be None"):
        invert.attribute(images, concepts, progress=False)


def test_additional_forward_args_are_sliced_with_batches(held_out) -> None:
    images, _, concepts, names = held_out

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Linear(784, 4)

        def forward(self, x: Tensor, scale: Tensor) -> Tensor:
            return self.inner(x.flatten(1)) * scale.unsqueeze(1)

    torch.manual_seed(0)
    model = Scaled()
    scale = torch.rand(len(images)) + 0.5
    found = InverseRecognition(model, model.inner).attribute(
        images,
        concepts,
        concept_names=names,
        additional_forward_args=(scale,),
        batch_size=100,
        progress=False,
        attribute_to_layer_input=False,
    )
    with torch.no_grad():
        expected = model.inner(images.flatten(1))
    _same(found, explain_activations(expected, concepts, concept_names=names))


def test_bad_input_names_the_argument(trained_lenet: LeNet5, held_out) -> None:
    images, _, concepts, names = held_out
    invert = InverseRecognition(trained_lenet, trained_lenet.fc3)
    with pytest.raises(ValueError, match="`layer`"):
        InverseRecognition(trained_lenet, nn.Linear(2, 2))
    with pytest.raises(ValueError, match="`concepts` labels 1000 samples but `inputs` holds 999"):
        invert.attribute(images[:999], concepts, concept_names=names, progress=False)
    with pytest.raises(ValueError, match="`concepts` must be binary"):
        invert.attribute(images, concepts.float() * 3, progress=False)
    with pytest.raises(ValueError, match="`neurons`"):
        invert.attribute(images, concepts, neurons=10, progress=False)
    with pytest.raises(ValueError, match="`concept_names` must be unique"):
        invert.attribute(images, concepts, concept_names=["x"] * 18, progress=False)
    with pytest.raises(ValueError, match="`inputs` is None"):
        invert.attribute(None, concepts, progress=False)
    with pytest.raises(ValueError, match="`beam_size`"):
        invert.attribute(images, concepts, beam_size=0, progress=False)
    with pytest.raises(ValueError, match="`neuron_reduction`"):
        invert.attribute(images, concepts, neuron_reduction="median", progress=False)


def test_non_finite_activations_name_the_neurons(held_out) -> None:
    images, _, concepts, _ = held_out
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 3))
    with torch.no_grad():
        model[1].bias[2] = float("nan")
    with pytest.raises(
        ValueError, match=r"`inputs` holds NaN or infinite values for neurons \[2\]"
    ):
        InverseRecognition(model, model[1]).attribute(images, concepts, progress=False)


@pytest.mark.cuda
def test_runs_on_cuda_like_on_cpu(trained_lenet: LeNet5, held_out) -> None:
    images, _, concepts, names = held_out
    cpu = InverseRecognition(trained_lenet, trained_lenet.fc2).attribute(
        images, concepts, concept_names=names, progress=False
    )
    model = LeNet5()
    model.load_state_dict(trained_lenet.state_dict())
    model = model.cuda().eval()
    gpu = InverseRecognition(model, model.fc2).attribute(
        images, concepts, concept_names=names, progress=False
    )
    assert gpu.activations is not None and gpu.activations.is_cuda
    # equal activations up to float rounding give the same formulas
    for one, other in zip(cpu, gpu, strict=True):
        assert one.formula == other.formula
        assert one.auc == pytest.approx(other.auc, abs=1e-3)


class _Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, inputs: Tensor) -> Tensor:
        return torch.relu(inputs + self.norm(self.conv(inputs)))


def _tiny_resnet() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        _Block(6),
        nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(24, 3),
    )


def test_a_train_mode_model_is_run_in_eval_mode_and_left_as_it_was() -> None:
    model = _tiny_resnet().train()
    images = torch.randn(60, 1, 8, 8)
    labels = torch.rand(60, 4) < 0.4
    buffers = {name: value.clone() for name, value in model.named_buffers()}
    invert = InverseRecognition(model, model[3])
    first = invert.attribute(images, labels, formula_length=2, batch_size=16, progress=False)
    second = invert.attribute(images, labels, formula_length=2, batch_size=16, progress=False)
    assert [e.auc for e in first] == [e.auc for e in second]
    assert all(module.training for module in model.modules())
    for name, value in model.named_buffers():
        assert torch.equal(value, buffers[name]), name
    with torch.no_grad():
        expected = model.eval()(images)
    model.train()
    wrapped = InverseRecognition(lambda inputs: model(inputs), model[7])
    logits = wrapped.attribute(images, labels, formula_length=1, progress=False)
    assert torch.allclose(logits.activations, expected, atol=1e-6)
    assert all(module.training for module in model.modules())


def test_a_tuple_is_several_model_inputs_as_in_captum() -> None:
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3, 2)

        def forward(self, first: Tensor, second: Tensor) -> Tensor:
            return self.linear(first * second)

    model = TwoInputs()
    first, second = torch.randn(40, 3), torch.randn(40, 3)
    labels = torch.rand(40, 3) < 0.4
    invert = InverseRecognition(model, model.linear)
    explanations = invert.attribute((first, second), labels, batch_size=7, progress=False)
    with torch.no_grad():
        expected = model(first, second)
    assert torch.allclose(explanations.activations, expected, atol=1e-6)
    with pytest.raises(ValueError, match="different numbers of samples"):
        invert.attribute((first, second[:30]), labels, progress=False)
    # an iterable of batches (a list of tensors, or of (inputs, labels) tuples) stays batches
    one_input = InverseRecognition(model.linear, model.linear)
    batches = [first[:25], first[25:]]
    pairs = [(first[:25], labels[:25]), (first[25:], labels[25:])]
    for source in (batches, pairs):
        result = one_input.attribute(source, labels, progress=False)
        assert torch.allclose(result.activations, model.linear(first).detach(), atol=1e-6)


def test_a_dataloader_of_several_model_inputs_equals_the_tuple_of_inputs() -> None:
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3, 4)

        def forward(self, first: Tensor, second: Tensor, shift: float) -> Tensor:
            return self.linear(first * second + shift)

    class Pairs(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(first)

        def __getitem__(self, index: int) -> tuple[tuple[Tensor, Tensor], Tensor]:
            return (first[index], second[index]), labels[index]

    torch.manual_seed(0)
    model = TwoInputs()
    first, second, shift = torch.randn(60, 3), torch.randn(60, 3), 0.7
    labels = torch.rand(60, 3) < 0.4
    invert = InverseRecognition(model, model.linear)
    run = {"additional_forward_args": (shift,), "formula_length": 2, "progress": False}
    from_tuple = invert.attribute((first, second), labels, batch_size=11, **run)
    from_loader = invert.attribute(DataLoader(Pairs(), batch_size=8), labels, **run)
    with torch.no_grad():
        expected = model(first, second, shift)
    assert torch.allclose(from_loader.activations, expected, atol=1e-6)
    assert torch.allclose(from_tuple.activations, from_loader.activations, atol=1e-6)
    _same(from_tuple, from_loader)


def test_a_shuffling_dataloader_is_refused_with_a_label_matrix(held_out) -> None:
    images, _, concepts, names = held_out
    model = LeNet5()
    invert = InverseRecognition(model, model.fc2)
    dataset = TensorDataset(images[:64])
    with pytest.raises(ValueError, match="DataLoader that shuffles its samples"):
        invert.attribute(DataLoader(dataset, batch_size=16, shuffle=True), concepts[:64])
    in_order = invert.attribute(
        DataLoader(dataset, batch_size=16), concepts[:64], concept_names=names, progress=False
    )
    assert in_order.n_samples == 64


def test_too_few_samples_and_empty_concepts_are_named() -> None:
    with pytest.raises(ValueError, match="labels 1 sample.*at least 2 samples"):
        explain_activations(torch.randn(1, 3), torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="labels 0 sample.*at least 2 samples"):
        explain_activations(torch.randn(0, 3), torch.ones(0, 2, dtype=torch.bool))
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    invert = InverseRecognition(model, model[1])
    full = Concept(0, "full", [torch.randn(5, 4)])
    empty = Concept(1, "empty", [])
    with pytest.raises(ValueError, match="concept 'empty' \\(id 1\\) has no samples"):
        invert.attribute(None, [full, empty], progress=False)
