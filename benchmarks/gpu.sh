#!/usr/bin/env bash
# GPU checks of the scaling issue, in one run, from the repository root's parent or anywhere:
#   1. the CUDA tests (pytest -m cuda: every test marked `cuda`);
#   2. INVERT at ImageNet scale (N=50,000 C=1,473 K=512 L=3 B=3) on cuda, then on the cpu;
#   3. LeNet-5 NetworkInversion step at batch 64: ms per step and host reads per step with
#      default, fused and host-free Adam, and the default fit's time, 2,700 steps x ms
#      (bench_step_syncs.py);
#   4. NetworkInversion fit of a ResNet-18 at 224x224, batch 64: steps/s and samples/s, fp32 and
#      bf16, beside the frozen ResNet-18's own forward+backward-to-input samples/s (the ceiling:
#      fp32, bf16, bf16+channels_last, bf16+channels_last+torch.compile) and each fit's ratio to
#      each ceiling (bench_inversion_speed.py);
#   5. NeuronInversion fit of a LeNet-5's fc2 (84 units, 600 steps) with the MNIST reference
#      digits on the device: seconds and steps/s (bench_neuron_device.py);
#   6. the demo, `python -m captum_netinv --device DEVICE --no-progress` at its full budget
#      (with --small: --quick), timed, stopped after DEMO_TIMEOUT seconds (default 300).
# A failed step is logged and the run goes on (exit status 1 at the end). Results go to
# benchmarks/_out/gpu/ (its JSONs are cleared first; one JSON per step, the log gpu_run.log, and
# RESULTS_gpu.md, the Markdown table of every figure, also printed at the end).
#
# Usage:
#   benchmarks/gpu.sh                        # on a GPU machine
#   benchmarks/gpu.sh --wheel dist/x.whl     # pip-install these wheels first (repeatable)
#   benchmarks/gpu.sh --device cpu --small   # smoke run of every step on a CPU, tiny sizes
#   benchmarks/gpu.sh --skip-cpu             # leave out the (slow) CPU run of step 2
# Environment: PYTHON (default: .venv/bin/python if present, else python3), DEMO_TIMEOUT.
# Wheels: with no --wheel, every shared/wheels/*.whl is installed when that folder exists
# (offline: --no-index --find-links shared/wheels); otherwise the environment must already hold
# torch, captum, torchvision, scikit-learn and pytest. The package itself runs from the checkout
# (PYTHONPATH), so no install of captum_netinv is needed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DEVICE=cuda
SMALL=""
SKIP_CPU=0
WHEELS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --wheel) WHEELS+=("$2"); shift 2 ;;
        --device) DEVICE="$2"; shift 2 ;;
        --small) SMALL="--small"; shift ;;
        --skip-cpu) SKIP_CPU=1; shift ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
