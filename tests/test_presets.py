"""Every preset in configs/ validates and plans its whole grid (a dry run each): the jobs per
rule follow from its grid and switches (tests/workflow_runs.expected_job_counts)."""

import re

import pytest
import yaml
from workflow_runs import REPO, copy_workflow, expected_job_counts, snakemake

from lltax.config.schema import validate_config

pytestmark = pytest.mark.slow


PRESETS = sorted((REPO / "configs").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=[path.stem for path in PRESETS])
def test_every_preset_plans_its_whole_grid(preset, tmp_path):
    """Each preset in configs/ validates and dry-runs; its jobs per rule follow from its grid."""
    config = validate_config(yaml.safe_load(preset.read_text()))
    copy_workflow(tmp_path)
    out = snakemake(tmp_path, "-n", "--quiet", "rules", "--configfile", str(preset))
    planned = dict(re.findall(r"^\s*([a-z_]+)\s+(\d+)\s*$", out.stdout + out.stderr, re.M))
    planned = {rule: int(count) for rule, count in planned.items() if rule not in ("total", "job")}
    assert planned == expected_job_counts(config), out.stdout[-1500:]
