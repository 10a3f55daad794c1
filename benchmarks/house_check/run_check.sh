#!/usr/bin/env bash
# Run the tiny config (tests/workflow_runs.py's TINY; older trees: tests/test_workflow.py's) in a git worktree WORKTREE with that tree's
# code (its src first on PYTHONPATH), using the venv VENV (default: this checkout's .venv).
# Then compare two such runs: python benchmarks/restructure/compare_runs.py A/results/tiny B/results/tiny
# Usage: bash benchmarks/house_check/run_check.sh WORKTREE
set -euo pipefail
VENV="${VENV:-$(cd "$(dirname "$0")/../.." && pwd)/.venv}"
W="$(cd "$1" && pwd)"
cd "$W"
export PYTHONPATH="$W/src" PATH="$VENV/bin:$PATH"
python - <<'PY'
import sys, yaml
sys.path.insert(0, "tests")
try:
    from workflow_runs import TINY
except ImportError:  # a tree from before tests/workflow_runs.py
    from test_workflow import TINY
yaml.safe_dump(TINY, open("tiny.yaml", "w"), sort_keys=False)
PY
start=$(date +%s)
snakemake --cores 2 --configfile tiny.yaml > tiny.log 2>&1
echo "tiny: $(( $(date +%s) - start )) s"
