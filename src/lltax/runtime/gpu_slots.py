"""Pin a job to a free GPU slot before torch is imported.

Snakemake's ``gpu`` resource bounds how many GPU jobs run at once but assigns no device, so
each ``lltax`` process claims a slot with an exclusive file lock (released by the OS when the
process ends, even if it is killed) and exports ``CUDA_VISIBLE_DEVICES`` accordingly.

- The candidates are the devices the process may see: every GPU ``nvidia-smi -L`` lists (a
  GPU split into MIG instances: its instances), restricted to an inherited
  ``CUDA_VISIBLE_DEVICES`` (from ``salloc``, a login script, a container) when there is one.
- Devices are named by UUID (``GPU-...``, ``MIG-...``): the lock names and the exported
  ``CUDA_VISIBLE_DEVICES`` do not depend on the enumeration order. Without ``nvidia-smi`` (or
  when it fails or hangs) the count comes from torch, in a subprocess, and devices are named by
  index; this is said on stderr. ``LLTAX_GPUS`` overrides the count (indices too).
- Each device has ``LLTAX_GPU_SLOTS`` slots (the config's ``gpu_slots_per_device``, default 1),
  so several small jobs can share a GPU; the workflow's ``gpu`` resource counts slots. Jobs
  fill slot 0 of every device before slot 1 of any.
- Locks live in ``LLTAX_GPU_LOCK_DIR``, by default a folder of this user's own in the system's
  temporary directory (mode 0700). A folder several users share must be given explicitly.

Nothing here imports torch: CUDA reads the variable when torch initialises it. Every failure
is a ``GpuSlotError`` (a ValueError: one line from the CLI) naming ``LLTAX_GPU_LOCK_DIR``
where the lock folder is the cause.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_held_locks: list = []  # keep lock files open for the life of the process
_listing_cache: dict[str, tuple[list[str], str | None]] = {}
# nvidia-smi answers within a second when the driver is healthy; a hung one is given up on.
SMI_TIMEOUT_S = 5.0
TORCH_TIMEOUT_S = 60.0
# errno values of a file system without flock (Lustre mounted noflock: ENOSYS; NFS without
# lockd: ENOLCK; some FUSE file systems: EOPNOTSUPP / EINVAL).
NO_FLOCK = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


class GpuSlotError(ValueError):
    """A GPU slot could not be claimed; the message says why in one line."""


def _say(message: str) -> None:
    print(f"lltax: {message}", file=sys.stderr)


def list_devices() -> list[str]:
    """The GPUs of this machine: UUIDs from ``nvidia-smi -L`` (MIG instances in place of
    their GPU), or indices ("0", "1", ...) from ``LLTAX_GPUS`` or, without a working
    nvidia-smi, torch's device count. Not restricted by CUDA_VISIBLE_DEVICES."""
    return _listing()[0]


def _listing() -> tuple[list[str], str | None]:
    """(devices, why nvidia-smi was not used or None); computed once per process."""
    key = os.environ.get("LLTAX_GPUS", "") + "|" + os.environ.get("PATH", "")
    if key not in _listing_cache:
        _listing_cache[key] = _list_devices_uncached()
    return _listing_cache[key]


def _list_devices_uncached() -> tuple[list[str], str | None]:
    if "LLTAX_GPUS" in os.environ:
        text = os.environ["LLTAX_GPUS"]
        if not text.strip().isdigit():
            raise GpuSlotError(f"environment variable LLTAX_GPUS={text!r} is not a number of GPUs (an integer >= 0)")
        return [str(i) for i in range(int(text))], None
    smi = shutil.which("nvidia-smi")
    if smi is None:
        problem = "nvidia-smi is not on the PATH"
    else:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=SMI_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            problem = f"nvidia-smi -L did not answer within {SMI_TIMEOUT_S:.0f} s"
        except OSError as e:
            problem = f"nvidia-smi -L could not run ({e.strerror or e})"
        else:
            if out.returncode == 0:
                return parse_smi_listing(out.stdout), None
            detail = (out.stderr or out.stdout).strip().splitlines()
            problem = f"nvidia-smi -L failed (exit {out.returncode}{': ' + detail[0] if detail else ''})"
    if smi is None and not gpu_device_nodes():
        return [], problem  # no GPU for torch either: spare every plan the ~2 s of importing torch to ask
    count = torch_device_count()
    devices = [str(i) for i in range(count)]
    if count or smi is not None:  # silent only on a machine with neither
        _say(f"{problem}; torch sees {count} CUDA device(s){', claimed by index' if count else ''}")
    return devices, problem


