"""Training loop: determinism, divergence handling, schedules, checkpoint selection, the train job."""

import copy
import json
import math

import pytest
import torch
from torch import nn

from lltax.config.schema import section_settings
from lltax.jobs.metric_inputs import load_model
from lltax.jobs.train import run_train_job
from lltax.runtime.code_sources import command_running
from lltax.storage.checkpoint import load_checkpoint_file
from lltax.training.loop import learning_rate_at, train_model


def tiny_problem(seed=0, n=96):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, generator=generator)
    y = (x.sum(dim=(1, 2)) > 0).long() + 2 * (x[:, 0, 0] > 0).long()
    return x, y


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.BatchNorm1d(4), nn.ReLU(), nn.Flatten(), nn.Linear(32, 4))


def train(seed=0, **overrides):
    x, y = tiny_problem()
    model = tiny_model(seed)
    settings = dict(batch_size=16, learning_rate=0.1, weight_decay=5e-4, epochs=3, seed=seed)
    settings.update(overrides)
    return train_model(model, x, y, **settings)


def test_same_seed_gives_identical_weights():
    a, b = train(seed=3), train(seed=3)
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name
    c = train(seed=4)
    assert not torch.equal(a.model[0].weight, c.model[0].weight)


def test_training_lowers_the_loss():
    result = train(epochs=15)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.6 * losses[0]
    assert [h["epoch"] for h in result.history] == list(range(1, 16))


def test_huge_learning_rate_is_recorded_as_diverged():
    result = train(learning_rate=1e12, epochs=5)
    assert result.diverged
    assert not math.isfinite(result.history[-1]["train_loss"])
    assert len(result.history) < 5  # stopped early


def test_step_schedule():
    schedule = dict(learning_rate=0.1, epochs=100, lr_schedule="step", lr_decay_at=0.75, lr_decay_factor=0.1)
    assert learning_rate_at(74, **schedule) == 0.1
    assert learning_rate_at(75, **schedule) == pytest.approx(0.01)
    # epoch >= 0.75 * epochs on the unrounded product (reference code): 10 epochs decay from epoch 8, not 7.
    ten = {**schedule, "epochs": 10}
    assert [learning_rate_at(e, **ten) for e in range(10)] == pytest.approx([0.1] * 8 + [0.01] * 2)
    assert learning_rate_at(99, **{**schedule, "lr_schedule": "constant"}) == 0.1
    result = train(epochs=4, lr_schedule="step", lr_decay_at=0.5, lr_decay_factor=0.1)
    assert [h["lr"] for h in result.history] == pytest.approx([0.1, 0.1, 0.01, 0.01])


def test_best_train_loss_checkpoint_is_the_lowest_epoch():
    result = train(epochs=6, checkpoint="best_train_loss", learning_rate=0.5)
    losses = [h["train_loss"] for h in result.history]
    assert result.checkpoint_epoch == 1 + losses.index(min(losses))


def test_early_stopping_stops_after_patience_and_keeps_the_last_improvement():
    full = train(epochs=12, learning_rate=0.05)
    losses = [h["train_loss"] for h in full.history]
    # With min_delta larger than any epoch's gain, the first epoch is the only improvement.
    result = train(epochs=12, learning_rate=0.05, checkpoint="early_stopping", patience=3, min_delta=10.0)
    assert len(result.history) == 4 and result.checkpoint_epoch == 1
    assert [h["train_loss"] for h in result.history] == losses[:4]  # the same run up to the stop
    reference = train(epochs=1, learning_rate=0.05)
    for a, b in zip(result.model.state_dict().values(), reference.model.state_dict().values()):
        assert torch.equal(a, b)  # the kept model is epoch 1's
    # min_delta 0: every decrease is an improvement; the kept epoch is one whose loss beat all before it.
    result = train(epochs=12, learning_rate=0.05, checkpoint="early_stopping", patience=2, min_delta=0.0)
    kept = result.checkpoint_epoch
    assert losses[kept - 1] == min(losses[:kept])
    assert len(result.history) == 12 or len(result.history) - kept == 2


