"""The SLURM profile on a real one-node SLURM cluster (scripts/slurm_cluster.sh).

Skipped, with the reason, where the machine cannot run the cluster (not root, or SLURM,
munge and MariaDB not installed: `scripts/slurm_cluster.sh install`). Every sbatch call goes
through a logging shim, so the tests see exactly what was submitted; sacct (slurmdbd +
MariaDB) says how each job ended.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr
import yaml
from workflow_runs import TINY, all_jobs, copy_workflow, making, planned_jobs, rerun_counts, write_config

from lltax.config.grid import cell_path, expand_grid
from lltax.config.schema import validate_config

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm_cluster.sh"
pytestmark = pytest.mark.slow

GRID = {"width": [2, 4], "batch_size": [64], "train_fraction": [0.1], "learning_rate": [0.05]}
CONFIG = {**TINY, "grid": GRID, "landscape": {"enabled": False}}
SHIM = """#!/bin/sh
out=$(/usr/bin/sbatch "$@"); rc=$?
printf '%s\\t%s\\n' "$out" "$*" >> "${LLTAX_SBATCH_LOG:?}"
printf '%s\\n' "$out"
exit $rc
"""


def start_cluster(tmp_path_factory, *options):
    """A fresh one-node cluster (the script stops the one before); its state folder."""
    check = subprocess.run(["bash", str(SCRIPT), "check"], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip(f"no SLURM cluster on this machine: {check.stdout.strip() or check.stderr.strip()}")
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(["bash", str(SCRIPT), "start", str(state), *options], capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, f"the cluster did not come up:\n{started.stdout}\n{started.stderr}"
    return state


def client_env(tmp_path_factory):
    """PATH with the logging sbatch shim first; no SLURM_CONF (the config is in /etc/slurm)."""
    shim = tmp_path_factory.mktemp("shim")
    (shim / "sbatch").write_text(SHIM)
    (shim / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SLURM_CONF", None)
    return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """With accounting (slurmdbd + MariaDB): sacct tells how every job ended."""
    state = start_cluster(tmp_path_factory)
    yield client_env(tmp_path_factory)
    subprocess.run(["bash", str(SCRIPT), "stop", str(state)], capture_output=True)


@pytest.fixture
def cluster_without_accounting(tmp_path_factory):
    """No accounting database: sacct fails ("accounting storage is disabled"), squeue works."""
    state = start_cluster(tmp_path_factory, "--no-accounting")
    env = client_env(tmp_path_factory)
    assert subprocess.run(["sacct", "-n"], capture_output=True, text=True, env=env).returncode != 0
    yield env
    subprocess.run(["bash", str(SCRIPT), "stop", str(state)], capture_output=True)


def run_profile(workdir, env, *args, timeout=420):
    """snakemake through profiles/slurm, with quick status checks for a small test grid."""
    env = {**env, "LLTAX_SBATCH_LOG": str(workdir / "sbatch.log")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--profile",
            "profiles/slurm",
            "--slurm-init-seconds-before-status-checks",
            "3",
            "--seconds-between-status-checks",
            "3",
            "--latency-wait",
            "5",
            *args,
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def submissions(workdir):
    """[(job id, sbatch arguments)] of every sbatch call of this workdir's runs."""
    log = workdir / "sbatch.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [(line.split("\t", 1)[0].split(";")[0], line.split("\t", 1)[1]) for line in lines]


def accounting(job_ids, env, limits=False):
    """{job id: (partition, state, AllocTRES, comment)} from sacct; with limits, also the
    time limit in minutes."""
    fields = "JobID,Partition,State,AllocTRES,Comment" + (",TimelimitRaw" if limits else "")
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(job_ids), "-o", fields],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    rows = [line.split("|") for line in out.splitlines() if line]
    return {row[0]: tuple(row[1:]) for row in rows}


def rule_of(comment):
    """The rule of a job's comment; a group of metric jobs (the profile's `metrics`): 'metrics'."""
    if comment.startswith("rule_metrics_"):
        return "metrics"
    return re.match(r"rule_([a-z_]+?)_wildcards", comment).group(1)


def partition_limits():
    """{partition: max_runtime in minutes} of the profile's partitions.yaml."""
    partitions = yaml.safe_load((REPO / "profiles" / "slurm" / "partitions.yaml").read_text())["partitions"]
    return {name: limits["max_runtime"] for name, limits in partitions.items()}


