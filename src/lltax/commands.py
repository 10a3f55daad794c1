"""The ``lltax`` subcommands and the job module of each (``lltax.cli`` runs them; the
workflow's rules and ``lltax.runtime.code_sources`` read the table). No imports: every module may read it."""

# Subcommand -> the job module that runs it.
COMMANDS = {
    "train": "lltax.jobs.train",
    "import": "lltax.jobs.import_checkpoints",
    "evaluate": "lltax.jobs.evaluate",
    "hessian": "lltax.jobs.hessian",
    "basin": "lltax.jobs.basin",
    "cka": "lltax.jobs.cka",
    "distance": "lltax.jobs.distance",
    "curve-fit": "lltax.jobs.curve_fit",
    "curve-eval": "lltax.jobs.curve_eval",
    "landscape": "lltax.jobs.landscape",
    "landscape-figure": "lltax.jobs.landscape_figure",
    "atlas": "lltax.jobs.atlas",
    "fge": "lltax.jobs.fge",
    "aggregate-metric": "lltax.jobs.aggregate_metric",
    "merge": "lltax.jobs.merge",
    "aggregate": "lltax.jobs.aggregate",
    "classify": "lltax.jobs.classify",
    "plot": "lltax.jobs.plot",
    "reference": "lltax.jobs.reference",
    "diagnose": "lltax.jobs.diagnose",
}
COMMAND_MODULES = tuple(COMMANDS.values())
