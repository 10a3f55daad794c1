"""Figures from synthetic datasets built here in the dataset.nc / phases.nc schema (DESIGN.md)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import xarray as xr
from matplotlib.colors import CenteredNorm, LogNorm
from matplotlib.image import imread

from lltax import cli
from lltax.figures.diagrams import FIGURES, curves_figure, lines_figure, panels_figure, phases_figure, plot_all
from lltax.figures.grid import phase_regions, region_anchor, shade, tick_labels
from lltax.figures.maps import PANEL_METRICS
from lltax.figures.save import save_figure

AXES = ("width", "batch_size", "label_noise", "train_fraction", "learning_rate", "weight_decay")
T = (0.0, 0.25, 0.5, 0.75, 1.0)
UNITS = {
    "train_loss": ("nats", "training loss"),
    "train_acc": ("%", "training accuracy"),
    "test_loss": ("nats", "test loss"),
    "test_acc": ("%", "test accuracy"),
    "hessian_top_eigenvalue": ("1", "Hessian top eigenvalue"),
    "hessian_trace": ("1", "Hessian trace"),
    "diverged": ("1", "training diverged"),
    "cka": ("1", "linear CKA of softmax outputs"),
    "l2_distance": ("1", "l2 distance between parameters"),
    "mode_connectivity": ("%", "mode connectivity (training error)"),
    "mode_connectivity_loss": ("nats", "mode connectivity (training loss)"),
    "curve_train_error": ("%", "training error along the curve"),
    "curve_train_loss": ("nats", "training loss along the curve"),
    "curve_test_error": ("%", "test error along the curve"),
    "curve_test_loss": ("nats", "test loss along the curve"),
}


def synthetic_phase(width: int, batch_size: int) -> str:
    if width <= 2:
        return "I"
    if batch_size <= 16:
        return "II"
    if width <= 4:
        return "III"
    return "IV-A" if batch_size >= 256 else "IV-B"


def make_datasets(
    width=(2, 4, 8, 16), batch_size=(16, 64, 256), label_noise=(0.0,), seeds=(0, 1, 2), nan_cells=(), all_nan_curves=False, mc_offset=0.0
):
    """(dataset, phases) in the contract schema, with values that vary smoothly over the grid.

    ``nan_cells``: dicts of coordinates whose cells are missing (NaN, phase 'unknown').
    """
    rng = np.random.default_rng(0)
    grid = {
        "width": list(width),
        "batch_size": list(batch_size),
        "label_noise": list(label_noise),
        "train_fraction": [1.0],
        "learning_rate": [0.1],
        "weight_decay": [0.0005],
    }
    pairs = list(itertools.combinations(seeds, 2))
    coords = {**grid, "seed": list(seeds), "pair": np.arange(len(pairs)), "t": list(T)}
    w, b, n = (xr.DataArray(np.array(grid[a], dtype=float), dims=a, coords={a: grid[a]}) for a in ("width", "batch_size", "label_noise"))
    cell_dims = AXES
    cell_shape = tuple(len(grid[a]) for a in AXES)

    def per(kind, base):
        dims = cell_dims + (kind,)
        size = len(seeds) if kind == "seed" else len(pairs)
        noise = xr.DataArray(rng.normal(0, 0.05, cell_shape + (size,)), dims=dims)
        return (base * (1 + noise)).transpose(*dims)

    ones = xr.DataArray(np.ones(cell_shape), dims=cell_dims, coords={a: grid[a] for a in AXES})
    log_w, log_b = np.log2(w), np.log2(b)
    values = {
        "train_loss": per("seed", ones * 2.0 / w**2 * (b / 64) * (1 + 5 * n)),
        "train_acc": per("seed", ones * (100 - 40 / w)),
        "test_loss": per("seed", ones * (1 + 1 / w)),
        "test_acc": per("seed", ones * (40 + 8 * log_w - 20 * n)),
        "hessian_top_eigenvalue": per("seed", ones * 400 / w * (b / 64)),
        "hessian_trace": per("seed", ones * 4000 / w * (b / 64)),
        "cka": per("pair", ones * (0.5 + 0.1 * log_w)).clip(0, 1),
        "l2_distance": per("pair", ones * 10 * np.sqrt(w)),
        "mode_connectivity": per("pair", ones * (-40 / w + 2 * (log_b <= 4))) + mc_offset,
    }
    values["mode_connectivity_loss"] = values["mode_connectivity"] / 10
    values["diverged"] = xr.zeros_like(values["train_loss"], dtype=bool)
    bump = xr.DataArray(4 * np.array(T) * (1 - np.array(T)), dims="t")
    barrier = -values["mode_connectivity"]
    values["curve_train_error"] = (5 + barrier * bump).clip(0, 100)
    values["curve_train_loss"] = 0.05 * (1 + barrier.clip(0) * bump / 5)
    values["curve_test_error"] = values["curve_train_error"] + 20
    values["curve_test_loss"] = values["curve_train_loss"] + 1
    for name in ("curve_train_error", "curve_train_loss", "curve_test_error", "curve_test_loss"):
        values[name] = values[name].transpose(*cell_dims, "pair", "t")
        if all_nan_curves:
            values[name] = values[name] * np.nan

    dataset = xr.Dataset(values, coords={k: v for k, v in coords.items()})
    dataset = dataset.assign_coords(seed_a=("pair", [a for a, _ in pairs]), seed_b=("pair", [b for _, b in pairs]))
    for cell in nan_cells:
        for name in dataset.data_vars:
            if name == "diverged":
                dataset[name].loc[cell] = True
            else:
                dataset[name].loc[cell] = np.nan
    for name, (unit, long_name) in UNITS.items():
        dataset[name].attrs.update(units=unit, long_name=long_name)
    dataset.attrs["config"] = json.dumps({"experiment": "synthetic"})

    reduced = {}
    for name, array in dataset.data_vars.items():
        over = [d for d in ("seed", "pair") if d in array.dims]
        reduced[f"{name}_mean"] = array.astype(float).mean(over)
        reduced[f"{name}_std"] = array.astype(float).std(over)
    phase = (
        xr.DataArray(
            np.vectorize(synthetic_phase, otypes=[object])(*np.meshgrid(grid["width"], grid["batch_size"], indexing="ij")),
            dims=("width", "batch_size"),
            coords={"width": grid["width"], "batch_size": grid["batch_size"]},
        )
        .broadcast_like(ones)
        .transpose(*cell_dims)
        .copy()
    )
    confidence = ones * xr.DataArray(rng.uniform(0.3, 1.0, cell_shape), dims=cell_dims)
    for cell in nan_cells:
        phase.loc[cell] = "unknown"
        confidence.loc[cell] = np.nan
    # As lltax classify writes it: the dataset's variables and config, the reductions, the phases.
    phases = dataset.assign({**reduced, "phase": phase.astype("<U8"), "phase_confidence": confidence})
    phases.attrs.update(sharpness_threshold=25.0, connectivity_threshold=1.5, cka_threshold=0.8)
    return dataset, phases


def axes_labelled(figure, label):
    return [ax for ax in figure.axes if ax.get_label() == label]


def texts(ax):
    return [t.get_text() for t in ax.texts]


def is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------


def test_plot_all_writes_the_four_figures_as_png(tmp_path):
    dataset, phases = make_datasets()
    paths = plot_all(dataset, phases, tmp_path, dpi=50)
    assert [p.name for p in paths] == [f"{name}.png" for name in FIGURES]
    for path in paths:
        assert is_png(path)
        image = imread(path)
        assert image.ndim == 3 and min(image.shape[:2]) > 100
        # Not a blank canvas: several distinct colours were drawn.
        assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 20
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{name}.png" for name in FIGURES)  # no temp files left


def test_panels_one_row_per_extra_axis_value():
    dataset, phases = make_datasets(label_noise=(0.0, 0.2, 0.4))
    figure = panels_figure(dataset, phases, x="width", y="batch_size")
    accuracy = axes_labelled(figure, "test_acc")
    phase_axes = axes_labelled(figure, "phase")
    assert len(accuracy) == 3 and len(phase_axes) == 3
    row_labels = [ax.get_ylabel() for ax in accuracy]
    for noise, label in zip((0, 0.2, 0.4), row_labels):
        assert f"label noise = {noise:g}" in label
    # Each row shows its own noise level: test accuracy falls with noise in the synthetic data.
    row_means = [np.ma.mean(ax.collections[0].get_array()) for ax in accuracy]
    assert row_means[0] > row_means[1] > row_means[2]
    # One colour scale per metric across rows, so rows are comparable.
    norms = [ax.collections[0].norm for ax in accuracy]
    assert all((n.vmin, n.vmax) == (norms[0].vmin, norms[0].vmax) for n in norms)


def test_single_combination_wraps_into_two_rows():
    dataset, phases = make_datasets()
    figure = panels_figure(dataset, phases)
    panels = [ax for ax in figure.axes if ax.get_label() != "<colorbar>" and ax.axison]  # the spare slot is off
    assert len(panels) == len(PANEL_METRICS) + 1  # with the phase map
    assert len({round(ax.get_position().y0, 3) for ax in panels}) == 2


def test_batch_size_hot_at_the_top_and_cells_in_place():
    dataset, phases = make_datasets()
    figure = panels_figure(dataset, phases, x="width", y="batch_size")
    ax = axes_labelled(figure, "test_acc")[0]
    assert ax.yaxis_inverted()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == tick_labels(np.array([16, 64, 256])) == ["$2^{4}$", "$2^{6}$", "$2^{8}$"]
    # Row 0 of the mesh (drawn at the top) is the smallest batch: its eigenvalue is the smallest.
    eigen = axes_labelled(figure, "hessian_top_eigenvalue")[0].collections[0].get_array().reshape(3, 4)
    expected = dataset.hessian_top_eigenvalue.mean("seed").squeeze().transpose("batch_size", "width").values
    np.testing.assert_allclose(eigen, expected)


def test_learning_rate_and_load_axes_grow_upwards():
    dataset, phases = make_datasets(label_noise=(0.0, 0.1, 0.2))
    for y in ("label_noise",):
        figure = panels_figure(dataset, phases, x="width", y=y)
        assert not axes_labelled(figure, "cka")[0].yaxis_inverted()
    figure = phases_figure(phases, x="batch_size", y="width")
    assert not axes_labelled(figure, "phase")[0].yaxis_inverted()


def test_mode_connectivity_norm_centred_on_zero_even_when_skewed():
    dataset, phases = make_datasets(mc_offset=-5.0)
    mesh = axes_labelled(panels_figure(dataset, phases), "mode_connectivity")[0].collections[0]
    assert isinstance(mesh.norm, CenteredNorm)
    assert mesh.norm.vcenter == 0 and mesh.norm(0.0) == pytest.approx(0.5)
    data = mesh.get_array()
    assert mesh.norm.halfrange == pytest.approx(np.abs(data).max())
    # As in the paper: a barrier (mc < 0) is blue, mc > 0 red.
    assert mesh.cmap.name == "RdBu_r"
    red, blue = np.asarray(mesh.cmap(mesh.norm(5.0))[:3]), np.asarray(mesh.cmap(mesh.norm(-5.0))[:3])
    assert red[0] > red[2] and blue[2] > blue[0]
    # Log scales for the decade-spanning metrics.
    assert isinstance(axes_labelled(panels_figure(dataset, phases), "hessian_trace")[0].collections[0].norm, LogNorm)


def test_nan_cells_are_masked_and_noted():
    missing = [{"width": 2, "batch_size": 16}, {"width": 8, "batch_size": 256}]
    dataset, phases = make_datasets(nan_cells=missing, all_nan_curves=True)
    figure = panels_figure(dataset, phases)
    for name in ("test_acc", "hessian_trace", "cka"):
        array = axes_labelled(figure, name)[0].collections[0].get_array()
        assert array.mask.sum() == len(missing)
    assert axes_labelled(figure, "mode_connectivity")[0].collections[0].get_array().mask.reshape(3, 4)[0, 0]
    legend_text = [t.get_text() for t in figure.legends[0].get_texts()]
    assert any("no data" in t for t in legend_text)
    assert any(t.startswith("unknown") for t in legend_text)
    # Missing cells are 'unknown' ('?') in the phase map, diverged ones a dark '×'.
    phases["phase"].loc[{"width": 16, "batch_size": 64}] = "diverged"
    ax = axes_labelled(phases_figure(phases), "phase")[0]
    assert "?" in texts(ax)
    cross = [t for t in ax.texts if t.get_text() == "×"]
    assert len(cross) == 1 and cross[0].get_position() == (3, 1) and cross[0].get_color() == "white"
    colors = ax.collections[0].get_array().reshape(3, 4, 3)
    assert colors[1, 3].max() < 0.2 and colors[0, 0].min() > 0.9  # diverged dark, unknown near white


def test_non_positive_values_are_blank_on_log_panels():
    dataset, phases = make_datasets()
    phases["hessian_trace_mean"].loc[{"width": 4, "batch_size": 64}] = -3.0
    array = axes_labelled(panels_figure(dataset, phases), "hessian_trace")[0].collections[0].get_array()
    assert array.mask.reshape(3, 4)[1, 1] and array.mask.sum() == 1


def test_basin_width_panel_marks_censored_cells_as_lower_bounds(tmp_path):
    """A cell where some basin rays stayed below the rise up to basin.max_radius holds a lower
    bound: its square carries a '≥', and the title says what it means (issue 29); without
    censored cells neither appears. The figure stays byte-identical across runs."""
    dataset, phases = make_datasets()
    phases["basin_width_mean"] = phases["train_loss_mean"] * 0 + 0.5
    phases["basin_censored_mean"] = phases["train_loss_mean"] * 0
    ax = axes_labelled(panels_figure(dataset, phases), "basin_width")[0]
    assert "≥" not in texts(ax) and "lower bound" not in ax.get_title()
    phases["basin_censored_mean"].loc[{"width": 8, "batch_size": 64}] = 0.25
    figure = panels_figure(dataset, phases)
    ax = axes_labelled(figure, "basin_width")[0]
    marks = [t for t in ax.texts if t.get_text() == "≥"]
    assert len(marks) == 1 and marks[0].get_position() == (2, 1)  # width 8 = column 2, batch size 64 = row 1
    assert "lower bound" in ax.get_title()
    assert not any(t.get_text() == "≥" for other in figure.axes if other is not ax for t in other.texts)
    first = save_figure(panels_figure(dataset, phases), tmp_path / "a.png", format="png", dpi=40).read_bytes()
    assert save_figure(panels_figure(dataset, phases), tmp_path / "b.png", format="png", dpi=40).read_bytes() == first


def test_phase_labels_and_confidence_in_every_cell():
    dataset, phases = make_datasets()
    figure = phases_figure(phases)
    ax = axes_labelled(figure, "phase")[0]
    assert len(ax.texts) == 2 * 12
    expected = phases.phase.squeeze().transpose("batch_size", "width").values
    confidence = phases.phase_confidence.squeeze().transpose("batch_size", "width").values
    by_position = {}
    for text in ax.texts:
        column, row = text.get_position()
        by_position.setdefault((row, column), {})[text.get_verticalalignment()] = text.get_text()
    for (row, column), phase in np.ndenumerate(expected):
        # Phase just above the cell centre, confidence just below.
        assert by_position[row, column] == {"bottom": phase, "top": f"{confidence[row, column]:.2f}"}
    title = figure.get_suptitle()
    assert "> 25;" in title and "mc < -1.5;" in title and "CKA ≥ 0.8" in title
    # A per-cell threshold (stability limit per learning rate) is shown as its range.
    phases["sharpness_threshold"] = xr.DataArray(np.array([19.0, 38.0, 190.0]), dims=("learning_rate_stub",))
    assert "19–190 (per learning rate)" in phases_figure(phases).get_suptitle()
    # The panel figure labels each connected region once.
    panel_texts = texts(axes_labelled(panels_figure(dataset, phases), "phase")[0])
    assert sorted(panel_texts) == sorted(["I", "II", "III", "IV-A", "IV-B"])


def test_phase_regions_and_anchor():
    table = np.array([["I", "I", "II"], ["I", "III", "II"], ["III", "III", "I"]], dtype=object)
    regions = phase_regions(table)
    assert sorted((p, len(c)) for p, c in regions) == [("I", 1), ("I", 3), ("II", 2), ("III", 3)]
    assert region_anchor([(0, 0), (0, 1), (0, 2)]) == (0, 1)


def test_shade_fades_with_confidence():
    np.testing.assert_allclose(shade("#ff0000", 1.0), [1, 0, 0])
    np.testing.assert_allclose(shade("#ff0000", 0.0), [1, 0.7, 0.7])
    np.testing.assert_allclose(shade("#ff0000", np.nan), [1, 0, 0])


def test_lines_one_per_group_value_with_band():
    dataset, phases = make_datasets(label_noise=(0.0, 0.2))
    figure = lines_figure(dataset, phases, line_metric="hessian_trace")
    ax = figure.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["0", "0.2"]  # auto group = label_noise, the first other varying axis
    assert len([ax for ax in figure.axes if ax.get_visible()]) == 4  # one panel per width
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert len(ax.collections) == 2  # one ±std band per line
    centre = ax.get_lines()[0].get_ydata()
    expected = dataset.hessian_trace.sel(width=2, label_noise=0.0).squeeze().mean("seed").values
    np.testing.assert_allclose(centre, expected)
    # Without another varying axis the lines are the widths.
    dataset, phases = make_datasets()
    labels = [line.get_label() for line in lines_figure(dataset, phases).axes[0].get_lines()]
    assert labels == tick_labels(np.array([2, 4, 8, 16]))


def test_curves_grouped_by_phase_and_note_when_missing():
    dataset, phases = make_datasets()
    figure = curves_figure(dataset, phases)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["phase I (3 cells)", "phase II (3 cells)", "phase III (2 cells)", "phase IV-A (2 cells)", "phase IV-B (2 cells)"]
    assert sum(len(ax.get_lines()) for ax in figure.axes) == 2 * 12
    # The straight line between the same ends, dashed beside each curve that has one.
    for name in ("loss", "error"):
        dataset[f"line_train_{name}"] = dataset[f"curve_train_{name}"] + 1.0
    figure = curves_figure(dataset, phases)
    dashed = [line for ax in figure.axes for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 2 * 12 and sum(len(ax.get_lines()) for ax in figure.axes) == 4 * 12
    dataset, phases = make_datasets(all_nan_curves=True)
    figure = curves_figure(dataset, phases)
    assert "no mode-connectivity curves" in texts(figure.axes[0])[0]


def test_bad_settings_raise_clear_errors(tmp_path):
    dataset, phases = make_datasets()
    with pytest.raises(ValueError, match=r"plots.x = 'depth' is not a grid axis.*width"):
        plot_all(dataset, phases, tmp_path, x="depth")
    with pytest.raises(ValueError, match="plots.y = 'seed'"):
        plot_all(dataset, phases, tmp_path, y="seed")
    with pytest.raises(ValueError, match="two different grid axes"):
        plot_all(dataset, phases, tmp_path, x="width", y="width")
    with pytest.raises(ValueError, match=r"line_metric = 'sharpness'.*hessian_trace"):
        plot_all(dataset, phases, tmp_path, line_metric="sharpness")
    with pytest.raises(ValueError, match="line_group = 'batch_size'"):
        plot_all(dataset, phases, tmp_path, line_group="batch_size")
    with pytest.raises(ValueError, match="plots.format': 'jpg' is not one of"):
        plot_all(dataset, phases, tmp_path, format="jpg")
    assert list(tmp_path.iterdir()) == []


def test_vector_output_is_byte_identical_across_runs(tmp_path):
    dataset, phases = make_datasets()
    for format in ("pdf", "svg"):
        first = save_figure(phases_figure(phases), tmp_path / f"a.{format}", format=format, dpi=50).read_bytes()
        second = save_figure(phases_figure(phases), tmp_path / f"b.{format}", format=format, dpi=50).read_bytes()
        assert first == second


def test_cli_reads_netcdf_and_writes_fixed_names(tmp_path):
    dataset, phases = make_datasets(width=(2, 8), batch_size=(16, 256), nan_cells=[{"width": 8, "batch_size": 16}])
    dataset.to_netcdf(tmp_path / "dataset.nc")
    phases.to_netcdf(tmp_path / "phases.nc")
    settings = json.dumps({"x": "width", "y": "batch_size", "format": "pdf", "dpi": 50, "line_metric": "cka", "line_group": "auto"})
    code = cli.main(
        [
            "plot",
            "--dataset",
            str(tmp_path / "dataset.nc"),
            "--phases",
            str(tmp_path / "phases.nc"),
            "--settings",
            settings,
            "--out-dir",
            str(tmp_path / "figures"),
        ]
    )
    assert code == 0
    written = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert written == sorted(f"{name}.pdf" for name in FIGURES)
    assert all((tmp_path / "figures" / name).read_bytes().startswith(b"%PDF") for name in written)
    with pytest.raises(FileNotFoundError, match="run the aggregate step"):
        cli.main(
            ["--debug", "plot", "--dataset", str(tmp_path / "none.nc"), "--phases", str(tmp_path / "phases.nc"), "--out-dir", str(tmp_path)]
        )


def test_a_grid_where_every_run_diverged_still_gets_every_figure(tmp_path):
    """Every metric NaN, every cell `diverged`: grey panels and notes, never a crash (a log
    axis with no positive data used to fail in the lines figure)."""
    from lltax.contract import METRICS
    from lltax.phases.classify import classify
    from lltax.results.netcdf import merge_metrics
    from lltax.results.tables import aggregate_metric

    config = {
        "grid": {
            "width": [2, 4],
            "batch_size": [16, 64, 256],
            "label_noise": [0.0],
            "train_fraction": [1.0],
            "learning_rate": [0.1],
            "weight_decay": [0.0],
        },
        "seeds": [0, 1, 2],
        "curves": {"pairs": "all"},
        "train": {"momentum": 0.9},
        "fge": {"enabled": True},
    }
    dataset = merge_metrics([aggregate_metric(m, None, config) for m in METRICS], config)
    dataset["diverged"][:] = 1.0
    phases = classify(dataset)
    assert set(phases["phase"].values.ravel().tolist()) == {"diverged"}
    paths = plot_all(dataset, phases, tmp_path)
    # Every table was merged, the ensembles' too, with fge.enabled: its figure is drawn as well
    # (all NaN: the workflow declared it). Without fge.enabled it is not drawn.
    assert sorted(p.name for p in paths) == sorted(f"{name}.png" for name in (*FIGURES, "ensembles"))
    assert all(is_png(p) for p in paths)
    dataset.attrs["config"] = json.dumps({**config, "fge": {"enabled": False}})
    assert "ensembles.png" not in [p.name for p in plot_all(dataset, phases, tmp_path / "off")]


def test_a_phases_file_of_another_grid_is_refused(tmp_path):
    dataset, phases = make_datasets()
    other = phases.isel(width=slice(0, 1))
    with pytest.raises(ValueError, match="the phases file holds another grid than the dataset"):
        plot_all(dataset, other, tmp_path)
    assert not list(tmp_path.iterdir())


def test_every_figure_has_its_report_caption():
    """A figure is its name in contract.FIGURES (or FGE_FIGURE) and its caption report/<name>.rst:
    the rules declare and caption it from that name alone."""
    from pathlib import Path

    from lltax.contract import FGE_FIGURE, FIGURES

    report = Path(__file__).resolve().parents[1] / "report"
    for name in (*FIGURES, FGE_FIGURE):
        assert (report / f"{name}.rst").read_text().strip(), name
