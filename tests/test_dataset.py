"""Aggregation of per-job JSON files into the contract dataset (lltax.results), every record
checked against its path, its cell's checkpoints and the config before it is trusted."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from lltax import cli
from lltax.config.grid import canonical_json, cell_path, expand_grid
from lltax.contract import AXES, METRICS
from lltax.results.infer import aggregate_all, infer_config
from lltax.results.netcdf import merge_metrics, read_dataset, write_dataset
from lltax.results.tables import aggregate_metric
from lltax.storage.atomic_files import write_json
from lltax.storage.checkpoint import save_checkpoint, state_checksum

CONFIG = {
    "grid": {
        "width": [2, 4],
        "batch_size": [8, 16],
        "label_noise": [0.1 + 0.2],  # must come out as the coordinate 0.3
        "train_fraction": [1.0],
        "learning_rate": [0.1],
        "weight_decay": [0.0],
    },
    "seeds": [0, 1, 2],
    "curves": {"pairs": "first", "points": [0.0, 0.5, 1.0]},
}
POINTS = [0.0, 0.5, 1.0]
DIVERGED = (4, 16, 2)  # (width, batch_size, seed) of the diverged run


def value(cell: dict, seed: int, offset: float) -> float:
    """A distinct number per (cell, seed, field), inside every metric's valid range (CKA <= 1)."""
    return (cell["width"] * 100 + cell["batch_size"] + seed / 10 + offset) / 1000


def pair_value(cell: dict, a: int, b: int, offset: float) -> float:
    return (cell["width"] + cell["batch_size"] / 100 + a / 10 + b / 100 + offset) / 10


def profile(cell: dict, offset: float) -> list[float]:
    return [value(cell, 0, offset) + i for i in range(len(POINTS))]


def write_checkpoint(path, cell: dict, seed: int) -> tuple[str, str]:
    """A small real checkpoint for (cell, seed): the records name its checksum and config hash."""
    torch.manual_seed(seed + 100 * cell["width"] + cell["batch_size"])
    model = nn.Linear(2, 2)
    config_hash = hashlib.sha256(f"{canonical_json(cell)}/{seed}".encode()).hexdigest()[:16]
    save_checkpoint(path, model, {"cell": cell, "seed": seed, "config_hash": config_hash})
    return state_checksum(model.state_dict()), config_hash


