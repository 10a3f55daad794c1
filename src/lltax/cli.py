"""The ``lltax`` command. Every Snakemake rule is one call of a subcommand here.

Each module in COMMAND_MODULES defines ``add_cli(subparsers)``, which registers its
subcommand(s) with ``parser.set_defaults(func=...)``; the work itself stays in the module's
importable functions.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = (
    "lltax.train",
    "lltax.metrics.evaluate",
    "lltax.metrics.hessian",
    "lltax.metrics.cka",
    "lltax.metrics.distance",
    "lltax.metrics.curves",
    "lltax.plots",
    "lltax.dataset",
    "lltax.phases",
    "lltax.landscape",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lltax", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--device" in argv:  # a job that may use CUDA: pick a free GPU before torch loads
        from lltax.gpu import pin_gpu_if_needed

        pin_gpu_if_needed(argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
