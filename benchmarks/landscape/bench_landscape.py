"""Points per second of landscape surfaces: lltax's evaluator against the reference's way and
against the bare forward pass of the same sample.

- ``reference loop``: per point, build the weights into a model with ``load_state_dict`` and
  run it (tomgoldstein/loss-landscape's ``crunch`` does this, over its data loader).
- ``functional loop``: ``lltax.metrics.surface.evaluate_points`` with stack 1
  (``functional_call`` on views of one flat vector per point, no state-dict copy).
- ``stacked N``: the same with N points per ``vmap``'ed forward pass.
- ``bare forward``: the model's forward pass on the sample alone, repeated once per point: the
  floor any evaluator has to pay.

Usage: python benchmarks/landscape/bench_landscape.py [--device cuda] [--widths 8 16] [--out FILE]
Writes one JSON record (machine, torch, CPU kernel path, figures) to --out and prints a table.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from datetime import UTC, datetime

import numpy as np
import torch

from lltax.data.cells import load_dataset
from lltax.metrics.directions import direction_space, random_direction
from lltax.metrics.landscape import training_sample
from lltax.metrics.surface import evaluate_points, point_state
from lltax.models import build_model


def interleaved(functions: dict, rounds: int) -> dict[str, list[float]]:
    """Wall times of each function over ``rounds`` rounds, the functions one after another in
    every round (after one warm-up call each): on a VM whose speed drifts by 2x within minutes,
    only times taken side by side compare."""

    def wall(function) -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        began = time.perf_counter()
        function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - began

    for function in functions.values():
        wall(function)
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            times[name].append(wall(function))
    return times


def measure(model, x, y, grid: list[float], stacks: list[int], rounds: int) -> dict[str, list[float]]:
    """Seconds of one surface over ``grid`` x ``grid`` each way (module docstring), per round."""
    space = direction_space(model)
    generator = torch.Generator().manual_seed(0)
    directions = [random_direction(space, generator), random_direction(space, generator)]
    splits = {"train": (x, y)}
    working = copy.deepcopy(model)
    full_state = model.state_dict()

    @torch.no_grad()
    def reference_loop():
        for a in grid:
            for b in grid:
                working.load_state_dict({**full_state, **point_state(space, directions, [a, b])})
                torch.nn.functional.cross_entropy(working(x), y).item()

    @torch.no_grad()
    def bare_forward():
        for _ in range(len(grid) ** 2):
            torch.nn.functional.cross_entropy(model(x), y).item()

    return interleaved(
        {
            "reference loop": reference_loop,
            "functional loop": lambda: evaluate_points(model, space, directions, [grid, grid], splits),
            **{f"stacked {n}": lambda n=n: evaluate_points(model, space, directions, [grid, grid], splits, stack=n) for n in stacks},
            "bare forward": bare_forward,
        },
        rounds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--model", default="resnet1d")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--side", type=int, default=11, help="points per side of the surface")
    parser.add_argument("--stacks", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds; figures are medians")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = load_dataset("mnist1d", root=args.data_dir)
    x, y = training_sample(data.x_train.to(device), data.y_train.to(device), args.samples, 0)
    grid = torch.linspace(-1, 1, args.side).tolist()
    points = args.side**2
    rows = []
    for width in args.widths:
        torch.manual_seed(0)
        model = build_model(args.model, width, data.num_classes, data.input_shape).to(device).eval()
        times = measure(model, x, y, grid, args.stacks, args.rounds)
        row = {"width": width, **{name: points / float(np.median(seconds)) for name, seconds in times.items()}}
        # The ratio that the goal is about, round by round (each from two runs side by side).
        ratios = np.asarray(times["bare forward"]) / np.asarray(times["functional loop"])
        row["functional loop / bare forward"] = {"median": float(np.median(ratios)), "min": float(ratios.min()), "max": float(ratios.max())}
        rows.append(row)
        print(
            f"width {width}: "
            + ", ".join(f"{name} {value:.1f} points/s" for name, value in row.items() if isinstance(value, float))
            + f"; functional loop / bare forward: median {row['functional loop / bare forward']['median']:.2f}"
            f" (rounds {ratios.min():.2f} .. {ratios.max():.2f})"
        )
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "threads": args.threads,
        "model": args.model,
        "samples": args.samples,
        "points": points,
        "rounds": args.rounds,
        "points_per_second": rows,
    }
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(record, handle, indent=2)


if __name__ == "__main__":
    main()
