"""Jobs that fit the cluster: runtime requests capped at the partitions' limits.

The SLURM plugin sends a job to the best-fitting partition of its ``slurm-partition-config``
(profiles/slurm/partitions.yaml) whose limits the job's requests fit; a job over every
partition's ``max_runtime`` gets none and pends forever on ``PartitionTimeLimit`` (or is
refused by sbatch). Here each job's runtime request (``lltax.runtime.cost.runtime_minutes``: safety x
estimate) is capped at the largest ``max_runtime`` of the partitions that fit its GPUs, memory
and CPUs, and a job whose plain estimate (safety 1) exceeds even that, or that fits no
partition at all, is refused while the workflow is planned, naming rule, cell and numbers.
No torch here.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import Any

import yaml

from lltax.contract import ConfigError
from lltax.runtime.cost import estimate_seconds, memory_mb, runtime_minutes

INF = math.inf


def minutes(value: Any) -> float:
    """A partitions.yaml time limit in minutes: a number, or SLURM's [D-]HH:MM[:SS] / MM."""
    if value is None:
        return INF
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not match:
        raise ConfigError(f"partitions: max_runtime {value!r} is not a number of minutes or a SLURM time ([D-]HH:MM[:SS])")
    days, first, second, third = match.groups()
    if second is None and days is None:  # plain minutes
        return float(first)
    hours, mins, secs = int(first), int(second or 0), int(third or 0)
    return (int(days or 0) * 24 + hours) * 60 + mins + secs / 60


@functools.cache
def read_partitions(path: str) -> tuple[dict, ...]:
    """The partitions of a plugin partitions.yaml: [{name, max_runtime, max_mem_mb, max_gpu,
    max_cpus_per_task}] (a limit it leaves out: none; max_gpu: 0)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"config key 'cluster.partitions': cannot read {path} ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("partitions"), dict) or not data["partitions"]:
        raise ConfigError(f"config key 'cluster.partitions': {path} has no 'partitions' mapping (the SLURM plugin's format)")
    out = []
    for name, limits in data["partitions"].items():
        limits = limits or {}
        out.append(
            {
                "name": str(name),
                "max_runtime": minutes(limits.get("max_runtime")),
                "max_mem_mb": float(limits.get("max_mem_mb", INF)),
                "max_gpu": int(limits.get("max_gpu", 0)),
                "max_cpus_per_task": float(limits.get("max_cpus_per_task", limits.get("max_threads", INF))),
            }
        )
    return tuple(out)


def fits_besides_runtime(partition: dict, gpus: int, mem_mb: int, threads: int) -> bool:
    """Whether a job of these requests may go to the partition, its runtime aside (the plugin's
    rules: GPU jobs only where max_gpu >= their GPUs)."""
    if gpus and partition["max_gpu"] < gpus:
        return False
    return mem_mb <= partition["max_mem_mb"] and threads <= partition["max_cpus_per_task"]


def describe(partition: dict) -> str:
    limits = [f"{key} {partition[key]:g}" for key in ("max_runtime", "max_mem_mb", "max_cpus_per_task") if partition[key] != INF]
    limits.append(f"max_gpu {partition['max_gpu']}")
    return f"{partition['name']} ({', '.join(limits)})"


def fitted_runtime(
    rule: str,
    cell_name: str,
    cell: dict[str, Any],
    config: dict[str, Any],
    attempt: int,
    partitions: tuple[dict, ...] | None,
    gpus: int,
    threads: int,
) -> int:
    """The runtime request (minutes) of a job, capped at the largest max_runtime of the
    partitions it fits; ConfigError when it fits none or its estimate exceeds that limit."""
    request = runtime_minutes(rule, cell, config, attempt)
    if not partitions:
        return request
    mem = memory_mb(rule, cell, config)
    estimate = math.ceil(estimate_seconds(rule, cell, config) / 60)
    fitting = [p for p in partitions if fits_besides_runtime(p, gpus, mem, threads)]
    limit = max((p["max_runtime"] for p in fitting), default=0)
    if not fitting or estimate > limit:
        why = (
            "fits no partition's GPUs, memory or CPUs"
            if not fitting
            else f"needs more than the largest max_runtime of the partitions it fits ({limit:g} min)"
        )
        advice = "lower cluster.seeds_per_job (1: one seed or curve per job), " if rule in ("train", "curve_fit") else ""
        raise ConfigError(
            f"rule {rule}, cell {cell_name}: the job {why}: estimated {estimate} min, {mem} MB, {gpus} GPU(s), {threads} CPU(s); "
            f"partitions: {'; '.join(describe(p) for p in partitions)}. {advice}"
            "check cluster.tflops / gpu_check, or add a partition that fits"
        )
    return int(min(request, limit))


def check_group_runtime(
    group: str, size: int, requests: list[tuple[str, str, int, int]], partitions: tuple[dict, ...], gpus: int, threads: int
) -> None:
    """A group submission (the SLURM profile's ``groups`` and ``group-components``) runs up to
    ``size`` of its jobs one after another and asks for the sum of their runtimes and the largest
    memory. ``requests``: (rule, cell, runtime minutes, memory MB) of every job of the group's
    rules. The ``size`` longest must fit one partition's max_runtime; else ConfigError naming
    the group, the sum and the size that fits."""
    longest = sorted(requests, key=lambda request: request[2], reverse=True)[:size]
    total, mem = sum(request[2] for request in longest), max(request[3] for request in longest)
    fitting = [p for p in partitions if fits_besides_runtime(p, gpus, mem, threads)]
    limit = max((p["max_runtime"] for p in fitting), default=0)
    if total <= limit:
        return
    fits = max((k for k in range(1, size + 1) if sum(request[2] for request in longest[:k]) <= limit), default=1)
    rule, cell, runtime, _ = longest[0]
    raise ConfigError(
        f"group {group}: {size} jobs in one submission may ask for {total} min (the longest: rule {rule}, cell {cell}, "
        f"{runtime} min), more than the largest max_runtime of the partitions it fits ({limit:g} min); "
        f"give --group-components {group}={fits} (or remove the group from the profile)"
    )


def check_seeds_per_job(config: dict[str, Any]) -> None:
    """cluster.seeds_per_job: null (a cell's seeds or curves in one job), 1 (one each), or at
    least their number (the same as null); groups of other sizes are not supported."""
    value = config["cluster"].get("seeds_per_job")
    seeds = config["seeds"] if isinstance(config["seeds"], int) else len(config["seeds"])
    if value is None or value == 1 or value >= seeds:
        return
    raise ConfigError(
        f"config key 'cluster.seeds_per_job': {value} with {seeds} seeds is not supported; "
        f"give 1 (one job per seed and per curve) or null (a cell's {seeds} seeds in one job)"
    )
