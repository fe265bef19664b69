"""Benchmark of distributed INVERT: 2 processes x 1 thread against 1 process x 1 thread.

Synthetic activations and labels built like ``bench_recognition.py``'s (concepts of varied
frequency, ReLU units driven by a few concepts plus noise, rounded so that ties occur), made in
blocks of rows from their own seeds so that each rank makes only its own rows, as if it read its
shard of a data set. Each run is a fresh process (or two, on a gloo group over a FileStore) with
one thread; it reports the wall time of ``explain_activations`` (ranks: the slowest rank; the
label gathering and the column exchange included), its CPU time (which a loaded machine does not
inflate; gloo waits by blocking, not by spinning) and its peak resident memory (``ru_maxrss``),
also above the memory after the imports (data, exchange and search, without torch itself). The
distributed result is checked to equal the single-process one.

    PYTHONPATH=. python benchmarks/bench_distributed_recognition.py --repeats 3
    PYTHONPATH=. python benchmarks/bench_distributed_recognition.py \\
        --samples 5000 --concepts 100 --neurons 32 --repeats 1   # quick check

``torchrun --nproc_per_node 2 benchmarks/bench_distributed_recognition.py --role rank`` runs
one distributed labeling under torchrun instead (it prints each rank's figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from common import OUT, synthetic_rows

from captum_netinv.recognition import explain_activations
from captum_netinv.recognition.distributed import rank_slice


def _peak_bytes() -> int:
    return 1024 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def run_labeling(args: argparse.Namespace, distributed: bool) -> dict[str, Any]:
    """Makes this process's rows, labels them and measures the labeling."""
    torch.set_num_threads(1)
    after_imports = _peak_bytes()
    rows = rank_slice(args.samples) if distributed else slice(0, args.samples)
    activations, labels = synthetic_rows(rows, args.concepts, args.neurons)
    settings = {"formula_length": args.formula_length, "beam_size": args.beam_size}
    # untimed warm-up on a few rows: torch's lazy initialisation, the group's connections
    explain_activations(activations[:256], labels[:256], neurons=[0, 1], **settings)
    if distributed:
        dist.barrier()
    start, cpu_start = time.perf_counter(), time.process_time()
    found = explain_activations(activations, labels, **settings)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_bytes": _peak_bytes(),
        "peak_over_imports_bytes": _peak_bytes() - after_imports,
        "rows": rows.stop - rows.start,
        "result": found.to_json(),
    }


def _child(args: argparse.Namespace) -> None:
    """One run: a single process, or one rank (FileStore from the parent, or torchrun's env)."""
    distributed = args.role == "rank"
    if distributed:
        if "RANK" in os.environ and args.store is None:
            dist.init_process_group("gloo", timeout=timedelta(minutes=30))
        else:
            dist.init_process_group(
                "gloo",
                init_method=f"file://{args.store}",
                rank=args.rank,
                world_size=args.world,
                timeout=timedelta(minutes=30),
            )
    figures = run_labeling(args, distributed)
    if distributed:
        dist.destroy_process_group()
    if args.out:
        Path(args.out).write_text(json.dumps(figures))
    else:
        shown = {key: value for key, value in figures.items() if key != "result"}
        print(json.dumps({"rank": os.environ.get("RANK", args.rank), **shown}))


def _launch(args: argparse.Namespace, world: int, folder: Path) -> list[dict[str, Any]]:
    """Runs one labeling in ``world`` fresh processes (1: the single-process path)."""
    shape = ["--samples", str(args.samples), "--concepts", str(args.concepts)]
    shape += ["--neurons", str(args.neurons), "--formula-length", str(args.formula_length)]
    shape += ["--beam-size", str(args.beam_size)]
    store = folder / f"store{time.monotonic_ns()}"
    outputs = [folder / f"out{rank}.json" for rank in range(world)]
    processes = []
    for rank in range(world):
        command = [sys.executable, __file__, *shape, "--out", str(outputs[rank])]
        if world > 1:
            command += ["--role", "rank", "--rank", str(rank), "--world", str(world)]
            command += ["--store", str(store)]
        else:
            command += ["--role", "single"]
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        processes.append(subprocess.Popen(command, env=env))
    for process in processes:
        if process.wait() != 0:
            raise RuntimeError(f"a benchmark process failed: {process.args}")
    return [json.loads(path.read_text()) for path in outputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--concepts", type=int, default=1_000)
    parser.add_argument("--neurons", type=int, default=512)
    parser.add_argument("--formula-length", type=int, default=3)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--role", choices=["parent", "single", "rank"], default="parent")
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--store")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.role != "parent":
        _child(args)
        return
    runs: dict[str, list[dict[str, Any]]] = {"single": [], "ranks": []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):  # alternated, so that load changes hit both alike
            single = _launch(args, 1, Path(folder))[0]
            ranks = _launch(args, args.world, Path(folder))
            if any(rank["result"] != single["result"] for rank in ranks):
                raise AssertionError("the distributed result differs from the single-process one")
            runs["single"].append(single)
            runs["ranks"].append(
                {
                    "seconds": max(rank["seconds"] for rank in ranks),
                    "cpu_seconds": max(rank["cpu_seconds"] for rank in ranks),
                    "peak_bytes": max(rank["peak_bytes"] for rank in ranks),
                    "peak_over_imports_bytes": max(
                        rank["peak_over_imports_bytes"] for rank in ranks
                    ),
                }
            )
    _report(args, runs)


def _report(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]]) -> None:
    medians = {
        name: {
            key: statistics.median(run[key] for run in found)
            for key in ("seconds", "cpu_seconds", "peak_bytes", "peak_over_imports_bytes")
        }
        for name, found in runs.items()
    }
    single, ranks = medians["single"], medians["ranks"]
    summary = {
        "shape": {"N": args.samples, "C": args.concepts, "K": args.neurons},
        "settings": {"formula_length": args.formula_length, "beam_size": args.beam_size},
        "repeats": args.repeats,
        "world": args.world,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "seconds": {name: [run["seconds"] for run in found] for name, found in runs.items()},
        "medians": medians,
        "speedup": single["seconds"] / ranks["seconds"],
        "cpu_speedup": single["cpu_seconds"] / ranks["cpu_seconds"],
        "peak_ratio": ranks["peak_bytes"] / single["peak_bytes"],
        "peak_over_imports_ratio": (
            ranks["peak_over_imports_bytes"] / single["peak_over_imports_bytes"]
        ),
        "identical_results": True,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_distributed_recognition.json").write_text(json.dumps(summary, indent=2))
    mib = 2**20
    print(f"N={args.samples} C={args.concepts} K={args.neurons}, medians of {args.repeats}")
    print("| run | labeling s | CPU s (per rank) | peak RSS MiB (per rank) | above imports MiB |")
    print("|---|---|---|---|---|")
    for name, label in (("single", "1 process x 1 thread"), ("ranks", f"{args.world} x 1")):
        figures = medians[name]
        print(
            f"| {label} | {figures['seconds']:.2f} | {figures['cpu_seconds']:.2f} | "
            f"{figures['peak_bytes'] / mib:.0f} | "
            f"{figures['peak_over_imports_bytes'] / mib:.0f} |"
        )
    print(
        f"speedup {summary['speedup']:.2f}x (CPU time {summary['cpu_speedup']:.2f}x), "
        f"peak RSS ratio {summary['peak_ratio']:.2f}, "
        f"above-imports ratio {summary['peak_over_imports_ratio']:.2f}; results identical"
    )


if __name__ == "__main__":
    main()
