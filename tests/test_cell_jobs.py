"""One process per cell: the metric commands take a cell's seeds / pairs at once and write what
one call per seed / pair would write, byte for byte (the workflow runs them this way)."""

from __future__ import annotations

import json

import pytest

from lltax.cli import main
from lltax.config.grid import canonical_json, cell_path
from lltax.config.schema import section_settings
from lltax.jobs.train import run_train_job

CELL = {"width": 2, "batch_size": 64, "label_noise": 0.0, "train_fraction": 0.1, "learning_rate": 0.05, "weight_decay": 0.0005}
TRAIN = section_settings("train", {"epochs": 1})  # the schema's defaults but this
DATASET = {"name": "mnist1d", "download": False, "augment": False, "label_noise_mode": "exact"}
HESSIAN = canonical_json({"num_samples": 32, "chunk_size": 32, "max_iterations": 20, "trace_probes": 5})
CURVES = canonical_json({"epochs": 1, "batch_size": 64})


@pytest.fixture(scope="module")
def cell(tmp_path_factory, mnist1d_dir):
    """Three seeds of one tiny cell, trained once for the module."""
    root = tmp_path_factory.mktemp("cell")
    data_dir = mnist1d_dir
    for seed in range(3):
        run_train_job(
            cell=CELL,
            seed=seed,
            dataset=DATASET,
            model_name="resnet1d",
            train_settings=TRAIN,
            data_dir=str(data_dir),
            device="cpu",
            out_dir=root / cell_path(CELL) / f"seed={seed}",
        )
    return root / cell_path(CELL), str(data_dir)


def lltax(*argv: str) -> None:
    assert main([*argv, "--device", "cpu", "--threads", "1"]) == 0, argv


def test_hessian_of_several_checkpoints_equals_one_call_each(cell, tmp_path):
    folder, data_dir = cell
    models = [str(folder / f"seed={s}" / "model.pt") for s in range(3)]
    outs = [str(tmp_path / f"together{s}.json") for s in range(3)]
    lltax("hessian", "--checkpoints", *models, "--settings", HESSIAN, "--data-dir", data_dir, "--out", *outs)
    for seed in range(3):
        lltax(
            "hessian", "--checkpoints", models[seed], "--settings", HESSIAN, "--data-dir", data_dir, "--out", str(tmp_path / "alone.json")
        )
        together = json.loads((tmp_path / f"together{seed}.json").read_text())
        assert together == json.loads((tmp_path / "alone.json").read_text())
        assert together["seed"] == seed


def test_curves_of_several_pairs_equal_one_call_each(cell, tmp_path):
    folder, data_dir = cell
    model = {s: str(folder / f"seed={s}" / "model.pt") for s in range(3)}
    pairs = [(0, 1), (0, 2), (1, 2)]
    curves = [str(tmp_path / f"pair={a}-{b}" / "curve.pt") for a, b in pairs]
    lltax(
        "curve-fit",
        "--checkpoints",
        *[model[s] for pair in pairs for s in pair],
        "--settings",
        CURVES,
        "--data-dir",
        data_dir,
        "--out",
        *curves,
    )
    evals = [curve.replace("curve.pt", "curve_eval.json") for curve in curves]
    lltax("curve-eval", "--curves", *curves, "--settings", '{"points": [0.0, 0.5, 1.0]}', "--data-dir", data_dir, "--out", *evals)
    for (a, b), curve, evaluation in zip(pairs, curves, evals):
        alone = tmp_path / "alone"
        lltax(
            "curve-fit", "--checkpoints", model[a], model[b], "--settings", CURVES, "--data-dir", data_dir, "--out", str(alone / "curve.pt")
        )
        lltax(
            "curve-eval",
            "--curves",
            str(alone / "curve.pt"),
            "--settings",
            '{"points": [0.0, 0.5, 1.0]}',
            "--data-dir",
            data_dir,
            "--out",
            str(alone / "e.json"),
        )
        assert open(curve, "rb").read() == (alone / "curve.pt").read_bytes()
        record = json.loads(open(evaluation).read())
        assert record == json.loads((alone / "e.json").read_text()) and (record["seed_a"], record["seed_b"]) == (a, b)


def test_cka_job_writes_the_distances_of_lltax_distance(cell, tmp_path):
    folder, data_dir = cell
    models = [str(folder / f"seed={s}" / "model.pt") for s in range(3)]
    lltax(
        "cka",
        "--checkpoints",
        *models,
        "--settings",
        '{"num_samples": 64}',
        "--data-dir",
        data_dir,
        "--out",
        str(tmp_path / "cka.json"),
        "--distance-out",
        str(tmp_path / "distance.json"),
    )
    lltax("distance", "--checkpoints", *models, "--out", str(tmp_path / "alone.json"))
    together, alone = (json.loads((tmp_path / name).read_text()) for name in ("distance.json", "alone.json"))
    assert together["runtime"].pop("code")["command"] == "cka" and alone["runtime"].pop("code")["command"] == "distance"
    assert together == alone  # but the command that wrote it
    assert len(json.loads((tmp_path / "cka.json").read_text())["pairs"]) == 3


def test_mismatched_inputs_and_outputs_are_refused_before_any_work(cell, tmp_path, capsys):
    folder, data_dir = cell
    models = [str(folder / f"seed={s}" / "model.pt") for s in range(2)]
    assert main(["hessian", "--checkpoints", *models, "--settings", HESSIAN, "--out", str(tmp_path / "one.json"), "--device", "cpu"]) == 1
    assert "give one output per checkpoint: 2 checkpoint(s) but 1 output(s)" in capsys.readouterr().err
    assert (
        main(["curve-fit", "--checkpoints", *models, models[0], "--settings", CURVES, "--out", str(tmp_path / "c.pt"), "--device", "cpu"])
        == 1
    )
    assert "takes pairs" in capsys.readouterr().err
    same = str(tmp_path / "same.json")
    assert main(["hessian", "--checkpoints", *models, "--settings", HESSIAN, "--out", same, same, "--device", "cpu"]) == 1
    assert "is named twice" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