OUT="benchmarks/_out/gpu"
mkdir -p "$OUT"
rm -f "$OUT"/*.json  # the table reads every JSON there: this run's only
LOG="$OUT/gpu_run.log"
: > "$LOG"
say() { echo "== $*" | tee -a "$LOG"; }

if [[ ${#WHEELS[@]} -gt 0 ]]; then
    say "installing ${WHEELS[*]}"
    "$PYTHON" -m pip install --quiet "${WHEELS[@]}" 2>&1 | tee -a "$LOG"
elif compgen -G "shared/wheels/*.whl" > /dev/null; then
    say "installing shared/wheels/*.whl (offline)"
    # dependencies from that folder, or else (not all there) the wheels alone
    { "$PYTHON" -m pip install --quiet --no-index --find-links shared/wheels shared/wheels/*.whl \
        || "$PYTHON" -m pip install --quiet --no-index --no-deps shared/wheels/*.whl; } \
        2>&1 | tee -a "$LOG"
fi
"$PYTHON" - <<'EOF' 2>&1 | tee -a "$LOG"
import torch, captum
print("torch", torch.__version__, "captum", captum.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF

STATUS=0
run_step() {  # run_step NAME CMD...: runs, logs, remembers a failure, goes on
    local name="$1"; shift
    say "$name: $*"
    local started=$SECONDS
    if "$@" 2>&1 | tee -a "$LOG"; then
        say "$name: ok ($((SECONDS - started)) s)"
    else
        say "$name: FAILED ($((SECONDS - started)) s)"; STATUS=1
    fi
}

# 1. CUDA tests (skipped, not failed, where torch sees no CUDA device)
run_step "cuda tests" "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider tests

# 2. INVERT at ImageNet scale: on $DEVICE, then the same workload on the CPU
run_step "invert scale $DEVICE" "$PYTHON" benchmarks/bench_invert_scale.py --device "$DEVICE" \
    $SMALL --repeats 3 --out "$OUT/invert_scale_$DEVICE.json"
if [[ "$DEVICE" != cpu && $SKIP_CPU -eq 0 ]]; then
    run_step "invert scale cpu" "$PYTHON" benchmarks/bench_invert_scale.py --device cpu \
        $SMALL --repeats 1 --out "$OUT/invert_scale_cpu.json"
fi

# 3. LeNet-5 NetworkInversion step at batch 64: ms/step, host reads/step, default fit's time
SYNC_SIZES=(--steps 40 --repeats 3)
if [[ -n "$SMALL" ]]; then SYNC_SIZES=(--steps 5 --repeats 1); fi
run_step "step syncs $DEVICE" "$PYTHON" benchmarks/bench_step_syncs.py --device "$DEVICE" \
    "${SYNC_SIZES[@]}" --out "$OUT/step_syncs_$DEVICE.json"

# 4. ResNet-18 224x224 inversion fit, fp32 and bf16, beside the model's own fwd+bwd ceilings
run_step "inversion speed $DEVICE" "$PYTHON" benchmarks/bench_inversion_speed.py \
    --device "$DEVICE" --steps 20 --warmup 5 --ceiling-iters 20 --ceiling-warmup 5 $SMALL \
    --precisions float32,bfloat16 --out "$OUT/inversion_speed_$DEVICE.json"

# 5. NeuronInversion fit of a LeNet-5 (fc2, 600 steps), its reference digits on the device
run_step "neuron inversion $DEVICE" "$PYTHON" benchmarks/bench_neuron_device.py \
    --device "$DEVICE" $SMALL --out "$OUT/neuron_device_$DEVICE.json"

# 6. the demo on the device, full budget (--quick with --small), timed
demo() {  # demo JSON ARGS...: runs the demo with ARGS, writes its seconds and exit status to JSON
    local json="$1"; shift
    local report started rc=0
    report="$(mktemp -d)"
    started=$SECONDS
    timeout "$DEMO_TIMEOUT" "$PYTHON" -m captum_netinv --out "$report" --no-progress "$@" \
        || rc=$?
    printf '{"args": "%s", "seconds": %d, "rc": %d, "timeout": %d, "device": "%s"}\n' \
        "$*" $((SECONDS - started)) "$rc" "$DEMO_TIMEOUT" "$DEVICE" > "$json"
    rm -rf "$report"
    return "$rc"
}
DEMO_TIMEOUT="${DEMO_TIMEOUT:-300}"
DEMO_ARGS=(--device "$DEVICE")
if [[ -n "$SMALL" ]]; then DEMO_ARGS+=(--quick); fi
run_step "demo $DEVICE" demo "$OUT/demo_$DEVICE.json" "${DEMO_ARGS[@]}"

# the table, from every JSON this run wrote
"$PYTHON" - "$OUT" <<'EOF' | tee "$OUT/RESULTS_gpu.md"
import json, sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
from bench_invert_scale import markdown_row
from bench_inversion_speed import markdown_rows
from bench_neuron_device import markdown_row as neuron_row
from bench_step_syncs import markdown_rows as sync_rows
out = Path(sys.argv[1])

def demo_row(result):
    state = {0: "ok", 124: f"STOPPED at the {result['timeout']} s limit"}.get(
        result["rc"], f"FAILED (exit {result['rc']})")
    return (f"| demo `python -m captum_netinv {result['args']} --no-progress` | "
            f"{result['device']} | **{result['seconds']} s** | {state} |")

print("| workload | device | result | notes |")
print("|---|---|---|---|")
for pattern, rows in (
    ("invert_scale_*.json", lambda result: [markdown_row(result)]),
    ("step_syncs_*.json", sync_rows),
    ("inversion_speed_*.json", markdown_rows),
    ("neuron_device_*.json", lambda result: [neuron_row(result)]),
    ("demo_*.json", lambda result: [demo_row(result)]),
):
    for path in sorted(out.glob(pattern)):
        try:
            print("\n".join(rows(json.loads(path.read_text()))))
        except Exception as error:  # a broken JSON costs its row, not the table
            print(f"| {path.name} | | unreadable | {type(error).__name__}: {error} |")
EOF
say "done; status $STATUS; table in $OUT/RESULTS_gpu.md, log in $LOG"
exit $STATUS
