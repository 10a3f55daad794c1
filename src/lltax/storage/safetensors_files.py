"""Checkpoints in safetensors files (``.safetensors``, Hugging Face's default format; issue 28).

A safetensors file is an 8-byte little-endian header length, a JSON header (each tensor's
dtype, shape and byte range, and an optional string-to-string ``__metadata__``) and the raw
bytes: reading it parses JSON and copies bytes, and no code from the file can run (unlike a
pickle). ``read_safetensors`` returns its tensors as one flat state dict, which the import
then fits to the model exactly as a torch file's (``lltax.storage.foreign_checkpoints``: key "" or auto,
prefix auto). One file per checkpoint: a model sharded over several files (Hugging Face's
``model-00001-of-00002.safetensors`` with an index) is merged into one file first.
"""

from __future__ import annotations

from pathlib import Path

import torch

SUFFIX = ".safetensors"


def is_safetensors(path: str | Path) -> bool:
    """Whether ``path`` names a safetensors file (by its suffix, as Hugging Face names them)."""
    return Path(path).suffix.lower() == SUFFIX


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file as a state dict on the CPU (names as stored).

    Raises ``FileNotFoundError``/``IsADirectoryError`` as ``open`` does, and ``ValueError``
    naming the file for one that is not a valid safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    if path.is_dir():
        raise IsADirectoryError(path)
    try:
        return dict(load_file(path, device="cpu"))
    except (SafetensorError, ValueError, OSError, RuntimeError) as e:
        message = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise ValueError(f"{path} is not a readable safetensors file ({message})") from None
