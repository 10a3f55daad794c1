"""Jobs that fit the cluster (lltax.runtime.partitions): requests capped at a partition's max_runtime,
a job that fits no partition refused with its numbers, the paper preset planned within limits."""

import math
import re
from pathlib import Path

import pytest
from workflow_runs import REPO, TINY, copy_workflow, expected_job_counts, snakemake, write_config

from lltax.config.grid import cell_path, expand_grid
from lltax.config.schema import read_config_file, validate_config
from lltax.contract import ConfigError
from lltax.runtime.cost import estimate_seconds, runtime_minutes
from lltax.runtime.partitions import check_seeds_per_job, fitted_runtime, minutes, read_partitions

PAPER = REPO / "configs" / "yang2021_resnet18_cifar10.yaml"


def write_partitions(folder, text):
    path = folder / "partitions.yaml"
    path.write_text(text)
    read_partitions.cache_clear()
    return str(path)


def test_slurm_times_read_as_minutes():
    assert minutes(90) == 90 and minutes("90") == 90 and minutes("1-00:00:00") == 1440 and minutes("02:30:00") == 150
    assert minutes(None) == math.inf
    with pytest.raises(ConfigError, match="not a number of minutes"):
        minutes("a day")


def paper(seeds_per_job="preset"):
    raw = read_config_file(PAPER)
    if seeds_per_job != "preset":
        raw = {**raw, "cluster": {**raw.get("cluster", {}), "seeds_per_job": seeds_per_job}}
    return validate_config(raw)


def test_requests_are_capped_and_a_job_over_every_limit_is_refused(tmp_path):
    config = paper(None)  # a cell's five seeds in one job
    cells = expand_grid(config["grid"])
    partitions = read_partitions(
        write_partitions(tmp_path, "partitions:\n  cpu: {max_gpu: 0, max_runtime: 60}\n  gpu: {max_gpu: 2, max_runtime: 1440}\n")
    )
    # The widest cell at the smallest batch: 3 x its estimate is over 24 h, the estimate under it.
    big = max(cells, key=lambda cell: estimate_seconds("train", cell, config))
    assert runtime_minutes("train", big, config) > 1440 > estimate_seconds("train", big, config) / 60
    assert fitted_runtime("train", cell_path(big), big, config, 1, partitions, 1, 1) == 1440
    assert fitted_runtime("train", cell_path(big), big, config, 3, partitions, 1, 1) == 1440  # a retry keeps the limit
    small = min(cells, key=lambda cell: estimate_seconds("train", cell, config))
    assert fitted_runtime("train", cell_path(small), small, config, 1, partitions, 1, 1) == runtime_minutes("train", small, config)
    # A GPU job fits only the GPU partition: when its estimate exceeds that limit, it is refused.
    tight = read_partitions(write_partitions(tmp_path, "partitions:\n  cpu: {max_gpu: 0}\n  gpu: {max_gpu: 2, max_runtime: '04:00:00'}\n"))
    with pytest.raises(ConfigError) as refused:
        fitted_runtime("train", cell_path(big), big, config, 1, tight, 1, 1)
    message = str(refused.value)
    assert message.startswith(f"rule train, cell {cell_path(big)}: the job needs more than the largest max_runtime")
    assert re.search(r"estimated \d+ min, \d+ MB, 1 GPU\(s\), 1 CPU\(s\)", message) and "gpu (max_runtime 240" in message
    assert "cluster.seeds_per_job" in message
    # No partition with enough memory.
    with pytest.raises(ConfigError, match="fits no partition's GPUs, memory or CPUs"):
        fitted_runtime(
            "hessian",
            cell_path(big),
            big,
            config,
            1,
            read_partitions(write_partitions(tmp_path, "partitions:\n  gpu: {max_gpu: 1, max_mem_mb: 100}\n")),
            1,
            1,
        )


def test_seeds_per_job_is_one_or_all():
    config = validate_config({**TINY, "seeds": 5, "cluster": {"seeds_per_job": 2}})
    with pytest.raises(ConfigError, match=r"'cluster.seeds_per_job': 2 with 5 seeds is not supported; give 1"):
        check_seeds_per_job(config)
    for value in (None, 1, 5, 9):
        check_seeds_per_job(validate_config({**TINY, "seeds": 5, "cluster": {"seeds_per_job": value}}))


