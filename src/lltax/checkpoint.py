"""Checkpoints: a state dict plus plain-data metadata, saved atomically, loaded weights-only.

The metadata says everything needed to rebuild the model and its cell's data (model name,
width, dataset, grid coordinates, seed), so metric jobs need nothing but the checkpoint path.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lltax.config import canonical_value
from lltax.io import atomic_path


def versions() -> dict[str, str]:
    import numpy

    import lltax

    return {
        "lltax": lltax.__version__,
        "torch": str(torch.__version__),
        "numpy": str(numpy.__version__),
        "python": platform.python_version(),
    }


def state_checksum(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and bytes (CPU tensors), in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def provenance(meta: dict[str, Any]) -> dict[str, Any]:
    """What a per-job record was computed from: the checkpoint's cell, seed and weights' checksum."""
    return {"cell": meta["cell"], "seed": meta["seed"], "checkpoint_sha256": meta.get("state_sha256")}


def cell_provenance(metas: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Provenance of a per-cell record: the cell and each seed's weights checksum."""
    return {"cell": metas[0]["cell"] if metas else None, "checkpoints_sha256": {str(m["seed"]): m.get("state_sha256") for m in metas}}


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Save ``{"state_dict", "meta"}`` atomically; tensors are moved to CPU first.

    ``meta["state_sha256"]`` is set to the weights' checksum, which loading verifies.
    """
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    # Sorted keys: equal metadata gives equal bytes, whatever order the caller built it in.
    meta = json.loads(json.dumps({**meta, "state_sha256": state_checksum(state)}, sort_keys=True))
    # Serialize to memory first: torch.save names the zip records after the file, and the
    # temporary file's random name would make identical checkpoints differ byte for byte.
    buffer = io.BytesIO()
    torch.save({"state_dict": state, "meta": meta}, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_checkpoint_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint with ``weights_only=True`` (no code runs from the file) and verify its checksum."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"checkpoint {path} does not exist; run `lltax train` (or the train rule) first") from e
    except Exception as e:  # the weights-only unpickler raises many kinds on a foreign file (KeyError, EOFError, ...)
        # Never fall back to weights_only=False (torch's own advice): that would run code from the file.
        raise ValueError(f"{path} is not a readable lltax checkpoint ({type(e).__name__}); rerun the train job that writes it") from None
    if not isinstance(payload, dict) or "state_dict" not in payload or "meta" not in payload:
        raise ValueError(f"{path} is not an lltax checkpoint (expected keys 'state_dict' and 'meta')")
    state, meta = payload["state_dict"], payload["meta"]
    recorded = meta.get("state_sha256") if isinstance(meta, dict) else None
    if recorded is None:
        raise ValueError(f"{path} carries no weights checksum (written by an older lltax); rerun the train job that writes it")
    if state_checksum(state) != recorded:
        raise ValueError(f"{path} is corrupt: its weights do not match the checksum recorded when it was saved; delete it and rerun its train job")
    return state, meta


def build_from_meta(meta: dict[str, Any]) -> nn.Module:
    from lltax.models import build_model

    return build_model(meta["model"], meta["width"], meta["num_classes"], tuple(meta["input_shape"]))


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint, load its weights, put it in eval mode on ``device``."""
    state, meta = load_checkpoint_file(path)
    model = build_from_meta(meta)
    model.load_state_dict(state)
    return model.to(device).eval(), meta


def load_cell_data(meta: dict[str, Any], device: torch.device | str = "cpu", data_dir: str | None = None):
    """The training/test data of a checkpoint's cell (its label noise and train fraction)."""
    from lltax.data import load_dataset

    dataset = meta["dataset"]
    return load_dataset(
        dataset["name"],
        root=data_dir or dataset["root"],
        label_noise=meta["cell"]["label_noise"],
        train_fraction=meta["cell"]["train_fraction"],
        download=False,
        device=device,
        label_noise_mode=dataset.get("label_noise_mode", "exact"),
    )


def is_diverged(model: nn.Module, meta: dict[str, Any]) -> bool:
    """True when training recorded divergence or any parameter or buffer is NaN/inf."""
    if meta.get("diverged", False):
        return True
    return any(t.is_floating_point() and not torch.isfinite(t).all() for t in model.state_dict().values())


def check_same_cell(metas: Sequence[dict[str, Any]], paths: Sequence[str]) -> None:
    """Raise ValueError unless all checkpoints come from one grid cell with distinct seeds."""

    def identity(meta: dict[str, Any]) -> dict[str, Any]:
        cell = {k: canonical_value(v) for k, v in meta["cell"].items()}
        return {"cell": cell, "model": meta["model"], "dataset": meta["dataset"]["name"]}

    first = identity(metas[0])
    for meta, path in zip(metas[1:], paths[1:]):
        other = identity(meta)
        if other != first:
            raise ValueError(
                f"checkpoints are not of the same grid cell: {paths[0]} is {first} but {path} is {other}; "
                "pass the seed checkpoints of one cell (<cell>/seed=*/model.pt)"
            )
    seeds = [meta["seed"] for meta in metas]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"checkpoints {list(paths)} repeat a seed ({seeds}); pass each seed's checkpoint once")
