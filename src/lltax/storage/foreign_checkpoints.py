"""Checkpoints trained anywhere: a foreign file's weights, and the record that stands for it.

A foreign checkpoint is never modified or copied into the results. ``lltax import`` writes,
per seed, ``checkpoint.json``: the file's path and SHA-256, where its weights sit inside it
(``key``, ``prefix``), the model and data they fit, the cell's training settings and the
weights' checksum, in the metadata format of an lltax checkpoint (``lltax.storage.checkpoint``). Every
metric job loads that record like a ``model.pt``: the weights are read from the foreign file
with ``weights_only=True`` and verified against the recorded checksum, so a file changed
after the import is refused, naming it.

Files read: torch files (any name) and safetensors files (``.safetensors``: a flat state dict,
read without unpickling anything; ``lltax.storage.safetensors_files``). Layouts read: a bare state dict
(``torch.save(model.state_dict(), f)``), a dict holding it under one of ``WRAPPER_KEYS``
(``{"state_dict": ...}``, ``{"model": ...}``, Lightning's checkpoint), and key prefixes of
wrappers (Lightning's attribute name ``model.``, DDP's ``module.``), found by matching the keys
against the model's own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lltax.storage.atomic_files import read_json
from lltax.storage.checkpoint import check_meta, state_checksum
from lltax.storage.checksums import current_checksum, duplicate_files, file_checksum, file_stat  # noqa: F401 (re-exported)
from lltax.storage.safetensors_files import is_safetensors, read_safetensors

log = logging.getLogger(__name__)

# Where common trainers keep the model's state dict inside a checkpoint dict, tried in order.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "state", "net", "network", "module", "weights")
AUTO = "auto"


class CheckpointError(ValueError):
    """A foreign checkpoint that cannot be measured; the message names the file and why."""


def read_payload(path: str | Path) -> Any:
    """The contents of a foreign checkpoint file: a ``.safetensors`` file's tensors (a state
    dict, ``lltax.storage.safetensors_files``), any other file unpickled with ``weights_only=True``."""
    if is_safetensors(path):
        try:
            return read_safetensors(path)
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint {path} does not exist") from None
        except IsADirectoryError:
            raise CheckpointError(f"checkpoint {path} is a folder, not a file") from None
        except ValueError as e:
            raise CheckpointError(str(e)) from None
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
    """ "" and every leading dotted part of any name (``model.``, ``module.model.``), shortest first."""
    found = {".".join(name.split(".")[:i]) + "." for name in names for i in range(1, name.count(".") + 1)}
    return [""] + sorted(found, key=lambda p: (p.count("."), p))


def _complete(stripped: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BatchNorm's ``num_batches_tracked`` counters, which other trainers may not save, filled
    from the model (they only matter for BatchNorm with momentum=None)."""
    return {**{k: v for k, v in expected.items() if k.endswith("num_batches_tracked") and k not in stripped}, **stripped}


def fit_state(
    state: dict[str, torch.Tensor], model: nn.Module, path: str | Path, prefix: str = AUTO
) -> tuple[dict[str, torch.Tensor], str]:
    """The state's weights under ``prefix`` with it removed, checked to fit ``model`` exactly.

    ``prefix`` "auto" picks the prefix (none, or a leading dotted part of the names, e.g.
    Lightning's ``model.``) under which the names are exactly the model's; with a prefix, names
    outside it (a wrapper's other modules: a loss, an EMA copy) are left out and logged. Refused,
    naming the file: missing or unexpected keys, a wrong shape, non-finite weights.
    """
    expected = model.state_dict()
    if prefix == AUTO:
        candidates = _prefix_candidates(sorted(state))
        chosen = next((p for p in candidates if set(_complete(_strip(state, p), expected)) == set(expected)), None)
        if chosen is None:  # the closest candidate gives the clearest error
            chosen = max(candidates, key=lambda p: len(set(_strip(state, p)) & set(expected)))
        prefix = chosen
    elif prefix and not prefix.endswith("."):
        prefix += "."  # `model` means the attribute model: names model.<...>
    stripped = _complete(_strip(state, prefix), expected)
    missing = sorted(set(expected) - set(stripped))
    unexpected = sorted(set(stripped) - set(expected))
    if missing or unexpected:
        what = [f"{len(missing)} missing keys (e.g. {missing[:3]})"] if missing else []
        what += [f"{len(unexpected)} unexpected keys (e.g. {[prefix + k for k in unexpected[:3]]})"] if unexpected else []
        raise CheckpointError(
            f"{path} does not fit the model: {', '.join(what)}"
            + (f" after removing prefix {prefix!r}" if prefix else "")
            + "; check model.name and the width, or set checkpoints.key / checkpoints.prefix"
        )
    ignored = [name for name in state if not name.startswith(prefix)]
    if ignored:
        log.info("%s: %d tensors outside prefix %r left out (e.g. %s)", path, len(ignored), prefix, ignored[:3])
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
    """The weights an import record names (key and prefix as resolved at import time, the
    BatchNorm counters the file lacked filled as the import filled them: zero)."""
    path = external["path"]
    state, _ = state_of_payload(read_payload(path), path, external["key"])
    filled = {name: torch.zeros((), dtype=torch.long) for name in external.get("filled", [])}
    return {**filled, **_strip(state, external["prefix"])}


def filled_names(state: dict[str, torch.Tensor], fitted: dict[str, torch.Tensor], prefix: str) -> list[str]:
    """The names ``fit_state`` filled from the model because the file lacked them."""
    return sorted(set(fitted) - set(_strip(state, prefix)))


def load_external_record(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights and metadata a ``checkpoint.json`` stands for: its metadata checksum verified,
    the weights read weights-only from the file it names and checked against the recorded
    checksum (a file changed since the import is refused, naming it)."""
    try:
        meta = read_json(path)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"checkpoint record {path} does not exist; run `lltax import` (or the import rule) first") from e
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ValueError(f"{path} is not a readable lltax checkpoint record; delete it and rerun its import job") from None
    meta = check_meta(meta, path, job="import")
    if not isinstance(meta.get("external"), dict):
        raise ValueError(f"{path} is not the record of an external checkpoint (no 'external' section); delete it and rerun its import job")
    state = external_state(meta["external"])
    if state_checksum(state) != meta["state_sha256"]:
        raise ValueError(
            f"{meta['external']['path']} changed after {path} was written (its weights' checksum differs); "
            "rerun the workflow (it compares each file's content with its import and imports a changed one again, with "
            "everything that depends on it), or by hand rerun `lltax import` for it and the metric jobs after it"
        )
    return state, meta