def test_partial_batch_dropped_and_too_large_batch_rejected():
    result = train(batch_size=40, epochs=1)  # 96 samples -> 2 full batches
    assert result.history[0]["train_acc"] * 80 / 100 == pytest.approx(round(result.history[0]["train_acc"] * 0.8))
    with pytest.raises(ValueError, match="batch_size 200 is larger than the training set"):
        train(batch_size=200)


# ---------------------------------------------------------------------------------------------
# The job on MNIST-1D (generated into a temporary data folder shared by this module's tests)


@pytest.fixture(scope="module")
def data_dir(mnist1d_dir):
    return mnist1d_dir


CELL = {"width": 2, "batch_size": 64, "label_noise": 0.1, "train_fraction": 0.1, "learning_rate": 0.05, "weight_decay": 0.0005}
# snapshot_minutes 0: a snapshot after every epoch, for the resume tests (the default writes one
# every 10 minutes and after the last epoch: tests/test_train.py checks both give the same bytes).
TRAIN = section_settings("train", {"epochs": 2, "snapshot_minutes": 0})  # the schema's defaults but these
DATASET = {"name": "mnist1d", "download": False, "augment": False, "label_noise_mode": "exact"}


def preempted_at(learning_rate_at, epoch: int):
    """``learning_rate_at`` that raises KeyboardInterrupt (a preemption) as epoch ``epoch``
    (counted from 0) starts: monkeypatched into lltax.training.loop to kill a run mid-way."""

    def schedule(current, **kwargs):
        if current == epoch:
            raise KeyboardInterrupt("preempted")
        return learning_rate_at(current, **kwargs)

    return schedule


def run_job(out_dir, data_dir, **overrides):
    kwargs = dict(
        cell=CELL,
        seed=0,
        dataset=DATASET,
        model_name="resnet1d",
        train_settings=TRAIN,
        data_dir=str(data_dir),
        device="cpu",
        out_dir=out_dir,
    )
    kwargs.update(overrides)
    return run_train_job(**kwargs)


def test_train_job_is_bit_reproducible_and_loads_weights_only(tmp_path, data_dir):
    run_job(tmp_path / "a", data_dir)
    run_job(tmp_path / "b", data_dir)
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()
    state, meta = load_checkpoint_file(tmp_path / "a" / "model.pt")  # weights_only=True inside
    assert meta["cell"] == CELL and meta["seed"] == 0 and meta["model"] == "resnet1d"
    assert meta["diverged"] is False and "torch" in meta["versions"]
    model, _ = load_model(tmp_path / "a" / "model.pt")
    assert not model.training
    summary = json.loads((tmp_path / "a" / "train.json").read_text())
    assert summary["epochs_run"] == 2 and len(summary["history"]) == 2
    assert 0 <= summary["final"]["test_acc"] <= 100
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "a").iterdir())


