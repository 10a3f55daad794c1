"""Job cost estimates: FLOPs exact for the registered models, requests that follow the cost."""

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lltax.config.schema import validate_config
from lltax.models import build_model
from lltax.runtime.cost import forward_flops, items_per_job, memory_mb, runtime_minutes, training_steps


def counted_flops(model, width, input_shape):
    net = build_model(model, width, 10, input_shape).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, *input_shape))
    return counter.get_total_flops()


@pytest.mark.parametrize(
    "model,input_shape,widths",
    [
        ("resnet18", (3, 32, 32), [2, 5, 16]),
        ("vgg11", (3, 32, 32), [2, 7, 16]),
        ("resnet1d", (1, 40), [1, 3, 16, 48]),
        ("mlp", (1, 40), [1, 8, 100]),
        ("resnet18", (3, 64, 64), [4]),  # larger images: FLOPs scale with the pixels
        ("resnet1d", (1, 80), [8]),
    ],
)
def test_forward_flops_match_the_flop_counter(model, input_shape, widths):
    for width in widths:
        assert forward_flops(model, width, input_shape) == pytest.approx(counted_flops(model, width, input_shape), rel=0.01)


def test_one_channel_images_are_within_three_percent():
    assert forward_flops("resnet18", 8, (1, 32, 32)) == pytest.approx(counted_flops("resnet18", 8, (1, 32, 32)), rel=0.03)


def test_training_steps_drop_the_last_partial_batch():
    assert training_steps(1000, 128, 3) == 3 * 7  # as lltax.training.loop: full batches only
    assert training_steps(1024, 128, 1) == 8


def config(**changes):
    base = {
        "experiment": "cost",
        "device": "cuda",
        "dataset": {"name": "cifar10"},
        "model": {"name": "resnet18"},
        "grid": {"width": [8, 64], "batch_size": [16, 1024]},
        "seeds": 2,
        "train": {"epochs": 200},
    }
    return validate_config({**base, **changes})


def cell(width, batch_size, train_fraction=1.0):
    return {
        "width": width,
        "batch_size": batch_size,
        "train_fraction": train_fraction,
        "label_noise": 0.0,
        "learning_rate": 0.1,
        "weight_decay": 5e-4,
    }


def test_runtime_follows_steps_width_and_data():
    c = config()
    # A narrow model: a GPU step is bound by its launches, and batch 16 takes 64x the steps.
    small_batch, large_batch = runtime_minutes("train", cell(8, 16), c), runtime_minutes("train", cell(8, 1024), c)
    assert small_batch > 1.5 * large_batch
    assert runtime_minutes("train", cell(64, 128), c) > runtime_minutes("train", cell(8, 128), c)
    assert runtime_minutes("train", cell(64, 128, 0.1), c) < runtime_minutes("train", cell(64, 128), c)
    assert runtime_minutes("curve_fit", cell(64, 128), c) > c["cluster"]["min_runtime"]


