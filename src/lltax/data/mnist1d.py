"""MNIST-1D (Greydanus 2020), generated locally by the ``mnist1d`` package with its default
arguments and cached under ``<data_dir>/mnist1d/`` with a checksum; never downloaded. The
arrays only: ``lltax.data.loaders.load_mnist1d`` makes them a dataset.
"""

from __future__ import annotations

import hashlib
import logging
import random
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lltax.config.grid import config_hash
from lltax.storage.atomic_files import atomic_path

logger = logging.getLogger(__name__)


# The mnist1d package's default generator arguments (mnist1d.data.get_dataset_args, without its
# download url), pinned here: they define the data and name its cache file, and a job that
# only reads the cache need not import mnist1d (0.5-0.7 s: it pulls in matplotlib and scipy).
# tests/test_data.py checks them against the installed package.
MNIST1D_ARGS = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": [36, 60],
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 0.02,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
    "seed": 42,
}


def mnist1d_generator_args() -> dict:
    """The arguments MNIST-1D is generated with (a copy of ``MNIST1D_ARGS``)."""
    return {key: list(value) if isinstance(value, list) else value for key, value in MNIST1D_ARGS.items()}


def mnist1d_cache_path(root: str | Path) -> Path:
    """``<root>/mnist1d/mnist1d-<hash of the generator arguments>.npz``."""
    return Path(root) / "mnist1d" / f"mnist1d-{config_hash(mnist1d_generator_args())}.npz"


def _generate_mnist1d(args: dict) -> dict:
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    # make_dataset seeds Python's and NumPy's global RNGs; put them back so that generating
    # (or not, when cached) cannot change anything else a process draws.
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        return make_dataset(ObjectView(dict(args)))
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


MNIST1D_KEYS = ("x", "y", "x_test", "y_test")


def _arrays_checksum(arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in MNIST1D_KEYS:
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _read_mnist1d_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None (with a log line) when the file does not match its checksum."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in MNIST1D_KEYS}
            recorded = str(stored["sha256"]) if "sha256" in stored.files else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        logger.warning("MNIST-1D cache %s is unreadable (%s): generating it again", path, type(e).__name__)
        return None
    if recorded is None:  # written by an older lltax: nothing to verify it against
        logger.info("MNIST-1D cache %s carries no checksum (an older lltax wrote it); using it unverified", path)
        return arrays
    if recorded != _arrays_checksum(arrays):
        logger.warning("MNIST-1D cache %s does not match its checksum (corrupt): generating it again", path)
        return None
    return arrays


def mnist1d_arrays(root: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, x_test, y_test): read from the cache, generated (and cached) when it is missing or corrupt."""
    path = mnist1d_cache_path(root)
    arrays = _read_mnist1d_cache(path) if path.exists() else None
    if arrays is None:
        args = mnist1d_generator_args()
        logger.info("generating MNIST-1D (%s) into %s", args, path)
        data = _generate_mnist1d(args)
        # Written atomically: concurrent jobs may generate the same (identical) file at once, so
        # none may remove another's temporary file (a race seen with 2 jobs starting together).
        with atomic_path(path, clean_stale=False) as tmp:
            arrays = {key: np.asarray(data[key]) for key in MNIST1D_KEYS}
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays, sha256=np.array(_arrays_checksum(arrays)))
            tmp.chmod(0o644)  # a shared data cache: readable by others (mkstemp makes it 0600)
    x, y, x_test, y_test = (arrays[key] for key in MNIST1D_KEYS)
    return tuple(arrays[key] for key in MNIST1D_KEYS)