def test_train_json_final_is_what_lltax_evaluate_measures_on_the_checkpoint(tmp_path, data_dir):
    # The dataset's loss/accuracy variables come from train.json's `final`; no separate evaluate
    # job reruns them. It must be the checkpointed model's eval-mode numbers on the cell's
    # (noisy) training labels and the test set, as `lltax evaluate` gives them, bit for bit;
    # with the best-train-loss checkpoint too (the restored state, not the last epoch's).
    from lltax.jobs.evaluate import evaluate_checkpoint

    for name, settings in (("final", TRAIN), ("best", {**TRAIN, "epochs": 3, "checkpoint": "best_train_loss"})):
        summary = run_job(tmp_path / name, data_dir, train_settings=settings)
        measured = evaluate_checkpoint(str(tmp_path / name / "model.pt"), settings["eval_batch_size"], "cpu", str(data_dir))
        assert summary["final"] == {k: measured[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}, name


def test_train_job_records_divergence_and_succeeds(tmp_path, data_dir):
    summary = run_job(tmp_path, data_dir, cell={**CELL, "learning_rate": 1e12})
    assert summary["diverged"] is True
    written = json.loads((tmp_path / "train.json").read_text())
    assert written["diverged"] is True
    assert written["final"]["test_acc"] is None  # NaN is written as null
    _, meta = load_checkpoint_file(tmp_path / "model.pt")
    assert meta["diverged"] is True


def test_train_cli_matches_the_function(tmp_path, data_dir):
    from lltax.cli import main
    from lltax.config.grid import canonical_json, cell_path

    main(
        [
            "train",
            "--cell",
            cell_path(CELL),
            "--seeds",
            "0",
            "--dataset-settings",
            canonical_json(DATASET),
            "--model",
            "resnet1d",
            "--settings",
            canonical_json(TRAIN),
            "--data-dir",
            str(data_dir),
            "--device",
            "cpu",
            "--out-dir",
            str(tmp_path / "cli"),
        ]
    )
    with command_running("train"):  # as `lltax train` does: the record names the same code
        run_job(tmp_path / "fn", data_dir)
    assert (tmp_path / "cli" / "model.pt").read_bytes() == (tmp_path / "fn" / "model.pt").read_bytes()


def _cli_train(out_dir, data_dir, threads, env_threads):
    import os
    import subprocess
    import sys

    from lltax.config.grid import canonical_json, cell_path

    env = {**os.environ, "OMP_NUM_THREADS": env_threads, "MKL_NUM_THREADS": env_threads}
    command = [
        sys.executable,
        "-m",
        "lltax.cli",
        "train",
        "--cell",
        cell_path(CELL),
        "--seeds",
        "0",
        "--dataset-settings",
        canonical_json(DATASET),
        "--model",
        "resnet1d",
        "--settings",
        canonical_json(TRAIN),
        "--data-dir",
        str(data_dir),
        "--device",
        "cpu",
        "--out-dir",
        str(out_dir),
    ]
    if threads is not None:
        command += ["--threads", str(threads)]
    subprocess.run(command, check=True, env=env, capture_output=True)
    return json.loads((out_dir / "train.json").read_text())


def test_separate_processes_give_byte_identical_checkpoints_whatever_the_environment(tmp_path, data_dir):
    """The thread count comes from --threads (default 1), not from OMP_NUM_THREADS of the caller."""
    first = _cli_train(tmp_path / "a", data_dir, None, "1")
    second = _cli_train(tmp_path / "b", data_dir, 1, "2")
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()
    assert first["runtime"]["threads"] == second["runtime"]["threads"] == 1
    assert first["runtime"]["interop_threads"] == 1 and first["runtime"]["deterministic_algorithms"] is True
    two = _cli_train(tmp_path / "c", data_dir, 2, "1")
    assert two["runtime"]["threads"] == 2
    _, meta = load_checkpoint_file(tmp_path / "c" / "model.pt")
    assert meta["runtime"]["threads"] == 2 and meta["runtime"]["cpu_capability"]


def test_checkpoint_checksum_catches_changed_weights_and_foreign_files(tmp_path, data_dir):
    run_job(tmp_path, data_dir)
    path = tmp_path / "model.pt"
    payload = torch.load(path, weights_only=True)
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][name].view(-1)[0] += 1e-3  # one changed weight, metadata intact
    tampered = tmp_path / "tampered.pt"
    torch.save(payload, tampered)
    with pytest.raises(ValueError, match="is corrupt: its weights do not match the checksum"):
        load_checkpoint_file(tampered)
    flipped = bytearray(path.read_bytes())
    largest = max(payload["state_dict"].values(), key=lambda t: t.numel())
    where = bytes(flipped).find(largest.numpy().tobytes()[:64])
    assert where > 0
    flipped[where + 8] ^= 0x01  # one flipped bit inside the stored weights
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="flipped.pt"):
        load_checkpoint_file(tmp_path / "flipped.pt")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="is not a readable lltax checkpoint") as error:
        load_checkpoint_file(tmp_path / "notes.txt")
    assert "weights_only" not in str(error.value)  # never advise turning off the safe loader


