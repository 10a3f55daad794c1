"""Checkpoints trained elsewhere: reading foreign files, `lltax import`, `lltax diagnose`, and the
same numbers as measuring the same weights as an lltax checkpoint.

The models here are trained by a plain PyTorch loop written in this file (not lltax's), and
saved as a bare state dict and in a Lightning-style wrapper.
"""

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from lltax import cli
from lltax.config.grid import check_checkpoint_template, checkpoint_file
from lltax.config.schema import ConfigError, section_settings, validate_config
from lltax.data.cells import load_dataset
from lltax.jobs.cka import cka_of_checkpoints
from lltax.jobs.hessian import hessian_of_checkpoint
from lltax.jobs.metric_inputs import load_model
from lltax.phases.advice import ADVICE
from lltax.storage.checkpoint import save_checkpoint
from lltax.storage.foreign_checkpoints import CheckpointError, filled_names, fit_state, load_external_record, read_payload, state_of_payload

CELL = {"width": 8, "batch_size": 32, "label_noise": 0.0, "train_fraction": 0.1, "learning_rate": 0.05, "weight_decay": 0.0}
CELL_PATH = "width=8/batch_size=32/label_noise=0.0/train_fraction=0.1/learning_rate=0.05/weight_decay=0.0"
DATASET = {"name": "mnist1d", "download": False, "augment": False, "label_noise_mode": "exact"}
HESSIAN = {"num_samples": 64, "chunk_size": 64, "max_iterations": 40, "trace_probes": 9}
HESSIAN_SETTINGS = section_settings("hessian", HESSIAN)


def plain_net(width, num_classes, input_shape):
    """The user's own model, as a builder lltax imports by path (tests/ is on sys.path)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.ReLU(), nn.Linear(width, num_classes))


class LitWrapper(nn.Module):
    """How a LightningModule holds its network: as an attribute, so its keys start with `model.`."""

    def __init__(self, model):
        super().__init__()
        self.model = model


def train_plainly(data, seed: int, epochs: int = 3) -> nn.Module:
    """The user's own training loop."""
    torch.manual_seed(seed)
    model = plain_net(8, data.num_classes, data.input_shape)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(epochs):
        order = torch.randperm(len(data.x_train))
        for start in range(0, len(order), 32):
            batch = order[start : start + 32]
            loss = nn.functional.cross_entropy(model(data.x_train[batch]), data.y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


def save_lightning_style(model: nn.Module, path: Path) -> None:
    wrapper = LitWrapper(model)
    torch.save({"state_dict": wrapper.state_dict(), "epoch": 3, "global_step": 30, "pytorch-lightning_version": "2.4.0"}, path)


@pytest.fixture(scope="module")
def own_checkpoints(tmp_path_factory):
    """Three seeds of one setting, trained and saved outside lltax: bare, Lightning-style, bare."""
    root = tmp_path_factory.mktemp("own")
    data_dir = root / "data"
    data = load_dataset("mnist1d", root=str(data_dir), train_fraction=CELL["train_fraction"])
    files, models = [], []
    for seed in range(3):
        model = train_plainly(data, seed)
        path = root / "runs" / f"seed{seed}.{'ckpt' if seed == 1 else 'pt'}"
        path.parent.mkdir(exist_ok=True)
        if seed == 1:
            save_lightning_style(model, path)
        else:
            torch.save(model.state_dict(), path)
        files.append(path)
        models.append(model)
    return root, str(data_dir), files, models, data


def test_layouts_of_common_trainers_are_found():
    net = plain_net(4, 3, (5,))
    state = net.state_dict()
    assert state_of_payload(state, "f")[1] == ""
    for key in ("state_dict", "model_state_dict", "model", "net"):
        found, where = state_of_payload({key: state, "epoch": 3, "optimizer": {"lr": 0.1}}, "f")
        assert where == key and found.keys() == state.keys()
    nested, where = state_of_payload({"ema": {"model": state}}, "f", key="ema.model")
    assert where == "ema.model" and nested.keys() == state.keys()
    for prefix in ("model.", "module.", "module.model."):
        fitted, found = fit_state({prefix + k: v for k, v in state.items()}, net, "f")
        assert found == prefix and all(torch.equal(fitted[k], state[k]) for k in state)
    # A wrapper that also holds other modules (a loss, an EMA copy): only the prefix's names count.
    wrapped = {**{"model." + k: v for k, v in state.items()}, "criterion.weight": torch.ones(3), "ema.0.weight": torch.ones(1)}
    assert fit_state(wrapped, net, "f")[1] == "model." and fit_state(wrapped, net, "f", prefix="model")[1] == "model."
    with pytest.raises(CheckpointError, match=r"unexpected keys \(e.g. \['criterion.weight'"):
        fit_state(wrapped, net, "f", prefix="")
    # BatchNorm counters that another trainer did not save are filled; the record reproduces them.
    bn = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4))
    without = {k: v for k, v in bn.state_dict().items() if not k.endswith("num_batches_tracked")}
    fitted, _ = fit_state(without, bn, "f")
    assert fitted.keys() == bn.state_dict().keys() and filled_names(without, fitted, "") == ["1.num_batches_tracked"]
    with pytest.raises(CheckpointError, match=r"f has no key 'ema.model'"):
        state_of_payload({"state_dict": state}, "f", key="ema.model")
    with pytest.raises(CheckpointError, match=r"f holds no state dict .* checkpoints.key"):
        state_of_payload({"weights_here": state}, "f")


