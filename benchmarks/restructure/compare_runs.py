"""Compare every output of two finished runs of one config, file by file (byte for byte).

    python benchmarks/restructure/compare_runs.py BEFORE/results/tiny AFTER/results/tiny

Logs, benchmark records and the lock file are skipped (they hold times). Files that differ are
described: for JSON, the keys whose values differ (``wall_time_s`` is a wall time); for netCDF,
the variables and attributes that differ.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

SKIP = ("logs", "benchmarks", ".lltax.lock")


def files(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part in SKIP for part in p.relative_to(root).parts)
    }


def json_differences(a, b, prefix="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in json_differences(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        found = [d for i, (x, y) in enumerate(zip(a, b)) for d in json_differences(x, y, f"{prefix}[{i}]")]
        return sorted({re.sub(r"\[\d+\]", "[]", d) for d in found})
    return [] if a == b else [prefix]


def netcdf_differences(a: Path, b: Path) -> list[str]:
    import xarray as xr

    x, y = xr.load_dataset(a), xr.load_dataset(b)
    import numpy as np

    def same(u, v) -> bool:  # attributes may be arrays (landscape.nc's seeds)
        return u is not None and v is not None and np.array_equal(np.asarray(u), np.asarray(v))

    out = [f"attr {k}" for k in sorted(set(x.attrs) | set(y.attrs)) if not same(x.attrs.get(k), y.attrs.get(k))]
    out += [f"variable {k}" for k in sorted(set(x.variables) | set(y.variables)) if k not in x or k not in y or not x[k].identical(y[k])]
    return out


def main(before: str, after: str) -> int:
    a, b = files(Path(before)), files(Path(after))
    same, different = 0, []
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            different.append((name, "only in " + ("after" if name not in a else "before")))
            continue
        if hashlib.sha256(a[name].read_bytes()).digest() == hashlib.sha256(b[name].read_bytes()).digest():
            same += 1
            continue
        detail = ""
        if name.endswith(".json"):
            detail = ", ".join(json_differences(json.loads(a[name].read_text()), json.loads(b[name].read_text())))
        elif name.endswith(".nc"):
            detail = ", ".join(netcdf_differences(a[name], b[name]))
        different.append((name, detail))
    print(f"{same} files byte-identical, {len(different)} differ")
    for name, detail in different:
        print(f"  {name}: {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
