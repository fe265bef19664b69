"""The model as an inversion sees it: output checks, input shapes, the feature layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_netinv import NetworkInversion
from captum_netinv.examples.models import LeNet5
from captum_netinv.inversion.target_model import TargetModel, default_layer

SHAPE = (1, 28, 28)


def test_input_shape_the_model_cannot_take(trained_lenet: LeNet5) -> None:
    with pytest.raises(ValueError, match=r"`input_shape` \(1, 32, 20\): the model fails"):
        NetworkInversion(trained_lenet, input_shape=(1, 32, 20))
    inversion = NetworkInversion(trained_lenet)
    with pytest.raises(ValueError, match="input shape is unknown"):
        inversion.fit(steps=1, progress=False)


def test_model_output_must_be_batch_by_classes() -> None:
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.Linear(3 * 26 * 26, 4))
    features_only = nn.Sequential(*list(model)[:1])
    with pytest.raises(ValueError, match=r"must be a \(batch, num_classes\) tensor"):
        NetworkInversion(features_only, layer=features_only[0], input_shape=SHAPE)
    with pytest.raises(ValueError, match="`num_classes` is 10 but the model outputs 4"):
        NetworkInversion(model, input_shape=SHAPE, num_classes=10)


def test_layer_not_in_the_model(trained_lenet: LeNet5) -> None:
    with pytest.raises(ValueError, match="`layer` .* is not a submodule"):
        NetworkInversion(trained_lenet, layer=nn.Linear(84, 10), input_shape=SHAPE)


def test_default_layer_is_the_last_linear(trained_lenet: LeNet5) -> None:
    assert default_layer(trained_lenet) is trained_lenet.fc3
    with pytest.raises(ValueError, match="no nn.Linear to default to"):
        default_layer(nn.Sequential(nn.Conv2d(1, 2, 3)))


def test_evaluated_matches_the_model_batch_by_batch(trained_lenet: LeNet5) -> None:
    seen: list[torch.Tensor] = []
    handle = trained_lenet.fc3.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    model = TargetModel(trained_lenet, trained_lenet.fc3, True, None, None)
    inputs = torch.rand(300, *SHAPE)
    try:
        logits, features = model.evaluated(inputs)
    finally:
        handle.remove()
    assert [len(batch) for batch in seen] == [256, 44]  # one forward pass per batch
    with torch.no_grad():
        assert torch.allclose(logits, trained_lenet(inputs), atol=1e-5)
    assert features.shape == (300, 84)
    assert torch.allclose(model.probabilities(inputs), logits.softmax(dim=1), atol=1e-6)


def test_a_model_with_one_logit_is_refused() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 1))
    with pytest.raises(ValueError, match="outputs 1 logit per sample: .* >= 2 classes"):
        NetworkInversion(model, input_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="`num_classes` must be >= 2"):
        NetworkInversion(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), num_classes=1)


def test_a_wrapped_model_gets_its_default_layer_and_device() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    inversion = NetworkInversion(lambda inputs: model(inputs), input_shape=(1, 4, 4))
    assert inversion.layer is model[3] and inversion.num_classes == 3
    with pytest.warns(UserWarning, match="nn.Module could not be found"):
        NetworkInversion(lambda inputs: inputs.flatten(1)[:, :3], layer=model[3])
