"""Issue 30, one row per case: what a careless or hostile user does to a run, and what lltax does
about it (nothing of the user's deleted, nothing stale or foreign merged, no size or value a job
cannot survive). Each row failed on the code before the issue's fixes.

The rows share one module fixture: a tiny cell's data and width-2 models (untrained ones as
files "trained elsewhere", and lltax's own checkpoints of one epoch), so every row is cheap;
the rows that run Snakemake are marked slow, as the workflow tests are.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch

from lltax import cli
from lltax.config.grid import canonical_json, cell_path
from lltax.config.schema import ConfigError, section_settings
from lltax.models import build_model

CELL = {"width": 2, "batch_size": 64, "label_noise": 0.0, "train_fraction": 0.1, "learning_rate": 0.05, "weight_decay": 0.0}
CELL_PATH = cell_path(CELL)
DATASET = {"name": "mnist1d", "download": False, "augment": False, "label_noise_mode": "exact"}
TRAIN = section_settings("train", {"epochs": 1})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A data folder, three untrained width-2 MLPs saved as bare state dicts (files trained
    elsewhere), and two seeds of the cell trained by lltax for one epoch."""
    from lltax.data.cells import load_dataset
    from lltax.jobs.train import run_train_job

    root = tmp_path_factory.mktemp("reliability")
    data_dir = str(root / "data")
    data = load_dataset("mnist1d", root=data_dir, train_fraction=CELL["train_fraction"])
    files = []
    for seed in range(3):
        torch.manual_seed(seed)
        path = root / "runs" / f"w2_s{seed}.pt"
        path.parent.mkdir(exist_ok=True)
        torch.save(build_model("mlp", 2, data.num_classes, data.input_shape).state_dict(), path)
        files.append(path)
    trained = root / "trained"
    for seed in range(2):
        run_train_job(
            cell=CELL,
            seed=seed,
            dataset=DATASET,
            model_name="mlp",
            train_settings=TRAIN,
            data_dir=data_dir,
            device="cpu",
            out_dir=trained / CELL_PATH / f"seed={seed}",
        )
    return {"root": root, "data_dir": data_dir, "files": files, "trained": trained}


def diagnosis_config(tiny, tmp_path: Path, name: str = "mine", **extra) -> Path:
    config = {
        "experiment": name,
        "results_dir": str(tmp_path / "results"),
        "data_dir": tiny["data_dir"],
        "model": {"name": "mlp"},
        "grid": {axis: [value] for axis, value in CELL.items()},
        "hessian": {"num_samples": 32, "chunk_size": 32, "max_iterations": 10, "trace_probes": 3},
        "cka": {"num_samples": 64, "batch_size": 32},
        "curves": {"epochs": 1, "batch_size": 64, "points": [0.0, 0.5, 1.0]},
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(config))
    return path


def diagnose(config: Path, *files) -> int:
    return cli.run(["diagnose", "--config", str(config), "--files", *map(str, files), "--device", "cpu", "--threads", "1"])


def import_files(tiny, files, out: Path) -> list[Path]:
    dirs = [out / CELL_PATH / f"seed={seed}" for seed in range(len(files))]
    argv = ["import", "--cell", CELL_PATH, "--seeds", *map(str, range(len(files))), "--files", *map(str, files)]
    argv += ["--dataset-settings", canonical_json(DATASET), "--model", "mlp", "--settings", canonical_json(TRAIN)]
    argv += ["--data-dir", tiny["data_dir"], "--device", "cpu", "--out-dir", *map(str, dirs), "--threads", "1"]
    cli.run(argv)
    return [d / "checkpoint.json" for d in dirs]


# --- 1-3: data loss and wrong diagnoses ---------------------------------------------------------


def case_1_diagnose_keeps_checkpoints_saved_in_an_earlier_diagnosis_folder(tiny, tmp_path):
    config = diagnosis_config(tiny, tmp_path)
    folder = tmp_path / "results" / "mine"
    folder.mkdir(parents=True)
    (folder / "diagnosis.json").write_text("{}")  # an earlier diagnosis wrote this folder
    mine = [folder / f"w2_s{seed}.pt" for seed in range(2)]
    for file, source in zip(mine, tiny["files"]):
        shutil.copy(source, file)
    with pytest.raises(ValueError, match=rf"did not write: {folder / 'w2_s0.pt'}, {folder / 'w2_s1.pt'}; nothing was deleted"):
        diagnose(config, *mine)
    assert all(file.exists() for file in mine)


