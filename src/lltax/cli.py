"""The ``lltax`` command. Every Snakemake rule is one call of a subcommand here.

Each subcommand is a module of ``lltax.jobs`` that declares ``HELP``, the ``ARGUMENTS`` it
takes (names from this module's one vocabulary, with the help text that is its own) and
``run(args)``. The same thing has the same flag in every command: ``--checkpoints`` for model
checkpoints, ``--out`` for what a command writes, ``--settings`` for its config section, ...
Only the module of the command being run is imported: a job pays for torch, not also for
xarray, matplotlib and pyhessian.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from pathlib import Path

from lltax.commands import COMMAND_MODULES, COMMANDS  # noqa: F401  (COMMAND_MODULES: for callers)

INPUT, OUTPUT = "input", "output"


def _integer(what: str, low: int, high: int | None = None):
    """An argparse type: an integer in [low, high], or an error saying so."""
    allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be {allowed}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{what} must be {allowed}, got {value}")
        return value

    return parse


_seed = _integer("seed", 0, 2**63 - 1)  # int64 coordinates, torch's generators
_threads = _integer("threads", 1)


def _gigabytes(text: str) -> float:
    """An argparse type: a positive number of GB."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"memory budget must be a number of GB > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"memory budget must be a number of GB > 0, got {value}")
    return value


# The vocabulary: name -> (flag, argparse keywords, role). A role of INPUT or OUTPUT marks the
# paths a command reads or writes, so an output that is also an input is refused by name.
VOCABULARY: dict[str, tuple[str, dict, str | None]] = {
    "cell": (
        "--cell",
        {
            "required": True,
            "help": "grid cell path, e.g. width=16/batch_size=128/label_noise=0.0/train_fraction=1.0/learning_rate=0.1/weight_decay=0.0005",
        },
        None,
    ),
    "seeds": ("--seeds", {"nargs": "+", "type": _seed, "required": True, "help": "training seeds, integers >= 0, trained in turn"}, None),
    "model": (
        "--model",
        {"required": True, "help": "model.name: a registered model (lltax.models.MODELS) or package.module:function"},
        None,
    ),
    "dataset_settings": ("--dataset-settings", {"required": True, "help": "the config section 'dataset' as one JSON object"}, None),
    "settings": (
        "--settings",
        {
            "default": "{}",
            "help": "the command's config section as one JSON object; keys left out take the schema defaults, unknown keys are an error",
        },
        None,
    ),
    "checkpoints": (
        "--checkpoints",
        {"nargs": "+", "required": True, "metavar": "MODEL_PT", "help": "model checkpoints (<cell>/seed=S/model.pt)"},
        INPUT,
    ),
    "files": (
        "--files",
        {
            "nargs": "+",
            "required": True,
            "metavar": "FILE",
            "help": "checkpoint files trained elsewhere, one per seed (lltax.storage.foreign_checkpoints)",
        },
        INPUT,
    ),
    "checkpoint_settings": (
        "--checkpoint-settings",
        {"default": "{}", "help": "the config section 'checkpoints' as JSON (key, prefix: where the weights sit in each file)"},
        None,
    ),
    "curves": (
        "--curves",
        {"nargs": "+", "required": True, "metavar": "CURVE_PT", "help": "curve files written by curve-fit (<cell>/pair=A-B/curve.pt)"},
        INPUT,
    ),
    "landscapes": (
        "--landscapes",
        {
            "nargs": "+",
            "required": True,
            "metavar": "LANDSCAPE_NC",
            "help": "landscape files written by lltax landscape (<cell>/landscape.nc)",
        },
        INPUT,
    ),
    "dataset": ("--dataset", {"required": True, "help": "dataset.nc (lltax merge / lltax aggregate)"}, INPUT),
    "phases": ("--phases", {"required": True, "help": "phases.nc (lltax classify)"}, INPUT),
    "results_dir": ("--results-dir", {"required": True, "help": "results/<experiment> of a run"}, INPUT),
    "tables": ("--tables", {"nargs": "+", "required": True, "help": "per-metric tables written by aggregate-metric"}, INPUT),
    "config": ("--config", {"default": None, "help": "config.yaml of the run"}, INPUT),
    "config_json": (
        "--config-json",
        {"required": True, "help": "the resolved config (or its grid, seeds and curves) as canonical JSON"},
        None,
    ),
    "metric": ("--metric", {"required": True, "help": "which metric's records to read"}, None),
    "reference_dir": (
        "--reference-dir",
        {
            "default": None,
            "help": "folder with per_model.csv, per_pair.csv, curve.csv (default: ../shared/reference/yang2021 beside the repository)",
        },
        INPUT,
    ),
    "data_dir": ("--data-dir", {"default": None, "help": "dataset folder (default: the one recorded in the checkpoint)"}, None),
    "device": ("--device", {"default": "auto", "choices": ["auto", "cpu", "cuda"], "help": "auto = cuda when available"}, None),
    "memory_budget_gb": (
        "--memory-budget-gb",
        {
            "type": _gigabytes,
            "default": 30.0,  # lltax.runtime.memory.DEFAULT_BUDGET_GB, the schema's default of memory_budget_gb
            "help": "memory the job may use on its device, in GB (config key memory_budget_gb): chunks of samples shrink to fit it",
        },
        None,
    ),
    "out": ("--out", {"nargs": "+", "required": True, "help": "output file(s)"}, OUTPUT),
    "out_dir": ("--out-dir", {"nargs": "+", "required": True, "help": "output folder(s)"}, OUTPUT),
    "distance_out": (
        "--distance-out",
        {"default": None, "help": "also write the seeds' pairwise l2 distances here (distance.json)"},
        OUTPUT,
    ),
    "across_cells": (
        "--across-cells",
        {"action": "store_true", "help": "the checkpoints are of different cells of one network and dataset (landscape.compare)"},
        None,
    ),
}


