"""NetworkInversion of the LeNet-5 benchmark target: one process against two gloo ranks (CPU).

The same global batch, steps and seed; the two ranks train one generator with
DistributedDataParallel (``NetworkInversion.fit`` on every rank of the group). Reports the hit
rate (the target's argmax == class on ``--n-per-class`` fresh samples of every class), the MLP
verifier's hit rate and the fit's wall time of each. The LeNet-5 and MLP are those of
``bench_inversion.py`` (trained on full MNIST and cached in ``benchmarks/_out/inv_models.pt``;
trained here when that file is missing).

    PYTHONPATH=. python benchmarks/bench_distributed_inversion.py                  # 2700 steps
    PYTHONPATH=. python benchmarks/bench_distributed_inversion.py --steps 600 --seeds 0 1

Writes ``benchmarks/_out/distributed_inversion.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MNIST, OUT, load_mnist_npz, load_models, train_models  # noqa: E402

from captum_netinv import NetworkInversion  # noqa: E402
from captum_netinv.inversion.settings import DEFAULT_BATCH_SIZE, DEFAULT_STEPS  # noqa: E402


def fit_and_measure(steps: int, batch_size: int, seed: int, n_per_class: int) -> dict[str, Any]:
    """One fit (on every rank when a process group is initialized) and its figures."""
    lenet, mlp = load_models()
    inversion = NetworkInversion(lenet, input_shape=(1, 28, 28))
    started = time.perf_counter()
    inversion.fit(steps=steps, batch_size=batch_size, seed=seed, progress=False)
    seconds = time.perf_counter() - started
    evaluation = inversion.evaluate(n_per_class=n_per_class, verifier=mlp, seed=0)
    assert inversion.generator is not None
    return {
        "seconds": seconds,
        "hit_rate": evaluation.hit_rate,
        "verifier_hit_rate": evaluation.verifier_hit_rate,
        "weights": {k: v.clone() for k, v in inversion.generator.state_dict().items()},
    }


def _rank(rank: int, world: int, store: str, options: dict[str, Any], out: str) -> None:
    torch.set_num_threads(options.pop("threads"))
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.save(fit_and_measure(**options), f"{out}.rank{rank}")
    finally:
        dist.destroy_process_group()


def distributed_fit(world: int, threads: int, **options: Any) -> dict[str, Any]:
    """The fit on ``world`` gloo ranks (spawned here); rank 0's figures and weight equality."""
    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "result")
        options = {**options, "threads": threads}
        args = (world, str(Path(folder) / "store"), options, out)
        mp.spawn(_rank, args=args, nprocs=world, join=True)
        ranks = [torch.load(f"{out}.rank{r}", weights_only=True) for r in range(world)]
    weights = [rank.pop("weights") for rank in ranks]
    identical = all(
        torch.equal(value, other[key]) for other in weights[1:] for key, value in weights[0].items()
    )
    return {**ranks[0], "ranks_identical_weights": identical}


def markdown(result: dict[str, Any]) -> str:
    """Per-seed rows and the medians."""
    lines = [
        "| run | seed | hit rate | verifier hit rate | fit time |",
        "|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        for name in ("one_process", "distributed"):
            figures = run[name]
            label = "1 process" if name == "one_process" else f"{result['world']} gloo ranks"
            lines.append(
                f"| {label} | {run['seed']} | {figures['hit_rate']:.4f} | "
                f"{figures['verifier_hit_rate']:.4f} | {figures['seconds']:.0f} s |"
            )
    for name in ("one_process", "distributed"):
        hits = [run[name]["hit_rate"] for run in result["runs"]]
        lines.append(f"| median {name.replace('_', ' ')} | | {statistics.median(hits):.4f} | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(MNIST))
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--n-per-class", type=int, default=500)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    if not (OUT / "inv_models.pt").exists():
        trained = train_models(load_mnist_npz(args.data))
        print("trained the LeNet-5 target and the MLP verifier:", trained)
    options = {"steps": args.steps, "batch_size": args.batch_size, "n_per_class": args.n_per_class}
    runs = []
    for seed in args.seeds:
        single = fit_and_measure(seed=seed, **options)
        single.pop("weights")
        spread = distributed_fit(args.world, args.threads, seed=seed, **options)
        runs.append({"seed": seed, "one_process": single, "distributed": spread})
        print(json.dumps(runs[-1]), flush=True)
    result = {**options, "world": args.world, "threads": args.threads, "runs": runs}
    (OUT / "distributed_inversion.json").write_text(json.dumps(result, indent=2))
    print(markdown(result))


if __name__ == "__main__":
    main()
