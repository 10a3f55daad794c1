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
    # --cell values in the schema's range for their axis, and numbers where numbers belong
    (lambda d, f: ["train", "--cell", CELL.replace("learning_rate=0.1", "learning_rate=-1"), *train_args(d)], "--cell learning_rate=-1.0"),
    (lambda d, f: ["train", "--cell", CELL.replace("learning_rate=0.1", "learning_rate=-1"), *train_args(d)], "grid.learning_rate"),
    (lambda d, f: ["train", "--cell", CELL.replace("width=2", "width=abc"), *train_args(d)], "width='abc' is not an integer"),
    (lambda d, f: ["train", "--cell", CELL.replace("label_noise=0.0", "label_noise=1.5"), *train_args(d)], "grid.label_noise"),
    # --settings held to the config's rules: finite numbers, cross-key checks, bounded nesting
    (
        lambda d, f: [
            "curve-fit",
            "--checkpoints",
            str(f["text"]),
            str(f["text"]),
            "--settings",
            '{"learning_rate": NaN}',
            "--out",
            str(d.parent / "c.pt"),
        ],
        "'curves.learning_rate': nan is not a finite number",
    ),
    (
        lambda d, f: ["hessian", "--checkpoints", str(f["text"]), "--settings", '{"top_k": 100000}', "--out", str(d.parent / "h.json")],
        "hessian.top_k",
    ),
    (
        lambda d, f: [
            "landscape",
            "--checkpoints",
            str(f["text"]),
            str(f["text"]),
            "--settings",
            '{"range_1d": [1, 0]}',
            "--out",
            str(d.parent / "l.nc"),
        ],
        "landscape.range_1d",
    ),
    (
        lambda d, f: ["cka", "--checkpoints", str(f["text"]), "--settings", "[" * 100_000, "--out", str(d.parent / "k.json")],
        "nested too deeply",
    ),
    # a netCDF file that is not a metric table is named; a config nested too deeply is refused
    (
        lambda d, f: ["merge", "--tables", str(d), "--config-json", GRID_JSON, "--out", str(d.parent / "m.nc")],
        "dataset.nc is not a metric table",
    ),
    (
        lambda d, f: ["merge", "--tables", str(d), "--config-json", "[" * 100_000, "--out", str(d.parent / "m.nc")],
        "--config-json is nested too deeply",
    ),
    # outputs are not inputs, and each is named once
    (
        lambda d, f: [
            "cka",
            "--checkpoints",
            str(f["text"]),
            "--out",
            str(d.parent / "x.json"),
            "--distance-out",
            str(d.parent / "x.json"),
        ],
        "is named twice",
    ),
]


GRID_JSON = (
    '{"grid": {"width": [2], "batch_size": [8], "label_noise": [0.0], "train_fraction": [1.0], "learning_rate": [0.1], '
    '"weight_decay": [0.0]}, "seeds": 2}'
)


def train_args(d):
    return [
        "--seeds",
        "0",
        "--dataset-settings",
        '{"name": "mnist1d"}',
        "--model",
        "mlp",
        "--settings",
        "{}",
        "--out-dir",
        str(d.parent / "t"),
    ]


@pytest.mark.parametrize("build, message", MISUSE)
def test_misuse_gives_one_line_naming_the_problem(tmp_path, dataset_path, capsys, build, message):
    before = dataset_path.read_bytes()
    assert main(build(dataset_path, foreign_files(tmp_path, dataset_path))) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("lltax ") and ": error: " in error and message in error, error
    assert "Traceback" not in capsys.readouterr().err
    assert dataset_path.read_bytes() == before  # the input is untouched


def test_a_bug_keeps_its_traceback(tmp_path, dataset_path, monkeypatch):
    """Only bad input (ValueError, OSError) is one line: a KeyError inside lltax is a bug."""
    from lltax.jobs import classify as classify_job

    def broken(args):
        return {}["missing"]

    monkeypatch.setattr(classify_job, "run", broken)
    with pytest.raises(KeyError):
        main(["classify", "--dataset", str(dataset_path), "--out", str(tmp_path / "p.nc")])


def test_flags_are_not_abbreviated(tmp_path, dataset_path, capsys):
    with pytest.raises(SystemExit):
        main(["classify", "--data", str(dataset_path), "--out", str(tmp_path / "p.nc")])
    assert "--data" in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path, dataset_path):
    with pytest.raises(ValueError, match="is also an input"):
        main(["--debug", "classify", "--dataset", str(dataset_path), "--out", str(dataset_path), "--settings", "{}"])


@pytest.mark.parametrize("seed", ["-5", "two", "18446744073709551616"])
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
    assert "seed must be an integer in [0, 9223372036854775807]" in capsys.readouterr().err


def test_long_json_arguments_are_not_taken_for_paths(tmp_path, dataset_path):
    """A merge's --config-json is longer than a file name may be: it must not break the
    output-is-not-an-input check (it did, with 'File name too long')."""
    from lltax.config.grid import canonical_json

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


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    import torch

    from lltax.storage.checkpoint import save_checkpoint

    path = tmp_path / "model.pt"
    save_checkpoint(path, torch.nn.Linear(2, 2), {"seed": 0})
    assert main(["distance", "--checkpoints", str(path), "--device", "cuda", "--out", str(tmp_path / "d.json")]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "device 'cuda' was requested but torch" in error and "sees no CUDA device" in error


def test_a_bad_gpu_count_in_the_environment_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLTAX_GPUS", "abc")
    assert main(["distance", "--checkpoints", str(tmp_path / "m.pt"), "--device", "cuda", "--out", str(tmp_path / "d.json")]) == 1
    assert "LLTAX_GPUS='abc' is not a number of GPUs" in capsys.readouterr().err
