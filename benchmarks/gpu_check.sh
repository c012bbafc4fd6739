#!/usr/bin/env bash
# The GPU check of issue 18, in under ten minutes on one CUDA device:
#   1. the GPU-marked tests (pytest -m gpu), at most 4 minutes;
#   2. benchmarks/peers.py --quick on CUDA (training, sampling and matmul sections, the profile),
#      at most 5 minutes, writing benchmarks/results/peers-quick-<gpu name>1-fp32+bf16-torch<v>.csv.
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]   (default benchmarks/results; the device tool's $OUT works)
# Run from anywhere: it changes to the repository root. Exits 3 when no CUDA device is visible, else
# with the first failure's status (124: a step ran past its time limit).
#
# Written without a GPU to test on: it only calls commands that run on the CPU here (the same
# pytest and peers.py invocations with --device cpu are exercised by tests/test_accel.py), and
# every step is bounded by `timeout`, so it cannot run past ten minutes whatever happens.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/results}"
mkdir -p "$OUT"

if ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: no CUDA device visible to torch; nothing to do" >&2
    exit 3
fi
python - <<'EOF'
import torch
p = torch.cuda.get_device_properties(0)
print(f"gpu_check: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"bf16 {torch.cuda.is_bf16_supported()}")
EOF
python -c 'import diffusers' 2>/dev/null || pip install -q "diffusers>=0.30" || echo "gpu_check: diffusers unavailable; its rows are skipped" >&2

status=0
echo "== GPU-marked tests"
timeout 240 python -m pytest -q -m gpu -n0 -p no:cacheprovider 2>&1 | tee "$OUT/gpu-tests.log"
rc=${PIPESTATUS[0]}
# exit 5: no test carries the gpu marker, which is not a failure of this check
if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then status=$rc; fi

echo "== benchmarks/peers.py on CUDA"
timeout 300 python benchmarks/peers.py --quick --device cuda --sections matmul,train,sample,profile \
    --rounds 3 --out "$OUT" 2>&1 | tee "$OUT/gpu-peers.log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then status=$rc; fi

echo "gpu_check: done, status $status; results in $OUT"
exit "$status"
