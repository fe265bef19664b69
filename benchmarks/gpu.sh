#!/usr/bin/env bash
# GPU checks of the scaling issue, in one run, from the repository root's parent or anywhere:
#   1. the CUDA tests (pytest -m cuda: every test marked `cuda`);
#   2. INVERT at ImageNet scale (N=50,000 C=1,473 K=512 L=3 B=3) on cuda, then on the cpu;
#   3. NetworkInversion fit of a ResNet-18 at 224x224: steps/s and samples/s, fp32 and bf16.
# Results go to benchmarks/_out/gpu/ (JSON per run, log, and RESULTS_gpu.md, the Markdown table,
# also printed at the end).
#
# Usage:
#   benchmarks/gpu.sh                        # on a GPU machine
#   benchmarks/gpu.sh --wheel dist/x.whl     # pip-install these wheels first (repeatable)
#   benchmarks/gpu.sh --device cpu --small   # smoke run of every step on a CPU, tiny sizes
#   benchmarks/gpu.sh --skip-cpu             # leave out the (slow) CPU run of step 2
# Environment: PYTHON (default: .venv/bin/python if present, else python3).
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
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
OUT="benchmarks/_out/gpu"
mkdir -p "$OUT"
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

# 3. ResNet-18 224x224 inversion fit, fp32 and bf16
run_step "inversion speed $DEVICE" "$PYTHON" benchmarks/bench_inversion_speed.py \
    --device "$DEVICE" $SMALL --precisions float32,bfloat16 \
    --out "$OUT/inversion_speed_$DEVICE.json"

# the table, from every JSON this run wrote
"$PYTHON" - "$OUT" <<'EOF' | tee "$OUT/RESULTS_gpu.md"
import json, sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
from bench_invert_scale import markdown_row
from bench_inversion_speed import markdown_rows
out = Path(sys.argv[1])
print("| workload | device | result | notes |")
print("|---|---|---|---|")
for path in sorted(out.glob("invert_scale_*.json")):
    print(markdown_row(json.loads(path.read_text())))
for path in sorted(out.glob("inversion_speed_*.json")):
    print("\n".join(markdown_rows(json.loads(path.read_text()))))
EOF
say "done; status $STATUS; table in $OUT/RESULTS_gpu.md, log in $LOG"
exit $STATUS