def write_tree(root, config=CONFIG):
    """Per-job files of the contract for every cell, seed and (first) pair, and the checkpoints."""
    for cell in expand_grid(config["grid"]):
        folder = root / cell_path(cell)
        shas = {}
        for seed in config["seeds"]:
            sha, config_hash = write_checkpoint(folder / f"seed={seed}" / "model.pt", cell, seed)
            shas[str(seed)] = sha
            diverged = (cell["width"], cell["batch_size"], seed) == DIVERGED
            nan_or = (lambda x: math.nan) if diverged else (lambda x: x)
            write_json(
                folder / f"seed={seed}" / "train.json",
                {
                    "diverged": diverged,
                    "epochs_run": 3,
                    "wall_time_s": value(cell, seed, 0.5),
                    "seed": seed,
                    "cell": cell,
                    "history": [],
                    "config_hash": config_hash,
                    "final": {
                        "train_loss": nan_or(value(cell, seed, 0.01)),
                        "train_acc": nan_or(value(cell, seed, 0.02)),
                        "test_loss": nan_or(value(cell, seed, 0.03)),
                        "test_acc": nan_or(value(cell, seed, 0.04)),
                    },
                },
            )
            write_json(
                folder / f"seed={seed}" / "hessian.json",
                {
                    "top_eigenvalue": nan_or(value(cell, seed, 0.05)),
                    "top_eigenvalues": [value(cell, seed, 0.05)],
                    "eigenvalue_error": value(cell, seed, 0.06),
                    "trace": value(cell, seed, 0.07),
                    "trace_error": value(cell, seed, 0.08),
                    "trace_method": "exact",
                    "backend": "native",
                    "hvp_count": 10,
                    "num_samples": 20,
                    "cell": cell,
                    "seed": seed,
                    "checkpoint_sha256": sha,
                },
            )
        pairs = list(itertools.combinations(config["seeds"], 2))
        write_json(
            folder / "cka.json",
            {
                "cell": cell,
                "checkpoints_sha256": shas,
                "pairs": [{"seed_a": a, "seed_b": b, "cka": pair_value(cell, a, b, 0.001)} for a, b in pairs],
            },
        )
        write_json(
            folder / "distance.json",
            {
                "cell": cell,
                "checkpoints_sha256": shas,
                "pairs": [{"seed_a": a, "seed_b": b, "l2_distance": pair_value(cell, a, b, 0.002)} for a, b in pairs],
            },
        )
        a, b = config["seeds"][:2]
        write_json(
            folder / f"pair={a}-{b}" / "curve_eval.json",
            {
                "seed_a": a,
                "seed_b": b,
                "t": POINTS,
                "cell": cell,
                "checkpoints_sha256": {str(a): shas[str(a)], str(b): shas[str(b)]},
                "train_error": profile(cell, 0.1),
                "train_loss": profile(cell, 0.2),
                "test_error": profile(cell, 0.3),
                "test_loss": profile(cell, 0.4),
                "mode_connectivity": pair_value(cell, a, b, 0.003),
                "mode_connectivity_loss": pair_value(cell, a, b, 0.004),
                "mode_connectivity_test": pair_value(cell, a, b, 0.005),
                "line_train_error": profile(cell, 0.5),
                "line_train_loss": profile(cell, 0.6),
                "line_test_error": profile(cell, 0.7),
                "line_test_loss": profile(cell, 0.8),
                "line_mode_connectivity": pair_value(cell, a, b, 0.006),
                "line_mode_connectivity_loss": pair_value(cell, a, b, 0.007),
                "line_mode_connectivity_test": pair_value(cell, a, b, 0.008),
                "curve_length": pair_value(cell, a, b, 3.0),
                "line_length": pair_value(cell, a, b, 2.0),
                "train_loss_integral": pair_value(cell, a, b, 0.9),
                "line_train_loss_integral": pair_value(cell, a, b, 1.0),
                "aligned_line_train_error": profile(cell, 0.15),
                "aligned_line_train_loss": profile(cell, 0.25),
                "aligned_line_test_error": profile(cell, 0.35),
                "aligned_line_test_loss": profile(cell, 0.45),
                "aligned_line_mode_connectivity": pair_value(cell, a, b, 0.0065),
                "aligned_line_mode_connectivity_loss": pair_value(cell, a, b, 0.0075),
                "aligned_line_mode_connectivity_test": pair_value(cell, a, b, 0.0085),
                "aligned_line_length": pair_value(cell, a, b, 1.5),
                "aligned_curve_train_error": profile(cell, 0.16),
                "aligned_curve_train_loss": profile(cell, 0.26),
                "aligned_curve_test_error": profile(cell, 0.36),
                "aligned_curve_test_loss": profile(cell, 0.46),
                "aligned_mode_connectivity": pair_value(cell, a, b, 0.0066),
                "aligned_mode_connectivity_loss": pair_value(cell, a, b, 0.0076),
                "aligned_mode_connectivity_test": pair_value(cell, a, b, 0.0086),
                "aligned_curve_length": pair_value(cell, a, b, 1.6),
            },
        )


def run_cli(argv: list[str]) -> int:
    """A subcommand run as `lltax` runs it, errors raised."""
    return cli.run(argv)


def test_commands_are_registered_with_lltax():
    assert "lltax.jobs.aggregate_metric" in cli.COMMAND_MODULES and "lltax.jobs.classify" in cli.COMMAND_MODULES


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results" / "demo"
    write_tree(root)
    return root


def at(table: xr.Dataset, name: str, cell: dict, **extra) -> float:
    return float(table[name].sel({axis: cell[axis] for axis in AXES} | extra))


# ---------------------------------------------------------------------------------------------
# Per-metric tables


