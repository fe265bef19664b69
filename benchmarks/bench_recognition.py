"""Benchmark of InverseRecognition's vectorized beam search.

Case 0 (``--official``) times our search and our reference-compatible mode on the workload the
OFFICIAL INVERT code was run on (``tests/data/invert_reference``, a copy of
``../shared/reference/invert_synth``), next to the official code's recorded time there. Case 1
times ours against our own per-candidate re-implementation of the search (a mask and one
``sklearn.metrics.roc_auc_score`` call per candidate formula, identical masks merged as ours does:
not the official code); case 2 times ours alone on a wide layer with its peak memory (in a fresh
subprocess).

    PYTHONPATH=. python benchmarks/bench_recognition.py --official --threads 1 --repeats 7
    PYTHONPATH=. python benchmarks/bench_recognition.py --repeats 5 --large-repeats 3
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import synthetic_workload
from sklearn.metrics import roc_auc_score

from captum_netinv.recognition import explain_activations


def baseline_search(
    values: np.ndarray,
    labels: np.ndarray,
    formula_length: int,
    beam_size: int,
    max_fraction: float,
) -> float:
    """Per-candidate beam search for one neuron: a mask and a roc_auc_score call per formula.

    Same search as ours (literals, AND / OR extension of every beam formula, best admissible of
    old beam + candidates, identical masks merged); returns the best AUC.
    """
    samples, concepts = labels.shape
    literals = [labels[:, c] for c in range(concepts)] + [~labels[:, c] for c in range(concepts)]

    def score(mask: np.ndarray) -> float | None:
        support = mask.mean()
        if not 0 < support < 1 or support > max_fraction:
            return None
        return float(roc_auc_score(mask, values))

    def best(candidates: list[tuple[int, np.ndarray]]) -> list[tuple[float, int, np.ndarray]]:
        seen: set[bytes] = set()
        scored = []
        for length, mask in candidates:
            key = mask.tobytes()
            if key in seen:
                continue
            seen.add(key)
            auc = score(mask)
            if auc is not None:
                scored.append((auc, length, mask))
        scored.sort(key=lambda entry: (-entry[0], entry[1]))
        return scored[:beam_size]

    beam = best([(1, mask) for mask in literals])
    for _ in range(2, formula_length + 1):
        candidates = [(length, mask) for _, length, mask in beam]
        for _, length, mask in beam:
            for literal in literals:
                candidates.append((length + 1, mask & literal))
                candidates.append((length + 1, mask | literal))
        beam = best(candidates)
    return beam[0][0]


def case_small(args: argparse.Namespace) -> dict[str, float]:
    activations, labels = synthetic_workload(10_000, 50, 16)
    settings = {"formula_length": 3, "beam_size": 3, "max_fraction": 0.5}
    ours_times = []
    # one untimed warm-up run: the first call pays for torch's lazy initialisation
    explain_activations(activations, labels, device=args.device, **settings)
    for _ in range(args.repeats):
        start = time.perf_counter()
        found = explain_activations(activations, labels, device=args.device, **settings)
        ours_times.append(time.perf_counter() - start)
    ours = statistics.median(ours_times) / activations.shape[1]
    values, masks = activations.numpy().astype(np.float64), labels.numpy()
    baseline_times, agree = [], True
    for neuron in range(args.baseline_neurons):
        start = time.perf_counter()
        best_auc = baseline_search(values[:, neuron], masks, **settings)
        baseline_times.append(time.perf_counter() - start)
        agree &= abs(best_auc - found[neuron].auc) < 1e-9
    baseline = statistics.median(baseline_times)
    return {
        "ours_ms": 1e3 * ours,
        "baseline_ms": 1e3 * baseline,
        "ratio": baseline / ours,
        "agree": float(agree),
    }


def case_official(args: argparse.Namespace) -> None:
    """Ours and our reference mode on the official code's workload, per neuron (median)."""
    folder = Path(__file__).resolve().parents[1] / "tests" / "data" / "invert_reference"
    recorded = json.loads((folder / "ref_outputs.json").read_text())
    with np.load(folder / "data.npz") as data:
        activations, labels = torch.as_tensor(data["activations"]), data["labels"]
        names = [str(name) for name in data["concept_names"]]
    params = recorded["params"]
    settings = {
        "formula_length": params["L"],
        "beam_size": params["B"],
        "min_fraction": params["min_fraction"],
        "max_fraction": params["max_fraction"],
    }
    official = recorded["timing"]["mean_s_per_neuron"]
    print("| search | s/neuron (median of runs) | runs | vs the official code's 3.29 s/neuron |")
    print("|---|---|---|---|")
    for label, reference in (("ours (default)", False), ("ours, reference_compatible=True", True)):
        run = dict(concept_names=names, reference_compatible=reference, **settings)
        explain_activations(activations, labels, **run)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            explain_activations(activations, labels, **run)
            times.append((time.perf_counter() - start) / activations.shape[1])
        median = statistics.median(times)
        shown = ", ".join(f"{value:.4f}" for value in times)
        print(f"| {label} | {median:.4f} | {shown} | {official / median:.0f}x faster |")
    print(
        f"| official lapalap/invert v1.1 (recorded, {recorded['env']['torch_threads']} thread) "
        f"| {official:.2f} | mean of 16 neurons | 1x |"
    )


