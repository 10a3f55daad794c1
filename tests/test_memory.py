"""Memory in bytes (lltax.runtime.memory): chunks chosen from a budget give the same numbers, in more
chunks; the activation estimate matches the layers' outputs; the paper preset fits its budget."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lltax.config.grid import expand_grid
from lltax.config.schema import load_config, validate_config
from lltax.metrics.hvp import HessianOperator
from lltax.metrics.trace import exact_trace
from lltax.models import build_model
from lltax.runtime.cost import job_bytes, memory_mb
from lltax.runtime.memory import DEFAULT_BUDGET_GB, GB, activation_elements, chunk_for_budget, hessian_chunks

RULES = ("train", "hessian", "cka", "landscape", "basin", "curve_fit", "curve_eval", "fge")


def _layer_outputs(model: nn.Module, example: torch.Tensor) -> int:
    """Elements of every leaf module's output, counted by forward hooks (each call); an empty
    Sequential (an identity shortcut) holds nothing of its own."""
    counts = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: counts.append(out.numel()))
        for m in model.modules()
        if not list(m.children()) and not isinstance(m, nn.Sequential)
    ]
    with torch.no_grad():
        model.eval()(example)
    for hook in hooks:
        hook.remove()
    return sum(counts)


@pytest.mark.parametrize(
    "name,width,shape",
    [
        ("resnet18", 4, (3, 32, 32)),
        ("vgg11", 4, (3, 32, 32)),
        ("resnet1d", 8, (1, 40)),
        ("resnet1d_20_noshort", 8, (1, 40)),
        ("mlp", 16, (1, 40)),
    ],
)
def test_activation_estimate_counts_every_layer_output(name, width, shape):
    model = build_model(name, width, 10, shape)
    measured = _layer_outputs(model, torch.zeros(1, *shape))
    # The flatten/input of the mlp is counted once by the estimate, as the Flatten module's output.
    assert activation_elements(name, width, shape) == measured


def test_chunk_for_budget_bounds():
    assert chunk_for_budget(1000, 10, held=500, upper=200) == 50
    assert chunk_for_budget(1e12, 10, upper=200) == 200  # a large budget keeps the configured chunk
    assert chunk_for_budget(100, 10, held=500, upper=200) == 1  # never below one sample


def _tiny_problem():
    torch.manual_seed(0)
    model = build_model("resnet1d", 4, 10, (1, 40)).double().eval()
    inputs = torch.randn(24, 1, 40, dtype=torch.float64)
    targets = torch.randint(0, 10, (24,))
    return model, inputs, targets


def _tiny_budget_chunks(model) -> dict:
    """The chunks a budget of a few hundred kB allows this model: a handful of samples."""
    parameters = sum(p.numel() for p in model.parameters())
    activations = activation_elements("resnet1d", 4, (1, 40))
    budget = 4 * (3 * parameters + 12 * (2 * parameters + 3 * activations))
    return hessian_chunks(budget, parameters, activations, held=0, chunk_size=200, max_iterations=0, trace_method="exact", trace_probes=3)


def test_tiny_budget_same_trace_more_chunks():
    model, inputs, targets = _tiny_problem()
    default = hessian_chunks(
        DEFAULT_BUDGET_GB * GB, 10**4, 10**3, held=0, chunk_size=200, max_iterations=100, trace_method="exact", trace_probes=3
    )
    assert default == {"hessian_vector_products": 200, "exact_trace": 200}  # small models keep their chunks
    tiny = _tiny_budget_chunks(model)
    assert 1 < tiny["exact_trace"] < len(inputs) and tiny["hessian_vector_products"] < len(inputs)
    whole, _ = exact_trace(model, inputs, chunk_size=200)
    chunked, _ = exact_trace(model, inputs, chunk_size=tiny["exact_trace"])
    assert chunked == pytest.approx(whole, rel=1e-10)
    whole_operator = HessianOperator(model, inputs, targets, 200)
    chunked_operator = HessianOperator(model, inputs, targets, tiny["hessian_vector_products"])
    assert len(chunked_operator.chunks) > len(whole_operator.chunks) == 1
    vectors = torch.randn(whole_operator.dimension, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(chunked_operator.matmat(vectors), whole_operator.matmat(vectors), rtol=1e-9, atol=1e-12)


def test_schema_default_is_the_cli_default():
    from lltax.cli import VOCABULARY

    config = validate_config({"experiment": "x", "grid": {"width": [4]}})
    assert config["memory_budget_gb"] == DEFAULT_BUDGET_GB == VOCABULARY["memory_budget_gb"][1]["default"]


def test_paper_preset_plans_no_job_above_its_budget():
    config = load_config("configs/yang2021_resnet18_cifar10.yaml")
    budget = config["memory_budget_gb"] * GB
    cells = expand_grid(config["grid"])
    for cell in cells:
        for rule in RULES:
            assert job_bytes(rule, cell, config) <= budget, (rule, cell)
            assert memory_mb(rule, cell, config) <= config["cluster"]["min_mem_mb"] + budget / 1e6 + 1000
    widest = max(cells, key=lambda c: c["width"])
    # ResNet18 at width 128: 200 samples' per-sample gradients alone would be 36 GB.
    assert job_bytes("hessian", widest, config) > 20 * GB
    # A tighter budget takes smaller chunks (down to the Lanczos vectors' 18 GB at width 128).
    tighter = {**config, "memory_budget_gb": 25}
    assert job_bytes("hessian", widest, tighter) <= 25 * GB