def test_per_seed_tables_hold_every_file_value_and_nan_for_missing(results, caplog):
    missing_cell = {"width": 2, "batch_size": 16, "label_noise": 0.3, "train_fraction": 1.0, "learning_rate": 0.1, "weight_decay": 0.0}
    (results / cell_path(missing_cell) / "seed=1" / "hessian.json").unlink()
    with caplog.at_level(logging.WARNING, logger="lltax.results.tables"):
        tables = {m: aggregate_metric(m, results, CONFIG) for m in ("train", "hessian")}
    assert "hessian: 1 of 12 files missing" in caplog.text
    fields = {
        "train_loss": 0.01,
        "train_acc": 0.02,
        "test_loss": 0.03,
        "test_acc": 0.04,
        "hessian_top_eigenvalue": 0.05,
        "hessian_eigenvalue_error": 0.06,
        "hessian_trace": 0.07,
        "hessian_trace_error": 0.08,
        "train_wall_time": 0.5,
    }
    merged = xr.merge(tables.values(), compat="no_conflicts", join="exact", combine_attrs="drop")
    for cell in expand_grid(CONFIG["grid"]):
        for seed in CONFIG["seeds"]:
            diverged = (cell["width"], cell["batch_size"], seed) == DIVERGED
            assert at(merged, "diverged", cell, seed=seed) == float(diverged)
            for name, offset in fields.items():
                got = at(merged, name, cell, seed=seed)
                hessian_missing = name.startswith("hessian") and cell == missing_cell and seed == 1
                diverged_nan = diverged and name in ("train_loss", "train_acc", "test_loss", "test_acc", "hessian_top_eigenvalue")
                if hessian_missing or diverged_nan:
                    assert math.isnan(got), (name, cell, seed)
                else:
                    assert got == value(cell, seed, offset), (name, cell, seed)


def test_pair_tables_cover_all_unordered_pairs_and_nan_for_missing(results):
    cell = expand_grid(CONFIG["grid"])[0]
    (results / cell_path(cell) / "distance.json").unlink()
    cka = aggregate_metric("cka", results, CONFIG)
    distance = aggregate_metric("distance", results, CONFIG)
    assert cka["seed_a"].values.tolist() == [0, 0, 1] and cka["seed_b"].values.tolist() == [1, 2, 2]
    assert cka["cka"].dims == (*AXES, "pair")
    for other in expand_grid(CONFIG["grid"]):
        for p, (a, b) in enumerate([(0, 1), (0, 2), (1, 2)]):
            assert at(cka, "cka", other, pair=p) == pair_value(other, a, b, 0.001)
            expected = math.nan if other == cell else pair_value(other, a, b, 0.002)
            np.testing.assert_equal(at(distance, "l2_distance", other, pair=p), expected)


def test_curve_table_fills_the_configured_pair_and_points(results):
    curves = aggregate_metric("curves", results, CONFIG)
    assert curves["curve_train_error"].dims == (*AXES, "pair", "t")
    assert curves["t"].values.tolist() == POINTS
    for cell in expand_grid(CONFIG["grid"]):
        assert at(curves, "mode_connectivity", cell, pair=0) == pair_value(cell, 0, 1, 0.003)
        assert at(curves, "mode_connectivity_loss", cell, pair=0) == pair_value(cell, 0, 1, 0.004)
        np.testing.assert_array_equal(curves["curve_test_loss"].sel({a: cell[a] for a in AXES} | {"pair": 0}).values, profile(cell, 0.4))
        # pairs=first: the other pairs were never fitted
        assert np.isnan(curves["mode_connectivity"].sel({a: cell[a] for a in AXES} | {"pair": [1, 2]}).values).all()


def test_full_grid_from_config_even_where_nothing_ran(results):
    config = json.loads(json.dumps(CONFIG))
    config["grid"]["width"] = [2, 4, 8]
    config["seeds"] = [0, 1, 2, 3]
    for metric in METRICS:
        table = aggregate_metric(metric, results, config)
        assert table.sizes["width"] == 3
        assert table.sizes.get("seed", 4) == 4 and table.sizes.get("pair", 6) == 6
        for name in table.data_vars:
            assert np.isnan(table[name].sel(width=8).values).all(), (metric, name)
    train = aggregate_metric("train", results, config)
    assert np.isnan(train["train_loss"].sel(seed=3).values).all()
    assert train["train_loss"].sel(width=2, seed=0).notnull().all()


