"""The GPU check (benchmarks/gpu_check.py) runs as an offline GPU node would run it: its smoke
run, on the CPU, with snakemake, netCDF4, pyhessian, mnist1d and jsonschema unimportable."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
BLOCKED = ("snakemake", "netCDF4", "pyhessian", "mnist1d", "jsonschema")
SECTIONS = ("environment", "matmul_peak", "training", "determinism", "hessian_tf32", "trace_memory", "landscape_and_curves", "grid_cell")

# `python -c WRAPPER script args`: a finder first on sys.meta_path makes the blocked packages
# fail to import as absent ones do (ModuleNotFoundError), then the script runs as __main__.
WRAPPER = """
import importlib.abc, importlib.machinery, runpy, sys

BLOCKED = set(sys.argv[1].split(","))


class Blocked(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name.split(".")[0] in BLOCKED else None

    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (made unimportable by the test)", name=spec.name)

    def exec_module(self, module):
        raise ModuleNotFoundError(module.__name__)


sys.meta_path.insert(0, Blocked())
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def skipped_or_errors(value, where=""):
    """(paths of "error" entries, paths of "skipped" entries without a reason) in the report."""
    errors, unexplained = [], []
    if isinstance(value, dict):
        if value.get("error"):
            errors.append(where)
        if value.get("status") == "skipped" and not value.get("reason"):
            unexplained.append(where)
        if "skipped" in value and not (isinstance(value["skipped"], str) and value["skipped"]):
            unexplained.append(where)
        for key, item in value.items():
            e, u = skipped_or_errors(item, f"{where}/{key}")
            errors += e
            unexplained += u
    elif isinstance(value, list):
        for index, item in enumerate(value):
            e, u = skipped_or_errors(item, f"{where}[{index}]")
            errors += e
            unexplained += u
    return errors, unexplained


def test_gpu_check_smoke_runs_without_the_workflow_packages(tmp_path):
    out = tmp_path / "gpu_check"
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY / "src"), "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-c", WRAPPER, ",".join(BLOCKED), str(REPOSITORY / "benchmarks" / "gpu_check.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert (out / "gpu_check.log").stat().st_size > 0

    sections = report["sections"]
    assert tuple(sections) == SECTIONS
    for name, entry in sections.items():
        assert entry["status"] in ("ok", "skipped"), (name, entry.get("error"))
        assert "wall_s" in entry and "max_memory_allocated_bytes" in entry
    errors, unexplained = skipped_or_errors(sections)
    assert not errors, errors
    assert not unexplained, unexplained
    assert report["summary"]["sections_with_errors"] == [] and report["summary"]["measurements_with_errors"] == []

    # The packages really were absent, and the check said so.
    packages = sections["environment"]["result"]["packages"]
    assert all(packages[name] is None for name in BLOCKED), packages

    # Figures were measured (tiny, on the CPU): the bare loop, the default step, a bit-exact rerun.
    cells = sections["training"]["result"]["cells"]
    for entry in cells.values():
        assert entry["modes"]["bare_fp32"]["ms_per_step"] > 0 and entry["modes"]["default"]["ms_per_step"] > 0
        assert "default" in entry["over_same_precision_bare"]
    determinism = sections["determinism"]["result"]
    assert determinism["modes"]["default"]["bit_identical"] is True
    assert determinism["resume"]["bit_identical"] is True

    # Every job's records were written and are in form; the landscape without netCDF4, in memory.
    cell = sections["grid_cell"]["result"]
    assert cell["same_form"] is True, cell["differences"]
    names = {Path(name).name for name in cell["records"]}
    assert {"train.json", "hessian.json", "basin.json", "cka.json", "distance.json", "curve_eval.json", "fge.json"} <= names
    assert {"landscape.nc", "dataset.nc"} <= names
    assert any("netCDF4 is absent" in note for note in cell["notes"])

    goals = report["summary"]["goals"]
    assert set(goals) >= {
        "default_step_within_1.1x_of_bare",
        "fastest_mode_3x_bare_fp32_at_width_64_batch_1024",
        "bit_identical_twice_per_mode",
        "no_out_of_memory_at_width_128",
    }


def test_records_compared_in_form():
    """The GPU-vs-CPU comparison of the grid cell's records (only the CPU runs in CI, so the
    comparison itself is checked here): keys, lengths, NaN places and non-finite numbers are
    differences; the values of numbers and strings, and what a record says of its machine, are not."""
    spec = importlib.util.spec_from_file_location("gpu_check", REPOSITORY / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    differences = gpu_check.form_differences

    record = {"loss": 0.5, "acc": [1.0, None], "name": "a", "runtime": {"gpu": "H100"}, "diverged": False}
    assert differences(record, {**record, "loss": 0.7, "name": "b", "runtime": {"threads": 1}}) == []
    assert differences(record, {**record, "acc": [2.0, float("nan")]}) == []  # JSON's null is NaN
    assert differences(record, {**record, "extra": 1}) != []
    assert differences(record, {**record, "acc": [1.0]}) != []
    assert differences(record, {**record, "acc": [None, 1.0]}) != []
    assert differences(record, {**record, "loss": float("inf")}) != []
    assert differences(record, {**record, "diverged": 0}) != []
    assert differences({"x": "text"}, {"x": 1.0}) != []
