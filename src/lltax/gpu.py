"""Pin a job to one free GPU before torch is imported.

Snakemake's ``gpu`` resource bounds how many GPU jobs run at once but assigns no device, so
each ``lltax`` process claims a slot with an exclusive file lock (released by the OS when the
process ends, even if it is killed) and exports ``CUDA_VISIBLE_DEVICES`` accordingly.
Nothing here imports torch: CUDA reads the variable when torch initialises it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

_held_locks: list = []  # keep lock files open for the life of the process


def count_gpus() -> int:
    """``LLTAX_GPUS`` if set, else the number of GPUs ``nvidia-smi -L`` lists (0 without it)."""
    if "LLTAX_GPUS" in os.environ:
        text = os.environ["LLTAX_GPUS"]
        if not text.strip().isdigit():
            raise ValueError(f"environment variable LLTAX_GPUS={text!r} is not a number of GPUs (an integer >= 0)")
        return int(text)
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return 0
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))


def claim_gpu_slot(num_gpus: int, lock_dir: str | Path | None = None, timeout_s: float = 3600.0) -> int:
    """Lock the first free slot in ``range(num_gpus)``, set CUDA_VISIBLE_DEVICES, return it."""
    lock_dir = Path(lock_dir or os.environ.get("LLTAX_GPU_LOCK_DIR", Path(tempfile.gettempdir()) / "lltax-gpu-locks"))
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    while True:
        for slot in range(num_gpus):
            handle = open(lock_dir / f"gpu{slot}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held_locks.append(handle)
            os.environ["CUDA_VISIBLE_DEVICES"] = str(slot)
            return slot
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU slot among {num_gpus} after {timeout_s:.0f} s (locks in {lock_dir})")
        time.sleep(1.0)


def pin_gpu_if_needed(argv: list[str]) -> int | None:
    """Claim a GPU slot for a job that may use CUDA, unless a scheduler already chose one.

    SLURM and users who set CUDA_VISIBLE_DEVICES themselves are left alone.
    """
    if "CUDA_VISIBLE_DEVICES" in os.environ or "cpu" in _device_arguments(argv):
        return None
    num_gpus = count_gpus()
    return claim_gpu_slot(num_gpus) if num_gpus > 0 else None


def _device_arguments(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--device"]
