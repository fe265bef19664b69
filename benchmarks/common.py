"""What the benchmark scripts share: paths, MNIST, the trained models, synthetic INVERT data.

Each script imports from here and from the package, never from another script.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# captum_netinv is imported inside the functions that build or train models:
# bench_search_memory.py imports this module (for synthetic_rows) in processes that run an
# earlier commit's package, which may not have captum_netinv.examples yet.

__all__ = [
    "MNIST",
    "OUT",
    "PROTOCOL_OUT",
    "ROOT",
    "ResCNN",
    "VerifierMLP",
    "WideCNN",
    "available_device",
    "device_name",
    "exported_package",
    "frozen",
    "load_mnist_npz",
    "load_models",
    "model_path",
    "parse_run_arguments",
    "parse_settings",
    "run_in_tree",
    "synthetic_rows",
    "synthetic_workload",
    "train_models",
    "trained",
    "verifier_features",
    "write_run_result",
]

ROOT = Path(__file__).resolve().parent.parent
#: Where every benchmark writes its JSON (and bench_inversion.py its cached models).
OUT = ROOT / "benchmarks" / "_out"
#: The held-out protocol's fits and cached models (bench_inversion_protocol.py).
PROTOCOL_OUT = OUT / "protocol"
#: Full MNIST (60,000 training and 10,000 test digits) in the shared data folder.
MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"


# --- MNIST and the models trained on it ---------------------------------------------------------


def load_mnist_npz(path: str | Path = MNIST) -> dict[str, Tensor]:
    """Full MNIST from an npz of ``x_train``, ``y_train``, ``x_test``, ``y_test``: images
    ``(N, 1, 28, 28)`` in [0, 1], labels int64."""
    data = np.load(path)
    return {
        "x_train": torch.from_numpy(data["x_train"]).float().div(255).unsqueeze(1),
        "y_train": torch.from_numpy(data["y_train"]).long(),
        "x_test": torch.from_numpy(data["x_test"]).float().div(255).unsqueeze(1),
        "y_test": torch.from_numpy(data["y_test"]).long(),
    }


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` command-line items as constructor settings: each value read as a Python
    literal (``0.1``, ``True``, ``(2, 3)``), else kept as the string (``resize``)."""
    settings: dict[str, Any] = {}
    for item in items:
        name, value = item.split("=", 1)
        try:
            settings[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            settings[name] = value
    return settings


def frozen(model: nn.Module) -> nn.Module:
    """``model`` itself, in eval mode and without gradients for its parameters."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def _lenet5(batch_norm: bool = False) -> nn.Module:
    from captum_netinv.examples.models import LeNet5

    return LeNet5(batch_norm=batch_norm)


def _benchmark_mlp() -> nn.Module:
    """The package's MLP, bench_inversion.py's verifier (not the protocol's VerifierMLP)."""
    from captum_netinv.examples.models import MLP

    return MLP()


def _seeded_training(
    build: Callable[[], nn.Module], data: dict[str, Tensor], epochs: int, seed: int
) -> nn.Module:
    """A model of ``build`` initialised under ``seed`` and trained on the training split."""
    from captum_netinv.examples.models import train_classifier

    torch.manual_seed(seed)
    return train_classifier(build(), data["x_train"], data["y_train"], epochs=epochs, seed=seed)


def train_models(data: dict[str, Tensor]) -> dict[str, Any]:
    """bench_inversion.py's inverted LeNet-5 and independent MLP verifier, trained on the
    training split and cached in ``OUT/inv_models.pt``; their test accuracies."""
    from captum_netinv.examples.models import accuracy

    started = time.perf_counter()
    lenet = _seeded_training(_lenet5, data, epochs=3, seed=0)
    lenet_time = time.perf_counter() - started
    mlp = _seeded_training(_benchmark_mlp, data, epochs=5, seed=1)
    torch.save({"lenet": lenet.state_dict(), "mlp": mlp.state_dict()}, OUT / "inv_models.pt")
    return {
        "lenet_test_accuracy": accuracy(lenet, data["x_test"], data["y_test"]),
        "mlp_test_accuracy": accuracy(mlp, data["x_test"], data["y_test"]),
        "lenet_train_seconds": lenet_time,
    }


def load_models() -> tuple[nn.Module, nn.Module]:
    """The frozen LeNet-5 and MLP verifier that :func:`train_models` cached."""
    state = torch.load(OUT / "inv_models.pt", weights_only=True)
    lenet, mlp = _lenet5(), _benchmark_mlp()
    lenet.load_state_dict(state["lenet"])
    mlp.load_state_dict(state["mlp"])
    return frozen(lenet), frozen(mlp)


def verifier_features(mlp: nn.Module, images: Tensor) -> Tensor:
    """The MLP verifier's last hidden layer (input of its last Linear)."""
    with torch.no_grad():
        return mlp.layers[:-1](images)


# --- the held-out protocol's targets and verifier families ---------------------------------------


class VerifierMLP(nn.Module):
    """784-512-256-10 with ReLU (``in_features``-512-256-``num_classes`` for other data)."""

    def __init__(self, in_features: int = 784, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU()
        )
        self.head = nn.Linear(256, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _conv_bn(in_channels: int, out_channels: int, stride: int = 1) -> list[nn.Module]:
    """A 3x3 convolution without bias (padding 1) and its BatchNorm."""
    convolution = nn.Conv2d(in_channels, out_channels, 3, padding=1, stride=stride, bias=False)
    return [convolution, nn.BatchNorm2d(out_channels)]


class _Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(channels, channels), nn.ReLU(), *_conv_bn(channels, channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.body(x))


class ResCNN(nn.Module):
    """A small residual CNN with BatchNorm: stem 32, two blocks at 28 and 14 pixels, 64 at 7
    (at 32 pixels: 32, 16 and 8), global average pooling."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            *_conv_bn(in_channels, 32),
            nn.ReLU(),
            _Block(32),
            nn.MaxPool2d(2),
        ]  # 28 pixels
        layers += [_Block(32), *_conv_bn(32, 64, stride=2), nn.ReLU()]  # 14, then down to 7
        layers += [_Block(64), nn.AdaptiveAvgPool2d(1), nn.Flatten()]  # 7 pixels
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class WideCNN(nn.Module):
    """A wide plain CNN without BatchNorm: 5x5 convs of 64 and 128 channels, 256 hidden."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, side: int = 28) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for channels_in, channels_out in ((in_channels, 64), (64, 128)):
            convolution = nn.Conv2d(channels_in, channels_out, 5, padding=2)
            layers += [convolution, nn.ReLU(), nn.MaxPool2d(2)]
        layers += [nn.Flatten(), nn.Linear(128 * (side // 4) ** 2, 256), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(256, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


_BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "lenet5": _lenet5,
    "lenet5_bn": partial(_lenet5, batch_norm=True),
    "mlp": VerifierMLP,
    "rescnn": ResCNN,
    "widecnn": WideCNN,
}
_EPOCHS = {"lenet5": 3, "lenet5_bn": 3, "mlp": 3, "rescnn": 1, "widecnn": 1}


def model_path(name: str, seed: int) -> Path:
    """Where the protocol caches the weights of model ``name`` trained with ``seed``."""
    return PROTOCOL_OUT / f"model_{name}_seed{seed}.pt"


def trained(name: str, seed: int, data: dict[str, Tensor] | None = None) -> nn.Module:
    """The cached protocol model ``name`` of ``seed`` (``lenet5``, ``lenet5_bn``, ``mlp``,
    ``rescnn``, ``widecnn``) in eval mode, trained on ``data`` when not cached yet."""
    model = _BUILDERS[name]()
    path = model_path(name, seed)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    assert data is not None, f"{path} missing: run --part models"
    model = _seeded_training(_BUILDERS[name], data, epochs=_EPOCHS[name], seed=seed)
    torch.save(model.state_dict(), path)
    return model.eval()


# --- synthetic INVERT workloads -----------------------------------------------------------------

#: Range of the concepts' frequencies, drawn uniformly.
_LOWEST_FREQUENCY, _HIGHEST_FREQUENCY = 0.02, 0.4
#: Concepts that drive a unit, on average.
_CONCEPTS_PER_UNIT = 4.0
#: Standard deviation of the Gaussian noise added to every activation.
_NOISE = 0.7
#: Rows of one block of :func:`synthetic_rows`, made from the block's own seed.
_BLOCK = 2048


def _concept_frequencies(concepts: int, rng: torch.Generator) -> Tensor:
    return torch.empty(concepts).uniform_(_LOWEST_FREQUENCY, _HIGHEST_FREQUENCY, generator=rng)


def _concept_weights(concepts: int, neurons: int, rng: torch.Generator) -> Tensor:
    """Random weights of the concepts on the units, each weight kept with chance 4 / concepts."""
    gaussian = torch.randn(concepts, neurons, generator=rng)
    kept = torch.rand(concepts, neurons, generator=rng) < _CONCEPTS_PER_UNIT / concepts
    return gaussian * kept


def _activations(labels: Tensor, weights: Tensor, rng: torch.Generator) -> Tensor:
    """ReLU units driven by the labels' concepts plus noise, rounded so that ties occur."""
    noise = _NOISE * torch.randn(len(labels), weights.shape[1], generator=rng)
    return torch.relu(labels.float() @ weights + noise).round(decimals=3)


def synthetic_workload(
    samples: int, concepts: int, neurons: int, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Multi-label concepts of varied frequency and ReLU activations driven by random formulas."""
    rng = torch.Generator().manual_seed(seed)
    frequency = _concept_frequencies(concepts, rng)
    labels = torch.rand(samples, concepts, generator=rng) < frequency
    weights = _concept_weights(concepts, neurons, rng)
    return _activations(labels, weights, rng), labels


def synthetic_rows(
    rows: slice, concepts: int, neurons: int, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Rows ``rows`` of the synthetic workload made block by block from the blocks' seeds, so
    that each rank of a distributed run makes only its own rows."""
    rng = torch.Generator().manual_seed(seed)
    frequency = _concept_frequencies(concepts, rng)
    weights = _concept_weights(concepts, neurons, rng)
    values, labels = [], []
    for block in range(rows.start // _BLOCK, -(-rows.stop // _BLOCK)):
        block_rng = torch.Generator().manual_seed(seed + 1 + block)
        block_labels = torch.rand(_BLOCK, concepts, generator=block_rng) < frequency
        block_values = _activations(block_labels, weights, block_rng)
        keep = slice(max(rows.start - block * _BLOCK, 0), rows.stop - block * _BLOCK)
        values.append(block_values[keep])
        labels.append(block_labels[keep])
    return torch.cat(values), torch.cat(labels)


# --- the scale runs of gpu.sh (bench_invert_scale.py, bench_inversion_speed.py) -----------------


def parse_run_arguments(
    parser: argparse.ArgumentParser, small: dict[str, Any], argv: list[str] | None = None
) -> argparse.Namespace:
    """``parser``'s arguments with ``--threads``, ``--small`` (the sizes ``small`` instead of
    the given ones) and ``--out`` added last."""
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--small", action="store_true", help=f"smoke-test sizes {small}")
    parser.add_argument("--out", default=None, help="JSON file (default: benchmarks/_out/...)")
    arguments = parser.parse_args(argv)
    if arguments.small:
        for key, value in small.items():
            setattr(arguments, key, value)
    return arguments


def available_device(name: str) -> torch.device:
    """The device ``name``; exits when it is CUDA and torch sees no CUDA device."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no CUDA device")
    return device


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name (from /proc/cpuinfo where there is one)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_run_result(result: dict[str, Any], arguments: argparse.Namespace, stem: str) -> None:
    """``result`` as JSON in ``--out``, else in ``OUT/<stem>_<device type>[_small].json``."""
    device_type = torch.device(arguments.device).type
    small = "_small" if arguments.small else ""
    out = Path(arguments.out) if arguments.out else OUT / f"{stem}_{device_type}{small}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


def synchronize(device: torch.device) -> None:
    """Waits for the device's queued work (CUDA), so that a wall clock read after it is true."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- an earlier commit's package, side by side with this tree's ---------------------------------


@contextmanager
def exported_package(commit: str) -> Iterator[Path]:
    r"""A temporary folder with ``commit``'s ``captum_netinv`` (``git archive``), removed after."""
    with tempfile.TemporaryDirectory() as folder:
        archive = subprocess.run(
            ["git", "archive", commit, "captum_netinv"], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
        yield Path(folder)


def run_in_tree(tree: Path, code: str, arguments: list[str], threads: int) -> dict[str, Any]:
    r"""
    Runs ``code`` in a fresh process that imports ``captum_netinv`` from ``tree`` with
    ``threads`` OpenMP/MKL threads, and returns the JSON of its last output line, which must
    hold the imported package's path under ``"package"``.
    """
    threads_text = str(threads)
    env = dict(
        os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=threads_text, MKL_NUM_THREADS=threads_text
    )
    # run from the tree's folder: the current folder comes first on the import path
    done = subprocess.run(
        [sys.executable, "-c", code, *arguments],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not figures["package"].startswith(str(tree)):
        raise RuntimeError(f"imported {figures['package']}, not the package of {tree}")
    return figures
