"""Wall time of the default NetworkInversion fit: MNIST LeNet-5 (28x28) or ShapesCNN (32x32 RGB).

The readable-samples issue asks the default fit to take <= 5 minutes for MNIST and <= 10 minutes
for 32x32 colour on this project's 2-core CPU, "one process per core": run the two fits at once,
each with one torch thread, on an otherwise idle machine::

    cd benchmarks
    ../.venv/bin/python bench_fit_time.py --target lenet5 & \
    ../.venv/bin/python bench_fit_time.py --target shapes_cnn; wait

The targets are the protocols' cached models (``--part models`` of bench_inversion_protocol.py
and bench_colour_protocol.py); the default budget (2,700 steps of 64) unless ``--steps``.
Prints one JSON line: target, seconds, steps, threads, torch version, date.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from bench_colour_protocol import trained as trained_colour
from common import trained

from captum_netinv import NetworkInversion

_SHAPES = {"lenet5": (1, 28, 28), "shapes_cnn": (3, 32, 32)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=sorted(_SHAPES), required=True)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    model = (
        trained("lenet5", 0) if arguments.target == "lenet5" else trained_colour("shapes_cnn", 0)
    )
    inversion = NetworkInversion(model, input_shape=_SHAPES[arguments.target])
    budget = {} if arguments.steps is None else {"steps": arguments.steps}
    started = time.perf_counter()
    inversion.fit(seed=arguments.seed, progress=False, **budget)
    seconds = time.perf_counter() - started
    record = {
        "target": arguments.target,
        "seconds": round(seconds, 1),
        "steps": inversion.steps_trained,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