def test_runtime_doubles_per_attempt_except_training_and_respects_the_settings():
    c = config()
    first = runtime_minutes("train", cell(64, 128), c)
    # Training resumes from its snapshot: a retry needs the same time; other jobs start over.
    assert runtime_minutes("train", cell(64, 128), c, attempt=3) == first
    fit = runtime_minutes("curve_fit", cell(64, 128), c)
    assert runtime_minutes("curve_fit", cell(64, 128), c, attempt=2) == 2 * fit
    assert runtime_minutes("curve_fit", cell(64, 128), c, attempt=3) == 4 * fit
    slower = config(cluster={"tflops": 1.0})
    assert runtime_minutes("train", cell(64, 128), slower) > first
    assert runtime_minutes("distance", cell(64, 128), c) == c["cluster"]["min_runtime"]
    # The exact formula: safety x (startup + seeds x (steps x overhead + FLOPs / throughput)):
    # one job trains every seed of its cell in turn.
    exact = config(cluster={"tflops": 1.0, "step_overhead_ms": 0, "startup_seconds": 0, "safety": 1, "min_runtime": 1})
    flops = 200 * 50000 * 3 * forward_flops("resnet18", 64, (3, 32, 32)) + 60000 * forward_flops("resnet18", 64, (3, 32, 32))
    seeds = len(exact["seeds"]) if isinstance(exact["seeds"], list) else exact["seeds"]
    assert seeds > 1 and items_per_job("train", exact) == seeds
    assert runtime_minutes("train", cell(64, 128), exact) == -(-seeds * flops / 1e12 // 60)
    # Curves: one job fits every pair of its cell.
    pairs = {**exact, "curves": {**exact["curves"], "pairs": "all"}}
    assert items_per_job("curve_fit", pairs) == seeds * (seeds - 1) // 2 and items_per_job("cka", pairs) == 1
    # cluster.seeds_per_job 1: one seed or curve per job.
    one = {**pairs, "cluster": {**pairs["cluster"], "seeds_per_job": 1}}
    assert items_per_job("train", one) == items_per_job("curve_fit", one) == 1 and items_per_job("hessian", one) == seeds
    assert runtime_minutes("train", cell(64, 128), one) == -(-flops / 1e12 // 60)


def test_memory_grows_with_the_model():
    c = config()
    assert memory_mb("train", cell(256, 128), c) > memory_mb("train", cell(8, 128), c) >= c["cluster"]["min_mem_mb"]
    assert memory_mb("train", cell(8, 128), c) % 1000 == 0


def test_on_a_gpu_launches_overlap_compute_and_each_mode_has_its_own_rates(tmp_path):
    """An item takes max(steps x launch cost, FLOPs / throughput) on a GPU (their sum on the
    CPU); precision and compile pick the defaults; a gpu_check.json replaces the throughput of
    the training rules by the one measured for their mode."""
    from lltax.runtime.cost import GPU_TFLOPS, LAUNCH_MS, estimate_seconds, job_work

    base = config(cluster={"startup_seconds": 0})
    seeds = items_per_job("train", base)
    for width, batch in ((8, 16), (64, 1024)):
        flops, steps = job_work("train", cell(width, batch), base)
        for train, (tflops, launch) in {
            (): (GPU_TFLOPS["fp32"], LAUNCH_MS["none"]),
            (("precision", "bf16"),): (GPU_TFLOPS["bf16"], LAUNCH_MS["none"]),
            (("compile", "reduce-overhead"),): (GPU_TFLOPS["fp32"], LAUNCH_MS["reduce-overhead"]),
        }.items():
            c = {**base, "train": {**base["train"], **dict(train)}}
            expected = seeds * max(steps * launch / 1000, flops / (tflops * 1e12))
            assert estimate_seconds("train", cell(width, batch), c) == pytest.approx(expected, rel=1e-12)
    cpu = {**base, "device": "cpu"}
    flops, steps = job_work("train", cell(8, 16), cpu)
    assert estimate_seconds("train", cell(8, 16), cpu) == pytest.approx(seeds * (steps * 8e-3 + flops / (0.02 * cpu["threads"] * 1e12)))

    # Measured: bf16 at 40 TFLOP/s on width 16 and 80 on width 64 (batch 1024); the nearest step in FLOPs is used.
    cells = {
        f"width={w}/batch_size=1024": {"width": w, "batch_size": 1024, "modes": {"bf16": {"model_tflops": t}, "default": {"error": "x"}}}
        for w, t in ((16, 40.0), (64, 80.0))
    }
    path = tmp_path / "gpu_check.json"
    path.write_text(json.dumps({"sections": {"training": {"result": {"cells": cells, "settings": {"input_shape": [3, 32, 32]}}}}}))
    measured = {**base, "train": {**base["train"], "precision": "bf16"}, "cluster": {**base["cluster"], "gpu_check": str(path)}}
    flops, steps = job_work("train", cell(64, 1024), measured)
    assert estimate_seconds("train", cell(64, 1024), measured) == pytest.approx(seeds * max(steps * 5e-3, flops / 80e12))
    flops, steps = job_work("train", cell(16, 1024), measured)
    assert estimate_seconds("train", cell(16, 1024), measured) == pytest.approx(seeds * max(steps * 5e-3, flops / 40e12))
    fp32 = {**measured, "train": base["train"]}  # no fp32 figure measured: the estimate
    flops, steps = job_work("train", cell(64, 1024), fp32)
    assert estimate_seconds("train", cell(64, 1024), fp32) == pytest.approx(seeds * max(steps * 5e-3, flops / 10e12))