def test_float_coordinates_are_canonical_and_survive_netcdf(results, tmp_path):
    table = aggregate_metric("train", results, CONFIG)
    assert table["label_noise"].values.tolist() == [0.3]
    assert table["width"].dtype == np.int64 and table["learning_rate"].dtype == np.float64
    path = tmp_path / "train.nc"
    write_dataset(table, path)
    back = read_dataset(path)
    assert back["label_noise"].values.tolist() == [0.3]
    assert float(back["train_loss"].sel(label_noise=0.3, width=2, batch_size=8, seed=0).squeeze()) == value(
        {"width": 2, "batch_size": 8}, 0, 0.01
    )
    xr.testing.assert_identical(back, table)


# ---------------------------------------------------------------------------------------------
# Merge and files


def test_merged_dataset_has_the_contract_schema(results):
    dataset = aggregate_all(results, CONFIG)
    per_model = [
        "train_loss",
        "train_acc",
        "test_loss",
        "test_acc",
        "hessian_top_eigenvalue",
        "hessian_trace",
        "hessian_eigenvalue_error",
        "hessian_trace_error",
        "diverged",
    ]
    for name in per_model:
        assert dataset[name].dims == (*AXES, "seed"), name
    for name in ["cka", "l2_distance", "mode_connectivity", "mode_connectivity_loss"]:
        assert dataset[name].dims == (*AXES, "pair"), name
    for name in ["curve_train_error", "curve_train_loss", "curve_test_error", "curve_test_loss"]:
        assert dataset[name].dims == (*AXES, "pair", "t"), name
    for name, variable in dataset.variables.items():
        assert variable.attrs.get("units") is not None and variable.attrs.get("long_name"), name
    assert json.loads(dataset.attrs["config"]) == json.loads(json.dumps(CONFIG))
    assert dataset.attrs["lltax_version"]
    assert dataset["train_acc"].attrs["units"] == "percent" and dataset["curve_train_error"].attrs["units"] == "percent"


def test_merge_equals_the_tables_and_fills_absent_metrics_with_nan(results, caplog):
    tables = {m: aggregate_metric(m, results, CONFIG) for m in METRICS}
    merged = merge_metrics(list(tables.values()), CONFIG)
    for table in tables.values():
        for name in table.data_vars:
            xr.testing.assert_identical(merged[name], table[name])
    with caplog.at_level(logging.WARNING, logger="lltax.results.tables"):
        partial = merge_metrics([tables["hessian"]], CONFIG)
    assert "curves" in caplog.text
    assert set(partial.data_vars) == set(merged.data_vars)
    assert np.isnan(partial["cka"].values).all()
    xr.testing.assert_identical(partial["hessian_trace"], merged["hessian_trace"])


def test_merge_refuses_stale_or_repeated_tables(results):
    stale_config = {**CONFIG, "seeds": [0, 1]}
    stale = aggregate_metric("cka", None, stale_config)  # a table built for other seeds
    with pytest.raises(ValueError, match="'cka' table.*stale"):
        merge_metrics([stale], CONFIG)
    table = aggregate_metric("hessian", results, CONFIG)
    with pytest.raises(ValueError, match="given twice"):
        merge_metrics([table, table], CONFIG)


def test_rerun_on_unchanged_inputs_gives_identical_bytes(results, tmp_path):
    first, second = tmp_path / "a" / "dataset.nc", tmp_path / "b" / "dataset.nc"
    write_dataset(aggregate_all(results, CONFIG), first)
    write_dataset(aggregate_all(results, CONFIG), second)
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name for p in first.parent.iterdir()) == ["dataset.nc"]  # no temp file left


# ---------------------------------------------------------------------------------------------
# Bad input


def test_corrupt_json_names_the_file_and_keeps_the_old_output(results, tmp_path):
    out = tmp_path / "dataset.nc"
    assert run_cli(["aggregate", "--results-dir", str(results), "--out", str(out)]) == 0
    before = out.read_bytes()
    bad = results / cell_path(expand_grid(CONFIG["grid"])[1]) / "seed=2" / "train.json"
    bad.write_text('{"final": {"train_loss": 1.0,')
    with pytest.raises(ValueError, match=str(bad)):
        run_cli(["aggregate", "--results-dir", str(results), "--out", str(out)])
    assert out.read_bytes() == before


