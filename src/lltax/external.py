"""Checkpoints trained anywhere: a foreign file's weights, and the record that stands for it.

A foreign checkpoint is never modified or copied into the results. ``lltax import`` writes,
per seed, ``checkpoint.json``: the file's path and SHA-256, where its weights sit inside it
(``key``, ``prefix``), the model and data they fit, the cell's training settings and the
weights' checksum, in the metadata format of an lltax checkpoint (``lltax.checkpoint``). Every
metric job loads that record like a ``model.pt``: the weights are read from the foreign file
with ``weights_only=True`` and verified against the recorded checksum, so a file changed
after the import is refused, naming it.

Layouts read: a bare state dict (``torch.save(model.state_dict(), f)``), a dict holding it
under one of ``WRAPPER_KEYS`` (``{"state_dict": ...}``, ``{"model": ...}``, Lightning's
checkpoint), and key prefixes of wrappers (Lightning's attribute name ``model.``, DDP's
``module.``), found by matching the keys against the model's own.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

# Where common trainers keep the model's state dict inside a checkpoint dict, tried in order.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "state", "net", "network", "module", "weights")
AUTO = "auto"


class CheckpointError(ValueError):
    """A foreign checkpoint that cannot be measured; the message names the file and why."""


def file_checksum(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_payload(path: str | Path) -> Any:
    """The unpickled contents of a foreign checkpoint file, read with ``weights_only=True``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint {path} is a folder, not a file") from None
    except Exception as e:  # the weights-only unpickler raises many kinds on a foreign object
        # Never fall back to weights_only=False: that would run code from the file.
        raise CheckpointError(
            f"{path} cannot be read with torch.load(weights_only=True) ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}); "
            "save the weights alone with torch.save(model.state_dict(), path)"
        ) from None


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def state_of_payload(payload: Any, path: str | Path, key: str = AUTO) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict inside a checkpoint and the key it sits under ("" = the file is one).

    ``key`` "auto" takes the file itself when it is a state dict, else the first of
    ``WRAPPER_KEYS`` that holds one; a dotted key ("ema.model") walks nested dicts.
    """
    if key != AUTO:
        value = payload
        for part in [p for p in key.split(".") if p]:
            if not isinstance(value, dict) or part not in value:
                found = sorted(value)[:12] if isinstance(value, dict) else type(value).__name__
                raise CheckpointError(f"{path} has no key {key!r} (checkpoints.key); it holds {found}")
            value = value[part]
        if not _is_state_dict(value):
            raise CheckpointError(f"{path}: {key or 'the file'!s} is not a state dict (a dict of named tensors)")
        return dict(value), key
    if _is_state_dict(payload):
        return dict(payload), ""
    if isinstance(payload, dict):
        for candidate in WRAPPER_KEYS:
            if _is_state_dict(payload.get(candidate)):
                return dict(payload[candidate]), candidate
        raise CheckpointError(
            f"{path} holds no state dict at its top level or under {list(WRAPPER_KEYS)} (its keys: {sorted(map(str, payload))[:12]}); "
            "name where it is with checkpoints.key"
        )
    raise CheckpointError(f"{path} holds a {type(payload).__name__}, not a state dict; save it with torch.save(model.state_dict(), path)")


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {name[len(prefix) :]: tensor for name, tensor in state.items() if name.startswith(prefix)}


def _prefix_candidates(names: list[str]) -> list[str]:
    """ "" and every dotted prefix of the first name (``model.``, ``module.model.``), shortest first."""
    parts = names[0].split(".")
    return [""] + [".".join(parts[:i]) + "." for i in range(1, len(parts))]


def fit_state(
    state: dict[str, torch.Tensor], model: nn.Module, path: str | Path, prefix: str = AUTO
) -> tuple[dict[str, torch.Tensor], str]:
    """The state with ``prefix`` removed from its names, checked to fit ``model`` exactly.

    ``prefix`` "auto" picks the prefix (none, or a leading dotted part shared by the model's
    keys, e.g. Lightning's ``model.``) under which the names are exactly the model's. Refused,
    naming the file: missing or unexpected keys, a wrong shape, non-finite weights.
    """
    expected = model.state_dict()
    if prefix == AUTO:
        chosen = next((p for p in _prefix_candidates(sorted(state)) if set(_strip(state, p)) == set(expected)), None)
        if chosen is None:  # the closest candidate gives the clearest error
            chosen = max(_prefix_candidates(sorted(state)), key=lambda p: len(set(_strip(state, p)) & set(expected)))
        prefix = chosen
    stripped = _strip(state, prefix)
    missing = sorted(set(expected) - set(stripped))
    unexpected = sorted(set(state) - {prefix + name for name in expected})
    if missing or unexpected:
        what = [f"{len(missing)} missing keys (e.g. {missing[:3]})"] if missing else []
        what += [f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})"] if unexpected else []
        raise CheckpointError(
            f"{path} does not fit the model: {', '.join(what)}"
            + (f" after removing prefix {prefix!r}" if prefix else "")
            + "; check model.name and the width, or set checkpoints.key / checkpoints.prefix"
        )
    for name, tensor in expected.items():
        if stripped[name].shape != tensor.shape:
            raise CheckpointError(
                f"{path} does not fit the model: {prefix}{name} has shape {tuple(stripped[name].shape)}, "
                f"the model's is {tuple(tensor.shape)}; check model.name and the grid's width"
            )
    for name, tensor in stripped.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path} holds non-finite weights ({prefix}{name} has NaN or inf): a diverged run cannot be measured")
    return {name: stripped[name] for name in expected}, prefix


def external_state(external: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights an import record names (key and prefix as resolved at import time)."""
    path = external["path"]
    state, _ = state_of_payload(read_payload(path), path, external["key"])
    return _strip(state, external["prefix"])
