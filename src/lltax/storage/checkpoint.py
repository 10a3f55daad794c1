"""Checkpoints: a state dict plus plain-data metadata, saved atomically, loaded weights-only.

The metadata says everything needed to rebuild the model and its cell's data (model name,
width, dataset, grid coordinates, seed), so metric jobs need nothing but the checkpoint path;
``lltax.jobs.metric_inputs`` rebuilds them. This module only knows the files.
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

from lltax.storage.atomic_files import atomic_path, read_json, write_json


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


def content_checksum(value: Any) -> str:
    """SHA-256 of nested dicts, lists, tensors and plain values (a training snapshot): tensors
    by name, dtype, shape and bytes, everything else by its JSON spelling, in key order."""
    digest = hashlib.sha256()

    def feed(item: Any) -> None:
        if isinstance(item, torch.Tensor):
            tensor = item.detach().cpu().contiguous()
            digest.update(f"T|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
        elif isinstance(item, dict):
            digest.update(b"{")
            for key in sorted(item, key=str):
                digest.update(f"{key!s}:".encode())
                feed(item[key])
            digest.update(b"}")
        elif isinstance(item, (list, tuple)):
            digest.update(b"[")
            for element in item:
                feed(element)
            digest.update(b"]")
        else:
            digest.update(json.dumps(item, default=repr).encode())

    feed(value)
    return digest.hexdigest()


def provenance(meta: dict[str, Any], device: Any = None) -> dict[str, Any]:
    """What a per-job record was computed from: the checkpoint's cell, seed and weights' checksum
    (and, for a checkpoint trained elsewhere, its file and the file's checksum), and with a
    ``device`` how: the job's runtime (``lltax.runtime.device.runtime_info``: device, GPU, CUDA, TF32)."""
    origin = {"cell": meta["cell"], "seed": meta["seed"], "checkpoint_sha256": meta.get("state_sha256")}
    if device is not None:
        from lltax.runtime.device import runtime_info

        origin["runtime"] = runtime_info(device)
    if isinstance(meta.get("external"), dict):
        origin["checkpoint_file"] = {key: meta["external"][key] for key in ("path", "file_sha256")}
    return origin


def cell_provenance(metas: Sequence[dict[str, Any]], device: Any = None) -> dict[str, Any]:
    """Provenance of a per-cell record: the cell and each seed's weights checksum (and file, for
    checkpoints trained elsewhere), and with a ``device`` the job's runtime."""
    origin = {"cell": metas[0]["cell"] if metas else None, "checkpoints_sha256": {str(m["seed"]): m.get("state_sha256") for m in metas}}
    if device is not None:
        from lltax.runtime.device import runtime_info

        origin["runtime"] = runtime_info(device)
    files = {str(m["seed"]): provenance(m)["checkpoint_file"] for m in metas if isinstance(m.get("external"), dict)}
    if files:
        origin["checkpoint_files"] = files
    return origin


def meta_checksum(meta: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's metadata (canonical JSON), its own ``meta_sha256`` left out."""
    body = {key: value for key, value in meta.items() if key != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_meta(meta: Any, path: str | Path, job: str = "train") -> dict[str, Any]:
    """The metadata of a checkpoint, its checksum verified (a flag edited by hand is refused)."""
    if not isinstance(meta, dict) or not isinstance(meta.get("state_sha256"), str):
        raise ValueError(f"{path} is not an lltax checkpoint with a weights checksum; delete it and rerun its {job} job")
    if "meta_sha256" not in meta:
        raise ValueError(f"{path} carries no metadata checksum (written by an older lltax); delete it and rerun its {job} job")
    if meta_checksum(meta) != meta["meta_sha256"]:
        raise ValueError(
            f"{path} is corrupt: its metadata (cell, seed, diverged, settings) does not match the checksum recorded when it was "
            f"saved; delete it and rerun its {job} job"
        )
    return meta


def is_external_record(path: str | Path) -> bool:
    """A ``checkpoint.json`` (the record of a checkpoint trained elsewhere) rather than a ``model.pt``."""
    return Path(path).suffix == ".json"


def sealed_meta(meta: dict[str, Any], state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``meta`` with the weights' checksum (``state_sha256``) and its own (``meta_sha256``), in key order."""
    # Sorted keys: equal metadata gives equal bytes, whatever order the caller built it in.
    meta = json.loads(json.dumps({**meta, "state_sha256": state_checksum(state)}, sort_keys=True))
    return json.loads(json.dumps({**meta, "meta_sha256": meta_checksum(meta)}, sort_keys=True))


def save_external_record(path: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``checkpoint.json``, the record of a checkpoint trained elsewhere (``lltax.storage.foreign_checkpoints``):
    its metadata, sealed like a ``model.pt``'s, with ``meta["external"]`` naming the file."""
    write_json(path, sealed_meta(meta, state))


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any], trajectory: dict[str, torch.Tensor] | None = None) -> None:
    """Save ``{"state_dict", "meta"}`` atomically; tensors are moved to CPU first.

    ``meta["state_sha256"]`` is set to the weights' checksum and ``meta["meta_sha256"]`` to the
    metadata's, which loading verifies: a checkpoint is trusted as a whole or not at all.
    ``trajectory`` (``TrainResult.trajectory``) is stored beside the weights, its checksum and
    number of points in ``meta["trajectory"]``; ``load_trajectory`` reads it.
    """
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {}
    if trajectory is not None:
        payload["trajectory"] = {k: v.detach().cpu().clone() for k, v in trajectory.items()}
        points = len(next(iter(trajectory.values())))
        meta = {**meta, "trajectory": {"points": points, "sha256": state_checksum(payload["trajectory"])}}
    meta = sealed_meta(meta, state)
    # Serialize to memory first: torch.save names the zip records after the file, and the
    # temporary file's random name would make identical checkpoints differ byte for byte.
    buffer = io.BytesIO()
    torch.save({"state_dict": state, "meta": meta, **payload}, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_checkpoint_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint with ``weights_only=True`` (no code runs from the file) and verify its checksum.

    A ``checkpoint.json`` (a checkpoint trained elsewhere) is read by ``lltax.storage.foreign_checkpoints.load_external_record``;
    ``lltax.jobs.metric_inputs.load_model`` takes either."""
    if is_external_record(path):
        raise ValueError(
            f"{path} is the record of a checkpoint trained elsewhere; load it with lltax.storage.foreign_checkpoints.load_external_record"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"checkpoint {path} does not exist; run `lltax train` (or the train rule) first") from e
    except Exception as e:  # the weights-only unpickler raises many kinds on a foreign file (KeyError, EOFError, ...)
        # Never fall back to weights_only=False (torch's own advice): that would run code from the file.
        raise ValueError(f"{path} is not a readable lltax checkpoint ({type(e).__name__}); rerun the train job that writes it") from None
    if not isinstance(payload, dict) or "state_dict" not in payload or "meta" not in payload:
        raise ValueError(f"{path} is not an lltax checkpoint (expected keys 'state_dict' and 'meta')")
    state, meta = payload["state_dict"], check_meta(payload["meta"], path)
    if state_checksum(state) != meta["state_sha256"]:
        raise ValueError(
            f"{path} is corrupt: its weights do not match the checksum recorded when it was saved; delete it and rerun its train job"
        )
    return state, meta


def load_trajectory(path: str | Path) -> list[dict[str, torch.Tensor]]:
    """The training trajectory stored in a ``model.pt`` (``train.trajectory``), one parameter
    dict per point (initialisation first, the checkpointed model last), checksum verified."""
    state, meta = (None, None) if is_external_record(path) else load_checkpoint_file(path)
    if meta is None or "trajectory" not in meta:
        raise ValueError(
            f"{path} holds no training trajectory: set train.trajectory: true (this retrains the cell) "
            "to use landscape.directions: pca; a checkpoint trained elsewhere has none"
        )
    stacked = torch.load(path, map_location="cpu", weights_only=True)["trajectory"]
    if state_checksum(stacked) != meta["trajectory"]["sha256"]:
        raise ValueError(f"{path} is corrupt: its training trajectory does not match its checksum; delete it and rerun its train job")
    return [{name: values[index] for name, values in stacked.items()} for index in range(meta["trajectory"]["points"])]


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """A checkpoint's metadata without reading its weights (memory-mapped, weights-only): what
    the results layer checks every record against (checksum, config hash, cell, seed)."""
    if is_external_record(path):
        try:
            return check_meta(read_json(path), path, job="import")
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise ValueError(f"{path} is not a readable lltax checkpoint record; delete it and rerun its import job") from None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # as in load_checkpoint_file: never retry without weights_only
        raise ValueError(f"{path} is not a readable lltax checkpoint ({type(e).__name__}); delete it and rerun its train job") from None
    return check_meta(payload.get("meta") if isinstance(payload, dict) else None, path)


# Curve files (pair=A-B/curve.pt): the three bends, BatchNorm buffers and metadata of a fitted curve.


def save_curve(path: str | Path, bends: list, buffers: dict, meta: dict, aligned_bends: list | None = None) -> None:
    """A curve file: its bends, the end model's buffers, ``meta``; with ``aligned_bends`` also the
    curve fitted from the same start to the end permuted onto it (``curves.fit_aligned``)."""

    def cpu(bends: list) -> list:
        return [{k: v.detach().cpu().clone() for k, v in bend.items()} for bend in bends]

    payload = {"bends": cpu(bends), "buffers": {k: v.detach().cpu().clone() for k, v in buffers.items()}, "meta": meta}
    if aligned_bends is not None:
        payload["aligned_bends"] = cpu(aligned_bends)
    payload["checksum"] = content_checksum(payload)  # verified by load_curve: trusted as a whole
    # torch.save names the archive's records after the file it writes to; saving to memory
    # first keeps the random temporary name out, so a same-seed rerun is byte-identical.
    memory = io.BytesIO()
    torch.save(payload, memory)
    with atomic_path(path) as tmp:
        tmp.write_bytes(memory.getvalue())


def load_curve(path: str | Path) -> dict:
    """A curve file written by ``lltax curve-fit``, loaded weights-only."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"curve file {path} does not exist; run `lltax curve-fit` (or the curve_fit rule) first") from e
    except Exception as e:  # a foreign file: never retry without weights_only
        raise ValueError(
            f"{path} is not a readable lltax curve file ({type(e).__name__}); rerun the curve_fit job that writes it"
        ) from None
    if not isinstance(payload, dict) or not {"bends", "buffers", "meta"} <= set(payload):
        raise ValueError(f"{path} is not an lltax curve file (expected keys 'bends', 'buffers', 'meta')")
    recorded = payload.pop("checksum", None)
    if recorded is None:
        raise ValueError(f"{path} carries no checksum (written by an older lltax); delete it and rerun the curve_fit job that writes it")
    if recorded != content_checksum(payload):
        raise ValueError(
            f"{path} is corrupt: its contents do not match the checksum recorded when it was saved; delete it and rerun its curve_fit job"
        )
    return payload
