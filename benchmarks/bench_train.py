"""Overhead of lltax's training loop against a bare PyTorch loop on the same model, data and steps.

Both loops run the same number of SGD steps on the same tensors; the ratio of wall times
(lltax / bare) is reported per repeat, with the median. Goal: at most 1.05.

    python benchmarks/bench_train.py [--width 8] [--batch-size 64] [--epochs 3] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from lltax.models import build_model
from lltax.training.loop import train_model


def bare_loop(model, x, y, *, batch_size, learning_rate, weight_decay, epochs, seed):
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9, weight_decay=weight_decay)
    steps = len(x) // batch_size
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for step in range(steps):
            index = order[step * batch_size : (step + 1) * batch_size]
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet1d")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.samples, 1, 40, generator=generator)  # MNIST-1D shaped
    y = torch.randint(0, 10, (args.samples,), generator=generator)
    settings = dict(batch_size=args.batch_size, learning_rate=0.05, weight_decay=5e-4, epochs=args.epochs, seed=0)

    ratios = []
    for repeat in range(args.repeats + 1):  # the first round warms up allocators and caches
        timings = {}
        for name, loop in (("bare", bare_loop), ("lltax", train_model)):
            torch.manual_seed(0)
            model = build_model(args.model, args.width, 10, (1, 40))
            start = time.perf_counter()
            loop(model, x, y, **settings)
            timings[name] = time.perf_counter() - start
        if repeat > 0:
            ratios.append(timings["lltax"] / timings["bare"])
            print(f"repeat {repeat}: bare {timings['bare']:.2f}s  lltax {timings['lltax']:.2f}s  ratio {ratios[-1]:.3f}")
    print(
        f"{platform.node()} {platform.processor() or platform.machine()} torch {torch.__version__}, "
        f"{args.model} width {args.width}, batch {args.batch_size}, {args.epochs} epochs x {args.samples} samples, "
        f"{args.threads} thread(s): median ratio {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"
    )


if __name__ == "__main__":
    main()