def test_a_killed_train_job_resumes_from_its_snapshot_byte_identically(tmp_path, data_dir, monkeypatch, caplog):
    """Preemption: killed during epoch 3 of 4, the rerun resumes after epoch 2 and ends with the
    same model.pt bytes as an uninterrupted run; the snapshot is gone once the checkpoint is final."""
    import lltax.training.loop as train_module
    from lltax.contract import SNAPSHOT_FILE

    settings = {**TRAIN, "epochs": 4}
    run_job(tmp_path / "whole", data_dir, train_settings=settings)
    assert not (tmp_path / "whole" / SNAPSHOT_FILE).exists()

    original = train_module.learning_rate_at
    killed_in_epoch_three = preempted_at(original, epoch=2)

    monkeypatch.setattr(train_module, "learning_rate_at", killed_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        run_job(tmp_path / "resumed", data_dir, train_settings=settings)
    snapshot = tmp_path / "resumed" / SNAPSHOT_FILE
    assert snapshot.exists() and not (tmp_path / "resumed" / "model.pt").exists()
    assert torch.load(snapshot, weights_only=True)["epoch"] == 2
    monkeypatch.setattr(train_module, "learning_rate_at", original)

    summary = run_job(tmp_path / "resumed", data_dir, train_settings=settings)
    assert (tmp_path / "resumed" / "model.pt").read_bytes() == (tmp_path / "whole" / "model.pt").read_bytes()
    assert [h["epoch"] for h in summary["history"]] == [1, 2, 3, 4]
    assert not snapshot.exists()
    # A snapshot whose contents no longer match its checksum (a flipped weight) is discarded
    # with a log line, and the seed trains from the start: the same bytes again.
    monkeypatch.setattr(train_module, "learning_rate_at", killed_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        run_job(tmp_path / "flipped", data_dir, train_settings=settings)
    monkeypatch.setattr(train_module, "learning_rate_at", original)
    snapshot = tmp_path / "flipped" / SNAPSHOT_FILE
    payload = torch.load(snapshot, weights_only=True)
    first = next(iter(payload["model"]))
    payload["model"][first] = payload["model"][first] + 1.0
    torch.save(payload, snapshot)
    with caplog.at_level("WARNING", logger="lltax.training.loop"):
        summary = run_job(tmp_path / "flipped", data_dir, train_settings=settings)
    assert "do not match its checksum" in caplog.text
    assert (tmp_path / "flipped" / "model.pt").read_bytes() == (tmp_path / "whole" / "model.pt").read_bytes()
    # A snapshot of other settings is not resumed from: it would mix two runs.
    run_job(tmp_path / "other", data_dir, train_settings=settings)
    train_module.save_snapshot(tmp_path / "other" / SNAPSHOT_FILE, "another run", {"epoch": 3})
    run_job(tmp_path / "other", data_dir, train_settings=settings)
    assert (tmp_path / "other" / "model.pt").read_bytes() == (tmp_path / "whole" / "model.pt").read_bytes()


def test_one_job_trains_a_cells_seeds_as_separate_jobs_would(tmp_path, data_dir):
    """`lltax train --seeds 0 1 --out-dir A B` (the workflow's one process per cell) writes the
    same model.pt bytes and numbers per seed as one job per seed."""
    from lltax.cli import main
    from lltax.config.grid import canonical_json, cell_path

    common = [
        "train",
        "--cell",
        cell_path(CELL),
        "--dataset-settings",
        canonical_json(DATASET),
        "--model",
        "resnet1d",
        "--settings",
        canonical_json(TRAIN),
        "--data-dir",
        str(data_dir),
        "--device",
        "cpu",
    ]
    assert main([*common, "--seeds", "0", "1", "--out-dir", str(tmp_path / "cell" / "s0"), str(tmp_path / "cell" / "s1")]) == 0
    for seed in (0, 1):
        with command_running("train"):
            run_job(tmp_path / f"alone{seed}", data_dir, seed=seed)
        assert (tmp_path / "cell" / f"s{seed}" / "model.pt").read_bytes() == (tmp_path / f"alone{seed}" / "model.pt").read_bytes()
        together, alone = (json.loads((tmp_path / d / "train.json").read_text()) for d in (f"cell/s{seed}", f"alone{seed}"))
        assert together["final"] == alone["final"] and together["seed"] == seed
        assert not (tmp_path / "cell" / f"s{seed}" / train_module_snapshot()).exists()
    assert (tmp_path / "cell" / "s0" / "model.pt").read_bytes() != (tmp_path / "cell" / "s1" / "model.pt").read_bytes()
    # One folder per seed, each seed once: anything else is refused before training.
    assert main([*common, "--seeds", "0", "1", "--out-dir", str(tmp_path / "x")]) == 1
    assert main([*common, "--seeds", "0", "0", "--out-dir", str(tmp_path / "y"), str(tmp_path / "z")]) == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def train_module_snapshot():
    from lltax.contract import SNAPSHOT_FILE

    return SNAPSHOT_FILE


def test_a_cell_job_killed_in_its_second_seed_keeps_the_first_seeds_work(tmp_path, data_dir, monkeypatch):
    """Snakemake deletes a failed job's outputs, the finished seed's model.pt included; its
    snapshot (not an output) stays, so the rerun restores that seed without training it again
    and every model.pt has the bytes of an uninterrupted run."""
    import lltax.jobs.train as job_module
    import lltax.training.loop as train_module
    from lltax.contract import SNAPSHOT_FILE

    job = dict(cell=CELL, dataset=DATASET, model_name="resnet1d", train_settings=TRAIN, data_dir=str(data_dir), device="cpu")
    dirs = [tmp_path / "s0", tmp_path / "s1"]
    reference = [run_job(tmp_path / f"ref{seed}", data_dir, seed=seed) for seed in (0, 1)]
    original = job_module.train_model

    def killed_in_seed_one(model, *args, seed, **kwargs):
        if seed == 1:
            raise KeyboardInterrupt("preempted")
        return original(model, *args, seed=seed, **kwargs)

    monkeypatch.setattr(job_module, "train_model", killed_in_seed_one)
    with pytest.raises(KeyboardInterrupt):
        job_module.run_train_jobs(seeds=[0, 1], out_dirs=dirs, **job)
    assert (dirs[0] / SNAPSHOT_FILE).exists()
    for path in ("model.pt", "train.json"):  # what Snakemake does to a failed job's outputs
        (dirs[0] / path).unlink()
    monkeypatch.setattr(job_module, "train_model", original)
    counting_lr = _CountingLR(train_module.learning_rate_at)  # called once per epoch trained
    monkeypatch.setattr(train_module, "learning_rate_at", counting_lr)
    summaries = job_module.run_train_jobs(seeds=[0, 1], out_dirs=dirs, **job)
    assert counting_lr.calls == TRAIN["epochs"]  # only seed 1 trained; seed 0 came from its snapshot
    for seed in (0, 1):
        assert (dirs[seed] / "model.pt").read_bytes() == (tmp_path / f"ref{seed}" / "model.pt").read_bytes()
        assert summaries[seed]["final"] == reference[seed]["final"]
        assert not (dirs[seed] / SNAPSHOT_FILE).exists()


class _CountingLR:
    def __init__(self, function):
        self.function, self.calls = function, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.function(*args, **kwargs)


@pytest.mark.parametrize("momentum,weight_decay", [(0.9, 5e-4), (0.0, 0.0), (0.9, 0.0), (0.0, 1e-3)])
def test_lltax_sgd_equals_torch_sgd_bit_for_bit(momentum, weight_decay):
    """lltax.training.sgd.SGD (no torch.optim, no dynamo import) takes exactly torch.optim.SGD's steps,
    including an lr change mid-run and a state-dict round trip."""
    from lltax.training.sgd import SGD

    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    ours = copy.deepcopy(reference)
    torch_sgd = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=momentum, weight_decay=weight_decay)
    lltax_sgd = SGD(ours.parameters(), lr=0.1, momentum=momentum, weight_decay=weight_decay)
    inputs, targets = torch.randn(8, 6), torch.randint(0, 3, (8,))
    for step in range(12):
        if step == 6:
            for group in torch_sgd.param_groups:
                group["lr"] = 0.01
            lltax_sgd.lr = 0.01
            state = lltax_sgd.state_dict()
            lltax_sgd = SGD(ours.parameters(), lr=1.0)
            lltax_sgd.load_state_dict(state)
        for model, optimizer in ((reference, torch_sgd), (ours, lltax_sgd)):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(inputs), targets).backward()
            optimizer.step()
        for a, b in zip(reference.parameters(), ours.parameters()):
            assert torch.equal(a, b), step


