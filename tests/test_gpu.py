"""GPU slot pinning with file locks (no GPU needed: a fake nvidia-smi on the PATH, or LLTAX_GPUS)."""

import os
import subprocess
import sys
import time

import pytest

from lltax.runtime import gpu_slots as gpu

UUIDS = ["GPU-11111111-aaaa-bbbb-cccc-000000000000", "GPU-22222222-aaaa-bbbb-cccc-000000000001"]
LISTING = "".join(f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: {uuid})\\n" for i, uuid in enumerate(UUIDS))


def fake_smi(folder, body):
    """An nvidia-smi on a PATH of its own (with this Python's folder, for the subprocesses)."""
    folder.mkdir(exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return f"{folder}{os.pathsep}{os.path.dirname(sys.executable)}{os.pathsep}/usr/bin:/bin"


@pytest.fixture
def two_gpus(tmp_path, monkeypatch):
    """A machine whose nvidia-smi lists two GPUs; no inherited choices; fresh caches and locks."""
    path = fake_smi(tmp_path / "bin", f"printf '{LISTING}'")
    monkeypatch.setenv("PATH", path)
    for name in ("CUDA_VISIBLE_DEVICES", "LLTAX_GPUS", "LLTAX_GPU_SLOTS", "SLURM_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLTAX_GPU_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setattr(gpu, "_held_locks", [])
    monkeypatch.setattr(gpu, "_listing_cache", {})
    yield path
    for handle in gpu._held_locks:
        handle.close()


def test_devices_by_uuid_mig_instances_in_place_of_their_gpu():
    listing = (
        "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaa)\n"
        "  MIG 3g.20gb     Device  0: (UUID: MIG-1111)\n"
        "  MIG 3g.20gb     Device  1: (UUID: MIG-2222)\n"
        "GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-bbbb)\n"
    )
    assert gpu.parse_smi_listing(listing) == ["MIG-1111", "MIG-2222", "GPU-bbbb"]


def test_claims_distinct_slots_then_times_out(two_gpus, monkeypatch):
    assert gpu.pin_gpu_if_needed(["hessian", "--device", "cuda"]) == (UUIDS[0], 0)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")  # as a second process would start
    assert gpu.pin_gpu_if_needed(["hessian", "--device", "auto"]) == (UUIDS[1], 0)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == UUIDS[1]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with pytest.raises(gpu.GpuSlotError, match=r"no free GPU slot among 2 device\(s\) x 1 slot\(s\).*LLTAX_GPU_LOCK_DIR"):
        gpu.claim_gpu_slot(UUIDS, 1, timeout_s=0)


CLAIM = "from lltax.runtime.gpu_slots import pin_gpu_if_needed; import sys, time; print(*pin_gpu_if_needed(['train', '--device', 'cuda']), flush=True); time.sleep(float(sys.argv[1]))"


def test_four_concurrent_jobs_with_two_slots_per_gpu_get_four_distinct_slots(two_gpus):
    env = {**os.environ, "LLTAX_GPU_SLOTS": "2"}
    jobs = [subprocess.Popen([sys.executable, "-c", CLAIM, "4"], stdout=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    claims = [tuple(job.stdout.readline().split()) for job in jobs]  # each holds its slot while the others claim
    assert sorted(claims) == sorted((uuid, str(slot)) for uuid in UUIDS for slot in (0, 1))
    # A fifth job waits for a slot: it gets the first one freed.
    fifth = subprocess.Popen([sys.executable, "-c", CLAIM, "0"], stdout=subprocess.PIPE, text=True, env=env)
    time.sleep(1.5)
    assert fifth.poll() is None
    for job in jobs:
        job.wait(timeout=30)
    assert fifth.communicate(timeout=30)[0].split()[1] in ("0", "1")


def test_an_inherited_visible_set_confines_the_claims(two_gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv("LLTAX_GPU_SLOTS", "2")
    assert gpu.count_gpus() == 1
    assert gpu.pin_gpu_if_needed(["train", "--device", "cuda"]) == (UUIDS[1], 0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # a second job started with the same inherited set
    assert gpu.pin_gpu_if_needed(["train", "--device", "cuda"]) == (UUIDS[1], 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", UUIDS[0])  # by UUID too
    assert gpu.visible_devices() == [UUIDS[0]]


def test_lock_is_released_when_the_process_ends(tmp_path):
    code = "from lltax.runtime.gpu_slots import claim_gpu_slot; print(*claim_gpu_slot(1))"
    env = {"PATH": "", "LLTAX_GPU_LOCK_DIR": str(tmp_path)}
    for _ in range(2):  # the second process gets slot 0 of device 0 again
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        assert out.stdout.split() == ["0", "0"]


def test_cpu_jobs_are_left_alone(two_gpus):
    assert gpu.pin_gpu_if_needed(["hessian", "--device", "cpu"]) is None
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_without_a_working_nvidia_smi_torch_counts_and_it_is_said(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu, "torch_device_count", lambda: 2)
    monkeypatch.setattr(gpu, "gpu_device_nodes", lambda: True)  # as on a GPU machine without nvidia-smi
    monkeypatch.setattr(gpu, "SMI_TIMEOUT_S", 0.5)
    monkeypatch.delenv("LLTAX_GPUS", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    cases = {
        "missing": ("", "nvidia-smi is not on the PATH"),
        "failing": (
            "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver' >&2; exit 9",
            "failed (exit 9: NVIDIA-SMI has failed",
        ),
        "hanging": ("sleep 30", "nvidia-smi -L did not answer within 0 s"),
    }
    for name, (body, said) in cases.items():
        monkeypatch.setattr(gpu, "_listing_cache", {})
        monkeypatch.setenv("PATH", str(tmp_path / "empty") if name == "missing" else fake_smi(tmp_path / name, body))
        started = time.monotonic()
        assert gpu.list_devices() == ["0", "1"], name
        assert time.monotonic() - started < 5, name
        err = capsys.readouterr().err
        assert said in err and "torch sees 2 CUDA device(s), claimed by index" in err, (name, err)
    assert gpu.count_gpus() == 2 and capsys.readouterr().err == ""  # said once per process


def test_a_gpu_count_that_is_not_a_number_is_named(monkeypatch):
    monkeypatch.setattr(gpu, "_listing_cache", {})
    monkeypatch.setenv("LLTAX_GPUS", "abc")
    with pytest.raises(ValueError, match="LLTAX_GPUS='abc' is not a number of GPUs"):
        gpu.count_gpus()


def test_default_lock_folder_is_the_users_own(tmp_path, monkeypatch):
    monkeypatch.delenv("LLTAX_GPU_LOCK_DIR", raising=False)
    monkeypatch.setattr(gpu.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(gpu, "_held_locks", [])
    gpu.claim_gpu_slot(1)
    folder = tmp_path / f"lltax-gpu-locks-{os.getuid()}"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert oct((folder / "0.slot0.lock").stat().st_mode & 0o777) == "0o600"
    gpu._held_locks[0].close()


@pytest.mark.skipif(os.getuid() != 0, reason="giving a folder to another user needs root")
def test_a_lock_folder_of_another_user_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("LLTAX_GPU_LOCK_DIR", raising=False)
    monkeypatch.setattr(gpu.tempfile, "gettempdir", lambda: str(tmp_path))
    folder = tmp_path / f"lltax-gpu-locks-{os.getuid()}"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)  # planted by someone else under this user's name
    with pytest.raises(gpu.GpuSlotError, match=r"belongs to another user \(uid 65534\); set LLTAX_GPU_LOCK_DIR"):
        gpu.claim_gpu_slot(1)
    # Through the CLI: one line, no traceback, exit 1.
    env = {"PATH": "", "LLTAX_GPUS": "1", "TMPDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "lltax.cli", "hessian", "--device", "cuda"], capture_output=True, text=True, env=env)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "LLTAX_GPU_LOCK_DIR" in out.stderr, out.stderr
    # Another user's 0700 folder named by LLTAX_GPU_LOCK_DIR: a user who cannot enter it is told so.
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)  # root's; the claim below runs as nobody
    code = (
        "import os; from lltax.runtime.gpu_slots import claim_gpu_slot, GpuSlotError\n"
        "os.setuid(65534)\n"
        "try: claim_gpu_slot(1)\n"
        "except GpuSlotError as e: print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": "", "LLTAX_GPU_LOCK_DIR": str(theirs)})
    assert out.stdout.count("\n") == 1 and "(LLTAX_GPU_LOCK_DIR)" in out.stdout and "Permission denied" in out.stdout, out


def test_lock_folders_that_cannot_be_used_are_named(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu, "_held_locks", [])
    plain = tmp_path / "plain"
    plain.write_text("")
    monkeypatch.setenv("LLTAX_GPU_LOCK_DIR", str(plain))
    with pytest.raises(gpu.GpuSlotError, match=r"plain \(LLTAX_GPU_LOCK_DIR\) exists and is not a folder"):
        gpu.claim_gpu_slot(1)


def test_a_file_system_without_flock_is_named(tmp_path, monkeypatch):
    import errno

    from lltax.storage import atomic_files as io

    def no_flock(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(gpu.fcntl, "flock", no_flock)
    monkeypatch.setenv("LLTAX_GPU_LOCK_DIR", str(tmp_path / "locks"))
    with pytest.raises(gpu.GpuSlotError, match=r"does not support flock \(No locks available\); set LLTAX_GPU_LOCK_DIR to a local folder"):
        gpu.claim_gpu_slot(1)
    with pytest.raises(OSError, match=r"results folder does not support flock \(No locks available; e.g. Lustre mounted with noflock\)"):
        io.hold_results_lock(tmp_path / "results")
    (tmp_path / "results" / ".lltax.lock").write_text("")
    assert io.results_folder_holder(tmp_path / "results") is None


def test_without_nvidia_smi_and_gpu_device_files_torch_is_not_asked(tmp_path, monkeypatch):
    """No nvidia-smi and no /dev/nvidia* or /dev/kfd: no GPU, said without importing torch
    (every workflow plan with device auto asked it, ~2 s)."""

    def never():
        raise AssertionError("torch was asked")

    monkeypatch.setattr(gpu, "torch_device_count", never)
    monkeypatch.setattr(gpu, "gpu_device_nodes", lambda: False)
    monkeypatch.setattr(gpu, "_listing_cache", {})
    monkeypatch.delenv("LLTAX_GPUS", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert gpu.list_devices() == [] and gpu.count_gpus() == 0
