"""Host reads per NetworkInversion step and the step time with torch's default and fused Adam and
:class:`~captum_netinv.inversion.optimizer.HostFreeAdam`, which the fit uses on the CPU.

A LeNet-5 inversion at the default batch of 64 (the CPU-visible part of the GPU issue). For each
optimizer, and for the fit's own optimizer with ``compile=True`` (and, on CUDA,
``compile="reduce-overhead"``: CUDA graphs), side by side in one run, interleaved over
``--repeats`` rounds:

* **host reads per step** in steady state: ``aten::_local_scalar_dense`` events (every
  ``.item()`` / ``.tolist()``, in Python or inside torch's kernels) under ``torch.profiler``,
  and separately the reads that Python code makes (our code and torch's Python optimizers),
  counted by wrapping ``Tensor.item`` / ``Tensor.tolist``;
* **step time**: the median over the rounds of the mean step time of a ``--steps``-step fit.

    PYTHONPATH=. python benchmarks/bench_step_syncs.py --threads 1
    PYTHONPATH=. python benchmarks/bench_step_syncs.py --device cuda   # on a GPU machine

Prints a Markdown table, with the default fit's projected time (``DEFAULT_STEPS`` = 2,700 steps
times the step time), and with ``--out`` writes it as JSON (gpu.sh's table reads it with
:func:`markdown_rows`); run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import available_device, device_name  # noqa: E402

from captum_netinv import NetworkInversion  # noqa: E402
from captum_netinv.examples.models import LeNet5  # noqa: E402
from captum_netinv.inversion.optimizer import HostFreeAdam  # noqa: E402
from captum_netinv.inversion.settings import DEFAULT_BATCH_SIZE, DEFAULT_STEPS  # noqa: E402

#: The optimizers compared: torch's default and fused Adam, and ours, which the fit uses on CPUs.
OPTIMIZERS: dict[str, Callable[[torch.nn.Module, float], torch.optim.Optimizer]] = {
    "default Adam": lambda generator, lr: torch.optim.Adam(generator.parameters(), lr=lr),
    "fused Adam": lambda generator, lr: torch.optim.Adam(generator.parameters(), lr=lr, fused=True),
    "host-free Adam (ours, the fit's CPU default)": lambda generator, lr: HostFreeAdam(
        generator.parameters(), lr=lr
    ),
}
_WARM_STEPS = 5


@contextmanager
def _optimizer(name: str) -> Iterator[None]:
    """Fits inside use the optimizer ``name`` (the package looks it up at fit time)."""
    from captum_netinv.inversion import base

    chosen = OPTIMIZERS[name]
    original = base.generator_optimizer
    base.generator_optimizer = lambda generator, *, lr: chosen(generator, lr)  # type: ignore[assignment]
    try:
        yield
    finally:
        base.generator_optimizer = original


@contextmanager
def _python_reads(counter: list[int]) -> Iterator[None]:
    """Counts ``Tensor.item`` and ``Tensor.tolist`` calls made from Python into ``counter``."""
    item, tolist = torch.Tensor.item, torch.Tensor.tolist

    def counted_item(tensor: torch.Tensor) -> Any:
        counter[0] += 1
        return item(tensor)

    def counted_tolist(tensor: torch.Tensor) -> Any:
        counter[0] += 1
        return tolist(tensor)

    torch.Tensor.item, torch.Tensor.tolist = counted_item, counted_tolist  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.item, torch.Tensor.tolist = item, tolist  # type: ignore[method-assign]


def _variants(device: torch.device) -> list[tuple[str, str, bool | str]]:
    """The fits compared on ``device``: (label, optimizer, ``compile``)."""
    variants: list[tuple[str, str, bool | str]] = [(name, name, False) for name in OPTIMIZERS]
    fit_default = _fit_default(device)
    variants.append((f"{fit_default} + compile=True", fit_default, True))
    if device.type == "cuda":
        variants.append(
            (f"{fit_default} + compile='reduce-overhead'", fit_default, "reduce-overhead")
        )
    return variants


def _reads_per_step(
    inversion: NetworkInversion, steps: int, compile: bool | str
) -> tuple[float, float]:
    """Steady-state host reads per step (all, Python-made): the difference of two fit lengths,
    after a first fit (which compiles, where ``compile`` asks for it)."""
    inversion.fit(steps=_WARM_STEPS, seed=0, progress=False, compile=compile)
    counts = []
    for length in (_WARM_STEPS, _WARM_STEPS + steps):
        python_reads = [0]
        with profile(activities=[ProfilerActivity.CPU]) as profiler, _python_reads(python_reads):
            inversion.fit(steps=length, seed=0, progress=False, compile=compile)
        every = sum(1 for event in profiler.events() if event.name == "aten::_local_scalar_dense")
        counts.append((every, python_reads[0]))
    return (
        (counts[1][0] - counts[0][0]) / steps,
        (counts[1][1] - counts[0][1]) / steps,
    )


def _step_seconds(inversion: NetworkInversion, steps: int, compile: bool | str) -> float:
    """Mean seconds per step of a fit, after its first steps (and its compilation)."""
    stamps: list[float] = []

    def stamp(step: int, values: dict[str, float]) -> None:
        stamps.append(time.perf_counter())

    inversion.fit(
        steps=_WARM_STEPS + steps, seed=0, progress=False, callback=stamp, compile=compile
    )
    return (stamps[-1] - stamps[_WARM_STEPS - 1]) / steps


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Reads per step and median step time of every variant, as a JSON-ready result."""
    device = available_device(args.device)
    torch.manual_seed(0)
    model = LeNet5().to(device).eval()
    inversion = NetworkInversion(model, input_shape=(1, 28, 28))
    variants = _variants(device)
    reads = {}
    times: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    for label, optimizer, compile in variants:
        with _optimizer(optimizer):
            reads[label] = _reads_per_step(inversion, args.steps, compile)
    for _ in range(args.repeats):
        for label, optimizer, compile in variants:
            with _optimizer(optimizer):
                times[label].append(_step_seconds(inversion, args.steps, compile))
    rows = []
    for label, _, _ in variants:
        name = label
        milliseconds = 1000 * statistics.median(times[name])
        rows.append(
            {
                "optimizer": name,
                "fit_default": name == _fit_default(device),
                "reads_per_step": reads[name][0],
                "python_reads_per_step": reads[name][1],
                "step_ms_median": milliseconds,
                "step_ms_runs": [1000 * value for value in times[name]],
                "default_fit_seconds": DEFAULT_STEPS * milliseconds / 1000,
            }
        )
    return {
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "batch_size": DEFAULT_BATCH_SIZE,
        "steps": args.steps,
        "repeats": args.repeats,
        "default_steps": DEFAULT_STEPS,
        "rows": rows,
        "torch": torch.__version__,
    }


