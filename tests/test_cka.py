"""Linear CKA: against the HSIC formula, its invariances, pairing, and the CLI."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from lltax import cli
from lltax.jobs import cka as cka_job
from lltax.metrics.cka import linear_cka, model_outputs, models_cka, pairwise_cka
from lltax.metrics.mixup import mixup_batches
from lltax.storage.checkpoint import save_checkpoint


def hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA by its definition: HSIC with explicit centering matrices (Kornblith et al. 2019, eq. 3-4)."""
    n = len(x)
    centering = np.eye(n) - np.ones((n, n)) / n
    k, ell = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ centering @ b @ centering) / (n - 1) ** 2

    return hsic(k, ell) / math.sqrt(hsic(k, k) * hsic(ell, ell))


def correlated_pair(n: int, p: int, q: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, p, generator=generator, dtype=torch.float64) + 3.0  # non-zero mean: centering matters
    y = x @ torch.randn(p, q, generator=generator, dtype=torch.float64) + 0.5 * torch.randn(n, q, generator=generator, dtype=torch.float64)
    return x, y


@pytest.mark.parametrize(("n", "p", "q", "seed"), [(50, 7, 4, 0), (30, 40, 10, 1), (12, 3, 3, 2)])
def test_linear_cka_matches_hsic_definition(n, p, q, seed):
    x, y = correlated_pair(n, p, q, seed)
    expected = hsic_cka(x.numpy(), y.numpy())
    assert 0.0 < expected < 1.0
    assert linear_cka(x, y) == pytest.approx(expected, rel=1e-10)
    assert linear_cka(y, x) == pytest.approx(expected, rel=1e-10)


def test_linear_cka_of_single_features_is_squared_correlation():
    x, y = correlated_pair(40, 1, 1, seed=3)
    correlation = np.corrcoef(x[:, 0].numpy(), y[:, 0].numpy())[0, 1]
    assert linear_cka(x, y) == pytest.approx(correlation**2, rel=1e-10)


def test_linear_cka_invariances():
    x, y = correlated_pair(60, 6, 5, seed=4)
    reference = linear_cka(x, y)
    orthogonal, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64))
    assert linear_cka(x @ orthogonal, y) == pytest.approx(reference, rel=1e-10)
    assert linear_cka(x, 7.5 * y) == pytest.approx(reference, rel=1e-10)
    assert linear_cka(x - 100.0, y) == pytest.approx(reference, rel=1e-10)
    # ...but not invariant to a general invertible map: the check above can fail.
    stretch = torch.diag(torch.tensor([1.0, 10.0, 1.0, 1.0, 0.1, 1.0], dtype=torch.float64))
    assert abs(linear_cka(x @ stretch, y) - reference) > 1e-3


def test_linear_cka_identical_inputs_give_one_and_float32_is_upcast():
    x, _ = correlated_pair(100, 10, 1, seed=6)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-14)
    assert linear_cka(x.float(), x.float()) == pytest.approx(1.0, abs=1e-14)
    # Trailing dimensions are features: a (n, 2, 5) tensor is the same as its (n, 10) view.
    assert linear_cka(x.reshape(100, 2, 5), x[:, :3]) == pytest.approx(linear_cka(x, x[:, :3]), rel=1e-12)


@pytest.mark.parametrize("constant", [0.0, 0.1, 1.0 / 3.0])
def test_linear_cka_constant_output_is_nan_with_warning(constant):
    x, _ = correlated_pair(768, 10, 1, seed=7)
    flat = torch.full((768, 10), constant, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="constant"):
        assert math.isnan(linear_cka(x, flat))
    with pytest.warns(RuntimeWarning, match="constant"):
        assert math.isnan(linear_cka(flat, x))


def test_linear_cka_tiny_but_real_variance_is_not_constant():
    x, y = correlated_pair(200, 4, 4, seed=8)
    value = linear_cka(x, y)
    assert linear_cka(0.5 + 1e-9 * x, y) == pytest.approx(value, rel=1e-5)


def test_linear_cka_bad_inputs():
    x, y = correlated_pair(10, 3, 3, seed=9)
    with pytest.raises(ValueError, match="same samples"):
        linear_cka(x, y[:9])
    with pytest.raises(ValueError, match="shape"):
        linear_cka(x[:, 0], y)
    with pytest.raises(ValueError, match="at least 2 samples"):
        linear_cka(x[:1], y[:1])
    broken = x.clone()
    broken[0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="NaN"):
        assert math.isnan(linear_cka(broken, y))


def test_pairwise_cka_all_pairs_a_less_than_b():
    outputs = {seed: correlated_pair(30, 4, 1, seed)[0] for seed in (5, 1, 3)}
    outputs[7] = None  # diverged
    pairs = pairwise_cka(outputs)
    assert [(a, b) for a, b, _ in pairs] == [(1, 3), (1, 5), (1, 7), (3, 5), (3, 7), (5, 7)]
    for a, b, value in pairs:
        if b == 7:
            assert math.isnan(value)
        else:
            assert value == pytest.approx(hsic_cka(outputs[a].numpy(), outputs[b].numpy()), rel=1e-10)
    assert pairwise_cka({0: outputs[1]}) == []