def test_a_checkpoint_that_does_not_fit_is_refused_naming_the_file():
    net = plain_net(4, 3, (5,))
    state = net.state_dict()
    with pytest.raises(CheckpointError, match=r"^run/s0.pt does not fit the model: 1 missing keys \(e.g. \['3.bias'\]\)"):
        fit_state({k: v for k, v in state.items() if k != "3.bias"}, net, "run/s0.pt")
    with pytest.raises(CheckpointError, match=r"^run/s0.pt does not fit the model: 1 unexpected keys \(e.g. \['extra'\]\)"):
        fit_state({**state, "extra": torch.zeros(1)}, net, "run/s0.pt")
    wider = plain_net(6, 3, (5,)).state_dict()
    with pytest.raises(CheckpointError, match=r"^run/s0.pt does not fit the model: 1.weight has shape \(6, 5\), the model's is \(4, 5\)"):
        fit_state(wider, net, "run/s0.pt")
    broken = {k: v.clone() for k, v in state.items()}
    broken["1.weight"][0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"^run/s0.pt holds non-finite weights \(1.weight"):
        fit_state(broken, net, "run/s0.pt")


class NotWeights:
    pass


def test_a_file_that_needs_code_to_load_is_refused(tmp_path):
    path = tmp_path / "pickled.pt"
    path.write_bytes(pickle.dumps({"model": NotWeights()}, protocol=2))
    with pytest.raises(CheckpointError, match=r"pickled.pt cannot be read with torch.load\(weights_only=True\)"):
        read_payload(path)
    with pytest.raises(CheckpointError, match=r"missing.pt does not exist"):
        read_payload(tmp_path / "missing.pt")


def test_template_names_each_cell_and_seed_a_file_of_its_own(tmp_path):
    grid = {axis: [value] for axis, value in CELL.items()}
    grid["batch_size"] = [32, 64]
    check_checkpoint_template("runs/bs{batch_size}/seed{seed}.pt", grid, [0, 1])
    assert checkpoint_file("runs/lr{learning_rate:g}/s{seed}.pt", CELL, 2).endswith("runs/lr0.05/s2.pt")
    with pytest.raises(ConfigError, match=r"does not name \['batch_size'\]"):
        check_checkpoint_template("runs/seed{seed}.pt", grid, [0, 1])
    with pytest.raises(ConfigError, match=r"does not name \['seed'\]"):
        check_checkpoint_template("runs/bs{batch_size}.pt", grid, [0, 1])
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['lr'\]"):
        check_checkpoint_template("runs/{lr}/bs{batch_size}/{seed}.pt", grid, [0, 1])
    with pytest.raises(ConfigError, match=r"names .* for two cells or seeds"):
        check_checkpoint_template("runs/bs{batch_size:.0e}/{seed}.pt", {**grid, "batch_size": [32, 33]}, [0, 1])
    with pytest.raises(ConfigError, match="checkpoints.path"):
        validate_config({"experiment": "x", "grid": grid, "checkpoints": {"path": "runs/{seed}.pt"}})


