"""NeuronInversion on full MNIST: the figures of the ``## NeuronInversion`` section of RESULTS.md.

Protocol (fixed before any tuning; the defaults were tuned on the 5,000-digit demo LeNet-5 only):
the benchmark LeNet-5 of bench_inversion.py (``--part models`` trains and caches it); for each
layer one NeuronInversion over all its units, fitted on the 60,000 training images as reference
(``--steps``, default batch, seed 0); then per unit 32 generated samples against the 10,000 test
images: median activation >= the unit's test 99th percentile, within-unit diversity of the MLP
verifier's features (bench_inversion's measure) against the unit's 100 top-activating test
images, and the label check of the unit's INVERT formula (test set, the demo's concepts).

``python benchmarks/bench_neuron_inversion.py --layer fc2`` (then ``--layer conv2``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from bench_inversion import OUT, load_full_mnist, load_models, train_models, verifier_features
from torch import Tensor, nn

from captum_netinv import NeuronInversion
from captum_netinv.data import digit_concepts
from captum_netinv.inversion.neuron_evaluation import top_activating
from captum_netinv.neuron_labels import digit_concept_detectors, label_check
from captum_netinv.recognition import Explanations, InverseRecognition

ROOT = Path(__file__).resolve().parent.parent
#: INVERT settings of the demo (captum_netinv/demo.py).
INVERT = {"formula_length": 3, "beam_size": 5, "min_fraction": 0.02, "progress": False}
PER_UNIT, TOP_K = 32, 100


def label_checks(
    inversion: NeuronInversion,
    explanations: Explanations,
    samples: Tensor,
    test: Tensor,
    detectors: dict,
) -> list[dict[str, Any]]:
    """Per unit: its formula, AUC and the shares of generated / top-100 test inputs it holds on."""
    activations = inversion.unit_activations(test)
    rows = []
    for position, unit in enumerate(inversion.neurons):
        explanation = explanations[unit]
        row: dict[str, Any] = {"unit": unit, "formula": None, "auc": explanation.auc}
        if explanation.formula is not None:
            top = top_activating(activations[:, position : position + 1], TOP_K)[0]
            own = samples[position * PER_UNIT : (position + 1) * PER_UNIT]
            check = label_check(explanation.formula, own, test[top], detectors)
            row.update(
                formula=check.formula,
                generated_share=check.generated_share,
                real_share=check.real_share,
            )
        rows.append(row)
    return rows


def run_layer(data: dict[str, Tensor], layer_name: str, steps: int, seed: int) -> dict[str, Any]:
    lenet, mlp = load_models()
    layer: nn.Module = getattr(lenet, layer_name)
    test = data["x_test"]
    inversion = NeuronInversion(lenet, layer, input_shape=(1, 28, 28))
    started = time.perf_counter()
    inversion.fit(data["x_train"], steps=steps, seed=seed, progress=True)
    fit_seconds = time.perf_counter() - started
    result = inversion.evaluate(
        test, n_per_unit=PER_UNIT, top_k=TOP_K, feature_func=lambda x: verifier_features(mlp, x)
    )
    positions = torch.arange(len(inversion.neurons)).repeat_interleave(PER_UNIT)
    samples = inversion.attribute(
        neuron_selector=torch.tensor(inversion.neurons)[positions], seed=0
    )
    concepts, names = digit_concepts(test, data["y_test"])
    explanations = InverseRecognition(lenet, layer).attribute(
        test, concepts, concept_names=names, **INVERT
    )
    detectors = digit_concept_detectors(lenet, test)
    assert result.diversity_ratio is not None
    return {
        "layer": layer_name,
        "units": len(inversion.neurons),
        "steps": steps,
        "batch_size": inversion.default_batch_size(),
        "seed": seed,
        "fit_seconds": fit_seconds,
        "share_reached": result.share_reached,
        "median_over_q99": (result.median_activation / result.reference_quantile).tolist(),
        "reached": result.reached.tolist(),
        "above_rate": result.above_rate.tolist(),
        "diversity_ratio": result.diversity_ratio.tolist(),
        "diversity_ratio_median": float(result.diversity_ratio.median()),
        "share_diversity_ge_half": float((result.diversity_ratio >= 0.5).float().mean()),
        "label_check": label_checks(inversion, explanations, samples, test, detectors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(ROOT / ".." / "shared" / "data" / "mnist.npz"))
    parser.add_argument("--layer", choices=["fc2", "conv2", "conv1"], required=True)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    data = load_full_mnist(args.data)
    if not (OUT / "inv_models.pt").exists():
        print(json.dumps(train_models(data)))
    result = run_layer(data, args.layer, args.steps, args.seed)
    path = OUT / f"neuron_{args.layer}_s{args.seed}_{args.steps}.json"
    path.write_text(json.dumps(result, indent=1))
    summary = {k: v for k, v in result.items() if not isinstance(v, list)}
    print(json.dumps(summary, indent=1))
    print(f"written {path}")


if __name__ == "__main__":
    main()