def parse_smi_listing(text: str) -> list[str]:
    """UUIDs from ``nvidia-smi -L``: a GPU's, or its MIG instances' when it has any."""
    devices: list[list[str]] = []  # per GPU: [its uuid, MIG uuids...]
    for line in text.splitlines():
        found = re.search(r"\(UUID: ([^)\s]+)\)", line)
        if line.startswith("GPU ") and found:
            devices.append([found.group(1)])
        elif line.lstrip().startswith("MIG ") and found and devices:
            devices[-1].append(found.group(1))
    return [uuid for gpu in devices for uuid in (gpu[1:] or gpu[:1])]


def gpu_device_nodes() -> bool:
    """Whether this machine may have a GPU that torch could use without nvidia-smi: not Linux
    (no device files to look at), or a device file of an NVIDIA GPU (/dev/nvidia0, ...) or of
    AMD's ROCm (/dev/kfd)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/dev/kfd")


def torch_device_count() -> int:
    """torch's CUDA device count, asked in a subprocess (CUDA, once initialised in this
    process, would ignore the CUDA_VISIBLE_DEVICES set afterwards); 0 when torch cannot say."""
    code = "import torch; print(torch.cuda.device_count())"
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TORCH_TIMEOUT_S, env=env)
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else 0
    except (subprocess.SubprocessError, OSError, ValueError, IndexError):
        return 0


def count_gpus() -> int:
    """How many GPUs this machine has (``list_devices``), within an inherited
    CUDA_VISIBLE_DEVICES."""
    return len(visible_devices())


def visible_devices() -> list[str]:
    """The devices a job here may claim: ``list_devices()``, restricted to an inherited
    CUDA_VISIBLE_DEVICES (its entries by index or UUID, in its order)."""
    devices = list_devices()
    inherited = os.environ.get("CUDA_VISIBLE_DEVICES")
    if inherited is None:
        return devices
    chosen = []
    for entry in (e.strip() for e in inherited.split(",")):
        if not entry:
            continue
        if entry.isdigit():
            if int(entry) >= len(devices):
                break  # CUDA stops at the first entry that is not a device
            chosen.append(devices[int(entry)])
        else:
            match = [d for d in devices if d == entry or (len(entry) >= 5 and d.startswith(entry))]
            if not match:
                break
            chosen.append(match[0])
    return chosen


def slots_per_device() -> int:
    text = os.environ.get("LLTAX_GPU_SLOTS", "1")
    if not text.strip().isdigit() or int(text) < 1:
        raise GpuSlotError(f"environment variable LLTAX_GPU_SLOTS={text!r} is not a number of slots per GPU (an integer >= 1)")
    return int(text)


def default_lock_dir() -> Path:
    """This user's lock folder; a SLURM job naming GPUs by index gets its own (indices are
    relative to each job's allocation)."""
    return Path(tempfile.gettempdir()) / f"lltax-gpu-locks-{os.getuid()}"


def lock_dir() -> tuple[Path, bool]:
    """(the lock folder, whether the user chose it with LLTAX_GPU_LOCK_DIR)."""
    chosen = os.environ.get("LLTAX_GPU_LOCK_DIR")
    return (Path(chosen), True) if chosen else (default_lock_dir(), False)


