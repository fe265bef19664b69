"""A layer's activations: one forward pass with the layer's values, batching and reduction."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from captum_netinv._activations import (
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
