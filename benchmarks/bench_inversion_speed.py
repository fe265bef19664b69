"""Speed of a NetworkInversion fit of a ResNet-18 at 224x224: steps/s and samples/s, fp32 and bf16.

torchvision's ``resnet18(weights=None)`` (no download: speed does not depend on the weights) with
ImageNet's normalization, the default settings (BatchNorm prior over its 20 BatchNorm layers,
diversity terms at its last layer's input) and the default generator. Each precision runs one
fit of ``--warmup + --steps`` steps; a callback stamps every step (after the step's one host
synchronisation), and the rate is taken over the last ``--steps`` steps. Then the last
precision once more with the model ``torch.compile``d and ``fit(compile=True)`` (the fit's
generator and loss terms compiled; left out with ``--no-compile`` and with ``--small`` on the CPU).

    PYTHONPATH=. python benchmarks/bench_inversion_speed.py --device cuda
    PYTHONPATH=. python benchmarks/bench_inversion_speed.py --device cpu --small   # a smoke run

Beside it, in the same run, the **ceiling**: the frozen ResNet-18 alone, input ``requires_grad``,
forward and ``.sum().backward()`` to the input, in samples/s, in float32, bfloat16 autocast,
bfloat16 + channels_last (model and input) and bfloat16 + channels_last + ``torch.compile`` (a
compile error is recorded and the run goes on; ``--no-compile`` leaves it out, as does ``--small``
on the CPU). ``--ceiling-warmup`` untimed iterations first, then ``--ceiling-iters`` timed ones
between two device synchronisations. Each fit's samples/s over each ceiling is reported (the
issue's goal: >= 0.35 of the compiled ceiling).

Writes ``benchmarks/_out/inversion_speed_{device}[_small].json`` (or ``--out``) and prints
Markdown table rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchvision.models import resnet18

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    available_device,
    device_name,
    frozen,
    parse_run_arguments,
    synchronize,
    write_run_result,
)

from captum_netinv import NetworkInversion  # noqa: E402

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: ``--small``: the same fit on 32x32 inputs, a batch of 8, a few steps.
SMALL = {
    "size": 32,
    "batch_size": 8,
    "steps": 3,
    "warmup": 1,
    "ceiling_iters": 3,
    "ceiling_warmup": 1,
}
#: The ceilings: the frozen model's forward and backward to its input, alone.
CEILINGS = (
    "float32",
    "bfloat16",
    "bfloat16+channels_last",
    "bfloat16+channels_last+compile",
)


def _ceiling_model(device: torch.device, variant: str) -> Callable[[Tensor], Tensor]:
    """The frozen ResNet-18 of ``variant`` (channels_last, compiled)."""
    model = frozen(resnet18(weights=None).to(device))
    if "channels_last" in variant:
        model = model.to(memory_format=torch.channels_last)
    forward: Callable[[Tensor], Tensor] = model
    if variant.endswith("+compile"):
        forward = torch.compile(model)  # type: ignore[assignment]
    return forward


def ceiling(args: argparse.Namespace, *, variant: str) -> dict[str, Any]:
    """Samples/s of the frozen model's forward + ``.sum().backward()`` to its input."""
    device = torch.device(args.device)
    result: dict[str, Any] = {"variant": variant}
    if variant.endswith("+compile") and (args.no_compile or (args.small and device.type == "cpu")):
        result["skipped"] = "--no-compile" if args.no_compile else "--small on the CPU"
        return result
    forward = _ceiling_model(device, variant)
    inputs = torch.rand(args.batch_size, 3, args.size, args.size, device=device)
    if "channels_last" in variant:
        inputs = inputs.to(memory_format=torch.channels_last)
    inputs.requires_grad_(True)
    dtype = torch.bfloat16 if variant.startswith("bfloat16") else None

    def iteration() -> None:
        inputs.grad = None
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            output = forward(inputs)
        output.float().sum().backward()

    try:
        started = time.perf_counter()
        for _ in range(args.ceiling_warmup):  # the first compiles, where compiled
            iteration()
        synchronize(device)
        result["warmup_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(args.ceiling_iters):
            iteration()
        synchronize(device)
    except Exception as error:  # noqa: BLE001 - a failed compile is a result, not a crash
        result["error"] = f"{type(error).__name__}: {error}"[:500]
        return result
    seconds = time.perf_counter() - started
    result["samples_per_second"] = args.ceiling_iters * args.batch_size / seconds
    result["ms_per_iteration"] = 1000 * seconds / args.ceiling_iters
    return result


def ratios(runs: list[dict[str, Any]], ceilings: list[dict[str, Any]]) -> dict[str, dict]:
    """Per fit precision: its samples/s over each measured ceiling's."""
    return {
        run["precision"]: {
            bound["variant"]: run["samples_per_second"] / bound["samples_per_second"]
            for bound in ceilings
            if "samples_per_second" in bound
        }
        for run in runs
        if "samples_per_second" in run
    }


def timed_fit(
    args: argparse.Namespace, autocast: str | None, compiled: bool = False
) -> dict[str, Any]:
    """One fit of the ResNet-18 inversion; its steps/s and samples/s after the warm-up. With
    ``compiled`` the model is ``torch.compile``d and the fit runs with ``compile=True`` (a
    compile error is recorded as the result)."""
    device = torch.device(args.device)
    model = frozen(resnet18(weights=None).to(device))
    if compiled:
        model = torch.compile(model)  # type: ignore[assignment]
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
    precision = (autocast or "float32") + ("+compile" if compiled else "")
    try:
        history = inversion.fit(
            steps=total,
            batch_size=args.batch_size,
            seed=0,
            progress=False,
            autocast=autocast,
            callback=lambda step, values: stamp(),
            compile=compiled,
        )
    except Exception as error:  # noqa: BLE001 - a failed compile is a result, not a crash
        return {"precision": precision, "error": f"{type(error).__name__}: {error}"[:500]}
    synchronize(device)
    seconds = stamps[-1] - stamps[args.warmup - 1]
    result = {
        "precision": precision,
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
    """One row per precision, then one per ceiling (with each fit's share of it)."""
    rows = []
    where = f"{result['device_name']} ({result['device']})"
    shape = f"ResNet-18 {result['size']}x{result['size']}, batch {result['batch_size']}"
    for run in result["runs"]:
        if "samples_per_second" not in run:
            error = " ".join(run["error"].replace("|", "/").split())
            rows.append(f"| NetworkInversion fit {shape}, {run['precision']} | {where} | {error} |")
            continue
        memory = run.get("peak_gpu_memory_gib")
        rows.append(
            f"| NetworkInversion fit {shape}, {run['precision']} | {where} "
            f"| **{run['steps_per_second']:.2f} steps/s, "
            f"{run['samples_per_second']:.0f} samples/s** | {result['steps']} timed steps after "
            f"{result['warmup']}" + (f", peak {memory:.1f} GiB |" if memory is not None else " |")
        )
    shares = result.get("ratios", {})
    for bound in result.get("ceilings", []):
        name = f"| Ceiling: frozen {shape} forward+backward to input, {bound['variant']} | {where}"
        if "samples_per_second" not in bound:
            why = bound.get("error") or f"skipped ({bound.get('skipped')})"
            rows.append(f"{name} | not measured | {' '.join(why.replace('|', '/').split())} |")
            continue
        share = ", ".join(
            f"{precision} fit / ceiling **{values[bound['variant']]:.2f}**"
            for precision, values in shares.items()
        )
        rows.append(
            f"{name} | **{bound['samples_per_second']:.0f} samples/s** "
            f"({bound['ms_per_iteration']:.1f} ms/iter) | {share}; {result['ceiling_iters']} "
            f"iters after {result['ceiling_warmup']} warm-up "
            f"({bound['warmup_seconds']:.1f} s); goal: fit >= 0.35 of the compiled ceiling |"
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
    parser.add_argument("--ceiling-iters", type=int, default=20, help="timed ceiling iterations")
    parser.add_argument("--ceiling-warmup", type=int, default=5, help="untimed ones first")
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled one")
    parser.add_argument("--no-ceiling", action="store_true", help="leave out every ceiling")
    args = parse_run_arguments(parser, small=SMALL, argv=argv)
    if args.warmup < 1:
        parser.error("--warmup must be >= 1 (the rate is timed from the end of a step)")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = available_device(args.device)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    runs = [timed_fit(args, None if p == "float32" else p) for p in precisions]
    if not args.no_compile and not (args.small and device.type == "cpu"):
        last = precisions[-1]  # the fastest precision asked for, compiled: model and fit
        runs.append(timed_fit(args, None if last == "float32" else last, compiled=True))
    ceilings = [] if args.no_ceiling else [ceiling(args, variant=v) for v in CEILINGS]
    result = {
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "size": args.size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "runs": runs,
        "ceiling_iters": args.ceiling_iters,
        "ceiling_warmup": args.ceiling_warmup,
        "ceilings": ceilings,
        "ratios": ratios(runs, ceilings),
        "torch": torch.__version__,
    }
    write_run_result(result, args, stem="inversion_speed")
    print("\n".join(markdown_rows(result)))


if __name__ == "__main__":
    main()
