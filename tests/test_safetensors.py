"""Checkpoints trained elsewhere in safetensors files (issue 28): read without running code from
the file, for every model kind, and measured exactly as the same weights saved by torch."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lltax.config.schema import section_settings
from lltax.jobs.hessian import hessian_of_checkpoint
from lltax.jobs.import_checkpoints import import_checkpoints
from lltax.models import MODELS, build_model
from lltax.storage.foreign_checkpoints import CheckpointError, fit_state, read_payload, state_of_payload

SHAPES = {"transformer": ((2, 5), 11, 4), "resnet18": ((3, 32, 32), 10, 1), "vgg11": ((3, 32, 32), 10, 1), "mlp": ((1, 8), 3, 2)}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def save_both(state: dict[str, torch.Tensor], folder: Path, name: str) -> tuple[Path, Path]:
    """The same weights as a torch file and as a safetensors file."""
    folder.mkdir(parents=True, exist_ok=True)
    torch_file, safetensors_file = folder / f"{name}.pt", folder / f"{name}.safetensors"
    torch.save(state, torch_file)
    save_file({k: v.contiguous() for k, v in state.items()}, safetensors_file)
    return torch_file, safetensors_file


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_kind_reads_the_same_weights_from_safetensors_as_from_torch(name, tmp_path):
    shape, classes, width = SHAPES.get(name, ((1, 40), 10, 1))
    torch.manual_seed(0)
    model = build_model(name, width, classes, shape)
    with torch.no_grad():  # BatchNorm statistics off their defaults, as a trained model's
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.rand_like(tensor))
    wrapped = {f"model.{k}": v for k, v in model.state_dict().items()}  # a wrapper's prefix (Lightning)
    states = []
    for path in save_both(wrapped, tmp_path, name):
        raw, key = state_of_payload(read_payload(path), path)
        states.append(fit_state(raw, build_model(name, width, classes, shape), path))
        assert key == "" and states[-1][1] == "model."
    (from_torch, _), (from_safetensors, _) = states
    assert from_torch.keys() == from_safetensors.keys() == model.state_dict().keys()
    for key, tensor in from_torch.items():
        assert tensor.dtype == from_safetensors[key].dtype and torch.equal(tensor, from_safetensors[key]), key


def test_a_safetensors_file_is_never_unpickled_and_a_broken_one_is_refused(tmp_path):
    pickled = tmp_path / "weights.safetensors"  # a pickle under the safetensors name: not run, refused
    pickled.write_bytes(pickle.dumps({"weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match=r"weights.safetensors is not a readable safetensors file"):
        read_payload(pickled)
    with pytest.raises(CheckpointError, match=r"missing.safetensors does not exist"):
        read_payload(tmp_path / "missing.safetensors")
    (tmp_path / "folder.safetensors").mkdir()
    with pytest.raises(CheckpointError, match="is a folder"):
        read_payload(tmp_path / "folder.safetensors")


def test_a_safetensors_checkpoint_measures_exactly_as_the_same_weights_saved_by_torch(tmp_path):
    # A Transformer with model options, on the generated language pair: loss, accuracy, BLEU and
    # the Hessian of the imported safetensors file are those of the torch file, bit for bit.
    cell = {"width": 8, "batch_size": 32, "label_noise": 0.0, "train_fraction": 0.02, "learning_rate": 0.05, "weight_decay": 0.0}
    options = {"layers": 1, "heads": 2}
    torch.manual_seed(3)
    model = build_model("transformer", 8, 103, (2, 10), options)
    files = save_both(model.state_dict(), tmp_path / "runs", "seed0")
    summaries, records = [], []
    for path in files:
        out = tmp_path / path.suffix.lstrip(".") / "seed=0"
        summaries += import_checkpoints(
            cell=cell,
            seeds=[0],
            files=[str(path)],
            out_dirs=[str(out)],
            dataset={"name": "langpair", "download": False, "augment": False, "label_noise_mode": "exact"},
            data_dir=str(tmp_path),
            device="cpu",
            model_name="transformer",
            model_options=options,
            train_settings=section_settings("train", {}),
            formats=section_settings("checkpoints", {}),
        )
        records.append(out / "checkpoint.json")
    from_torch, from_safetensors = summaries
    assert from_torch["final"] == from_safetensors["final"] and "test_bleu" in from_torch["final"]
    metas = [json.loads(r.read_text()) for r in records]
    assert metas[0]["state_sha256"] == metas[1]["state_sha256"] and metas[1]["model_options"] == options
    settings = section_settings("hessian", {"num_samples": 16, "chunk_size": 16, "max_iterations": 5, "trace_probes": 3})
    ours, theirs = (hessian_of_checkpoint(str(r), settings, data_dir=str(tmp_path)) for r in records)
    assert ours["checkpoint_sha256"] == theirs["checkpoint_sha256"]
    for key in ("top_eigenvalue", "trace", "eigenvalue_error"):
        assert ours[key] == theirs[key], key