def test_tiny_grid_through_the_profile_equals_a_local_run(cluster, tmp_path):
    """seeds_per_job 1 and the profile's grouped metric jobs: one job per seed and per curve,
    the 8 metric jobs in 2 submissions, every job within its partition's max_runtime."""
    workdir, local = tmp_path / "slurm", tmp_path / "local"
    config = {**CONFIG, "cluster": {"seeds_per_job": 1}}
    for folder in (workdir, local):
        folder.mkdir()
        copy_workflow(folder)
        write_config(folder, config)
    # 2 cells x 2 seeds: train per seed (4), curve_fit per curve (2 cells x 1 pair), and the
    # 2 x 4 metric jobs (hessian, basin, cka (+ distance), curve_eval) four to a submission.
    remote = {"train": 4, "curve_fit": 2, "metrics": 2}

    # The local run to compare with, at the same time (the cluster's jobs mostly wait on SLURM).
    local_log = (tmp_path / "local.log").open("w")
    here = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1"], cwd=local, env=cluster, stdout=local_log, stderr=local_log)
    result = run_profile(workdir, cluster)
    assert result.returncode == 0, result.stderr[-6000:]

    jobs = submissions(workdir)
    # One sbatch per job or group, nothing local, no retries.
    assert len(jobs) == sum(remote.values()), ([arguments.split("--comment ")[1].split()[0] for _, arguments in jobs], remote)
    ended = accounting([job_id for job_id, _ in jobs], cluster, limits=True)
    assert {state for _, state, _, _, _ in ended.values()} == {"COMPLETED"}, ended
    by_rule = {}
    limits = partition_limits()
    for partition, _, tres, comment, minutes in ended.values():
        by_rule[rule_of(comment)] = by_rule.get(rule_of(comment), 0) + 1
        assert partition == "cpu" and "gpu" not in tres, (partition, tres)  # device: cpu
        assert 0 < int(minutes) <= limits[partition], (comment, minutes, limits)
    assert by_rule == remote
    for _, arguments in jobs:
        assert "--gpus" not in arguments and re.search(r"--cpus-per-task=\d+ ", arguments), arguments

    here.wait(timeout=600)
    local_log.close()
    assert here.returncode == 0, (tmp_path / "local.log").read_text()[-3000:]
    with xr.open_dataset(workdir / "results/tiny/dataset.nc") as on_slurm, xr.open_dataset(local / "results/tiny/dataset.nc") as here:
        # Every measurement bit for bit; only the clock differs.
        xr.testing.assert_equal(on_slurm.drop_vars("train_wall_time"), here.drop_vars("train_wall_time"))

    # With device cuda the grouped metric jobs ask for one GPU per group, not one per job. This
    # machine has no CUDA (the node's GPUs are files): the jobs fail, what counts is the request.
    # The models stay (mtime trigger only); the metrics' records are made again.
    write_config(workdir, {**config, "device": "cuda"})
    for pattern in ("hessian.json", "basin.json", "cka.json", "distance.json", "curve_eval.json"):
        for path in (workdir / "results").rglob(pattern):
            path.unlink()
    before = len(jobs)
    run_profile(workdir, cluster, "--rerun-triggers", "mtime", "--retries", "0", "--until", "hessian", "basin", "cka", "curve_eval")
    groups = submissions(workdir)[before:]
    assert len(groups) == 2, groups
    for job_id, arguments in groups:
        assert re.search(r"--gpus=1\b", arguments) and "-p gpu" in arguments and "rule_metrics_" in arguments, arguments
        partition, _, tres, _, minutes = accounting([job_id], cluster, limits=True)[job_id]
        assert partition == "gpu" and "gres/gpu=1" in tres and int(minutes) <= limits["gpu"], (partition, tres, minutes)


def test_gpu_jobs_ask_for_exactly_one_gpu(cluster, tmp_path):
    """With device: cuda every torch job asks for one GPU on a GPU partition. This machine has
    none (the node's GPUs are files), so the training job fails: what counts is the request."""
    copy_workflow(tmp_path)
    write_config(tmp_path, {**CONFIG, "device": "cuda", "grid": {**GRID, "width": [2]}, "seeds": 1, "curves": {"enabled": False}})
    result = run_profile(tmp_path, cluster, "--until", "train", "--retries", "0")
    assert result.returncode != 0  # no CUDA here
    jobs = submissions(tmp_path)
    assert len(jobs) == 1
    job_id, arguments = jobs[0]
    assert re.search(r"--gpus=1\b", arguments) and "-p gpu" in arguments, arguments
    partition, state, tres, _ = accounting([job_id], cluster)[job_id]
    assert partition == "gpu" and "gres/gpu=1" in tres and state == "FAILED", (partition, tres, state)


