"""Mode connectivity of one grid fitted with the two weight-decay forms of curve fitting.

    python benchmarks/curve_weight_decay/compare.py BEND.nc CURVE.nc

BEND.nc / CURVE.nc: dataset.nc of the same config (same trained models) with
curves.weight_decay_form bend (lltax's default) and curve (the reference code's form). Prints,
per cell, the cell-mean mc of each, their difference with its spread over the cell's pairs, and
the phase labels of both (classified with the config's defaults), then the mean difference over
the grid. Only the curve jobs differ between the two runs: the models are the same.
"""

from __future__ import annotations

import sys

import numpy as np
import xarray as xr

from lltax.contract import AXES
from lltax.phases.classify import classify


def main(bend_path: str, curve_path: str) -> None:
    bend, curve = xr.load_dataset(bend_path), xr.load_dataset(curve_path)
    for name in ("hessian_top_eigenvalue", "cka"):
        if not np.array_equal(bend[name].values, curve[name].values, equal_nan=True):
            raise SystemExit(f"{name} differs between the two datasets: they are not the same trained models")
    phases = {form: classify(data)["phase"] for form, data in (("bend", bend), ("curve", curve))}
    varying = [axis for axis in AXES if bend.sizes[axis] > 1]
    differences = curve["mode_connectivity"] - bend["mode_connectivity"]
    print(f"{' '.join(varying)} | mc bend | mc curve | curve - bend (mean ± std over pairs) | phase bend -> curve")
    for cell in np.ndindex(*(bend.sizes[axis] for axis in AXES)):
        where = dict(zip(AXES, cell))
        label = " ".join(f"{bend[axis].values[where[axis]]:g}" for axis in varying)
        b, c = (d["mode_connectivity"].isel(where).values for d in (bend, curve))
        diff = differences.isel(where).values
        pb, pc = (str(phases[form].isel(where).item()) for form in ("bend", "curve"))
        print(
            f"{label} | {np.nanmean(b):+.2f} | {np.nanmean(c):+.2f} | {np.nanmean(diff):+.2f} ± {np.nanstd(diff, ddof=1):.2f} | {pb} -> {pc}"
        )
    all_diffs = differences.values[np.isfinite(differences.values)]
    moved = int((phases["bend"].values != phases["curve"].values).sum())
    print(
        f"over {all_diffs.size} curves: mean difference {all_diffs.mean():+.3f} pp, std {all_diffs.std(ddof=1):.3f}; {moved} labels moved"
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