def prepare_lock_dir(folder: Path, chosen: bool) -> None:
    """Create the folder (0700 when it is this user's default); refuse one that is not a
    folder, that another user owns (the default), or that others may write (the default)."""
    hint = "set LLTAX_GPU_LOCK_DIR to a folder of your own" if not chosen else "fix it or point LLTAX_GPU_LOCK_DIR elsewhere"
    where = f"GPU lock folder {folder}" + (" (LLTAX_GPU_LOCK_DIR)" if chosen else "")
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise GpuSlotError(f"{where} exists and is not a folder; {hint}") from None
    except OSError as e:
        raise GpuSlotError(f"{where} cannot be created ({e.strerror or e}); {hint}") from None
    try:
        info = folder.lstat() if not chosen else folder.stat()
    except OSError as e:
        raise GpuSlotError(f"{where} cannot be used ({e.strerror or e}); {hint}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise GpuSlotError(f"{where} is not a folder (a link?); {hint}")
    if not chosen:
        if info.st_uid != os.getuid():
            raise GpuSlotError(f"{where} belongs to another user (uid {info.st_uid}); {hint}")
        if info.st_mode & 0o022:
            raise GpuSlotError(f"{where} is writable by other users (mode {stat.S_IMODE(info.st_mode):o}); {hint}")


def _open_lock(path: Path, chosen: bool):
    """An open file to flock: created 0600 in the user's own folder, 0666 (less umask) in a
    chosen one that others may share; another user's existing lock file is opened read-only."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 if chosen else 0o600)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY)
    return os.fdopen(fd, "r")


def claim_gpu_slot(
    devices: list[str] | int, slots: int = 1, folder: str | Path | None = None, timeout_s: float = 3600.0
) -> tuple[str, int]:
    """Lock a free (device, slot), set CUDA_VISIBLE_DEVICES to the device, return the pair.

    ``devices``: device names (UUIDs or indices), or a count for indices 0..n-1."""
    if isinstance(devices, int):
        devices = [str(i) for i in range(devices)]
    chosen = folder is not None or "LLTAX_GPU_LOCK_DIR" in os.environ
    folder = Path(folder) if folder is not None else lock_dir()[0]
    where = f"GPU lock folder {folder}" + (" (LLTAX_GPU_LOCK_DIR)" if chosen else "")
    prepare_lock_dir(folder, chosen)
    # Devices named by index are only unique within one SLURM job's allocation.
    if devices and devices[0].isdigit() and os.environ.get("SLURM_JOB_ID") and not chosen:
        folder = folder / f"slurm-job-{os.environ['SLURM_JOB_ID']}"
        prepare_lock_dir(folder, chosen)
    deadline = time.monotonic() + timeout_s
    while True:
        for slot in range(slots):
            for device in devices:
                path = folder / f"{device}.slot{slot}.lock"
                try:
                    handle = _open_lock(path, chosen)
                except OSError as e:
                    raise GpuSlotError(
                        f"cannot open {path} in the {where} ({e.strerror or e}); set LLTAX_GPU_LOCK_DIR to a folder you can write"
                    ) from None
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                except OSError as e:
                    handle.close()
                    if e.errno in NO_FLOCK:
                        raise GpuSlotError(
                            f"the file system of the {where} does not support flock ({e.strerror}); "
                            "set LLTAX_GPU_LOCK_DIR to a local folder (e.g. under /tmp)"
                        ) from None
                    raise GpuSlotError(f"cannot lock {path} in the {where} ({e.strerror or e})") from None
                _held_locks.append(handle)
                os.environ["CUDA_VISIBLE_DEVICES"] = device
                return device, slot
        if time.monotonic() > deadline:
            raise GpuSlotError(
                f"no free GPU slot among {len(devices)} device(s) x {slots} slot(s) after {timeout_s:.0f} s (locks in the {where})"
            )
        time.sleep(1.0)


def pin_gpu_if_needed(argv: list[str]) -> tuple[str, int] | None:
    """Claim a GPU slot for a job that may use CUDA (not for ``--device cpu``) among the
    devices it may see; None when there are none."""
    if "cpu" in _device_arguments(argv):
        return None
    devices = visible_devices()
    if not devices:
        return None
    return claim_gpu_slot(devices, slots_per_device())


def _device_arguments(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--device"]
