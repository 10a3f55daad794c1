"""Config validation, grid expansion and cell paths."""

from pathlib import Path

import pytest
import yaml

from lltax.config.grid import canonical_value, cell_path, expand_grid, format_value, parse_cell_path, seed_pairs
from lltax.config.schema import ConfigError, load_config, read_config_file, validate_config
from lltax.contract import AXES

REPO = Path(__file__).resolve().parents[1]


def nested(depth: int) -> list:
    value: list = [4]
    for _ in range(depth):
        value = [value]
    return value


def aliased(levels: int) -> list:
    """What YAML aliases of aliases make: one list shared at every level, 9**levels leaves."""
    value: list = list(range(9))
    for _ in range(levels):
        value = [value] * 9
    return value


def minimal(**overrides):
    config = {"experiment": "t", "grid": {"width": [2, 4], "batch_size": [16, 64]}}
    config.update(overrides)
    return config


def test_default_config_is_valid():
    config = load_config(REPO / "config.yaml")
    assert config["dataset"]["name"] == "mnist1d"
    assert set(config["grid"]) == set(AXES)
    assert len(config["seeds"]) >= 2


def test_defaults_filled_and_seeds_expanded():
    config = validate_config(minimal(seeds=3))
    assert config["seeds"] == [0, 1, 2]
    assert config["grid"]["label_noise"] == [0.0]
    assert config["hessian"]["backend"] == "native"
    assert config["curves"]["points"] == [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize(
    "config, fragments",
    [
        (minimal(hesian={}), ["hesian", "allowed keys", "hessian"]),  # typo at top level
        (minimal(train={"epoch": 3}), ["train", "epoch", "epochs"]),  # typo in a section
        (minimal(grid={"width": [-4], "batch_size": [16]}), ["grid.width.0", "-4"]),
        (minimal(grid={"width": [4], "batch_size": [16], "label_noise": [1.0]}), ["grid.label_noise.0", "1.0"]),
        (minimal(grid={"width": [4], "batch_size": [16], "label_noise": [-0.1]}), ["grid.label_noise.0"]),
        (minimal(dataset={"name": "imagenet"}), ["dataset.name", "imagenet", "mnist1d", "cifar10"]),
        (minimal(model={"name": "vit"}), ["model.name", "vit", "resnet18"]),
        (minimal(grid={"width": [], "batch_size": [16]}), ["grid.width"]),
        (minimal(grid={"width": [4], "batch_size": [16], "depth": [2]}), ["grid", "depth", "width"]),
        (minimal(device="tpu"), ["device", "tpu", "cuda"]),
        (minimal(seeds=1), ["seeds", "at least 2"]),
        (minimal(curves={"points": [0.2, 0.5]}), ["curves.points", "0 and 1"]),
        (minimal(plots={"x": "depth"}), ["plots.x", "depth"]),
        (minimal(grid={"width": [4, 4], "batch_size": [16]}), ["grid.width", "repeated"]),
        ({"grid": {"width": [4]}}, ["experiment"]),
        (minimal(experiment="tiny\n"), ["experiment", "'tiny\\n'"]),  # `$` matches before a trailing newline
        (minimal(experiment=".."), ["experiment", "'..'"]),  # would write into results_dir's parent
        (minimal(experiment="."), ["experiment"]),
        (minimal(results_dir=""), ["results_dir", "non-empty"]),  # would write to /<experiment>/
        (minimal(data_dir="  "), ["data_dir", "non-empty"]),
        (
            minimal(dataset={"label_noise_mode": "exact"}, grid={"width": [4], "batch_size": [16], "label_noise": [1.0]}),
            ["label_noise_mode: paper"],
        ),
        (minimal(classify={"sharpness_threshold": "auto"}), ["classify.sharpness_threshold", "auto"]),
        (minimal(threads=0), ["threads"]),
        (minimal(seeds=[]), ["seeds", "empty", "distinct integers in [0,"]),
        (minimal(seeds=-1), ["seeds", "-1 seeds", "number of seeds >= 1"]),
        (minimal(seeds=[1, 1]), ["seeds", "[1] are repeated"]),
        (minimal(seeds=[0.5, 2]), ["seeds", "[0.5] are not integers"]),
        (minimal(seeds="abc"), ["seeds", "'abc'"]),
        (minimal(plots={"line_metric": "hessian_trce"}), ["plots.line_metric", "hessian_trce", "hessian_trace"]),
        (minimal(plots={"line_group": "depth"}), ["plots.line_group", "depth"]),
        (minimal(grid={"width": [4], "batch_size": [5000]}), ["grid.batch_size", "5000", "4000"]),
        (minimal(grid={"width": [4], "batch_size": [64], "train_fraction": [0.01]}), ["grid.batch_size", "40 training samples"]),
        (minimal(grid={"width": [4], "batch_size": [16], "train_fraction": [0.0001]}), ["grid.train_fraction", "leaves none"]),
        (minimal(curves={"batch_size": 8000}), ["curves.batch_size", "8000"]),
        (minimal(grid={"width": [4], "batch_size": [16], "learning_rate": [float("nan")]}), ["grid.learning_rate.0", "nan", "finite"]),
        (minimal(grid={"width": [4], "batch_size": [16], "weight_decay": [float("inf")]}), ["grid.weight_decay.0", "inf"]),
        (minimal(landscape={"range_1d": [1.5, -0.5]}), ["landscape.range_1d", "low < high"]),
        (minimal(hessian={"top_k": 20, "max_iterations": 10}), ["hessian.top_k", "max_iterations"]),
        (minimal(grid={"width": [100000], "batch_size": [16]}), ["grid.width", "100000", "parameters", "GB"]),
        # values that used to pass validation and `snakemake -n` and fail in the jobs
        (minimal(results_dir="-rd"), ["results_dir", "starts with '-'", "absolute path"]),  # argparse would read it as an option
        (minimal(results_dir="./-rd"), ["results_dir", "starts with '-'"]),  # normalized, it is -rd again
        (minimal(results_dir=".", experiment="-x"), ["results_dir", "experiment", "starts with '-'"]),
        (minimal(hessian={"seed": 2**64}), ["hessian.seed"]),
        (minimal(data_dir="--help"), ["data_dir", "starts with '-'"]),
        (minimal(results_dir="runs/{cell}"), ["results_dir", "wildcard"]),
        (minimal(results_dir="runs/{x}/a"), ["results_dir", "braces"]),
        (minimal(experiment="e" * 300), ["experiment", "300 characters", "255"]),
        (minimal(results_dir="r/" + "d" * 300), ["results_dir", "longer than 255 bytes"]),
        (minimal(grid={"width": nested(5000), "batch_size": [16]}), ["grid.width", "nested more than 20 levels"]),
        (minimal(model={"name": "lltax.models:resnet1d\n"}), ["model.name", "line break"]),
        (minimal(seeds=[0, 18446744073709551616]), ["seeds", "[18446744073709551616]", "int64"]),
        (minimal(seeds=10**9), ["seeds", "at most 100000 seeds"]),
        (minimal(grid={"width": list(range(1, 101)), "batch_size": list(range(16, 116))}), ["10,000 cells", "max_cells"]),
        (minimal(plots={"dpi": aliased(9)}), ["more than 1,000,000 values"]),  # YAML aliases inside aliases
        (minimal(landscape={"directions": "pca"}), ["landscape.directions", "train.trajectory: true"]),
        (minimal(landscape={"directions": "curve"}, curves={"enabled": False}), ["landscape.directions", "curves.enabled: true"]),
        (
            minimal(landscape={"directions": "pca"}, train={"trajectory": True}, checkpoints={"path": "c/{width}/{batch_size}/{seed}.pt"}),
            ["landscape.directions", "checkpoints trained elsewhere"],
        ),
        (minimal(landscape={"color_limits": [2.0, 1.0]}), ["landscape.color_limits", "0 < low < high"]),
    ],
)
def test_bad_config_names_the_key(config, fragments):
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    message = str(error.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_own_builders_must_import_as_the_jobs_import_them(tmp_path, monkeypatch):
    """Checked by the Snakefile before any job, in a fresh interpreter without the working
    directory on its path (as the `lltax` script runs)."""
    from lltax.config.checks import check_builders

    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", tests)
    check_builders(validate_config(minimal(model={"name": "test_models:tiny_relu_net"})))
    for config, message in (
        (minimal(model={"name": "no_such_module_xyz:build"}), "model.name': the jobs cannot import 'no_such_module_xyz'"),
        (minimal(model={"name": "test_models:no_such_builder"}), "model.name': test_models has no callable 'no_such_builder'"),
        (minimal(dataset={"name": "no_such_module_xyz:load"}), "dataset.name': the jobs cannot import"),
    ):
        with pytest.raises(ConfigError, match=message):
            check_builders(validate_config(config))
    # A module only in the working directory: importable here, not by the jobs.
    (tmp_path / "only_here.py").write_text("def build(width, num_classes, input_shape):\n    return None\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTHONPATH")
    with pytest.raises(ConfigError, match="cannot import 'only_here'"):
        check_builders(validate_config(minimal(model={"name": "only_here:build"})))


def test_a_deeply_nested_config_file_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("experiment: x\ngrid:\n  width: " + "[" * 5000 + "4" + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        read_config_file(path)


def test_the_deepest_path_must_fit_the_file_system():
    from lltax.config.checks import check_path_length

    check_path_length("results/demo", ["width=16/batch_size=128"])
    with pytest.raises(ConfigError, match="leaves no room for the cell folders"):
        check_path_length("/" + "/".join(["d" * 200] * 20), ["width=16/batch_size=128"])


def test_integer_valued_floats_are_integers():
    config = validate_config(minimal(grid={"width": [4.0, 8], "batch_size": [16.0]}, seeds=3.0, train={"epochs": 2.0}))
    assert config["grid"]["width"] == [4, 8] and all(isinstance(v, int) for v in config["grid"]["width"])
    assert config["seeds"] == [0, 1, 2] and config["train"]["epochs"] == 2 and isinstance(config["train"]["epochs"], int)
    with pytest.raises(ConfigError, match="grid.width.0"):
        validate_config(minimal(grid={"width": [4.5], "batch_size": [16]}))


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_canonical_floats_round_trip():
    assert canonical_value(0.1 + 0.2) == 0.3
    assert format_value(0.1 + 0.2) == "0.3"
    assert format_value(5e-4) == "0.0005"
    assert format_value(1e-5) == "1e-05"
    assert format_value(16) == "16"
    for value in (0.1 + 0.2, 5e-4, 1e-5, 0.9999999, 3.0):
        assert float(format_value(value)) == canonical_value(value)


def test_grid_expansion_and_paths_round_trip():
    config = validate_config(minimal(grid={"width": [2, 4], "batch_size": [16, 64], "label_noise": [0.1 + 0.2, 0.0]}))
    cells = expand_grid(config["grid"])
    assert len(cells) == 2 * 2 * 2
    assert len({cell_path(c) for c in cells}) == len(cells)
    for cell in cells:
        path = cell_path(cell)
        assert path.split("/")[0].startswith("width=")
        assert parse_cell_path(path) == cell
        assert parse_cell_path(f"results/x/{path}/seed=3/model.pt") == {**cell, "seed": 3}
    assert "label_noise=0.3/" in cell_path(cells[0])


def test_parse_cell_path_rejects_incomplete():
    with pytest.raises(ValueError, match="width"):
        parse_cell_path("batch_size=16/seed=0")


def test_seed_pairs():
    assert seed_pairs([0, 1, 2], "first") == [(0, 1)]
    assert seed_pairs([0, 1, 2], "consecutive") == [(0, 1), (1, 2)]
    assert seed_pairs([0, 1, 2], "all") == [(0, 1), (0, 2), (1, 2)]


def test_readme_documents_every_config_key():
    """docs/configuration.md carries the table generated from the schema: one source for every key."""
    from lltax.config.schema import load_schema, reference_table

    readme = (REPO / "docs" / "configuration.md").read_text()
    table = reference_table()
    assert table in readme, "docs/configuration.md's configuration table is stale: paste the output of `python -m lltax.config.schema`"
    for section, sub in load_schema()["properties"].items():
        for key in sub.get("properties", {}) or [None]:
            assert (f"`{section}.{key}`" if key else f"`{section}`") in table


def test_example_configs_are_valid():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        validate_config(yaml.safe_load(path.read_text()))


def test_repeated_yaml_keys_are_refused(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("experiment: t\ngrid:\n  width: [2]\n  batch_size: [16]\ngrid:\n  width: [4]\n")
    with pytest.raises(ConfigError, match="'grid' appears twice .*line 5"):
        load_config(path)
    path.write_text("experiment: t\ngrid:\n  width: [2]\n  width: [4]\n  batch_size: [16]\n")
    with pytest.raises(ConfigError, match="'width' appears twice"):
        load_config(path)


def test_a_canonical_path_never_reads_as_an_option(tmp_path, monkeypatch):
    from lltax.config.grid import canonical_path

    monkeypatch.chdir(tmp_path)
    assert canonical_path("./data/") == "data" and canonical_path(str(tmp_path / "data")) == "data"
    assert canonical_path("./-x") == str(tmp_path / "-x")  # relative, it would be the option -x