def import_cell(root, data_dir, files, out=None, **extra):
    out = Path(out or root / "results" / CELL_PATH)
    dirs = [out / f"seed={seed}" for seed in range(len(files))]
    argv = ["import", "--cell", CELL_PATH, "--seeds", *map(str, range(len(files))), "--files", *map(str, files)]
    argv += ["--dataset-settings", json.dumps(DATASET), "--model", "test_external:plain_net", "--settings", "{}"]
    argv += ["--data-dir", data_dir, "--device", "cpu", "--out-dir", *map(str, dirs)]
    for flag, value in extra.items():
        argv += [flag, value]
    cli.run(argv)
    return [str(d / "checkpoint.json") for d in dirs]


def as_lltax_checkpoints(models, data, data_dir, folder: Path) -> list[str]:
    """The same weights saved as lltax's own checkpoints (the metadata a training job writes)."""
    paths = []
    for seed, model in enumerate(models):
        meta = {
            "model": "test_external:plain_net",
            "width": 8,
            "num_classes": data.num_classes,
            "input_shape": list(data.input_shape),
            "dataset": {**DATASET, "root": data_dir},
            "cell": CELL,
            "seed": seed,
            "diverged": False,
        }
        path = folder / f"seed={seed}" / "model.pt"
        save_checkpoint(path, model, meta)
        paths.append(str(path))
    return paths


def test_imported_checkpoints_measure_as_lltax_checkpoints_of_the_same_weights(own_checkpoints, tmp_path):
    root, data_dir, files, models, data = own_checkpoints
    before = [f.read_bytes() for f in files]
    records = import_cell(root, data_dir, files, out=tmp_path / "imported")
    own = as_lltax_checkpoints(models, data, data_dir, tmp_path / "lltax")
    assert [f.read_bytes() for f in files] == before  # never modified
    assert not list((tmp_path / "imported").rglob("*.pt")) and not list((tmp_path / "imported").rglob("*.ckpt"))  # never copied
    for seed, (record, reference) in enumerate(zip(records, own)):
        meta = json.loads(Path(record).read_text())
        assert meta["external"]["path"] == str(files[seed].resolve())
        assert meta["external"]["prefix"] == ("model." if seed == 1 else "") and meta["external"]["key"] == (
            "state_dict" if seed == 1 else ""
        )
        state, _ = load_external_record(record)
        assert state.keys() == models[seed].state_dict().keys()
        assert all(torch.equal(state[k], v) for k, v in models[seed].state_dict().items())
        ours, theirs = hessian_of_checkpoint(record, HESSIAN_SETTINGS), hessian_of_checkpoint(reference, HESSIAN_SETTINGS)
        assert ours["checkpoint_sha256"] == theirs["checkpoint_sha256"]
        assert ours["checkpoint_file"] == {"path": str(files[seed].resolve()), "file_sha256": meta["external"]["file_sha256"]}
        for key in ("top_eigenvalue", "trace", "eigenvalue_error"):
            assert ours[key] == theirs[key]
        summary = json.loads((Path(record).parent / "train.json").read_text())
        model = models[seed].eval()
        with torch.no_grad():
            accuracy = 100 * (model(data.x_test).argmax(1) == data.y_test).sum().item() / len(data.y_test)
        assert summary["final"]["test_acc"] == pytest.approx(accuracy, abs=1e-9) and summary["epochs_run"] is None
    cka = {"output": "softmax", "num_samples": 64, "mixup_alpha": 16.0, "batch_size": 32, "seed": 0}
    assert cka_of_checkpoints(records, cka) == cka_of_checkpoints(own, cka)