def case_2_diagnose_keeps_a_workflows_folder_whose_marker_survived(tiny, tmp_path):
    from lltax.jobs.diagnose import claim_folder

    folder = tmp_path / "results" / "mine"
    own = [folder / "diagnosis.json", folder / "dataset.nc", folder / CELL_PATH / "seed=0" / "hessian.json"]
    workflow = [folder / "figures" / "phases.png", folder / "logs" / "merge.log", folder / "benchmarks" / "merge.tsv"]
    for path in own + workflow:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    with pytest.raises(ValueError, match=r"holds 3 file\(s\) lltax diagnose did not write: .*benchmarks/merge.tsv, .*figures/phases.png"):
        diagnose(diagnosis_config(tiny, tmp_path), *tiny["files"][:2])
    assert all(path.exists() for path in own + workflow)
    # A folder of the diagnosis's own files alone is emptied: what it wrote, and nothing else.
    for path in workflow:
        path.unlink()
    claim_folder(folder)
    assert not folder.exists() or not any(folder.rglob("*"))


def case_3_the_same_checkpoint_as_two_seeds_is_refused_naming_both(tiny, tmp_path):
    from lltax.config.grid import check_checkpoint_template

    config = diagnosis_config(tiny, tmp_path)
    first = tiny["files"][0]
    link, copy = tmp_path / "link.pt", tmp_path / "copy.pt"
    link.symlink_to(first)
    shutil.copy(first, copy)
    for second in (first, link, copy):
        with pytest.raises(ConfigError, match=rf"checkpoints {first} and {second} are the same file or have the same content"):
            diagnose(config, first, second)
    assert not (tmp_path / "results").exists()  # refused before anything is written
    with pytest.raises(ValueError, match=rf"checkpoints {first} and {copy} \(seeds 0 and 1\) are the same file"):
        import_files(tiny, [first, copy], tmp_path / "imported")
    # A template whose two seeds are links to one file.
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "s0.pt").symlink_to(first)
    (runs / "s1.pt").symlink_to(first)
    grid = {axis: [value] for axis, value in CELL.items()}
    with pytest.raises(ConfigError, match=r"checkpoints.path.*names .*s1.pt.* the same file as .*s0.pt"):
        check_checkpoint_template(str(runs / "s{seed}.pt"), grid, [0, 1])


# --- 5-6: stale or foreign results merged ---------------------------------------------------------


def run_config(**sections) -> dict:
    """The resolved config of the tiny cell, as a workflow of it would be given."""
    from lltax.config.schema import validate_config

    grid = {axis: [value] for axis, value in CELL.items()}
    return validate_config({"experiment": "r", "model": {"name": "mlp"}, "grid": grid, "seeds": 2, "train": {"epochs": 1}, **sections})


def copy_trained(tiny, results: Path) -> Path:
    shutil.copytree(tiny["trained"], results)
    return results


def case_5_a_model_and_train_json_copied_from_a_run_of_another_config_are_refused(tiny, tmp_path):
    from lltax.results.tables import aggregate_metric

    results = copy_trained(tiny, tmp_path / "results")  # trained for 1 epoch; this run's config says 2
    model = results / CELL_PATH / "seed=0" / "model.pt"
    with pytest.raises(ValueError, match=rf"^{model} was computed with train.epochs = 1, but the config it is merged under has 2"):
        aggregate_metric("train", results, run_config(train={"epochs": 2}))
    # Every metric of the cell: its records come from that model.
    folder = results / CELL_PATH
    (folder / "seed=0" / "hessian.json").write_text(json.dumps({"cell": CELL, "seed": 0, "checkpoint_sha256": "1" * 64, "settings": {}}))
    pairs = [{"seed_a": 0, "seed_b": 1, "cka": 0.5}]
    (folder / "cka.json").write_text(
        json.dumps({"cell": CELL, "checkpoints_sha256": {"0": "1" * 64, "1": "1" * 64}, "pairs": pairs, "settings": {}})
    )
    for metric in ("hessian", "cka"):
        with pytest.raises(ValueError, match=r"model.pt was computed with train.epochs = 1"):
            aggregate_metric(metric, results, run_config(train={"epochs": 2}))
    aggregate_metric("train", results, run_config())  # the config it was trained with: merged
    with pytest.raises(ValueError, match=r"model.pt was computed with dataset.label_noise_mode = 'exact'"):
        aggregate_metric("train", results, run_config(dataset={"name": "mnist1d", "label_noise_mode": "paper"}))