class Counted(nn.Module):
    """A tiny float64 classifier that records how often, and in which mode, it is called."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.layers = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 4)).double()
        self.calls: list[bool] = []

    def forward(self, x):
        self.calls.append(self.training)
        return self.layers(x)


@pytest.mark.parametrize(("batch_size", "batches_per_model"), [(100, 1), (16, 4)])
def test_models_cka_forwards_each_model_once_in_eval_mode(batch_size, batches_per_model):
    models = {seed: Counted(seed).train() for seed in range(4)}
    inputs = torch.randn(50, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    pairs = models_cka(models, inputs, "softmax", batch_size)
    assert len(pairs) == 6
    for model in models.values():
        # One pass over the inputs per model, in eval mode (dropout off), for all 3 of its pairs.
        assert model.calls == [False] * batches_per_model
        assert model.training  # mode restored
    with torch.no_grad():
        probabilities = {seed: torch.softmax(model.eval().layers(inputs), dim=1) for seed, model in models.items()}
    for a, b, value in pairs:
        assert value == pytest.approx(hsic_cka(probabilities[a].numpy(), probabilities[b].numpy()), rel=1e-10)


def test_model_outputs_softmax_and_logits():
    model = Counted(0)
    inputs = torch.randn(20, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    logits = model_outputs(model, inputs, "logits", batch_size=7)
    with torch.no_grad():
        assert torch.allclose(logits, model.eval().layers(inputs), rtol=0, atol=1e-14)
    probabilities = model_outputs(model, inputs, "softmax")
    assert probabilities.dtype == torch.float64
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(20, dtype=torch.float64))
    with pytest.raises(ValueError, match="softmax"):
        model_outputs(model, inputs, "probabilities")


# ---------------------------------------------------------------------------------------------
# CLI on real checkpoints (lltax.models mlp) and a synthetic cell dataset

INPUT_SHAPE, NUM_CLASSES, WIDTH = (1, 8), 3, 6


def save_mlp(path, seed: int, diverged: bool = False, **cell_changes) -> nn.Module:
    from lltax.models import build_model

    torch.manual_seed(seed)
    model = build_model("mlp", WIDTH, NUM_CLASSES, INPUT_SHAPE)
    cell = {
        "width": WIDTH,
        "batch_size": 16,
        "label_noise": 0.0,
        "train_fraction": 1.0,
        "learning_rate": 0.1,
        "weight_decay": 0.0,
        **cell_changes,
    }
    meta = {
        "model": "mlp",
        "width": WIDTH,
        "num_classes": NUM_CLASSES,
        "input_shape": list(INPUT_SHAPE),
        "dataset": {"name": "mnist1d", "root": "unused", "download": False, "augment": False},
        "cell": cell,
        "seed": seed,
        "diverged": diverged,
        "config_hash": "test",
        "versions": {},
    }
    save_checkpoint(path, model, meta)
    return model.eval()


def run_cka(argv: list[str]) -> int:
    return cli.run(["cka", *argv])


@pytest.fixture
def cell_data(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    dataset = SimpleNamespace(
        x_train=torch.randn(300, *INPUT_SHAPE, generator=generator),
        y_train=torch.randint(NUM_CLASSES, (300,), generator=generator),
        task="classification",
    )
    calls = []

    def load_cell_data(meta, device="cpu", data_dir=None):
        calls.append(meta["seed"])
        return dataset

    monkeypatch.setattr(cka_job, "load_cell_data", load_cell_data)
    return dataset, calls


def test_cka_cli_end_to_end(tmp_path, cell_data):
    dataset, data_calls = cell_data
    models = {seed: save_mlp(tmp_path / f"seed={seed}.pt", seed) for seed in (0, 1, 2)}
    save_mlp(tmp_path / "seed=3.pt", 3, diverged=True)
    settings = {"output": "softmax", "num_samples": 200, "mixup_alpha": 16.0, "batch_size": 64, "seed": 5}
    out = tmp_path / "cka.json"
    paths = [str(tmp_path / f"seed={seed}.pt") for seed in (3, 2, 0, 1)]
    assert run_cka(["--checkpoints", *paths, "--settings", json.dumps(settings), "--device", "cpu", "--out", str(out)]) == 0
    assert len(data_calls) == 1  # the cell's data is loaded once for all seeds

    pairs = json.loads(out.read_text())["pairs"]
    assert [(p["seed_a"], p["seed_b"]) for p in pairs] == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    inputs = mixup_batches(dataset.x_train, 200, 64, 16.0, 5)
    with torch.no_grad():
        probabilities = {seed: torch.softmax(model(inputs).double(), dim=1).numpy() for seed, model in models.items()}
    for p in pairs:
        if p["seed_b"] == 3:
            assert p["cka"] is None
        else:
            assert p["cka"] == pytest.approx(hsic_cka(probabilities[p["seed_a"]], probabilities[p["seed_b"]]), rel=1e-8)


def test_cka_cli_rejects_checkpoints_of_different_cells(tmp_path, cell_data):
    save_mlp(tmp_path / "a.pt", 0)
    save_mlp(tmp_path / "b.pt", 1, label_noise=0.2)
    with pytest.raises(ValueError, match="not of the same grid cell"):
        run_cka(["--checkpoints", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--device", "cpu", "--out", str(tmp_path / "cka.json")])
    assert not (tmp_path / "cka.json").exists()