def test_missing_key_and_missing_folder_are_clear_errors(results, tmp_path):
    path = results / cell_path(expand_grid(CONFIG["grid"])[0]) / "seed=0" / "hessian.json"
    cell = expand_grid(CONFIG["grid"])[0]
    sha = json.loads(path.read_text())["checkpoint_sha256"]
    write_json(path, {"top_eigenvalue": 1.0, "cell": cell, "seed": 0, "checkpoint_sha256": sha})
    with pytest.raises(ValueError, match="has no key 'trace'"):
        aggregate_metric("hessian", results, CONFIG)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        aggregate_metric("hessian", tmp_path / "nowhere", CONFIG)
    with pytest.raises(ValueError, match="unknown metric"):
        aggregate_metric("sharpness", results, CONFIG)
    with pytest.raises(ValueError, match="lacks axes"):
        aggregate_metric("hessian", results, {"grid": {"width": [2]}, "seeds": 2})


# Impossible values a per-job file may hold (hand-edited, foreign or corrupt): (metric, file
# relative to the first cell, how to edit the record, what the error names).
IMPOSSIBLE = [
    ("hessian", "seed=0/hessian.json", lambda r: r.update(top_eigenvalue=float("nan")), "non-finite"),  # literal NaN
    ("hessian", "seed=0/hessian.json", lambda r: r.update(trace=float("inf")), "non-finite"),  # 1e400 parses as inf
    ("hessian", "seed=0/hessian.json", lambda r: r.update(trace=True), "expected a number"),
    ("hessian", "seed=0/hessian.json", lambda r: r.update(trace="12.5"), "expected a number"),
    ("train", "seed=0/train.json", lambda r: r["final"].update(test_acc=120.0), "test_acc = 120.0 is outside [0, 100]"),
    ("train", "seed=0/train.json", lambda r: r["final"].update(train_loss=-0.5), "train_loss = -0.5 is outside"),
    ("train", "seed=0/train.json", lambda r: r.pop("final"), "has no section 'final'"),
    ("train", "seed=0/train.json", lambda r: r["final"].pop("test_acc"), "has no key 'final.test_acc'"),
    ("train", "seed=0/train.json", lambda r: r.update(diverged=0), "expected true or false"),
    ("cka", "cka.json", lambda r: r["pairs"][0].update(cka=-7.5), "cka = -7.5 is outside [0, 1"),
    ("cka", "cka.json", lambda r: r["pairs"][0].update(cka=1.5), "cka = 1.5"),
    ("distance", "distance.json", lambda r: r["pairs"][0].update(l2_distance=-1.0), "l2_distance = -1.0"),
    ("curves", "pair=0-1/curve_eval.json", lambda r: r.update(mode_connectivity=-250.0), "mode_connectivity = -250.0"),
    ("curves", "pair=0-1/curve_eval.json", lambda r: r["train_error"].__setitem__(1, 130.0), "curve_train_error = 130.0"),
]


# Files whose recorded origin is not their path's (copied from another cell or seed).
FOREIGN = [
    ("hessian", "seed=0/hessian.json", lambda r: r.update(seed=1), "seed 1, not for seed 0"),
    ("train", "seed=0/train.json", lambda r: r["cell"].update(batch_size=16), "was computed for cell"),
    ("hessian", "seed=0/hessian.json", lambda r: r.pop("cell"), "records no cell"),
    ("cka", "cka.json", lambda r: r["cell"].update(width=4), "was computed for cell"),
    ("curves", "pair=0-1/curve_eval.json", lambda r: r.update(seed_b=2), "not of pair 0-1"),
]


