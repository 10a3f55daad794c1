"""The facts every layer shares, without torch, xarray or the config machinery.

Grid axes, the dataset's variables (units, long names, valid ranges), the phases, the per-job
file names and the sizes of the built-in datasets. ``lltax.config.schema``, the results layer, the
figures and the jobs all import from here, so none of them imports another for a fact.
"""

from __future__ import annotations


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


# Metric tables of the dataset, in merge order.
METRICS = ("train", "hessian", "basin", "cka", "distance", "curves", "ensembles")

# (units, long_name) of every dataset variable; accuracies and errors in percent, losses in nats.
VARIABLE_ATTRS = {
    "diverged": ("1", "diverged run (1 = NaN/inf loss during training, 0 = finished)"),
    "train_wall_time": ("s", "training wall-clock time"),
    "train_loss": ("nats", "training cross-entropy (eval mode, cell labels)"),
    "train_acc": ("percent", "training accuracy (eval mode, cell labels)"),
    "test_loss": ("nats", "test cross-entropy (eval mode)"),
    "test_acc": ("percent", "test accuracy (eval mode)"),
    "test_bleu": ("1", "BLEU (0-100, sacrebleu) of greedy decoding on the test set; translation tasks only, NaN for classification"),
    "hessian_top_eigenvalue": ("1", "top eigenvalue of the training-loss Hessian"),
    "hessian_trace": ("1", "trace of the training-loss Hessian"),
    "hessian_eigenvalue_error": ("1", "error estimate of the top Hessian eigenvalue"),
    "hessian_trace_error": ("1", "error estimate of the Hessian trace"),
    "basin_width": ("1", "mean distance along random filter-normalized rays at which the training loss rises by basin.rise"),
    "basin_width_spread": ("1", "standard deviation of the basin radius over the rays (d and -d of basin.directions)"),
    "basin_censored": ("1", "share of rays whose loss stayed below the rise up to basin.max_radius (their radius is the cap)"),
    "convex_share": ("1", "share of the convexity grid where lambda_min >= -basin.convexity_tolerance x lambda_max"),
    "cka": ("1", "linear CKA between the two seeds' outputs on mixup inputs"),
    "l2_distance": ("1", "l2 distance between the two seeds' trainable parameters"),
    "mode_connectivity": ("percent", "mode connectivity mc = (e(0)+e(1))/2 - e(t*) of the training error"),
    "mode_connectivity_loss": ("nats", "mode connectivity of the training loss along the curve"),
    "curve_train_error": ("percent", "training error along the Bezier curve"),
    "curve_train_loss": ("nats", "training loss along the Bezier curve"),
    "curve_test_error": ("percent", "test error along the Bezier curve"),
    "curve_test_loss": ("nats", "test loss along the Bezier curve"),
    "mode_connectivity_test": ("percent", "mode connectivity of the test error along the curve"),
    "line_mode_connectivity": ("percent", "mode connectivity of the training error along the straight line between the curve's ends"),
    "line_mode_connectivity_loss": ("nats", "mode connectivity of the training loss along the straight line"),
    "line_mode_connectivity_test": ("percent", "mode connectivity of the test error along the straight line"),
    "curve_length": ("1", "Euclidean length of the fitted curve (Bezier or PolyChain) in parameter space"),
    "line_length": ("1", "Euclidean length of the straight line between the curve's ends (their l2 distance)"),
    "curve_train_loss_integral": ("nats", "training loss integrated over t in [0, 1] along the curve (trapezoid over curves.points)"),
    "line_train_loss_integral": (
        "nats",
        "training loss integrated over t in [0, 1] along the straight line (trapezoid over curves.points)",
    ),
    "line_train_error": ("percent", "training error along the straight line between the curve's ends"),
    "line_train_loss": ("nats", "training loss along the straight line"),
    "line_test_error": ("percent", "test error along the straight line"),
    "line_test_loss": ("nats", "test loss along the straight line"),
    "aligned_line_mode_connectivity": (
        "percent",
        "mode connectivity of the training error along the straight line to the second model permuted onto the first (weight matching)",
    ),
    "aligned_line_mode_connectivity_loss": ("nats", "mode connectivity of the training loss along the aligned line"),
    "aligned_line_mode_connectivity_test": ("percent", "mode connectivity of the test error along the aligned line"),
    "aligned_line_length": ("1", "l2 distance between the first model and the second permuted onto it"),
    "aligned_line_train_error": ("percent", "training error along the aligned line"),
    "aligned_line_train_loss": ("nats", "training loss along the aligned line"),
    "aligned_line_test_error": ("percent", "test error along the aligned line"),
    "aligned_line_test_loss": ("nats", "test loss along the aligned line"),
    "aligned_mode_connectivity": (
        "percent",
        "mode connectivity (training error) of the curve fitted to the second model permuted onto the first",
    ),
    "aligned_mode_connectivity_loss": ("nats", "mode connectivity of the training loss along the aligned curve"),
    "aligned_mode_connectivity_test": ("percent", "mode connectivity of the test error along the aligned curve"),
    "aligned_curve_length": ("1", "Euclidean length of the aligned curve in parameter space"),
    "aligned_curve_train_error": ("percent", "training error along the aligned curve"),
    "aligned_curve_train_loss": ("nats", "training loss along the aligned curve"),
    "aligned_curve_test_error": ("percent", "test error along the aligned curve"),
    "aligned_curve_test_loss": ("nats", "test loss along the aligned curve"),
    "single_test_acc": ("percent", "test accuracy of the cell's first seed (the model FGE starts from)"),
    "fge_test_acc": ("percent", "test accuracy of the fast geometric ensemble (averaged softmax of fge.cycles snapshots)"),
    "seed_ensemble_test_acc": ("percent", "test accuracy of the cell's independent seeds ensembled (averaged softmax)"),
    "fge_epochs": ("1", "training epochs of the FGE ensemble: train.epochs + fge.cycles x fge.cycle_epochs"),
    "seed_ensemble_epochs": ("1", "training epochs of the independent ensemble: seeds x train.epochs"),
    "curve_ensemble_test_acc": (
        "percent",
        "test accuracy of fge.curve_points models evenly spaced along the first fitted curve, ensembled",
    ),
    "curve_ensemble_epochs": ("1", "training epochs of the curve ensemble: 2 x train.epochs + the curve's fitting epochs"),
}
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

