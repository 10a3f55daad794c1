#!/usr/bin/env bash
# Run the tiny config (benchmarks/house_check/run_check.sh) and then the default experiment in a git
# worktree WORKTREE with that tree's code (its src first on PYTHONPATH), using the venv VENV
# (default: this checkout's .venv). Prints each run's wall time.
# Usage: bash benchmarks/fast_path_check/run_check.sh WORKTREE
set -euo pipefail
VENV="${VENV:-$(cd "$(dirname "$0")/../.." && pwd)/.venv}"
export VENV
bash "$(dirname "$0")/../house_check/run_check.sh" "$1"   # the tiny config
W="$(cd "$1" && pwd)"
cd "$W"
export PYTHONPATH="$W/src" PATH="$VENV/bin:$PATH"
start=$(date +%s)
snakemake --cores 2 > demo.log 2>&1
echo "demo: $(( $(date +%s) - start )) s"