def case_large_once(device: str) -> dict[str, float]:
    activations, labels = synthetic_workload(50_000, 1_000, 512)
    start = time.perf_counter()
    explain_activations(
        activations, labels, formula_length=3, beam_size=3, device=device, progress=False
    )
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GiB
    return {"wall_s": wall, "peak_gib": peak}


def case_large(args: argparse.Namespace) -> dict[str, float]:
    runs = []
    for _ in range(args.large_repeats):
        output = subprocess.run(
            [
                sys.executable,
                __file__,
                "--large-child",
                "--device",
                args.device,
                "--threads",
                str(args.threads),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        runs.append(json.loads(output.strip().splitlines()[-1]))
    return {
        "wall_s": statistics.median(run["wall_s"] for run in runs),
        "peak_gib": max(run["peak_gib"] for run in runs),
        "walls": [round(run["wall_s"], 1) for run in runs],  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11, help="timed runs of ours in case 1")
    parser.add_argument(
        "--baseline-neurons", type=int, default=3, help="neurons timed for the baseline"
    )
    parser.add_argument("--large-repeats", type=int, default=3, help="subprocess runs of case 2")
    parser.add_argument("--device", default="cpu", help="device of the search (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--official", action="store_true", help="only case 0 (official workload)")
    parser.add_argument("--large-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.large_child:
        print(json.dumps(case_large_once(args.device)))
        return
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.machine()}, device {args.device}"
    )
    if args.official:
        case_official(args)
        return
    small = case_small(args)
    print(
        "\n| case | ours | our re-implementation (per-candidate roc_auc_score) | ratio "
        "| same best AUC |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| N=10,000 C=50 K=16 L=3 B=3 | {small['ours_ms']:.2f} ms/neuron (median of "
        f"{args.repeats}) | {small['baseline_ms']:.0f} ms/neuron (median of "
        f"{args.baseline_neurons} neurons) | {small['ratio']:.0f}x | "
        f"{'yes' if small['agree'] else 'NO'} |"
    )
    if not args.skip_large:
        large = case_large(args)
        print("\n| case | wall time (median) | runs | peak memory (max RSS) |")
        print("|---|---|---|---|")
        print(
            f"| N=50,000 C=1,000 K=512 L=3 B=3 | {large['wall_s']:.1f} s | {large['walls']} s | "
            f"{large['peak_gib']:.2f} GiB |"
        )


if __name__ == "__main__":
    main()
