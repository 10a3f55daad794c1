"""l2 distance between trainable parameters, eval-mode evaluation, and their CLIs."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lltax import cli
from lltax.config.schema import parse_settings
from lltax.jobs import evaluate as evaluate_job
from lltax.jobs.metric_inputs import check_same_cell
from lltax.metrics import distance, evaluate
from lltax.metrics.distance import l2_distance, pairwise_distance
from lltax.metrics.evaluate import evaluate_on_dataset
from lltax.storage.checkpoint import save_checkpoint

INPUT_SHAPE = (1, 8)
NUM_CLASSES = 3
WIDTH = 5


def run_command(module, argv: list[str]) -> int:
    return cli.run(argv)


def make_meta(seed: int, diverged: bool = False, **cell_changes) -> dict:
    cell = {"width": WIDTH, "batch_size": 16, "label_noise": 0.0, "train_fraction": 1.0, "learning_rate": 0.1, "weight_decay": 0.0}
    cell.update(cell_changes)
    return {
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


def save_mlp(path, seed: int, diverged: bool = False, **cell_changes):
    from lltax.models import build_model

    torch.manual_seed(seed)
    model = build_model("mlp", WIDTH, NUM_CLASSES, INPUT_SHAPE)
    save_checkpoint(path, model, make_meta(seed, diverged, **cell_changes))
    return model


def synthetic_dataset(num_train: int = 37, num_test: int = 23, seed: int = 0) -> SimpleNamespace:
    generator = torch.Generator().manual_seed(seed)
    y_train_clean = torch.randint(NUM_CLASSES, (num_train,), generator=generator)
    y_train = y_train_clean.clone()
    y_train[:10] = (y_train[:10] + 1) % NUM_CLASSES  # noisy labels differ from the clean ones
    return SimpleNamespace(
        x_train=torch.randn(num_train, *INPUT_SHAPE, generator=generator),
        y_train=y_train,
        y_train_clean=y_train_clean,
        x_test=torch.randn(num_test, *INPUT_SHAPE, generator=generator),
        y_test=torch.randint(NUM_CLASSES, (num_test,), generator=generator),
        num_classes=NUM_CLASSES,
        input_shape=INPUT_SHAPE,
        name="synthetic",
    )


# ---------------------------------------------------------------------------------------------
# l2 distance


class LinearWithNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.norm = nn.BatchNorm1d(2)
        self.frozen = nn.Parameter(torch.zeros(4), requires_grad=False)

    def forward(self, x):
        return self.norm(self.linear(x))


def test_l2_distance_exact_on_constructed_models_and_ignores_buffers():
    zero, known = LinearWithNorm(), LinearWithNorm()
    with torch.no_grad():
        for p in zero.parameters():
            p.zero_()
        values = iter(range(1, 100))
        for p in (known.linear.weight, known.linear.bias, known.norm.weight, known.norm.bias):
            p.copy_(torch.tensor([float(next(values)) for _ in range(p.numel())]).reshape(p.shape))
        # Buffers and frozen parameters differ wildly but are not trainable coordinates.
        known.norm.running_mean.fill_(1e6)
        known.norm.running_var.fill_(1e6)
        known.frozen.fill_(1e6)
    # Trainable: linear weight (6) + bias (2) + norm weight (2) + bias (2) = values 1..12.
    expected = math.sqrt(sum(i * i for i in range(1, 13)))
    assert l2_distance(zero, known) == pytest.approx(expected, rel=1e-14)
    assert l2_distance(known, zero) == pytest.approx(expected, rel=1e-14)
    assert l2_distance(known, known) == 0.0


def test_l2_distance_accumulates_in_float64():
    a, b = nn.Linear(300, 300), nn.Linear(300, 300)
    expected = math.sqrt(sum((pa.double() - pb.double()).square().sum().item() for pa, pb in zip(a.parameters(), b.parameters())))
    assert l2_distance(a, b) == pytest.approx(expected, rel=1e-13)


def test_l2_distance_rejects_different_architectures():
    with pytest.raises(ValueError, match="different trainable parameters"):
        l2_distance(nn.Linear(3, 2), nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="shape"):
        l2_distance(nn.Linear(3, 2), nn.Linear(3, 4))


def test_l2_distance_nan_for_non_finite_parameters_and_pairs():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    with torch.no_grad():
        b.weight[0, 0] = float("inf")
    assert math.isnan(l2_distance(a, b))
    pairs = pairwise_distance({2: a, 0: nn.Linear(3, 2), 1: None})
    assert [(x, y) for x, y, _ in pairs] == [(0, 1), (0, 2), (1, 2)]
    assert math.isnan(pairs[0][2]) and math.isnan(pairs[2][2]) and math.isfinite(pairs[1][2])


def test_distance_cli(tmp_path):
    models = {seed: save_mlp(tmp_path / f"seed={seed}" / "model.pt", seed) for seed in (0, 1, 2)}
    save_mlp(tmp_path / "seed=3" / "model.pt", 3, diverged=True)
    paths = [str(tmp_path / f"seed={seed}" / "model.pt") for seed in (2, 0, 3, 1)]
    out = tmp_path / "distance.json"
    assert run_command(distance, ["distance", "--checkpoints", *paths, "--settings", "{}", "--device", "cpu", "--out", str(out)]) == 0
    pairs = json.loads(out.read_text())["pairs"]
    assert [(p["seed_a"], p["seed_b"]) for p in pairs] == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    for p in pairs:
        if 3 in (p["seed_a"], p["seed_b"]):
            assert p["l2_distance"] is None
        else:
            assert p["l2_distance"] == pytest.approx(l2_distance(models[p["seed_a"]], models[p["seed_b"]]), rel=1e-12)


def test_distance_cli_rejects_checkpoints_of_different_cells(tmp_path):
    save_mlp(tmp_path / "a.pt", 0)
    save_mlp(tmp_path / "b.pt", 1, batch_size=32)
    with pytest.raises(ValueError, match="not of the same grid cell"):
        run_command(
            distance, ["distance", "--checkpoints", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out", str(tmp_path / "d.json")]
        )
    assert not (tmp_path / "d.json").exists()


# ---------------------------------------------------------------------------------------------
# Evaluation


def test_evaluate_on_dataset_known_outputs_uses_noisy_training_labels():
    # The model is the identity on 3 features: logits are the inputs themselves.
    model = nn.Linear(3, 3, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
    x_train = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0], [1.0, 1.0, 1.0], [0.0, 5.0, 0.0]], dtype=torch.float64)
    y_train = torch.tensor([0, 1, 2, 1])  # argmax is 0, 2, 0 (tie), 1 -> samples 0 and 3 correct
    y_clean = torch.tensor([0, 2, 0, 1])  # all correct: must NOT be used
    x_test = torch.tensor([[0.0, 0.0, 4.0], [3.0, 0.0, 0.0]], dtype=torch.float64)
    y_test = torch.tensor([2, 1])
    dataset = SimpleNamespace(x_train=x_train, y_train=y_train, y_train_clean=y_clean, x_test=x_test, y_test=y_test)

    def cross_entropy(logits, target):
        return math.log(sum(math.exp(v) for v in logits)) - logits[target]

    expected_train_loss = sum(cross_entropy(x.tolist(), int(y)) for x, y in zip(x_train, y_train)) / 4
    expected_test_loss = sum(cross_entropy(x.tolist(), int(y)) for x, y in zip(x_test, y_test)) / 2
    for batch_size in (1, 3, 100):
        metrics = evaluate_on_dataset(model, dataset, batch_size)
        assert metrics["train_loss"] == pytest.approx(expected_train_loss, rel=1e-12)
        assert metrics["test_loss"] == pytest.approx(expected_test_loss, rel=1e-12)
        assert metrics["train_acc"] == 50.0
        assert metrics["test_acc"] == 50.0


def test_evaluate_cli_end_to_end(tmp_path, monkeypatch):
    dataset = synthetic_dataset()
    monkeypatch.setattr(evaluate_job, "load_cell_data", lambda meta, device="cpu", data_dir=None: dataset)
    model = save_mlp(tmp_path / "model.pt", 0, label_noise=0.2).eval()
    out = tmp_path / "evaluate.json"
    assert (
        run_command(
            evaluate,
            [
                "evaluate",
                "--checkpoints",
                str(tmp_path / "model.pt"),
                "--settings",
                '{"batch_size": 8}',
                "--device",
                "cpu",
                "--out",
                str(out),
            ],
        )
        == 0
    )
    record = json.loads(out.read_text())
    assert set(record) == {"train_loss", "train_acc", "test_loss", "test_acc", "diverged", "cell", "seed", "checkpoint_sha256", "runtime"}
    meta = torch.load(tmp_path / "model.pt", weights_only=True)["meta"]
    assert (record["cell"], record["seed"], record["checkpoint_sha256"]) == (meta["cell"], meta["seed"], meta["state_sha256"])
    assert record["diverged"] is False
    with torch.no_grad():
        train_logits, test_logits = model(dataset.x_train), model(dataset.x_test)
    assert record["train_loss"] == pytest.approx(F.cross_entropy(train_logits, dataset.y_train).item(), rel=1e-5)
    assert record["test_loss"] == pytest.approx(F.cross_entropy(test_logits, dataset.y_test).item(), rel=1e-5)
    assert record["train_acc"] == pytest.approx(100.0 * (train_logits.argmax(1) == dataset.y_train).float().mean().item())
    assert record["test_acc"] == pytest.approx(100.0 * (test_logits.argmax(1) == dataset.y_test).float().mean().item())


@pytest.mark.parametrize("how", ["meta", "parameters"])
def test_evaluate_cli_diverged_gives_null_metrics(tmp_path, monkeypatch, how):
    def no_data(*args, **kwargs):
        raise AssertionError("a diverged model needs no data")

    monkeypatch.setattr(evaluate_job, "load_cell_data", no_data)
    from lltax.models import build_model

    model = build_model("mlp", WIDTH, NUM_CLASSES, INPUT_SHAPE)
    if how == "parameters":
        with torch.no_grad():
            next(model.parameters()).view(-1)[0] = float("nan")
    save_checkpoint(tmp_path / "model.pt", model, make_meta(0, diverged=how == "meta"))
    out = tmp_path / "evaluate.json"
    run_command(evaluate, ["evaluate", "--checkpoints", str(tmp_path / "model.pt"), "--device", "cpu", "--out", str(out)])
    record = json.loads(out.read_text())
    assert {k: record[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc", "diverged")} == {
        "train_loss": None,
        "train_acc": None,
        "test_loss": None,
        "test_acc": None,
        "diverged": True,
    }
    assert set(record) - {"train_loss", "train_acc", "test_loss", "test_acc", "diverged"} == {
        "cell",
        "seed",
        "checkpoint_sha256",
        "runtime",
    }


# ---------------------------------------------------------------------------------------------
# Shared helpers


def test_parse_settings_fills_defaults_and_names_bad_keys():
    assert parse_settings("{}", "evaluate") == {"batch_size": 1000}
    settings = parse_settings('{"output": "logits"}', "cka")
    assert settings["output"] == "logits" and settings["num_samples"] == 768 and settings["mixup_alpha"] == 16.0
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['num_sample'\]"):
        parse_settings('{"num_sample": 3}', "cka")
    with pytest.raises(ValueError, match="cka.output"):
        parse_settings('{"output": "probabilities"}', "cka")
    with pytest.raises(ValueError, match="evaluate.batch_size"):
        parse_settings('{"batch_size": 0}', "evaluate")
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_settings("{batch_size: 3}", "evaluate")
    with pytest.raises(ValueError, match="JSON object"):
        parse_settings("[1]", "evaluate")


def test_check_same_cell():
    check_same_cell([make_meta(0), make_meta(1, label_noise=0.0 + 0.0)], ["a", "b"])
    with pytest.raises(ValueError, match="not of the same grid cell"):
        check_same_cell([make_meta(0), make_meta(1, label_noise=0.1)], ["a", "b"])
    with pytest.raises(ValueError, match="repeat a seed"):
        check_same_cell([make_meta(0), make_meta(0)], ["a", "b"])


def test_commands_are_registered():
    from lltax.cli import COMMAND_MODULES

    assert {"lltax.jobs.evaluate", "lltax.jobs.cka", "lltax.jobs.distance"} <= set(COMMAND_MODULES)
