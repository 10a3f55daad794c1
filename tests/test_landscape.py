"""Tests of lltax.metrics.landscape and the landscape job: 1D interpolation, filter-normalized directions, 2D surfaces, CLI.

Tiny float64 models; every expected value is built by a separate, plain construction.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch
import xarray as xr
from tiny_models import tiny_mlp
from torch import nn

from lltax import cli
from lltax.figures.landscape import _contour_levels
from lltax.jobs import landscape as landscape_job
from lltax.jobs.metric_inputs import load_model
from lltax.metrics import landscape
from lltax.metrics.directions import direction_space, random_direction
from lltax.metrics.eigenratio import hessian_extremes
from lltax.metrics.evaluate import evaluate_model
from lltax.metrics.surface import evaluate_points
from lltax.storage import checkpoint

NUM_CLASSES = 3


def mlp(seed: int) -> nn.Module:
    return tiny_mlp(5, 7, NUM_CLASSES, seed=seed)


def tiny_batchnorm_net(seed: int) -> nn.Module:
    """Conv1d -> BatchNorm1d -> ReLU -> pool -> Linear, with non-trivial running statistics."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv1d(1, 4, kernel_size=3), nn.BatchNorm1d(4), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, NUM_CLASSES)
    ).double()
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.5, 0.5)
        model.train()
        for _ in range(3):  # shifted data: running statistics far from the sample's
            model(torch.randn(16, 1, 8, dtype=torch.float64) * 2 + 1)
    return model.eval()


