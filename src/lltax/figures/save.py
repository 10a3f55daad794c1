"""Every figure file of lltax is written here: atomically, with fixed metadata, so the same
data give byte-identical files in every format and a rerun changes nothing downstream."""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from lltax.storage.atomic_files import atomic_path

FORMATS = ("png", "pdf", "svg")
# No creation dates and a fixed SVG id salt: the same data gives byte-identical files, so a
# rerun of the plot rule does not look like a change to anything downstream.
_METADATA = {"png": {}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}


def save_figure(figure: Figure, path: str | Path, *, format: str, dpi: int) -> Path:
    """Write ``figure`` atomically to ``path`` (temporary file beside it, then rename)."""
    if format not in FORMATS:
        raise ValueError(f"plots.format = {format!r} is not supported; choose one of {list(FORMATS)}")
    path = Path(path)
    with matplotlib.rc_context({"svg.hashsalt": "lltax"}), atomic_path(path) as tmp:
        # The temporary name has no extension: say the format explicitly.
        figure.savefig(tmp, format=format, dpi=dpi, metadata=_METADATA[format])
    return path
