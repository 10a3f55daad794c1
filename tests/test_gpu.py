"""GPU slot pinning with file locks (no GPU needed: the slot count comes from LLTAX_GPUS)."""

import subprocess
import sys

import pytest

from lltax import gpu


def test_claims_distinct_slots_then_times_out(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(gpu, "_held_locks", [])
    assert gpu.claim_gpu_slot(2, tmp_path) == 0
    assert gpu.claim_gpu_slot(2, tmp_path) == 1
    import os

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    with pytest.raises(TimeoutError, match="no free GPU slot among 2"):
        gpu.claim_gpu_slot(2, tmp_path, timeout_s=0)
    for handle in gpu._held_locks:
        handle.close()


def test_lock_is_released_when_the_process_ends(tmp_path, monkeypatch):
    code = f"from lltax.gpu import claim_gpu_slot; print(claim_gpu_slot(1, {str(tmp_path)!r}))"
    for _ in range(2):  # the second process gets slot 0 again
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PATH": ""})
        assert out.stdout.strip() == "0"


def test_cpu_jobs_and_scheduler_choices_are_left_alone(monkeypatch):
    monkeypatch.setenv("LLTAX_GPUS", "2")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu.pin_gpu_if_needed(["hessian", "--device", "cpu"]) is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert gpu.pin_gpu_if_needed(["hessian", "--device", "cuda"]) is None
    monkeypatch.setenv("LLTAX_GPUS", "0")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert gpu.pin_gpu_if_needed(["hessian", "--device", "auto"]) is None


def test_a_gpu_count_that_is_not_a_number_is_named(monkeypatch):
    monkeypatch.setenv("LLTAX_GPUS", "abc")
    with pytest.raises(ValueError, match="LLTAX_GPUS='abc' is not a number of GPUs"):
        gpu.count_gpus()
