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

3. The default native job against PyHessian used directly, in its single-batch mode (one
   gradient graph reused for every product: PyHessian at its best), both with the defaults the
   paper used (tol 1e-3) and tightened, on resnet1d, resnet18, VGG11 (widths 2, 4) and an MLP.

    python benchmarks/bench_hessian.py [--quick] [--threads 1] [--samples-1d 200] [--samples-2d 64] [--only-direct]
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
        "graph reuse (create_graph once, autograd.grad per vector)": (
            lambda v: torch.autograd.grad(gradient, params, v, retain_graph=True),
            1,
        ),
        "rebuild the gradient per product (PyHessian dataloader mode)": (rebuild, 1),
        "torch.func jvp(grad) (forward-over-reverse)": (lambda v: jvp(grad(loss_of), (named,), (as_dict(v),))[1], 1),
        "torch.func.linearize(grad), per call": (lambda v: linearized(as_dict(v)), 1),
        f"graph reuse, {batch} vectors at once (is_grads_batched)": (
            lambda v: torch.autograd.grad(gradient, params, batched_vectors, retain_graph=True, is_grads_batched=True),
            batch,
        ),
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
        record, wall, cpu = run_job(
            model, inputs, targets, tolerance=1e-4, trace_method=trace_method, trace_probes=100, chunk_size=chunk_size
        )
        _, native_cpu[trace_method] = row(
            f"native: Lanczos tol 1e-4 + {trace_method}{' 100' if trace_method != 'exact' else ''}", record, wall, cpu
        )
    for tolerance in pyhessian_tolerances:
        record, wall, cpu = run_job(
            model,
            inputs,
            targets,
            backend="pyhessian",
            tolerance=tolerance,
            max_iterations=pyhessian_iterations,
            trace_method="hutchinson",
            trace_probes=100,
            chunk_size=chunk_size,
        )
        error, pyhessian_cpu = row(f"PyHessian: power tol {tolerance:g} + Hutchinson 100", record, wall, cpu)
        rows.append(
            f"|   ratio PyHessian / native (exact trace; Hutch++) CPU | | | | | {pyhessian_cpu / native_cpu['exact']:.1f}x; {pyhessian_cpu / native_cpu['hutchpp']:.1f}x |"
        )
        print(rows[-1], flush=True)
        if error <= 1e-4:
            break
    return rows


def pyhessian_direct(
    model, inputs, targets, *, tolerance: float, max_iterations: int, trace_probes: int, trace_tolerance: float, seed: int = 0
):
    """PyHessian used directly, at its best: single-batch mode (``data=``), which builds the
    gradient graph once and reuses it for every product. Returns (top eigenvalue, trace mean,
    trace s.e., products). ``trace_tolerance`` -inf = exactly ``trace_probes`` probes; the
    paper used PyHessian's defaults (tol 1e-3 for both, at most 100 iterations each)."""
    import importlib

    import numpy as np

    module = importlib.import_module("pyhessian.hessian")  # the module (the package re-exports the class under that name)

    count = {"products": 0}
    original = module.hessian_vector_product

    def counting(*args, **kwargs):
        count["products"] += 1
        return original(*args, **kwargs)

    module.hessian_vector_product = counting
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
            torch.manual_seed(seed)
            computer = module.hessian(model.eval(), torch.nn.CrossEntropyLoss(), data=(inputs, targets), cuda=False)
            eigenvalues, _ = computer.eigenvalues(maxIter=max_iterations, tol=tolerance, top_n=1)
            samples = np.asarray(computer.trace(maxIter=trace_probes, tol=trace_tolerance), dtype=np.float64)
    finally:
        module.hessian_vector_product = original
        model.zero_grad(set_to_none=True)
    error = samples.std(ddof=1) / np.sqrt(len(samples)) if len(samples) > 1 else float("nan")
    return float(eigenvalues[0]), float(samples.mean()), float(error), count["products"]