@pytest.mark.parametrize("metric, relative, edit, message", IMPOSSIBLE + FOREIGN)
def test_impossible_values_are_refused_naming_the_file(results, tmp_path, metric, relative, edit, message):
    path = results / cell_path(expand_grid(CONFIG["grid"])[0]) / relative
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))  # json.dumps writes NaN/Infinity literally, as a foreign writer would
    out = tmp_path / f"{metric}.nc"
    with pytest.raises(ValueError) as error:
        run_cli(
            ["aggregate-metric", "--metric", metric, "--results-dir", str(results), "--config-json", json.dumps(CONFIG), "--out", str(out)]
        )
    assert str(path) in str(error.value) and message in str(error.value), str(error.value)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# CLI and inferred grid


def test_infer_config_reads_grid_seeds_pairs_and_points(results):
    config = infer_config(results)
    assert config["grid"] == {**CONFIG["grid"], "label_noise": [0.3]}
    assert config["seeds"] == [0, 1, 2]
    assert config["curves"] == {"enabled": True, "pairs": "first", "points": POINTS}


def test_cli_per_metric_then_merge_equals_aggregate(results, tmp_path, capsys):
    config_json = canonical_json(CONFIG)
    tables = []
    for metric in METRICS:
        out = results / "aggregate" / f"{metric}.nc"
        extra = {"curves": CONFIG["curves"]} if metric == "curves" else {}
        subset = canonical_json({"grid": CONFIG["grid"], "seeds": CONFIG["seeds"], "unused": 1, **extra})
        assert (
            run_cli(["aggregate-metric", "--metric", metric, "--results-dir", str(results), "--config-json", subset, "--out", str(out)])
            == 0
        )
        tables.append(str(out))
    merged = tmp_path / "merged.nc"
    assert run_cli(["merge", "--tables", *tables, "--config-json", config_json, "--out", str(merged)]) == 0
    by_hand = tmp_path / "by_hand.nc"
    assert run_cli(["aggregate", "--results-dir", str(results), "--out", str(by_hand)]) == 0  # grid inferred from the paths
    a, b = read_dataset(merged), read_dataset(by_hand)
    xr.testing.assert_equal(a, b)
    assert json.loads(a.attrs["config"]) == json.loads(config_json)
    config_yaml = tmp_path / "config.yaml"
    config_yaml.write_text(json.dumps({"experiment": "demo", **CONFIG}))  # JSON is YAML
    from_config = tmp_path / "from_config.nc"
    assert run_cli(["aggregate", "--results-dir", str(results), "--config", str(config_yaml), "--out", str(from_config)]) == 0
    c = read_dataset(from_config)
    xr.testing.assert_equal(a, c)
    assert json.loads(c.attrs["config"])["experiment"] == "demo"  # the resolved config, defaults filled
    assert json.loads(c.attrs["config"])["hessian"]["backend"] == "native"


def test_a_failed_netcdf_write_names_the_file_and_keeps_the_old_one(results, tmp_path, monkeypatch):
    out = tmp_path / "dataset.nc"
    table = aggregate_metric("hessian", results, CONFIG)
    write_dataset(table, out)
    before = out.read_bytes()

    def full_disk(self, *args, **kwargs):
        raise RuntimeError("NetCDF: HDF error")  # what netCDF4 says when the disk fills up

    monkeypatch.setattr(xr.Dataset, "to_netcdf", full_disk)
    with pytest.raises(OSError, match=r"writing .*dataset.nc failed \(NetCDF: HDF error\); .* MB free .*unchanged"):
        write_dataset(table, out)
    assert out.read_bytes() == before
    assert not list(tmp_path.glob(".dataset.nc.*"))  # no temporary left behind


OTHER_SHA = "ab" * 32


