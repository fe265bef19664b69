"""Host reads per NetworkInversion step and the step time with torch's default and fused Adam and
:class:`~captum_netinv.inversion.optimizer.HostFreeAdam`, which the fit uses on the CPU.

A LeNet-5 inversion at the default batch of 64 (the CPU-visible part of the GPU issue). For each
optimizer, side by side in one run, interleaved over ``--repeats`` rounds:

* **host reads per step** in steady state: ``aten::_local_scalar_dense`` events (every
  ``.item()`` / ``.tolist()``, in Python or inside torch's kernels) under ``torch.profiler``,
  and separately the reads that Python code makes (our code and torch's Python optimizers),
  counted by wrapping ``Tensor.item`` / ``Tensor.tolist``;
* **step time**: the median over the rounds of the mean step time of a ``--steps``-step fit.

    PYTHONPATH=. python benchmarks/bench_step_syncs.py --threads 1
    PYTHONPATH=. python benchmarks/bench_step_syncs.py --device cuda   # on a GPU machine

Prints a Markdown table; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from captum_netinv import NetworkInversion
from captum_netinv.examples.models import LeNet5
from captum_netinv.inversion.optimizer import HostFreeAdam

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


def _reads_per_step(inversion: NetworkInversion, steps: int) -> tuple[float, float]:
    """Steady-state host reads per step (all, Python-made): the difference of two fit lengths."""
    counts = []
    for length in (_WARM_STEPS, _WARM_STEPS + steps):
        python_reads = [0]
        with profile(activities=[ProfilerActivity.CPU]) as profiler, _python_reads(python_reads):
            inversion.fit(steps=length, seed=0, progress=False)
        every = sum(1 for event in profiler.events() if event.name == "aten::_local_scalar_dense")
        counts.append((every, python_reads[0]))
    return (
        (counts[1][0] - counts[0][0]) / steps,
        (counts[1][1] - counts[0][1]) / steps,
    )


def _step_seconds(inversion: NetworkInversion, steps: int) -> float:
    """Mean seconds per step of a fit, after its first steps."""
    stamps: list[float] = []

    def stamp(step: int, values: dict[str, float]) -> None:
        stamps.append(time.perf_counter())

    inversion.fit(steps=_WARM_STEPS + steps, seed=0, progress=False, callback=stamp)
    return (stamps[-1] - stamps[_WARM_STEPS - 1]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per fit")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = LeNet5().to(args.device).eval()
    inversion = NetworkInversion(model, input_shape=(1, 28, 28))
    reads = {}
    times: dict[str, list[float]] = {name: [] for name in OPTIMIZERS}
    for name in OPTIMIZERS:
        with _optimizer(name):
            reads[name] = _reads_per_step(inversion, args.steps)
    for _ in range(args.repeats):
        for name in OPTIMIZERS:
            with _optimizer(name):
                times[name].append(_step_seconds(inversion, args.steps))
    print(
        f"device {args.device}, torch threads {torch.get_num_threads()}, torch {torch.__version__}"
    )
    print("| optimizer | host reads / step (all) | from Python | step ms (median) |")
    print("|---|---|---|---|")
    for name in OPTIMIZERS:
        every, python = reads[name]
        milliseconds = 1000 * statistics.median(times[name])
        print(f"| {name} | {every:.1f} | {python:.1f} | {milliseconds:.2f} |")


if __name__ == "__main__":
    main()