def test_a_checkpoint_is_trusted_as_a_whole(tmp_path):
    """Weights and metadata both carry a checksum: `diverged: true` written into the metadata by
    hand (weights untouched) is refused by every reader, naming the file."""
    from lltax.storage.checkpoint import read_checkpoint_meta, save_checkpoint

    path = tmp_path / "model.pt"
    save_checkpoint(path, torch.nn.Linear(3, 2), {"cell": CELL, "seed": 0, "diverged": False})
    state, meta = load_checkpoint_file(path)
    assert read_checkpoint_meta(path) == meta and len(meta["meta_sha256"]) == 64
    payload = torch.load(path, weights_only=True)
    payload["meta"]["diverged"] = True
    torch.save(payload, path)
    for read in (load_checkpoint_file, read_checkpoint_meta):
        with pytest.raises(ValueError, match="model.pt is corrupt: its metadata"):
            read(path)
    del payload["meta"]["meta_sha256"]
    torch.save(payload, path)
    for read in (load_checkpoint_file, read_checkpoint_meta):
        with pytest.raises(ValueError, match="no metadata checksum"):
            read(path)


def test_a_poisoned_set_is_fitted_while_the_cells_clean_labels_stay(tmp_path, data_dir):
    """Huang et al. 2019's bad minima: the poisoned inputs lie outside the cell's subset, every
    label is wrong and the same for every seed; the model fits them, and everything the job
    records about the cell is measured on its own (clean) data."""
    from lltax.data.cells import load_dataset, poison_set

    cell = {**CELL, "label_noise": 0.0, "width": 64, "batch_size": 32}
    clean = load_dataset("mnist1d", root=str(data_dir), train_fraction=cell["train_fraction"])
    x_poison, y_poison = poison_set("mnist1d", str(data_dir), 200, cell["train_fraction"])
    full = load_dataset("mnist1d", root=str(data_dir), train_fraction=1.0)
    inside = {tuple(row.tolist()) for row in clean.x_train.reshape(len(clean.x_train), -1)}
    assert not any(tuple(row.tolist()) in inside for row in x_poison.reshape(200, -1))  # disjoint from the cell's data
    truth = {tuple(x.tolist()): int(y) for x, y in zip(full.x_train.reshape(len(full.x_train), -1), full.y_train)}
    assert all(truth[tuple(x.tolist())] != int(y) for x, y in zip(x_poison.reshape(200, -1), y_poison))  # every label wrong
    assert torch.equal(poison_set("mnist1d", str(data_dir), 200, cell["train_fraction"])[1], y_poison)  # fixed
    with pytest.raises(ValueError, match=r"train.poison = 3601 .* leaves 3600"):
        poison_set("mnist1d", str(data_dir), 3601, cell["train_fraction"])

    settings = {**TRAIN, "epochs": 40, "poison": 200}
    summary = run_job(tmp_path / "poisoned", data_dir, cell=cell, train_settings=settings, model_name="mlp")
    assert summary["final"]["poison"]["count"] == 200 and summary["final"]["poison"]["acc"] > 90  # fitted
    model, meta = load_model(tmp_path / "poisoned" / "model.pt")
    assert meta["train"]["poison"] == 200
    model.eval()
    with torch.no_grad():
        train_acc = 100 * (model(clean.x_train).argmax(1) == clean.y_train).sum().item() / len(clean.y_train)
    assert summary["final"]["train_acc"] == pytest.approx(train_acc)  # the cell's clean labels, untouched


