#!/usr/bin/env bash
# The CUDA path end to end, for a machine with a GPU (the device tool runs it in a copy of the
# tree; results go to $OUT, default ./gpu_check). Prepared, not yet run: no GPU was lent in the
# sessions that wrote it. It
#   1. sets up .venv if there is none (make setup: needs the torch wheels on that machine),
#   2. runs the tests that need CUDA (they skip on a CPU machine),
#   3. runs the tiny workflow of tests/test_workflow.py with device: cuda and records its wall
#      time, every job's benchmark record and the GPU each job saw,
#   4. classifies and prints the tiny map (the CPU and GPU maps are not expected to be equal).
# Usage: bash benchmarks/gpu_check.sh   (about 3-5 minutes on an H200 once the venv exists)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_check}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1

date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"
[ -x .venv/bin/python ] || make setup
PY="$PWD/.venv/bin/python"
export PATH="$PWD/.venv/bin:$PATH"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")'

# 2. Tests that need a GPU (skipped elsewhere), and the GPU slot helper.
"$PY" -m pytest -q -rs tests/test_data.py -k "gpu or cuda" tests/test_gpu.py | tail -5

# 3. The tiny workflow on CUDA, in a scratch copy of the workflow.
WORK="$(mktemp -d)"
cp -r Snakefile rules report envs profiles "$WORK/"
mkdir -p "$WORK/src" && cp -r src/lltax "$WORK/src/"
"$PY" - "$WORK/config.yaml" <<'EOF'
import sys
import yaml
sys.path.insert(0, "tests")
from test_workflow import TINY
yaml.safe_dump({**TINY, "device": "cuda"}, open(sys.argv[1], "w"), sort_keys=False)
EOF
start=$(date +%s)
snakemake --cores 4 --resources gpu=1 --directory "$WORK" -s "$WORK/Snakefile" > "$OUT/snakemake.log" 2>&1
echo "tiny workflow on cuda: $(( $(date +%s) - start )) s wall"
cp -r "$WORK/results/tiny/benchmarks" "$OUT/benchmarks"
grep -h "torch runtime\|CUDA_VISIBLE_DEVICES\|device cuda" "$WORK"/results/tiny/logs/*/*.log | sort | uniq -c | head -20 || true
"$PY" - "$WORK/results/tiny/phases.nc" <<'EOF'
import sys
import xarray as xr
from lltax.phases import phase_table
print(phase_table(xr.load_dataset(sys.argv[1])))
EOF
cp "$WORK/results/tiny/dataset.nc" "$WORK/results/tiny/phases.nc" "$OUT/"
date -u

# 5. Landscape points per second on the GPU: the reference's loop, lltax's loop, stacked points
#    (goal: stacked >= 5x the loop), the bare forward pass (benchmarks/landscape).
"$PY" benchmarks/landscape/bench_landscape.py --device cuda --widths 8 16 --stacks 16 64 --side 15 \
    --data-dir "$WORK/data" --out "$OUT/landscape_gpu.json" || echo "landscape benchmark failed"
date -u
