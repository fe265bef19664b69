"""Small reference classifiers (LeNet-5, an MLP, a colour CNN) and a deterministic training loop.

The demo, the tests, the tutorials and the benchmarks train their models with these, so every
part of the project inverts and labels the same architectures.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from captum_netinv._progress import progress_bar

__all__ = [
    "LeNet5",
    "MLP",
    "ShapesCNN",
    "accuracy",
    "train_classifier",
]


class LeNet5(nn.Module):
    r"""
    LeNet-5-style CNN for ``(1, 28, 28)`` inputs with values in [0, 1].

    Layers are named so that they can be passed to the attribution classes: ``conv1``, ``conv2``
    (feature maps), ``fc1``, ``fc2`` (hidden linear units) and ``fc3`` (logits).

    Args:
        num_classes (int, optional): Number of output logits. Default: 10
        batch_norm (bool, optional): Insert ``BatchNorm2d`` after each convolution (lets
                    :class:`~captum_netinv.NetworkInversion` use its feature-statistics prior).
                    Default: False
        in_channels (int, optional): Channels of the input images. Default: 1
    """

    def __init__(self, num_classes: int = 10, batch_norm: bool = False, in_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5, padding=2)
        self.bn1: nn.Module = nn.BatchNorm2d(6) if batch_norm else nn.Identity()
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.bn2: nn.Module = nn.BatchNorm2d(16) if batch_norm else nn.Identity()
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.relu(self.bn1(self.conv1(x))))
        x = self.pool(self.relu(self.bn2(self.conv2(x))))
        x = self.relu(self.fc1(x.flatten(1)))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


class MLP(nn.Module):
    r"""
    Fully connected classifier; a verifier of another architecture than :class:`LeNet5`.

    Args:
        in_features (int, optional): Number of input values (flattened). Default: 784
        hidden (Sequence[int], optional): Widths of the hidden layers. Default: (256, 128)
        num_classes (int, optional): Number of output logits. Default: 10
    """

    def __init__(
        self,
        in_features: int = 784,
        hidden: Sequence[int] = (256, 128),
        num_classes: int = 10,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class ShapesCNN(nn.Module):
    r"""
    Small CNN for ``(3, 32, 32)`` colour images in [0, 1], such as
    :func:`~captum_netinv.examples.shapes.coloured_shapes`.

    Three 3x3 convolutions (16, 32, 64 channels), each followed by ReLU and 2x2 max pooling,
    then ``fc1`` (128 units) and ``fc2`` (the logits); layers named ``conv1`` .. ``conv3``,
    ``fc1``, ``fc2`` for the attribution classes.

    Args:
        num_classes (int, optional): Number of output logits. Default: 9
        batch_norm (bool, optional): Insert ``BatchNorm2d`` after each convolution. Default:
                    False

    Examples::

        >>> ShapesCNN()(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 9])
    """

    def __init__(self, num_classes: int = 9, batch_norm: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
        self.bn1: nn.Module = nn.BatchNorm2d(16) if batch_norm else nn.Identity()
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.bn2: nn.Module = nn.BatchNorm2d(32) if batch_norm else nn.Identity()
        self.conv3 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.bn3: nn.Module = nn.BatchNorm2d(64) if batch_norm else nn.Identity()
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(64 * 4 * 4, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.relu(self.bn1(self.conv1(x))))
        x = self.pool(self.relu(self.bn2(self.conv2(x))))
        x = self.pool(self.relu(self.bn3(self.conv3(x))))
        return self.fc2(self.relu(self.fc1(x.flatten(1))))


def train_classifier(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
) -> nn.Module:
    r"""
    Trains ``model`` with Adam and cross-entropy on ``(images, labels)``, deterministically.

    Args:
        model (nn.Module): The classifier; trained in place, on the device of its parameters.
        images (Tensor): Training inputs, ``(N, ...)``.
        labels (Tensor): Class indices, ``(N,)``.
        epochs (int, optional): Passes over the data. Default: 3
        batch_size (int, optional): Mini-batch size. Default: 64
        lr (float, optional): Adam learning rate. Default: 1e-3
        seed (int, optional): Seed of the shuffling. Default: 0
        progress (bool, optional): Show a progress bar. Default: False

    Returns:
        *nn.Module*: ``model``, trained and in eval mode.

    Examples::

        >>> images, labels = load_mnist()
        >>> model = train_classifier(LeNet5(), images, labels, epochs=2)
    """
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"`images` has {images.shape[0]} samples but `labels` has {labels.shape[0]}"
        )
    device = next(model.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    steps = epochs * ((len(labels) + batch_size - 1) // batch_size)
    with progress_bar(total=steps, desc="training classifier", enabled=progress) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(labels), generator=rng)
            for start in range(0, len(labels), batch_size):
                batch = order[start : start + batch_size]
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(
                    model(images[batch].to(device)), labels[batch].to(device)
                )
                loss.backward()
                optimizer.step()
                bar.update()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1024) -> float:
    r"""
    Fraction of ``images`` that ``model`` assigns to their ``labels``.

    Args:
        model (nn.Module): The classifier, evaluated in its current mode.
        images (Tensor): Inputs, ``(N, ...)``.
        labels (Tensor): Class indices, ``(N,)``.
        batch_size (int, optional): Evaluation batch size. Default: 1024

    Returns:
        *float*: the accuracy in [0, 1].
    """
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(labels), batch_size):
        logits = model(images[start : start + batch_size].to(device))
        correct += int((logits.argmax(dim=1).cpu() == labels[start : start + batch_size]).sum())
    return correct / max(len(labels), 1)