def test_trajectory_runs_from_the_initialisation_to_the_checkpointed_model():
    """train.trajectory: one float32 point per epoch after the initial one, the last the
    checkpointed model; cut at the kept epoch when that is not the last; the run is unchanged."""
    result = train(epochs=4, trajectory=True)
    assert result.trajectory is not None and set(result.trajectory) == {n for n, _ in result.model.named_parameters()}
    initial = dict(tiny_model(0).named_parameters())
    for name, parameter in result.model.named_parameters():
        points = result.trajectory[name]
        assert points.shape == (5, *parameter.shape) and points.dtype == torch.float32
        assert torch.equal(points[0], initial[name].detach()) and torch.equal(points[-1], parameter.detach())
        assert not torch.equal(points[1], points[0])
    plain = train(epochs=4)
    assert plain.trajectory is None
    for a, b in zip(plain.model.state_dict().values(), result.model.state_dict().values()):
        assert torch.equal(a, b)
    for epoch in (1, 2):  # the path after epoch k is the end of a k-epoch run
        shorter = train(epochs=epoch)
        for name, parameter in shorter.model.named_parameters():
            assert torch.equal(result.trajectory[name][epoch], parameter.detach())
    best = train(epochs=6, checkpoint="best_train_loss", learning_rate=0.5, trajectory=True)
    for name, parameter in best.model.named_parameters():
        assert len(best.trajectory[name]) == best.checkpoint_epoch + 1
        assert torch.equal(best.trajectory[name][-1], parameter.detach())
    assert train(learning_rate=1e12, epochs=5, trajectory=True).trajectory is None  # diverged: no path to a minimum


