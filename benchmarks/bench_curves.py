"""Seconds per curve-fitting epoch vs one ordinary training epoch of the same model.

Both loops see the same data (MNIST-1D-shaped: 4000 x (1, 40), 10 classes), batch size and
SGD settings; the ordinary loop is the plain one (``model(x)``, SGD on the model's own
parameters), the curve loop is ``lltax.metrics.curves.fit_curve`` (functional_call at a random
t per batch, SGD on the middle bend). Epochs of the two alternate, so that load from other
processes hits both alike; the medians over epochs are reported. Goal: ratio <= 1.3.

    python benchmarks/bench_curves.py [--model resnet1d] [--width 16] [--epochs 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from lltax.metrics.bezier import initial_middle_bend, parameters_of
from lltax.metrics.curves import fit_curve
from lltax.models import build_model

NUM_SAMPLES, INPUT_SHAPE, NUM_CLASSES = 4000, (1, 40), 10


def timed(function, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process): CPU time is less sensitive to other
    processes on a shared machine; with one torch thread it is the work done."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def plain_epoch(model, inputs, targets, optimizer, batch_size, generator) -> None:
    model.train()
    order = torch.randperm(len(inputs), generator=generator)
    for batch in range(len(inputs) // batch_size):
        index = order[batch * batch_size : (batch + 1) * batch_size]
        loss = F.cross_entropy(model(inputs[index]), targets[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet1d")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs of each loop (after one warm-up epoch each)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(NUM_SAMPLES, *INPUT_SHAPE, generator=generator)
    targets = torch.randint(0, NUM_CLASSES, (NUM_SAMPLES,), generator=generator)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(build_model(args.model, args.width, NUM_CLASSES, INPUT_SHAPE))
    start, end = parameters_of(models[0]), parameters_of(models[1])
    middle = initial_middle_bend(start, end, init="midpoint")
    plain_model = build_model(args.model, args.width, NUM_CLASSES, INPUT_SHAPE)
    optimizer = torch.optim.SGD(plain_model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    times = {"ordinary": [], "curve": []}
    for epoch in range(args.epochs + 1):
        _, plain_wall, plain_cpu = timed(plain_epoch, plain_model, inputs, targets, optimizer, args.batch_size, generator)
        # One-epoch fits from the current middle bend: a fit epoch exactly as in a long fit.
        (bends, _, _), curve_wall, curve_cpu = timed(
            fit_curve, models[0], start, end, middle, inputs, targets, epochs=1, batch_size=args.batch_size, seed=epoch
        )
        middle = bends[1]
        if epoch > 0:  # the first epoch of each warms up allocators and kernels
            times["ordinary"].append((plain_wall, plain_cpu))
            times["curve"].append((curve_wall, curve_cpu))

    print(
        f"model {args.model} width {args.width}, {NUM_SAMPLES} x {INPUT_SHAPE}, batch {args.batch_size}, torch threads {torch.get_num_threads()}"
    )
    medians = {}
    for name, pairs in times.items():
        medians[name] = [statistics.median(column) for column in zip(*pairs)]
        print(
            f"{name:8s} epoch: median wall {medians[name][0]:.3f} s, CPU {medians[name][1]:.3f} s  (wall: {', '.join(f'{w:.3f}' for w, _ in pairs)})"
        )
    print(
        f"ratio curve / ordinary: wall {medians['curve'][0] / medians['ordinary'][0]:.2f}, "
        f"CPU {medians['curve'][1] / medians['ordinary'][1]:.2f} (goal <= 1.3)"
    )


if __name__ == "__main__":
    main()