def case_6_a_record_computed_with_other_settings_is_refused_naming_file_and_key(tiny, tmp_path):
    from lltax.results.records import METRIC_SECTIONS, check_record_settings, expected_settings
    from lltax.results.tables import aggregate_metric

    results = copy_trained(tiny, tmp_path / "results")
    hessian = {"num_samples": 40, "chunk_size": 40, "max_iterations": 5, "trace_probes": 3}
    seeds = [results / CELL_PATH / f"seed={seed}" for seed in range(2)]
    # cli.main: what the workflow's shell lines run (`lltax hessian ...`)
    assert not cli.main(
        ["hessian", "--checkpoints", *(str(s / "model.pt") for s in seeds), "--settings", json.dumps(hessian)]
        + ["--data-dir", tiny["data_dir"], "--device", "cpu", "--threads", "1", "--out", *(str(s / "hessian.json") for s in seeds)]
    )
    aggregate_metric("hessian", results, run_config(hessian=hessian))
    record = seeds[0] / "hessian.json"
    with pytest.raises(
        ValueError, match=rf"^{record} was computed with hessian.num_samples = 40, but the config it is merged under has 50"
    ):
        aggregate_metric("hessian", results, run_config(hessian={**hessian, "num_samples": 50}))
    # Every metric with settings: its record's own settings against the config's section.
    config = run_config(basin={"enabled": True}, fge={"enabled": True, "cycle_epochs": 2})
    changed = {
        "hessian": ("top_k", 3),
        "basin": ("rise", 0.5),
        "cka": ("num_samples", 7),
        "ensembles": ("cycles", 9),
        "curves": ("seed", 5),
    }
    for metric, (name, _) in METRIC_SECTIONS.items():
        expected = expected_settings(metric, config)
        own = dict(expected[name])
        record = {"settings": own, "fit_settings": own}
        check_record_settings(record, Path(metric), metric, expected)
        key, value = changed[metric]
        with pytest.raises(ValueError, match=rf"^{metric} was computed with {name}.{key} = {value}, but"):
            check_record_settings({**record, "settings": {**own, key: value}}, Path(metric), metric, expected)
    with pytest.raises(ValueError, match=r"curves was computed with curves.bends = 9"):  # the curve's fitting settings
        own = expected_settings("curves", config)["curves"]
        check_record_settings(
            {"settings": own, "fit_settings": {**own, "bends": 9}}, Path("curves"), "curves", expected_settings("curves", config)
        )