def test_a_cancelled_training_job_reruns_alone_with_its_dependants(cluster_without_accounting, tmp_path):
    """On a cluster without accounting (the profile's squeue status checks): a cell's training
    job cancelled in its second seed is seen as failed, leaves nothing partial, and the rerun
    submits only it and what depends on it, restoring the finished first seed from its snapshot
    instead of training it again."""
    cluster = cluster_without_accounting
    copy_workflow(tmp_path)
    # Long enough training (~10 s a seed) to be caught running.
    # snapshot_minutes 0: a snapshot after every epoch, so seed 1 has one soon after it starts.
    config = {**CONFIG, "grid": {**GRID, "width": [2]}, "train": {"epochs": 100, "snapshot_minutes": 0}}
    write_config(tmp_path, config)
    env = {**cluster, "LLTAX_SBATCH_LOG": str(tmp_path / "sbatch.log")}
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--profile",
            "profiles/slurm",
            "--slurm-init-seconds-before-status-checks",
            "3",
            "--seconds-between-status-checks",
            "3",
            "--latency-wait",
            "5",
            "--retries",
            "0",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    cell = cell_path(expand_grid(validate_config({**config})["grid"])[0])
    cell_dir = tmp_path / "results" / "tiny" / cell
    cancelled = None
    deadline = time.monotonic() + 180
    while cancelled is None and time.monotonic() < deadline:
        # The cell's job is into seed 1 once seed 1 has a snapshot (seed 0 is finished then).
        if (cell_dir / "seed=1" / "train_snapshot.pt").exists():
            queue = subprocess.run(["squeue", "-h", "-o", "%i|%T|%k"], capture_output=True, text=True, env=cluster).stdout
            for line in queue.splitlines():
                job_id, state, comment = line.split("|", 2)
                if state == "RUNNING" and comment.startswith("rule_train_"):
                    subprocess.run(["scancel", job_id], check=True, env=cluster)
                    cancelled = job_id
        time.sleep(0.3)
    output, _ = run.communicate(timeout=420)
    assert cancelled, "never saw the training job running in its second seed"
    assert run.returncode != 0, output[-3000:]
    assert f"SLURM-job '{cancelled}' failed" in output, output[-3000:]

    for seed in (0, 1):
        seed_dir = cell_dir / f"seed={seed}"
        assert not (seed_dir / "model.pt").exists() and not (seed_dir / "train.json").exists()
        # At most the resume snapshot of a finished epoch, never a half-written file under an
        # output's name (a SIGKILL mid-write may leave a hidden .tmp; the next write removes it).
        names = {path.name for path in seed_dir.iterdir()}
        assert {name for name in names if not (name.startswith(".") and name.endswith(".tmp"))} <= {"train_snapshot.pt"}, names
    assert (cell_dir / "seed=0" / "train_snapshot.pt").exists()  # the finished seed's work is kept
    # Only the cancelled job and what depends on it: the cell's metrics, curve and the tables.
    jobs = all_jobs(tmp_path)
    assert planned_jobs(tmp_path) == rerun_counts(jobs, making(jobs, f"results/tiny/{cell}/seed=1/model.pt"))
    before = len(submissions(tmp_path))
    rerun = run_profile(tmp_path, cluster)
    assert rerun.returncode == 0, rerun.stderr[-6000:]
    rerun_jobs = submissions(tmp_path)[before:]
    assert len(rerun_jobs) == 3, rerun_jobs  # train, curve_fit, and one group of hessian, basin, cka, curve_eval
    train_log = (tmp_path / "results" / "tiny" / "logs" / "train" / f"{cell}.log").read_text()
    assert "resuming from the snapshot after epoch 100 of 100" in train_log  # seed 0: restored, not retrained
    for seed in (0, 1):
        assert (cell_dir / f"seed={seed}" / "model.pt").exists() and not (cell_dir / f"seed={seed}" / "train_snapshot.pt").exists()
