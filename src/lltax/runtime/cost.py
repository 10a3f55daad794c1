"""What a job costs: FLOPs, steps, and the runtime and memory a scheduler should grant it.

The workflow turns these estimates into each job's ``runtime`` (minutes) and ``mem_mb``
resources, so a SLURM job for a wide model at batch size 16 asks for more time than one for a
narrow model at batch size 1024 (their costs differ ~25x), and a retry after a timeout asks for
twice as much. No torch here: the Snakefile calls this for every job when it builds the DAG.

Forward FLOPs per example of the registered models are exact polynomials in the width k
(checked against ``torch.utils.flop_counter`` in tests/test_cost.py); a model given by import
path is assumed to cost what ``resnet18`` costs at its width (say so with ``cluster.tflops`` if
it is far off). Throughput defaults are estimates (config section ``cluster``).
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

from lltax.config.grid import seed_pairs
from lltax.contract import DATASET_SIZES, TEST_SIZES, VOCABULARY_SIZES, resnet1d_variant
from lltax.runtime.memory import (
    DEFAULT_BUDGET_GB,
    GB,
    VALUE_BYTES,
    activation_elements,
    forward_batch,
    held_bytes,
    hessian_bytes,
    hessian_chunks,
    hvp_bytes,
    parameter_estimate,
    points_per_pass,
    training_bytes,
)

# Forward FLOPs per example = (a k^2 + b k) x input size / reference input size; exact for the
# reference inputs (3x32x32 images, MNIST-1D's 40 points), within 3 % for one-channel images.
FORWARD_FLOPS = {  # name: (a, b, reference input elements per channel)
    "resnet18": (270_336, 55_456, 32 * 32),
    "vgg11": (73_728, 55_456, 32 * 32),
    "resnet1d": (2_880, 320, 40),
}
# Backward costs about twice the forward: a training step is ~3 forward passes, a
# Hessian-vector product (double backward) ~5.
TRAIN_PASSES = 3
HVP_PASSES = 5


def transformer_flops(width: int, length: int, vocabulary: int, layers: int = 2, feedforward: int | None = None) -> float:
    """Forward FLOPs of one translation pair through ``lltax.models.transformer`` (padded length
    L per side): per token and layer the attention projections (4 d^2 multiply-adds; the
    decoder's two attentions 8 d^2), the attention itself (2 L d per attention) and the
    feed-forward (2 d f), then the output projection (d V per target token). LayerNorm,
    softmax and biases are left out (a few percent at these sizes)."""
    d, f = width, 4 * width if feedforward is None else feedforward
    encoder, decoder = 4 * d * d + 2 * length * d + 2 * d * f, 8 * d * d + 4 * length * d + 2 * d * f
    return 2.0 * length * (layers * (encoder + decoder) + d * vocabulary)


def forward_flops(model: str, width: int, input_shape: tuple[int, ...], num_classes: int = 10, options: dict | None = None) -> float:
    """Forward FLOPs (multiply-adds count 2) of one example."""
    if model == "transformer":  # num_classes: the vocabulary; options: model.options
        options = options or {}
        return transformer_flops(width, input_shape[-1], num_classes, options.get("layers", 2), options.get("feedforward"))
    if model == "mlp":  # two hidden layers of width k
        inputs = math.prod(input_shape)
        return 2.0 * (inputs * width + width * width + width * num_classes)
    variant = resnet1d_variant(model)
    if variant:  # n blocks per stage: 2 x (240 n + 20 (20 + 24 (n - 1)) + 10 (80 + 96 (n - 1))) k^2 per example, less the shortcuts
        n, shortcuts = variant
        a, b, reference = 3360 * n - 480 - (0 if shortcuts else 240), 320 * n, 40
    else:
        a, b, reference = FORWARD_FLOPS.get(model, FORWARD_FLOPS["resnet18"])
    spatial = math.prod(input_shape[1:]) if len(input_shape) > 1 else math.prod(input_shape)
    return float(a * width * width + b * width) * spatial / reference


def training_steps(n_train: int, batch_size: int, epochs: int) -> int:
    """Optimizer steps of ``epochs`` passes over ``n_train`` examples; lltax.training.loop drops the
    last partial batch of an epoch (as the reference code's --ignore-incomplete-batch)."""
    return epochs * (n_train // batch_size)


def job_work(rule: str, cell: dict[str, Any], config: dict[str, Any]) -> tuple[float, int]:
    """(FLOPs, optimizer steps) of one model or curve of ``rule`` for grid cell ``cell``
    (a job handles ``items_per_job`` of them)."""
    dataset = config["dataset"]["name"]
    n_total, input_shape = DATASET_SIZES.get(dataset, DATASET_SIZES["cifar10"])
    n_train = max(1, round(n_total * float(cell.get("train_fraction", 1.0))))
    n_test = TEST_SIZES.get(dataset, 10000)
    classes = VOCABULARY_SIZES.get(dataset, 10)
    forward = forward_flops(config["model"]["name"], int(cell["width"]), input_shape, classes, config["model"].get("options"))
    evaluate_all = (n_train + n_test) * forward
    seeds = len(config["seeds"]) if isinstance(config["seeds"], list) else int(config["seeds"])
    if rule == "train":
        epochs = config["train"]["epochs"]
        n_fit = n_train + config["train"].get("poison", 0)  # a poisoned set is trained on too
        steps = training_steps(n_fit, int(cell["batch_size"]), epochs)
        return epochs * n_fit * TRAIN_PASSES * forward + evaluate_all, steps
    if rule == "import":  # checkpoints trained elsewhere: one evaluation pass each
        return evaluate_all, 0
    if rule == "hessian":
        h = config["hessian"]
        hvps = h["max_iterations"] * h["lanczos_starts"] + h["trace_probes"]
        return hvps * h["num_samples"] * HVP_PASSES * forward, hvps
    if rule == "curve_fit":
        c = config["curves"]
        epochs = round(c["epochs"] / float(cell.get("train_fraction", 1.0))) if c["scale_epochs"] else c["epochs"]
        steps = training_steps(n_train, c["batch_size"], epochs)
        # Three models' worth of weights per step (ends and bend), plus a BatchNorm refresh pass
        # per evaluation point.
        return epochs * n_train * TRAIN_PASSES * forward + n_train * forward, steps
    if rule == "curve_eval":
        # The curve's points, then the interior points of the line and (align) the aligned line.
        points = len(config["curves"]["points"])
        evaluated = points + (points - 2) * (2 if config["curves"].get("align", True) else 1)
        return evaluated * (2 * n_train + n_test) * forward, 0
    if rule == "fge":  # fge.cycles x fge.cycle_epochs training epochs, then the test set per snapshot and seed
        f = config["fge"]
        epochs = f["cycles"] * f["cycle_epochs"]
        return epochs * n_train * TRAIN_PASSES * forward + (f["cycles"] + seeds) * n_test * forward, training_steps(
            n_train, int(cell["batch_size"]), epochs
        )
    if rule == "cka":
        return seeds * config["cka"]["num_samples"] * forward, 0
    if rule == "landscape":
        lc = config["landscape"]
        samples = n_train + n_test if lc["full_data"] else lc["num_samples"] + lc["test_samples"]
        points = 2 * lc["points_1d"] + lc["points_2d"] ** 2
        # Each eigenvalue-map point: two Lanczos runs of ~100 products; the spectrum: its steps.
        hvps = 200 * lc["ratio_points"] ** 2 + lc["spectrum_steps"] * lc["spectrum_runs"]
        return points * samples * forward + hvps * lc["num_samples"] * HVP_PASSES * forward, 0
    if rule == "basin":
        b = config["basin"]
        rays = 2 * b["directions"] * (b["coarse"] + b["refine"])
        hvps = 200 * b["convexity_points"] ** 2
        return (rays + 1) * b["num_samples"] * forward + hvps * b["num_samples"] * HVP_PASSES * forward, 0
    return 0.0, 0  # distance and the aggregate rules: no model passes


def items_per_job(rule: str, config: dict[str, Any]) -> int:
    """How many models or curves one job of ``rule`` handles: a cell's seeds (train, hessian)
    or its curve pairs (curve_fit, curve_eval), in turn; 1 for the per-cell pairwise rules."""
    seeds = list(range(config["seeds"])) if isinstance(config["seeds"], int) else list(config["seeds"])
    if rule in ("train", "curve_fit") and config["cluster"].get("seeds_per_job") == 1:
        return 1  # one job per seed or curve (lltax.runtime.partitions.check_seeds_per_job)
    if rule in ("train", "import", "hessian", "basin"):
        return len(seeds)
    if rule in ("curve_fit", "curve_eval"):
        return max(1, len(seed_pairs(seeds, config["curves"]["pairs"])))
    return 1


# A training step's fixed cost on a GPU in ms: the Python and kernel-launch time of one step, by
# the train.compile mode. Eager: ~300 top-level aten ops per ResNet18 step after issue 26
# (benchmarks/bench_train_step.py), ~10-15 us each; compiled: fused kernels; CUDA graphs
# (reduce-overhead): one replay. Estimates until gpu_check.json is given (cluster.gpu_check).
LAUNCH_MS = {"none": 5.0, "default": 2.0, "max-autotune": 2.0, "reduce-overhead": 0.3}
# Sustained model TFLOP/s of a training step on one A100/H100-class GPU by train.precision
# (estimates: IEEE fp32 runs on the CUDA cores; TF32 and bf16 on the tensor cores, which
# airbench's ResNet-18 keeps ~70 TFLOP/s busy in bf16). cluster.tflops overrides all three.
GPU_TFLOPS = {"fp32": 10.0, "tf32": 25.0, "bf16": 50.0}
# The gpu_check.py mode that measured each training setting (precision, channels_last, compile).
CHECK_MODES = {
    ("fp32", False, "none"): "default",
    ("tf32", False, "none"): "tf32",
    ("bf16", False, "none"): "bf16",
    ("fp32", True, "none"): "channels_last",
    ("fp32", False, "default"): "compile",
    ("bf16", True, "default"): "combined",
    ("bf16", True, "reduce-overhead"): "combined_cudagraphs",
}
TRAINING_RULES = ("train", "curve_fit", "fge")


def estimate_seconds(rule: str, cell: dict[str, Any], config: dict[str, Any]) -> float:
    """Expected wall time of one job: startup + items x the time of an item's work, items being
    the seeds or curves the job handles in turn.

    On the CPU an item takes steps x step overhead + FLOPs / throughput: one processor does
    both. On a GPU the CPU issues the next kernels while the device computes, so an item takes
    the larger of the two: steps x launch cost (``LAUNCH_MS`` by ``train.compile`` for the
    training rules, ``cluster.step_overhead_ms`` when set) and FLOPs / throughput
    (``GPU_TFLOPS`` by ``train.precision`` for the training rules, ``cluster.tflops`` when set).
    With ``cluster.gpu_check`` (a gpu_check.json) a training rule's throughput is the one
    measured for its mode at the nearest measured step size instead (``measured_tflops``).
    """
    cluster = config["cluster"]
    on_gpu = config["device"] == "cuda"
    flops, steps = job_work(rule, cell, config)
    train = config["train"]
    if not on_gpu:
        tflops = cluster["tflops"] or 0.02 * config["threads"]
        step_ms = 8.0 if cluster["step_overhead_ms"] is None else cluster["step_overhead_ms"]
        per_item = steps * step_ms / 1000 + flops / (tflops * 1e12)
        return cluster["startup_seconds"] + items_per_job(rule, config) * per_item
    training = rule in TRAINING_RULES
    precision = train.get("precision", "fp32") if training else "fp32"  # metric jobs: IEEE fp32
    compile_mode = train.get("compile", "none") if rule == "train" else "none"
    tflops = cluster["tflops"] or GPU_TFLOPS[precision]
    step_ms = LAUNCH_MS[compile_mode] if cluster["step_overhead_ms"] is None else cluster["step_overhead_ms"]
    if training and cluster.get("gpu_check") and steps:
        mode = (precision, bool(train.get("channels_last")) if rule == "train" else False, compile_mode)
        batch = int(cell["batch_size"]) if rule != "curve_fit" else config["curves"]["batch_size"]
        measured = measured_tflops(cluster["gpu_check"], CHECK_MODES.get(mode), flops / steps, batch)
        if measured is not None:
            tflops = measured
    per_item = max(steps * step_ms / 1000, flops / (tflops * 1e12))
    return cluster["startup_seconds"] + items_per_job(rule, config) * per_item


def measured_tflops(path: str, mode: str | None, step_flops: float, batch_size: int) -> float | None:
    """Model TFLOP/s that ``benchmarks/gpu_check.py`` measured for ``mode`` (its JSON at
    ``path``) at the measured ResNet18 step nearest in FLOPs to ``step_flops`` (log scale; the
    same batch size preferred), or None when it measured none for that mode."""
    cases = [(c["batch_size"], c["flops_per_step"], c["modes"][mode]["model_tflops"]) for c in _check_cells(path) if mode in c["modes"]]
    if not cases:
        return None
    same_batch = [c for c in cases if c[0] == batch_size] or cases
    nearest = min(same_batch, key=lambda c: abs(math.log(c[1] / step_flops)))
    return nearest[2]


@functools.cache
def _check_cells(path: str) -> list[dict]:
    """The measured training cells of a gpu_check.json: width, batch size, FLOPs per step and,
    per mode that ran, its model TFLOP/s."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cluster.gpu_check: cannot read {path} as gpu_check.py's JSON ({type(e).__name__}: {e})") from None
    sections = data.get("sections", data)
    training = sections.get("training", {}) if isinstance(sections, dict) else {}
    training = training.get("result", training)
    cells = []
    for entry in (training.get("cells") or {}).values():
        shape = tuple(training.get("settings", {}).get("input_shape", (3, 32, 32)))
        modes = {
            mode: record
            for mode, record in entry.get("modes", {}).items()
            if isinstance(record, dict) and isinstance(record.get("model_tflops"), (int, float)) and record["model_tflops"] > 0
        }
        flops = TRAIN_PASSES * forward_flops("resnet18", int(entry["width"]), shape) * int(entry["batch_size"])
        cells.append({"width": entry["width"], "batch_size": entry["batch_size"], "flops_per_step": flops, "modes": modes})
    if not cells:
        raise ValueError(f"cluster.gpu_check: {path} holds no training measurements (its 'training' section is missing or failed)")
    return cells


def runtime_minutes(rule: str, cell: dict[str, Any], config: dict[str, Any], attempt: int = 1) -> int:
    """Runtime to request for a job: safety x estimate, at least ``min_runtime``, x2 per retry
    except for training, which resumes from its snapshot (a retry needs the same time, not
    twice it). lltax.runtime.partitions caps it at the partitions' max_runtime."""
    cluster = config["cluster"]
    seconds = estimate_seconds(rule, cell, config)
    minutes = max(cluster["min_runtime"], math.ceil(cluster["safety"] * seconds / 60))
    return minutes if rule == "train" else minutes * 2 ** (max(1, attempt) - 1)


def memory_mb(rule: str, cell: dict[str, Any], config: dict[str, Any]) -> int:
    """Memory to request: what the job holds (``job_bytes``) on top of ``min_mem_mb``, rounded up to 1 GB."""
    return int(1000 * math.ceil((config["cluster"]["min_mem_mb"] + job_bytes(rule, cell, config) / 1e6) / 1000))


def job_bytes(rule: str, cell: dict[str, Any], config: dict[str, Any]) -> int:
    """Bytes one job of ``rule`` holds at its peak (lltax.runtime.memory): the dataset twice (raw and
    prepared, training and test), eight model copies, the training trajectory when
    ``train.trajectory`` (model.pt carries it to every job), and the job's own work: a training
    batch's activations, or the chunks the metric jobs choose within ``memory_budget_gb``."""
    dataset = config["dataset"]["name"]
    n_total, input_shape = DATASET_SIZES.get(dataset, DATASET_SIZES["cifar10"])
    data = 2 * (n_total + TEST_SIZES.get(dataset, 10000)) * math.prod(input_shape) * VALUE_BYTES
    model, width = config["model"]["name"], int(cell["width"])
    registered = model in ("resnet18", "vgg11", "mlp") or resnet1d_variant(model) is not None
    parameters = parameter_estimate(model if registered else "resnet18", width, input_shape)
    activations = activation_elements(model, width, input_shape)
    train = config["train"]
    trajectory = (train["epochs"] + 1) * parameters * VALUE_BYTES if train.get("trajectory") and rule != "import" else 0
    held = held_bytes(parameters, data, trajectory)
    budget = config.get("memory_budget_gb", DEFAULT_BUDGET_GB) * GB
    if rule in ("train", "fge"):
        return held + training_bytes(activations, int(cell["batch_size"]))
    if rule == "curve_fit":
        return held + training_bytes(activations, config["curves"]["batch_size"])
    if rule == "hessian":
        h = config["hessian"]
        method = h["trace_method"]
        if method == "auto":  # the registered models are piecewise linear (lltax.models.is_piecewise_linear)
            method = "exact" if registered else ("hutchpp" if h["backend"] == "native" else "hutchinson")
        vector_settings = {"max_iterations": h["max_iterations"], "trace_method": method, "trace_probes": h["trace_probes"]}
        upper = min(h["chunk_size"], h["num_samples"])
        chunks = hessian_chunks(budget, parameters, activations, held=held, chunk_size=upper, **vector_settings)
        return hessian_bytes(parameters, activations, chunks, held=held, **vector_settings)
    if rule == "cka":
        c = config["cka"]
        inputs = c["num_samples"] * math.prod(input_shape) * VALUE_BYTES
        batch = forward_batch(budget, activations, held=held + inputs, batch_size=c["batch_size"])
        return held + inputs + batch * VALUE_BYTES * activations
    if rule == "landscape":
        lc = config["landscape"]
        stack = points_per_pass(budget, parameters, activations, held=held, batch_size=1000, stack=lc["stack"])
        points = stack * VALUE_BYTES * (parameters + 1000 * activations)
        # Spectrum and eigenvalue maps: Hessian-vector products on chunks of 200 samples.
        products = hvp_bytes(parameters, activations, min(200, lc["num_samples"]), lc["spectrum_steps"] + 3)
        return held + max(points, products if lc["spectrum_steps"] or lc["ratio_points"] else 0)
    if rule == "basin":
        b = config["basin"]
        forward = min(1000, b["num_samples"]) * VALUE_BYTES * activations
        products = hvp_bytes(parameters, activations, min(200, b["num_samples"]), 24) if b["convexity_points"] else 0
        return held + max(forward, products)
    if rule in ("curve_eval", "import"):
        return held + min(1000, n_total) * VALUE_BYTES * activations
    return held  # distance and the aggregate rules: no forward passes
