"""NeuronInversion on full MNIST: the figures of the ``## NeuronInversion`` section of RESULTS.md.

Protocol (fixed before any tuning; the defaults were tuned on the 5,000-digit demo LeNet-5 only):
the benchmark LeNet-5 of bench_inversion.py (``--part models`` trains and caches it); for each
layer one NeuronInversion over all its units, fitted on the 60,000 training images as reference
(``--steps``, default batch, seed 0); then per unit 32 generated samples against the 10,000 test
images: median activation >= the unit's test 99th percentile, within-unit diversity of the MLP
verifier's features (bench_inversion's measure) against the unit's 100 top-activating test
images, and the label check of the unit's INVERT formula (test set, the demo's concepts). Next
to them, ``appearance``: total variation and mean pixel of the generated samples against the
top-activating test images (diversity bought with noise shows as a high total variation).

Targets (``--target``):

* ``benchmark`` (default): the benchmark LeNet-5 and MLP verifier above, the acceptance target;
  never tune on it.
* ``tuning``: the held-out tuning target on which any setting may be tuned: the protocol's
  LeNet-5 with BatchNorm (bench_inversion_protocol.py, cached ``model_lenet5_bn_seed0.pt``,
  never retrained here) with diversity measured in the features (``model.features``) of the
  protocol's VerifierMLP seed 1 (``model_mlp_seed1.pt``); same layers, samples and measures.
* ``tuning2``: a second tuning target (round 6, RESULTS.md), a plain LeNet-5 like the benchmark's
  (the protocol's builder, trained with seed 1 on its first use), verifier MLP seed 1; tune on it.
* ``fresh``: a second held-out check, fixed in round 5 after the benchmark had been looked at
  (RESULTS.md): the protocol's plain LeNet-5 (``model_lenet5_seed0.pt``) with diversity in the
  features of the protocol's VerifierMLP seed 0; never tune on it. Its LeNet-5 turned out (after
  its run) to hold the benchmark LeNet-5's very weights (the same builder, seed and epochs): only
  its verifier is new.
* ``fresh2`` and ``fresh3``: held-out models fixed after that finding, trained on their first use:
  a plain LeNet-5 of seed 2 and a LeNet-5+BN of seed 1 (the protocol's builders), verifier MLP
  seed 0; never tune on them.
* ``tuning3``: ``fresh3``'s LeNet-5+BN with the tuning verifier (MLP seed 1), a tuning target from
  round 7 on, after the round-6 default failed on it; ``fresh4`` (LeNet-5+BN seed 2) and
  ``fresh5`` (plain LeNet-5 seed 3), verifier MLP seed 0, the held-out models of round 7.

Options for tuning runs: ``--batch-per-unit N`` fits with a batch of N samples per unit (default:
the inversion's default batch), ``--settings JSON`` passes extra NeuronInversion constructor
keyword arguments (e.g. ``'{"jitter": 0, "zoom": 0.0}'`` or
``'{"loss_weights": {"cosine_similarity": 8.0}}'``), ``--no-label-check`` skips INVERT and the
label check. The output ``benchmarks/_out/neuron_<target>_<layer>_s<seed>_<steps>_<tag>.json``
is named by a config tag (``default``, or built from the options; ``--tag`` overrides it).

``python benchmarks/bench_neuron_inversion.py --layer fc2`` (then ``--layer conv2``);
``python benchmarks/bench_neuron_inversion.py --target tuning --layer fc2 --seed 1
--no-label-check --settings '{"jitter": 0}'``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from typing import Any

import torch
from common import (
    MNIST,
    OUT,
    frozen,
    load_mnist_npz,
    load_models,
    model_path,
    train_models,
    trained,
    verifier_features,
)
from torch import Tensor, nn

from captum_netinv import NeuronInversion
from captum_netinv.examples.data import digit_concept_detectors, digit_concepts
from captum_netinv.inversion.losses import total_variation
from captum_netinv.inversion.neuron.evaluation import top_activating
from captum_netinv.labeling import label_check
from captum_netinv.recognition import Explanations, InverseRecognition

#: INVERT settings of the demo (captum_netinv/app/demo.py).
INVERT = {"formula_length": 3, "beam_size": 5, "min_fraction": 0.02, "progress": False}
PER_UNIT, TOP_K = 32, 100
TARGETS = (
    "benchmark",
    "tuning",
    "tuning2",
    "tuning3",
    "fresh",
    "fresh2",
    "fresh3",
    "fresh4",
    "fresh5",
)
#: The protocol's (target, target seed, verifier seed) of the other targets
#: (bench_inversion_protocol.py's models; the weights are cached under benchmarks/_out/protocol).
_PROTOCOL_TARGETS = {
    "tuning": ("lenet5_bn", 0, 1),
    "tuning2": ("lenet5", 1, 1),
    "fresh": ("lenet5", 0, 0),
    "fresh2": ("lenet5", 2, 0),
    "fresh3": ("lenet5_bn", 1, 0),
    "tuning3": ("lenet5_bn", 1, 1),
    "fresh4": ("lenet5_bn", 2, 0),
    "fresh5": ("lenet5", 3, 0),
}


def load_target(name: str) -> tuple[nn.Module, Callable[[Tensor], Tensor]]:
    """The frozen model to invert and the verifier features of the diversity measure."""
    if name == "benchmark":
        lenet, mlp = load_models()
        return lenet, lambda x: verifier_features(mlp, x)
    target_name, target_seed, verifier_seed = _PROTOCOL_TARGETS[name]
    # cached protocol weights; tuning2's and fresh2/3's are trained (and cached) on first use
    missing = not model_path(target_name, target_seed).exists()
    target = frozen(trained(target_name, target_seed, load_mnist_npz() if missing else None))
    verifier = trained("mlp", verifier_seed).eval()

    def features(x: Tensor) -> Tensor:
        with torch.no_grad():
            return verifier.features(x)  # type: ignore[operator]

    return target, features


def config_tag(batch_per_unit: int | None, settings: dict[str, Any]) -> str:
    """``default``, or the options flattened into a file-name-safe tag (``bpu4_jitter0_...``)."""

    def flat(prefix: str, value: Any) -> list[str]:
        if isinstance(value, dict):
            return [part for key in sorted(value) for part in flat(key, value[key])]
        return [f"{prefix}{value}"]

    parts = ([f"bpu{batch_per_unit}"] if batch_per_unit is not None else []) + flat("", settings)
    return re.sub(r"[^A-Za-z0-9._-]", "", "_".join(parts)) or "default"


def label_checks(
    inversion: NeuronInversion,
    explanations: Explanations,
    samples: Tensor,
    real_top: Tensor,
    detectors: dict,
) -> list[dict[str, Any]]:
    """Per unit: its formula, AUC and the shares of its generated samples (``PER_UNIT`` a unit,
    in unit order) and of its top-activating test images (``real_top``, ``(K, TOP_K, ...)``)
    that it holds on."""
    rows = []
    for position, unit in enumerate(inversion.neurons):
        explanation = explanations[unit]
        row: dict[str, Any] = {"unit": unit, "formula": None, "auc": explanation.auc}
        if explanation.formula is not None:
            own = samples[position * PER_UNIT : (position + 1) * PER_UNIT]
            check = label_check(explanation.formula, own, real_top[position], detectors)
            row.update(
                formula=check.formula,
                generated_share=check.generated_share,
                real_share=check.real_share,
            )
        rows.append(row)
    return rows


def appearance(samples: Tensor, real_top: Tensor) -> dict[str, float]:
    """Medians over units: total variation (per image, the mean absolute difference of
    neighbouring pixels) and mean pixel of the generated samples and of the unit's
    top-activating test images; a guard against diversity bought with noise."""
    generated = samples.detach().cpu().view(len(real_top), PER_UNIT, *samples.shape[1:])
    # the prior's anisotropic total variation sums both directions: half of it per direction
    tv_generated = torch.stack([total_variation(unit) / 2 for unit in generated])
    tv_real = torch.stack([total_variation(unit) / 2 for unit in real_top])
    return {
        "tv_generated_median": float(tv_generated.median()),
        "tv_real_top_median": float(tv_real.median()),
        "tv_ratio_median": float((tv_generated / tv_real).median()),
        "mean_pixel_generated_median": float(generated.flatten(2).mean(2).mean(1).median()),
        "mean_pixel_real_top_median": float(real_top.flatten(2).mean(2).mean(1).median()),
    }


def run_label_checks(
    data: dict[str, Tensor],
    model: nn.Module,
    layer: nn.Module,
    inversion: NeuronInversion,
    samples: Tensor,
    real_top: Tensor,
) -> list[dict[str, Any]]:
    """The label check of every unit's INVERT formula on the test set."""
    test = data["x_test"]
    concepts, names = digit_concepts(test, data["y_test"])
    explanations = InverseRecognition(model, layer).attribute(
        test, concepts, concept_names=names, **INVERT
    )
    detectors = digit_concept_detectors(model, test)
    return label_checks(inversion, explanations, samples, real_top, detectors)


