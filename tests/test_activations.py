"""A layer's activations: one forward pass with the layer's values, batching and reduction."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from captum_netinv._activations import (
    batch_inputs,
    first_tensor,
    forward_with_layer,
    iterate_batches,
    layer_activations,
    reduce_activations,
)


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 4)
    ).eval()


def test_forward_with_layer_returns_output_and_layer_values_with_gradients() -> None:
    model = _model()
    inputs = torch.rand(5, 1, 8, 8, requires_grad=True)
    output, values = forward_with_layer(model, inputs, model[0])
    assert torch.allclose(output, model(inputs)) and torch.allclose(values, model[0](inputs))
    values.sum().backward()
    assert inputs.grad is not None
    _, layer_input = forward_with_layer(model, inputs, model[3], attribute_to_layer_input=True)
    assert layer_input.shape == (5, 108)
    assert not any(module._forward_hooks for module in model.modules())


def test_layer_activations_streams_tensors_and_loaders_alike() -> None:
    model = _model()
    inputs = torch.rand(70, 1, 8, 8)
    expected_mean = model[0](inputs).mean(dim=(2, 3)).detach()
    from_tensor = layer_activations(model, model[0], inputs, batch_size=16)
    loader = DataLoader(TensorDataset(inputs, torch.zeros(70)), batch_size=32)
    from_loader = layer_activations(model, model[0], loader, reduction="max")
    assert torch.allclose(from_tensor, expected_mean, atol=1e-6)
    assert torch.allclose(from_loader, model[0](inputs).amax(dim=(2, 3)).detach(), atol=1e-6)
    with pytest.raises(ValueError, match="`inputs` holds no samples"):
        layer_activations(model, model[0], [])


def test_batches_and_reductions() -> None:
    values = torch.arange(10)
    assert [len(batch) for batch in iterate_batches(values, 4)] == [4, 4, 2]
    with pytest.raises(
        TypeError, match="`inputs` must be a tensor, a tuple of tensors .* or an iterable"
    ):
        list(iterate_batches(3, 4))  # type: ignore[arg-type]
    maps = torch.rand(2, 3, 4, 4)
    assert torch.equal(reduce_activations(maps, "max"), maps.flatten(2).amax(2))
    assert reduce_activations(torch.ones(6), "mean").shape == (6, 1)
    with pytest.raises(ValueError, match="'mean', 'max' or a callable"):
        reduce_activations(maps, "median")  # type: ignore[arg-type]


class _TwoInputs(nn.Module):
    """``mix`` sees ``a(x1) + b(x2) + shift``: a model of two inputs and an extra argument."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.mix = nn.Linear(3, 4), nn.Linear(2, 4), nn.Identity()

    def forward(self, x1: Tensor, x2: Tensor, shift: float = 0.0) -> Tensor:
        return self.mix(self.a(x1) + self.b(x2) + shift).relu()


class _PairDataset(Dataset):
    """Samples ``((x1, x2), y)``: a DataLoader collates them as ``[[x1, x2], y]``."""

    def __init__(self, x1: Tensor, x2: Tensor) -> None:
        self.x1, self.x2 = x1, x2

    def __len__(self) -> int:
        return len(self.x1)

    def __getitem__(self, index: int) -> tuple[tuple[Tensor, Tensor], int]:
        return (self.x1[index], self.x2[index]), index


def test_batches_of_several_model_inputs_reach_the_model_as_in_captum() -> None:
    model = _TwoInputs()
    x1, x2 = torch.randn(23, 3), torch.randn(23, 2)
    with torch.no_grad():
        expected = model.a(x1) + model.b(x2) + 1.5
    from_tuple = layer_activations(
        model, model.mix, (x1, x2), additional_forward_args=1.5, batch_size=5
    )
    loader = DataLoader(_PairDataset(x1, x2), batch_size=4)
    assert isinstance(next(iter(loader))[0], list)  # [[x1, x2], y], as the issue reported
    from_loader = layer_activations(model, model.mix, loader, additional_forward_args=1.5)
    listed = [((x1[:10], x2[:10]), None), [[x1[10:], x2[10:]]]]  # tuples and lists alike
    from_list = layer_activations(model, model.mix, listed, additional_forward_args=(1.5,))
    for result in (from_tuple, from_loader, from_list):
        assert torch.allclose(result, expected, atol=1e-6)
    assert [type(b) for b in iterate_batches(loader, 4, several_inputs=True)] == [tuple] * 6
    with pytest.raises(ValueError, match="different numbers of samples"):
        layer_activations(model, model.mix, [((x1[:4], x2[:3]), None)])


def test_one_tensor_consumers_name_batches_of_several_inputs() -> None:
    x1, x2 = torch.randn(4, 3), torch.randn(4, 2)
    batch = [[x1, x2], torch.zeros(4)]
    assert batch_inputs(batch) == (x1, x2) and batch_inputs((x1, 0)) is x1
    assert first_tensor((x1, x2)) is x1  # (inputs, labels): element 0, as before
    with pytest.raises(TypeError, match="`concepts` must hold one input tensor.*2 model inputs"):
        first_tensor(batch, "concepts")
    loader = DataLoader(_PairDataset(x1, x2), batch_size=2)
    with pytest.raises(TypeError, match="`inputs` must hold one input tensor"):
        list(iterate_batches(loader, 2))  # the default: one input tensor per batch
    with pytest.raises(
        TypeError, match=r"`inputs` must be a tensor or .*got list of \(list, int\)"
    ):
        batch_inputs([["x1"], 0])
    with pytest.raises(TypeError, match="`inputs` must be a tensor or .*got dict"):
        model = _TwoInputs()
        layer_activations(model, model.mix, [{"x": x1}])
