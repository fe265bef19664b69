"""Quality and speed of NetworkInversion on full MNIST: the figures of benchmarks/RESULTS.md.

Run pieces separately (each writes JSON into benchmarks/_out/) so that long runs can go in the
background: ``python benchmarks/bench_inversion.py --part models|main|counterfeits|ablation``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from captum.robust import PGD
from torch import Tensor, nn

from captum_netinv.inversion import ConditionedGenerator, NetworkInversion
from captum_netinv.inversion.losses import DEFAULT_LOSS_WEIGHTS, within_class_diversity
from captum_netinv.inversion.network_inversion import DEFAULT_STEPS
from captum_netinv.models import MLP, LeNet5, accuracy, train_classifier

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "_out"


def load_full_mnist(path: str) -> dict[str, Tensor]:
    """Full MNIST from the npz of the shared data folder, images (N, 1, 28, 28) in [0, 1]."""
    data = np.load(path)
    return {
        "x_train": torch.from_numpy(data["x_train"]).float().div(255).unsqueeze(1),
        "y_train": torch.from_numpy(data["y_train"]).long(),
        "x_test": torch.from_numpy(data["x_test"]).float().div(255).unsqueeze(1),
        "y_test": torch.from_numpy(data["y_test"]).long(),
    }


def frozen_copy(model: nn.Module) -> nn.Module:
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def train_models(data: dict[str, Tensor]) -> dict[str, Any]:
    """The inverted LeNet-5 and the independent MLP verifier, trained on the training split."""
    torch.manual_seed(0)
    started = time.perf_counter()
    lenet = train_classifier(LeNet5(), data["x_train"], data["y_train"], epochs=3, seed=0)
    lenet_time = time.perf_counter() - started
    torch.manual_seed(1)
    mlp = train_classifier(MLP(), data["x_train"], data["y_train"], epochs=5, seed=1)
    torch.save({"lenet": lenet.state_dict(), "mlp": mlp.state_dict()}, OUT / "inv_models.pt")
    return {
        "lenet_test_accuracy": accuracy(lenet, data["x_test"], data["y_test"]),
        "mlp_test_accuracy": accuracy(mlp, data["x_test"], data["y_test"]),
        "lenet_train_seconds": lenet_time,
    }


def load_models() -> tuple[nn.Module, nn.Module]:
    state = torch.load(OUT / "inv_models.pt", weights_only=True)
    lenet, mlp = LeNet5(), MLP()
    lenet.load_state_dict(state["lenet"])
    mlp.load_state_dict(state["mlp"])
    return frozen_copy(lenet), frozen_copy(mlp)


def verifier_features(mlp: nn.Module, images: Tensor) -> Tensor:
    """The MLP's last hidden layer (input of its last Linear)."""
    with torch.no_grad():
        return mlp.layers[:-1](images)


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