def run_layer(data: dict[str, Tensor], args: argparse.Namespace) -> dict[str, Any]:
    model, feature_func = load_target(args.target)
    layer: nn.Module = getattr(model, args.layer)
    test = data["x_test"]
    inversion = NeuronInversion(model, layer, input_shape=(1, 28, 28), **args.settings)
    units = len(inversion.neurons)  # known once input_shape is given
    batch_size = None if args.batch_per_unit is None else args.batch_per_unit * units
    started = time.perf_counter()
    history = inversion.fit(
        data["x_train"], steps=args.steps, batch_size=batch_size, seed=args.seed, progress=True
    )
    fit_seconds = time.perf_counter() - started
    result = inversion.evaluate(test, n_per_unit=PER_UNIT, top_k=TOP_K, feature_func=feature_func)
    assert result.diversity_ratio is not None
    # PER_UNIT samples of every unit (seed 0, as evaluate's) and its top test images, once
    positions = torch.arange(units).repeat_interleave(PER_UNIT)
    samples = inversion.attribute(
        neuron_selector=torch.tensor(inversion.neurons)[positions], seed=0
    )
    real_top = test[top_activating(inversion.unit_activations(test), TOP_K)]
    steps_run = len(history["loss"])
    return {
        "target": args.target,
        "tag": args.tag,
        "layer": args.layer,
        "units": len(inversion.neurons),
        "steps": args.steps,
        "batch_size": batch_size or inversion.default_batch_size(),
        "batch_per_unit": args.batch_per_unit,
        "settings": args.settings,
        "loss_weights": dict(inversion.settings.loss_weights),
        "jitter": inversion.settings.jitter,  # the resolved settings: "default" follows the
        "zoom": inversion.settings.zoom,  # library's defaults of the day
        "seed": args.seed,
        "threads": args.threads,
        "fit_seconds": fit_seconds,
        "seconds_per_step": fit_seconds / max(steps_run, 1),
        "share_reached": result.share_reached,
        "median_over_q99": (result.median_activation / result.reference_quantile).tolist(),
        "reached": result.reached.tolist(),
        "above_rate": result.above_rate.tolist(),
        "diversity_ratio": result.diversity_ratio.tolist(),
        "diversity_ratio_median": float(result.diversity_ratio.median()),
        "share_diversity_ge_half": float((result.diversity_ratio >= 0.5).float().mean()),
        "appearance": appearance(samples, real_top),
        "label_check": None
        if args.no_label_check
        else run_label_checks(
            data=data,
            model=model,
            layer=layer,
            inversion=inversion,
            samples=samples,
            real_top=real_top,
        ),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(MNIST))
    parser.add_argument("--target", choices=TARGETS, default="benchmark")
    parser.add_argument("--layer", choices=["fc2", "conv2", "conv1"], required=True)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-per-unit", type=int, default=None)
    parser.add_argument("--settings", type=json.loads, default={})
    parser.add_argument("--no-label-check", action="store_true")
    parser.add_argument("--tag", default=None, help="config tag of the output file name")
    args = parser.parse_args()
    if not isinstance(args.settings, dict):
        parser.error("--settings must be a JSON object")
    args.tag = args.tag or config_tag(args.batch_per_unit, args.settings)
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    data = load_mnist_npz(args.data)
    if args.target == "benchmark" and not (OUT / "inv_models.pt").exists():
        print(json.dumps(train_models(data)))
    result = run_layer(data, args)
    stem = f"neuron_{args.target}_{args.layer}_s{args.seed}_{args.steps}_{args.tag}"
    path = OUT / f"{stem}.json"
    path.write_text(json.dumps(result, indent=1))
    summary = {k: v for k, v in result.items() if not isinstance(v, list)}
    print(json.dumps(summary, indent=1))
    print(f"written {path}")


if __name__ == "__main__":
    main()
