"""The default MNIST NetworkInversion fit on the CPU: this tree against an earlier commit's.

Each run is a fresh process with ``--threads`` torch threads that fits the default inversion of
a LeNet-5 (``torch.manual_seed(0)`` weights, untrained: a step's cost does not depend on the
weights) for ``--steps`` steps of the default batch, and prints the wall time of ``fit``. The
commit's package is exported with ``git archive`` and imported from there; runs alternate
between the two trees, and the medians and their ratio are printed as JSON. Each tree fits its
own default (settings, generator, optimizer), as a user upgrading would see it::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_fit_baseline.py --baseline 19d014b \\
        --threads 2 --steps 300 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Any

from common import ROOT, exported_package, run_in_tree

_CHILD = r"""
import json, sys, time
import torch
import captum_netinv
from captum_netinv import NetworkInversion
try:
    from captum_netinv.examples.models import LeNet5
except ImportError:  # commits before the examples package
    from captum_netinv.models import LeNet5
torch.set_num_threads(int(sys.argv[2]))
torch.manual_seed(0)
inversion = NetworkInversion(LeNet5().eval(), input_shape=(1, 28, 28))
start = time.perf_counter()
inversion.fit(steps=int(sys.argv[1]), seed=0, progress=False)
seconds = time.perf_counter() - start
print(json.dumps({
    "package": captum_netinv.__file__,
    "seconds": seconds,
    "final_hit_rate": inversion.history["hit_rate"][-1],
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="the earlier commit")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    arguments = [str(args.steps), str(args.threads)]
    runs: dict[str, list[float]] = {"baseline": [], "this tree": []}
    with exported_package(args.baseline) as old:
        for _ in range(args.repeats):
            for name, tree in (("baseline", old), ("this tree", ROOT)):
                figures = run_in_tree(tree, _CHILD, arguments, threads=args.threads)
                runs[name].append(figures["seconds"])
    medians = {name: statistics.median(seconds) for name, seconds in runs.items()}
    report: dict[str, Any] = {
        "baseline": args.baseline,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} torch threads",
        "steps": args.steps,
        "median_seconds": {name: round(value, 2) for name, value in medians.items()},
        "median_ms_per_step": {
            name: round(1000 * value / args.steps, 1) for name, value in medians.items()
        },
        "this_tree_over_baseline": round(medians["this tree"] / medians["baseline"], 3),
        "runs": {name: [round(value, 2) for value in seconds] for name, seconds in runs.items()},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