@pytest.mark.slow
def test_paper_preset_dry_run_under_the_slurm_profile_plans_no_job_over_a_partition_limit(tmp_path):
    copy_workflow(tmp_path)
    out = snakemake(tmp_path, "-n", "--profile", "profiles/slurm", "--configfile", str(PAPER))
    limits = {p["name"]: p for p in read_partitions(str(tmp_path / "profiles" / "slurm" / "partitions.yaml"))}
    jobs = re.findall(r"\n *rule (\w+):\n(?: +.*\n)*? +resources: ([^\n]*)", out.stdout)
    torch_jobs = [(rule, dict(item.split("=", 1) for item in resources.split(", "))) for rule, resources in jobs if "gpu=1" in resources]
    counts = {}
    for rule, resources in torch_jobs:
        counts[rule] = counts.get(rule, 0) + 1
        assert int(resources["runtime"]) <= limits["gpu"]["max_runtime"], (rule, resources)
        assert int(resources["mem_mb"]) <= limits["gpu"]["max_mem_mb"], (rule, resources)
    # seeds_per_job 1: one training job per seed, one fit per curve (workflow_runs.expected_job_counts).
    assert paper()["cluster"]["seeds_per_job"] == 1
    assert counts == {rule: n for rule, n in expected_job_counts(paper()).items() if rule in counts}, counts
    # The profile's groups: the metric jobs four to a submission (each one GPU).
    metric_jobs = sum(counts[rule] for rule in ("hessian", "basin", "cka", "curve_eval"))
    assert out.stdout.count("Group job metrics") == math.ceil(metric_jobs / 4)
    assert (
        Path(tmp_path / "profiles" / "slurm" / "config.yaml").read_text().count("cluster={partitions: profiles/slurm/partitions.yaml}") == 1
    )


def test_a_group_submission_must_fit_a_partition_with_the_sum_of_its_runtimes(tmp_path):
    """The profile's metric groups ask for the sum of up to N jobs' runtimes: the N longest must
    fit a partition, else the plan is refused naming the group size that fits."""
    from lltax.runtime.partitions import check_group_runtime

    partitions = read_partitions(write_partitions(tmp_path, "partitions:\n  gpu: {max_gpu: 1, max_runtime: 100}\n"))
    requests = [("hessian", f"cell{i}", 30 + i, 1000) for i in range(6)]  # 30-35 min each
    check_group_runtime("metrics", 2, requests, partitions, 1, 1)  # 35 + 34 <= 100
    with pytest.raises(
        ConfigError, match=r"^group metrics: 4 jobs in one submission may ask for 134 min .*give --group-components metrics=2 "
    ):
        check_group_runtime("metrics", 4, requests, partitions, 1, 1)


@pytest.mark.slow
def test_groups_that_overrun_every_partition_are_refused_when_the_run_starts(tmp_path):
    """Tiny jobs ask for the 10-minute minimum each: with a 25-minute partition one or two fit,
    the profile's four metric jobs to a submission do not, and the run stops before any job.
    (Snakemake gives the workflow its group settings when a run starts, not in a dry run.)"""
    copy_workflow(tmp_path)
    parts = write_partitions(tmp_path, "partitions:\n  cpu: {max_gpu: 0, max_runtime: 25}\n")
    write_config(tmp_path, {**TINY, "cluster": {"partitions": parts}})
    groups = ["--groups", "hessian=metrics", "cka=metrics", "basin=metrics", "curve_eval=metrics", "--group-components", "metrics=4"]
    out = snakemake(tmp_path, *groups, check=False)
    assert out.returncode != 0 and "group metrics: 4 jobs in one submission may ask for 40 min" in out.stdout + out.stderr, out.stderr[
        -2000:
    ]
    assert "give --group-components metrics=2" in out.stdout + out.stderr
    assert not list(tmp_path.rglob("model.pt"))