def train_student(samples: Tensor, soft_labels: Tensor, data: dict, epochs: int = 8) -> float:
    """A fresh LeNet-5 trained only on generated samples with the classifier's soft labels."""
    torch.manual_seed(2)
    student = LeNet5()
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(2)
    for _ in range(epochs):
        order = torch.randperm(len(samples), generator=generator)
        for start in range(0, len(samples), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            log_probs = student(samples[batch]).log_softmax(dim=1)
            loss = F.kl_div(log_probs, soft_labels[batch], reduction="batchmean")
            loss.backward()
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


def run_main(
    data: dict, steps: int | None, repeats: int, saved: str | None = None
) -> dict[str, Any]:
    lenet, mlp = load_models()
    fit_seconds: list[float] = []
    results: dict[str, Any] = {}
    inversion: NetworkInversion | None = None
    if saved is not None:
        inversion = NetworkInversion.load(saved, lenet)
        repeats = 0
    for repeat in range(repeats):
        inversion = NetworkInversion(lenet, input_shape=(1, 28, 28))
        started = time.perf_counter()
        kwargs = {} if steps is None else {"steps": steps}
        inversion.fit(seed=repeat, progress=False, **kwargs)
        fit_seconds.append(time.perf_counter() - started)
    assert inversion is not None
    if saved is None:
        inversion.save(str(OUT / "inv_default.pt"))
    evaluation = inversion.evaluate(n_per_class=500, verifier=mlp, seed=0)
    targets = torch.arange(10).repeat_interleave(500)
    samples = inversion.attribute(target=targets, seed=0)
    results["fit_seconds"] = fit_seconds
    results["fit_seconds_median"] = float(np.median(fit_seconds)) if fit_seconds else None
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
    results["speed"] = {
        "generator_samples_per_second": len(student_targets) / generator_seconds,
        "ascent_samples_per_second": len(ascent_targets) / ascent_seconds,
        "ascent_steps": ascent_steps,
        "ascent_hit_rate": ascent_hits,
        "ratio": (len(student_targets) / generator_seconds)
        / (len(ascent_targets) / ascent_seconds),
    }
    ascent_diversity = within_class_diversity(
        verifier_features(mlp, ascent_samples), ascent_targets, 10
    )
    with torch.no_grad():
        results["speed"]["ascent_verifier_hit_rate"] = float(
            (mlp(ascent_samples).argmax(1) == ascent_targets).float().mean()
        )
    results["speed"]["ascent_verifier_diversity_mean"] = float(ascent_diversity.mean())

    with torch.no_grad():
        logits = torch.cat([lenet(student_samples[i : i + 1000]) for i in range(0, 10000, 1000)])
    results["student_test_accuracy"] = {
        f"T={temperature:g}": train_student(
            student_samples, (logits / temperature).softmax(dim=1), data
        )
        for temperature in (1.0, STUDENT_TEMPERATURE)
    }
    return results


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
    pgd = PGD(lenet, lower_bound=0.0, upper_bound=1.0)
    pgd_found = {}
    started = time.perf_counter()
    noise_source = torch.Generator().manual_seed(0)
    for target in range(10):
        noise = torch.rand(per_class, 1, 28, 28, generator=noise_source)
        perturbed = pgd.perturb(
            noise,
            radius=1.0,
            step_size=0.02,
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


ABLATIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "conditioning=label": {"conditioning": "label"},
    "conditioning=vector": {"conditioning": "vector"},
    "conditioning=matrix": {"conditioning": "matrix"},
    "conditioning=vector+matrix": {"conditioning": "vector+matrix"},
    "dropout off": {"dropout": 0.0},
    "sample without dropout": {"sample_with_dropout": False},
    "channel dropout": {"generator": "channel dropout"},
    **{f"no {term}": {"loss_weights": {term: 0.0}} for term in DEFAULT_LOSS_WEIGHTS},
}


def run_ablation(data: dict, steps: int | None, names: list[str] | None) -> dict[str, Any]:
    lenet, mlp = load_models()
    rows = {}
    for name, settings in ABLATIONS.items():
        if names and name not in names:
            continue
        if settings.get("generator") == "channel dropout":
            # the default generator with nn.Dropout2d instead of nn.Dropout
            settings = {"generator": ConditionedGenerator((1, 28, 28), 10, channel_dropout=True)}
        inversion = NetworkInversion(lenet, input_shape=(1, 28, 28), **settings)
        started = time.perf_counter()
        kwargs = {} if steps is None else {"steps": steps}
        inversion.fit(seed=0, progress=False, **kwargs)
        seconds = time.perf_counter() - started
        evaluation = inversion.evaluate(n_per_class=200, verifier=mlp, seed=0)
        targets = torch.arange(10).repeat_interleave(200)
        samples = inversion.attribute(target=targets, seed=0)
        rows[name] = {
            "hit_rate": evaluation.hit_rate,
            "min_class_hit_rate": float(evaluation.hit_rate_per_class.min()),
            "mean_confidence": evaluation.mean_confidence,
            "verifier_hit_rate": evaluation.verifier_hit_rate,
            "verifier_diversity_ratio": diversity_ratio(mlp, samples, targets, data)["ratio_mean"],
            "fit_seconds": seconds,
        }
        print(name, json.dumps(rows[name]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(ROOT / ".." / "shared" / "data" / "mnist.npz"))
    parser.add_argument("--part", choices=["models", "main", "counterfeits", "ablation"])
    parser.add_argument("--steps", type=int, default=None, help="fit steps (default: library)")
    parser.add_argument("--repeats", type=int, default=1, help="timed fits in --part main")
    parser.add_argument("--only", nargs="*", default=None, help="ablation rows to run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--saved", default=None, help="--part main: evaluate this saved fit")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    data = load_full_mnist(args.data)
    if args.part == "models":
        result = train_models(data)
    elif args.part == "main":
        result = run_main(data, args.steps, args.repeats, args.saved)
    elif args.part == "counterfeits":
        result = run_counterfeits(data, args.steps)
    else:
        result = run_ablation(data, args.steps, args.only)
    suffix = "" if args.steps is None else f"_{args.steps}"
    path = OUT / f"inv_{args.part}{suffix}.json"
    path.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    print(f"written {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
