#!/usr/bin/env bash
# usage: run_check.sh WORKTREE  -> runs tiny and demo configs there with that tree's code
set -euo pipefail
W="$1"
cd "$W"
export PYTHONPATH="$W/src" PATH="/work/main/.venv/bin:$PATH"
mkdir -p data
[ -d /work/main/data ] && cp -rn /work/main/data/. data/ 2>/dev/null || true
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
