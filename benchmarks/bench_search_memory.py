"""The INVERT search of this tree against the one of an earlier commit, side by side.

Each run is a fresh one-thread process that makes the synthetic workload of
``bench_distributed_recognition.py`` (``common.synthetic_rows``, all rows), then times
``explain_activations`` and reads its peak resident memory above the memory after the data were
made (``ru_maxrss``): the search's own memory, without torch and the input data. The commit's
package is exported with ``git archive`` into a temporary folder and imported from there; runs
alternate between the two trees, and their results (the explanations' JSON) must be identical.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_search_memory.py --baseline e988b63 \\
        --shape 50000,1000,512 --shape 10000,50,16 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

from common import ROOT, exported_package, run_in_tree

_CHILD = r"""
import hashlib, json, resource, sys, time
import torch
sys.path.insert(0, sys.argv[5])
from common import synthetic_rows
import captum_netinv
from captum_netinv.recognition import explain_activations
torch.set_num_threads(1)
samples, concepts, neurons = map(int, sys.argv[1:4])
activations, labels = synthetic_rows(slice(0, samples), concepts, neurons)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
found = explain_activations(activations, labels, beam_size=int(sys.argv[4]))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({
    "package": captum_netinv.__file__,
    "seconds": seconds,
    "search_peak_mib": (peak - before) / 1024,
    "process_peak_mib": peak / 1024,
    "result": hashlib.sha256(found.to_json().encode()).hexdigest(),
}))
"""


def _run(tree: Path, shape: list[int], beam_size: int) -> dict[str, Any]:
    """One labeling in a fresh one-thread process importing ``captum_netinv`` from ``tree``."""
    arguments = [*map(str, shape), str(beam_size), str(ROOT / "benchmarks")]
    return run_in_tree(tree, _CHILD, arguments, threads=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="the earlier commit")
    parser.add_argument("--shape", action="append", required=True, help="N,C,K")
    parser.add_argument("--beam-size", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "baseline": args.baseline,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, 1 thread a process",
        "shapes": {},
    }
    with exported_package(args.baseline) as old:
        for text in args.shape:
            shape = [int(value) for value in text.split(",")]
            runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "this tree": []}
            for _ in range(args.repeats):
                runs["baseline"].append(_run(old, shape, args.beam_size))
                runs["this tree"].append(_run(ROOT, shape, args.beam_size))
            if len({run["result"] for found in runs.values() for run in found}) != 1:
                raise AssertionError(f"{text}: the two trees found different explanations")
            report["shapes"][text] = {
                name: {
                    key: statistics.median(run[key] for run in found)
                    for key in ("seconds", "search_peak_mib", "process_peak_mib")
                }
                | {"seconds_runs": [round(run["seconds"], 2) for run in found]}
                for name, found in runs.items()
            }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