# What a value of each variable may be (NaN is always allowed: a missing or diverged result).
# A record holding a value outside these is refused: it cannot be a measurement. Unbounded
# quantities are capped at LARGE, the largest finite float32: every metric is computed in
# float32 or from float32 values, so a larger number (1e308) was not computed by lltax, and
# would overflow means and log scales downstream.
LARGE = 3.4028234663852886e38
VALID_RANGES = {
    "train_loss": (0.0, LARGE),
    "test_loss": (0.0, LARGE),
    "train_acc": (0.0, 100.0),
    "test_acc": (0.0, 100.0),
    "test_bleu": (0.0, 100.0),
    "hessian_top_eigenvalue": (-LARGE, LARGE),
    "hessian_trace": (-LARGE, LARGE),
    "hessian_eigenvalue_error": (0.0, LARGE),
    "hessian_trace_error": (0.0, LARGE),
    "basin_width": (0.0, LARGE),
    "basin_width_spread": (0.0, LARGE),
    "basin_censored": (0.0, 1.0),
    "convex_share": (0.0, 1.0),
    "cka": (0.0, 1.0 + 1e-6),
    "l2_distance": (0.0, LARGE),
    "train_wall_time": (0.0, LARGE),
    "mode_connectivity": (-100.0, 100.0),
    "mode_connectivity_loss": (-LARGE, LARGE),
    "curve_train_error": (0.0, 100.0),
    "curve_test_error": (0.0, 100.0),
    "curve_train_loss": (0.0, LARGE),
    "curve_test_loss": (0.0, LARGE),
    "mode_connectivity_test": (-100.0, 100.0),
    "line_mode_connectivity": (-100.0, 100.0),
    "line_mode_connectivity_loss": (-LARGE, LARGE),
    "line_mode_connectivity_test": (-100.0, 100.0),
    "curve_length": (0.0, LARGE),
    "line_length": (0.0, LARGE),
    "curve_train_loss_integral": (0.0, LARGE),
    "line_train_loss_integral": (0.0, LARGE),
    "line_train_error": (0.0, 100.0),
    "line_test_error": (0.0, 100.0),
    "line_train_loss": (0.0, LARGE),
    "line_test_loss": (0.0, LARGE),
    "aligned_line_mode_connectivity": (-100.0, 100.0),
    "aligned_line_mode_connectivity_loss": (-LARGE, LARGE),
    "aligned_line_mode_connectivity_test": (-100.0, 100.0),
    "aligned_line_length": (0.0, LARGE),
    "aligned_line_train_error": (0.0, 100.0),
    "aligned_line_test_error": (0.0, 100.0),
    "aligned_line_train_loss": (0.0, LARGE),
    "aligned_line_test_loss": (0.0, LARGE),
    "aligned_mode_connectivity": (-100.0, 100.0),
    "aligned_mode_connectivity_loss": (-LARGE, LARGE),
    "aligned_mode_connectivity_test": (-100.0, 100.0),
    "aligned_curve_length": (0.0, LARGE),
    "aligned_curve_train_error": (0.0, 100.0),
    "aligned_curve_test_error": (0.0, 100.0),
    "aligned_curve_train_loss": (0.0, LARGE),
    "aligned_curve_test_loss": (0.0, LARGE),
    "single_test_acc": (0.0, 100.0),
    "fge_test_acc": (0.0, 100.0),
    "seed_ensemble_test_acc": (0.0, 100.0),
    "fge_epochs": (0.0, LARGE),
    "seed_ensemble_epochs": (0.0, LARGE),
    "curve_ensemble_test_acc": (0.0, 100.0),
    "curve_ensemble_epochs": (0.0, LARGE),
}
BOOLEAN_VARIABLES = ("diverged",)

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
