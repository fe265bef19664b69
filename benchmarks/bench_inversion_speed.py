"""Speed of a NetworkInversion fit of a ResNet-18 at 224x224: steps/s and samples/s, fp32 and bf16.

torchvision's ``resnet18(weights=None)`` (no download: speed does not depend on the weights) with
ImageNet's normalization, the default settings (BatchNorm prior over its 20 BatchNorm layers,
diversity terms at its last layer's input) and the default generator. Each precision runs one
fit of ``--warmup + --steps`` steps; a callback stamps every step (after the step's one host
synchronisation), and the rate is taken over the last ``--steps`` steps.

    PYTHONPATH=. python benchmarks/bench_inversion_speed.py --device cuda
    PYTHONPATH=. python benchmarks/bench_inversion_speed.py --device cpu --small   # a smoke run

Writes ``benchmarks/_out/inversion_speed_{device}[_small].json`` (or ``--out``) and prints
Markdown table rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torchvision.models import resnet18

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    available_device,
    device_name,
    frozen,
    parse_run_arguments,
    write_run_result,
)

from captum_netinv import NetworkInversion  # noqa: E402

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: ``--small``: the same fit on 32x32 inputs, a batch of 8, a few steps.
SMALL = {"size": 32, "batch_size": 8, "steps": 3, "warmup": 1}


def timed_fit(args: argparse.Namespace, autocast: str | None) -> dict[str, Any]:
    """One fit of the ResNet-18 inversion; its steps/s and samples/s after the warm-up."""
    device = torch.device(args.device)
    model = frozen(resnet18(weights=None).to(device))
    inversion = NetworkInversion(
        model, input_shape=(3, args.size, args.size), input_normalization=IMAGENET
    )
    stamps: list[float] = []

    def stamp() -> None:
        stamps.append(time.perf_counter())

    total = args.warmup + args.steps
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    history = inversion.fit(
        steps=total,
        batch_size=args.batch_size,
        seed=0,
        progress=False,
        autocast=autocast,
        callback=lambda step, values: stamp(),
    )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = stamps[-1] - stamps[args.warmup - 1]
    result = {
        "precision": autocast or "float32",
        "steps_per_second": args.steps / seconds,
        "samples_per_second": args.steps * args.batch_size / seconds,
        "fit_seconds": time.perf_counter() - started,
        "final_loss": history["loss"][-1],
        "finite": all(value == value for value in history["loss"]),
    }
    if device.type == "cuda":
        result["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def markdown_rows(result: dict[str, Any]) -> list[str]:
    """One row per precision."""
    rows = []
    for run in result["runs"]:
        memory = run.get("peak_gpu_memory_gib")
        rows.append(
            f"| NetworkInversion fit ResNet-18 {result['size']}x{result['size']}, batch "
            f"{result['batch_size']}, {run['precision']} | {result['device_name']} "
            f"({result['device']}) | **{run['steps_per_second']:.2f} steps/s, "
            f"{run['samples_per_second']:.0f} samples/s** | {result['steps']} timed steps after "
            f"{result['warmup']}" + (f", peak {memory:.1f} GiB |" if memory is not None else " |")
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps (>= 1)")
    parser.add_argument(
        "--precisions", default="float32,bfloat16", help="comma list of float32, bfloat16, float16"
    )
    args = parse_run_arguments(parser, small=SMALL, argv=argv)
    if args.warmup < 1:
        parser.error("--warmup must be >= 1 (the rate is timed from the end of a step)")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = available_device(args.device)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    runs = [timed_fit(args, None if p == "float32" else p) for p in precisions]
    result = {
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "size": args.size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "runs": runs,
        "torch": torch.__version__,
    }
    write_run_result(result, args, stem="inversion_speed")
    print("\n".join(markdown_rows(result)))


if __name__ == "__main__":
    main()
