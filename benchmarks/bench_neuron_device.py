"""Seconds of a NeuronInversion fit on a device, with the reference inputs on that device.

A LeNet-5 (``captum_netinv.examples.models``) trained for ``--epochs`` on the 5,000 MNIST digits of
``captum_netinv.examples.data.load_mnist()`` (no download), all moved to ``--device``; then one
NeuronInversion of every unit of ``--layer`` (default ``fc2``, 84 units) fitted with those digits
as reference for ``--steps`` steps (default: the fit's own default, 600) at the default batch.
Records the whole fit's seconds (reference statistics included) and the steps/s after the first
``--warmup`` steps (a callback stamps each step, after the step's one host synchronisation).

    PYTHONPATH=. python benchmarks/bench_neuron_device.py --device cuda
    PYTHONPATH=. python benchmarks/bench_neuron_device.py --device cpu --small   # a smoke run

Writes ``benchmarks/_out/neuron_device_{device}[_small].json`` (or ``--out``) and prints one
Markdown table row.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    available_device,
    device_name,
    frozen,
    parse_run_arguments,
    synchronize,
    write_run_result,
)

from captum_netinv import NeuronInversion  # noqa: E402
from captum_netinv.examples.data import load_mnist  # noqa: E402
from captum_netinv.examples.models import LeNet5, accuracy, train_classifier  # noqa: E402
from captum_netinv.inversion.neuron.neuron_inversion import NEURON_STEPS  # noqa: E402

#: ``--small``: a short fit after a short training, on fewer digits.
SMALL = {"steps": 6, "warmup": 2, "digits": 1000}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Trains the LeNet-5 on the device, then times the NeuronInversion fit there."""
    device = available_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    images, labels = load_mnist()
    images, labels = images[: args.digits].to(device), labels[: args.digits].to(device)
    torch.manual_seed(0)
    started = time.perf_counter()
    model = train_classifier(LeNet5().to(device), images, labels, epochs=args.epochs, seed=0)
    synchronize(device)
    train_seconds = time.perf_counter() - started
    model = frozen(model)
    inversion = NeuronInversion(model, getattr(model, args.layer), input_shape=(1, 28, 28))
    stamps: list[float] = []
    started = time.perf_counter()
    history = inversion.fit(
        images,
        steps=args.steps,
        seed=0,
        progress=False,
        callback=lambda step, values: stamps.append(time.perf_counter()),
    )
    synchronize(device)
    fit_seconds = time.perf_counter() - started
    timed = len(stamps) - args.warmup
    return {
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "layer": args.layer,
        "units": len(inversion.neurons),
        "batch_size": inversion.default_batch_size(),
        "digits": len(images),
        "inputs_device": str(images.device),
        "epochs": args.epochs,
        "train_seconds": train_seconds,
        "train_accuracy": accuracy(model, images, labels),
        "steps": args.steps,
        "warmup": args.warmup,
        "fit_seconds": fit_seconds,
        "steps_per_second": timed / (stamps[-1] - stamps[args.warmup - 1]),
        "final_loss": history["loss"][-1],
        "finite": all(value == value for value in history["loss"]),
        "torch": torch.__version__,
    }


def markdown_row(result: dict[str, Any]) -> str:
    """One row: the fit's seconds and its steps/s."""
    return (
        f"| NeuronInversion fit LeNet-5 {result['layer']} ({result['units']} units), batch "
        f"{result['batch_size']}, {result['steps']} steps, {result['digits']:,} reference digits "
        f"on {result['inputs_device']} | {result['device_name']} ({result['device']}) | "
        f"**{result['fit_seconds']:.1f} s** ({result['steps_per_second']:.1f} steps/s) | "
        f"LeNet-5 trained {result['epochs']} epoch(s) there in {result['train_seconds']:.1f} s; "
        f"final loss {result['final_loss']:.3g}{'' if result['finite'] else ' (NOT finite)'} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--layer", default="fc2", choices=("conv1", "conv2", "fc1", "fc2"))
    parser.add_argument("--steps", type=int, default=NEURON_STEPS, help="fit steps")
    parser.add_argument("--warmup", type=int, default=5, help="steps before the timed rate (>= 1)")
    parser.add_argument("--epochs", type=int, default=1, help="LeNet-5 training epochs")
    parser.add_argument("--digits", type=int, default=5000, help="MNIST digits used (<= 5,000)")
    args = parse_run_arguments(parser, small=SMALL, argv=argv)
    if not 1 <= args.warmup < args.steps:
        parser.error("--warmup must be >= 1 and below --steps")
    result = run(args)
    write_run_result(result, args, stem="neuron_device")
    print(markdown_row(result))


if __name__ == "__main__":
    main()
