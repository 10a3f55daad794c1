"""The GPU check: lltax's CUDA path measured and exercised on one GPU, on an offline node, as it is.

    PYTHONPATH=src python3 benchmarks/gpu_check.py --out DIR           # on a GPU node (< 4 min on an H100)
    PYTHONPATH=src python3 benchmarks/gpu_check.py --smoke --out DIR   # the same code on CPU, tiny sizes

Needs only what an offline GPU node's Python brings (torch, numpy, scipy, pandas, xarray,
matplotlib, pyyaml): no snakemake, netCDF4, pyhessian, mnist1d or jsonschema, nothing installed,
no network; the data are synthetic tensors made here. Writes ``DIR/gpu_check.json`` (rewritten
after every section, so a run cut short keeps what it measured) and ``DIR/gpu_check.log``.

Sections (each wrapped: one that fails records its error and the others still run):

1. ``environment``: GPU, driver, torch / CUDA / cuDNN versions, TF32 and determinism flags.
2. ``matmul_peak``: bf16 (and fp32, tf32) square matrix products, TFLOP/s: the bf16 figure is
   the limit the training figures are a share of.
3. ``training``: ResNet18 on CIFAR-shaped tensors, widths x batch sizes: ms per step of a bare
   PyTorch loop (torch.optim.SGD, fp32 with TF32 off, and its bf16 autocast twin), of
   ``lltax.training.loop.train_model`` with default settings, and of each speed mode (precision tf32 /
   bf16, channels_last, compile, the combination); model FLOP/s and share of the bf16 peak.
   Whole epochs are timed after a warm-up epoch (the epoch's own wall time as train_model
   records it, which ends with the epoch's one synchronizing ``.item()``); nothing subtracted.
4. ``determinism``: each mode trained twice with one seed (``torch.equal`` on every tensor of
   the state), and a run resumed from its snapshot against an uninterrupted one.
5. ``hessian_tf32``: the top Hessian eigenvalue of a small ResNet18 with TF32 on and off.
6. ``trace_memory``: peak CUDA memory of the exact Hessian trace at widths 64 and 128 with the
   chunk ``lltax.runtime.memory`` chooses for the default memory budget, against its estimate.
7. ``landscape_and_curves``: landscape points per second (one at a time vs stacked through
   vmap) and ms per curve-fitting step.
8. ``grid_cell``: one tiny grid cell through every job's code (``lltax.cli.run``, the calls the
   Snakefile makes: train, hessian, basin, CKA + distance, curve fit and eval, landscape, FGE,
   and the aggregation in memory) on the GPU and again on the CPU, the records compared in
   form: the same keys, every number finite or NaN in the same places.

Each section records its wall time and ``torch.cuda.max_memory_allocated``; the JSON's
``summary`` holds the issue's goals, computed from the measurements (issue 26): the default
step within 1.1x of the bare loop at the same precision, the fastest mode >= 3x the bare fp32
loop at width 64 / batch 1024, the same seed bit-identical twice in every mode, no
out-of-memory at width 128.

The training and compile measurements are ordered by what the goals need and stop starting
new ones when ``--time-limit`` (seconds since start) would be passed; what was left out is
recorded as skipped with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import inspect
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

STARTED = time.monotonic()
REPOSITORY = Path(__file__).resolve().parents[1]
if str(REPOSITORY / "src") not in sys.path:  # as PYTHONPATH=src: the check needs no installed lltax
    sys.path.insert(0, str(REPOSITORY / "src"))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before cuBLAS starts, as lltax's jobs set it

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lltax.models import build_model  # noqa: E402
from lltax.runtime.cost import forward_flops  # noqa: E402
from lltax.training.loop import tf32  # noqa: E402

log = logging.getLogger("gpu_check")

INPUT_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
ABSENT_PACKAGES = ("snakemake", "netCDF4", "pyhessian", "mnist1d", "jsonschema")
PRESENT_PACKAGES = {  # module: distribution
    "torchvision": "torchvision",
    "numpy": "numpy",
    "scipy": "scipy",
    "pandas": "pandas",
    "xarray": "xarray",
    "matplotlib": "matplotlib",
    "yaml": "PyYAML",
    "h5py": "h5py",
}

# The speed modes: train_model's keywords. "default" is train_model with its defaults.
MODES = {
    "default": {},
    "tf32": {"precision": "tf32"},
    "bf16": {"precision": "bf16"},
    "channels_last": {"channels_last": True},
    "bf16_channels_last": {"precision": "bf16", "channels_last": True},
    "combined": {"precision": "bf16", "channels_last": True, "compile": "default"},
    "compile": {"compile": "default"},
    "combined_cudagraphs": {"precision": "bf16", "channels_last": True, "compile": "reduce-overhead"},
}
BARE_MODES = {"bare_fp32": None, "bare_bf16": torch.bfloat16}  # the bare loop and its autocast twin
# The bare loop each mode is compared with (the same arithmetic).
SAME_PRECISION = {
    "default": "bare_fp32",
    "channels_last": "bare_fp32",
    "compile": "bare_fp32",
    "bf16": "bare_bf16",
    "combined": "bare_bf16",
}
LEARNING_RATE, WEIGHT_DECAY, MOMENTUM = 0.01, 5e-4, 0.9
GOAL_DEFAULT_OVER_BARE = 1.1
GOAL_FASTEST_SPEEDUP = 3.0
GOAL_CELL = (64, 1024)  # width, batch size of the speed goal

SIZES = {
    "full": {
        "widths": (16, 64),
        "batch_sizes": (128, 1024),
        "steps": 24,  # steps per timed epoch
        "timed_epochs": 1,
        "peak_sizes": (4096, 8192),
        "peak_repeats": 20,
        "determinism": {"width": 16, "batch_size": 128, "steps": 8, "epochs": 2},
        "hessian": {"width": 16, "num_samples": 200, "max_iterations": 100},
        "trace_widths": (64, 128),
        "trace_samples": 200,
        "landscape": {"width": 16, "num_samples": 1000, "side": 8, "stacks": (1, 16)},
        "curve": {"width": 16, "batch_size": 128, "steps": 20},
        "cell": {
            "width": 4,
            "batch_size": 32,
            "dataset": "lltax.data.synthetic:cifar_shaped",
            "epochs": 2,
            "jobs": {
                "hessian": {"num_samples": 64, "chunk_size": 32, "max_iterations": 30, "trace_probes": 9},
                "basin": {"directions": 2, "num_samples": 64, "coarse": 3, "refine": 2},
                "cka": {"num_samples": 64, "batch_size": 32},
                "curves": {"epochs": 1, "batch_size": 32, "points": [0.0, 0.5, 1.0]},
                "landscape": {
                    "num_samples": 64,
                    "test_samples": 64,
                    "points_1d": 5,
                    "points_2d": 3,
                    "spectrum_steps": 8,
                    "spectrum_runs": 1,
                },
                "fge": {"enabled": True, "cycles": 2, "cycle_epochs": 2, "curve_points": 3},
            },
        },
    },
    "smoke": {
        "widths": (2,),
        "batch_sizes": (16, 32),
        "steps": 3,
        "timed_epochs": 1,
        "peak_sizes": (256,),
        "peak_repeats": 3,
        "determinism": {"width": 2, "batch_size": 16, "steps": 3, "epochs": 2},
        "hessian": {"width": 2, "num_samples": 16, "max_iterations": 5},
        "trace_widths": (2, 4),
        "trace_samples": 8,
        "landscape": {"width": 2, "num_samples": 64, "side": 4, "stacks": (1, 4)},
        "curve": {"width": 2, "batch_size": 16, "steps": 4},
        "cell": {
            "width": 2,
            "batch_size": 32,
            "dataset": "lltax.data.synthetic:cifar_shaped_tiny",
            "epochs": 1,
            "jobs": {
                "hessian": {"num_samples": 16, "chunk_size": 16, "max_iterations": 4, "lanczos_starts": 1, "trace_probes": 3},
                "basin": {"directions": 1, "num_samples": 16, "coarse": 2, "refine": 1},
                "cka": {"num_samples": 32, "batch_size": 32},
                "curves": {"epochs": 1, "batch_size": 32, "points": [0.0, 0.5, 1.0]},
                "landscape": {
                    "num_samples": 16,
                    "test_samples": 16,
                    "points_1d": 3,
                    "points_2d": 3,
                    "spectrum_steps": 3,
                    "spectrum_runs": 1,
                },
                "fge": {"enabled": True, "cycles": 1, "cycle_epochs": 2, "curve_points": 2},
            },
        },
    },
}


class Skipped(Exception):
    """A section or measurement left out on purpose (the reason is recorded)."""


# ---------------------------------------------------------------------------------------------
# Small tools


def elapsed() -> float:
    return time.monotonic() - STARTED


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(device: torch.device) -> int | None:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip()[:2000]


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def attempt(function, *args, **kwargs) -> dict:
    """``function``'s result dict, or {"error": ..., "out_of_memory": ...} when it raises (logged)."""
    try:
        return function(*args, **kwargs)
    except Skipped as reason:
        return {"skipped": str(reason)}
    except Exception as error:
        log.error("%s failed: %s\n%s", getattr(function, "__name__", function), error_text(error), traceback.format_exc())
        return {"error": error_text(error), "out_of_memory": is_out_of_memory(error)}