# Records that do not fit their cell's checkpoints or the config: a file copied from another run
# of the same cell and seed, a checksum that is no checksum, pairs or points other than the
# config's. Each is refused naming the file.
PROVENANCE = [
    ("hessian", "seed=0/hessian.json", lambda r: r.update(checkpoint_sha256=OTHER_SHA), "computed from another checkpoint of seed 0"),
    ("hessian", "seed=0/hessian.json", lambda r: r.update(checkpoint_sha256="0" * 64), "not the weights checksum"),
    ("hessian", "seed=0/hessian.json", lambda r: r.pop("checkpoint_sha256"), "checkpoint_sha256 is None"),
    ("train", "seed=0/train.json", lambda r: r.update(config_hash="0123456789abcdef"), "written by another training run"),
    ("train", "seed=0/train.json", lambda r: r.pop("config_hash"), "config_hash is None"),
    ("cka", "cka.json", lambda r: r["checkpoints_sha256"].update({"1": OTHER_SHA}), "another checkpoint of seed 1"),
    ("cka", "cka.json", lambda r: r.pop("checkpoints_sha256"), "records no checkpoints_sha256"),
    ("cka", "cka.json", lambda r: r["pairs"].append(dict(r["pairs"][0])), "lists pair 0-1 twice"),
    ("cka", "cka.json", lambda r: r.update(pairs=[]), "holds pairs []"),
    ("cka", "cka.json", lambda r: r["pairs"].append({"seed_a": 0, "seed_b": 9, "cka": 0.5}), "holds pairs"),
    ("cka", "cka.json", lambda r: r["checkpoints_sha256"].update({"9": OTHER_SHA}), "computed with seeds [9]"),
    ("distance", "distance.json", lambda r: r.update(pairs=[{"seed_a": 7, "seed_b": 8, "l2_distance": 1.0}]), "holds pairs"),
    ("curves", "pair=0-1/curve_eval.json", lambda r: r["checkpoints_sha256"].update({"0": OTHER_SHA}), "another checkpoint of seed 0"),
    ("curves", "pair=0-1/curve_eval.json", lambda r: r.update(t=[0.0, 0.25, 1.0]), "not at the config's curves.points"),
    ("train", "seed=0/train.json", lambda r: r["final"].update(train_loss=1e308), "train_loss = 1e+308 is outside"),
]


@pytest.mark.parametrize("metric, relative, edit, message", PROVENANCE)
def test_records_that_do_not_fit_their_checkpoints_or_the_config_are_refused(results, tmp_path, metric, relative, edit, message):
    path = results / cell_path(expand_grid(CONFIG["grid"])[0]) / relative
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError) as error:
        aggregate_metric(metric, results, CONFIG)
    assert str(path) in str(error.value) and message in str(error.value), str(error.value)
    assert "delete it and rerun" in str(error.value) or "impossible" in str(error.value), str(error.value)


def test_a_record_nested_too_deeply_is_refused_naming_the_file(results):
    path = results / cell_path(expand_grid(CONFIG["grid"])[0]) / "seed=0" / "hessian.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply") as error:
        aggregate_metric("hessian", results, CONFIG)
    assert str(path) in str(error.value)


def test_records_without_their_checkpoint_are_checked_for_form_and_counted(results, caplog):
    """Checkpoints deleted to save space: the records still merge, and the log says how many
    could not be compared with their checkpoint."""
    before = aggregate_metric("hessian", results, CONFIG)
    for model in results.rglob("model.pt"):
        model.unlink()
    with caplog.at_level("WARNING"):
        after = aggregate_metric("hessian", results, CONFIG)
    xr.testing.assert_identical(before, after)
    assert "could not be checked against their checkpoint" in caplog.text


def test_a_parent_folder_is_named_not_read_as_an_empty_grid(results, tmp_path):
    """`lltax aggregate` pointed at results/ (not results/<experiment>) says where the runs are."""
    with pytest.raises(FileNotFoundError, match=r"holds no cell folders .* the experiments under it are .*demo"):
        run_cli(["aggregate", "--results-dir", str(results.parent), "--out", str(tmp_path / "d.nc")])


def test_aggregate_does_not_overwrite_a_per_job_file(results):
    record = results / cell_path(expand_grid(CONFIG["grid"])[0]) / "seed=0" / "train.json"
    before = record.read_bytes()
    with pytest.raises(ValueError, match="would overwrite a per-job file"):
        run_cli(["aggregate", "--results-dir", str(results), "--out", str(record)])
    with pytest.raises(ValueError, match="would overwrite a per-job file"):  # any file inside a cell folder
        run_cli(["aggregate", "--results-dir", str(results), "--out", str(record.parent / "dataset.nc")])
    assert record.read_bytes() == before and not (record.parent / "dataset.nc").exists()
