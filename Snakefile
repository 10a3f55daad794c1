# lltax workflow: train every grid cell x seed, measure landscape metrics, merge, classify, plot.
# The logic lives in the `lltax` package; every rule is one `lltax` CLI call (see README.md).
# The default experiment, only when no --configfile is given: a user's config stands on its own
# (keys it leaves out take the schema's defaults, not the demo's).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "rules/common.smk"


wildcard_constraints:
    cell=CELL_REGEX,


report: "report/workflow.rst"


if EXTERNAL:

    include: "rules/external.smk"

else:

    include: "rules/train.smk"


include: "rules/metrics.smk"


if CURVE_PAIRS:

    include: "rules/curves.smk"


if CONFIG["fge"]["enabled"]:

    include: "rules/ensembles.smk"


include: "rules/landscape.smk"
include: "rules/aggregate.smk"


# A job that fits no SLURM partition is refused before anything is submitted (dry runs too).
check_partitions()


# One run per results folder, whichever working directory it starts from (Snakemake's own
# lock is per working directory). Held until this process ends; dry runs do not take it.
onstart:
    check_local_device()
    check_partitions()
    check_contained(RESULTS)
    RESULTS_LOCK.append(hold_results_lock(RESULTS))


rule all:
    default_target: True
    input:
        rules.plots.output,
        LANDSCAPE_OUTPUTS,
        LANDSCAPE_FIGURES,
        COMPARISON_OUTPUTS,
        COMPARISON_FIGURES,
        ATLAS,
        PER_JOB_FILES,
