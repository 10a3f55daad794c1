"""Fast geometric ensembling (Garipov et al. 2018, Algorithm 1): the schedule, the snapshots, the
ensembles, the job and its table."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from lltax import cli
from lltax.data.cells import load_dataset
from lltax.metrics.ensembles import cyclic_learning_rate, ensemble_accuracy, fast_geometric_ensembling, probabilities
from lltax.models import build_model
from lltax.results.tables import aggregate_metric
from lltax.storage.checkpoint import save_checkpoint

CELL = {"width": 16, "batch_size": 50, "label_noise": 0.0, "train_fraction": 0.1, "learning_rate": 0.05, "weight_decay": 0.0005}
CELL_PATH = "width=16/batch_size=50/label_noise=0.0/train_fraction=0.1/learning_rate=0.05/weight_decay=0.0005"
FGE = {"cycles": 3, "cycle_epochs": 2, "lr_max": 0.05, "lr_min": 0.0005, "seed": 0}


def test_cyclic_learning_rate_by_hand():
    # Cycle of 2 epochs: lr_max at its start, lr_min in its middle (start of its 2nd epoch), back up.
    assert cyclic_learning_rate(0, 0.0, 2, 0.1, 0.001) == pytest.approx(0.1)
    assert cyclic_learning_rate(0, 0.5, 2, 0.1, 0.001) == pytest.approx((0.1 + 0.001) / 2)
    assert cyclic_learning_rate(1, 0.0, 2, 0.1, 0.001) == pytest.approx(0.001)
    assert cyclic_learning_rate(1, 0.5, 2, 0.1, 0.001) == pytest.approx((0.1 + 0.001) / 2)
    assert cyclic_learning_rate(2, 0.0, 2, 0.1, 0.001) == pytest.approx(0.1)  # the next cycle


@pytest.fixture(scope="module")
def data(mnist1d_dir):
    return str(mnist1d_dir), load_dataset("mnist1d", root=str(mnist1d_dir), train_fraction=CELL["train_fraction"])


def test_an_ensemble_of_identical_snapshots_is_the_single_model(data):
    _, cell = data
    torch.manual_seed(0)
    model = build_model("mlp", 16, cell.num_classes, cell.input_shape)
    p = probabilities(model, cell.x_test)
    assert ensemble_accuracy([p, p, p], cell.y_test) == ensemble_accuracy([p], cell.y_test)
    assert ensemble_accuracy([p], cell.y_test) == 100 * (model(cell.x_test).argmax(1) == cell.y_test).sum().item() / len(cell.y_test)


def test_snapshots_one_per_cycle_reproducible_and_the_start_untouched(data):
    _, cell = data
    torch.manual_seed(0)
    model = build_model("mlp", 16, cell.num_classes, cell.input_shape)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = dict(cycles=3, cycle_epochs=2, lr_max=0.05, lr_min=0.0005, batch_size=50, momentum=0.9, weight_decay=5e-4, seed=1)
    snapshots = fast_geometric_ensembling(model, cell.x_train, cell.y_train, **settings)
    again = fast_geometric_ensembling(model, cell.x_train, cell.y_train, **settings)
    assert len(snapshots) == 3 and all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert all(torch.equal(a[k], b[k]) for a, b in zip(snapshots, again) for k in a)
    assert not torch.equal(snapshots[0]["1.weight"], snapshots[1]["1.weight"])
    with pytest.raises(ValueError, match="even number"):
        fast_geometric_ensembling(model, cell.x_train, cell.y_train, **{**settings, "cycle_epochs": 3})


def plain_models(cell, seeds=3, epochs=15):
    """Models trained by a plain loop (the checkpoints FGE starts from)."""
    models = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        model = build_model("mlp", 16, cell.num_classes, cell.input_shape)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for _ in range(epochs):
            for start in range(0, len(cell.x_train), 50):
                loss = nn.functional.cross_entropy(model(cell.x_train[start : start + 50]), cell.y_train[start : start + 50])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        models.append(model.eval())
    return models


def test_fge_job_writes_the_ensembles_and_the_table_reads_them(data, tmp_path):
    root, cell = data
    paths = []
    for seed, model in enumerate(plain_models(cell)):
        meta = {
            "model": "mlp",
            "width": 16,
            "num_classes": cell.num_classes,
            "input_shape": list(cell.input_shape),
            "dataset": {"name": "mnist1d", "download": False, "augment": False, "label_noise_mode": "exact", "root": root},
            "cell": CELL,
            "seed": seed,
            "train": {"epochs": 15, "momentum": 0.9},
            "diverged": False,
        }
        path = tmp_path / CELL_PATH / f"seed={seed}" / "model.pt"
        save_checkpoint(path, model, meta)
        paths.append(str(path))
    out = tmp_path / CELL_PATH / "fge.json"
    assert cli.run(["fge", "--checkpoints", *paths, "--settings", json.dumps(FGE), "--device", "cpu", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    single = torch.load(paths[0], weights_only=True)
    assert record["single_test_acc"] == ensemble_accuracy([probabilities(plain_models(cell, 1)[0], cell.x_test)], cell.y_test)
    assert len(record["fge_test_acc_by_snapshots"]) == 3 and record["fge_test_acc_by_snapshots"][-1] == record["fge_test_acc"]
    assert record["seed_ensemble_test_acc_by_seeds"][0] == record["single_test_acc"]
    assert record["fge_epochs"] == 15 + 3 * 2 and record["seed_ensemble_epochs"] == 45
    assert record["checkpoints_sha256"]["0"] == single["meta"]["state_sha256"]
    # Along a fitted curve: with 2 points the ensemble is the curve's two ends, i.e. seeds 0 and 1
    # (no BatchNorm in an MLP): exactly the ensemble of the first two seeds.
    curve = tmp_path / CELL_PATH / "pair=0-1" / "curve.pt"
    fit = json.dumps({"epochs": 1, "batch_size": 50})
    assert cli.run(["curve-fit", "--checkpoints", paths[0], paths[1], "--settings", fit, "--device", "cpu", "--out", str(curve)]) == 0
    two = tmp_path / "two.json"
    settings = json.dumps({**FGE, "curve_points": 2})
    cli.run(["fge", "--checkpoints", *paths, "--curves", str(curve), "--settings", settings, "--device", "cpu", "--out", str(two)])
    along = json.loads(two.read_text())
    assert along["curve_ensemble_test_acc"] == record["seed_ensemble_test_acc_by_seeds"][1]
    assert along["curve_ensemble_epochs"] == 2 * 15 + 1 and record["curve_ensemble_epochs"] is None  # without --curves: none
    config = {"grid": {k: [v] for k, v in CELL.items()}, "seeds": [0, 1, 2], "fge": {"enabled": True}}
    table = aggregate_metric("ensembles", tmp_path, config)
    for name in ("single_test_acc", "fge_test_acc", "seed_ensemble_test_acc", "fge_epochs", "seed_ensemble_epochs"):
        assert table[name].dims == ("width", "batch_size", "label_noise", "train_fraction", "learning_rate", "weight_decay")
        assert table[name].item() == record[name]
    assert np.isnan(table["curve_ensemble_test_acc"].item())


def test_ensembles_figure_one_panel_per_other_axis_value():
    import numpy as np
    import xarray as xr

    from lltax.figures.ensembles import ensembles_figure

    coords = {
        "width": [4, 8],
        "batch_size": [32, 64],
        "label_noise": [0.0],
        "train_fraction": [1.0],
        "learning_rate": [0.1],
        "weight_decay": [0.0],
    }
    shape = tuple(len(v) for v in coords.values())
    values = np.arange(np.prod(shape), dtype=float).reshape(shape) + 90
    dataset = xr.Dataset(
        {name: (tuple(coords), values + i) for i, name in enumerate(("single_test_acc", "fge_test_acc", "seed_ensemble_test_acc"))},
        coords=coords,
    )
    dataset["fge_epochs"] = (tuple(coords), np.full(shape, 24.0))
    dataset["seed_ensemble_epochs"] = (tuple(coords), np.full(shape, 60.0))
    dataset["phase"] = (tuple(coords), np.full(shape, "IV-B"))
    figure = ensembles_figure(dataset, dataset, x="width", y="batch_size")
    panels = [ax for ax in figure.axes if ax.get_lines()]
    assert len(panels) == 2 and all(len(ax.get_lines()) == 3 for ax in panels)
    assert np.array_equal(panels[1].get_lines()[1].get_ydata(), dataset["fge_test_acc"].sel(batch_size=64).squeeze().values)
    assert "FGE ensemble (24 epochs)" in [t.get_text() for t in panels[0].get_legend().get_texts()]
