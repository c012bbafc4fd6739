#!/usr/bin/env bash
# The GPU check (issues 18 and 22), bounded to fit one device lease (at most 8 minutes):
#   1. environment: the GPU, torch and CUDA versions, bf16 support               (30 s)
#   2. benchmarks/gpu_contract.py: zoo.testing.check_model on cuda for every
#      built-in model in fp32, bf16 and fp16 (fp16 with the gradient scaler)      (150 s)
#   3. the GPU-marked tests (pytest -m gpu)                                         (90 s)
#   4. benchmarks/peers.py --quick on CUDA (matmul, training, sampling, profile)  (180 s)
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]
#   OUT_DIR defaults to $OUT (the device tool's folder), else a new temporary folder. Every step
#   is bounded by `timeout` and logs to OUT_DIR/<step>.log; OUT_DIR/gpu_check.log has the summary.
# Without a CUDA device it is a dry run: it says that no CUDA device
# is present and what each step would run, runs the contract script's --dry-run (a few seconds:
# the script and the registry load), and exits 0. On a GPU it exits with the first failing step's
# status (124: a step ran past its limit). Run from anywhere: it changes to the repository root.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-}}"
if [ -z "$OUT_DIR" ]; then OUT_DIR="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"; fi
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
: > "$LOG"
PY="${PYTHON:-python}"

say() { echo "gpu_check: $*" | tee -a "$LOG"; }

DRY=0
if ! timeout 60 "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
        >>"$LOG" 2>&1; then
    DRY=1
    say "no CUDA device present (torch.cuda.is_available() is False): dry run, nothing measured"
fi

status=0
# step NAME SECONDS COMMAND...: run COMMAND under `timeout`, its output in OUT_DIR/NAME.log;
# in a dry run, only say what would run.
step() {
    local name="$1" limit="$2"
    shift 2
    if [ "$DRY" -eq 1 ]; then
        say "would run $name (at most ${limit} s): $*"
        return 0
    fi
    say "== $name (at most ${limit} s)"
    timeout "$limit" "$@" 2>&1 | tee "$OUT_DIR/$name.log"
    local rc=${PIPESTATUS[0]}
    # pytest's 5: no test carries the marker, which is not a failure of this check
    if [ "$name" = "gpu-tests" ] && [ "$rc" -eq 5 ]; then rc=0; fi
    say "$name: exit $rc"
    if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then status=$rc; fi
}

step environment 30 "$PY" benchmarks/gpu_contract.py --device cuda --environment
step contract 150 "$PY" benchmarks/gpu_contract.py --device cuda --precisions fp32,bf16,fp16 --out "$OUT_DIR"
step gpu-tests 90 "$PY" -m pytest -q -m gpu -n0 -p no:cacheprovider
step peers 180 "$PY" benchmarks/peers.py --quick --device cuda --sections matmul,train,sample,profile \
    --rounds 3 --out "$OUT_DIR"

if [ "$DRY" -eq 1 ]; then
    # What can be checked without the device: the contract script loads and lists its pairs.
    timeout 120 "$PY" benchmarks/gpu_contract.py --device cuda --precisions fp32,bf16,fp16 --dry-run \
        2>&1 | tee "$OUT_DIR/contract-dry-run.log" >>"$LOG"
    rc=${PIPESTATUS[0]}
    say "contract --dry-run: exit $rc"
    say "dry run done; logs in $OUT_DIR"
    exit "$rc"
fi
say "done, status $status; logs and results in $OUT_DIR"
exit "$status"
