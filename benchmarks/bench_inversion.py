"""Quality and speed of NetworkInversion on full MNIST: the figures of benchmarks/RESULTS.md.

Run pieces separately (each writes JSON into benchmarks/_out/) so that long runs can go in the
background: ``python benchmarks/bench_inversion.py --part models|main|counterfeits|ablation``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from captum.robust import PGD
from common import MNIST, OUT, ROOT, load_mnist_npz, load_models, train_models, verifier_features
from torch import Tensor, nn

from captum_netinv import NetworkInversion
from captum_netinv.examples.models import LeNet5, accuracy
from captum_netinv.inversion import ConditionedGenerator
from captum_netinv.inversion.generator import DEFAULT_DROPOUT
from captum_netinv.inversion.losses import DEFAULT_LOSS_WEIGHTS, within_class_diversity
from captum_netinv.inversion.settings import DEFAULT_STEPS


def diversity_ratio(mlp: nn.Module, samples: Tensor, targets: Tensor, data: dict) -> dict:
    """Within-class diversity of verifier features, generated vs real test images, per class."""
    generated = within_class_diversity(verifier_features(mlp, samples), targets, 10)
    real_images, real_labels = data["x_test"], data["y_test"]
    real = within_class_diversity(verifier_features(mlp, real_images), real_labels, 10)
    ratio = generated / real
    return {
        "generated": generated.tolist(),
        "real": real.tolist(),
        "ratio_per_class": ratio.tolist(),
        "ratio_min": float(ratio.min()),
        "ratio_mean": float(ratio.mean()),
    }


#: Temperature of the classifier's soft labels for the student (Hinton et al.'s distillation).
STUDENT_TEMPERATURE = 4.0
#: Random affine jitter of the augmented student: rotation (degrees), scale, shift (pixels).
AUGMENT_DEGREES, AUGMENT_SCALE, AUGMENT_SHIFT = 12.0, 0.1, 2.5


def random_affine(images: Tensor, generator: torch.Generator) -> Tensor:
    """Each image rotated, scaled and shifted by its own small random amount (zero padding)."""
    count, side = len(images), images.shape[-1]
    angle = (torch.rand(count, generator=generator) * 2 - 1) * np.radians(AUGMENT_DEGREES)
    scale = 1 + (torch.rand(count, generator=generator) * 2 - 1) * AUGMENT_SCALE
    shift = (torch.rand(count, 2, generator=generator) * 2 - 1) * (2 * AUGMENT_SHIFT / side)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False)


def train_student(
    samples: Tensor, teacher: nn.Module, data: dict, augment: bool, epochs: int | None = None
) -> float:
    """A fresh LeNet-5 trained only on the generated ``samples`` with the classifier's soft
    labels at ``STUDENT_TEMPERATURE``, then scored on the real MNIST test set. With ``augment``
    every batch is randomly jittered (:func:`random_affine`) and re-labelled by the classifier,
    standard distillation practice; without it the fixed samples and labels are used."""
    epochs = epochs or (15 if augment else 8)
    torch.manual_seed(2)
    student = LeNet5()
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(2)

    def soft_labels(images: Tensor) -> Tensor:
        with torch.no_grad():
            return (teacher(images) / STUDENT_TEMPERATURE).softmax(dim=1)

    fixed = soft_labels(samples)
    for _ in range(epochs):
        order = torch.randperm(len(samples), generator=generator)
        for start in range(0, len(samples), 64):
            batch = order[start : start + 64]
            images, labels = samples[batch], fixed[batch]
            if augment:
                images = random_affine(images, generator)
                labels = soft_labels(images)
            optimizer.zero_grad()
            log_probs = student(images).log_softmax(dim=1)
            F.kl_div(log_probs, labels, reduction="batchmean").backward()
            optimizer.step()
    return accuracy(student.eval(), data["x_test"], data["y_test"])


def gradient_ascent(
    model: nn.Module, targets: Tensor, hit_rate: float, max_steps: int = 2000
) -> tuple[Tensor, int]:
    """Per-sample inversion: each input optimised on its own (batched) with Adam through a
    sigmoid, cross-entropy plus the same total-variation prior, until the batch's hit rate
    reaches ``hit_rate``."""
    torch.manual_seed(3)
    logits_param = torch.zeros(len(targets), 1, 28, 28).normal_(0, 0.1).requires_grad_()
    optimizer = torch.optim.Adam([logits_param], lr=0.1)
    weight = DEFAULT_LOSS_WEIGHTS["total_variation"]
    for step in range(1, max_steps + 1):
        images = torch.sigmoid(logits_param)
        logits = model(images)
        tv = (images[..., 1:, :] - images[..., :-1, :]).abs().mean() + (
            images[..., 1:] - images[..., :-1]
        ).abs().mean()
        loss = F.cross_entropy(logits, targets) + weight * tv
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if float((logits.argmax(dim=1) == targets).float().mean()) >= hit_rate:
            return torch.sigmoid(logits_param).detach(), step
    return torch.sigmoid(logits_param).detach(), max_steps


def timed_fit(
    lenet: nn.Module, steps: int | None = None, seed: int = 0, **settings: Any
) -> tuple[NetworkInversion, float]:
    """A ``NetworkInversion`` of the LeNet-5 with ``settings``, fitted for ``steps`` (default:
    the library's) with ``seed``, and the fit's wall time in seconds."""
    inversion = NetworkInversion(lenet, input_shape=(1, 28, 28), **settings)
    started = time.perf_counter()
    inversion.fit(steps=steps or DEFAULT_STEPS, seed=seed, progress=False)
    return inversion, time.perf_counter() - started


def run_main(data: dict, steps: int | None, seed: int, saved: str | None = None) -> dict[str, Any]:
    """One default fit (seed ``seed``) measured on every figure of the main table."""
    lenet, mlp = load_models()
    results: dict[str, Any] = {"seed": seed, "steps": steps or DEFAULT_STEPS}
    if saved is not None:
        inversion = NetworkInversion.load(saved, lenet)
        results["fit_seconds"] = None
    else:
        inversion, results["fit_seconds"] = timed_fit(lenet, steps, seed)
        inversion.save(str(OUT / f"inv_default_s{seed}.pt"))
    evaluation = inversion.evaluate(n_per_class=500, verifier=mlp, seed=0)
    targets = torch.arange(10).repeat_interleave(500)
    samples = inversion.attribute(target=targets, seed=0)
    results["hit_rate"] = evaluation.hit_rate
    results["hit_rate_per_class"] = evaluation.hit_rate_per_class.tolist()
    results["mean_confidence"] = evaluation.mean_confidence
    results["verifier_hit_rate"] = evaluation.verifier_hit_rate
    results["verifier_hit_rate_per_class"] = evaluation.verifier_hit_rate_per_class.tolist()  # type: ignore[union-attr]
    results["lenet_feature_diversity"] = evaluation.diversity
    results["verifier_diversity"] = diversity_ratio(mlp, samples, targets, data)

    # speed of sampling after training vs per-sample gradient ascent, side by side
    started = time.perf_counter()
    student_targets = torch.arange(10).repeat(1000)
    student_samples = inversion.attribute(target=student_targets, seed=1)
    generator_seconds = time.perf_counter() - started
    ascent_targets = torch.arange(10).repeat(20)
    started = time.perf_counter()
    ascent_samples, ascent_steps = gradient_ascent(lenet, ascent_targets, evaluation.hit_rate)
    ascent_seconds = time.perf_counter() - started
    with torch.no_grad():
        ascent_hits = float((lenet(ascent_samples).argmax(1) == ascent_targets).float().mean())
        ascent_verifier = float((mlp(ascent_samples).argmax(1) == ascent_targets).float().mean())
    ascent_diversity = within_class_diversity(
        verifier_features(mlp, ascent_samples), ascent_targets, 10
    )
    results["speed"] = {
        "generator_samples_per_second": len(student_targets) / generator_seconds,
        "ascent_samples_per_second": len(ascent_targets) / ascent_seconds,
        "ascent_steps": ascent_steps,
        "ascent_hit_rate": ascent_hits,
        "ratio": (len(student_targets) / generator_seconds)
        / (len(ascent_targets) / ascent_seconds),
        "ascent_verifier_hit_rate": ascent_verifier,
        "ascent_verifier_diversity_mean": float(ascent_diversity.mean()),
    }
    results["student_test_accuracy"] = {
        "plain": train_student(student_samples, lenet, data, augment=False),
        "augmented": train_student(student_samples, lenet, data, augment=True),
    }
    return results


def run_fit_time(repeats: int) -> dict[str, Any]:
    """Wall time of the default fit alone, ``repeats`` times (seeds 0..repeats-1): run it on an
    otherwise idle machine."""
    lenet, _ = load_models()
    seconds = [timed_fit(lenet, seed=seed)[1] for seed in range(repeats)]
    return {
        "steps": DEFAULT_STEPS,
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        "median_seconds": float(np.median(seconds)),
    }


def summarize() -> str:
    """Markdown table of every ``inv_main_s*.json`` run: per seed and the median."""
    runs = [json.loads(path.read_text()) for path in sorted(OUT.glob("inv_main_s*.json"))]
    if not runs:
        raise SystemExit("no inv_main_s*.json in benchmarks/_out: run --part main first")
    columns = {
        "min class hit rate": lambda r: min(r["hit_rate_per_class"]),
        "verifier hit rate": lambda r: r["verifier_hit_rate"],
        "min class verifier": lambda r: min(r["verifier_hit_rate_per_class"]),
        "diversity ratio (mean)": lambda r: r["verifier_diversity"]["ratio_mean"],
        "diversity ratio (min class)": lambda r: r["verifier_diversity"]["ratio_min"],
        "student plain": lambda r: r["student_test_accuracy"]["plain"],
        "student augmented": lambda r: r["student_test_accuracy"]["augmented"],
        "fit s": lambda r: r["fit_seconds"] or float("nan"),
        "speed ratio": lambda r: r["speed"]["ratio"],
    }
    lines = ["| seed | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    values = {name: [float(get(run)) for run in runs] for name, get in columns.items()}
    for index, run in enumerate(runs):
        cells = [f"{values[name][index]:.3f}" for name in columns]
        lines.append(f"| {run['seed']} | " + " | ".join(cells) + " |")
    medians = [f"**{np.median(values[name]):.3f}**" for name in columns]
    lines.append("| median | " + " | ".join(medians) + " |")
    return "\n".join(lines)


def run_counterfeits(data: dict, steps: int | None) -> dict[str, Any]:
    """Counterfeits (model >= 0.99 sure, verifier disagrees) from the priors-off generator vs
    captum.robust.PGD from uniform noise, with the same number of model gradient evaluations."""
    lenet, mlp = load_models()
    inversion = NetworkInversion(lenet, input_shape=(1, 28, 28))
    fit_steps = steps or DEFAULT_STEPS
    budget = fit_steps * 64  # sample-gradients spent by the companion fit
    started = time.perf_counter()
    found = {}
    for target in range(10):
        fakes = inversion.counterfeits(
            target,
            mlp,
            n_samples=100,
            confidence=0.99,
            max_draws=1000,
            steps=fit_steps,
            seed=0,
            progress=False,
        )
        found[target] = len(fakes)
    generator_seconds = time.perf_counter() - started
    pgd_steps = 100
    per_class = budget // (pgd_steps * 10)
    # PGD's default loss, -log(output), expects probabilities; the LeNet returns logits
    pgd = PGD(
        lenet, loss_func=nn.CrossEntropyLoss(reduction="none"), lower_bound=0.0, upper_bound=1.0
    )
    pgd_found = {}
    started = time.perf_counter()
    noise_source = torch.Generator().manual_seed(0)
    for target in range(10):
        noise = torch.rand(per_class, 1, 28, 28, generator=noise_source)
        perturbed = pgd.perturb(
            noise,
            radius=1.0,
            step_size=2.5 / pgd_steps,  # the usual 2.5 x radius / steps
            step_num=pgd_steps,
            target=torch.full((per_class,), target),
            targeted=True,
        )
        with torch.no_grad():
            accepted = lenet(perturbed).softmax(1)[:, target] >= 0.99
            rejected = mlp(perturbed).argmax(1) != target
        pgd_found[target] = int((accepted & rejected).sum())
    pgd_seconds = time.perf_counter() - started
    return {
        "budget_sample_gradients": budget,
        "generator": {"found_per_class_of_1000_draws": found, "seconds": generator_seconds},
        "pgd": {
            "samples_per_class": per_class,
            "steps": pgd_steps,
            "found_per_class": pgd_found,
            "seconds": pgd_seconds,
        },
    }


#: Terms whose removal changes nothing here: the default generator's sigmoid keeps pixels in
#: range, and the benchmark's LeNet-5 has no BatchNorm (tests/ cover both terms).
NO_EFFECT_HERE = ("pixel_range", "batchnorm_statistics")
ABLATIONS: dict[str, dict[str, Any]] = {
    "default": {},  # vector conditioning
    "conditioning=label": {"conditioning": "label"},
    "conditioning=matrix": {"conditioning": "matrix"},
    "conditioning=vector+matrix": {"conditioning": "vector+matrix"},
    "dropout=0.5": {"dropout": 0.5},
    "dropout=0.2": {"dropout": 0.2},
    "dropout off": {"dropout": 0.0},
    "sample without dropout": {"sample_with_dropout": False},
    "channel dropout": {"generator": "channel dropout"},
    "jitter off": {"jitter": 0},
    "900 steps": {"steps": 900},
    **{
        f"no {term}": {"loss_weights": {term: 0.0}}
        for term in DEFAULT_LOSS_WEIGHTS
        if term not in NO_EFFECT_HERE
    },
}


def run_ablation(data: dict, steps: int | None, names: list[str] | None) -> None:
    """Each row of :data:`ABLATIONS` (or those in ``names``): one fit with that change from the
    defaults, measured on 200 samples per class; written to ``inv_ablation_row_<name>.json``."""
    lenet, mlp = load_models()
    for name, row_settings in ABLATIONS.items():
        if names and name not in names:
            continue
        settings = dict(row_settings)
        row_steps = settings.pop("steps", steps or DEFAULT_STEPS)
        if settings.get("generator") == "channel dropout":
            # the default generator with nn.Dropout2d instead of nn.Dropout
            settings["generator"] = ConditionedGenerator(
                (1, 28, 28), 10, dropout=DEFAULT_DROPOUT, channel_dropout=True
            )
        inversion, seconds = timed_fit(lenet, row_steps, **settings)
        evaluation = inversion.evaluate(n_per_class=200, verifier=mlp, seed=0)
        targets = torch.arange(10).repeat_interleave(200)
        samples = inversion.attribute(target=targets, seed=0)
        diversity = diversity_ratio(mlp, samples, targets, data)
        row = {
            "name": name,
            "steps": row_steps,
            "hit_rate": evaluation.hit_rate,
            "min_class_hit_rate": float(evaluation.hit_rate_per_class.min()),
            "mean_confidence": evaluation.mean_confidence,
            "verifier_hit_rate": evaluation.verifier_hit_rate,
            "min_class_verifier_hit_rate": float(evaluation.verifier_hit_rate_per_class.min()),  # type: ignore[union-attr]
            "verifier_diversity_ratio": diversity["ratio_mean"],
            "min_class_diversity_ratio": diversity["ratio_min"],
            "fit_seconds": seconds,
        }
        slug = "".join(c if c.isalnum() else "_" for c in name)
        write_result(row, f"inv_ablation_row_{slug}")


def ablation_table() -> str:
    """Markdown table of the ``inv_ablation_row_*.json`` rows, in :data:`ABLATIONS` order."""
    rows = {
        row["name"]: row
        for row in (json.loads(p.read_text()) for p in OUT.glob("inv_ablation_row_*.json"))
    }
    lines = [
        "| variant | hit rate (min class) | confidence | verifier hit rate (min class) "
        "| diversity ratio (min class) | fit s |",
        "|---|---|---|---|---|---|",
    ]
    for name in ABLATIONS:
        if name in rows:
            r = rows[name]
            lines.append(
                f"| {name} | {r['hit_rate']:.3f} ({r['min_class_hit_rate']:.3f}) "
                f"| {r['mean_confidence']:.3f} | {r['verifier_hit_rate']:.3f} "
                f"({r['min_class_verifier_hit_rate']:.3f}) | {r['verifier_diversity_ratio']:.3f} "
                f"({r['min_class_diversity_ratio']:.3f}) | {r['fit_seconds']:.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(MNIST))
    parser.add_argument(
        "--part",
        choices=["models", "main", "summary", "counterfeits", "ablation", "fit-time"],
        required=True,
    )
    parser.add_argument("--steps", type=int, default=None, help="fit steps (default: library)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="--part main fits")
    parser.add_argument("--repeats", type=int, default=3, help="--part fit-time fits")
    parser.add_argument("--only", nargs="*", default=None, help="ablation rows to run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--saved", default=None, help="--part main: evaluate this saved fit")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.part == "summary":
        print(summarize() + "\n\n" + ablation_table())
        return
    data = load_mnist_npz(args.data)
    if args.part == "main":
        for seed in args.seeds:
            result = run_main(data, args.steps, seed, args.saved)
            write_result(result, f"inv_main_s{seed}")
        return
    if args.part == "models":
        result = train_models(data)
    elif args.part == "counterfeits":
        result = run_counterfeits(data, args.steps)
    elif args.part == "fit-time":
        result = run_fit_time(args.repeats)
    else:
        run_ablation(data, args.steps, args.only)
        return
    suffix = "" if args.steps is None else f"_{args.steps}"
    write_result(result, f"inv_{args.part.replace('-', '_')}{suffix}")


def write_result(result: dict[str, Any], stem: str) -> None:
    path = OUT / f"{stem}.json"
    path.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    print(f"written {os.path.relpath(path, ROOT)}", flush=True)


if __name__ == "__main__":
    main()