def compare_direct(label: str, model, inputs, targets) -> list[str]:
    """Default native job vs PyHessian used directly (as the paper did, and at its best)."""
    dimension = sum(p.numel() for p in model.parameters())
    reference, _, _ = run_job(model, inputs, targets, tolerance=1e-9, max_iterations=300, trace_method="exact", chunk_size=len(inputs))
    truth = reference["top_eigenvalue"]
    rows = [
        f"\n### {label}: {dimension} parameters, {len(inputs)} samples (one batch)",
        f"reference top eigenvalue {truth:.8g}, exact trace {reference['trace']:.6g}\n",
        "| job | top eigenvalue rel. error | trace (+- s.e.) | products | CPU s | PyHessian / native CPU |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(rows), flush=True)
    record, _, native_cpu = run_job(model, inputs, targets, tolerance=1e-4, trace_method="exact", chunk_size=len(inputs))
    rows.append(
        f"| native default: Lanczos 1e-4, 2 starts + exact trace | {abs(record['top_eigenvalue'] - truth) / truth:.1e} | {record['trace']:.5g} (exact) | {record['hvp_count']} | {native_cpu:.2f} | |"
    )
    print(rows[-1], flush=True)
    record, _, native_hutchpp = run_job(
        model, inputs, targets, tolerance=1e-4, trace_method="hutchpp", trace_probes=100, chunk_size=len(inputs)
    )
    rows.append(
        f"| native: Lanczos 1e-4, 2 starts + Hutch++ 100 | {abs(record['top_eigenvalue'] - truth) / truth:.1e} | {record['trace']:.5g} +- {record['trace_error']:.2g} | {record['hvp_count']} | {native_hutchpp:.2f} | |"
    )
    print(rows[-1], flush=True)
    cases = [
        ("PyHessian direct, as the paper: defaults (eig tol 1e-3, trace tol 1e-3)", 1e-3, 100, 100, 1e-3),
        ("PyHessian direct, at its best: eig tol 1e-5, trace 100 probes", 1e-5, 300, 100, float("-inf")),
    ]
    for name, tolerance, iterations, probes, trace_tolerance in cases:
        (top, trace, trace_error, products), _, cpu = timed(
            pyhessian_direct,
            model,
            inputs,
            targets,
            tolerance=tolerance,
            max_iterations=iterations,
            trace_probes=probes,
            trace_tolerance=trace_tolerance,
        )
        rows.append(
            f"| {name} | {abs(top - truth) / truth:.1e} | {trace:.5g} +- {trace_error:.2g} | {products} | {cpu:.2f} | {cpu / native_cpu:.1f}x (vs Hutch++: {cpu / native_hutchpp:.1f}x) |"
        )
        print(rows[-1], flush=True)
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
    parser.add_argument("--skip-direct", action="store_true", help="leave out the comparison with PyHessian used directly")
    parser.add_argument("--only-direct", action="store_true", help="only the comparison with PyHessian used directly")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.func's internal jit.script use
    if args.quick:
        args.width_1d, args.samples_1d, args.width_2d, args.samples_2d, args.repeats = 4, 40, 2, 8, 2
    started = time.perf_counter()

    # Warm up lazy initialization (torch.func, autograd kernels) outside the timings.
    model, inputs, targets = make_case("resnet1d", 2, 8, 0)
    hessian_metrics(model, inputs, targets, trace_method="exact", piecewise_linear=True, max_iterations=30)

    if not args.only_direct:
        model, inputs, targets = make_case("resnet1d", args.width_1d, args.samples_1d, fit_steps=30)
        print(
            f"## Hessian-vector product variants: resnet1d width {args.width_1d}, one chunk of {args.samples_1d} samples, median CPU ms per product\n"
        )
        print("| method | ms per product |\n|---|---|")
        for key, seconds in hvp_variants(model, inputs, targets, args.repeats).items():
            print(f"| {key} | {1000 * seconds:.1f} |", flush=True)

        print("\n## Whole Hessian job (PyHessian through lltax's adapter: gradient rebuilt per product)")
        compare(f"resnet1d width {args.width_1d}", model, inputs, targets, args.samples_1d, [1e-3, 1e-4, 1e-5, 1e-6], 300)
        compare(f"resnet1d width {args.width_1d}, 4 chunks", model, inputs, targets, -(-args.samples_1d // 4), [1e-3], 300)
        model, inputs, targets = make_case("resnet18", args.width_2d, args.samples_2d, fit_steps=30)
        compare(
            f"resnet18 width {args.width_2d} (32x32 random inputs)", model, inputs, targets, args.samples_2d, [1e-3, 1e-4, 1e-5, 1e-6], 300
        )
    if not args.skip_direct:
        print("\n## Against PyHessian used directly (single-batch mode: one gradient graph reused)")
        cases = [("resnet1d", args.width_1d, args.samples_1d, (1, 40)), ("resnet18", args.width_2d, args.samples_2d, (3, 32, 32))]
        cases += [("vgg11", width, args.samples_2d, (3, 32, 32)) for width in (2, 4)] + [("mlp", 32, args.samples_1d, (1, 40))]
        for name, width, samples, _ in cases[: 2 if args.quick else None]:
            model, inputs, targets = make_case(name, width, samples, fit_steps=30)
            compare_direct(f"{name} width {width}", model, inputs, targets)
    print(f"\ntotal {time.perf_counter() - started:.0f} s wall, torch threads {args.threads}")


if __name__ == "__main__":
    main()
