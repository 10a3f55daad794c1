"""The ``lltax`` command. Every Snakemake rule is one call of a subcommand here.

Each module in COMMANDS defines ``add_cli(subparsers)``, which registers its
subcommand(s) with ``parser.set_defaults(func=...)``; the work itself stays in the module's
importable functions.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

# Subcommand -> the module that defines it. Only the module of the command being run is
# imported: a job then pays for torch, not also for xarray, matplotlib and pyhessian.
COMMANDS = {
    "train": "lltax.train",
    "evaluate": "lltax.metrics.evaluate",
    "hessian": "lltax.metrics.hessian",
    "cka": "lltax.metrics.cka",
    "distance": "lltax.metrics.distance",
    "curve-fit": "lltax.metrics.curves",
    "curve-eval": "lltax.metrics.curves",
    "landscape": "lltax.landscape",
    "aggregate-metric": "lltax.dataset",
    "merge": "lltax.dataset",
    "aggregate": "lltax.dataset",
    "classify": "lltax.phases",
    "plot": "lltax.plots",
    "reference": "lltax.reference",
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``command`` given, only that command's module is imported."""
    parser = argparse.ArgumentParser(prog="lltax", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error instead of one line")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = [COMMANDS[command]] if command in COMMANDS else COMMAND_MODULES
    for name in modules:
        importlib.import_module(name).add_cli(subparsers)
    for subparser in subparsers.choices.values():
        subparser.add_argument(
            "--threads", type=int, default=1,
            help="torch intra- and inter-op threads (default 1); results are reproducible for a fixed value",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--device" in argv:  # a job that may use CUDA: pick a free GPU before torch loads
        from lltax.gpu import pin_gpu_if_needed

        pin_gpu_if_needed(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        _check_output_is_not_an_input(args)
        if "torch" in sys.modules:  # a job that computes with torch: threads from the arguments, not the environment
            from lltax.device import configure_torch

            logging.getLogger("lltax").info("torch runtime: %s", configure_torch(args.threads))
        return int(args.func(args) or 0)
    except (ValueError, OSError, KeyError) as error:
        # Bad input is the user's to fix: one line naming it (the traceback with --debug).
        if args.debug:
            raise
        message = str(error.args[0] if isinstance(error, KeyError) and error.args else error)
        lines = message.splitlines() or [type(error).__name__]
        print(f"lltax {args.command}: error: {lines[0]}" + (" (more with --debug)" if len(lines) > 1 else ""), file=sys.stderr)
        return 1


# The arguments that name what a command writes; everything else it is given is read.
OUTPUT_ARGUMENTS = {"classify": ("phases",), "cka": ("out", "distance_out")}


def _is_existing_path(text: str) -> bool:
    try:
        return Path(text).exists()
    except (OSError, ValueError):  # JSON settings and other long or odd strings are not paths
        return False


def _check_output_is_not_an_input(args: argparse.Namespace) -> None:
    """Refuse a command whose output path is one of its inputs (it would overwrite its own data)."""
    names = OUTPUT_ARGUMENTS.get(args.command, ("out",))
    outputs = []
    for name in names:
        value = getattr(args, name, None)
        outputs += [item for item in (value if isinstance(value, list) else [value]) if isinstance(item, str)]
    inputs = []
    for name, value in vars(args).items():
        if name in names or name == "func":
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item and _is_existing_path(item):
                inputs.append(item)
    for output in outputs:
        for item in inputs:
            if Path(output).resolve() == Path(item).resolve():
                raise ValueError(f"the output {output} is also an input of `lltax {args.command}`; write it to another path")


if __name__ == "__main__":
    sys.exit(main())
