"""The colour protocol of NetworkInversion (issue 21): coloured shapes, verifier families, probes.

Fixed in benchmarks/RESULTS.md before any tuning. ``--part models`` trains and caches the targets,
the verifier families and the shape probe; ``--part fit`` fits one inversion and writes the
figures that need no held-out model; ``--part verdicts`` the tuning family's (``--held-out``:
every family's and the shape probe's); ``--part summary`` / ``tuning-summary`` print tables.

    cd benchmarks && ../.venv/bin/python bench_colour_protocol.py --part models
    ../.venv/bin/python bench_colour_protocol.py --part fit --target shapes_cnn --seed 0
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from common import OUT, ResCNN, VerifierMLP, WideCNN, frozen, parse_settings  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from captum_netinv import NetworkInversion  # noqa: E402
from captum_netinv.examples.models import ShapesCNN, accuracy, train_classifier  # noqa: E402
from captum_netinv.examples.shapes import (  # noqa: E402
    SHAPES_CLASS_NAMES,
    colour_permuted,
    coloured_shapes,
    dominant_colour,
)
from captum_netinv.inversion.losses import within_class_diversity  # noqa: E402
from captum_netinv.inversion.network.evaluation import near_copy_share  # noqa: E402

COLOUR_OUT = OUT / "colour"
TARGETS = ("shapes_cnn", "shapes_cnn_bn")
#: Verifier families: the MLP is the tuning family; the CNNs and the shape probe are held out.
FAMILIES = ("mlp", "rescnn", "widecnn")
TUNING_FAMILY = "mlp"
SEEDS = (0, 1)
N_PER_CLASS = 100
CLASSES = 9
_BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "shapes_cnn": ShapesCNN,
    "shapes_cnn_bn": partial(ShapesCNN, batch_norm=True),
    "mlp": partial(VerifierMLP, in_features=3 * 32 * 32, num_classes=CLASSES),
    "rescnn": partial(ResCNN, in_channels=3, num_classes=CLASSES),
    "widecnn": partial(WideCNN, in_channels=3, num_classes=CLASSES, side=32),
    "shape_probe": partial(ShapesCNN, num_classes=3),
}
_EPOCHS = {"shapes_cnn": 5, "shapes_cnn_bn": 5, "mlp": 5, "rescnn": 2, "widecnn": 2}
_EPOCHS["shape_probe"] = 5


def data() -> dict[str, Tensor]:
    """9,000 training and 1,800 test images (seeds 0 and 1) with labels and shapes."""
    train, test = coloured_shapes(9000, seed=0), coloured_shapes(1800, seed=1)
    return {
        "x_train": train.images,
        "y_train": train.labels,
        "shape_train": train.shapes,
        "x_test": test.images,
        "y_test": test.labels,
        "shape_test": test.shapes,
    }


def trained(name: str, seed: int, split: dict[str, Tensor] | None = None) -> nn.Module:
    """The cached model ``name`` of ``seed``, trained on ``split`` when not cached yet."""
    path = COLOUR_OUT / f"model_{name}_seed{seed}.pt"
    torch.manual_seed(seed)
    model = _BUILDERS[name]()
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return frozen(model)
    assert split is not None, f"{path} missing: run --part models"
    images, labels = split["x_train"], split["y_train"]
    if name == "shape_probe":
        images, labels = colour_permuted(images, seed=seed), split["shape_train"]
    model = train_classifier(model, images, labels, epochs=_EPOCHS[name], seed=seed)
    torch.save(model.state_dict(), path)
    return frozen(model)


def run_models() -> dict[str, Any]:
    split, results = data(), {}
    for name, seeds in [(t, (0,)) for t in TARGETS] + [
        (f, SEEDS) for f in (*FAMILIES, "shape_probe")
    ]:
        for seed in seeds:
            started = time.perf_counter()
            model = trained(name, seed, split)
            labels = split["shape_test"] if name == "shape_probe" else split["y_test"]
            results[f"{name}_seed{seed}"] = {
                "test_accuracy": accuracy(model, split["x_test"], labels),
                "seconds": time.perf_counter() - started,
            }
            print(name, seed, results[f"{name}_seed{seed}"], flush=True)
    return results


@torch.no_grad()
def predictions(model: nn.Module, images: Tensor) -> Tensor:
    return torch.cat([model(batch).argmax(1) for batch in images.split(500)])


def real_reference(split: dict[str, Tensor]) -> Tensor:
    """N_PER_CLASS real test images of every class, sorted by class."""
    picks = [(split["y_test"] == k).nonzero()[:N_PER_CLASS, 0] for k in range(CLASSES)]
    return split["x_test"][torch.cat(picks)]


def per_class(hits: Tensor) -> dict[str, Any]:
    """Overall and weakest-class mean of ``(CLASSES * N_PER_CLASS,)`` hits sorted by class."""
    rates = hits.float().view(CLASSES, -1).mean(1)
    return {
        "overall": float(rates.mean()),
        "min_class": float(rates.min()),
        "per_class": rates.tolist(),
    }


def appearance(samples: Tensor, real: Tensor, targets: Tensor) -> dict[str, Any]:
    """Colour right, pixel diversity against real, near-copies, mean pixel."""
    diversity = within_class_diversity(samples.flatten(1), targets, CLASSES)
    real_diversity = within_class_diversity(real.flatten(1), targets, CLASSES)
    ratio = diversity / real_diversity
    return {
        "colour_right": per_class(dominant_colour(samples) == targets % 3),
        "real_colour_right": per_class(dominant_colour(real) == targets % 3)["overall"],
        "pixel_diversity_ratio": float(ratio.mean()),
        "min_class_pixel_diversity_ratio": float(ratio.min()),
        "near_copy_share": near_copy_share(samples, targets),
        "real_near_copy_share": near_copy_share(real, targets),
        "mean_pixel": float(samples.mean()),
        "real_mean_pixel": float(real.mean()),
    }


#: Constructor settings (``--setting NAME=VALUE``), loss weights, reference inputs, held-out.
SETTINGS: dict[str, Any] = {}
WEIGHTS: dict[str, float] = {}
REFERENCE = 0
HELD_OUT = False


def stem_of(preset: str, target: str, seed: int) -> str:
    changed = "".join(f"_{name}{value:g}" for name, value in sorted(WEIGHTS.items()))
    changed += "".join(f"_{name}-{value}" for name, value in sorted(SETTINGS.items()))
    changed += f"_ref{REFERENCE}" if REFERENCE else ""
    return f"{preset}{changed}_{target}_seed{seed}"


def samples_of(inversion: NetworkInversion, seed: int) -> tuple[Tensor, Tensor]:
    targets = torch.arange(CLASSES).repeat_interleave(N_PER_CLASS)
    return inversion.attribute(target=targets, seed=seed), targets


def save_grid(samples: Tensor, path: str) -> None:
    """Eight samples of every class, one row per class."""
    rows = samples.view(CLASSES, N_PER_CLASS, 3, 32, 32)[:, :8]
    figure, axes = plt.subplots(CLASSES, 1, figsize=(6, 7))
    for axis, row, name in zip(axes, rows, SHAPES_CLASS_NAMES, strict=True):
        axis.imshow(row.permute(2, 0, 3, 1).reshape(32, 8 * 32, 3).clamp(0, 1).numpy())
        axis.set_ylabel(name, rotation=0, ha="right", fontsize=7)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


def run_fit(preset: str, target_name: str, seed: int, steps: int | None) -> dict[str, Any]:
    split = data()
    target = trained(target_name, 0)
    extra: dict[str, Any] = dict(SETTINGS)
    if WEIGHTS:
        extra["loss_weights"] = WEIGHTS
    inversion = NetworkInversion(target, input_shape=(3, 32, 32), preset=preset, **extra)
    fit_arguments: dict[str, Any] = {} if steps is None else {"steps": steps}
    if REFERENCE:
        picks = torch.randperm(9000, generator=torch.Generator().manual_seed(7))[:REFERENCE]
        fit_arguments["reference_inputs"] = split["x_train"][picks]
    started = time.perf_counter()
    inversion.fit(seed=seed, progress=False, **fit_arguments)
    seconds = time.perf_counter() - started
    stem = stem_of(preset, target_name, seed)
    inversion.save(str(COLOUR_OUT / f"inv_{stem}.pt"))
    samples, targets = samples_of(inversion, seed)
    save_grid(samples, str(COLOUR_OUT / f"grid_{stem}.png"))
    return {
        "stem": stem,
        "fit_seconds": seconds,
        "steps": inversion.steps_trained,
        "threads": torch.get_num_threads(),
        "settings": inversion.settings.to_dict(),
        "target_hit": per_class(predictions(target, samples) == targets),
        **appearance(samples, real_reference(split), targets),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def run_verdicts(preset: str, target_name: str, seed: int) -> dict[str, Any]:
    stem = stem_of(preset, target_name, seed)
    inversion = NetworkInversion.load(str(COLOUR_OUT / f"inv_{stem}.pt"), trained(target_name, 0))
    samples, targets = samples_of(inversion, seed)
    results: dict[str, Any] = {}
    for family in FAMILIES if HELD_OUT else (TUNING_FAMILY,):
        hits = torch.stack([predictions(trained(family, s), samples) == targets for s in SEEDS])
        results[family] = per_class(hits.float().mean(0))
    if HELD_OUT:
        probe = [predictions(trained("shape_probe", s), samples) == targets // 3 for s in SEEDS]
        results["shape_probe"] = per_class(torch.stack(probe).float().mean(0))
    return results


def _cell(figures: dict[str, Any]) -> str:
    return f"{100 * figures['overall']:.1f}% ({100 * figures['min_class']:.0f}%)"


def summary(prefix: str) -> str:
    """A table of every fit whose ``prefix`` file (tuning_ / verdicts_) exists."""
    columns = [TUNING_FAMILY] if prefix == "tuning_" else [*FAMILIES, "shape_probe"]
    header = (
        "| fit | fit s | target hit (min) | "
        + " | ".join(f"{c} (min)" for c in columns)
        + " | colour (min) | pixel div. / real (min) | near-copies | mean pixel (real) |"
    )
    rows = [header, "|" + "---|" * (8 + len(columns) - 1)]
    for fit_path in sorted(COLOUR_OUT.glob("fit_*.json")):
        verdict_path = COLOUR_OUT / fit_path.name.replace("fit_", prefix, 1)
        if not verdict_path.exists():
            continue
        fit, verdict = json.loads(fit_path.read_text()), json.loads(verdict_path.read_text())
        rows.append(
            f"| {fit['stem']} | {fit['fit_seconds']:.0f} | {_cell(fit['target_hit'])} | "
            + " | ".join(_cell(verdict[c]) for c in columns)
            + f" | {_cell(fit['colour_right'])} | {fit['pixel_diversity_ratio']:.2f} "
            f"({fit['min_class_pixel_diversity_ratio']:.2f}) | {100 * fit['near_copy_share']:.0f}% "
            f"| {fit['mean_pixel']:.3f} ({fit['real_mean_pixel']:.3f}) |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = ["models", "fit", "verdicts", "summary", "tuning-summary"]
    parser.add_argument("--part", choices=parts, required=True)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--target", choices=TARGETS, default="shapes_cnn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--setting", action="append", default=[], help="NAME=VALUE")
    parser.add_argument("--loss-weight", action="append", default=[], help="NAME=VALUE")
    parser.add_argument("--reference", type=int, default=0, help="real images as reference")
    parser.add_argument("--held-out", action="store_true", help="verdicts of every family")
    arguments = parser.parse_args()
    global REFERENCE, HELD_OUT
    REFERENCE, HELD_OUT = arguments.reference, arguments.held_out
    SETTINGS.update(parse_settings(arguments.setting))
    WEIGHTS.update({k: float(v) for k, v in (w.split("=") for w in arguments.loss_weight)})
    torch.set_num_threads(arguments.threads)
    COLOUR_OUT.mkdir(parents=True, exist_ok=True)
    if arguments.part in ("summary", "tuning-summary"):
        print(summary("verdicts_" if arguments.part == "summary" else "tuning_"))
        return
    if arguments.part == "models":
        result, name = run_models(), "models"
    elif arguments.part == "fit":
        result = run_fit(arguments.preset, arguments.target, arguments.seed, arguments.steps)
        name = f"fit_{result['stem']}"
    else:
        result = run_verdicts(arguments.preset, arguments.target, arguments.seed)
        prefix = "verdicts_" if HELD_OUT else "tuning_"
        name = prefix + stem_of(arguments.preset, arguments.target, arguments.seed)
    (COLOUR_OUT / f"{name}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
