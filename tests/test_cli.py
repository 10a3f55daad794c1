"""The `lltax` command on misuse: one clear line naming the problem, nothing overwritten."""

from __future__ import annotations

import pytest

from lltax.cli import main
from lltax.contract import METRICS
from lltax.results.netcdf import merge_metrics, write_dataset
from lltax.results.tables import aggregate_metric

CELL = "width=2/batch_size=8/label_noise=0.0/train_fraction=1.0/learning_rate=0.1/weight_decay=0.0"


@pytest.fixture
def dataset_path(tmp_path):
    config = {
        "grid": {
            "width": [2],
            "batch_size": [8],
            "label_noise": [0.0],
            "train_fraction": [1.0],
            "learning_rate": [0.1],
            "weight_decay": [0.0],
        },
        "seeds": [0, 1],
        "train": {"momentum": 0.9},
    }
    path = tmp_path / "dataset.nc"
    write_dataset(merge_metrics([aggregate_metric(m, None, config) for m in METRICS], config), path)
    return path


def foreign_files(tmp_path, dataset_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    return {"text": text, "netcdf": dataset_path}


# (argv builder, what the one-line error must say)
MISUSE = [
    (lambda d, f: ["classify", "--dataset", str(d), "--out", str(d), "--settings", "{}"], "is also an input"),
    (
        lambda d, f: ["classify", "--dataset", str(d), "--out", str(d.parent / "p.nc"), "--settings", '{"resamples": 3}'],
        "unknown key(s) ['resamples']",
    ),
    (lambda d, f: ["classify", "--dataset", str(d), "--out", str(d.parent / "p.nc"), "--settings", "{not json"], "not valid JSON"),
    (lambda d, f: ["hessian", "--checkpoints", str(f["text"]), "--out", str(d.parent / "h.json")], "is not a readable lltax checkpoint"),
    (lambda d, f: ["hessian", "--checkpoints", str(f["netcdf"]), "--out", str(d.parent / "h.json")], "is not a readable lltax checkpoint"),
    (lambda d, f: ["evaluate", "--checkpoints", str(d.parent / "missing.pt"), "--out", str(d.parent / "e.json")], "does not exist"),
    (
        lambda d, f: ["curve-eval", "--curves", str(f["text"]), "--settings", "{}", "--out", str(d.parent / "c.json")],
        "is not a readable lltax curve file",
    ),
    (
        lambda d, f: [
            "train",
            "--cell",
            CELL,
            "--seeds",
            "0",
            "--dataset-settings",
            '{"name": "mnist1d", "augmnt": true}',
            "--model",
            "mlp",
            "--settings",
            "{}",
            "--out-dir",
            str(d.parent / "t"),
        ],
        "unknown key(s) ['augmnt']",
    ),
    (
        lambda d, f: [
            "train",
            "--cell",
            CELL,
            "--seeds",
            "0",
            "--dataset-settings",
            "mnist1d",
            "--model",
            "mlp",
            "--settings",
            "{}",
            "--out-dir",
            str(d.parent / "t"),
        ],
        "not valid JSON",
    ),
    (
        lambda d, f: ["plot", "--dataset", str(f["text"]), "--phases", str(d), "--settings", "{}", "--out-dir", str(d.parent / "figs")],
        "notes.txt",
    ),
]


@pytest.mark.parametrize("build, message", MISUSE)
def test_misuse_gives_one_line_naming_the_problem(tmp_path, dataset_path, capsys, build, message):
    before = dataset_path.read_bytes()
    assert main(build(dataset_path, foreign_files(tmp_path, dataset_path))) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("lltax ") and ": error: " in error and message in error, error
    assert "Traceback" not in capsys.readouterr().err
    assert dataset_path.read_bytes() == before  # the input is untouched


def test_debug_shows_the_traceback(tmp_path, dataset_path):
    with pytest.raises(ValueError, match="is also an input"):
        main(["--debug", "classify", "--dataset", str(dataset_path), "--out", str(dataset_path), "--settings", "{}"])


@pytest.mark.parametrize("seed", ["-5", "two"])
def test_bad_seed_is_an_argument_error(tmp_path, seed, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "train",
                "--cell",
                CELL,
                "--seeds",
                seed,
                "--dataset-settings",
                "{}",
                "--model",
                "mlp",
                "--settings",
                "{}",
                "--out-dir",
                str(tmp_path),
            ]
        )
    assert exit_info.value.code == 2
    assert "seed must be an integer >= 0" in capsys.readouterr().err


def test_long_json_arguments_are_not_taken_for_paths(tmp_path, dataset_path):
    """A merge's --config-json is longer than a file name may be: it must not break the
    output-is-not-an-input check (it did, with 'File name too long')."""
    from lltax.grid import canonical_json

    table = tmp_path / "hessian.nc"
    config = {
        "grid": {
            "width": [2],
            "batch_size": [8],
            "label_noise": [0.0],
            "train_fraction": [1.0],
            "learning_rate": [0.1],
            "weight_decay": [0.0],
        },
        "seeds": [0, 1],
        "train": {"momentum": 0.9},
        "padding": "x" * 400,
    }
    write_dataset(aggregate_metric("hessian", None, config), table)
    assert main(["merge", "--tables", str(table), "--config-json", canonical_json(config), "--out", str(tmp_path / "merged.nc")]) == 0
