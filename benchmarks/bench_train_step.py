"""The training step before and after the GPU fast path (issue 26), interleaved on one machine.

"before" is lltax's step as of commit b9ec5eb, ported here: the SGD update one parameter at a
time (a few aten ops per tensor) and, with augmentation, each step's crop/flip numbers drawn on
the CPU generator and copied to the device (a host-device synchronization per step on a GPU).
"after" is ``lltax.training.loop.train_model`` now: one ``torch._foreach_*`` kernel per update operation
and every draw of an epoch made before it and moved at once. Both run the same steps on the
same data and, in fp32 on the CPU, end with bit-identical parameters (checked every run).

Reported per model: ms per step (median over interleaved rounds, and the per-round ratio) and
aten ops launched per step (``torch.profiler``, nested calls counted): on a GPU each top-level
op is a kernel launch the CPU must issue, so the op count is what bounds a small model there.

    python benchmarks/bench_train_step.py [--rounds 5] [--steps 20] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from lltax.data.augment import augment_batch
from lltax.models import build_model
from lltax.training.loop import train_model


class LoopSGD:
    """lltax.training.sgd.SGD as of b9ec5eb: one parameter at a time."""

    def __init__(self, params, lr, momentum, weight_decay):
        self.params, self.lr, self.momentum, self.weight_decay = list(params), lr, momentum, weight_decay
        self.buffers = [None] * len(self.params)

    @torch.no_grad()
    def step(self):
        for i, param in enumerate(self.params):
            grad = param.grad.add(param, alpha=self.weight_decay)
            if self.buffers[i] is None:
                self.buffers[i] = torch.clone(grad).detach()
            else:
                self.buffers[i].mul_(self.momentum).add_(grad)
            param.add_(self.buffers[i], alpha=-self.lr)


def before_epoch(model, x, y, *, batch_size, learning_rate, weight_decay, seed, augment, steps):
    """The loop of b9ec5eb's train_model for one epoch (draws per step)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = LoopSGD(model.parameters(), learning_rate, 0.9, weight_decay)
    model.train()
    order = torch.randperm(len(x), generator=generator).to(x.device)
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for step in range(steps):
        index = order[step * batch_size : (step + 1) * batch_size]
        inputs, targets = x[index], y[index]
        if augment:
            inputs = augment_batch(inputs, generator)
        logits = model(inputs)
        loss = F.cross_entropy(logits, targets)
        for p in model.parameters():
            p.grad = None
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()
        correct += (logits.detach().argmax(dim=1) == targets).sum()
    return loss_sum.item(), correct.item()


def after_epoch(model, x, y, *, batch_size, learning_rate, weight_decay, seed, augment, steps):
    train_model(
        model, x[: steps * batch_size], y[: steps * batch_size],
        batch_size=batch_size, learning_rate=learning_rate, weight_decay=weight_decay, epochs=1, seed=seed, augment=augment,
    )  # fmt: skip


def ops_per_step(loop, model, x, y, settings) -> dict:
    """aten ops per step: top-level (called from Python: on a GPU, each is one dispatch and its
    kernel launches) and all (nested calls counted; on the CPU a ``_foreach`` op runs as
    per-tensor ops inside it, so this count grows where the GPU's falls)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loop(model, x, y, **settings)
    aten = [event for event in prof.events() if event.name.startswith("aten::")]
    top = [event for event in aten if event.cpu_parent is None or not event.cpu_parent.name.startswith("aten::")]
    return {"top_level": len(top) / settings["steps"], "all": len(aten) / settings["steps"]}


def case(name: str, width: int, input_shape: tuple, batch_size: int, augment: bool, rounds: int, steps: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(steps * batch_size, *input_shape, generator=generator)
    y = torch.randint(0, 10, (len(x),), generator=generator)
    settings = dict(batch_size=batch_size, learning_rate=0.05, weight_decay=5e-4, seed=0, augment=augment, steps=steps)
    loops = {"before": before_epoch, "after": after_epoch}

    def fresh():
        torch.manual_seed(0)
        return build_model(name, width, 10, input_shape)

    models = {key: fresh() for key in loops}
    for key, loop in loops.items():
        loop(models[key], x, y, **settings)
    identical = all(torch.equal(a, b) for a, b in zip(models["before"].parameters(), models["after"].parameters()))
    ops = {key: ops_per_step(loop, fresh(), x, y, settings) for key, loop in loops.items()}
    timings = {key: [] for key in loops}
    for _ in range(rounds):  # interleaved: the machine's drift hits both alike
        for key, loop in loops.items():
            model = fresh()
            start = time.perf_counter()
            loop(model, x, y, **settings)
            timings[key].append(1000 * (time.perf_counter() - start) / steps)
    ratios = [a / b for a, b in zip(timings["after"], timings["before"])]
    return {
        "model": name, "width": width, "batch_size": batch_size, "augment": augment, "steps": steps,
        "bit_identical": identical,
        "ms_per_step": {key: statistics.median(values) for key, values in timings.items()},
        "ratio_after_before": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)},
        "aten_ops_per_step": ops,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [
        case("resnet1d", 8, (1, 40), 64, False, args.rounds, args.steps),
        case("resnet18", 4, (3, 32, 32), 32, True, args.rounds, args.steps),
    ]
    record = {
        "machine": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "threads": args.threads,
        "date": time.strftime("%Y-%m-%d"),
        "cases": cases,
    }
    text = json.dumps(record, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