def tf32_flags() -> dict:
    flags = {}
    for name, read in (
        ("matmul_allow_tf32", lambda: torch.backends.cuda.matmul.allow_tf32),
        ("cudnn_allow_tf32", lambda: torch.backends.cudnn.allow_tf32),
        ("float32_matmul_precision", torch.get_float32_matmul_precision),
    ):
        try:
            flags[name] = read()
        except Exception as error:  # a torch whose flags moved: recorded, not fatal
            flags[name] = error_text(error)
    return flags


def json_safe(value):
    """Plain JSON: numpy and torch scalars as numbers, non-finite floats as strings "NaN"/"Infinity"."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.generic,)):
        return json_safe(value.item())
    if isinstance(value, torch.Tensor):
        return json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def synthetic_images(num: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-shaped float32 inputs (normalized, as a loader gives them) and labels, made on ``device``."""
    generator = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(num, *INPUT_SHAPE, generator=generator, device=device)
    y = torch.randint(0, NUM_CLASSES, (num,), generator=generator, device=device)
    return x, y


def resnet18(width: int, device: torch.device, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("resnet18", width, NUM_CLASSES, INPUT_SHAPE).to(device)


# ---------------------------------------------------------------------------------------------
# The report


class Report:
    """The JSON report: sections in a fixed order, written after every change."""

    ORDER = ("environment", "matmul_peak", "training", "determinism", "hessian_tf32", "trace_memory", "landscape_and_curves", "grid_cell")

    def __init__(self, out: Path, args: argparse.Namespace, device: torch.device):
        self.path = out / "gpu_check.json"
        self.device = device
        self.data = {
            "summary": {},
            "run": {
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "smoke": args.smoke,
                "device": str(device),
                "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                "time_limit_s": args.time_limit,
            },
            "sections": {name: {"status": "not run"} for name in self.ORDER},
        }

    def section(self, name: str, function) -> None:
        """Run one section (or one more part of it: results merge), recording status, wall time,
        peak memory, and the error text if it raises."""
        entry = self.data["sections"][name]
        log.info("=== %s (%.0f s since start)", name, elapsed())
        reset_peak_memory(self.device)
        began = time.perf_counter()
        try:
            result = function()
            entry["result"] = {**entry.get("result", {}), **(result or {})}
            if entry["status"] in ("not run", "skipped"):
                entry["status"] = "ok"
        except Skipped as reason:
            if entry["status"] == "not run":
                entry.update(status="skipped", reason=str(reason))
        except Exception as error:
            log.error("section %s failed: %s\n%s", name, error_text(error), traceback.format_exc())
            entry.update(status="error", error=error_text(error), out_of_memory=is_out_of_memory(error))
        entry["wall_s"] = entry.get("wall_s", 0.0) + time.perf_counter() - began
        memory = peak_memory(self.device)
        if memory is not None or "max_memory_allocated_bytes" not in entry:
            entry["max_memory_allocated_bytes"] = max(filter(None, [entry.get("max_memory_allocated_bytes"), memory]), default=memory)
        log.info("=== %s: %s in %.1f s", name, entry["status"], time.perf_counter() - began)
        try:  # the goals as measured so far: a run cut short still has its summary
            self.data["summary"] = summary(self)
        except Exception as error:
            self.data["summary"] = {"error": error_text(error)}
        self.write()

    def result(self, name: str) -> dict:
        return self.data["sections"][name].get("result", {})

    def write(self) -> None:
        self.data["run"]["elapsed_s"] = elapsed()
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(json_safe(self.data), indent=1) + "\n")
        tmp.replace(self.path)


# ---------------------------------------------------------------------------------------------
# 1. Environment


