# lltax workflow: train every grid cell x seed, measure landscape metrics, merge, classify, plot.
# The logic lives in the `lltax` package; every rule is one `lltax` CLI call (see README.md).
from pathlib import Path

from lltax.config import CELL_REGEX, canonical_json, cell_path, expand_grid, seed_pairs, validate_config

configfile: "config.yaml"


# Schema + lltax's own checks; a bad config stops here, before any job runs.
CONFIG = validate_config(config)
RESULTS = f"{CONFIG['results_dir']}/{CONFIG['experiment']}"
CELLS = [cell_path(cell) for cell in expand_grid(CONFIG["grid"])]
SEEDS = CONFIG["seeds"]
CURVE_PAIRS = seed_pairs(SEEDS, CONFIG["curves"]["pairs"]) if CONFIG["curves"]["enabled"] else []
SRC = Path(workflow.basedir) / "src" / "lltax"
USE_GPU = CONFIG["device"] == "cuda"


def section(name, *, drop=()):
    """A config section as one canonical JSON string: key order cannot trigger reruns."""
    return canonical_json({k: v for k, v in CONFIG[name].items() if k not in drop})


wildcard_constraints:
    cell=CELL_REGEX,
    seed=r"\d+",
    a=r"\d+",
    b=r"\d+",


report: "report/workflow.rst"


include: "rules/train.smk"
include: "rules/metrics.smk"
include: "rules/curves.smk"
include: "rules/landscape.smk"
include: "rules/aggregate.smk"


rule all:
    default_target: True
    input:
        rules.plots.output,
        LANDSCAPE_OUTPUTS,
