"""The held-out protocol of NetworkInversion: presets x targets, judged by verifier families.

Fixed before any tuning (benchmarks/RESULTS.md): ``--part models`` trains and caches the targets
and verifiers; ``--part fit --preset P --target T`` fits one inversion and writes its figures.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
import torch.nn.functional as F
from common import PROTOCOL_OUT, frozen, load_mnist_npz, parse_settings, trained
from torch import Tensor, nn

from captum_netinv import NetworkInversion
from captum_netinv.examples.models import LeNet5, accuracy
from captum_netinv.inversion.losses import within_class_diversity

TARGETS = ("lenet5", "lenet5_bn")
#: Verifier families: the MLP is the only one any setting may be tuned on; the others are held out.
FAMILIES = ("mlp", "rescnn", "widecnn")
TUNING_FAMILY = "mlp"
VERIFIER_SEEDS = (0, 1)
N_PER_CLASS = 100
STUDENT_SAMPLES = 10_000


def _training_figures(name: str, seed: int, data: dict[str, Tensor]) -> dict[str, float]:
    """Model ``name`` of ``seed`` (trained now unless cached): its test accuracy and seconds."""
    started = time.perf_counter()
    model = trained(name, seed, data)
    return {
        "test_accuracy": accuracy(model, data["x_test"], data["y_test"]),
        "seconds": time.perf_counter() - started,
    }


def run_models() -> dict[str, Any]:
    data = load_mnist_npz()
    results = {}
    for name in TARGETS:
        results[f"{name}_seed0"] = _training_figures(name, 0, data)
        print(name, results[f"{name}_seed0"], flush=True)
    for name in FAMILIES:
        for seed in VERIFIER_SEEDS:
            results[f"{name}_seed{seed}"] = _training_figures(name, seed, data)
            print(name, seed, results[f"{name}_seed{seed}"], flush=True)
    return results


@torch.no_grad()
def predictions(model: nn.Module, images: Tensor) -> Tensor:
    return torch.cat([model(batch).argmax(1) for batch in images.split(500)])


@torch.no_grad()
def family_features(model: nn.Module, images: Tensor) -> Tensor:
    return torch.cat([model.features(batch) for batch in images.split(500)])  # type: ignore[operator]


def stroke_intensity(images: Tensor) -> Tensor:
    """Per image, the mean of its brightest 10% of pixels (a digit's strokes cover ~19%)."""
    flat = images.flatten(1)
    return flat.topk(max(1, flat.shape[1] // 10), dim=1).values.mean(dim=1)


def real_reference(data: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """N_PER_CLASS real test digits of every class, sorted by class."""
    picks = torch.cat([(data["y_test"] == k).nonzero()[:N_PER_CLASS, 0] for k in range(10)])
    return data["x_test"][picks], data["y_test"][picks]


def appearance(samples: Tensor, real: Tensor, targets: Tensor) -> dict[str, Any]:
    """Pixel-space diversity (mean pairwise cosine distance per class), mean pixel, strokes."""
    pixel_diversity = within_class_diversity(samples.flatten(1), targets, 10)
    real_diversity = within_class_diversity(real.flatten(1), targets, 10)
    return {
        "pixel_diversity_ratio_per_class": (pixel_diversity / real_diversity).tolist(),
        "pixel_diversity_ratio": float(pixel_diversity.mean() / real_diversity.mean()),
        "mean_pixel": float(samples.mean()),
        "real_mean_pixel": float(real.mean()),
        "stroke_intensity": float(stroke_intensity(samples).mean()),
        "real_stroke_intensity": float(stroke_intensity(real).mean()),
        "fraction_pixels_above_half": float((samples > 0.5).float().mean()),
        "real_fraction_pixels_above_half": float((real > 0.5).float().mean()),
    }


def verdicts(
    samples: Tensor, real: Tensor, targets: Tensor, families: tuple[str, ...] = FAMILIES
) -> dict[str, Any]:
    """Each family's acceptance (mean over its seeds) and the ResCNN's feature diversity."""
    results: dict[str, Any] = {}
    for family in families:
        per_class = []
        for seed in VERIFIER_SEEDS:
            verifier = trained(family, seed)
            hits = (predictions(verifier, samples) == targets).float().view(10, -1).mean(1)
            per_class.append(hits)
            if family == "rescnn":
                ratio = within_class_diversity(
                    family_features(verifier, samples), targets, 10
                ) / within_class_diversity(family_features(verifier, real), targets, 10)
                results[f"rescnn_seed{seed}_feature_diversity_ratio_per_class"] = ratio.tolist()
        mean = torch.stack(per_class).mean(0)
        results[family] = {
            "acceptance": float(mean.mean()),
            "min_class_acceptance": float(mean.min()),
            "per_class": mean.tolist(),
            "per_seed": [float(v.mean()) for v in per_class],
        }
    return results


def student_accuracy(
    inversion: NetworkInversion, target: nn.Module, data: dict[str, Tensor], seed: int
) -> float:
    """LeNet-5 trained on STUDENT_SAMPLES generated samples with the target's soft labels."""
    labels = torch.arange(STUDENT_SAMPLES) % 10
    samples = inversion.attribute(target=labels, seed=seed + 100)
    with torch.no_grad():
        soft = torch.cat([target(batch).softmax(1) for batch in samples.split(500)])
    torch.manual_seed(seed)
    student = LeNet5()
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    rng = torch.Generator().manual_seed(seed)
    student.train()
    for _ in range(10):
        for batch in torch.randperm(STUDENT_SAMPLES, generator=rng).split(64):
            optimizer.zero_grad()
            log_probabilities = student(samples[batch]).log_softmax(1)
            F.kl_div(log_probabilities, soft[batch], reduction="batchmean").backward()
            optimizer.step()
    return accuracy(student.eval(), data["x_test"], data["y_test"])


def run_fit(
    preset: str,
    target_name: str,
    seed: int,
    steps: int | None,
    mode: str | None,
    weights: dict[str, float] | None = None,
) -> dict:
    """One fit, saved to PROTOCOL_OUT/inv_STEM.pt, with the figures that need no verifier."""
    data = load_mnist_npz()
    target = frozen(trained(target_name, 0))
    extra: dict[str, Any] = {} if mode is None else {"conditioning": mode}
    extra.update(SETTINGS)
    if AUGMENT is not None:
        extra["jitter"], extra["zoom"] = AUGMENT
    if weights:
        extra["loss_weights"] = weights
    inversion = NetworkInversion(target, input_shape=(1, 28, 28), preset=preset, **extra)
    started = time.perf_counter()
    fit_steps: dict[str, Any] = {} if steps is None else {"steps": steps}
    if REFERENCE:  # real training digits whose feature statistics the fit matches
        picks = torch.randperm(len(data["x_train"]), generator=torch.Generator().manual_seed(7))
        fit_steps["reference_inputs"] = data["x_train"][picks[:REFERENCE]]
    inversion.fit(seed=seed, progress=False, **fit_steps)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    stem = stem_of(preset, target_name, mode, seed, weights)
    inversion.save(str(PROTOCOL_OUT / f"inv_{stem}.pt"))
    evaluation = inversion.evaluate(n_per_class=N_PER_CLASS, seed=seed)
    targets = torch.arange(10).repeat_interleave(N_PER_CLASS)
    samples = inversion.attribute(target=targets, seed=seed)
    real, _ = real_reference(data)
    return {
        "preset": evaluation.preset,
        "loss_weight_overrides": weights or {},
        "target": target_name,
        "conditioning": inversion.settings.conditioning,
        "seed": seed,
        "steps": inversion.steps_trained,
        "augmentation": f"jitter {inversion.settings.jitter}, zoom {inversion.settings.zoom:g}",
        "settings": inversion.settings.to_dict(),
        "setting_overrides": {key: repr(value) for key, value in SETTINGS.items()},
        "reference_inputs": REFERENCE,
        "fit_seconds": seconds,
        "threads": torch.get_num_threads(),
        "target_hit_rate": evaluation.hit_rate,
        "target_min_class_hit_rate": float(evaluation.hit_rate_per_class.min()),
        **appearance(samples, real, targets),
        "student_accuracy": student_accuracy(inversion, target, data, seed),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


#: ``(jitter, zoom)`` given with ``--augment`` instead of the preset's (None: the preset's).
AUGMENT: tuple[int, float] | None = None
#: Constructor settings given with ``--setting NAME=VALUE`` over the preset's.
SETTINGS: dict[str, Any] = {}
#: Number of real training digits given as ``reference_inputs`` (``--reference N``; 0: none).
REFERENCE = 0
#: Whether ``--part verdicts`` reads the held-out families too (``--held-out``), or only the
#: tuning family: a tuning run never sees the held-out figures.
HELD_OUT = False


def stem_of(
    preset: str, target: str, mode: str | None, seed: int, weights: dict[str, float] | None = None
) -> str:
    changed = "".join(f"_{name}{value:g}" for name, value in sorted((weights or {}).items()))
    if AUGMENT is not None:  # jitter and zoom other than the preset's
        changed += f"_aug{AUGMENT[0]}-{AUGMENT[1]:g}"
    changed += "".join(f"_{name}-{value}" for name, value in sorted(SETTINGS.items()))
    if REFERENCE:
        changed += f"_ref{REFERENCE}"
    return f"{preset}{changed}_{target}_{mode or 'preset'}_seed{seed}"


def run_verdicts(
    preset: str,
    target_name: str,
    seed: int,
    mode: str | None,
    weights: dict[str, float] | None = None,
) -> dict:
    """The verifier families' figures of a saved fit, on the same samples as run_fit's."""
    data = load_mnist_npz()
    stem = stem_of(preset, target_name, mode, seed, weights)
    target = frozen(trained(target_name, 0))
    inversion = NetworkInversion.load(str(PROTOCOL_OUT / f"inv_{stem}.pt"), target)
    targets = torch.arange(10).repeat_interleave(N_PER_CLASS)
    samples = inversion.attribute(target=targets, seed=seed)
    real, _ = real_reference(data)
    return verdicts(samples, real, targets, FAMILIES if HELD_OUT else (TUNING_FAMILY,))


def summary() -> str:
    """The RESULTS.md table of every fit whose figures and verdicts are both written."""
    header = (
        "| preset | target | fit s | target hit (min class) | MLP* (min) | ResCNN (min) | "
        "WideCNN (min) | ResCNN feature div. / real (min class) | pixel div. / real | "
        "mean pixel (real) | stroke (real) | student |\n|" + "---|" * 12
    )
    rows = [header]
    for fit_path in sorted(PROTOCOL_OUT.glob("fit_*.json")):
        fit = json.loads(fit_path.read_text())
        verdict_path = PROTOCOL_OUT / fit_path.name.replace("fit_", "verdicts_", 1)
        if not verdict_path.exists():
            continue
        verdict = json.loads(verdict_path.read_text())
        changes = fit.get("loss_weight_overrides", {}).items()
        label = f"{fit['preset']} ({fit['conditioning']})" + "".join(
            f", {name} {value:g}" for name, value in changes
        )
        if "_aug" in fit_path.name:  # jitter and zoom other than the preset's
            label += ", " + fit["augmentation"].split(" (")[0]
        label += "".join(f", {k} {v}" for k, v in fit.get("setting_overrides", {}).items())
        if fit.get("reference_inputs"):
            label += f", {fit['reference_inputs']} reference inputs"
        ratios = torch.tensor(
            [verdict[f"rescnn_seed{s}_feature_diversity_ratio_per_class"] for s in VERIFIER_SEEDS]
        )
        families = " | ".join(
            f"{100 * verdict[f]['acceptance']:.1f}% "
            f"({100 * verdict[f]['min_class_acceptance']:.0f}%)"
            for f in FAMILIES
        )
        rows.append(
            f"| {label} | {fit['target']} | {fit['fit_seconds']:.0f} | "
            f"{100 * fit['target_hit_rate']:.1f}% ({100 * fit['target_min_class_hit_rate']:.0f}%)"
            f" | {families} | {float(ratios.mean()):.2f} ({float(ratios.min()):.2f}) | "
            f"{fit['pixel_diversity_ratio']:.2f} | {fit['mean_pixel']:.3f} "
            f"({fit['real_mean_pixel']:.3f}) | {fit['stroke_intensity']:.2f} "
            f"({fit['real_stroke_intensity']:.2f}) | {100 * fit['student_accuracy']:.1f}% |"
        )
    return "\n".join(rows)


def tuning_summary() -> str:
    """The tuning figures of every fit: the target's and the MLP family's, nothing held out."""
    rows = [
        "| fit | fit s | target hit (min) | MLP* (min) | pixel div. / real | mean pixel (real) "
        "| stroke (real) |\n|" + "---|" * 7
    ]
    for fit_path in sorted(PROTOCOL_OUT.glob("fit_*.json")):
        tuning_path = PROTOCOL_OUT / fit_path.name.replace("fit_", "tuning_", 1)
        if not tuning_path.exists():
            continue
        fit, mlp = json.loads(fit_path.read_text()), json.loads(tuning_path.read_text())["mlp"]
        rows.append(
            f"| {fit_path.stem[4:]} | {fit['fit_seconds']:.0f} | "
            f"{100 * fit['target_hit_rate']:.1f}% "
            f"({100 * fit['target_min_class_hit_rate']:.0f}%) | "
            f"{100 * mlp['acceptance']:.1f}% ({100 * mlp['min_class_acceptance']:.0f}%) | "
            f"{fit['pixel_diversity_ratio']:.2f} | {fit['mean_pixel']:.3f} "
            f"({fit['real_mean_pixel']:.3f}) | {fit['stroke_intensity']:.2f} "
            f"({fit['real_stroke_intensity']:.2f}) |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--part", choices=["models", "fit", "verdicts", "summary", "tuning-summary"], required=True
    )
    parser.add_argument("--preset", default="default")
    parser.add_argument("--target", choices=TARGETS, default="lenet5")
    parser.add_argument("--conditioning", default=None)
    parser.add_argument(
        "--loss-weight", action="append", default=[], help="NAME=VALUE over the preset's weight"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--augment", default=None, help="JITTER,ZOOM instead of the preset's")
    parser.add_argument(
        "--setting", action="append", default=[], help="NAME=VALUE over the preset's setting"
    )
    parser.add_argument("--reference", type=int, default=0, help="real digits as reference")
    parser.add_argument("--held-out", action="store_true", help="verdicts of every family")
    arguments = parser.parse_args()
    global REFERENCE, HELD_OUT
    REFERENCE, HELD_OUT = arguments.reference, arguments.held_out
    SETTINGS.update(parse_settings(arguments.setting))
    if arguments.augment is not None:
        global AUGMENT
        jitter, zoom = arguments.augment.split(",")
        AUGMENT = (int(jitter), float(zoom))
    torch.set_num_threads(arguments.threads)
    PROTOCOL_OUT.mkdir(parents=True, exist_ok=True)
    weights = {
        name: float(value) for name, value in (item.split("=") for item in arguments.loss_weight)
    }
    if arguments.part in ("summary", "tuning-summary"):
        print(summary() if arguments.part == "summary" else tuning_summary())
        return
    if arguments.part == "models":
        result = run_models()
        stem = "models"
    elif arguments.part == "fit":
        result = run_fit(
            preset=arguments.preset,
            target_name=arguments.target,
            seed=arguments.seed,
            steps=arguments.steps,
            mode=arguments.conditioning,
            weights=weights,
        )
        stem = "fit_" + stem_of(
            arguments.preset, arguments.target, arguments.conditioning, arguments.seed, weights
        )
    else:
        result = run_verdicts(
            arguments.preset, arguments.target, arguments.seed, arguments.conditioning, weights
        )
        stem = ("verdicts_" if HELD_OUT else "tuning_") + stem_of(
            arguments.preset, arguments.target, arguments.conditioning, arguments.seed, weights
        )
    (PROTOCOL_OUT / f"{stem}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
