"""Phase classification (lltax.phases) on synthetic grids and on the paper's published data."""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
import pytest
import xarray as xr

from lltax import phases as phases_module
from lltax.config import AXES
from lltax.dataset import aggregate_metric, merge_metrics, read_dataset, write_dataset, METRICS
from lltax.phases import PHASES, classify, phase_table, two_means_split
from lltax.reference import load_reference, reference_dir

SEEDS = [0, 1, 2, 3]


def empty_dataset(widths: list[int]) -> xr.Dataset:
    config = {
        "grid": {"width": widths, "batch_size": [32], "label_noise": [0.0], "train_fraction": [1.0],
                 "learning_rate": [0.1], "weight_decay": [0.0]},
        "seeds": SEEDS,
        "curves": {"pairs": "all"},
    }
    return merge_metrics([aggregate_metric(m, None, config) for m in METRICS], config)


def set_cell(dataset: xr.Dataset, width: int, *, eigenvalues=None, mc=None, cka=None, diverged=None) -> None:
    """Per-seed / per-pair values of one cell (the other axes have one value)."""
    where = {"width": width}
    for name, values in (("hessian_top_eigenvalue", eigenvalues), ("mode_connectivity", mc), ("cka", cka), ("diverged", diverged)):
        if values is not None:
            dataset[name].loc[where] = np.asarray(values, dtype=float).reshape(dataset[name].loc[where].shape)


def spread(center: float, relative: float, count: int) -> list[float]:
    """count values around center, symmetric, so their mean is center."""
    return list(center * (1 + relative * np.linspace(-1, 1, count)))


# One cell per phase, clearly inside its region, with a little seed-to-seed spread.
KNOWN = {
    1: ("I", dict(eigenvalues=spread(100, 0.1, 4), mc=spread(-10, 0.1, 6), cka=spread(0.5, 0.1, 6))),
    2: ("II", dict(eigenvalues=spread(100, 0.1, 4), mc=spread(2, 0.1, 6), cka=spread(0.5, 0.1, 6))),
    3: ("III", dict(eigenvalues=spread(1, 0.1, 4), mc=spread(-10, 0.1, 6), cka=spread(0.5, 0.1, 6))),
    4: ("IV-A", dict(eigenvalues=spread(1, 0.1, 4), mc=spread(-0.01, 0.1, 6), cka=spread(0.3, 0.1, 6))),
    5: ("IV-B", dict(eigenvalues=spread(1, 0.1, 4), mc=[0.0] * 6, cka=spread(0.9, 0.05, 6))),
    # 3 of 4 seeds diverged: their metrics are NaN (contract), the survivor's look like phase I
    6: ("diverged", dict(eigenvalues=[np.nan, np.nan, np.nan, 100], mc=[np.nan] * 6, cka=[np.nan] * 6, diverged=[1, 1, 1, 0])),
    7: ("unknown", dict(mc=spread(-10, 0.1, 6), cka=spread(0.5, 0.1, 6))),  # no Hessian results
}


@pytest.fixture
def synthetic():
    dataset = empty_dataset(list(KNOWN))
    dataset["diverged"][:] = 0.0
    for width, (_, values) in KNOWN.items():
        set_cell(dataset, width, **values)
    return dataset


def phase_of(result: xr.Dataset, width: int) -> str:
    return str(result["phase"].sel(width=width).squeeze().item())


# ---------------------------------------------------------------------------------------------
# Two-means split


def test_two_means_split_is_the_best_split_by_brute_force():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, 17), rng.normal(5, 2, 11)])
    boundary, separability = two_means_split(values)
    ordered = np.sort(values)
    within = [((ordered[:i] - ordered[:i].mean()) ** 2).sum() + ((ordered[i:] - ordered[i:].mean()) ** 2).sum() for i in range(1, len(values))]
    best = int(np.argmin(within)) + 1
    assert boundary == pytest.approx((ordered[:best].mean() + ordered[best:].mean()) / 2, rel=1e-12)
    assert ordered[best - 1] < boundary < ordered[best]
    assert separability == pytest.approx(1 - min(within) / ((values - values.mean()) ** 2).sum(), rel=1e-12)
    assert two_means_split([1.0, 2.0, 10.0, 11.0]) == pytest.approx((6.0, 1 - 1.0 / 82.0))  # total SS 82, within 1
    assert np.isnan(two_means_split([3.0, 3.0, np.nan])).all()


# ---------------------------------------------------------------------------------------------
# Synthetic grids


