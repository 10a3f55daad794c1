"""Device selection (the config's ``device`` key: auto | cpu | cuda) and the torch settings that make a job reproducible."""

from __future__ import annotations

import os

import torch


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        # A ValueError: the user's to fix, reported in one line by the CLI.
        raise ValueError(
            f"device 'cuda' was requested but torch {torch.__version__} sees no CUDA device on this machine; use device: auto or cpu"
        )
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be one of auto, cpu, cuda; got {name!r}")
    return torch.device(name)


def configure_torch(threads: int) -> dict:
    """Make this process's torch results a function of its inputs and ``threads`` only.

    Sets torch's intra- and inter-op thread counts (a reduction split over another number of
    threads sums in another order: 1 vs 2 threads gives different models after two epochs),
    turns on deterministic algorithms where torch has them (ops without one warn), and fixes
    cuBLAS's workspace so CUDA matrix products are reproducible. Called once per ``lltax``
    process, before any work; returns ``runtime_info()`` for the job's provenance.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"--threads must be an integer >= 1, got {threads!r}")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS first starts
    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != threads:
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # only settable before the first inter-op parallel work
            pass
    # torch.use_deterministic_algorithms also imports torch._inductor (~1 s per job) only to
    # set a torch.compile flag; lltax compiles nothing, so set the kernel flag directly.
    set_deterministic = getattr(torch._C, "_set_deterministic_algorithms", None)
    if set_deterministic is None:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        set_deterministic(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # IEEE float32 everywhere unless a job asks otherwise (train.precision: tf32): torch runs
    # CUDA convolutions in TF32 by default, whose ~1e-3 rounding is above the Hessian's tolerance.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return runtime_info()


# Environment variables that pick the CPU kernels (instruction set) of ATen, oneDNN and MKL;
# each changes the rounding, so trained weights differ between, e.g., AVX-512 and AVX2 paths.
CPU_KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")


def runtime_info(device: torch.device | str | None = None, precision: str = "fp32") -> dict:
    """What besides inputs and versions decides a result's bits: threads, CPU kernels,
    determinism, TF32, the arithmetic (``precision``, the train key's values), on a CUDA
    ``device`` the GPU model and the CUDA and cuDNN versions, and the code: the running
    command and the SHA-256 of its source files (``lltax.runtime.code_sources``)."""
    info = {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_kernel_pins": {name: os.environ.get(name) for name in CPU_KERNEL_VARIABLES if os.environ.get(name)},
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "precision": precision,
    }
    if device is not None:
        info["device"] = str(device)
    from lltax.runtime.code_sources import running

    if running:  # the command's code, hashed when it started (lltax.runtime.code_sources)
        info["code"] = dict(running)
    if device is not None and torch.device(device).type == "cuda":
        index = torch.device(device).index
        info |= {
            "gpu": torch.cuda.get_device_name(index),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "tf32_matmul": precision == "tf32" or torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": precision == "tf32" or torch.backends.cudnn.allow_tf32,
        }
    return info