def classification_data(num_samples: int, shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(num_samples, *shape, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, NUM_CLASSES, (num_samples,), generator=generator)
    return inputs, targets


def interpolated_copy(model_a: nn.Module, model_b: nn.Module, alpha: float) -> nn.Module:
    """Plain construction: parameters and floating buffers set to (1 - alpha) a + alpha b."""
    model = tiny_batchnorm_net(0) if isinstance(model_a[1], nn.BatchNorm1d) else mlp(0)
    state_b = model_b.state_dict()
    model.load_state_dict(
        {k: (1 - alpha) * v + alpha * state_b[k] if v.is_floating_point() else v for k, v in model_a.state_dict().items()}
    )
    return model.eval()


def with_sample_statistics(model: nn.Module, inputs: torch.Tensor) -> nn.Module:
    """Set the BatchNorm's running statistics to the moments of its input over the whole sample, by hand."""
    with torch.no_grad():
        features = model[0](inputs)  # BatchNorm input: (N, C, L)
        model[1].running_mean.copy_(features.mean(dim=(0, 2)))
        model[1].running_var.copy_(features.transpose(0, 1).flatten(1).var(dim=1, unbiased=True))
    return model


# ---------------------------------------------------------------------------------------------
# 1D interpolation


def test_interpolation_ends_reproduce_endpoint_losses_exactly():
    model_a, model_b = mlp(0), mlp(1)
    inputs, targets = classification_data(40, (5,))
    result = landscape.interpolate_1d(model_a, model_b, inputs, targets, [0.0, 0.5, 1.0], batch_size=16)
    assert result["loss"][0] == evaluate_model(model_a, inputs, targets, 16)[0]
    assert result["loss"][2] == evaluate_model(model_b, inputs, targets, 16)[0]
    assert result["accuracy"][0] == evaluate_model(model_a, inputs, targets, 16)[1]
    assert result["loss"][0] != result["loss"][2]
    np.testing.assert_array_equal(result["alpha"], [0.0, 0.5, 1.0])


@pytest.mark.parametrize("alpha", [-0.5, 0.3, 1.25])
def test_interpolation_between_and_beyond_matches_plain_construction(alpha):
    model_a, model_b = mlp(0), mlp(1)
    inputs, targets = classification_data(30, (5,))
    expected = evaluate_model(interpolated_copy(model_a, model_b, alpha), inputs, targets)
    result = landscape.interpolate_1d(model_a, model_b, inputs, targets, [alpha])
    np.testing.assert_allclose([result["loss"][0], result["accuracy"][0]], expected, rtol=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_interpolation_recomputes_batchnorm_statistics_on_the_sample(alpha):
    model_a, model_b = tiny_batchnorm_net(0), tiny_batchnorm_net(1)
    inputs, targets = classification_data(50, (1, 8))
    # One chunk holds the whole sample, so the recomputed statistics are the sample's moments.
    result = landscape.interpolate_1d(model_a, model_b, inputs, targets, [alpha], batch_size=100)
    expected_model = with_sample_statistics(interpolated_copy(model_a, model_b, alpha), inputs)
    expected = evaluate_model(expected_model, inputs, targets)
    np.testing.assert_allclose([result["loss"][0], result["accuracy"][0]], expected, rtol=1e-12)
    # ... which differs from keeping the trained running statistics.
    assert result["loss"][0] != pytest.approx(evaluate_model(interpolated_copy(model_a, model_b, alpha), inputs, targets)[0], rel=1e-3)


def test_interpolation_without_recompute_interpolates_buffers_and_leaves_models_alone():
    model_a, model_b = tiny_batchnorm_net(0), tiny_batchnorm_net(1)
    before = {k: v.clone() for k, v in model_a.state_dict().items()}
    inputs, targets = classification_data(20, (1, 8))
    result = landscape.interpolate_1d(model_a, model_b, inputs, targets, [0.0, 0.6, 1.0], recompute_batchnorm=False)
    assert result["loss"][0] == evaluate_model(model_a, inputs, targets)[0]
    assert result["loss"][2] == evaluate_model(model_b, inputs, targets)[0]
    expected = evaluate_model(interpolated_copy(model_a, model_b, 0.6), inputs, targets)[0]
    assert result["loss"][1] == pytest.approx(expected, rel=1e-12)
    landscape.interpolate_1d(model_a, model_b, inputs, targets, [0.5])  # with recompute
    for key, value in model_a.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not model_a.training


# ---------------------------------------------------------------------------------------------
# Surfaces (lltax.metrics.surface; more in tests/test_atlas.py)


def test_surface_at_origin_equals_model_loss_with_batchnorm_running_statistics():
    model = tiny_batchnorm_net(0)
    inputs, targets = classification_data(30, (1, 8))
    space = direction_space(model)
    generator = torch.Generator().manual_seed(0)
    directions = [random_direction(space, generator), random_direction(space, generator)]
    surface = evaluate_points(model, space, directions, ([-0.5, 0.0, 0.5], [0.0, 0.25]), {"train": (inputs, targets)}, batch_size=8)
    surface = surface["train_loss"]
    assert surface.shape == (3, 2)
    assert surface[1, 0] == pytest.approx(evaluate_model(model, inputs, targets)[0], rel=1e-12)
    assert np.isfinite(surface).all() and len(np.unique(surface)) == surface.size
    assert not model.training


def test_surface_is_deterministic_under_seed():
    model = mlp(2)
    inputs, targets = classification_data(20, (5,))
    space = direction_space(model)

    def surface(seed):
        generator = torch.Generator().manual_seed(seed)
        directions = [random_direction(space, generator), random_direction(space, generator)]
        return evaluate_points(model, space, directions, ([-1.0, 1.0], [-1.0, 1.0]), {"train": (inputs, targets)})["train_loss"]

    np.testing.assert_array_equal(surface(5), surface(5))
    assert not np.array_equal(surface(5), surface(6))


def test_surface_rejects_directions_of_another_model():
    model = mlp(0)
    inputs, targets = classification_data(5, (5,))
    other = direction_space(nn.Linear(5, 3).double())
    with pytest.raises(ValueError, match="lacks"):
        evaluate_points(model, other, [other], [[0.0]], {"train": (inputs, targets)})


def test_training_sample_is_a_fixed_subset():
    inputs = torch.arange(100).unsqueeze(1)
    targets = torch.arange(100)
    x, y = landscape.training_sample(inputs, targets, 10, seed=0)
    x_again, _ = landscape.training_sample(inputs, targets, 10, seed=0)
    assert torch.equal(x, x_again) and torch.equal(x[:, 0], y) and len(set(y.tolist())) == 10
    assert not torch.equal(x, landscape.training_sample(inputs, targets, 10, seed=1)[0])
    assert len(landscape.training_sample(inputs, targets, 500, seed=0)[0]) == 100


def test_contour_levels_are_log_spaced_and_bracket_the_surface():
    levels = _contour_levels(np.array([[0.14, 3.0], [np.inf, 245.0]]))
    np.testing.assert_allclose(levels, [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500])
    narrow = _contour_levels(np.array([0.05, 0.06, np.nan]))
    assert narrow[0] == pytest.approx(0.05) and narrow[-1] == pytest.approx(0.06) and np.all(np.diff(narrow) > 0)
    assert _contour_levels(np.full(3, np.nan)) is None


# ---------------------------------------------------------------------------------------------
# Command line

SETTINGS = {
    "enabled": True,
    "num_samples": 30,
    "test_samples": 20,
    "points_1d": 5,
    "range_1d": [-0.5, 1.5],
    "points_2d": 3,
    "range_2d": 1.0,
    "spectrum_steps": 8,
    "seed": 0,
}


def save_mlp_checkpoint(path, seed: int, diverged: bool = False, trained_on=None, **cell) -> None:
    """A width-6 mlp of ``seed``: as initialised, or trained 6 epochs on ``trained_on`` (x, y)
    keeping its trajectory (train.trajectory)."""
    from lltax.models import build_model
    from lltax.training.loop import train_model

    torch.manual_seed(seed)
    model = build_model("mlp", 6, NUM_CLASSES, (1, 5))
    trajectory = None
    if trained_on is not None:
        trajectory = train_model(
            model, *trained_on, batch_size=10, learning_rate=0.2, weight_decay=0.0, epochs=6, trajectory=True
        ).trajectory
    if diverged:
        with torch.no_grad():
            model[1].weight[0, 0] = float("nan")
    meta = {
        "model": "mlp",
        "width": 6,
        "num_classes": NUM_CLASSES,
        "input_shape": [1, 5],
        "dataset": {"name": "toy", "root": "unused", "download": False, "augment": False},
        "cell": {"width": 6, "batch_size": 8, "label_noise": 0.0, "train_fraction": 1.0, "learning_rate": 0.1, "weight_decay": 0.0} | cell,
        "seed": seed,
        "diverged": diverged,
        "config_hash": "test",
        "versions": {},
    }
    checkpoint.save_checkpoint(path, model, meta, trajectory=trajectory)


@pytest.fixture
def toy_cell_data(monkeypatch):
    inputs, targets = classification_data(60, (1, 5))
    test_inputs, test_targets = classification_data(40, (1, 5), seed=1)
    data = types.SimpleNamespace(x_train=inputs.float(), y_train=targets, x_test=test_inputs.float(), y_test=test_targets)
    monkeypatch.setattr(landscape_job, "load_cell_data", lambda meta, device, data_dir=None: data)
    return data


def run_cli(argv: list[str]) -> int:
    return cli.run(argv)


def cli_arguments(tmp_path, settings=SETTINGS, names=("a.pt", "b.pt")) -> list[str]:
    return [
        "landscape",
        "--checkpoints",
        str(tmp_path / names[0]),
        str(tmp_path / names[1]),
        "--settings",
        json.dumps(settings),
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "out" / "landscape.nc"),
    ]


def draw(tmp_path, settings: dict | None = None, name: str = "landscape") -> bytes:
    """lltax landscape-figure of out/landscape.nc: the bytes of out/<name>.png."""
    out = tmp_path / "out" / f"{name}.png"
    argv = ["landscape-figure", "--landscapes", str(tmp_path / "out" / "landscape.nc"), "--out", str(out)]
    assert run_cli(argv + (["--settings", json.dumps(settings)] if settings is not None else [])) == 0
    return out.read_bytes()


def test_cli_writes_netcdf_and_figure(tmp_path, toy_cell_data):
    save_mlp_checkpoint(tmp_path / "a.pt", 0)
    save_mlp_checkpoint(tmp_path / "b.pt", 1)
    assert run_cli(cli_arguments(tmp_path)) == 0
    with xr.open_dataset(tmp_path / "out" / "landscape.nc", engine="netcdf4") as dataset:
        dataset = dataset.load()
    assert {"alpha": 5, "model": 2, "a": 3, "b": 3, "r": 5, "run": 2}.items() <= dict(dataset.sizes).items()
    np.testing.assert_array_equal(dataset["alpha"], [-0.5, 0.0, 0.5, 1.0, 1.5])
    assert list(dataset.attrs["seeds"]) == [0, 1]
    assert SETTINGS.items() <= json.loads(dataset.attrs["settings"]).items()  # with the schema's defaults
    model_a, _ = load_model(tmp_path / "a.pt")
    splits = {
        "train": landscape.training_sample(toy_cell_data.x_train, toy_cell_data.y_train, 30, 0),
        "test": landscape.training_sample(toy_cell_data.x_test, toy_cell_data.y_test, 20, 0),
    }
    for split, (inputs, targets) in splits.items():
        loss_a, accuracy_a = evaluate_model(model_a, inputs, targets)
        assert dataset[f"interp_{split}_loss"].sel(alpha=0.0).item() == pytest.approx(loss_a, rel=1e-6)
        assert dataset[f"interp_{split}_acc"].sel(alpha=0.0).item() == pytest.approx(accuracy_a)
        assert dataset[f"surface_{split}_loss"].sel(a=0.0, b=0.0).item() == pytest.approx(loss_a, rel=1e-6)
        assert dataset[f"ray_{split}_acc"].sel(r=0.0).item() == pytest.approx(accuracy_a)
        # No BatchNorm in an mlp: the models as trained are the interpolation's ends.
        np.testing.assert_allclose(dataset[f"endpoint_{split}_loss"], dataset[f"interp_{split}_loss"].sel(alpha=[0.0, 1.0]), rtol=1e-6)
    np.testing.assert_array_equal(dataset["seed"], [0, 1])
    assert np.isfinite(dataset["surface_train_loss"]).all() and np.isfinite(dataset["interp_test_loss"]).all()
    assert dataset["spectral_density"].attrs["long_name"].startswith("Hessian eigenvalue density")
    np.testing.assert_allclose(np.nansum(dataset["spectrum_weights"].values, axis=1), 1.0)
    assert draw(tmp_path)[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["landscape.nc", "landscape.png"]  # no temp files left
    # A rerun gives the same numbers.
    assert run_cli(cli_arguments(tmp_path)) == 0
    with xr.open_dataset(tmp_path / "out" / "landscape.nc", engine="netcdf4") as again:
        xr.testing.assert_identical(again.load(), dataset)


@pytest.mark.parametrize("directions", ["eigenvectors", "seeds"])
def test_cli_other_directions_and_the_eigenvalue_ratio_map(tmp_path, toy_cell_data, directions):
    for index, name in enumerate(("a.pt", "b.pt", "c.pt")):
        save_mlp_checkpoint(tmp_path / name, index)
    settings = {**SETTINGS, "directions": directions, "ratio_points": 2, "spectrum_steps": 0}
    argv = cli_arguments(tmp_path, settings)
    argv[argv.index("--settings") : argv.index("--settings")] = [str(tmp_path / "c.pt")]
    assert run_cli(argv) == 0
    with xr.open_dataset(tmp_path / "out" / "landscape.nc", engine="netcdf4") as dataset:
        dataset = dataset.load()
    assert dataset.attrs["directions"] == directions and "spectral_density" not in dataset
    # batchnorm_2d null: a plane through models recomputes BatchNorm as Garipov et al.'s plane.py
    assert dataset.attrs["batchnorm_2d"] == ("recompute" if directions == "seeds" else "trained")
    # ratio_definition li2018 (the default): |lambda_min / lambda_max| (Li et al.'s Figure 7)
    np.testing.assert_allclose(dataset["eigenvalue_ratio"], np.abs(dataset["min_eigenvalue"] / dataset["max_eigenvalue"]))
    assert dataset["eigenvalue_ratio"].attrs["definition"] == "li2018"
    assert (dataset["max_eigenvalue"] > 0).all()
    x, y = landscape.training_sample(toy_cell_data.x_train, toy_cell_data.y_train, 30, 0)
    if directions == "seeds":  # the plane through three seeds: s0 at (0, 0), s1 at (1, 0), s2 off the a axis
        coordinates = dataset["model_coordinates"].values
        np.testing.assert_allclose(coordinates[:2], [[0, 0], [1, 0]], atol=1e-9)
        assert abs(coordinates[2, 1]) > 0.1
    else:  # the top eigenvalue of s0's Hessian on the same sample
        model_a, _ = load_model(tmp_path / "a.pt")
        values = dataset["direction_eigenvalue"].values
        assert values[0] >= values[1] and values[0] == pytest.approx(hessian_extremes(model_a, x, y, tolerance=1e-8)[1], rel=1e-4)


@pytest.mark.parametrize("diverged_seed", [0, 1])
def test_cli_diverged_model_gives_nan_and_exit_zero(tmp_path, toy_cell_data, diverged_seed):
    save_mlp_checkpoint(tmp_path / "a.pt", 0, diverged=diverged_seed == 0)
    save_mlp_checkpoint(tmp_path / "b.pt", 1, diverged=diverged_seed == 1)
    assert run_cli(cli_arguments(tmp_path)) == 0
    with xr.open_dataset(tmp_path / "out" / "landscape.nc", engine="netcdf4") as dataset:
        assert np.isnan(dataset["interp_train_loss"]).all() and np.isnan(dataset["interp_test_acc"]).all()
        # The surface lies around seed a: NaN only when a itself diverged.
        assert np.isnan(dataset["surface_train_loss"]).all() == (diverged_seed == 0)
        assert np.isfinite(dataset["surface_test_loss"]).all() == (diverged_seed == 1)
        assert list(np.isnan(dataset["endpoint_train_loss"].values)) == [diverged_seed == 0, diverged_seed == 1]
    assert draw(tmp_path)[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"range_1d": [1.0, 0.0]}, "range_1d"),
        ({"points_1d": 2}, "points_1d"),
        ({"num_samples": "many"}, "num_samples"),
        ({"color_limits": [3.0, 1.0]}, "color_limits"),
        ({"directions": "pca"}, "holds no training trajectory"),  # a.pt was saved without one
    ],
)
def test_cli_rejects_bad_settings(tmp_path, toy_cell_data, change, message):
    save_mlp_checkpoint(tmp_path / "a.pt", 0)
    save_mlp_checkpoint(tmp_path / "b.pt", 1)
    with pytest.raises(ValueError, match=message):
        run_cli(cli_arguments(tmp_path, {**SETTINGS, **change}))
    assert not (tmp_path / "out").exists()