def driver_version() -> dict | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        text = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return {"error": error_text(error)}
    first = [part.strip() for part in text.splitlines()[0].split(",")] if text else []
    return {"driver": first[1] if len(first) > 1 else None, "nvidia_smi": text}


def package_versions() -> dict:
    """Installed versions of the packages an offline node brings (without importing them), and
    whether each of those it lacks can be imported here (None: not importable)."""
    from importlib import metadata, util

    versions = {}
    for name, distribution in PRESENT_PACKAGES.items():
        try:
            versions[name] = metadata.version(distribution) if util.find_spec(name) else None
        except (metadata.PackageNotFoundError, ImportError, ValueError):
            versions[name] = None
    for name in ABSENT_PACKAGES:
        try:
            module = importlib.import_module(name)
            versions[name] = getattr(module, "__version__", "importable")
        except Exception:  # absent, or made unimportable (the smoke test does that)
            versions[name] = None
    return versions


def environment(device: torch.device) -> dict:
    from lltax.runtime.device import runtime_info

    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpu": None,
        "driver": None,
        "tf32": tf32_flags(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "packages": package_versions(),
        "lltax_runtime": runtime_info(device),
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info.update(
            gpu=torch.cuda.get_device_name(device),
            gpu_memory_bytes=properties.total_memory,
            compute_capability=f"{properties.major}.{properties.minor}",
            multiprocessors=properties.multi_processor_count,
        )
        smi = driver_version()
        info["driver"] = smi.get("driver") if smi else None
        info["nvidia_smi"] = smi
    try:
        info["git_commit"] = subprocess.run(
            ["git", "-C", str(REPOSITORY), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


# ---------------------------------------------------------------------------------------------
# 2. Matrix-product peak


def matmul_tflops(n: int, dtype: torch.dtype, repeats: int, device: torch.device) -> float:
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    out = torch.empty(n, n, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b, out=out)
    synchronize(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            torch.mm(a, b, out=out)
        end.record()
        torch.cuda.synchronize(device)
        seconds = start.elapsed_time(end) / 1000
    else:
        began = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b, out=out)
        seconds = time.perf_counter() - began
    return 2 * n**3 * repeats / seconds / 1e12


def matmul_peak(device: torch.device, sizes: dict) -> dict:
    result = {"timing": "CUDA events around back-to-back torch.mm" if device.type == "cuda" else "perf_counter (CPU)"}
    for label, dtype, use_tf32 in (("bf16", torch.bfloat16, False), ("fp32", torch.float32, False), ("tf32", torch.float32, True)):
        with tf32(use_tf32):
            figures = {str(n): matmul_tflops(n, dtype, sizes["peak_repeats"], device) for n in sizes["peak_sizes"]}
        result[f"{label}_tflops_by_size"] = figures
        result[f"{label}_tflops"] = max(figures.values())
        log.info("matmul %s: %s TFLOP/s", label, {k: round(v, 2) for k, v in figures.items()})
    return result


# ---------------------------------------------------------------------------------------------
# 3./4. Training: timing and determinism


def missing_keywords(options: dict) -> list[str]:
    from lltax.training.loop import train_model

    accepted = inspect.signature(train_model).parameters
    return [key for key in options if key not in accepted]


def bare_run(model, x, y, batch_size: int, epochs: int, autocast_dtype, seed: int = 0) -> list[float]:
    """A bare PyTorch loop: torch.optim.SGD, a fresh permutation per epoch from a CPU generator,
    no loss bookkeeping; returns each epoch's wall seconds (synchronized at its end)."""
    device = x.device
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    generator = torch.Generator().manual_seed(seed)
    steps = len(x) // batch_size
    seconds = []
    model.train()
    for _ in range(epochs):
        synchronize(device)
        began = time.perf_counter()
        order = torch.randperm(len(x), generator=generator).to(device)
        for step in range(steps):
            index = order[step * batch_size : (step + 1) * batch_size]
            with torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
                loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        synchronize(device)
        seconds.append(time.perf_counter() - began)
    return seconds


def lltax_run(model, x, y, batch_size: int, epochs: int, options: dict, seed: int = 0, **extra):
    from lltax.training.loop import train_model

    missing = missing_keywords(options)
    if missing:
        raise TypeError(f"lltax.training.loop.train_model takes no {missing} (this lltax has no such mode)")
    return train_model(
        model,
        x,
        y,
        batch_size=batch_size,
        learning_rate=LEARNING_RATE,
        weight_decay=WEIGHT_DECAY,
        epochs=epochs,
        momentum=MOMENTUM,
        seed=seed,
        **options,
        **extra,
    )


def state_copy(model) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Training:
    """The training measurements (section 3) and the determinism runs (section 4), done in an
    order of priority under the time limit."""

    def __init__(self, device: torch.device, sizes: dict, args: argparse.Namespace, peak_tflops: float | None):
        self.device, self.sizes, self.args = device, sizes, args
        self.peak = peak_tflops
        self.data: dict[tuple[int, int], tuple] = {}
        self.timings: dict[str, dict] = {}
        self.determinism: dict[str, dict] = {}
        self.seconds_by_mode: dict[str, float] = {}

    # -- what a mode may run here
    def unavailable(self, mode: str) -> str | None:
        options = MODES.get(mode, {})
        if self.device.type == "cuda":
            return None
        if options.get("compile") == "reduce-overhead":
            return "CUDA graphs need a CUDA device"
        if self.args.all_modes_on_cpu:
            return None
        if options.get("compile", "none") != "none":
            return "torch.compile is measured on CUDA only (on a CPU its C++ build takes minutes); --all-modes-on-cpu runs it"
        if options.get("channels_last"):
            # Seen with torch 2.14.1 on a 2-core x86 VM: a plain loop (no lltax) training ResNet18 at
            # width 2 or 4 in channels_last aborts with heap corruption (1 thread) or hangs (2 threads).
            return "channels_last is measured on CUDA only (torch's CPU kernels crashed training tiny ResNet18s in it); --all-modes-on-cpu runs it"
        return None

    def estimate(self, mode: str) -> float:
        """Seconds the next run of ``mode`` may take: what the last one took, or a first-compile guess."""
        if mode in self.seconds_by_mode:
            return self.seconds_by_mode[mode]
        return 90.0 if MODES.get(mode, {}).get("compile", "none") != "none" else 10.0

    def check_time(self, mode: str, runs: int = 1) -> None:
        needed = runs * self.estimate(mode)
        left = self.args.time_limit - elapsed()
        if needed > left:
            raise Skipped(f"time limit: about {needed:.0f} s needed, {left:.0f} s left of --time-limit {self.args.time_limit:.0f}")

    def dataset(self, width: int, batch_size: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = (batch_size, steps)
        if key not in self.data:
            self.data.clear()  # one set at a time on the device
            self.data[key] = synthetic_images(batch_size * steps, self.device)
        return self.data[key]

    # -- section 3
    def time_mode(self, mode: str, width: int, batch_size: int) -> dict:
        reason = self.unavailable(mode)
        if reason:
            raise Skipped(reason)
        self.check_time(mode)
        steps, timed = self.sizes["steps"], self.sizes["timed_epochs"]
        x, y = self.dataset(width, batch_size, steps)
        model = resnet18(width, self.device)
        reset_peak_memory(self.device)
        began = time.perf_counter()
        flags = tf32_flags()
        if mode in BARE_MODES:
            seconds = bare_run(model, x, y, batch_size, 1 + timed, BARE_MODES[mode])
            extra = {}
        else:
            result = lltax_run(model, x, y, batch_size, 1 + timed, MODES[mode])
            seconds = [h["seconds"] for h in result.history]
            extra = {"diverged": result.diverged, "final_train_loss": result.history[-1]["train_loss"]}
            if len(seconds) < 1 + timed:
                raise RuntimeError(f"train_model ran {len(seconds)} of {1 + timed} epochs (diverged: {result.diverged})")
        wall = time.perf_counter() - began
        self.seconds_by_mode[mode] = max(self.seconds_by_mode.get(mode, 0.0), wall)  # the next run's estimate
        ms = 1000 * float(np.mean(seconds[1:])) / steps
        flops = forward_flops("resnet18", width, INPUT_SHAPE) * 3 * batch_size / (ms / 1000)
        record = {
            "ms_per_step": ms,
            "steps_per_epoch": steps,
            "timed_epochs": timed,
            "epoch_seconds": seconds,
            "warmup_epoch_s": seconds[0],
            "wall_s": wall,
            "model_tflops": flops / 1e12,
            "share_of_bf16_peak": flops / 1e12 / self.peak if self.peak else None,
            "max_memory_allocated_bytes": peak_memory(self.device),
            "tf32_flags_before": flags,
            **extra,
        }
        log.info("width %d batch %d %-20s %8.2f ms/step  %6.2f TFLOP/s", width, batch_size, mode, ms, record["model_tflops"])
        return record

    def timing(self, modes, cells) -> dict:
        for width, batch_size in cells:
            key = f"width={width}/batch_size={batch_size}"
            entry = self.timings.setdefault(key, {"width": width, "batch_size": batch_size, "modes": {}})
            for mode in modes:
                if "ms_per_step" in entry["modes"].get(mode, {}):
                    continue
                entry["modes"][mode] = attempt(self.time_mode, mode, width, batch_size)
            self.ratios(entry)
        self.data.clear()
        return {"cells": self.timings, "settings": self.settings()}

    def settings(self) -> dict:
        return {
            "model": "resnet18",
            "input_shape": list(INPUT_SHAPE),
            "learning_rate": LEARNING_RATE,
            "momentum": MOMENTUM,
            "weight_decay": WEIGHT_DECAY,
            "steps_per_epoch": self.sizes["steps"],
            "timed_epochs": self.sizes["timed_epochs"],
            "modes": {**{mode: "bare PyTorch loop" for mode in BARE_MODES}, **MODES},
            "flops": "lltax.runtime.cost.forward_flops x 3 x batch size per step",
            "process": "configure_torch as every lltax job: deterministic algorithms, cudnn.benchmark off, TF32 off unless a mode sets it",
        }

    @staticmethod
    def ratios(entry: dict) -> None:
        modes = entry["modes"]
        ms = {mode: record["ms_per_step"] for mode, record in modes.items() if "ms_per_step" in record}
        if "bare_fp32" in ms:
            entry["speedup_over_bare_fp32"] = {mode: ms["bare_fp32"] / value for mode, value in ms.items()}
        entry["over_same_precision_bare"] = {
            mode: ms[mode] / ms[bare] for mode, bare in SAME_PRECISION.items() if mode in ms and bare in ms
        }

    # -- section 4
    def determinism_mode(self, mode: str) -> dict:
        reason = self.unavailable(mode)
        if reason:
            raise Skipped(reason)
        settings = self.determinism_settings(mode)
        self.check_time(mode)  # two short runs
        x, y = self.dataset(settings["width"], settings["batch_size"], settings["steps"])
        states = []
        began = time.perf_counter()
        for _ in range(2):
            model = resnet18(settings["width"], self.device)
            if mode in BARE_MODES:
                bare_run(model, x, y, settings["batch_size"], settings["epochs"], BARE_MODES[mode])
            else:
                lltax_run(model, x, y, settings["batch_size"], settings["epochs"], MODES[mode])
            states.append(state_copy(model))
        self.seconds_by_mode[mode] = max(self.seconds_by_mode.get(mode, 0.0), time.perf_counter() - began)
        equal = states_equal(*states)
        differing = [name for name in states[0] if not torch.equal(states[0][name], states[1][name])]
        log.info("determinism %-20s bit-identical: %s", mode, equal)
        return {"bit_identical": equal, "differing_tensors": len(differing), "first_differing": differing[:3]}

    def determinism_settings(self, mode: str) -> dict:
        """Where ``mode`` is trained twice: a small cell, or for a compiled mode the shapes it was
        timed at (the compiled graphs are reused: no second compilation)."""
        compiled = MODES.get(mode, {}).get("compile", "none") != "none"
        done = [entry for entry in self.timings.values() if "ms_per_step" in entry["modes"].get(mode, {})]
        if compiled and done:
            return {"width": done[0]["width"], "batch_size": done[0]["batch_size"], "steps": 4, "epochs": 2}
        return self.sizes["determinism"]

    def resume(self) -> dict:
        """A run snapshotted after epoch 1 and resumed to epoch 2 against an uninterrupted 2-epoch run."""
        settings = {**self.sizes["determinism"], "epochs": 2}
        x, y = self.dataset(settings["width"], settings["batch_size"], settings["steps"])
        with tempfile.TemporaryDirectory(prefix="lltax-gpu-check-") as folder:
            snapshot = Path(folder) / "train_snapshot.pt"
            first = resnet18(settings["width"], self.device)
            lltax_run(first, x, y, settings["batch_size"], 1, {}, snapshot=snapshot, snapshot_key="gpu-check", snapshot_minutes=0)
            resumed = resnet18(settings["width"], self.device)
            result = lltax_run(
                resumed, x, y, settings["batch_size"], 2, {}, snapshot=snapshot, snapshot_key="gpu-check", snapshot_minutes=0
            )
        whole = resnet18(settings["width"], self.device)
        lltax_run(whole, x, y, settings["batch_size"], 2, {})
        equal = states_equal(state_copy(resumed), state_copy(whole))
        log.info("resumed run bit-identical to the uninterrupted one: %s", equal)
        return {"bit_identical": equal, "epochs_in_resumed_history": len(result.history), "settings": settings}

    def determinism_part(self, modes, with_resume: bool = False) -> dict:
        for mode in modes:
            if "bit_identical" not in self.determinism.get(mode, {}):
                self.determinism[mode] = {**attempt(self.determinism_mode, mode), "settings": self.determinism_settings(mode)}
        result = {"modes": self.determinism, "settings": self.sizes["determinism"]}
        if with_resume:
            result["resume"] = attempt(self.resume)
        self.data.clear()
        return result


# ---------------------------------------------------------------------------------------------
# 5. Hessian eigenvalue with TF32 on and off


def hessian_tf32(device: torch.device, sizes: dict) -> dict:
    from lltax.metrics.hessian import hessian_metrics

    settings = sizes["hessian"]
    model = resnet18(settings["width"], device).eval()
    x, y = synthetic_images(settings["num_samples"], device, seed=1)
    result = {"settings": settings, "note": "TF32 changes nothing on a CPU" if device.type != "cuda" else None}
    for label, enabled in (("tf32_off", False), ("tf32_on", True)):
        began = time.perf_counter()
        with tf32(enabled):
            flags = tf32_flags()
            record = hessian_metrics(
                model,
                x,
                y,
                top_k=1,
                tolerance=1e-4,
                max_iterations=settings["max_iterations"],
                trace_method="hutchpp",
                trace_probes=3,
                chunk_size=settings["num_samples"],
                piecewise_linear=True,
            )
        result[label] = {
            "top_eigenvalue": record["top_eigenvalue"],
            "eigenvalue_error": record["eigenvalue_error"],
            "hvp_count": record["hvp_count"],
            "seconds": time.perf_counter() - began,
            "flags": flags,
        }
    off, on = result["tf32_off"]["top_eigenvalue"], result["tf32_on"]["top_eigenvalue"]
    result["relative_difference"] = abs(on - off) / abs(off) if off else None
    log.info("top eigenvalue: TF32 off %.6g, on %.6g (relative difference %s)", off, on, result["relative_difference"])
    return result


# ---------------------------------------------------------------------------------------------
# 6. Exact trace memory under the budget


def trace_chunk(model, width: int, inputs: torch.Tensor, upper: int) -> dict:
    """The exact trace's chunk for the default memory budget (lltax.runtime.memory), and its estimate."""
    parameters = sum(p.numel() for p in model.parameters())
    try:
        from lltax.runtime import memory
    except ImportError:
        return {"chunk": min(upper, 16), "parameters": parameters, "note": "lltax.runtime.memory is absent: a fixed chunk of 16 samples"}
    activations = memory.activation_elements("resnet18", width, INPUT_SHAPE, NUM_CLASSES)
    held = memory.held_bytes(parameters, int(inputs.nbytes))
    vector_settings = {"max_iterations": 100, "trace_method": "exact", "trace_probes": 100}
    budget = memory.DEFAULT_BUDGET_GB * memory.GB
    chunks = memory.hessian_chunks(budget, parameters, activations, held=held, chunk_size=upper, **vector_settings)
    estimate = memory.hessian_bytes(parameters, activations, chunks, held=held, **vector_settings)
    return {
        "chunk": chunks["exact_trace"],
        "chunks": chunks,
        "parameters": parameters,
        "memory_budget_gb": memory.DEFAULT_BUDGET_GB,
        "estimated_peak_bytes": estimate,
    }


def trace_memory(device: torch.device, sizes: dict) -> dict:
    from lltax.metrics.trace import exact_trace

    result = {"num_samples_upper": sizes["trace_samples"], "widths": {}}

    def one(width: int) -> dict:
        reset_peak_memory(device)
        model = resnet18(width, device).eval()
        x, _ = synthetic_images(sizes["trace_samples"], device, seed=2)
        choice = trace_chunk(model, width, x, sizes["trace_samples"])
        x = x[: choice["chunk"]]  # one full chunk: the peak of any number of chunks
        began = time.perf_counter()
        trace, _ = exact_trace(model, x, chunk_size=choice["chunk"])
        synchronize(device)
        record = {**choice, "num_samples": len(x), "trace": trace, "seconds": time.perf_counter() - began}
        record["max_memory_allocated_bytes"] = peak_memory(device)
        if record["max_memory_allocated_bytes"] and choice.get("estimated_peak_bytes"):
            record["measured_over_estimate"] = record["max_memory_allocated_bytes"] / choice["estimated_peak_bytes"]
        log.info(
            "exact trace width %d: chunk %d, %.1f s, peak %s bytes",
            width,
            choice["chunk"],
            record["seconds"],
            record["max_memory_allocated_bytes"],
        )
        return record

    for width in sizes["trace_widths"]:
        result["widths"][str(width)] = attempt(one, width)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result


# ---------------------------------------------------------------------------------------------
# 7. Landscape points and curve fitting


def timed(device: torch.device, function) -> float:
    synchronize(device)
    began = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - began


def landscape_and_curves(device: torch.device, sizes: dict) -> dict:
    from lltax.metrics.bezier import initial_inner_bends, parameters_of
    from lltax.metrics.curves import fit_curve
    from lltax.metrics.directions import direction_space, random_direction
    from lltax.metrics.surface import evaluate_points

    settings = sizes["landscape"]
    model = resnet18(settings["width"], device).eval()
    x, y = synthetic_images(settings["num_samples"], device, seed=3)
    space = direction_space(model)
    generator = torch.Generator().manual_seed(0)
    directions = [random_direction(space, generator), random_direction(space, generator)]
    grid = np.linspace(-1, 1, settings["side"])
    points = len(grid) ** 2
    splits = {"train": (x, y)}
    result = {"landscape": {"settings": settings, "points": points, "stacks": {}}}
    for stack in settings["stacks"]:
        run = lambda stack=stack: evaluate_points(model, space, directions, [grid, grid], splits, stack=stack)  # noqa: E731
        run()  # warm-up (vmap's first trace, allocator)
        seconds = timed(device, run)
        result["landscape"]["stacks"][str(stack)] = {"seconds": seconds, "points_per_second": points / seconds}
        log.info("landscape stack %d: %.1f points/s", stack, points / seconds)
    loop = result["landscape"]["stacks"].get("1", {}).get("points_per_second")
    result["landscape"]["stacked_over_loop"] = {
        stack: record["points_per_second"] / loop for stack, record in result["landscape"]["stacks"].items() if loop
    }

    curve = sizes["curve"]
    ends = [resnet18(curve["width"], device, seed=seed) for seed in (0, 1)]
    start, end = parameters_of(ends[0]), parameters_of(ends[1])
    inner = initial_inner_bends(start, end, 1)
    cx, cy = synthetic_images(curve["batch_size"] * curve["steps"], device, seed=4)
    fit = lambda: fit_curve(ends[0], start, end, inner, cx, cy, epochs=1, batch_size=curve["batch_size"])  # noqa: E731
    fit()  # warm-up
    seconds = timed(device, fit)
    result["curve_fit"] = {"settings": curve, "seconds": seconds, "ms_per_step": 1000 * seconds / curve["steps"], "bends": 3}
    log.info("curve fit: %.2f ms/step", result["curve_fit"]["ms_per_step"])
    return result


# ---------------------------------------------------------------------------------------------
# 8. One grid cell through every job


@contextlib.contextmanager
def settings_without_jsonschema():
    """Jobs parse their --settings and --cell with jsonschema; where it is absent (an offline
    GPU node), fill the schema's defaults and refuse unknown keys, unvalidated otherwise."""
    try:
        import jsonschema  # noqa: F401

        yield "validated with jsonschema, as in a workflow"
        return
    except ImportError:
        pass
    from lltax.config import schema as config
    from lltax.config.grid import parse_cell_path
    from lltax.contract import AXES

    def parse_settings(text: str, section: str) -> dict:
        given = json.loads(text)
        defaults = config.section_defaults(section)
        properties = config.load_schema()["properties"][section].get("properties", {})
        unknown = sorted(set(given) - set(properties))
        if unknown:
            raise ValueError(f"--settings for '{section}': unknown key(s) {unknown}")
        return {**defaults, **given}

    def parse_cell(text: str) -> dict:
        return {k: v for k, v in parse_cell_path(text).items() if k in AXES}

    saved = config.parse_settings, config.parse_cell
    patched = []
    config.parse_settings, config.parse_cell = parse_settings, parse_cell
    for name, module in list(sys.modules.items()):  # job modules imported already hold the names
        if name.startswith("lltax.jobs."):
            for attribute, replacement in (("parse_settings", parse_settings), ("parse_cell", parse_cell)):
                if hasattr(module, attribute):
                    patched.append((module, attribute, getattr(module, attribute)))
                    setattr(module, attribute, replacement)
    try:
        yield "jsonschema is absent: schema defaults filled by lltax.config.schema.section_defaults, values not validated"
    finally:
        config.parse_settings, config.parse_cell = saved
        for module, attribute, original in patched:
            setattr(module, attribute, original)


def cell_settings(sizes: dict) -> dict:
    """The config sections of the tiny cell's jobs: small, every job's code path on."""
    cell = sizes["cell"]
    return {
        "dataset": {"name": cell["dataset"], "download": False, "label_noise_mode": "exact", "augment": True},
        "train": {"epochs": cell["epochs"], "eval_batch_size": 256},
        **cell["jobs"],
    }


def dataset_form(dataset) -> dict:
    """An xarray dataset as plain values (variables, coordinates, attributes), for the comparison."""
    return {
        "data_vars": {name: {"dims": list(v.dims), "values": np.asarray(v.values).tolist()} for name, v in dataset.data_vars.items()},
        "coords": {name: np.asarray(v.values).tolist() for name, v in dataset.coords.items()},
        "attrs": {key: np.asarray(value).tolist() if isinstance(value, np.ndarray) else value for key, value in dataset.attrs.items()},
    }


def run_cell(device: str, folder: Path, sizes: dict) -> tuple[dict, dict, list[str]]:
    """The tiny cell on ``device``: (records by file, seconds by job, notes)."""
    from lltax.cli import run as lltax
    from lltax.config.grid import cell_path

    settings = cell_settings(sizes)
    cell = {
        "width": sizes["cell"]["width"],
        "batch_size": sizes["cell"]["batch_size"],
        "label_noise": 0.1,
        "train_fraction": 1.0,
        "learning_rate": 0.05,
        "weight_decay": 5e-4,
    }
    path = cell_path(cell)
    results = folder / "results"
    cell_dir = results / path
    seeds = (0, 1)
    models = [str(cell_dir / f"seed={s}" / "model.pt") for s in seeds]
    curve = str(cell_dir / "pair=0-1" / "curve.pt")
    data_dir = str(folder / "data")
    common = ["--device", device]
    js = lambda section: json.dumps(settings[section])  # noqa: E731
    seconds: dict[str, float] = {}
    notes: list[str] = []
    records: dict[str, object] = {}

    def job(name: str, function) -> None:
        began = time.perf_counter()
        try:
            function()
        finally:
            synchronize(torch.device(device))
            seconds[name] = time.perf_counter() - began
            log.info("cell on %s: %s %.1f s", device, name, seconds[name])

    job(
        "train",
        lambda: lltax(
            ["train", "--cell", path, "--seeds", *map(str, seeds), "--dataset-settings", js("dataset"), "--model", "resnet18"]
            + ["--settings", js("train"), "--data-dir", data_dir, *common, "--out-dir", *[str(Path(m).parent) for m in models]]
        ),
    )
    job(
        "hessian",
        lambda: lltax(
            ["hessian", "--checkpoints", *models, "--settings", js("hessian"), *common, "--out"]
            + [m.replace("model.pt", "hessian.json") for m in models]
        ),
    )
    job(
        "basin",
        lambda: lltax(
            ["basin", "--checkpoints", *models, "--settings", js("basin"), *common, "--out"]
            + [m.replace("model.pt", "basin.json") for m in models]
        ),
    )
    job(
        "cka",
        lambda: lltax(
            ["cka", "--checkpoints", *models, "--settings", js("cka"), *common, "--out", str(cell_dir / "cka.json")]
            + ["--distance-out", str(cell_dir / "distance.json")]
        ),
    )
    job("curve_fit", lambda: lltax(["curve-fit", "--checkpoints", *models, "--settings", js("curves"), *common, "--out", curve]))
    job(
        "curve_eval",
        lambda: lltax(
            ["curve-eval", "--curves", curve, "--settings", js("curves"), *common, "--out", str(cell_dir / "pair=0-1" / "curve_eval.json")]
        ),
    )

    def landscape() -> None:
        try:
            import netCDF4  # noqa: F401
        except ImportError:
            netcdf = False
        else:
            netcdf = True
        if netcdf:
            lltax(["landscape", "--checkpoints", *models, "--settings", js("landscape"), *common, "--out", str(cell_dir / "landscape.nc")])
            import xarray as xr

            records["landscape.nc"] = dataset_form(xr.load_dataset(cell_dir / "landscape.nc"))
        else:
            from lltax.jobs import landscape as landscape_job

            with settings_without_jsonschema():
                chosen = landscape_job.parse_settings(js("landscape"), "landscape")
            dataset = landscape_job.landscape_of_cell(models, chosen, torch.device(device), None)
            records["landscape.nc"] = dataset_form(dataset)
            notes.append("landscape: netCDF4 is absent, so landscape_of_cell's dataset was compared in memory and not written")

    job("landscape", landscape)
    job(
        "fge",
        lambda: lltax(
            ["fge", "--checkpoints", *models, "--curves", curve, "--settings", js("fge"), *common, "--out", str(cell_dir / "fge.json")]
        ),
    )

    def aggregate() -> None:
        from lltax.config.schema import section_defaults
        from lltax.contract import AXES
        from lltax.results.infer import aggregate_all

        # The resolved config the records are merged under, as the workflow passes it: the
        # aggregation checks each record's settings against its section.
        config = {
            "grid": {axis: [cell[axis]] for axis in AXES},
            "seeds": list(seeds),
            "model": {**section_defaults("model"), "name": "resnet18"},
            **{name: {**section_defaults(name), **section} for name, section in settings.items()},
        }
        config["curves"]["pairs"] = "first"
        records["dataset.nc"] = dataset_form(aggregate_all(results, config))
        notes.append("aggregation: every metric's table merged in memory (lltax.results.infer.aggregate_all); writing it needs netCDF4")

    job("aggregate", aggregate)
    for record in sorted(results.rglob("*.json")):
        records[str(record.relative_to(results))] = json.loads(record.read_text())
    return records, seconds, notes


IGNORED_KEYS = ("runtime",)  # what a record says of its machine: differs by design between GPU and CPU


def form_differences(a, b, where: str = "") -> list[str]:
    """Where two records differ in form: keys, lengths, types; a number finite in one and NaN in
    the other, or not finite in either (NaN in the same places is allowed). Strings and the
    values of numbers are not compared."""
    number = (int, float)
    if isinstance(a, dict) and isinstance(b, dict):
        differences = []
        if set(a) != set(b):
            differences.append(
                f"{where or '.'}: keys only on the device {sorted(set(a) - set(b))}, only on the CPU {sorted(set(b) - set(a))}"
            )
        for key in sorted(set(a) & set(b)):
            if key not in IGNORED_KEYS:
                differences += form_differences(a[key], b[key], f"{where}.{key}")
        return differences
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} values on the device, {len(b)} on the CPU"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in form_differences(x, y, f"{where}[{i}]")]
    as_number = lambda v: float("nan") if v is None or v == "NaN" else v  # noqa: E731  # JSON writes NaN as null
    a, b = as_number(a), as_number(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return [] if type(a) is type(b) else [f"{where}: {a!r} on the device, {b!r} on the CPU"]
    if isinstance(a, number) and isinstance(b, number):
        if math.isinf(a) or math.isinf(b):
            return [f"{where}: not finite ({a} on the device, {b} on the CPU)"]
        if math.isnan(a) != math.isnan(b):
            return [f"{where}: {a} on the device, {b} on the CPU (NaN in one only)"]
        return []
    if type(a) is not type(b):
        return [f"{where}: {type(a).__name__} on the device, {type(b).__name__} on the CPU"]
    return []


def grid_cell(device: torch.device, sizes: dict, smoke: bool) -> dict:
    runs = {}
    with tempfile.TemporaryDirectory(prefix="lltax-gpu-check-cell-") as folder, settings_without_jsonschema() as how:
        devices = [str(device), "cpu"] if device.type == "cuda" else ["cpu"]
        for name in devices:
            records, seconds, notes = run_cell(name, Path(folder) / name, sizes)
            runs[name] = {"records": records, "seconds": seconds, "notes": notes}
    primary = runs[devices[0]]
    other = runs[devices[-1]]
    comparison = {}
    for name in sorted(set(primary["records"]) | set(other["records"])):
        if name not in primary["records"] or name not in other["records"]:
            comparison[name] = [f"written on {'the device' if name in primary['records'] else 'the CPU'} only"]
            continue
        comparison[name] = form_differences(primary["records"][name], other["records"][name])
    differing = {name: diffs for name, diffs in comparison.items() if diffs}
    # Every number finite (NaN allowed where a metric says "not measured"): also checked on one run.
    non_finite = form_differences(primary["records"], primary["records"])
    return {
        "settings": {"cell": sizes["cell"], "jobs": cell_settings(sizes), "settings_parsing": how},
        "devices": devices,
        "compared_with": "cpu" if len(devices) > 1 else "itself (no GPU: the CPU run's records checked alone)",
        "seconds": {name: run["seconds"] for name, run in runs.items()},
        "notes": primary["notes"],
        "records": sorted(primary["records"]),
        "same_form": not differing and not non_finite,
        "differences": {**differing, **({"non_finite": non_finite} if non_finite else {})},
    }


# ---------------------------------------------------------------------------------------------
# Summary: the goals, computed


def summary(report: Report) -> dict:
    sections = report.data["sections"]
    timings = report.result("training").get("cells", {})
    goals = {}

    ratios = {
        key: entry.get("over_same_precision_bare", {}).get("default")
        for key, entry in timings.items()
        if "over_same_precision_bare" in entry
    }
    measured = {key: value for key, value in ratios.items() if value is not None}
    goals["default_step_within_1.1x_of_bare"] = {
        "target": f"ms/step of train_model's default <= {GOAL_DEFAULT_OVER_BARE} x the bare fp32 loop, every cell",
        "values": measured,
        "met": all(v <= GOAL_DEFAULT_OVER_BARE for v in measured.values()) if measured else None,
    }

    cell = timings.get(f"width={GOAL_CELL[0]}/batch_size={GOAL_CELL[1]}", {})
    speedups = {m: s for m, s in cell.get("speedup_over_bare_fp32", {}).items() if m in MODES}
    fastest = max(speedups, key=speedups.get) if speedups else None
    goals["fastest_mode_3x_bare_fp32_at_width_64_batch_1024"] = {
        "target": f">= {GOAL_FASTEST_SPEEDUP}x the bare fp32 loop",
        "fastest_mode": fastest,
        "speedup": speedups.get(fastest) if fastest else None,
        "speedups": speedups,
        "met": speedups[fastest] >= GOAL_FASTEST_SPEEDUP if fastest else None,
        "note": None if cell else f"width {GOAL_CELL[0]} / batch {GOAL_CELL[1]} not measured (a --smoke run measures other sizes)",
    }

    determinism = report.result("determinism")
    identical = {mode: r.get("bit_identical") for mode, r in determinism.get("modes", {}).items() if "bit_identical" in r}
    resume = determinism.get("resume", {}).get("bit_identical")
    goals["bit_identical_twice_per_mode"] = {
        "target": "the same seed twice gives torch.equal parameters in every mode measured (not_measured: the others); a resumed run equals an uninterrupted one",
        "by_mode": identical,
        "resume": resume,
        "not_measured": sorted(m for m in (*BARE_MODES, *MODES) if m not in identical),
        "met": (all(identical.values()) and resume is True) if identical else None,
    }

    widths = report.result("trace_memory").get("widths", {})
    largest = max(widths, key=int) if widths else None
    record = widths.get(largest, {}) if largest else {}
    goals["no_out_of_memory_at_width_128"] = {
        "target": "the exact trace at width 128 within the default memory budget",
        "width": int(largest) if largest else None,
        "max_memory_allocated_bytes": record.get("max_memory_allocated_bytes"),
        "out_of_memory": bool(record.get("out_of_memory")),
        "met": (not record.get("error")) if largest == "128" else None,
        "note": None if largest == "128" else "width 128 not measured (a --smoke run uses tiny widths)",
    }
    goals["grid_cell_same_form_on_gpu_and_cpu"] = {
        "met": report.result("grid_cell").get("same_form"),
        "compared_with": report.result("grid_cell").get("compared_with"),
    }
    errors = sorted(name for name, entry in sections.items() if entry["status"] == "error")
    return {
        "device": report.data["run"]["device"],
        "gpu": report.result("environment").get("gpu"),
        "bf16_peak_tflops": report.result("matmul_peak").get("bf16_tflops"),
        "goals": goals,
        "sections": {name: entry["status"] for name, entry in sections.items()},
        "sections_with_errors": errors,
        "measurements_with_errors": errors_inside(report.data["sections"]),
    }


def errors_inside(value, where: str = "") -> list[str]:
    """Paths of every "error" entry below the sections (a failed measurement inside a section)."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "error" and item:
                found.append(where)
            else:
                found += errors_inside(item, f"{where}/{key}" if where else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += errors_inside(item, f"{where}[{index}]")
    return found


# ---------------------------------------------------------------------------------------------


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for gpu_check.json and gpu_check.log")
    parser.add_argument("--smoke", action="store_true", help="the same code on the CPU at tiny sizes (CI): well under a minute")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available; cpu with --smoke)")
    parser.add_argument(
        "--time-limit", type=float, default=None, help="seconds since start after which no new measurement starts (default 210; smoke 120)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: 1 with --smoke, else torch's choice)")
    parser.add_argument(
        "--all-modes-on-cpu",
        action="store_true",
        help="on a CPU, run the compile and channels_last modes too (slow; see Training.unavailable)",
    )
    args = parser.parse_args(argv)
    if args.time_limit is None:
        args.time_limit = 120.0 if args.smoke else 210.0
    return args


def main(argv=None) -> int:
    args = parse_arguments(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(args.out / "gpu_check.log", mode="w"), logging.StreamHandler(sys.stderr)],
        force=True,
    )
    device = torch.device(args.device or ("cpu" if args.smoke or not torch.cuda.is_available() else "cuda"))
    sizes = copy.deepcopy(SIZES["smoke" if args.smoke else "full"])
    from lltax.runtime.device import configure_torch

    # As every lltax job does: its threads, deterministic kernels, TF32 off. One thread for a smoke
    # run (a CPU shared with other work: two contended threads ran the Hessian 4x slower than one).
    configure_torch(args.threads or (1 if args.smoke else torch.get_num_threads()))
    report = Report(args.out, args, device)
    log.info("GPU check on %s (%s), sizes %s, time limit %.0f s", device, "smoke" if args.smoke else "full", sizes, args.time_limit)

    report.section("environment", lambda: environment(device))
    report.section("matmul_peak", lambda: matmul_peak(device, sizes))
    training = Training(device, sizes, args, report.result("matmul_peak").get("bf16_tflops"))
    eager = [mode for mode in MODES if MODES[mode].get("compile", "none") == "none"]
    compiled = [mode for mode in MODES if mode not in eager]
    goal = GOAL_CELL if GOAL_CELL[0] in sizes["widths"] and GOAL_CELL[1] in sizes["batch_sizes"] else None
    cells = [(w, b) for w in sizes["widths"] for b in sizes["batch_sizes"]]
    first = [goal] if goal else cells[:1]
    rest = [c for c in cells if c not in first]
    bare = list(BARE_MODES)
    # In order of what the goals need (the eager modes at the goal's cell, their determinism, the
    # combination compiled there), then the fixed-size sections, the other cells, the other
    # compiled modes; each training measurement starts only while --time-limit allows.
    report.section("training", lambda: training.timing(bare + eager, first))
    report.section("determinism", lambda: training.determinism_part(bare + eager, with_resume=True))
    report.section("training", lambda: training.timing(compiled[:1], first))
    report.section("determinism", lambda: training.determinism_part(compiled[:1]))
    report.section("trace_memory", lambda: trace_memory(device, sizes))
    report.section("grid_cell", lambda: grid_cell(device, sizes, args.smoke))
    report.section("hessian_tf32", lambda: hessian_tf32(device, sizes))
    report.section("landscape_and_curves", lambda: landscape_and_curves(device, sizes))
    report.section("training", lambda: training.timing(bare + eager, rest))
    for mode in compiled[1:]:
        report.section("training", lambda mode=mode: training.timing([mode], first))
        report.section("determinism", lambda mode=mode: training.determinism_part([mode]))
    report.section("training", lambda: training.timing(compiled, rest))

    log.info("summary: %s", json.dumps(json_safe(report.data["summary"]), indent=1))
    log.info("wrote %s in %.0f s", report.path, elapsed())
    return 0


if __name__ == "__main__":
    sys.exit(main())