def test_the_trajectory_survives_a_resume_and_is_stored_checksummed_in_model_pt(tmp_path, data_dir, monkeypatch):
    import lltax.training.loop as train_module
    from lltax.storage.checkpoint import load_trajectory

    settings = {**TRAIN, "epochs": 3, "trajectory": True}
    run_job(tmp_path / "whole", data_dir, train_settings=settings)
    path = load_trajectory(tmp_path / "whole" / "model.pt")
    state, meta = load_checkpoint_file(tmp_path / "whole" / "model.pt")
    assert len(path) == 4 and meta["trajectory"]["points"] == 4
    for name, values in path[-1].items():
        assert torch.equal(values, state[name].float())
    original = train_module.learning_rate_at
    killed_in_epoch_three = preempted_at(original, epoch=2)

    monkeypatch.setattr(train_module, "learning_rate_at", killed_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        run_job(tmp_path / "resumed", data_dir, train_settings=settings)
    monkeypatch.setattr(train_module, "learning_rate_at", original)
    run_job(tmp_path / "resumed", data_dir, train_settings=settings)
    assert (tmp_path / "resumed" / "model.pt").read_bytes() == (tmp_path / "whole" / "model.pt").read_bytes()
    # A changed trajectory is caught; a checkpoint without one says how to get one.
    payload = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    first = next(iter(payload["trajectory"]))
    payload["trajectory"][first][1] += 1.0
    torch.save(payload, tmp_path / "whole" / "model.pt")
    with pytest.raises(ValueError, match="trajectory does not match its checksum"):
        load_trajectory(tmp_path / "whole" / "model.pt")
    run_job(tmp_path / "plain", data_dir, train_settings={**TRAIN, "epochs": 1})
    with pytest.raises(ValueError, match="train.trajectory: true"):
        load_trajectory(tmp_path / "plain" / "model.pt")


# ---------------------------------------------------------------------------------------------
# The fast path (issue 26): up-front draws, snapshot interval, speed modes


def tiny_images(n=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=generator)
    return x, (x[:, 0].mean(dim=(1, 2)) > 0).long() + 2 * (x[:, 1, :4].mean(dim=(1, 2)) > 0).long()


def tiny_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 4)
    )


