"""Experiment configuration: schema validation, lltax's own checks, grid expansion, cell paths.

A grid cell is one combination of the grid axes. Its artifacts live in a hive-style folder,
one level per axis in the fixed order of ``AXES`` (``width=16/batch_size=128/...``), so any
path parses back into exact coordinates. Floats get one canonical spelling
(``canonical_value``) so that paths, netCDF coordinates and config values round-trip.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import math
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from lltax.contract import AXES, DATASET_SIZES, INTEGER_AXES, VARIABLE_ATTRS

METRIC_SECTIONS = ("train", "hessian", "evaluate", "cka", "distance", "curves", "classify", "plots")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key and what is allowed."""


def load_schema() -> dict:
    return copy.deepcopy(_parsed_schema())


@functools.cache
def _parsed_schema() -> dict:
    # Parsed once per process: pure-Python YAML parsing takes ~0.4 s.
    text = resources.files("lltax").joinpath("config.schema.yaml").read_text()
    return yaml.safe_load(text)


def canonical_value(value: Any) -> int | float:
    """One spelling per number: ints stay ints, floats are rounded to 12 significant digits.

    ``0.1 + 0.2`` and ``0.3`` map to the same float, and ``repr`` of the result is the
    shortest string that parses back to it, which is what paths and coordinates use.
    """
    if isinstance(value, bool):
        raise ConfigError(f"expected a number, got boolean {value!r}")
    if isinstance(value, int):
        return value
    return float(f"{float(value):.12g}")


def format_value(value: Any) -> str:
    return repr(canonical_value(value))


def _fill_defaults(instance: Any, schema: dict) -> Any:
    """Recursively insert schema defaults for missing object keys (jsonschema does not)."""
    if isinstance(instance, dict) and schema.get("type") == "object":
        for key, sub in schema.get("properties", {}).items():
            if key not in instance and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            if key in instance:
                instance[key] = _fill_defaults(instance[key], sub)
    return instance