def _add_command(subparsers, name: str, module) -> None:
    parser = subparsers.add_parser(name, help=module.HELP, description=module.HELP, allow_abbrev=False)
    roles: dict[str, str] = {}
    for argument, overrides in module.ARGUMENTS.items():
        flag, keywords, role = VOCABULARY[argument]
        parser.add_argument(flag, dest=argument, **{**keywords, **overrides})
        if role:
            roles[argument] = role
    parser.add_argument(
        "--threads",
        type=_threads,
        default=1,
        help="torch intra- and inter-op threads (default 1); results are reproducible for a fixed value",
    )
    parser.set_defaults(func=module.run, roles=roles)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``command`` given, only that command's module is imported."""
    parser = argparse.ArgumentParser(prog="lltax", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        help="logging level (default INFO)",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error instead of one line")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in [command] if command in COMMANDS else list(COMMANDS):
        _add_command(subparsers, name, importlib.import_module(COMMANDS[name]))
    return parser


def _paths(value) -> list[str]:
    return [str(item) for item in (value if isinstance(value, list) else [value]) if isinstance(item, (str, Path)) and str(item)]


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse outputs that are inputs of the same command, or named twice: one would overwrite the other."""
    inputs = {Path(p).resolve(): p for name, role in args.roles.items() if role == INPUT for p in _paths(getattr(args, name))}
    seen: dict[Path, str] = {}
    for name, role in args.roles.items():
        if role != OUTPUT:
            continue
        for path in _paths(getattr(args, name)):
            resolved = Path(path).resolve()
            if resolved in inputs:
                raise ValueError(f"the output {path} is also an input of `lltax {args.command}`; write it to another path")
            if resolved in seen:
                raise ValueError(f"the output {path} is named twice in `lltax {args.command}`; give each output its own path")
            seen[resolved] = path


def run(argv: list[str]) -> int:
    """Parse and run one command in this process, errors raised (for Python callers and tests);
    ``main`` is the same with errors as one line."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    check_outputs(args)
    from lltax.runtime import code_sources as sources

    with sources.command_running(command):  # the code as loaded now: what every record of this job names
        return int(args.func(args) or 0)


def _exit_on_sigterm(signum, frame) -> None:
    # SLURM's scancel and Snakemake's own shutdown send SIGTERM first: as an exit, it runs the
    # atomic writes' cleanup (no temporary file left beside an output), unlike the default.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if "--device" in argv:  # a job that may use CUDA: pick a free GPU before torch loads
        from lltax.runtime.gpu_slots import pin_gpu_if_needed

        try:
            pin_gpu_if_needed(argv)
        except ValueError as error:  # e.g. LLTAX_GPUS that is not a number
            print(f"lltax: error: {error}", file=sys.stderr)
            return 1
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        check_outputs(args)
        if "torch" in sys.modules:  # a job that computes with torch: threads from the arguments, not the environment
            from lltax.runtime.device import configure_torch

            logging.getLogger("lltax").info("torch runtime: %s", configure_torch(args.threads))
        from lltax.runtime import code_sources as sources

        with sources.command_running(command):  # the code as loaded now: what every record of this job names
            return int(args.func(args) or 0)
    except (ValueError, OSError) as error:
        # Bad input is the user's to fix: one line naming it (the traceback with --debug). Any
        # other exception is a bug in lltax and keeps its traceback.
        if args.debug:
            raise
        lines = str(error).splitlines() or [type(error).__name__]
        print(f"lltax {args.command}: error: {lines[0]}" + (" (more with --debug)" if len(lines) > 1 else ""), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
