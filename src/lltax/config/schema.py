"""Experiment configuration: the schema (the one place defaults live), validation, the strict
YAML reader, and parsing of a job's ``--settings`` and ``--cell`` against the same rules.

lltax's own checks live in ``lltax.config.checks``; cells, paths and canonical values in
``lltax.config.grid``.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lltax.config.checks import (
    check_depth,
    check_finite,
    check_grid_size,
    check_paths,
    check_plots_and_ranges,
    check_section,
    check_seeds,
    check_sizes,
    check_strings,
)
from lltax.config.grid import canonical_value, check_checkpoint_template, parse_cell_path
from lltax.contract import AXES, INTEGER_AXES, ConfigError

if TYPE_CHECKING:
    import jsonschema

# jsonschema is imported where a config or a job's --settings is validated, not at module
# import: the numerics and the jobs' compute import lltax.config.schema without it (an offline GPU
# node's Python may lack it; benchmarks/gpu_check.py fills defaults with section_defaults).


def load_schema() -> dict:
    return copy.deepcopy(_parsed_schema())


@functools.cache
def _parsed_schema() -> dict:
    # Parsed once per process: pure-Python YAML parsing takes ~0.4 s.
    text = resources.files("lltax.config").joinpath("schema.yaml").read_text()
    return yaml.safe_load(text)


def _fill_defaults(instance: Any, schema: dict) -> Any:
    """Recursively insert schema defaults for missing object keys (jsonschema does not)."""
    if isinstance(instance, dict) and schema.get("type") == "object":
        for key, sub in schema.get("properties", {}).items():
            if key not in instance and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            if key in instance:
                instance[key] = _fill_defaults(instance[key], sub)
    return instance


def section_defaults(section: str) -> dict[str, Any]:
    """The schema's defaults of a config section (e.g. 'hessian'), without validation and
    without jsonschema: for calling a job's compute from Python with its default settings."""
    return _fill_defaults({}, load_schema()["properties"][section])


def _error_message(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"config key {key!r}: unknown key(s) {extra}; allowed keys are {allowed}"
    if error.validator == "enum":
        return f"config key {key!r}: {error.instance!r} is not allowed; choose one of {error.validator_value}"
    if error.validator == "oneOf":
        options = [
            s.get("const", s.get("enum", "a string 'package.module:function'" if "pattern" in s else s.get("type")))
            for s in error.validator_value
        ]
        return f"config key {key!r}: {error.instance!r} is not allowed; expected one of {options}"
    description = error.schema.get("description", "")
    return f"config key {key!r}: {error.message}" + (f" ({description})" if description else "")


def validate_config(config: dict) -> dict:
    """Validate a raw config against the schema and lltax's checks; return it with defaults filled.

    Raises ConfigError naming the offending key and the allowed values.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a mapping of keys to values, got {type(config).__name__}")
    import jsonschema

    schema = load_schema()
    check_depth(config)  # before anything recurses into it
    check_finite(config, "")
    check_strings(config)
    config = _integers_as_ints(_fill_defaults(copy.deepcopy(config), schema), schema)
    check_seeds(config.get("seeds"))
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
    check_paths(config)
    check_grid_size(config)
    for axis in AXES:
        # Float axes as floats: `weight_decay: [0]` is the cell weight_decay=0.0, as its path parses back.
        values = [canonical_value(v if axis in INTEGER_AXES else float(v)) for v in config["grid"][axis]]
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
    if config["checkpoints"]["path"] is not None:
        check_checkpoint_template(config["checkpoints"]["path"], config["grid"], config["seeds"])
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
    check_plots_and_ranges(config)
    check_sizes(config)
    return config


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
    except RecursionError:
        raise ConfigError(f"config file {path} is nested too deeply to be a config (no value is more than a few levels deep)") from None


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
        raise ValueError(
            f"--settings is not valid JSON ({e}); pass the config section '{section}' as a JSON object, e.g. '{{}}' for its defaults"
        ) from e
    except RecursionError:
        raise ValueError(f"--settings for '{section}' is nested too deeply to be a config section") from None
    if not isinstance(settings, dict):
        raise ValueError(f"--settings must be a JSON object (the config section '{section}'), got {type(settings).__name__}")
    return section_settings(section, settings)


def parse_model(text: str) -> tuple[str, dict]:
    """``--model`` of the train and import jobs: a model name, or the config section 'model' as
    JSON (name and options). The rules pass the JSON only when model.options is set, so that a
    config without options keeps its jobs' parameters (and nothing reruns)."""
    if not text.lstrip().startswith("{"):
        return text, {}
    try:
        section = parse_settings(text, "model")
    except ValueError as e:
        raise ValueError(f"--model: {e}") from e
    return section["name"], section["options"]


def section_settings(section: str, settings: dict, where: str = "--settings") -> dict[str, Any]:
    """A config section given as a mapping (a job's ``--settings``, or keyword arguments of a
    Python call such as ``phases.classify``), checked as the config is and with the schema's
    defaults filled in: the schema is the one place a default is declared."""
    import jsonschema

    settings = copy.deepcopy(settings)
    try:
        check_finite(settings, section)
    except ConfigError as e:  # JSON's NaN/Infinity literals parse, and compare as in range
        raise ConfigError(f"{where} {str(e).removeprefix('config ')}") from None
    schema = load_schema()["properties"][section]
    for key, sub in schema.get("properties", {}).items():
        if "default" in sub:
            settings.setdefault(key, copy.deepcopy(sub["default"]))
    for error in jsonschema.Draft202012Validator(schema).iter_errors(settings):
        if error.validator == "additionalProperties":
            unknown = sorted(set(error.instance) - set(schema["properties"]))
            raise ValueError(f"{where} for '{section}': unknown key(s) {unknown}; allowed keys are {sorted(schema['properties'])}")
        key = ".".join(str(p) for p in error.absolute_path)
        raise ValueError(f"{where} key '{section}.{key}': {error.message}")
    settings = _integers_as_ints(settings, schema)
    check_section(section, settings, where=f"{where} key")
    return settings


def parse_cell(text: str) -> dict:
    """A grid cell from its path (``width=8/batch_size=64/...``), every value checked against the
    schema's range for its axis (``learning_rate=-1`` is refused, as in a config)."""
    import jsonschema

    cell = {k: v for k, v in parse_cell_path(text).items() if k in AXES}
    items = load_schema()["properties"]["grid"]["properties"]
    for axis in AXES:
        item = items[axis]["items"]
        errors = list(jsonschema.Draft202012Validator(item).iter_errors(cell[axis]))
        if errors or (isinstance(cell[axis], float) and not math.isfinite(cell[axis])):
            reason = errors[0].message if errors else "not a finite number"
            raise ConfigError(f"--cell {axis}={cell[axis]!r}: {reason} (config key 'grid.{axis}')")
    return cell


def reference_table() -> str:
    """The configuration table of docs/configuration.md, generated from the schema's descriptions and defaults.

    ``python -m lltax.config.schema`` prints it; a test keeps docs/configuration.md equal to it.
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
