"""Phase classification (lltax.phases.classify) on synthetic grids and on the paper's published data."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from lltax import cli
from lltax.config.schema import load_schema
from lltax.contract import AXES, METRICS, PHASES
from lltax.phases import classify as phases_module
from lltax.phases.classify import classify, phase_table
from lltax.phases.paper_reference import load_reference, reference_dir
from lltax.phases.statistics import Estimate, two_means_split
from lltax.results.netcdf import merge_metrics, read_dataset, write_dataset
from lltax.results.tables import aggregate_metric

SEEDS = [0, 1, 2, 3]


def empty_dataset(widths: list[int]) -> xr.Dataset:
    config = {
        "grid": {
            "width": widths,
            "batch_size": [32],
            "label_noise": [0.0],
            "train_fraction": [1.0],
            "learning_rate": [0.1],
            "weight_decay": [0.0],
        },
        "seeds": SEEDS,
        "curves": {"pairs": "all"},
        "train": {"momentum": 0.9},
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


# One cell per phase, clearly inside its region, with a little seed-to-seed spread. The grid's
# learning rate 0.1 and momentum 0.9 put the stability limit at 2(1 + 0.9)/0.1 = 38.
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


def phase_of(result: xr.Dataset, width: int, **where) -> str:
    return str(result["phase"].sel(width=width, **where).squeeze().item())


def reason_of(result: xr.Dataset, width: int, **where) -> str:
    return str(result["phase_reason"].sel(width=width, **where).squeeze().item())


# ---------------------------------------------------------------------------------------------
# Two-means split (the explicit grid-relative option)


def test_two_means_split_is_the_best_split_by_brute_force():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, 17), rng.normal(5, 2, 11)])
    boundary, separability = two_means_split(values)
    ordered = np.sort(values)
    within = [
        ((ordered[:i] - ordered[:i].mean()) ** 2).sum() + ((ordered[i:] - ordered[i:].mean()) ** 2).sum() for i in range(1, len(values))
    ]
    best = int(np.argmin(within)) + 1
    assert boundary == pytest.approx((ordered[:best].mean() + ordered[best:].mean()) / 2, rel=1e-12)
    assert ordered[best - 1] < boundary < ordered[best]
    assert separability == pytest.approx(1 - min(within) / ((values - values.mean()) ** 2).sum(), rel=1e-12)
    assert two_means_split([1.0, 2.0, 10.0, 11.0]) == pytest.approx((6.0, 1 - 1.0 / 82.0))  # total SS 82, within 1
    assert np.isnan(two_means_split([3.0, 3.0, np.nan])).all()


# ---------------------------------------------------------------------------------------------
# Per-cell criteria on synthetic grids


def test_known_phases_with_default_per_cell_criteria(synthetic):
    result = classify(synthetic)
    for width, (expected, _) in KNOWN.items():
        assert phase_of(result, width) == expected, (width, reason_of(result, width))
    np.testing.assert_allclose(result["sharpness_threshold"].values, 38.0)  # 2(1 + 0.9) / 0.1
    assert result.attrs["connectivity_threshold"] == 1.0 and result.attrs["cka_threshold"] == 0.67
    schema = load_schema()["properties"]["classify"]["properties"]
    assert json.loads(result.attrs["classify_settings"]) == {key: spec["default"] for key, spec in schema.items()}  # the schema's defaults
    assert reason_of(result, 1).startswith("I: sharp: top eigenvalue 100 > 38 (n=4); barrier: mc -10 pp (n=6, p=")
    assert reason_of(result, 6).startswith("diverged: 75%") and reason_of(result, 7) == "unknown: no Hessian top eigenvalue"
    assert np.isnan(result["phase_confidence"].sel(width=[6, 7])).all()  # no confidence without a label
    clear = result["phase_confidence"].sel(width=[1, 2, 3, 4, 5]).values
    assert (clear > 0.99).all() and (clear <= 1.0).all()


def test_a_cells_phase_does_not_depend_on_the_other_cells(synthetic):
    full = classify(synthetic)
    for width in KNOWN:
        alone = classify(synthetic.sel(width=[width]))
        for name in ("phase", "phase_reason", "phase_confidence"):
            xr.testing.assert_identical(alone[name], full[name].sel(width=[width]))


def test_one_phase_grid_gets_one_phase_but_a_grid_split_forces_two():
    # Near-equal eigenvalues 10-11, connected, high CKA: every cell is IV-B.
    widths = list(range(1, 9))
    dataset = empty_dataset(widths)
    dataset["diverged"][:] = 0.0
    for width in widths:
        set_cell(dataset, width, eigenvalues=spread(10 + width / 8, 0.02, 4), mc=spread(-0.1, 0.5, 6), cka=spread(0.8, 0.02, 6))
    result = classify(dataset)
    assert {phase_of(result, w) for w in widths} == {"IV-B"}
    # The explicit grid-relative option splits the same grid in two, as the issue measured.
    split = classify(dataset, sharpness_threshold="grid")
    assert {phase_of(split, w) for w in widths} == {"II", "IV-B"}
    assert "depends on the grid's other cells" in json.loads(split.attrs["criteria"])["sharpness"]


def test_a_grid_with_one_barrier_cell_labels_it():
    dataset = empty_dataset([1, 2, 3])
    dataset["diverged"][:] = 0.0
    set_cell(dataset, 1, eigenvalues=[5.0] * 4, mc=spread(-6, 0.2, 6), cka=[0.8] * 6)
    set_cell(dataset, 2, eigenvalues=[5.0] * 4, mc=[0.0] * 6, cka=[0.8] * 6)
    set_cell(dataset, 3, eigenvalues=[5.0] * 4, mc=[0.5] * 6, cka=[0.8] * 6)
    result = classify(dataset)
    assert [phase_of(result, w) for w in (1, 2, 3)] == ["III", "IV-B", "IV-B"]
    alone = classify(dataset.sel(width=[1]))
    assert phase_of(alone, 1) == "III"


def test_boundary_follows_the_learning_rate_through_the_stability_limit():
    # The same eigenvalue 50 is flat at lr 0.02 and 0.05 (limits 190, 76) and sharp at 0.1 and
    # 0.2 (limits 38, 19): a two-phase grid split where the optimizer's limit crosses 50.
    config = {
        "grid": {
            "width": [8],
            "batch_size": [32],
            "label_noise": [0.0],
            "train_fraction": [1.0],
            "learning_rate": [0.02, 0.05, 0.1, 0.2],
            "weight_decay": [0.0],
        },
        "seeds": SEEDS,
        "curves": {"pairs": "all"},
        "train": {"momentum": 0.9},
    }
    dataset = merge_metrics([aggregate_metric(m, None, config) for m in METRICS], config)
    dataset["diverged"][:] = 0.0
    dataset["hessian_top_eigenvalue"][:] = 50.0
    dataset["mode_connectivity"][:] = -8.0
    dataset["cka"][:] = 0.5
    result = classify(dataset)
    labels = [str(result["phase"].sel(learning_rate=lr).squeeze().item()) for lr in (0.02, 0.05, 0.1, 0.2)]
    assert labels == ["III", "III", "I", "I"]
    np.testing.assert_allclose(result["sharpness_threshold"].squeeze().values, [190.0, 76.0, 38.0, 19.0])
    # sharpness_ratio scales the limit; a number replaces it for every cell.
    assert phase_of(classify(dataset, sharpness_ratio=2.0), 8, learning_rate=0.1) == "III"
    assert phase_of(classify(dataset, sharpness_threshold=60.0), 8, learning_rate=0.2) == "III"


def test_barrier_below_the_floor_but_not_significant_is_unknown():
    dataset = empty_dataset([1, 2, 3])
    dataset["diverged"][:] = 0.0
    set_cell(dataset, 1, eigenvalues=[5.0] * 4, mc=[-12.0, 10.0, -12.0, 8.0, -9.0, -3.0], cka=[0.8] * 6)  # mean -3, wide spread
    set_cell(dataset, 2, eigenvalues=[5.0] * 4, mc=[-3.5, -2.5, -3.0, -3.2, -2.8, -3.0], cka=[0.8] * 6)  # mean -3, tight
    set_cell(dataset, 3, eigenvalues=[5.0] * 4, mc=[-0.5, 0.4, -0.9, 0.1, -0.3, -0.2], cka=[0.8] * 6)  # above the floor
    result = classify(dataset)
    assert phase_of(result, 1) == "unknown" and "not significantly below 0" in reason_of(result, 1)
    assert phase_of(result, 2) == "III" and phase_of(result, 3) == "IV-B"
    # A floor below the noise cannot be resolved (cell 3 has mean -0.23, std 0.48): unknown, not
    # a barrier. A floor above cell 2's barrier makes it connected.
    assert phase_of(classify(dataset, connectivity_threshold=0.1), 3) == "unknown"
    assert phase_of(classify(dataset, connectivity_threshold=5.0), 2) == "IV-B"


def test_thin_evidence_gives_no_confidence():
    dataset = empty_dataset([1, 2])
    dataset["diverged"][:] = 0.0
    # Cell 1: one curve only (pairs other than the first are missing), cell 2: two seeds.
    set_cell(dataset, 1, eigenvalues=[100.0, 110.0, 90.0, 100.0], mc=[-10.0] + [np.nan] * 5, cka=[0.5] * 6)
    set_cell(dataset, 2, eigenvalues=[100.0, 110.0, np.nan, np.nan], mc=spread(-10, 0.1, 6), cka=[0.5] * 6)
    result = classify(dataset)
    assert phase_of(result, 1) == phase_of(result, 2) == "I"
    assert np.isnan(result["phase_confidence"]).all()
    assert "thin evidence (curves: 1; a confidence needs 3)" in reason_of(result, 1)
    assert "thin evidence (Hessian seeds: 2;" in reason_of(result, 2)
    assert not np.isnan(classify(dataset, min_samples=2)["phase_confidence"].sel(width=2)).any()


def test_confidence_is_the_replicate_agreement_of_each_decision():
    dataset = empty_dataset([1])
    dataset["diverged"][:] = 0.0
    eigenvalues = np.array([30.0, 45.0, 50.0, 39.0])  # mean 41 straddles the limit 38
    set_cell(dataset, 1, eigenvalues=eigenvalues, mc=spread(-10, 0.5, 6), cka=[0.5] * 6)
    result = classify(dataset)
    assert phase_of(result, 1) == "I"
    n, s = len(eigenvalues), eigenvalues.std(ddof=1)
    sharp = stats.t.cdf((eigenvalues.mean() - 38.0) / (s * np.sqrt(2 / n)), df=n - 1)
    mc = np.asarray(spread(-10, 0.5, 6))
    connected = stats.t.cdf((-1.0 - mc.mean()) / (mc.std(ddof=1) * np.sqrt(2 / 6)), df=5)
    assert float(result["sharp_agreement"].squeeze()) == pytest.approx(sharp, rel=1e-12)
    # A barrier must also be significant in the replicate: at most the mean-side probability,
    # and here (t ~ 10 over 6 curves) hardly less.
    barrier = float(result["connected_agreement"].squeeze())
    assert 0.9 <= barrier <= connected + 0.005
    assert np.isnan(result["cka_agreement"]).all()  # a phase-I cell never asks CKA
    assert float(result["phase_confidence"].squeeze()) == pytest.approx(sharp * barrier, rel=1e-12)


def test_confidence_is_calibrated_on_simulated_replicates():
    """Cells with normal samples around a threshold: among decisions reported at >= 0.9, at
    least 90 % are repeated by an independent replicate of the same size (the issue's goal)."""
    rng = np.random.default_rng(1)
    hits, reported = 0, 0
    for _ in range(4000):
        center, sigma = rng.uniform(-2, 2), rng.uniform(0.5, 2.0)
        first, second = (Estimate.of(rng.normal(center, sigma, 4)) for _ in range(2))
        if first.replicate_agreement(0.0) >= 0.9:
            reported += 1
            hits += (first.mean > 0) == (second.mean > 0)
    assert reported > 500
    assert hits / reported >= 0.9


def test_barrier_confidence_includes_the_replicates_significance():
    """A replicate whose barrier is not significant is `unknown`: a confident barrier label
    must also predict a significant replicate (found by bench_calibration on real runs).

    Cells are drawn as the confidence's model assumes (normal curve-to-curve noise, wide flat
    prior on the mean, scale-free prior on the spread), so this checks the implementation of
    the posterior predictive; bench_calibration checks the model on real replicate runs."""
    rng = np.random.default_rng(2)
    hits, reported = 0, 0
    flat = Estimate(5.0, 0.1, 4)
    for _ in range(3000):
        center, sigma = rng.uniform(-30, 10), float(np.exp(rng.uniform(np.log(0.5), np.log(8.0))))
        first, second = (Estimate.of(rng.normal(center, sigma, 3)) for _ in range(2))
        kwargs = dict(sharpness_threshold=38.0, connectivity_threshold=1.0, cka_threshold=0.5, significance=0.05, min_samples=3)
        mine = phases_module.decide_cell(flat, first, Estimate(0.6, 0.01, 3), 0.0, **kwargs)
        theirs = phases_module.decide_cell(flat, second, Estimate(0.6, 0.01, 3), 0.0, **kwargs)
        if mine.phase == "III" and mine.connected_agreement >= 0.9:
            reported += 1
            hits += theirs.phase == "III"
    assert reported > 300
    assert hits / reported >= 0.9


def test_settings_are_checked():
    dataset = empty_dataset([1])
    for settings, message in (
        ({"sharpness_threshold": -1.0}, "sharpness_threshold"),
        ({"sharpness_threshold": "auto"}, "sharpness_threshold"),
        ({"cka_threshold": "high"}, "cka_threshold"),
        ({"connectivity_threshold": -1.0}, "connectivity_threshold"),
        ({"significance": 1.5}, "significance"),
        ({"min_samples": 1}, "min_samples"),
        ({"resamples": 10}, r"classify setting for 'classify': unknown key\(s\) \['resamples'\]"),
    ):
        with pytest.raises(ValueError, match=message):
            classify(dataset, **settings)
    no_config = dataset.copy()
    del no_config.attrs["config"]
    with pytest.raises(ValueError, match="train.momentum"):
        classify(no_config)


def test_phases_round_trip_through_netcdf(synthetic, tmp_path):
    result = classify(synthetic)
    path = tmp_path / "phases.nc"
    write_dataset(result, path)
    back = read_dataset(path)
    assert back["phase"].values.astype(str).tolist() == result["phase"].values.tolist()
    assert back["phase_reason"].values.astype(str).tolist() == result["phase_reason"].values.tolist()
    assert set(np.unique(back["phase"].values.astype(str))) <= set(PHASES)
    for name in ("connectivity_threshold", "cka_threshold", "criteria", "classify_settings"):
        assert back.attrs[name] == result.attrs[name]
    np.testing.assert_array_equal(back["phase_confidence"].values, result["phase_confidence"].values)


def test_cli_prints_criteria_and_writes_phases(synthetic, tmp_path, capsys):
    dataset_path, phases_path = tmp_path / "dataset.nc", tmp_path / "phases.nc"
    write_dataset(synthetic, dataset_path)
    assert cli.run(["classify", "--dataset", str(dataset_path), "--out", str(phases_path), "--settings", '{"cka_threshold": 0.7}']) == 0
    printed = capsys.readouterr().out
    assert "sharpness: sharp: top eigenvalue > 1 x 2(1 + momentum)/learning_rate" in printed and "IV-B: CKA >= 0.7 (set)" in printed
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


# The paper's hand-drawn regions (shared/reference/yang2021/README.md), each as (widths, batch sizes).
PAPER_REGIONS = {
    "I": ((2, 4), (64, 1024)),
    "II": ((32, 128), (16, 16)),
    "III": ((8, 11), (256, 1024)),
    "IV-B": ((45, 128), (64, 128)),
    "IV-A": ((45, 128), (1024, 1024)),
}
# Sub-grids of the paper's grid: (widths, batch sizes) ranges.
CROPS = {
    "wide only": ((23, 128), (64, 1024)),
    "narrow only": ((2, 6), (64, 1024)),
    "small batch only": ((1, 128), (16, 32)),
    "middle band": ((6, 23), (16, 1024)),
    "one cell": ((45, 45), (1024, 1024)),
}


def region_cells(phases: xr.Dataset, widths: tuple[int, int], batch_sizes: tuple[int, int]) -> dict[tuple[int, int], str]:
    table = phases["phase"].squeeze([a for a in AXES if a not in ("width", "batch_size")], drop=True)
    return {
        (int(w), int(b)): str(table.sel(width=w, batch_size=b).item())
        for w, b in itertools.product(table["width"].values, table["batch_size"].values)
        if widths[0] <= w <= widths[1] and batch_sizes[0] <= b <= batch_sizes[1]
    }


def crop(dataset: xr.Dataset, widths: tuple[int, int], batch_sizes: tuple[int, int]) -> xr.Dataset:
    return dataset.sel(width=slice(*widths), batch_size=slice(*batch_sizes))


def test_default_classification_reproduces_the_paper_regions(reference):
    result = classify(reference)  # DEFAULT settings: per-cell criteria
    for phase, (widths, batch_sizes) in PAPER_REGIONS.items():
        members = region_cells(result, widths, batch_sizes)
        assert members, phase
        wrong = {cell: got for cell, got in members.items() if got != phase}
        assert not wrong, f"cells expected in phase {phase} but classified otherwise: {wrong}\n{phase_table(result)}"


@pytest.mark.parametrize("name", list(CROPS))
def test_crops_of_the_paper_grid_keep_every_label(reference, name):
    full = classify(reference)
    cropped = classify(crop(reference, *CROPS[name]))
    assert cropped.sizes["width"] * cropped.sizes["batch_size"] >= 1
    for phase, (widths, batch_sizes) in PAPER_REGIONS.items():
        for cell, got in region_cells(cropped, widths, batch_sizes).items():
            assert got == phase, f"crop {name!r}: clearly placed cell {cell} became {got}, the paper has {phase}"
    # Stronger: every cell (boundary cells too) keeps its full-grid label and reason.
    for variable in ("phase", "phase_reason"):
        expected = full[variable].sel(width=cropped["width"], batch_size=cropped["batch_size"])
        np.testing.assert_array_equal(cropped[variable].values, expected.values)


def test_grid_relative_option_is_what_moves_labels_in_a_crop(reference):
    """The measurement behind the issue, kept as a regression check on the explicit option."""
    grid = {"sharpness_threshold": "grid", "connectivity_threshold": "grid", "cka_threshold": "grid"}
    wide = classify(crop(reference, *CROPS["wide only"]), **grid)
    assert set(region_cells(wide, (23, 128), (64, 1024)).values()) - {"IV-A", "IV-B"}


def test_reference_cli_writes_the_paper_dataset(tmp_path):
    from lltax.cli import main
    from lltax.phases.paper_reference import reference_dir

    if not (reference_dir() / "per_model.csv").exists():
        pytest.skip(f"the paper's reference data is not at {reference_dir()}")
    out = tmp_path / "paper.nc"
    assert main(["reference", "--out", str(out)]) == 0
    dataset = read_dataset(out)
    assert dataset.sizes["width"] == 14 and dataset.sizes["batch_size"] == 15 and dataset.sizes["seed"] == 5
    with pytest.raises(FileNotFoundError, match="per_model.csv"):
        main(["--debug", "reference", "--reference-dir", str(tmp_path), "--out", str(tmp_path / "x.nc")])


def test_advice_and_margins_are_the_cells_own(synthetic, tmp_path):
    """Each phase carries the paper's advice for it (none where the paper gives none), and the
    margins are the cell's measurements against its thresholds; they survive netCDF."""
    from lltax.phases.advice import ADVICE

    write_dataset(classify(synthetic), tmp_path / "phases.nc")
    result = read_dataset(tmp_path / "phases.nc")
    for width, (phase, _) in KNOWN.items():
        cell = result.sel(width=width).squeeze()
        expected = ADVICE.get(phase)
        assert cell["advice"].item() == (expected.text if expected else "")
        assert cell["advice_knob"].item() == (expected.knob if expected else "")
        assert cell["advice_source"].item() == (expected.source if expected else "")
    assert ADVICE["IV-A"].knob == "amount of data" and ADVICE["IV-B"].knob == "none" and "diverged" not in ADVICE
    one = result.sel(width=1).squeeze()
    assert one["sharp_margin"].item() == pytest.approx(100 / 38)  # mean eigenvalue / stability limit
    assert one["connected_margin"].item() == pytest.approx(-10 + 1.0)  # mean mc + floor
    assert result.sel(width=5).squeeze()["cka_margin"].item() == pytest.approx(0.9 - 0.67)
    # The closest decision is the one with the lowest replicate agreement; none without a confidence.
    agreements = {name: one[f"{name}_agreement"].item() for name in ("sharp", "connected", "cka")}
    finite = {k: v for k, v in agreements.items() if np.isfinite(v)}
    assert one["closest_decision"].item() == min(finite, key=finite.get)
    assert result.sel(width=7).squeeze()["closest_decision"].item() == ""
