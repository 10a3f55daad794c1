"""The facts every layer shares, without torch, xarray or the config machinery.

Grid axes, the dataset's variables (units, long names, valid ranges), the phases, the per-job
file names and the sizes of the built-in datasets. ``lltax.config.schema``, the results layer, the
figures and the jobs all import from here, so none of them imports another for a fact.
"""

from __future__ import annotations

from typing import NamedTuple


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key and what is allowed."""


# Grid axes in path order. Load-like axes first, then temperature-like ones.
AXES = ("width", "batch_size", "label_noise", "train_fraction", "learning_rate", "weight_decay")
INTEGER_AXES = ("width", "batch_size")

# Phase labels of phases.nc (DESIGN.md "Phases"), in the order figures list them.
PHASES = ("I", "II", "III", "IV-A", "IV-B", "diverged", "unknown")

# Per-job files, under <results>/<cell>/ (seed=S/ for a model, pair=A-B/ for a curve).
MODEL_FILE = "model.pt"
EXTERNAL_RECORD = "checkpoint.json"  # stands for a checkpoint trained elsewhere (lltax.storage.foreign_checkpoints), in place of model.pt
TRAIN_RECORD = "train.json"
SNAPSHOT_FILE = "train_snapshot.pt"  # a killed training job's resume point, not an output
HESSIAN_RECORD = "hessian.json"
BASIN_RECORD = "basin.json"
CKA_RECORD = "cka.json"
DISTANCE_RECORD = "distance.json"
CURVE_FILE = "curve.pt"
CURVE_RECORD = "curve_eval.json"
LANDSCAPE_FILE = "landscape.nc"
FGE_RECORD = "fge.json"
DIAGNOSIS_MARKER = "diagnosis.json"  # a folder lltax diagnose wrote (a workflow run refuses it)

# Curves: <cell>/pair=A-B/curve_eval.json, scalars per pair and profiles over t.
# The straight line between the same ends is evaluated beside the curve (line_ variables).
CURVE_SCALARS = {
    "mode_connectivity": "mode_connectivity",
    "mode_connectivity_loss": "mode_connectivity_loss",
    "mode_connectivity_test": "mode_connectivity_test",
    "line_mode_connectivity": "line_mode_connectivity",
    "line_mode_connectivity_loss": "line_mode_connectivity_loss",
    "line_mode_connectivity_test": "line_mode_connectivity_test",
    "curve_length": "curve_length",
    "line_length": "line_length",
    "curve_train_loss_integral": "train_loss_integral",
    "line_train_loss_integral": "line_train_loss_integral",
    "aligned_line_mode_connectivity": "aligned_line_mode_connectivity",
    "aligned_line_mode_connectivity_loss": "aligned_line_mode_connectivity_loss",
    "aligned_line_mode_connectivity_test": "aligned_line_mode_connectivity_test",
    "aligned_line_length": "aligned_line_length",
    "aligned_mode_connectivity": "aligned_mode_connectivity",
    "aligned_mode_connectivity_loss": "aligned_mode_connectivity_loss",
    "aligned_mode_connectivity_test": "aligned_mode_connectivity_test",
    "aligned_curve_length": "aligned_curve_length",
}
CURVE_PROFILES = {
    "curve_train_error": "train_error",
    "curve_train_loss": "train_loss",
    "curve_test_error": "test_error",
    "curve_test_loss": "test_loss",
    "line_train_error": "line_train_error",
    "line_train_loss": "line_train_loss",
    "line_test_error": "line_test_error",
    "line_test_loss": "line_test_loss",
    "aligned_line_train_error": "aligned_line_train_error",
    "aligned_line_train_loss": "aligned_line_train_loss",
    "aligned_line_test_error": "aligned_line_test_error",
    "aligned_line_test_loss": "aligned_line_test_loss",
    "aligned_curve_train_error": "aligned_curve_train_error",
    "aligned_curve_train_loss": "aligned_curve_train_loss",
    "aligned_curve_test_error": "aligned_curve_test_error",
    "aligned_curve_test_loss": "aligned_curve_test_loss",
}

# The registry's 1D ResNets of depth 6n + 2, with and without shortcuts (lltax.models): named
# here so that size and cost estimates need no torch import.
RESNET1D_DEPTHS = (8, 20, 56)


def resnet1d_variant(name: str) -> tuple[int, bool] | None:
    """(blocks per stage, shortcuts) of a registered 1D ResNet name, None for other models."""
    if name == "resnet1d":
        return 1, True
    for depth in RESNET1D_DEPTHS:
        if name in (f"resnet1d_{depth}", f"resnet1d_{depth}_noshort"):
            return (depth - 2) // 6, not name.endswith("_noshort")
    return None


# Unbounded quantities are capped at LARGE, the largest finite float32: every metric is computed in
# float32 or from float32 values, so a larger number (1e308) was not computed by lltax, and
# would overflow means and log scales downstream.
LARGE = 3.4028234663852886e38


class Variable(NamedTuple):
    """A dataset variable filled from a metric's records: the key in a record (a dotted key is
    nested), its units and long name (netCDF attributes; accuracies and errors in percent, losses
    in nats) and the values a measurement can take (NaN is always allowed; None: a 0/1 flag).
    A record holding a value outside them is refused: it cannot be a measurement."""

    key: str
    units: str
    long_name: str
    valid: tuple[float, float] | None


class MetricJob(NamedTuple):
    """One metric table of the dataset and the job that writes its records.

    ``scope``: where its records are and what they hold: ``seed`` one file per seed
    (``<cell>/seed=S/<record>``, the variables at its top level), ``pairs`` one file per cell
    with an entry per seed pair (``<cell>/<record>``, ``{"pairs": [...]}``), ``cell`` one file per
    cell (``<cell>/<record>``), ``curve`` one file per fitted curve (``<cell>/pair=A-B/<record>``).
    ``section``: the config section its records are computed with (a record computed with other
    settings is refused when merged, naming the key), ``not_passed`` the keys of it that its rule
    leaves out (they pick cells or switch the job on, and change no record); a section with an
    ``enabled`` key switches the metric off. ``rule``: its own rule in rules/, or None for the
    generic per-seed rule ``seed_metric`` (rules/metrics.smk: ``lltax <command> --checkpoints
    --settings --data-dir --device --out --threads``, the job module ``lltax.jobs.<command>``)."""

    metric: str
    command: str
    record: str
    scope: str
    section: str | None
    not_passed: tuple[str, ...]
    variables: dict[str, Variable]
    rule: str | None

    def passed_settings(self, config: dict) -> dict:
        """Its config section as its rule passes it to the job: all but ``not_passed``."""
        return {key: value for key, value in config[self.section].items() if key not in self.not_passed}


# The curves' variables (curve_eval.json: scalars per pair, profiles over t).
CURVE_VARIABLES = {
    "mode_connectivity": Variable(
        "mode_connectivity", "percent", "mode connectivity mc = (e(0)+e(1))/2 - e(t*) of the training error", (-100.0, 100.0)
    ),
    "mode_connectivity_loss": Variable(
        "mode_connectivity_loss", "nats", "mode connectivity of the training loss along the curve", (-LARGE, LARGE)
    ),
    "curve_train_error": Variable("train_error", "percent", "training error along the Bezier curve", (0.0, 100.0)),
    "curve_train_loss": Variable("train_loss", "nats", "training loss along the Bezier curve", (0.0, LARGE)),
    "curve_test_error": Variable("test_error", "percent", "test error along the Bezier curve", (0.0, 100.0)),
    "curve_test_loss": Variable("test_loss", "nats", "test loss along the Bezier curve", (0.0, LARGE)),
    "mode_connectivity_test": Variable(
        "mode_connectivity_test", "percent", "mode connectivity of the test error along the curve", (-100.0, 100.0)
    ),
    "line_mode_connectivity": Variable(
        "line_mode_connectivity",
        "percent",
        "mode connectivity of the training error along the straight line between the curve's ends",
        (-100.0, 100.0),
    ),
    "line_mode_connectivity_loss": Variable(
        "line_mode_connectivity_loss", "nats", "mode connectivity of the training loss along the straight line", (-LARGE, LARGE)
    ),
    "line_mode_connectivity_test": Variable(
        "line_mode_connectivity_test", "percent", "mode connectivity of the test error along the straight line", (-100.0, 100.0)
    ),
    "curve_length": Variable(
        "curve_length", "1", "Euclidean length of the fitted curve (Bezier or PolyChain) in parameter space", (0.0, LARGE)
    ),
    "line_length": Variable(
        "line_length", "1", "Euclidean length of the straight line between the curve's ends (their l2 distance)", (0.0, LARGE)
    ),
    "curve_train_loss_integral": Variable(
        "train_loss_integral",
        "nats",
        "training loss integrated over t in [0, 1] along the curve (trapezoid over curves.points)",
        (0.0, LARGE),
    ),
    "line_train_loss_integral": Variable(
        "line_train_loss_integral",
        "nats",
        "training loss integrated over t in [0, 1] along the straight line (trapezoid over curves.points)",
        (0.0, LARGE),
    ),
    "line_train_error": Variable(
        "line_train_error", "percent", "training error along the straight line between the curve's ends", (0.0, 100.0)
    ),
    "line_train_loss": Variable("line_train_loss", "nats", "training loss along the straight line", (0.0, LARGE)),
    "line_test_error": Variable("line_test_error", "percent", "test error along the straight line", (0.0, 100.0)),
    "line_test_loss": Variable("line_test_loss", "nats", "test loss along the straight line", (0.0, LARGE)),
    "aligned_line_mode_connectivity": Variable(
        "aligned_line_mode_connectivity",
        "percent",
        "mode connectivity of the training error along the straight line to the second model permuted onto the first (weight matching)",
        (-100.0, 100.0),
    ),
    "aligned_line_mode_connectivity_loss": Variable(
        "aligned_line_mode_connectivity_loss", "nats", "mode connectivity of the training loss along the aligned line", (-LARGE, LARGE)
    ),
    "aligned_line_mode_connectivity_test": Variable(
        "aligned_line_mode_connectivity_test", "percent", "mode connectivity of the test error along the aligned line", (-100.0, 100.0)
    ),
    "aligned_line_length": Variable(
        "aligned_line_length", "1", "l2 distance between the first model and the second permuted onto it", (0.0, LARGE)
    ),
    "aligned_line_train_error": Variable("aligned_line_train_error", "percent", "training error along the aligned line", (0.0, 100.0)),
    "aligned_line_train_loss": Variable("aligned_line_train_loss", "nats", "training loss along the aligned line", (0.0, LARGE)),
    "aligned_line_test_error": Variable("aligned_line_test_error", "percent", "test error along the aligned line", (0.0, 100.0)),
    "aligned_line_test_loss": Variable("aligned_line_test_loss", "nats", "test loss along the aligned line", (0.0, LARGE)),
    "aligned_mode_connectivity": Variable(
        "aligned_mode_connectivity",
        "percent",
        "mode connectivity (training error) of the curve fitted to the second model permuted onto the first",
        (-100.0, 100.0),
    ),
    "aligned_mode_connectivity_loss": Variable(
        "aligned_mode_connectivity_loss", "nats", "mode connectivity of the training loss along the aligned curve", (-LARGE, LARGE)
    ),
    "aligned_mode_connectivity_test": Variable(
        "aligned_mode_connectivity_test", "percent", "mode connectivity of the test error along the aligned curve", (-100.0, 100.0)
    ),
    "aligned_curve_length": Variable("aligned_curve_length", "1", "Euclidean length of the aligned curve in parameter space", (0.0, LARGE)),
    "aligned_curve_train_error": Variable("aligned_curve_train_error", "percent", "training error along the aligned curve", (0.0, 100.0)),
    "aligned_curve_train_loss": Variable("aligned_curve_train_loss", "nats", "training loss along the aligned curve", (0.0, LARGE)),
    "aligned_curve_test_error": Variable("aligned_curve_test_error", "percent", "test error along the aligned curve", (0.0, 100.0)),
    "aligned_curve_test_loss": Variable("aligned_curve_test_loss", "nats", "test loss along the aligned curve", (0.0, LARGE)),
}

PERCENT, NATS = (0.0, 100.0), (0.0, LARGE)
UNBOUNDED, POSITIVE, SHARE = (-LARGE, LARGE), (0.0, LARGE), (0.0, 1.0)

# The metric tables of the dataset, in merge order: the rules (rules/common.smk), the results
# layer (results/layout.py, results/records.py), the variables' attributes and ranges below, and
# `lltax aggregate` read this table. A new metric is its numerics, its job, its schema section
# and a line here (docs/extending.md, "A metric").
METRIC_JOBS = (
    MetricJob("train", "train", TRAIN_RECORD, "seed", None, (), {
        "diverged": Variable("diverged", "1", "diverged run (1 = NaN/inf loss during training, 0 = finished)", None),
        "train_wall_time": Variable("wall_time_s", "s", "training wall-clock time", POSITIVE),
        # Loss and accuracy from the training job's own final evaluation (eval mode, after the
        # checkpoint was chosen; `lltax evaluate` computes the same numbers by hand).
        "train_loss": Variable("final.train_loss", "nats", "training cross-entropy (eval mode, cell labels)", NATS),
        "train_acc": Variable("final.train_acc", "percent", "training accuracy (eval mode, cell labels)", PERCENT),
        "test_loss": Variable("final.test_loss", "nats", "test cross-entropy (eval mode)", NATS),
        "test_acc": Variable("final.test_acc", "percent", "test accuracy (eval mode)", PERCENT),
        "test_bleu": Variable("final.test_bleu", "1", "BLEU (0-100, sacrebleu) of greedy decoding on the test set; translation tasks only, NaN for classification", PERCENT),
    }, "train"),
    MetricJob("hessian", "hessian", HESSIAN_RECORD, "seed", "hessian", (), {
        "hessian_top_eigenvalue": Variable("top_eigenvalue", "1", "top eigenvalue of the training-loss Hessian", UNBOUNDED),
        "hessian_trace": Variable("trace", "1", "trace of the training-loss Hessian", UNBOUNDED),
        "hessian_eigenvalue_error": Variable("eigenvalue_error", "1", "error estimate of the top Hessian eigenvalue", POSITIVE),
        "hessian_trace_error": Variable("trace_error", "1", "error estimate of the Hessian trace", POSITIVE),
    }, "hessian"),
    MetricJob("basin", "basin", BASIN_RECORD, "seed", "basin", ("enabled",), {
        "basin_width": Variable("basin_width", "1", "mean distance along random filter-normalized rays at which the training loss rises by basin.rise", POSITIVE),
        "basin_width_spread": Variable("basin_width_spread", "1", "standard deviation of the basin radius over the rays (d and -d of basin.directions)", POSITIVE),
        "basin_censored": Variable("basin_censored", "1", "share of rays whose loss stayed below the rise up to basin.max_radius (their radius is the cap)", SHARE),
        "convex_share": Variable("convex_share", "1", "share of the convexity grid where lambda_min >= -basin.convexity_tolerance x lambda_max", SHARE),
    }, "basin"),
    MetricJob("cka", "cka", CKA_RECORD, "pairs", "cka", (), {
        "cka": Variable("cka", "1", "linear CKA between the two seeds' outputs on mixup inputs", (0.0, 1.0 + 1e-6)),
    }, "cka"),
    # The CKA job writes the distances too (the same models loaded once); `lltax distance` by hand.
    MetricJob("distance", "cka", DISTANCE_RECORD, "pairs", None, (), {
        "l2_distance": Variable("l2_distance", "1", "l2 distance between the two seeds' trainable parameters", POSITIVE),
    }, "cka"),
    # Scalars per pair (CURVE_SCALARS) and profiles over t (CURVE_PROFILES).
    MetricJob("curves", "curve-eval", CURVE_RECORD, "curve", "curves", ("enabled", "pairs", "points"), CURVE_VARIABLES, "curve_eval"),
    MetricJob("ensembles", "fge", FGE_RECORD, "cell", "fge", ("enabled",), {
        "single_test_acc": Variable("single_test_acc", "percent", "test accuracy of the cell's first seed (the model FGE starts from)", PERCENT),
        "fge_test_acc": Variable("fge_test_acc", "percent", "test accuracy of the fast geometric ensemble (averaged softmax of fge.cycles snapshots)", PERCENT),
        "seed_ensemble_test_acc": Variable("seed_ensemble_test_acc", "percent", "test accuracy of the cell's independent seeds ensembled (averaged softmax)", PERCENT),
        "fge_epochs": Variable("fge_epochs", "1", "training epochs of the FGE ensemble: train.epochs + fge.cycles x fge.cycle_epochs", POSITIVE),
        "seed_ensemble_epochs": Variable("seed_ensemble_epochs", "1", "training epochs of the independent ensemble: seeds x train.epochs", POSITIVE),
        "curve_ensemble_test_acc": Variable("curve_ensemble_test_acc", "percent", "test accuracy of fge.curve_points models evenly spaced along the first fitted curve, ensembled", PERCENT),
        "curve_ensemble_epochs": Variable("curve_ensemble_epochs", "1", "training epochs of the curve ensemble: 2 x train.epochs + the curve's fitting epochs", POSITIVE),
    }, "fge"),
)  # fmt: skip
METRIC_JOB = {job.metric: job for job in METRIC_JOBS}
METRICS = tuple(METRIC_JOB)

# (units, long_name) and the valid range of every dataset variable, from the table.
VARIABLES = {name: variable for job in METRIC_JOBS for name, variable in job.variables.items()}
VARIABLE_ATTRS = {name: (variable.units, variable.long_name) for name, variable in VARIABLES.items()}
VALID_RANGES = {name: variable.valid for name, variable in VARIABLES.items() if variable.valid is not None}
BOOLEAN_VARIABLES = tuple(name for name, variable in VARIABLES.items() if variable.valid is None)
COORDINATE_ATTRS = {
    "width": ("1", "model width k"),
    "batch_size": ("1", "SGD batch size"),
    "label_noise": ("1", "fraction of training labels replaced"),
    "train_fraction": ("1", "fraction of the training set used"),
    "learning_rate": ("1", "SGD learning rate"),
    "weight_decay": ("1", "SGD weight decay"),
    "seed": ("1", "training seed"),
    "pair": ("1", "seed pair index"),
    "seed_a": ("1", "first seed of the pair"),
    "seed_b": ("1", "second seed of the pair"),
    "t": ("1", "curve parameter t (0 = seed_a, 1 = seed_b)"),
}


# Config sections that shape no number of dataset.nc: figures, classification, landscape
# pictures, resource estimates, the by-hand `evaluate`, how large a grid may be. Left out of the
# config dataset.nc stores (so changing them does not rebuild it), by the workflow and by
# `lltax diagnose` alike.
NOT_IN_DATASET = ("classify", "plots", "landscape", "cluster", "evaluate", "max_cells")
# The curves section is split between its two jobs, so that changing only the points re-evaluates
# the curves without refitting them: evaluation reads these keys, fitting the others but these
# and the ones that pick pairs or switch curves on.
CURVE_EVAL_KEYS = ("points", "align", "seed")
CURVE_FIT_NOT_PASSED = ("enabled", "pairs", "points", "align")

# The phase-diagram figures of an experiment, <results>/figures/<name>.<format> (lltax plot), each
# with its caption report/<name>.rst; and the one drawn where the dataset has FGE results.
FIGURES = ("panels", "phases", "lines", "curves")
FGE_FIGURE = "ensembles"

# Sizes the config is checked against before any job runs (lltax.data.loaders give these).
DATASET_SIZES = {  # name: (training samples, input shape)
    "mnist1d": (4000, (1, 40)),
    "cifar10": (50000, (3, 32, 32)),
    "cifar100": (50000, (3, 32, 32)),
    "svhn": (73257, (3, 32, 32)),
    "mnist": (60000, (1, 32, 32)),
    "langpair": (4000, (2, 10)),  # translation pairs (lltax.data.languages): (source and target row, length)
    # IWSLT 2016 De-En's train.tags pairs (torchtext's count) before pairs over 63 pieces are left out (lltax.data.translation)
    "iwslt16_de_en": (196884, (2, 64)),
}
TEST_SIZES = {"mnist1d": 1000, "cifar10": 10000, "cifar100": 10000, "svhn": 26032, "mnist": 10000, "langpair": 500, "iwslt16_de_en": 1305}
# Vocabulary sizes of the translation datasets (their num_classes).
VOCABULARY_SIZES = {"langpair": 103, "iwslt16_de_en": 10000}
