"""Markdown tables of RESULTS.md's NeuronInversion section from bench_neuron_inversion.py's JSON.

One summary row per file (layer, fit time, units reached, diversity ratio, label check), then,
with ``--units``, one row per unit: its INVERT formula and AUC, generated median over the test
99th percentile, reached, diversity ratio, and the shares of generated / top-100 real inputs its
formula holds on. Reads only the JSON files (no torch):

``python benchmarks/neuron_tables.py benchmarks/_out/neuron_benchmark_fc2_s0_600_r5.json
benchmarks/_out/neuron_benchmark_conv2_s0_600_r5.json --units``
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

#: Largest gap between the generated and the top-real share counted as "the label agrees".
AGREEMENT = 0.2


def _label_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in result.get("label_check") or [] if row.get("formula") is not None]


def summary_row(result: dict[str, Any]) -> str:
    """``| target | layer | batch | fit s | reached | diversity median (min) | >= 0.5 | ... |``."""
    ratios = result["diversity_ratio"]
    reached = sum(result["reached"])
    units = result["units"]
    half = sum(ratio >= 0.5 for ratio in ratios)
    labels = _label_rows(result)
    if labels:
        generated = statistics.median(row["generated_share"] for row in labels)
        real = statistics.median(row["real_share"] for row in labels)
        agree = sum(abs(row["generated_share"] - row["real_share"]) <= AGREEMENT for row in labels)
        label = f"{generated:.2f} / {real:.2f} ({agree} / {len(labels)} within {AGREEMENT})"
    else:
        label = "not run"
    appearance = result.get("appearance") or {}
    return (
        f"| {result['target']} | {result['layer']} | {result['batch_size']} | "
        f"{result['fit_seconds']:.0f} | {reached} / {units} ({reached / units:.0%}) | "
        f"{statistics.median(ratios):.2f} ({min(ratios):.2f}) | {half} / {units} "
        f"({half / units:.0%}) | {label} | {appearance.get('tv_ratio_median', float('nan')):.2f} |"
    )


SUMMARY_HEADER = (
    "| target | layer | batch | fit s | units reached | diversity ratio: median (min) | "
    "units with ratio >= 0.5 | formula holds, median over units: generated / top-100 real "
    "(units within 0.2) | total variation, generated / real |\n"
    "|---|---|---|---|---|---|---|---|---|"
)

UNITS_HEADER = (
    "| layer | unit | INVERT formula | AUC | median / q99 | reached | diversity ratio | "
    "holds: generated | holds: top real |\n|---|---|---|---|---|---|---|---|---|"
)


def unit_rows(result: dict[str, Any]) -> list[str]:
    """One row per unit of ``result`` (its label check where INVERT found a formula)."""
    labels = result.get("label_check") or []  # one row per fitted unit, in order
    rows = []
    for position, ratio in enumerate(result["diversity_ratio"]):
        label = labels[position] if labels else {}
        formula = label.get("formula")
        shown = "(none)" if formula is None else f"`{formula.replace('|', chr(92) + '|')}`"
        auc = label.get("auc")
        shares = (
            ("-", "-")
            if formula is None
            else (f"{label['generated_share']:.2f}", f"{label['real_share']:.2f}")
        )
        rows.append(
            f"| {result['layer']} | {label.get('unit', position)} | {shown} | "
            f"{'-' if auc is None else f'{auc:.3f}'} | "
            f"{result['median_over_q99'][position]:.2f} | "
            f"{'yes' if result['reached'][position] else 'no'} | {ratio:.2f} | "
            f"{shares[0]} | {shares[1]} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--units", action="store_true", help="also the per-unit table")
    args = parser.parse_args()
    results = [json.loads(path.read_text()) for path in args.files]
    print(SUMMARY_HEADER)
    for result in results:
        print(summary_row(result))
    if args.units:
        print()
        print(UNITS_HEADER)
        for result in results:
            print("\n".join(unit_rows(result)))


if __name__ == "__main__":
    main()