def test_a_file_changed_after_its_import_is_refused(own_checkpoints, tmp_path):
    root, data_dir, files, models, data = own_checkpoints
    copy = tmp_path / "seed0.pt"
    copy.write_bytes(files[0].read_bytes())
    (record,) = import_cell(root, data_dir, [copy], out=tmp_path / "r")
    load_model(record)
    state = torch.load(copy, weights_only=True)
    state["1.bias"] += 1
    torch.save(state, copy)
    with pytest.raises(ValueError, match=rf"{copy} changed after .*checkpoint.json was written"):
        load_model(record)


def test_import_refuses_a_checkpoint_of_another_model_naming_it(own_checkpoints, tmp_path):
    root, data_dir, files, _, _ = own_checkpoints
    wrong = tmp_path / "wide.pt"
    torch.save(plain_net(16, 10, (1, 40)).state_dict(), wrong)
    with pytest.raises(ValueError, match=rf"^{wrong} does not fit the model: 1.weight has shape \(16, 40\)"):
        import_cell(root, data_dir, [files[0], wrong], out=tmp_path / "r")


def diagnose_config(root: Path, data_dir: str, name: str, **extra) -> Path:
    config = {
        "experiment": name,
        "results_dir": str(root / "results"),
        "data_dir": data_dir,
        "model": {"name": "test_external:plain_net"},
        "grid": {axis: [value] for axis, value in CELL.items()},
        "hessian": HESSIAN,
        "cka": {"num_samples": 64, "batch_size": 32},
        "curves": {"epochs": 1, "batch_size": 64, "points": [0.0, 0.5, 1.0]},
        **extra,
    }
    path = root / f"{name}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def test_diagnose_gives_phase_measurements_and_advice(own_checkpoints, capsys):
    root, data_dir, files, models, data = own_checkpoints
    config = diagnose_config(root, data_dir, "three")
    assert cli.run(["diagnose", "--config", str(config), "--files", *map(str, files), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    phases = xr.load_dataset(root / "results" / "three" / "phases.nc")
    phase = phases["phase"].item()
    assert f"phase {phase}" in out and "top Hessian eigenvalue" in out and "mode connectivity" in out
    assert phases.sizes["pair"] == 3 and int(phases["mode_connectivity"].notnull().sum()) == 3  # every pair's curve
    if phase in ADVICE:
        assert phases["advice"].item() == ADVICE[phase].text and ADVICE[phase].text in out
    # The diagnosis measured exactly what measuring the weights as lltax checkpoints gives.
    dataset = xr.load_dataset(root / "results" / "three" / "dataset.nc")
    own = as_lltax_checkpoints(models, data, data_dir, root / "as_lltax")
    for seed, path in enumerate(own):
        expected = hessian_of_checkpoint(path, HESSIAN_SETTINGS)
        assert dataset["hessian_top_eigenvalue"].squeeze().sel(seed=seed).item() == expected["top_eigenvalue"]

    # A second diagnosis replaces the first; a folder it did not write is refused.
    assert cli.run(["diagnose", "--config", str(config), "--files", str(files[0]), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "one checkpoint: only the local measurement" in out and "phase unknown" in out
    assert not (root / "results" / "three" / CELL_PATH / "cka.json").exists()
    other = root / "results" / "workflow_run"
    other.mkdir(parents=True)
    (other / "dataset.nc").write_text("not ours")
    with pytest.raises(ValueError, match="did not write"):
        cli.run(["diagnose", "--config", str(diagnose_config(root, data_dir, "workflow_run")), "--files", *map(str, files)])
    assert (other / "dataset.nc").read_text() == "not ours"
    with pytest.raises(ConfigError, match="one setting"):
        grid = {axis: [value] for axis, value in CELL.items()} | {"width": [8, 16]}
        cli.run(["diagnose", "--config", str(diagnose_config(root, data_dir, "grid", grid=grid)), "--files", *map(str, files)])


@pytest.mark.slow
def test_a_grid_of_own_checkpoints_runs_through_the_workflow(tmp_path):
    """Every metric rule on checkpoints trained elsewhere (bare and Lightning-style files named by
    a template); a replaced file reruns its cell only; a bad or missing one is named."""
    from workflow_runs import TINY, copy_workflow, planned_jobs, snakemake, write_config

    from lltax.models import build_model

    copy_workflow(tmp_path)
    data = load_dataset("mnist1d", root=str(tmp_path / "data"), train_fraction=0.1)

    def own_model(seed, batch_size, width=4):
        torch.manual_seed(seed)
        model = build_model("mlp", width, data.num_classes, data.input_shape)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for start in range(0, len(data.x_train), batch_size):
            loss = nn.functional.cross_entropy(model(data.x_train[start : start + batch_size]), data.y_train[start : start + batch_size])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return model

    files = {}
    for batch_size in (32, 64):
        for seed in (0, 1):
            path = tmp_path / "runs" / f"bs{batch_size}" / f"seed{seed}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            model = own_model(seed, batch_size)
            save_lightning_style(model, path) if seed else torch.save(model.state_dict(), path)
            files[batch_size, seed] = path
    config = {
        **TINY,
        "experiment": "own",
        "model": {"name": "mlp"},
        "grid": {"width": [4], "batch_size": [32, 64], "train_fraction": [0.1], "learning_rate": [0.05]},
        "checkpoints": {"path": "runs/bs{batch_size}/seed{seed}.pt"},
        "fge": {"enabled": True, "cycles": 2, "cycle_epochs": 2},  # every rule, FGE's too
        "curves": {**TINY["curves"], "bends": 4, "fit_aligned": True},  # and every curve option's path
    }
    write_config(tmp_path, config)
    before = {key: path.read_bytes() for key, path in files.items()}
    snakemake(tmp_path)
    results = tmp_path / "results" / "own"
    dataset = xr.load_dataset(results / "dataset.nc")
    for name in (
        "train_acc",
        "hessian_top_eigenvalue",
        "hessian_trace",
        "cka",
        "l2_distance",
        "mode_connectivity",
        "fge_test_acc",
        "curve_ensemble_test_acc",
        "aligned_mode_connectivity",
        "aligned_curve_length",
    ):
        assert bool(dataset[name].notnull().all()), name
    phases = xr.load_dataset(results / "phases.nc")
    assert {"advice", "advice_knob", "advice_source", "closest_decision", "sharp_margin"} <= set(phases.data_vars)
    assert (results / "figures" / "phases.png").exists() and (results / "figures" / "ensembles.png").exists()
    assert list(results.rglob("landscape.nc"))
    assert np.isnan(dataset["fge_epochs"]).all()  # trained elsewhere: the models' epochs are unknown
    assert {key: path.read_bytes() for key, path in files.items()} == before
    assert sorted(p.name for p in results.rglob("*.pt")) == ["curve.pt", "curve.pt"]  # no checkpoint copied in
    record = json.loads(next(results.rglob("seed=1/checkpoint.json")).read_text())
    assert record["external"]["prefix"] == "model." and len(record["external"]["file_sha256"]) == 64
    assert planned_jobs(tmp_path) == {}

    # New weights in one file: its cell's import and what depends on it run again, nothing else.
    torch.save(own_model(7, 64).state_dict(), files[64, 0])
    plan = planned_jobs(tmp_path)
    assert plan["import_checkpoints"] == 1 and plan["hessian"] == 1 and plan["cka"] == 1 and plan["curve_fit"] == 1 and plan["fge"] == 1

    # A file of another model: the run stops with one line naming it; the other cell's results stay.
    torch.save(build_model("mlp", 6, data.num_classes, data.input_shape).state_dict(), files[64, 0])
    kept = next(results.glob("width=4/batch_size=32/*/*/*/*/seed=0/hessian.json"))
    failed = snakemake(tmp_path, check=False)
    assert failed.returncode != 0
    log = next(p for p in (results / "logs" / "import").rglob("*.log") if "batch_size=64" in str(p))
    assert f"lltax import: error: {files[64, 0]} does not fit the model" in log.read_text()
    assert kept.exists() and (results / "dataset.nc").exists()

    # A missing file: named before any job runs.
    files[64, 0].unlink()
    missing = snakemake(tmp_path, "-n", check=False)
    assert missing.returncode != 0 and "1 of the 4 files it names do not exist" in missing.stdout + missing.stderr
