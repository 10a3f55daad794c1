#!/usr/bin/env bash
# Run the tiny config (tests/test_workflow.py's TINY) and then the default experiment in a git
# worktree WORKTREE with that tree's code (its src first on PYTHONPATH), using the venv VENV
# (default: this checkout's .venv). Prints each run's wall time.
# Usage: bash benchmarks/fast_path_check/run_check.sh WORKTREE
set -euo pipefail
VENV="${VENV:-$(cd "$(dirname "$0")/../.." && pwd)/.venv}"
W="$(cd "$1" && pwd)"
cd "$W"
export PYTHONPATH="$W/src" PATH="$VENV/bin:$PATH"
python - <<'PY'
import sys, yaml
sys.path.insert(0, "tests")
from test_workflow import TINY
yaml.safe_dump(TINY, open("tiny.yaml", "w"), sort_keys=False)
PY
start=$(date +%s)
snakemake --cores 2 --configfile tiny.yaml > tiny.log 2>&1
echo "tiny: $(( $(date +%s) - start )) s"
start=$(date +%s)
snakemake --cores 2 > demo.log 2>&1
echo "demo: $(( $(date +%s) - start )) s"
