"""INVERT at ImageNet scale: one layer of 512 neurons labelled with 1,473 concepts on 50,000 images.

The workload of the scaling issue (N=50,000 samples, C=1,473 concepts, K=512 neurons, formulas
of length L=3, beam B=3) on synthetic activations and labels structured as in
``bench_recognition.py`` (multi-label concepts of varied frequency, ReLU activations driven by
random formulas). Target: <= 5 s on one H100; the CPU run of the same workload goes beside it.

    PYTHONPATH=. python benchmarks/bench_invert_scale.py --device cuda
    PYTHONPATH=. python benchmarks/bench_invert_scale.py --device cpu --threads 16
    PYTHONPATH=. python benchmarks/bench_invert_scale.py --device cpu --small   # a smoke run

Writes ``benchmarks/_out/invert_scale_{device}[_small].json`` (or ``--out``) and prints one
Markdown table row.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    available_device,
    device_name,
    parse_run_arguments,
    synchronize,
    synthetic_workload,
    write_run_result,
)

from captum_netinv.recognition import explain_activations  # noqa: E402

#: ``--small``: the same search on a workload that runs in seconds on a laptop CPU.
SMALL = {"n": 2_000, "concepts": 60, "neurons": 16}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Times ``explain_activations`` on the synthetic workload: a warm-up, then ``repeats``."""
    device = available_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    activations, labels = synthetic_workload(args.n, args.concepts, args.neurons, seed=args.seed)
    build_seconds = time.perf_counter() - started
    search = {"formula_length": args.length, "beam_size": args.beam, "device": device}
    # warm-up (kernels, allocator) on the first neurons, outside the timing
    explain_activations(activations, labels, neurons=list(range(min(4, args.neurons))), **search)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = []
    for _ in range(args.repeats):
        synchronize(device)
        started = time.perf_counter()
        explanations = explain_activations(activations, labels, **search)
        synchronize(device)
        seconds.append(time.perf_counter() - started)
    aucs = torch.tensor([float(explanation.auc) for explanation in explanations])
    result: dict[str, Any] = {
        "workload": {
            "n": args.n,
            "concepts": args.concepts,
            "neurons": args.neurons,
            "formula_length": args.length,
            "beam_size": args.beam,
        },
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        "median_seconds": statistics.median(seconds),
        "workload_build_seconds": build_seconds,
        "mean_best_auc": float(aucs.mean()),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        result["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def markdown_row(result: dict[str, Any]) -> str:
    """One row: workload, device, median seconds (all runs), mean best AUC."""
    work = result["workload"]
    runs = ", ".join(f"{value:.2f}" for value in result["seconds"])
    memory = result.get("peak_gpu_memory_gib")
    return (
        f"| INVERT N={work['n']:,} C={work['concepts']:,} K={work['neurons']} "
        f"L={work['formula_length']} B={work['beam_size']} | {result['device_name']} "
        f"({result['device']}, {result['threads']} threads) | **{result['median_seconds']:.2f} s**"
        f" ({runs}) | mean AUC {result['mean_best_auc']:.3f}"
        + (f", peak {memory:.1f} GiB |" if memory is not None else " |")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--concepts", type=int, default=1_473)
    parser.add_argument("--neurons", type=int, default=512)
    parser.add_argument("--length", type=int, default=3)
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parse_run_arguments(parser, small=SMALL, argv=argv)
    result = run(args)
    write_run_result(result, args, stem="invert_scale")
    print(markdown_row(result))


if __name__ == "__main__":
    main()