def test_cli_rejects_checkpoints_of_different_cells(tmp_path, toy_cell_data):
    save_mlp_checkpoint(tmp_path / "a.pt", 0)
    from lltax.models import build_model

    torch.manual_seed(1)
    model = build_model("mlp", 6, NUM_CLASSES, (1, 5))
    _, meta = checkpoint.load_checkpoint_file(tmp_path / "a.pt")
    checkpoint.save_checkpoint(tmp_path / "b.pt", model, {**meta, "seed": 1, "cell": {**meta["cell"], "batch_size": 16}})
    with pytest.raises(ValueError, match="not of the same grid cell"):
        run_cli(cli_arguments(tmp_path))


# ---------------------------------------------------------------------------------------------
# Basin measurements, cell selection, the atlas


def test_basin_job_measures_every_ray_and_nan_when_diverged(tmp_path, monkeypatch, toy_cell_data):
    from lltax.jobs import basin as basin_job

    monkeypatch.setattr(basin_job, "load_cell_data", lambda meta, device, data_dir=None: toy_cell_data)
    save_mlp_checkpoint(tmp_path / "a.pt", 0)
    save_mlp_checkpoint(tmp_path / "b.pt", 1, diverged=True)
    settings = {"directions": 2, "num_samples": 30, "rise": 0.05, "max_radius": 4.0, "convexity_points": 2, "convexity_radius": 0.2}
    outs = [tmp_path / "a" / "basin.json", tmp_path / "b" / "basin.json"]
    argv = ["basin", "--checkpoints", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--settings", json.dumps(settings)]
    assert run_cli([*argv, "--device", "cpu", "--out", *map(str, outs)]) == 0
    record, diverged = (json.loads(p.read_text()) for p in outs)
    assert len(record["radii"]) == 4 and record["basin_width"] == pytest.approx(np.mean(record["radii"]))
    assert record["basin_width_spread"] == pytest.approx(np.std(record["radii"], ddof=1))
    assert 0 <= record["convex_share"] <= 1 and len(record["eigenvalue_ratios"]) == 4
    tolerance = 0.05  # the schema default
    assert record["convex_share"] == np.mean([r >= -tolerance for r in record["eigenvalue_ratios"]])
    assert record["settings"]["rise"] == 0.05 and record["seed"] == 0 and len(record["checkpoint_sha256"]) == 64
    # Each radius is where the loss crosses the model's own + rise (within the bisection's bracket).
    model, _ = load_model(tmp_path / "a.pt")
    x, y = landscape.training_sample(toy_cell_data.x_train, toy_cell_data.y_train, 30, 0)
    base = evaluate_model(model, x, y)[0]
    space = direction_space(model)
    first = random_direction(space, torch.Generator().manual_seed(0))
    just_past = evaluate_points(model, space, [first], [[record["radii"][0] + 4.0 / 2**5 / 2**6]], {"t": (x, y)})["t_loss"][0]
    assert record["censored"][0] or just_past >= base + 0.05
    assert diverged["basin_width"] is None and diverged["convex_share"] is None  # NaN in JSON


def test_basin_convexity_needs_a_plane(tmp_path, toy_cell_data):
    """convexity_points with one direction has no plane to map: refused before any work, by
    the job as by the config."""
    from lltax.config.schema import validate_config

    save_mlp_checkpoint(tmp_path / "a.pt", 0)
    settings = {"directions": 1, "convexity_points": 2}
    argv = ["basin", "--checkpoints", str(tmp_path / "a.pt"), "--settings", json.dumps(settings), "--out", str(tmp_path / "b.json")]
    with pytest.raises(ValueError, match=r"basin.directions >= 2"):
        run_cli(argv)
    assert not (tmp_path / "b.json").exists()
    with pytest.raises(ValueError, match=r"basin.convexity_points.*basin.directions >= 2"):
        validate_config({"experiment": "t", "grid": {"width": [2]}, "basin": settings})


def test_select_cells_by_partial_cells():
    from lltax.config.grid import expand_grid, select_cells
    from lltax.contract import ConfigError

    grid = {
        "width": [4, 8],
        "batch_size": [32],
        "label_noise": [0.0],
        "train_fraction": [1.0],
        "learning_rate": [0.1, 0.3],
        "weight_decay": [0.0],
    }
    cells = expand_grid(grid)
    assert select_cells(cells, "all") == cells
    picked = select_cells(cells, [{"learning_rate": 0.3}, {"width": 4, "learning_rate": 0.3}, {"width": 8, "learning_rate": 0.1}])
    assert [(c["width"], c["learning_rate"]) for c in picked] == [(4, 0.3), (8, 0.1), (8, 0.3)]  # grid order, once each
    with pytest.raises(ConfigError, match="unknown axes"):
        select_cells(cells, [{"depth": 3}])
    with pytest.raises(ConfigError, match=r"\{'width': 16\} matches no cell"):
        select_cells(cells, [{"width": 16}])


def test_compared_cells_pair_each_cell_with_its_counterpart():
    from lltax.config.grid import compared_cells, expand_grid
    from lltax.contract import ConfigError

    grid = {
        "width": [4, 8],
        "batch_size": [32, 512],
        "label_noise": [0.0],
        "train_fraction": [1.0],
        "learning_rate": [0.1, 0.3],
        "weight_decay": [0.0],
    }
    cells = expand_grid(grid)
    pairs = compared_cells(cells, [[{"batch_size": 32}, {"batch_size": 512}]])
    assert len(pairs) == 4 and all(a["batch_size"] == 32 and b == {**a, "batch_size": 512} for a, b, _ in pairs)
    assert {name for _, _, name in pairs} == {"vs_batch_size=512"}
    # A and B on different axes: a cell that already has B's values is skipped, not an error.
    pairs = compared_cells(cells, [[{"learning_rate": 0.1}, {"batch_size": 512, "learning_rate": 0.3}]])
    assert sorted(name for _, _, name in pairs) == ["vs_batch_size=512,learning_rate=0.3"] * 2 + ["vs_learning_rate=0.3"] * 2
    pairs = compared_cells(cells, [[{"width": 4, "learning_rate": 0.1}, {"batch_size": 512}]])
    assert [(a["batch_size"], b["batch_size"]) for a, b, _ in pairs] == [(32, 512)]
    for pair, message in (
        ([{"width": 4}, {"width": 8}], "differ in \\['width'\\]"),
        ([{"batch_size": 512}, {"batch_size": 512}], "with itself"),
        ([{"batch_size": 32}, {"batch_size": 64}], "matches no cell"),
    ):
        with pytest.raises(ConfigError, match=message):
            compared_cells(cells, [pair])


def fake_landscape(scale: float) -> xr.Dataset:
    grid = np.linspace(-1, 1, 5)
    surface = scale * (0.1 + grid[:, None] ** 2 + grid[None, :] ** 2)
    return xr.Dataset(
        {
            "surface_train_loss": (("a", "b"), surface),
            "ray_train_loss": ("r", surface[:, 2]),
            "ray_train_acc": ("r", 100 - 10 * surface[:, 2]),
        },
        coords={"a": grid, "b": grid, "r": grid},
        attrs={"settings": json.dumps({"levels": None})},
    )


def test_atlas_picks_the_most_confident_cell_of_each_phase(tmp_path):
    from lltax.config.grid import cell_path
    from lltax.contract import AXES
    from lltax.jobs.atlas import representatives

    fixed = {"batch_size": 32, "label_noise": 0.0, "train_fraction": 1.0, "learning_rate": 0.1, "weight_decay": 0.0}
    coords = {axis: [fixed.get(axis, 4)] for axis in AXES} | {"width": [4, 8, 16]}
    shape = tuple(len(v) for v in coords.values())
    phases = xr.Dataset(
        {
            "phase": (tuple(coords), np.array(["I", "I", "IV-B"], dtype=object).reshape(shape)),
            "phase_confidence": (tuple(coords), np.array([0.6, 0.9, np.nan]).reshape(shape)),
        },
        coords=coords,
    )
    paths = []
    for width, scale in zip((4, 8, 16), (1.0, 2.0, 0.5)):
        path = tmp_path / cell_path({**fixed, "width": width}) / "landscape.nc"
        path.parent.mkdir(parents=True)
        fake_landscape(scale).to_netcdf(path)
        paths.append(str(path))
    picked = representatives(paths, phases)
    assert [(phase, path) for phase, path, _ in picked] == [("I", paths[1]), ("IV-B", paths[2])]  # 0.9 beats 0.6
    phases.to_netcdf(tmp_path / "phases.nc")
    out = tmp_path / "figures" / "atlas.png"
    assert run_cli(["atlas", "--landscapes", *paths, "--phases", str(tmp_path / "phases.nc"), "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    # Issue 30.8: another run's landscapes (another model, other seeds, a cell it lacks) are refused by name.
    phases.attrs["config"] = json.dumps({"model": {"name": "resnet1d"}, "seeds": [0, 1]})
    phases.to_netcdf(tmp_path / "phases.nc")
    for attrs, message in (
        ({"model": "mlp", "seeds": [0, 1]}, "is a landscape of model 'mlp'"),
        ({"model": "resnet1d", "seeds": [5, 6]}, "seeds \\[5, 6\\]"),
    ):
        fake_landscape(1.0).assign_attrs(attrs).to_netcdf(paths[1])
        with pytest.raises(ValueError, match=message):
            run_cli(["atlas", "--landscapes", *paths, "--phases", str(tmp_path / "phases.nc"), "--out", str(out)])
    foreign = tmp_path / cell_path({**fixed, "width": 99}) / "landscape.nc"
    foreign.parent.mkdir(parents=True)
    fake_landscape(1.0).to_netcdf(foreign)
    with pytest.raises(ValueError, match="is of a cell the phases file does not hold"):
        run_cli(["atlas", "--landscapes", str(foreign), "--phases", str(tmp_path / "phases.nc"), "--out", str(out)])


def test_atlas_figure_shares_levels_and_axes():
    from lltax.figures.landscape import atlas_figure

    figure = atlas_figure([fake_landscape(1.0), fake_landscape(10.0)], ["phase I", "phase II"])
    contours = [ax for ax in figure.axes if ax.get_title().startswith("phase")]
    filled = [child for ax in contours for child in ax.get_children() if getattr(child, "filled", False)]
    assert len(filled) == 2 and np.array_equal(filled[0].levels, filled[1].levels)  # one scale for both cells
    assert filled[0].levels[0] <= 0.1 and filled[0].levels[-1] >= 21.0  # spanning both surfaces
    lines = [ax for ax in figure.axes if ax.get_xlabel().startswith("$r$")]
    assert len(lines) == 2 and lines[0].get_ylim() == lines[1].get_ylim()


def test_cli_seeds_plane_with_two_seeds_adds_an_orthogonal_direction(tmp_path, toy_cell_data):
    save_mlp_checkpoint(tmp_path / "a.pt", 0)
    save_mlp_checkpoint(tmp_path / "b.pt", 1)
    assert run_cli(cli_arguments(tmp_path, {**SETTINGS, "directions": "seeds", "spectrum_steps": 0, "points_2d": 5})) == 0
    with xr.open_dataset(tmp_path / "out" / "landscape.nc", engine="netcdf4") as dataset:
        np.testing.assert_allclose(dataset["model_coordinates"].values, [[0, 0], [1, 0]])
        # Both models inside, with a margin on each side: [-0.5, 1.5] around their middle, s0 and s1 grid points.
        np.testing.assert_allclose(dataset["a"], [-0.5, 0.0, 0.5, 1.0, 1.5])
        np.testing.assert_allclose(dataset["b"], [-1.0, -0.5, 0.0, 0.5, 1.0])
        assert json.loads(dataset.attrs["plane_extent"]) == {"a": [-0.5, 1.5], "b": [-1.0, 1.0], "model_margin": 0.2}
        # (a, b) = (1, 0) is seed 1 itself: its own loss (no BatchNorm in an mlp)
        assert dataset["surface_train_loss"].sel(a=1.0, b=0.0).item() == pytest.approx(dataset["endpoint_train_loss"].values[1], rel=1e-5)


def test_cli_pca_plane_of_the_training_path(tmp_path, toy_cell_data):
    """directions: pca: the path's last point is s0 at the origin, its farthest epoch at
    coordinate +-1 on each axis, the variance shares in order, and the plane's coordinates
    reproduce each epoch's offset where the two directions explain the path."""
    x, y = toy_cell_data.x_train, toy_cell_data.y_train
    save_mlp_checkpoint(tmp_path / "a.pt", 0, trained_on=(x, y))
    save_mlp_checkpoint(tmp_path / "b.pt", 1)
    assert run_cli(cli_arguments(tmp_path, {**SETTINGS, "directions": "pca", "spectrum_steps": 0})) == 0
    with xr.open_dataset(tmp_path / "out" / "landscape.nc", engine="netcdf4") as dataset:
        dataset = dataset.load()
    path = dataset["path_coordinates"].values
    assert path.shape == (7, 2) and list(dataset["epoch"].values) == list(range(7))
    np.testing.assert_allclose(path[-1], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(np.abs(path).max(axis=0), [1.0, 1.0])
    shares = dataset["pca_explained_variance"].values
    assert shares[0] >= shares[1] > 0 and shares.sum() <= 1 + 1e-9
    # The projection, built plainly: each epoch's offset from s0 on the unit principal axes.
    trajectory = checkpoint.load_trajectory(tmp_path / "a.pt")
    flat = torch.stack([torch.cat([t.reshape(-1) for t in point.values()]).double() for point in trajectory])
    offsets = (flat - flat[-1]).numpy()
    centred = offsets - offsets.mean(axis=0)  # every epoch, the last included (Li et al.'s setup_PCA_directions)
    axes = np.linalg.svd(centred, full_matrices=False)[2][:2]
    projected = offsets @ axes.T / dataset["direction_scale"].values
    for column in range(2):  # an SVD's signs are free
        sign = np.sign(projected[:, column] @ path[:, column])
        np.testing.assert_allclose(path[:, column], sign * projected[:, column], rtol=1e-5, atol=1e-9)
    assert dataset["surface_train_loss"].sel(a=0.0, b=0.0).item() == pytest.approx(dataset["endpoint_train_loss"].values[0], rel=1e-6)
    assert draw(tmp_path)[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_across_cells_compares_two_cells_models_on_one_landscape(tmp_path, toy_cell_data):
    """--across-cells (landscape.compare): the interpolation runs from cell A's model to cell
    B's, their own losses at its ends, B at (1, 0) of the plane; cells of another network or
    data are refused, naming what differs."""
    save_mlp_checkpoint(tmp_path / "a.pt", 0, batch_size=8)
    trained = (toy_cell_data.x_train, toy_cell_data.y_train)
    save_mlp_checkpoint(tmp_path / "b.pt", 0, trained_on=trained, batch_size=32, learning_rate=0.3)
    argv = cli_arguments(tmp_path, {**SETTINGS, "directions": "seeds", "spectrum_steps": 0, "points_2d": 5}) + ["--across-cells"]
    assert run_cli(argv) == 0
    with xr.open_dataset(tmp_path / "out" / "landscape.nc", engine="netcdf4") as dataset:
        dataset = dataset.load()
    assert json.loads(dataset.attrs["model_labels"]) == ["A: batch_size=8, learning_rate=0.1", "B: batch_size=32, learning_rate=0.3"]
    sums = json.loads(dataset.attrs["checkpoints_sha256"])  # both are seed 0: keyed by A and B
    assert sums == {name: checkpoint.load_checkpoint_file(tmp_path / f"{name.lower()}.pt")[1]["state_sha256"] for name in "AB"}
    assert [json.loads(dataset.attrs["cell"])[i]["batch_size"] for i in (0, 1)] == [8, 32]
    assert list(dataset["seed"].values) == [0, 0] and dataset["cell"].values[1].startswith("width=6/batch_size=32/")
    np.testing.assert_allclose(dataset["endpoint_train_loss"], dataset["interp_train_loss"].sel(alpha=[0.0, 1.0]), rtol=1e-6)
    np.testing.assert_allclose(dataset["model_coordinates"].values, [[0, 0], [1, 0]], atol=1e-12)
    assert dataset["surface_test_loss"].sel(a=1.0, b=0.0).item() == pytest.approx(dataset["endpoint_test_loss"].values[1], rel=1e-5)
    assert draw(tmp_path)[:8] == b"\x89PNG\r\n\x1a\n"
    for change, message in (({"label_noise": 0.2}, "share the network"), ({"train_fraction": 0.5}, "share the network"), ({}, "same cell")):
        save_mlp_checkpoint(tmp_path / "b.pt", 0, trained_on=trained, **({"batch_size": 8} | change))
        with pytest.raises(ValueError, match=message):
            run_cli(argv)
    save_mlp_checkpoint(tmp_path / "b.pt", 0, batch_size=32)  # A's very weights: no line through them
    with pytest.raises(ValueError, match="same weights"):
        run_cli(argv)


def save_curve_between(path, first, second, middle_shift: float = 0.3, curve: str = "bezier", inner: int = 1) -> None:
    """A curve file between the checkpoints ``first`` and ``second``, its inner bends moved off
    the line by ``middle_shift`` (a hand-made curve: its geometry, not a fit, is what is tested)."""
    start, meta_a = checkpoint.load_checkpoint_file(first)
    end, meta_b = checkpoint.load_checkpoint_file(second)
    generator = torch.Generator().manual_seed(5)
    params = [name for name in start if not name.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    bends = [{k: start[k] for k in params}]
    for index in range(1, inner + 1):
        share = index / (inner + 1)
        bends.append(
            {
                k: (1 - share) * start[k]
                + share * end[k]
                + middle_shift * torch.randn(start[k].shape, generator=generator, dtype=start[k].dtype)
                for k in params
            }
        )
    bends.append({k: end[k] for k in params})
    meta = {
        "endpoint": meta_a,
        "seed_a": meta_a["seed"],
        "seed_b": meta_b["seed"],
        "checkpoints_sha256": {str(meta_a["seed"]): meta_a["state_sha256"], str(meta_b["seed"]): meta_b["state_sha256"]},
        "settings": {"curve": curve, "bends": inner + 2},
        "history": [],
        "diverged": False,
    }
    checkpoint.save_curve(path, bends, {}, meta)


def test_cli_curve_plane_holds_a_quadratic_bezier_curve(tmp_path, toy_cell_data):
    """directions: curve (Garipov et al.'s Figure 1): the plane through the curve's ends and its
    midpoint; a quadratic Bezier curve lies in it (residual 0), s1 at (1, 0); a curve of
    other models is refused; a curve with two inner bends is drawn with its residual."""
    from lltax.metrics.bezier import curve_point, flatten_bend

    save_mlp_checkpoint(tmp_path / "a.pt", 0)
    save_mlp_checkpoint(tmp_path / "b.pt", 1)
    save_curve_between(tmp_path / "curve.pt", tmp_path / "a.pt", tmp_path / "b.pt")
    settings = {**SETTINGS, "directions": "curve", "spectrum_steps": 0, "range_b": 0.25, "ratio_points": 2}
    argv = cli_arguments(tmp_path, settings) + ["--curves", str(tmp_path / "curve.pt")]
    assert run_cli(argv) == 0
    with xr.open_dataset(tmp_path / "out" / "landscape.nc", engine="netcdf4") as dataset:
        dataset = dataset.load()
    np.testing.assert_allclose(dataset["model_coordinates"].values, [[0, 0], [1, 0]], atol=1e-9)
    path = dataset["curve_coordinates"]
    # The models and the whole curve inside the plane with MODEL_MARGIN on each side; at least
    # range_2d / range_b wide; the ratio map over the same extent.
    extent = json.loads(dataset.attrs["plane_extent"])
    for index, (axis, half) in enumerate((("a", 1.0), ("b", 0.25))):
        held = np.concatenate([dataset["model_coordinates"].values[:, index], path.values[:, index]])
        low, high = dataset[axis].values[[0, -1]]
        assert [low, high] == pytest.approx(extent[axis])
        assert low <= held.min() - 0.2 + 1e-9 and high >= held.max() + 0.2 - 1e-9 and high - low >= 2 * half - 1e-9
        np.testing.assert_allclose(dataset["r" + axis].values[[0, -1]], [low, high])
    assert extent["b"][1] - extent["b"][0] > 0.5  # the curve bends far off the line: wider than 2 range_b
    np.testing.assert_allclose(path.sel(t=0.0).values, [0, 0], atol=1e-9)
    np.testing.assert_allclose(path.sel(t=1.0).values, [1, 0], atol=1e-9)
    assert float(dataset["curve_residual"].max()) < 1e-9
    # theta_s0 + a d1 + b d2 at the midpoint's coordinates is the curve's midpoint.
    curve = checkpoint.load_curve(tmp_path / "curve.pt")
    bends = [flatten_bend(bend).double() for bend in curve["bends"]]
    middle, start, end = curve_point(bends, 0.5), bends[0], bends[-1]
    a, b = path.sel(t=0.5).values
    first = end - start
    second = middle - start - ((middle - start) @ first) / (first @ first) * first
    second = second * first.norm() / second.norm()
    torch.testing.assert_close(start + a * first + b * second, middle, rtol=1e-9, atol=1e-9)
    # Two inner bends: a cubic Bezier curve leaves the plane; its distance is recorded.
    save_curve_between(tmp_path / "cubic.pt", tmp_path / "a.pt", tmp_path / "b.pt", inner=2)
    argv[-1] = str(tmp_path / "cubic.pt")
    assert run_cli(argv) == 0
    with xr.open_dataset(tmp_path / "out" / "landscape.nc", engine="netcdf4") as dataset:
        assert float(dataset["curve_residual"].max()) > 1e-3 and float(dataset["curve_residual"].sel(t=0.5)) < 1e-9
    save_mlp_checkpoint(tmp_path / "c.pt", 2)
    # With a third seed's checkpoint (the workflow passes three): it is not in the plane.
    argv[-1] = str(tmp_path / "curve.pt")
    with_third = argv[: argv.index("--settings")] + [str(tmp_path / "c.pt")] + argv[argv.index("--settings") :]
    assert run_cli(with_third) == 0
    with xr.open_dataset(tmp_path / "out" / "landscape.nc", engine="netcdf4") as dataset:
        coordinates = dataset["model_coordinates"].values
    np.testing.assert_allclose(coordinates[:2], [[0, 0], [1, 0]], atol=1e-9)
    assert coordinates.shape == (3, 2) and np.isnan(coordinates[2]).all()
    # A curve that stayed on the line spans no plane: d2 is random, the curve lies on b = 0.
    save_curve_between(tmp_path / "straight.pt", tmp_path / "a.pt", tmp_path / "b.pt", middle_shift=0.0)
    argv[-1] = str(tmp_path / "straight.pt")
    assert run_cli(argv) == 0
    with xr.open_dataset(tmp_path / "out" / "landscape.nc", engine="netcdf4") as dataset:
        np.testing.assert_allclose(dataset["curve_coordinates"].values, np.stack([dataset["t"], 0 * dataset["t"]], axis=1), atol=1e-6)
        assert np.isfinite(dataset["surface_train_loss"]).all()
    save_curve_between(tmp_path / "other.pt", tmp_path / "a.pt", tmp_path / "c.pt")
    argv[-1] = str(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="fitted between other models"):
        run_cli(argv)
    with pytest.raises(ValueError, match="--curves"):
        run_cli(argv[:-2])


# --- issue 29: the numerics labelled as Li et al.'s match the reference -------------------------


def test_pca_directions_include_the_final_model_as_li_et_al():
    """Hand-computed: offsets (1, 1), (1, -1) and the final model's (0, 0). With the final row
    (projection.py's setup_PCA_directions feeds every epoch up to max_epoch), the centred rows
    are (1/3, 1), (1/3, -1), (-2/3, 0): variances 2 along y and 2/3 along x, ratios 0.75 / 0.25.
    Without it the second direction would explain nothing."""
    from lltax.metrics.directions import pca_directions

    trajectory = [{"w": torch.tensor([1.0, 1.0], dtype=torch.float64)}, {"w": torch.tensor([1.0, -1.0], dtype=torch.float64)}]
    trajectory.append({"w": torch.zeros(2, dtype=torch.float64)})
    directions, ratios, path = pca_directions(trajectory, count=2)
    np.testing.assert_allclose(ratios, [0.75, 0.25], rtol=1e-12)
    np.testing.assert_allclose(np.abs(directions[0]["w"].numpy()), [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(np.abs(directions[1]["w"].numpy()), [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(np.abs(path), [[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]], atol=1e-12)


def test_pca_directions_match_a_port_of_the_reference():
    """A port of tomgoldstein/loss-landscape projection.py (setup_PCA_directions: the matrix of
    w_epoch - w_final over every epoch, final included; sklearn's PCA = centred SVD) on a random
    trajectory: the same explained variance ratios and directions (up to sign)."""
    from lltax.metrics.directions import pca_directions

    generator = torch.Generator().manual_seed(3)
    trajectory = [
        {"a": torch.randn(4, 3, generator=generator, dtype=torch.float64), "b": torch.randn(5, generator=generator, dtype=torch.float64)}
    ]
    for _ in range(6):
        trajectory.append({k: v + 0.3 * torch.randn(v.shape, generator=generator, dtype=torch.float64) for k, v in trajectory[-1].items()})
    final = np.concatenate([trajectory[-1]["a"].numpy().ravel(), trajectory[-1]["b"].numpy()])
    matrix = np.array([np.concatenate([p["a"].numpy().ravel(), p["b"].numpy()]) - final for p in trajectory])  # every epoch
    centred = matrix - matrix.mean(axis=0)  # sklearn PCA.fit
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    explained_variance_ratio = singular**2 / (singular**2).sum()
    directions, ratios, path = pca_directions(trajectory, count=2)
    np.testing.assert_allclose(ratios, explained_variance_ratio[:2], rtol=1e-10)
    for column, (direction, component) in enumerate(zip(directions, components[:2])):
        flat = np.concatenate([direction["a"].numpy().ravel(), direction["b"].numpy()])
        assert abs(float(flat @ component)) == pytest.approx(1.0, abs=1e-10)
        # project_trajectory with proj_method cos: dot(d, dx) / |dx|
        np.testing.assert_allclose(np.abs(path[:, column]), np.abs(matrix @ component), atol=1e-10)


def tanh_mlp() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, NUM_CLASSES)).double().eval()
    x, y = classification_data(40, (4,), seed=5)
    return model, x, y


def dense_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: list[str]) -> torch.Tensor:
    """The Hessian of the mean cross-entropy over the named parameters, the others fixed."""
    from torch.func import functional_call

    fixed = {n: p.detach() for n, p in model.named_parameters() if n not in names}
    shapes = [dict(model.named_parameters())[n].shape for n in names]
    flat = torch.cat([dict(model.named_parameters())[n].detach().reshape(-1) for n in names])

    def loss(vector):
        pieces, start = {}, 0
        for name, shape in zip(names, shapes):
            pieces[name] = vector[start : start + shape.numel()].view(shape)
            start += shape.numel()
        return torch.nn.functional.cross_entropy(functional_call(model, {**fixed, **pieces}, (x,)), y)

    return torch.autograd.functional.hessian(loss, flat)


def test_eigenvalue_ratio_default_is_li_et_al_figure_7():
    """ratio_definition li2018: the Hessian over tensors of >= 2 dimensions (hess_vec_prod.py's
    min_max_hessian_eigs: params = [p for p in net.parameters() if len(p.size()) > 1]) and
    |lambda_min / lambda_max| (plot_2D.plot_2d_eig_ratio: np.absolute(np.divide(min, max))).
    Checked against the dense Hessian and a port of the reference's two eigsh steps (largest
    magnitude, then the top of H - 0.51 lambda_max, shifted back) on that dense matrix."""
    from lltax.metrics.eigenratio import eigenvalue_ratio_grid

    model, x, y = tanh_mlp()
    matrices = [n for n, p in model.named_parameters() if p.dim() > 1]
    exact = torch.linalg.eigvalsh(dense_hessian(model, x, y, matrices)).numpy()
    everything = torch.linalg.eigvalsh(dense_hessian(model, x, y, [n for n, _ in model.named_parameters()])).numpy()
    assert exact[0] < 0 < exact[-1] and abs(everything[-1] - exact[-1]) > 1e-3  # the two definitions differ here
    # The reference's steps, on the dense matrix (its eigsh(A, k=1) = largest magnitude).
    hessian = dense_hessian(model, x, y, matrices).numpy()
    values = np.linalg.eigvalsh(hessian)
    maxeig = values[np.argmax(np.abs(values))]
    shift = maxeig * 0.51
    shifted = np.linalg.eigvalsh(hessian - shift * np.eye(len(hessian)))
    mineig = shifted[np.argmax(np.abs(shifted))] + shift
    reference_ratio = np.absolute(np.divide(mineig, maxeig))
    low, high, ratio = eigenvalue_ratio_grid(model, direction_space(model), [{}, {}], [0.0], x, y)
    assert high[0, 0] == pytest.approx(exact[-1], rel=1e-5) and low[0, 0] == pytest.approx(exact[0], rel=1e-4)
    assert ratio[0, 0] == pytest.approx(reference_ratio, rel=1e-4) and ratio[0, 0] >= 0
    # signed: every parameter, with the sign.
    low, high, signed = eigenvalue_ratio_grid(model, direction_space(model), [{}, {}], [0.0], x, y, definition="signed")
    assert high[0, 0] == pytest.approx(everything[-1], rel=1e-5)
    assert signed[0, 0] == pytest.approx(everything[0] / everything[-1], rel=1e-4) and signed[0, 0] < 0
    assert all(p.requires_grad for p in model.parameters())  # the biases were held fixed only for the run


# --- issue 29: the landscape figure a reader can take into a paper ---------------------------


@pytest.mark.parametrize("points", [3, 5, 11, 21, 4])
def test_plane_through_models_holds_each_with_a_margin(points):
    """The surface of a plane through models spans them with MODEL_MARGIN (Garipov et al.'s 0.2)
    on each side, at least range_2d / range_b wide, s0 a grid point for an odd number of points;
    hand-computed for two seeds at 21 points: [-0.5, 1.5] (the symmetric grid put s1 on its edge)."""
    from lltax.metrics.planes import MODEL_MARGIN as margin
    from lltax.metrics.planes import plane_extent

    assert plane_extent({}, 1.0, 0.5, points) == {"a": (-1.0, 1.0), "b": (-0.5, 0.5)}  # random, pca, ...: around s0
    cases = (
        [[0.0, 0.0], [1.0, 0.0]],  # two seeds, a comparison
        [[0.0, 0.0], [1.0, 0.0], [0.3, 2.5]],  # three seeds far apart
        [[0.0, 0.0], [1.0, 0.0], [np.nan, np.nan]],  # a third model not in a curve's plane
        [[0.0, 0.0], [1.0, 0.0], [-1.7, -0.4]],
    )
    for coordinates in cases:
        extra = {"model_coordinates": (("model", "direction"), np.asarray(coordinates), {})}
        extent = plane_extent(extra, 1.0, 1.0, points)
        held = np.asarray(coordinates)[np.isfinite(coordinates).all(axis=1)]
        for index, axis in enumerate("ab"):
            low, high = extent[axis]
            assert low <= held[:, index].min() - margin + 1e-12 and high >= held[:, index].max() + margin - 1e-12
            assert high - low >= 2.0 - 1e-12
            grid = landscape.grid_points(low, high, points)
            if points % 2:
                assert np.isclose(grid, 0.0, atol=1e-9).any()  # s0 stays a grid point
    if points == 21:
        extent = plane_extent({"model_coordinates": ((), np.array(cases[0]), {})}, 1.0, 1.0, points)
        assert extent == {"a": pytest.approx((-0.5, 1.5)), "b": pytest.approx((-1.0, 1.0))}


def load_out(tmp_path) -> xr.Dataset:
    with xr.open_dataset(tmp_path / "out" / "landscape.nc", engine="netcdf4") as dataset:
        return dataset.load()


def panel_titles(figure) -> list[str]:
    return [ax.get_title() for ax in figure.axes if ax.get_title()]


def test_landscape_figure_titles_labels_and_leaves_out_what_was_not_computed(tmp_path, toy_cell_data):
    """The title says the model and its cell by the axes' names and values (no JSON); the heat
    map has axis labels; the spectrum and the ratio map are drawn where computed and left out
    otherwise (no empty panel)."""
    from lltax.figures.landscape import landscape_figure

    save_mlp_checkpoint(tmp_path / "a.pt", 0)
    save_mlp_checkpoint(tmp_path / "b.pt", 1)
    assert run_cli(cli_arguments(tmp_path, {**SETTINGS, "spectrum_steps": 0})) == 0
    figure = landscape_figure(load_out(tmp_path))
    title = figure.get_suptitle()
    assert title.startswith("mlp, seeds s0, s1") and "{" not in title and '"' not in title
    assert "width k = 6, batch size = 8, label noise = 0, training fraction = 1, learning rate = 0.1, weight decay = 0" in title
    titles = panel_titles(figure)
    assert not any("density" in t or "convexity" in t for t in titles) and not any("not computed" in text for t in titles for text in [t])
    assert not [text.get_text() for ax in figure.axes for text in ax.texts if "not computed" in text.get_text()]
    heat = next(ax for ax in figure.axes if ax.get_title().startswith("heat map"))
    assert heat.get_xlabel() == r"$a$ (direction $d_1$)" and heat.get_ylabel() == r"$b$ (direction $d_2$)"
    plain = len([ax for ax in figure.axes if ax.get_title()])
    assert plain == 5  # interpolation, 1D, contours, heat map, 3D surface
    assert run_cli(cli_arguments(tmp_path, {**SETTINGS, "ratio_points": 2})) == 0
    titles = panel_titles(landscape_figure(load_out(tmp_path)))
    assert len(titles) == 7 and any("density" in t for t in titles) and any("convexity" in t for t in titles)


def test_landscape_figure_is_byte_stable_and_redrawn_by_its_own_command(tmp_path, toy_cell_data):
    """lltax landscape-figure draws landscape.nc: the same file and settings give the same bytes;
    color_limits (a drawing setting, not recorded with the numbers) changes the picture only."""
    save_mlp_checkpoint(tmp_path / "a.pt", 0)
    save_mlp_checkpoint(tmp_path / "b.pt", 1)
    assert run_cli(cli_arguments(tmp_path, {**SETTINGS, "spectrum_steps": 0, "color_limits": [0.5, 3.0]})) == 0
    assert "color_limits" not in json.loads(load_out(tmp_path).attrs["settings"])
    first = draw(tmp_path)
    assert draw(tmp_path, name="again") == first
    assert draw(tmp_path, {"color_limits": [0.5, 3.0]}, name="limited") != first
    for bad, message in ((tmp_path / "none.nc", "does not exist"), (tmp_path / "a.pt", "not a netCDF file")):
        with pytest.raises((FileNotFoundError, ValueError), match=message):
            run_cli(["landscape-figure", "--landscapes", str(bad), "--out", str(tmp_path / "x.png")])
    with pytest.raises(ValueError, match="not supported"):
        run_cli(["landscape-figure", "--landscapes", str(tmp_path / "out" / "landscape.nc"), "--out", str(tmp_path / "x.gif")])


def test_comparison_figure_names_what_differs_and_has_no_empty_panel(tmp_path, toy_cell_data):
    """A comparison (spectrum_steps 0, as the workflow's): A and B by the axes they differ in,
    the axes they share once, both models inside the plane with a margin, no spectrum panel."""
    from lltax.figures.landscape import landscape_figure

    save_mlp_checkpoint(tmp_path / "a.pt", 0, batch_size=8)
    save_mlp_checkpoint(tmp_path / "b.pt", 1, batch_size=32, learning_rate=0.3)
    settings = {**SETTINGS, "directions": "seeds", "spectrum_steps": 0, "batchnorm_2d": "recompute"}
    assert run_cli(cli_arguments(tmp_path, settings) + ["--across-cells"]) == 0
    dataset = load_out(tmp_path)
    assert dataset["a"].values[0] <= -0.2 and dataset["a"].values[-1] >= 1.2  # B at (1, 0) no longer on the edge
    figure = landscape_figure(dataset)
    lines = figure.get_suptitle().splitlines()
    assert lines[0] == "mlp: A (batch size = 8, learning rate = 0.1) vs B (batch size = 32, learning rate = 0.3)"
    assert lines[1] == "both: width k = 6, label noise = 0, training fraction = 1, weight decay = 0"
    assert len(panel_titles(figure)) == 5 and not any("density" in t for t in panel_titles(figure))
    contour = next(ax for ax in figure.axes if ax.get_title().startswith("training loss"))
    assert sorted(t.get_text() for t in contour.texts if t.get_text() in "AB") == ["A", "B"]
