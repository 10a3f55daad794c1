"""The ``lltax`` subcommands and the job module of each (``lltax.cli`` runs them; the
workflow's rules and ``lltax.runtime.code_sources`` read the table). It imports only
``lltax.contract`` (which imports nothing of lltax): every module may read it."""

from lltax.contract import METRIC_JOBS

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
# A metric of the contract's table without a rule of its own: its job is lltax.jobs.<command>.
COMMANDS |= {job.command: f"lltax.jobs.{job.command.replace('-', '_')}" for job in METRIC_JOBS if job.command not in COMMANDS}
COMMAND_MODULES = tuple(COMMANDS.values())