def _fit_default(device: torch.device) -> str:
    """The row of the optimizer that the fit itself picks on ``device``."""
    if device.type == "cpu":
        return "host-free Adam (ours, the fit's CPU default)"
    return "fused Adam"


def markdown_rows(result: dict[str, Any]) -> list[str]:
    """One row per optimizer: step ms, host reads per step, the default fit's projected time."""
    lines = []
    for row in result["rows"]:
        default = ", **the fit's default here**" if row["fit_default"] else ""
        lines.append(
            f"| NetworkInversion step LeNet-5 28x28, batch {result['batch_size']}, "
            f"{row['optimizer']} | {result['device_name']} ({result['device']}) | "
            f"**{row['step_ms_median']:.2f} ms/step**, {row['reads_per_step']:.1f} host reads/step"
            f" ({row['python_reads_per_step']:.1f} from Python); default fit "
            f"{result['default_steps']:,} steps ~ {row['default_fit_seconds']:.1f} s | median "
            f"of {result['repeats']} x {result['steps']} steps; target <= 2 ms on the GPU"
            f"{default} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per fit")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--out", default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = measure(args)
    print(
        f"device {args.device}, torch threads {torch.get_num_threads()}, torch {torch.__version__}"
    )
    print(
        "| optimizer | host reads / step (all) | from Python | step ms (median) | "
        f"default fit ({DEFAULT_STEPS:,} steps) s |"
    )
    print("|---|---|---|---|---|")
    for row in result["rows"]:
        print(
            f"| {row['optimizer']} | {row['reads_per_step']:.1f} | "
            f"{row['python_reads_per_step']:.1f} | {row['step_ms_median']:.2f} | "
            f"{row['default_fit_seconds']:.1f} |"
        )
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
