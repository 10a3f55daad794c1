"""Sizes a landscape or basin job cannot survive, refused when the config is read: result arrays
beyond ``memory_budget_gb`` here (every validation), an estimated run time beyond
``MAX_JOB_SECONDS`` in ``lltax.runtime.job_time`` (the workflow's planning: it needs ``lltax.runtime.cost``,
which no job imports, so editing the cost model reruns no job).
"""

from __future__ import annotations

from lltax.contract import ConfigError

# What one job can compute and hold: its estimated run time on the config's device (lltax.runtime.cost,
# the CPU's for device auto) and its result arrays (the surfaces, float64) in memory_budget_gb.
MAX_JOB_SECONDS = 7 * 24 * 3600
RESULT_ARRAYS = 8  # float64 values stored per landscape or convexity point (losses, accuracies, ratios)


# The sizes of a job a config sets, by rule: what check_job_limits bounds and names.
JOB_SIZES = {
    "landscape": ("points_1d", "points_2d", "ratio_points", "spectrum_steps", "num_samples", "test_samples"),
    "basin": ("directions", "coarse", "refine", "num_samples", "convexity_points"),
}


def _result_bytes(rule: str, section: dict) -> int:
    """Bytes of a job's result arrays: its surfaces (float64, ``RESULT_ARRAYS`` values a point)."""
    if rule == "landscape":
        points = 2 * section["points_1d"] + section["points_2d"] ** 2 + section["ratio_points"] ** 2
    else:
        points = 2 * section["directions"] + section["convexity_points"] ** 2
    return RESULT_ARRAYS * 8 * points


def check_job_memory(config: dict) -> None:
    """Every landscape and basin job's result arrays within memory_budget_gb, refused naming
    the key that costs the most and the estimate (part of every config's validation)."""
    budget = config["memory_budget_gb"] * 1e9
    for rule, keys in JOB_SIZES.items():
        section = config[rule]
        if not section["enabled"]:
            continue
        held = _result_bytes(rule, section)
        if held > budget:
            key = max(keys, key=lambda k: held - _result_bytes(rule, {**section, k: 0}))
            raise ConfigError(
                f"config key '{rule}.{key}': {section[key]} makes each {rule} job hold about {held / 1e9:.3g} GB of results "
                f"({RESULT_ARRAYS} float64 values per point), beyond memory_budget_gb {config['memory_budget_gb']:g}; lower it"
            )
