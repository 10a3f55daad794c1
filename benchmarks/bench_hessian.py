"""The Hessian job, native backend vs PyHessian, on the same model and data sample.

Two parts:

1. How to form a Hessian-vector product, per product on one data chunk (resnet1d): PyHessian's
   graph reuse (gradient built once with create_graph, differentiated again per vector) vs
   rebuilding the gradient per product, torch.func forward-over-reverse ``jvp(grad)``,
   ``torch.func.linearize`` and several vectors at once (``is_grads_batched``). Methods
   alternate over repeats; medians are reported.
2. The whole job (top eigenvalue to 1e-4 relative, and the trace) for a 1D ResNet (resnet1d)
   and a small-width ResNet18 (32x32 random inputs, 10 classes): native (Lanczos + exact trace,
   the default for these piecewise-linear models; and Lanczos + Hutch++) vs PyHessian (power
   iteration + Hutchinson) at its default tolerance 1e-3 and tightened until its top eigenvalue
   is within 1e-4 of the reference (native Lanczos at tolerance 1e-9). Models are first fitted
   for a few SGD steps on their sample, so that the spectrum has a trained network's outliers.

Times are wall and CPU seconds of this process; with one torch thread (the default here) CPU
time is the work done, less sensitive to other load on a shared machine.

    python benchmarks/bench_hessian.py [--quick] [--threads 1] [--samples-1d 200] [--samples-2d 64]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp, linearize

from lltax.metrics.hessian import hessian_metrics
from lltax.models import build_model


def timed(function, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def make_case(name: str, width: int, num_samples: int, fit_steps: int, seed: int = 0):
    """Model (eval mode) fitted for a few steps on a fixed random sample; (model, inputs, targets)."""
    generator = torch.Generator().manual_seed(seed)
    input_shape = (1, 40) if name == "resnet1d" else (3, 32, 32)
    inputs = torch.randn(num_samples, *input_shape, generator=generator)
    targets = torch.randint(10, (num_samples,), generator=generator)
    torch.manual_seed(seed)
    model = build_model(name, width, 10, input_shape)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(fit_steps):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return model.eval(), inputs, targets


def hvp_variants(model, inputs, targets, repeats: int) -> dict[str, float]:
    """Median seconds per Hessian-vector product of each way to form one, on one chunk."""
    params = [p for p in model.parameters()]
    named = {name: p.detach() for name, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    vectors = [[torch.randn_like(p) for p in params] for _ in range(repeats)]

    def loss_of(parameters):
        return F.cross_entropy(functional_call(model, (parameters, buffers), (inputs,)), targets)

    def as_dict(vector):
        return dict(zip(named, vector))

    def rebuild(vector):
        gradient = torch.autograd.grad(F.cross_entropy(model(inputs), targets), params, create_graph=True)
        return torch.autograd.grad(gradient, params, vector)

    gradient = torch.autograd.grad(F.cross_entropy(model(inputs), targets), params, create_graph=True)
    _, linearized = linearize(grad(loss_of), named)
    batch = 8
    batched_vectors = [torch.stack([vectors[i % repeats][j] for i in range(batch)]) for j in range(len(params))]
    methods = {
        "graph reuse (create_graph once, autograd.grad per vector)": (lambda v: torch.autograd.grad(gradient, params, v, retain_graph=True), 1),
        "rebuild the gradient per product (PyHessian dataloader mode)": (rebuild, 1),
        "torch.func jvp(grad) (forward-over-reverse)": (lambda v: jvp(grad(loss_of), (named,), (as_dict(v),))[1], 1),
        "torch.func.linearize(grad), per call": (lambda v: linearized(as_dict(v)), 1),
        f"graph reuse, {batch} vectors at once (is_grads_batched)": (
            lambda v: torch.autograd.grad(gradient, params, batched_vectors, retain_graph=True, is_grads_batched=True), batch),
    }
    times: dict[str, list[float]] = {key: [] for key in methods}
    for repeat in range(repeats):
        for key, (function, count) in methods.items():
            _, _, cpu = timed(function, vectors[repeat])
            times[key].append(cpu / count)
    return {key: statistics.median(values) for key, values in times.items()}


def run_job(model, inputs, targets, **settings):
    record, wall, cpu = timed(hessian_metrics, model, inputs, targets, piecewise_linear=True, **settings)
    return record, wall, cpu


def compare(label: str, model, inputs, targets, chunk_size: int, pyhessian_tolerances: list[float], pyhessian_iterations: int) -> list[str]:
    dimension = sum(p.numel() for p in model.parameters())
    reference, _, _ = run_job(model, inputs, targets, tolerance=1e-9, max_iterations=300, trace_method="exact", chunk_size=chunk_size)
    truth = reference["top_eigenvalue"]
    rows = [
        f"\n### {label}: {dimension} parameters, {len(inputs)} samples, chunk_size {chunk_size}",
        f"reference top eigenvalue {truth:.8g} (Lanczos, error estimate {reference['eigenvalue_error']:.1e}), exact trace {reference['trace']:.6g}\n",
        "| job | top eigenvalue rel. error | trace (+- s.e.) | Hessian-vector products | wall s | CPU s |",
        "|---|---|---|---|---|---|",
    ]

    def row(name, record, wall, cpu):
        error = abs(record["top_eigenvalue"] - truth) / abs(truth)
        rows.append(
            f"| {name} | {error:.1e} | {record['trace']:.5g} +- {record['trace_error']:.2g} | {record['hvp_count']} | {wall:.2f} | {cpu:.2f} |"
        )
        print(rows[-1], flush=True)
        return error, cpu

    print("\n".join(rows), flush=True)
    native_cpu = {}
    for trace_method in ("exact", "hutchpp"):
        record, wall, cpu = run_job(model, inputs, targets, tolerance=1e-4, trace_method=trace_method, trace_probes=100, chunk_size=chunk_size)
        _, native_cpu[trace_method] = row(f"native: Lanczos tol 1e-4 + {trace_method}{' 100' if trace_method != 'exact' else ''}", record, wall, cpu)
    for tolerance in pyhessian_tolerances:
        record, wall, cpu = run_job(
            model, inputs, targets, backend="pyhessian", tolerance=tolerance, max_iterations=pyhessian_iterations,
            trace_method="hutchinson", trace_probes=100, chunk_size=chunk_size,
        )
        error, pyhessian_cpu = row(f"PyHessian: power tol {tolerance:g} + Hutchinson 100", record, wall, cpu)
        rows.append(
            f"|   ratio PyHessian / native (exact trace; Hutch++) CPU | | | | | {pyhessian_cpu / native_cpu['exact']:.1f}x; {pyhessian_cpu / native_cpu['hutchpp']:.1f}x |"
        )
        print(rows[-1], flush=True)
        if error <= 1e-4:
            break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of this script")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--width-1d", type=int, default=16)
    parser.add_argument("--samples-1d", type=int, default=200)
    parser.add_argument("--width-2d", type=int, default=4)
    parser.add_argument("--samples-2d", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7, help="repeats of each Hessian-vector product variant")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.func's internal jit.script use
    if args.quick:
        args.width_1d, args.samples_1d, args.width_2d, args.samples_2d, args.repeats = 4, 40, 2, 8, 2
    started = time.perf_counter()

    # Warm up lazy initialization (torch.func, autograd kernels) outside the timings.
    model, inputs, targets = make_case("resnet1d", 2, 8, 0)
    hessian_metrics(model, inputs, targets, trace_method="exact", piecewise_linear=True, max_iterations=30)

    model, inputs, targets = make_case("resnet1d", args.width_1d, args.samples_1d, fit_steps=30)
    print(f"## Hessian-vector product variants: resnet1d width {args.width_1d}, one chunk of {args.samples_1d} samples, median CPU ms per product\n")
    print("| method | ms per product |\n|---|---|")
    for key, seconds in hvp_variants(model, inputs, targets, args.repeats).items():
        print(f"| {key} | {1000 * seconds:.1f} |", flush=True)

    print("\n## Whole Hessian job")
    compare(f"resnet1d width {args.width_1d}", model, inputs, targets, args.samples_1d, [1e-3, 1e-4, 1e-5, 1e-6], 300)
    compare(f"resnet1d width {args.width_1d}, 4 chunks", model, inputs, targets, -(-args.samples_1d // 4), [1e-3], 300)
    model, inputs, targets = make_case("resnet18", args.width_2d, args.samples_2d, fit_steps=30)
    compare(f"resnet18 width {args.width_2d} (32x32 random inputs)", model, inputs, targets, args.samples_2d, [1e-3, 1e-4, 1e-5, 1e-6], 300)
    print(f"\ntotal {time.perf_counter() - started:.0f} s wall, torch threads {args.threads}")


if __name__ == "__main__":
    main()