def test_known_phases_and_auto_thresholds(synthetic):
    result = classify(synthetic, resamples=50)
    for width, (expected, _) in KNOWN.items():
        assert phase_of(result, width) == expected, width
    # Auto thresholds by their definitions: log10 eigenvalues {2, 2, 0, 0, 0} split at 1;
    # log10 barriers {1, 1, -2} split between -2 and 1 (means -2 and 1); CKA {0.3, 0.9} at 0.6.
    assert result.attrs["sharpness_threshold"] == pytest.approx(10.0)
    assert result.attrs["connectivity_threshold"] == pytest.approx(10**-0.5)
    assert result.attrs["cka_threshold"] == pytest.approx(0.6)
    for name in ("sharpness_threshold", "connectivity_threshold", "cka_threshold"):
        assert result.attrs[f"{name}_source"].startswith("auto")
    assert json.loads(result.attrs["classify_settings"])["resamples"] == 50
    assert np.isnan(result["phase_confidence"].sel(width=7)).all()  # unknown: no confidence
    clear = result["phase_confidence"].sel(width=[1, 2, 3, 4, 5]).values
    assert (clear == 1.0).all()


def test_cell_means_and_stds_over_seeds_and_pairs(synthetic):
    result = classify(synthetic, resamples=0)
    eigenvalues = np.asarray(KNOWN[1][1]["eigenvalues"])
    assert float(result["hessian_top_eigenvalue_mean"].sel(width=1).squeeze()) == pytest.approx(eigenvalues.mean())
    assert float(result["hessian_top_eigenvalue_std"].sel(width=1).squeeze()) == pytest.approx(eigenvalues.std(ddof=1))
    assert result["cka_mean"].dims == AXES and result["curve_train_error_mean"].dims == (*AXES, "t")
    assert float(result["diverged_mean"].sel(width=6).squeeze()) == 0.75
    for name, variable in result.data_vars.items():
        assert "units" in variable.attrs and variable.attrs["long_name"], name
    assert np.isnan(result["phase_confidence"]).all()  # resamples=0


def test_thresholds_can_be_set_and_are_stored(synthetic):
    result = classify(synthetic, sharpness_threshold=1000.0, connectivity_threshold=20.0, cka_threshold=0.95, resamples=0)
    assert result.attrs["sharpness_threshold"] == 1000.0 and result.attrs["sharpness_threshold_source"] == "set"
    assert result.attrs["connectivity_threshold"] == 20.0 and result.attrs["cka_threshold"] == 0.95
    # Nothing is sharp, everything is connected, no CKA reaches 0.95: all live cells IV-A.
    assert [phase_of(result, w) for w in KNOWN] == ["IV-A"] * 5 + ["diverged", "unknown"]
    with pytest.raises(ValueError, match="sharpness_threshold"):
        classify(synthetic, sharpness_threshold=-1.0)
    with pytest.raises(ValueError, match="cka_threshold"):
        classify(synthetic, cka_threshold="high")


def test_too_few_barriers_to_split():
    dataset = empty_dataset([1, 2, 3])
    dataset["diverged"][:] = 0.0
    set_cell(dataset, 1, eigenvalues=[100.0] * 4, mc=[1.0] * 6, cka=[0.5] * 6)
    set_cell(dataset, 2, eigenvalues=[1.0] * 4, mc=[0.0] * 6, cka=[0.5] * 6)
    set_cell(dataset, 3, eigenvalues=[1.0] * 4, mc=[0.5] * 6, cka=[0.9] * 6)
    result = classify(dataset, resamples=0)
    # No barrier anywhere: every cell is connected whatever the threshold, so 0 is used.
    assert result.attrs["connectivity_threshold"] == 0.0
    assert [phase_of(result, w) for w in (1, 2, 3)] == ["II", "IV-A", "IV-B"]
    # One barrier cannot be split: its cell is unknown, mc >= 0 cells stay connected.
    set_cell(dataset, 3, mc=[-0.5] * 6)
    result = classify(dataset, resamples=0, cka_threshold=0.7)
    assert np.isnan(result.attrs["connectivity_threshold"])
    assert [phase_of(result, w) for w in (1, 2, 3)] == ["II", "IV-A", "unknown"]


def test_confidence_is_the_bootstrap_share_and_lower_on_a_boundary():
    dataset = empty_dataset([1, 2])
    dataset["diverged"][:] = 0.0
    # width 1: seeds straddle the set threshold 40, seeds 2-3 missing. Resampling 2 of {1, 100}:
    # the mean stays above 40 unless both draws are 1, so P(same phase) = 3/4.
    set_cell(dataset, 1, eigenvalues=[1.0, 100.0, np.nan, np.nan], mc=[-10.0] * 6, cka=[0.5] * 6)
    set_cell(dataset, 2, eigenvalues=[100.0, 110.0, 90.0, 100.0], mc=[-10.0] * 6, cka=[0.5] * 6)
    resamples = 4000
    result = classify(dataset, sharpness_threshold=40.0, connectivity_threshold=1.0, cka_threshold=0.5, resamples=resamples)
    assert phase_of(result, 1) == phase_of(result, 2) == "I"
    confidence = result["phase_confidence"].squeeze().values
    assert ((confidence >= 0) & (confidence <= 1)).all()
    assert confidence[1] == 1.0
    standard_error = np.sqrt(0.75 * 0.25 / resamples)
    assert abs(confidence[0] - 0.75) < 4 * standard_error
    again = classify(dataset, sharpness_threshold=40.0, connectivity_threshold=1.0, cka_threshold=0.5, resamples=resamples)
    xr.testing.assert_identical(again["phase_confidence"], result["phase_confidence"])  # seeded