def _error_message(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"config key {key!r}: unknown key(s) {extra}; allowed keys are {allowed}"
    if error.validator == "enum":
        return f"config key {key!r}: {error.instance!r} is not allowed; choose one of {error.validator_value}"
    if error.validator == "oneOf":
        options = [s.get("const", s.get("enum", "a string 'package.module:function'" if "pattern" in s else s.get("type"))) for s in error.validator_value]
        return f"config key {key!r}: {error.instance!r} is not allowed; expected one of {options}"
    description = error.schema.get("description", "")
    return f"config key {key!r}: {error.message}" + (f" ({description})" if description else "")


def validate_config(config: dict) -> dict:
    """Validate a raw config against the schema and lltax's checks; return it with defaults filled.

    Raises ConfigError naming the offending key and the allowed values.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a mapping of keys to values, got {type(config).__name__}")
    schema = load_schema()
    _check_finite(config, "")
    config = _integers_as_ints(_fill_defaults(copy.deepcopy(config), schema), schema)
    _check_seeds(config.get("seeds"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        raise ConfigError(_error_message(errors[0]))

    # Python's `$` (what the schema pattern uses) also matches before a trailing newline.
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", config["experiment"]) or config["experiment"] in (".", ".."):
        raise ConfigError(
            f"config key 'experiment': {config['experiment']!r} is not allowed; use letters, digits, '_', '.', '-' "
            "(not '.' or '..': artifacts must stay inside <results_dir>/<experiment>/)"
        )
    for key in ("results_dir", "data_dir"):
        if not config[key].strip() or "\n" in config[key] or "\0" in config[key]:
            raise ConfigError(f"config key {key!r}: {config[key]!r} is not allowed; give a non-empty folder path without newlines")
    for axis in AXES:
        values = [canonical_value(v) for v in config["grid"][axis]]
        if len(set(values)) != len(values):
            raise ConfigError(f"config key 'grid.{axis}': repeated values in {config['grid'][axis]}")
        config["grid"][axis] = values
    if config["dataset"]["label_noise_mode"] == "exact" and 1.0 in config["grid"]["label_noise"]:
        index = config["grid"]["label_noise"].index(1.0)
        raise ConfigError(
            f"config key 'grid.label_noise.{index}': 1.0 would replace every label by a wrong class; exact mode allows [0, 1) "
            "(dataset.label_noise_mode: paper allows 1.0: every label redrawn at random)"
        )
    if isinstance(config["seeds"], int):
        config["seeds"] = list(range(config["seeds"]))
    points = [canonical_value(float(t)) for t in config["curves"]["points"]]
    if 0.0 not in points or 1.0 not in points:
        raise ConfigError(f"config key 'curves.points': must contain 0 and 1 (the curve's ends), got {points}")
    config["curves"]["points"] = sorted(set(points))
    if config["curves"]["enabled"] and len(config["seeds"]) < 2:
        raise ConfigError("config key 'seeds': mode connectivity needs at least 2 seeds (or set curves.enabled: false)")
    for key in ("x", "y"):
        if config["plots"][key] not in AXES:
            raise ConfigError(f"config key 'plots.{key}': {config['plots'][key]!r} is not a grid axis; choose one of {list(AXES)}")
    if config["plots"]["x"] == config["plots"]["y"]:
        raise ConfigError("config keys 'plots.x' and 'plots.y' must name two different grid axes")
    _check_plots_and_ranges(config)
    _check_sizes(config)
    return config


# Refuse models above this many parameters before training: 1e9 float32 parameters are 4 GB of
# weights and ~16 GB with gradients and momentum, beyond any single job this tool schedules.
MAX_PARAMETERS = 1_000_000_000


def parameter_estimate(model: str, width: int, input_shape: tuple[int, ...], num_classes: int = 10) -> int:
    """Parameters of a registered model at ``width`` (exact for resnet1d and mlp, within 3% for resnet18 and vgg11 at widths >= 4)."""
    k = width
    if model == "resnet1d":
        return 106 * k * k + 85 * k + 10
    if model == "mlp":
        inputs = int(np.prod(input_shape))
        return inputs * k + k + k * k + k + k * num_classes + num_classes
    # resnet18 / vgg11 grow as k^2: 11,173,962 and 9,228,362 parameters at k = 64.
    return int({"resnet18": 11_173_962, "vgg11": 9_228_362}[model] * (k / 64) ** 2)


def _check_seeds(seeds: Any) -> None:
    """``seeds`` is a count >= 1 or a list of distinct integers >= 0; say which rule is broken."""
    allowed = "a number of seeds >= 1 (seeds 0..n-1) or a list of distinct integers >= 0"
    if isinstance(seeds, bool):
        raise ConfigError(f"config key 'seeds': {seeds!r} is not allowed; give {allowed}")
    if isinstance(seeds, int) and seeds < 1:
        raise ConfigError(f"config key 'seeds': {seeds} seeds is not allowed; give {allowed}")
    if isinstance(seeds, list):
        if not seeds:
            raise ConfigError(f"config key 'seeds': the list is empty; give {allowed}")
        bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
        if bad:
            raise ConfigError(f"config key 'seeds': {bad} are not integers >= 0; give {allowed}")
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise ConfigError(f"config key 'seeds': seeds {repeated} are repeated; give {allowed}")
    elif seeds is not None and not isinstance(seeds, int):
        raise ConfigError(f"config key 'seeds': {seeds!r} is not allowed; give {allowed}")


def _check_finite(value: Any, key: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key {key!r}: {value!r} is not a finite number")
    if isinstance(value, dict):
        for name, item in value.items():
            _check_finite(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, f"{key}.{index}")


def _integers_as_ints(instance: Any, schema: dict) -> Any:
    """Integer-valued floats (``2.0``) where the schema wants an integer become ints."""
    kind = schema.get("type")
    if kind == "integer" and isinstance(instance, float) and instance.is_integer():
        return int(instance)
    if kind == "object" and isinstance(instance, dict):
        properties = schema.get("properties", {})
        return {k: _integers_as_ints(v, properties.get(k, {})) for k, v in instance.items()}
    if kind == "array" and isinstance(instance, list):
        return [_integers_as_ints(v, schema.get("items", {})) for v in instance]
    if "oneOf" in schema and isinstance(instance, (float, list)):
        for option in schema["oneOf"]:
            converted = _integers_as_ints(instance, option)
            if converted is not instance:
                return converted
    return instance


def _check_plots_and_ranges(config: dict) -> None:
    metric = config["plots"]["line_metric"]
    if metric not in VARIABLE_ATTRS:
        raise ConfigError(f"config key 'plots.line_metric': {metric!r} is not a dataset variable; choose one of {sorted(VARIABLE_ATTRS)}")
    group = config["plots"]["line_group"]
    if group != "auto" and group not in AXES:
        raise ConfigError(f"config key 'plots.line_group': {group!r} is not a grid axis; choose 'auto' or one of {list(AXES)}")
    for section in SECTION_CHECKS:
        check_section(section, config[section], where="config key")


def _check_hessian(hessian: dict, where: str) -> None:
    if hessian["top_k"] > hessian["max_iterations"]:
        raise ConfigError(
            f"{where} 'hessian.top_k': {hessian['top_k']} eigenvalues need at least as many iterations; "
            f"hessian.max_iterations is {hessian['max_iterations']}"
        )


def _check_landscape(landscape: dict, where: str) -> None:
    low, high = landscape["range_1d"]
    if not low < high:
        raise ConfigError(f"{where} 'landscape.range_1d': {[low, high]} must be [low, high] with low < high")


# Checks of one section that the schema cannot express (relations between its keys): run on the
# config before any job, and on a job's --settings, so a hand-run command is held to the same rules.
SECTION_CHECKS = {"hessian": _check_hessian, "landscape": _check_landscape}


def check_section(section: str, values: dict, where: str = "--settings key") -> None:
    """lltax's own checks of a filled-in config section (ConfigError naming the key)."""
    if section in SECTION_CHECKS:
        SECTION_CHECKS[section](values, where)


def _check_sizes(config: dict) -> None:
    """Batch sizes against the data each cell trains on, and model sizes against memory."""
    name = config["dataset"]["name"]
    if name not in DATASET_SIZES:
        return  # your own dataset: its size is known only once loaded (the jobs check it then)
    total, input_shape = DATASET_SIZES[name]
    smallest = min(round(fraction * total) for fraction in config["grid"]["train_fraction"])
    if smallest < 1:
        raise ConfigError(f"config key 'grid.train_fraction': {min(config['grid']['train_fraction'])} of {total} {name} samples leaves none")
    for key, value in (("grid.batch_size", max(config["grid"]["batch_size"])), ("curves.batch_size", config["curves"]["batch_size"])):
        if value > smallest:
            raise ConfigError(
                f"config key {key!r}: batch size {value} is larger than the {smallest} training samples of the smallest "
                f"train_fraction ({min(config['grid']['train_fraction'])} of {total} {name} samples); lower it or raise the fraction"
            )
    model, width = config["model"]["name"], max(config["grid"]["width"])
    if ":" in model:
        return  # your own builder: its size is known only once built (in the train job)
    parameters = parameter_estimate(model, width, input_shape)
    if parameters > MAX_PARAMETERS:
        raise ConfigError(
            f"config key 'grid.width': {model} at width {width} has about {parameters:.2g} parameters "
            f"({4 * parameters / 1e9:.0f} GB of float32 weights before gradients and momentum); the limit is {MAX_PARAMETERS:.0e}"
        )


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key repeated in one mapping is an error (YAML says keys are
    unique; PyYAML silently keeps the last one, so a duplicated `grid:` would drop axes)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"config key {key!r} appears twice in one mapping (line {key_node.start_mark.line + 1}); keep one")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def read_config_file(path: str | Path) -> Any:
    """A config file's YAML, refusing repeated keys (used by the Snakefile on every config file)."""
    path = Path(path)
    try:
        return yaml.load(path.read_text(), Loader=_StrictLoader)
    except FileNotFoundError as e:
        raise ConfigError(f"config file {path} does not exist") from e
    except ConfigError as e:
        raise ConfigError(f"config file {path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from e


def load_config(path: str | Path) -> dict:
    return validate_config(read_config_file(path))


def parse_settings(text: str, section: str) -> dict[str, Any]:
    """A metric's config section from its ``--settings`` JSON, with schema defaults filled in.

    Values are checked against the section's schema, and an unknown key is an error: a typo
    in a hand-run command must not fall back silently to a default.

    Raises
    ------
    ValueError
        The text is not a JSON object, or a value breaks the schema (the message names it).
    """
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--settings is not valid JSON ({e}); pass the config section '{section}' as a JSON object, e.g. '{{}}' for its defaults") from e
    except RecursionError:
        raise ValueError(f"--settings for '{section}' is nested too deeply to be a config section") from None
    if not isinstance(settings, dict):
        raise ValueError(f"--settings must be a JSON object (the config section '{section}'), got {type(settings).__name__}")
    try:
        _check_finite(settings, section)
    except ConfigError as e:  # JSON's NaN/Infinity literals parse, and compare as in range
        raise ConfigError(f"--settings {str(e).removeprefix('config ')}") from None
    schema = load_schema()["properties"][section]
    for key, sub in schema.get("properties", {}).items():
        if "default" in sub:
            settings.setdefault(key, copy.deepcopy(sub["default"]))
    for error in jsonschema.Draft202012Validator(schema).iter_errors(settings):
        if error.validator == "additionalProperties":
            unknown = sorted(set(error.instance) - set(schema["properties"]))
            raise ValueError(f"--settings for '{section}': unknown key(s) {unknown}; allowed keys are {sorted(schema['properties'])}")
        key = ".".join(str(p) for p in error.absolute_path)
        raise ValueError(f"--settings key '{section}.{key}': {error.message}")
    settings = _integers_as_ints(settings, schema)
    check_section(section, settings)
    return settings


def parse_cell(text: str) -> dict:
    """A grid cell from its path (``width=8/batch_size=64/...``), every value checked against the
    schema's range for its axis (``learning_rate=-1`` is refused, as in a config)."""
    cell = {k: v for k, v in parse_cell_path(text).items() if k in AXES}
    items = load_schema()["properties"]["grid"]["properties"]
    for axis in AXES:
        item = items[axis]["items"]
        errors = list(jsonschema.Draft202012Validator(item).iter_errors(cell[axis]))
        if errors or (isinstance(cell[axis], float) and not math.isfinite(cell[axis])):
            reason = errors[0].message if errors else "not a finite number"
            raise ConfigError(f"--cell {axis}={cell[axis]!r}: {reason} (config key 'grid.{axis}')")
    return cell


# ---------------------------------------------------------------------------------------------
# Grid cells and paths


def expand_grid(grid: dict) -> list[dict]:
    """All cells of the grid as dicts {axis: canonical value}, in AXES order."""
    values = [[canonical_value(v) for v in grid[axis]] for axis in AXES]
    return [dict(zip(AXES, combo)) for combo in itertools.product(*values)]


def cell_path(cell: dict) -> str:
    """'width=16/batch_size=128/...' for a cell (all axes, fixed order)."""
    return "/".join(f"{axis}={format_value(cell[axis])}" for axis in AXES)


def parse_cell_path(path: str) -> dict:
    """Inverse of cell_path; also accepts a longer path and picks out the axis levels.

    Extra levels (``seed=0``, ``pair=0-1``) are returned too, as ints / (int, int).
    """
    coords: dict[str, Any] = {}
    for part in Path(path).parts:
        if "=" not in part:
            continue
        key, _, text = part.partition("=")
        try:
            if key in INTEGER_AXES or key == "seed":
                coords[key] = int(text)
            elif key in AXES:
                coords[key] = canonical_value(float(text))
            elif key == "pair":
                a, _, b = text.partition("-")
                coords["pair"] = (int(a), int(b))
        except ValueError:
            kind = "an integer" if key in INTEGER_AXES or key == "seed" else "a pair A-B of seeds" if key == "pair" else "a number"
            raise ValueError(f"path {path!r}: {key}={text!r} is not {kind}") from None
    missing = [axis for axis in AXES if axis not in coords]
    if missing:
        raise ValueError(f"path {path!r} does not name grid axes {missing}")
    return coords


# The Snakemake wildcard {cell} must match exactly one cell folder.
CELL_REGEX = "/".join(f"{axis}=[^/]+" for axis in AXES)


def seed_pairs(seeds: list[int], mode: str) -> list[tuple[int, int]]:
    """Seed pairs for pairwise metrics: 'first', 'consecutive' or 'all' unordered pairs."""
    seeds = list(seeds)
    if mode == "first":
        return [(seeds[0], seeds[1])] if len(seeds) >= 2 else []
    if mode == "consecutive":
        return list(zip(seeds[:-1], seeds[1:]))
    if mode == "all":
        return list(itertools.combinations(seeds, 2))
    raise ConfigError(f"config key 'curves.pairs': {mode!r} is not allowed; choose one of ['first', 'consecutive', 'all']")


def canonical_path(path: str) -> str:
    """One spelling per folder: normalized, relative to the working directory when inside it
    (``data``, ``./data/`` and its absolute path are all ``data``), absolute otherwise."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    return absolute if relative == ".." or relative.startswith(".." + os.sep) else relative


def canonical_json(obj: Any) -> str:
    """Sorted-key, compact JSON: the form config sections take as Snakemake params."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def config_hash(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:16]


def reference_table() -> str:
    """The README's configuration table, generated from the schema's descriptions and defaults.

    ``python -m lltax.config`` prints it; a test keeps README.md equal to it.
    """
    schema = load_schema()
    rows = ["| key | default | meaning |", "|---|---|---|"]

    def default_text(sub: dict) -> str:
        return f"`{json.dumps(sub['default'])}`" if "default" in sub else "required"

    def cell(text: str) -> str:
        return " ".join(text.split()).replace("|", "\\|")

    for section, sub in schema["properties"].items():
        keys = sub.get("properties")
        if not keys:
            rows.append(f"| `{section}` | {default_text(sub)} | {cell(sub.get('description', ''))} |")
            continue
        for key, item in keys.items():
            name = f"{section}.{key}"
            rows.append(f"| `{name}` | {default_text(item)} | {cell(item.get('description', ''))} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(reference_table())