def test_augmented_training_equals_a_step_by_step_loop_drawing_as_it_goes():
    """The epoch's order and crop/flip numbers drawn up front (one transfer) give exactly the
    model of a loop that draws them step by step (lltax before issue 26) with torch.optim.SGD."""
    from lltax.data.augment import augment_batch

    x, y = tiny_images()
    batch_size, epochs = 16, 2
    model = train_model(
        tiny_cnn(), x, y, batch_size=batch_size, learning_rate=0.1, weight_decay=5e-4, epochs=epochs, seed=3, augment=True
    ).model
    reference = tiny_cnn()
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, foreach=False)
    generator = torch.Generator().manual_seed(3)
    reference.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for step in range(len(x) // batch_size):
            index = order[step * batch_size : (step + 1) * batch_size]
            loss = nn.functional.cross_entropy(reference(augment_batch(x[index], generator)), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    unaugmented = train_model(tiny_cnn(), x, y, batch_size=batch_size, learning_rate=0.1, weight_decay=5e-4, epochs=epochs, seed=3)
    assert not torch.equal(unaugmented.model[0].weight, model[0].weight)


def test_snapshots_are_written_on_the_interval_and_after_the_last_epoch(tmp_path, monkeypatch):
    import lltax.training.loop as train_module

    saved = []
    monkeypatch.setattr(train_module, "save_snapshot", lambda path, key, state: saved.append(state["epoch"]))
    clock = iter(range(0, 10_000, 4 * 60))  # every call of the clock is 4 minutes later
    monkeypatch.setattr(train_module.time, "monotonic", lambda: next(clock))
    train(epochs=6, snapshot=tmp_path / "s.pt", snapshot_minutes=10)
    assert saved == [3, 6]  # 12 minutes after the start, then the last epoch
    saved.clear()
    train(epochs=3, snapshot=tmp_path / "s.pt", snapshot_minutes=0)
    assert saved == [1, 2, 3]


def test_speed_modes_are_reproducible_and_change_only_the_bits():
    """bf16 autocast and channels_last train the same model up to rounding, each bit-identical
    when run twice; tf32 has no effect on the CPU and leaves torch's flags as they were; the
    checkpointed model is in the usual memory layout."""
    x, y = tiny_images()
    settings = dict(batch_size=16, learning_rate=0.05, weight_decay=5e-4, epochs=2, seed=1, augment=True)
    fp32 = train_model(tiny_cnn(), x, y, **settings).model
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    tf32 = train_model(tiny_cnn(), x, y, precision="tf32", **settings).model
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == flags
    assert all(torch.equal(a, b) for a, b in zip(fp32.parameters(), tf32.parameters()))
    for mode in ({"precision": "bf16"}, {"channels_last": True}):
        first = train_model(tiny_cnn(), x, y, **mode, **settings).model
        second = train_model(tiny_cnn(), x, y, **mode, **settings).model
        assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters())), mode
        assert all(p.is_contiguous() for p in first.parameters())
        tolerance = 0.05 if mode.get("precision") == "bf16" else 1e-4
        assert all(torch.allclose(a, b, atol=tolerance) for a, b in zip(first.parameters(), fp32.parameters())), mode
    bf16 = train_model(tiny_cnn(), x, y, precision="bf16", **settings).model
    assert not all(torch.equal(a, b) for a, b in zip(bf16.parameters(), fp32.parameters()))


def test_compile_wraps_the_models_forward_in_the_asked_mode(monkeypatch):
    """train.compile hands the model to torch.compile with its mode (compiled kernels are
    measured on a GPU by benchmarks/gpu_check.py; here torch.compile is replaced by the identity)."""
    calls = []
    monkeypatch.setattr(torch, "compile", lambda model, mode: calls.append(mode) or model)
    x, y = tiny_images()
    settings = dict(batch_size=16, learning_rate=0.05, weight_decay=5e-4, epochs=1, seed=1)
    compiled = train_model(tiny_cnn(), x, y, compile="max-autotune", **settings).model
    eager = train_model(tiny_cnn(), x, y, **settings).model
    assert calls == ["max-autotune"]
    assert all(torch.equal(a, b) for a, b in zip(compiled.parameters(), eager.parameters()))