def case_7_a_record_of_code_edited_since_its_job_started_is_refused(tiny, tmp_path):
    """Every record names the code that computed it (runtime.code: the command and the SHA-256
    of its sources when the job started); merged under other code, it is refused by name."""
    from lltax.results.tables import aggregate_metric
    from lltax.runtime.code_sources import sources_sha256

    results = copy_trained(tiny, tmp_path / "results")
    hessian = {"num_samples": 40, "chunk_size": 40, "max_iterations": 5, "trace_probes": 3}
    seeds = [results / CELL_PATH / f"seed={seed}" for seed in range(2)]
    # cli.main: what the workflow's shell lines run (`lltax hessian ...`)
    assert not cli.main(
        ["hessian", "--checkpoints", *(str(s / "model.pt") for s in seeds), "--settings", json.dumps(hessian)]
        + ["--data-dir", tiny["data_dir"], "--device", "cpu", "--threads", "1", "--out", *(str(s / "hessian.json") for s in seeds)]
    )
    record = json.loads((seeds[0] / "hessian.json").read_text())
    assert record["runtime"]["code"] == {"command": "hessian", "sources_sha256": sources_sha256("hessian")}
    aggregate_metric("hessian", results, run_config(hessian=hessian))
    record["runtime"]["code"]["sources_sha256"] = "0" * 64  # as if metrics/hessian.py was edited while the job ran
    (seeds[0] / "hessian.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=rf"^{seeds[0] / 'hessian.json'} was computed by other code than this lltax's `lltax hessian`"):
        aggregate_metric("hessian", results, run_config(hessian=hessian))


# --- 9-11: sizes and values a job cannot survive ----------------------------------------------------


def demo_config(**sections):
    import yaml

    from lltax.config.schema import validate_config
    from lltax.runtime.job_time import check_job_time

    base = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    for name, values in sections.items():
        base[name] = {**(base.get(name) or {}), **values} if isinstance(values, dict) else values
    config = validate_config(base)
    check_job_time(config)  # what the workflow adds when it plans (rules/common.smk)
    return config


def refused(message: str, **sections) -> None:
    with pytest.raises(ConfigError, match=message):
        demo_config(**sections)


def case_8_plot_and_classify_refuse_a_foreign_or_edited_dataset(tiny, tmp_path):
    """plot draws phases.nc only with the dataset.nc it was classified from; classify refuses
    values outside the contract's ranges and text where numbers belong, naming the variable."""
    import xarray as xr
    from test_phases import KNOWN, empty_dataset, set_cell

    from lltax.results.netcdf import write_dataset

    dataset = empty_dataset(list(KNOWN))
    dataset["diverged"][:] = 0.0
    for width, (_, values) in KNOWN.items():
        set_cell(dataset, width, **values)
    write_dataset(dataset, tmp_path / "dataset.nc")
    assert cli.run(["classify", "--dataset", "dataset.nc", "--out", "phases.nc", "--settings", "{}"]) == 0
    plots = canonical_json(section_settings("plots", {"x": "width", "y": "batch_size"}))
    other = dataset.copy(deep=True)
    other["hessian_top_eigenvalue"].values[...] = 1.0  # another run of the same grid
    write_dataset(other, tmp_path / "other.nc")
    with pytest.raises(ValueError, match=r"phases.nc was not classified from other.nc \(variable 'hessian_top_eigenvalue'"):
        cli.run(["plot", "--dataset", "other.nc", "--phases", "phases.nc", "--settings", plots, "--out-dir", "figures"])
    assert not (tmp_path / "figures").exists()
    edited = dataset.copy(deep=True)
    edited["cka"].values[...] = 5.0
    write_dataset(edited, tmp_path / "edited.nc")
    with pytest.raises(ValueError, match=r"variable 'cka' has values in \[5, 5\], outside its valid range"):
        cli.run(["classify", "--dataset", "edited.nc", "--out", "p2.nc", "--settings", "{}"])
    text = dataset.copy(deep=True)
    text["mode_connectivity"] = text["mode_connectivity"].astype(str)
    write_dataset(xr.Dataset(text.data_vars, attrs=dataset.attrs), tmp_path / "text.nc")
    with pytest.raises(ValueError, match=r"variable 'mode_connectivity' holds .* values, not numbers"):
        cli.run(["classify", "--dataset", "text.nc", "--out", "p3.nc", "--settings", "{}"])
    assert not (tmp_path / "p2.nc").exists() and not (tmp_path / "p3.nc").exists()


def case_9_landscape_sizes_and_ranges_are_bounded_naming_the_key_and_estimate(tiny, tmp_path):
    refused(
        r"'landscape.points_2d': 100000 makes each landscape job hold about 640 GB of results .* memory_budget_gb 30",
        landscape={"points_2d": 100000},
    )
    refused(r"'landscape.ratio_points': 100000 makes each landscape job hold about 640 GB", landscape={"ratio_points": 100000})
    refused(
        r"'landscape.points_1d': 100000000 makes a landscape job take about 19\d days on cpu .* beyond the 7 days",
        landscape={"points_1d": 10**8},
    )
    refused(r"'landscape.range_2d': 1e\+308 is beyond 1e\+06 times the weights' norm", landscape={"range_2d": 1e308})
    refused(r"'landscape.range_1d': -1e\+308 is beyond", landscape={"range_1d": [-1e308, 1e308]})
    with pytest.raises(ConfigError, match=r"--settings key 'landscape.range_2d': 1e\+308 is beyond"):  # a hand-run job too
        section_settings("landscape", {"range_2d": 1e308})
    demo_config(landscape={"points_2d": 41, "points_1d": 51})  # sizes a job survives pass


def case_10_basin_and_fge_sizes_ranges_and_relations_are_checked_at_config_time(tiny, tmp_path):
    from torch import nn

    from lltax.metrics.surface import basin_radii

    refused(r"'basin.coarse': 5000 halvings of basin.max_radius", basin={"coarse": 5000})
    refused(r"'basin.convexity_points': 100000 makes each basin job hold about 640 GB", basin={"convexity_points": 100000})
    refused(r"'basin.max_radius': 1e\+300 is beyond", basin={"max_radius": 1e300})
    refused(r"'fge.cycle_epochs': 3 is odd", fge={"cycle_epochs": 3})
    refused(r"'fge.lr_min': 0.1 is above fge.lr_max 0.05", fge={"lr_min": 0.1, "lr_max": 0.05})
    # A loss that overflows to NaN along a ray is past the rise, not a flat basin up to max_radius.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    direction = {name: 10 * torch.ones_like(p) for name, p in model.named_parameters()}  # 1e39: inf float32 weights
    inputs, targets = torch.randn(8, 4), torch.randint(0, 3, (8,))
    radii, censored = basin_radii(model, [direction], inputs, targets, rise=0.1, max_radius=1e38, coarse=1, refine=2)
    assert not censored.any() and (radii < 1e38).all()


def case_11_a_model_whose_outputs_are_not_finite_has_nan_accuracies_marked_diverged(tiny, tmp_path):
    from torch import nn

    from lltax.jobs.fge import fge_record
    from lltax.metrics.ensembles import ensemble_accuracy
    from lltax.metrics.evaluate import evaluate_model

    model = nn.Linear(4, 3)
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    loss, accuracy = evaluate_model(model, torch.randn(8, 4), torch.zeros(8, dtype=torch.long))
    assert math.isnan(loss) and math.isnan(accuracy)
    assert math.isnan(ensemble_accuracy([torch.full((8, 3), float("nan"))], torch.zeros(8, dtype=torch.long)))
    paths = [str(tiny["trained"] / CELL_PATH / f"seed={seed}" / "model.pt") for seed in range(2)]
    settings = {"cycles": 1, "cycle_epochs": 2, "lr_max": 1e30, "lr_min": 1e-4, "curve_points": 2, "seed": 0}
    record = fge_record(paths, settings, torch.device("cpu"), tiny["data_dir"])
    assert record["fge_diverged"] and math.isnan(record["fge_test_acc"]) and math.isnan(record["fge_test_acc_by_snapshots"][0])
    assert not math.isnan(record["seed_ensemble_test_acc"])  # the seeds themselves are fine


# --- 15: messages ------------------------------------------------------------------------------------


def case_15_bad_command_line_values_are_named_not_tracebacks(tiny, tmp_path):
    from lltax.cli import main

    with pytest.raises(SystemExit):
        main(["--log-level", "FOO", "distance", "--checkpoints", "a", "--out", "b"])
    grid = {axis: [value] for axis, value in CELL.items()}
    out = str(tmp_path / "t.nc")
    for config, message in (
        ({"grid": grid, "seeds": "a"}, "config key 'seeds': 'a' is neither a count nor a list of seeds"),
        (
            {"grid": {**grid, "learning_rate": [float("nan")]}, "seeds": 2},
            "config key 'grid.learning_rate': \\[nan\\] is not a list of finite",
        ),
    ):
        argv = ["aggregate-metric", "--metric", "train", "--results-dir", str(tmp_path), "--config-json", json.dumps(config), "--out", out]
        with pytest.raises(ConfigError, match=message):
            cli.run(argv)
    # A YAML nested thousands deep is parsed by Snakemake before lltax sees it: a documented limit.
    assert "still ends in Snakemake's `RecursionError`" in (Path(__file__).resolve().parents[1] / "docs" / "running.md").read_text()


def workflow(tmp_path: Path, tiny, **config) -> Path:
    """The workflow copied into ``tmp_path`` with a one-cell config of the tiny MLP."""
    from workflow_runs import TINY, copy_workflow, write_config

    copy_workflow(tmp_path)
    (tmp_path / "data").symlink_to(tiny["data_dir"])
    grid = {axis: [value] for axis, value in CELL.items()}
    write_config(tmp_path, {**TINY, "experiment": "w", "model": {"name": "mlp"}, "grid": grid, **config})
    return tmp_path / "results" / "w"


def case_2_a_workflow_run_onto_a_diagnosis_folder_is_refused(tiny, tmp_path):
    from workflow_runs import snakemake

    results = workflow(tmp_path, tiny)
    results.mkdir(parents=True)
    (results / "diagnosis.json").write_text("{}")
    out = snakemake(tmp_path, "-n", check=False)
    assert out.returncode != 0 and f"{Path('results/w')} is the folder of an lltax diagnose" in out.stdout + out.stderr


def case_4_a_file_replaced_under_its_old_mtime_is_compared_by_content(tiny, tmp_path):
    from lltax.storage.checksums import current_checksum, file_checksum
    from lltax.storage.foreign_checkpoints import load_external_record

    files = [tmp_path / f"s{seed}.pt" for seed in range(2)]
    for file, source in zip(files, tiny["files"]):
        shutil.copy(source, file)
    records = import_files(tiny, files, tmp_path / "imported")
    assert current_checksum(files[0], records[0]) == file_checksum(files[0])
    before = os.stat(files[0])
    shutil.copyfile(tiny["files"][2], files[0])  # cp -p: new content, the old modification time
    os.utime(files[0], ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(files[0]).st_mtime_ns == before.st_mtime_ns
    assert current_checksum(files[0], records[0]) == file_checksum(tiny["files"][2])  # what the workflow's import param sees
    with pytest.raises(ValueError, match=rf"{files[0]} changed after .* rerun the workflow"):
        load_external_record(records[0])


def case_4_the_workflow_reruns_the_import_of_a_file_replaced_under_its_old_mtime(tiny, tmp_path):
    from workflow_runs import planned_jobs, snakemake

    runs = tmp_path / "runs"
    runs.mkdir()
    for seed in range(2):
        shutil.copy(tiny["files"][seed], runs / f"s{seed}.pt")
    workflow(tmp_path, tiny, checkpoints={"path": "runs/s{seed}.pt"})
    snakemake(tmp_path, "--until", "import_checkpoints")
    assert "import_checkpoints" not in planned_jobs(tmp_path)
    before = os.stat(runs / "s0.pt")
    shutil.copyfile(tiny["files"][2], runs / "s0.pt")
    os.utime(runs / "s0.pt", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert planned_jobs(tmp_path).get("import_checkpoints") == 1


def case_14_a_template_naming_the_workflows_own_records_is_refused_by_name(tiny, tmp_path):
    from workflow_runs import snakemake

    workflow(tmp_path, tiny, checkpoints={"path": "results/w/" + CELL_PATH + "/seed={seed}/checkpoint.json"})
    out = snakemake(tmp_path, "-n", check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "config key 'checkpoints.path': it names 2 file(s) inside the results folder" in text
    assert "CyclicGraphException" not in text


CASES = {
    name.removeprefix("case_"): function
    for name, function in sorted(globals().items(), key=lambda item: int(item[0].split("_")[1]) if item[0].startswith("case_") else 0)
    if name.startswith("case_")
}


SLOW = {"2_a_workflow_run_onto_a_diagnosis_folder_is_refused", "4_the_workflow_reruns_the_import_of_a_file_replaced_under_its_old_mtime"}
SLOW |= {"14_a_template_naming_the_workflows_own_records_is_refused_by_name"}


@pytest.mark.parametrize("case", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in CASES])
def test_issue_30(case, tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    CASES[case](tiny, tmp_path)