def test_phases_round_trip_through_netcdf(synthetic, tmp_path):
    result = classify(synthetic, resamples=20)
    path = tmp_path / "phases.nc"
    write_dataset(result, path)
    back = read_dataset(path)
    assert back["phase"].values.astype(str).tolist() == result["phase"].values.tolist()
    assert set(np.unique(back["phase"].values.astype(str))) <= set(PHASES)
    for name in ("sharpness_threshold", "connectivity_threshold", "cka_threshold", "classify_settings"):
        assert back.attrs[name] == result.attrs[name]
    np.testing.assert_array_equal(back["phase_confidence"].values, result["phase_confidence"].values)


def test_cli_prints_thresholds_and_writes_phases(synthetic, tmp_path, capsys):
    dataset_path, phases_path = tmp_path / "dataset.nc", tmp_path / "phases.nc"
    write_dataset(synthetic, dataset_path)
    parser = argparse.ArgumentParser()
    phases_module.add_cli(parser.add_subparsers(required=True))
    args = parser.parse_args(["classify", str(dataset_path), str(phases_path), "--settings", '{"cka_threshold": 0.7, "resamples": 10}'])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "sharpness_threshold = 10" in printed and "cka_threshold = 0.7  (set)" in printed
    assert read_dataset(phases_path).attrs["cka_threshold"] == 0.7


# ---------------------------------------------------------------------------------------------
# Real data: the paper's ResNet18 / CIFAR-10 grid


@pytest.fixture(scope="module")
def reference():
    if not reference_dir().is_dir():
        pytest.skip(f"reference data {reference_dir()} is absent (shared/reference/yang2021 beside the repo)")
    return load_reference()


def test_reference_dataset_has_the_contract_schema(reference):
    empty = empty_dataset([1])
    assert set(reference.data_vars) == set(empty.data_vars)
    for name in reference.data_vars:
        assert reference[name].dims == empty[name].dims, name
    assert reference.sizes["width"] == 14 and reference.sizes["batch_size"] == 15 and reference.sizes["pair"] == 10
    assert np.isnan(reference["test_acc"].sel(batch_size=[19, 27])).all()
    # mc of every curve by the formula, written out: (e(0)+e(1))/2 - e(t*), t* farthest from that mean
    errors = reference["curve_train_error"].sel(pair=0).squeeze(drop=True).values  # (width, batch_size, t)
    ends = (errors[..., 0] + errors[..., -1]) / 2
    farthest = np.take_along_axis(errors, np.abs(errors - ends[..., None]).argmax(-1)[..., None], -1)[..., 0]
    np.testing.assert_allclose(reference["mode_connectivity"].sel(pair=0).squeeze(drop=True).values, ends - farthest, rtol=0, atol=1e-12)
    assert np.isnan(reference["mode_connectivity"].sel(pair=slice(1, None))).all()  # pairs=first


def test_default_classification_reproduces_the_paper_regions(reference):
    result = classify(reference)  # DEFAULT settings: every threshold automatic
    table = result["phase"].squeeze(drop=True)
    widths, batch_sizes = table["width"].values, table["batch_size"].values

    def cells(width_range, batch_range):
        return [
            (int(w), int(b), str(table.sel(width=w, batch_size=b).item()))
            for w, b in itertools.product(widths, batch_sizes)
            if width_range[0] <= w <= width_range[1] and batch_range[0] <= b <= batch_range[1]
        ]

    regions = {
        "I": cells((2, 4), (64, 10**9)),
        "II": cells((32, 10**9), (16, 16)),
        "III": cells((8, 11), (256, 10**9)),
        "IV-B": cells((45, 10**9), (64, 128)),
        "IV-A": cells((45, 10**9), (1024, 1024)),
    }
    for phase, members in regions.items():
        assert members, phase
        wrong = [(w, b, got) for w, b, got in members if got != phase]
        assert not wrong, f"cells expected in phase {phase} but classified otherwise: {wrong}\n{phase_table(result)}"


def test_reference_cli_writes_the_paper_dataset(tmp_path):
    from lltax.cli import main
    from lltax.reference import reference_dir

    if not (reference_dir() / "per_model.csv").exists():
        pytest.skip(f"the paper's reference data is not at {reference_dir()}")
    out = tmp_path / "paper.nc"
    assert main(["reference", "--out", str(out)]) == 0
    dataset = read_dataset(out)
    assert dataset.sizes["width"] == 14 and dataset.sizes["batch_size"] == 15 and dataset.sizes["seed"] == 5
    with pytest.raises(FileNotFoundError, match="per_model.csv"):
        main(["reference", "--directory", str(tmp_path), "--out", str(tmp_path / "x.nc")])
