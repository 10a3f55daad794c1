"""Mode connectivity: fit a quadratic Bezier curve between two trained models, evaluate it.

Follows Garipov et al. 2018 (dnn-mode-connectivity) as used by Yang et al. 2021
(``Mode_connectivity.py`` of nsfzyzz/loss_landscape_taxonomy): the end bends are the two
checkpoints and stay fixed, the middle bend is trained by SGD on the training loss at a random
point t ~ U(0, 1) per minibatch; then the curve is evaluated at a few points t, each after
recomputing BatchNorm statistics on the training data, and

    mc = (e(0) + e(1)) / 2 - e(t*),   t* = argmax_t |e(t) - (e(0) + e(1)) / 2|

on the training 0-1 error e (Yang et al. 2021's definition of mode connectivity). mc < 0: a
barrier (poorly connected); mc ~ 0: well connected; mc > 0: the curve beats under-trained end
models.

The jobs are ``lltax.jobs.curve_fit`` (writes pair=A-B/curve.pt) and ``lltax.jobs.curve_eval``
(writes curve_eval.json). Curve geometry and BatchNorm handling live in ``lltax.metrics.bezier``.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lltax.data.sequences import target_count
from lltax.metrics.bezier import (
    curve_point,
    flatten_bend,
    load_parameters,
    point_forward,
    recompute_batchnorm_statistics,
    unflatten_bend,
)
from lltax.metrics.curve_measures import arc_length_average, curve_length, integrated, polychain_length
from lltax.metrics.evaluate import evaluate_model
from lltax.training.model_mode import mode
from lltax.training.sgd import SGD

__all__ = [
    "learning_rate_factor",
    "fit_curve",
    "evaluate_curve",
    "line_bends",
    "mode_connectivity",
    "curve_epochs",
]

logger = logging.getLogger(__name__)

# Batch size of the eval-mode loss/error passes (memory only; results do not depend on it).
EVAL_BATCH_SIZE = 1000


def learning_rate_factor(epoch: int, epochs: int) -> float:
    """Factor on the base lr in ``epoch`` (1-based) of ``epochs``: the reference's schedule.

    ``learning_rate_schedule`` of dnn-mode-connectivity / Yang et al.: with alpha = epoch /
    epochs, 1 up to alpha = 0.5, then linearly down to 0.01 at alpha = 0.9, then 0.01.
    """
    if not 1 <= epoch <= epochs:
        raise ValueError(f"epoch must be in 1..{epochs} (1-based), got {epoch}")
    alpha = epoch / epochs
    if alpha <= 0.5:
        return 1.0
    if alpha <= 0.9:
        return 1.0 - (alpha - 0.5) / 0.4 * 0.99
    return 0.01


def fit_curve(
    model: nn.Module,
    start: Mapping[str, torch.Tensor],
    end: Mapping[str, torch.Tensor],
    middle: Mapping[str, torch.Tensor] | Sequence[Mapping[str, torch.Tensor]],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    epochs: int = 50,
    batch_size: int = 128,
    learning_rate: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    weight_decay_form: str = "bend",
    curve: str = "bezier",
    seed: int = 0,
) -> tuple[list[dict[str, torch.Tensor]], list[dict], bool]:
    """Train the inner bend(s) of the curve start -> middle -> end on (inputs, targets).

    ``middle`` is one bend (the quadratic Bezier curve / two-segment chain) or a list of inner
    bends in order (a Bezier curve of higher degree / a longer chain); all of them are trained.

    Each minibatch draws t ~ U(0, 1) and takes an SGD step on the cross-entropy of the curve
    point theta(t) with BatchNorm in train mode (batch statistics; the module's own buffers
    are left untouched). Batches are a fresh permutation per epoch; the last partial batch is
    dropped. All randomness comes from one generator seeded with ``seed``. ``curve`` is
    "bezier" (the Bezier curve through the bends) or "polychain" (straight segments through them).

    ``weight_decay_form`` "bend": SGD weight decay on the inner bends (wd x w1 in its gradient);
    "curve": the reference's form, 0.5 x wd x ||theta(t)||^2 of the sampled curve point added to
    the loss (all bends' weights enter it; only the inner ones move), optimizer decay 0.
    At the midpoint initialisation the reference's pull on the bend is about wd/3 x w1 on
    average over t, so "bend" decays the bend about 3x as strongly.

    Returns
    -------
    bends : [start, fitted inner bend(s), end], detached
    history : list of {"epoch", "train_loss", "train_error", "lr", "seconds"} per epoch
        (running loss/error of the minibatches at their sampled t, error in percent).
    diverged : bool
        True when an epoch's loss was not finite; fitting stops there.
    """
    num_samples = len(inputs)
    if batch_size > num_samples:
        raise ValueError(f"curve batch_size {batch_size} exceeds the {num_samples} training samples; lower curves.batch_size")
    num_batches = num_samples // batch_size
    generator = torch.Generator().manual_seed(seed)
    start = {k: v.detach() for k, v in start.items()}
    end = {k: v.detach() for k, v in end.items()}
    inner = [middle] if isinstance(middle, Mapping) else list(middle)
    if not inner or any(set(bend) != set(start) for bend in (*inner, end)):
        raise ValueError("the bends must hold the same parameter names (bends of one architecture), with at least one inner bend")
    trainable = [flatten_bend({k: bend[k] for k in start}).detach().clone().requires_grad_(True) for bend in inner]
    flat_bends = [flatten_bend(start), *trainable, flatten_bend({k: end[k] for k in start})]
    if weight_decay_form not in ("bend", "curve"):
        raise ValueError(f"weight_decay_form must be 'bend' or 'curve', got {weight_decay_form!r}")
    on_point = weight_decay if weight_decay_form == "curve" else 0.0
    optimizer = SGD(trainable, lr=learning_rate, momentum=momentum, weight_decay=0.0 if on_point else weight_decay)
    scratch_buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    history, diverged = [], False
    with mode(model, training=True):
        for epoch in range(1, epochs + 1):
            began = time.perf_counter()
            lr = learning_rate * learning_rate_factor(epoch, epochs)
            optimizer.lr = lr
            order = torch.randperm(num_samples, generator=generator).to(inputs.device)
            points = torch.rand(num_batches, generator=generator, dtype=torch.float64).tolist()
            # Sums stay on the device: no host sync per step.
            loss_sum = torch.zeros((), device=inputs.device)
            correct = torch.zeros((), device=inputs.device, dtype=torch.long)
            # Targets of the epoch: samples, or non-padding tokens of translation pairs.
            counted = num_batches * batch_size if targets.dim() == 1 else target_count(targets[order[: num_batches * batch_size]])
            for batch, t in enumerate(points):
                index = order[batch * batch_size : (batch + 1) * batch_size]
                x, y = inputs[index], targets[index]
                theta = curve_point(flat_bends, t, curve)
                logits = point_forward(model, theta, x, like=start, buffers=scratch_buffers)
                loss = F.cross_entropy(logits, y)
                objective = loss + 0.5 * on_point * theta.pow(2).sum() if on_point else loss
                optimizer.zero_grad()
                objective.backward()
                optimizer.step()
                loss_sum += loss.detach()
                correct += (logits.detach().argmax(dim=1) == y).sum()
            record = {
                "epoch": epoch,
                "train_loss": loss_sum.item() / num_batches,
                "train_error": 100.0 * (counted - correct.item()) / counted,
                "lr": lr,
                "seconds": time.perf_counter() - began,
            }
            history.append(record)
            logger.info(
                "curve epoch %d/%d loss %.4f error %.2f%% lr %.5f %.2fs",
                epoch,
                epochs,
                record["train_loss"],
                record["train_error"],
                lr,
                record["seconds"],
            )
            if not math.isfinite(record["train_loss"]):
                logger.warning("curve fitting diverged at epoch %d (loss %s); stopping", epoch, record["train_loss"])
                diverged = True
                break
    fitted = [{k: v.clone() for k, v in unflatten_bend(vector.detach(), start).items()} for vector in trainable]
    return [start, *fitted, end], history, diverged


def mode_connectivity(errors: Sequence[float] | np.ndarray) -> float:
    """mc = (e(0) + e(1)) / 2 - e(t*), t* the evaluated point farthest from that mean.

    ``errors`` is the profile over increasing t, first entry t = 0, last t = 1; t* ranges over
    all evaluated points, ends included, as in Yang et al. 2021's definition. Any NaN gives NaN.
    """
    values = np.asarray(errors, dtype=float)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"mode_connectivity needs a 1D profile with at least the two ends t=0 and t=1, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        return float("nan")
    mean_of_ends = (values[0] + values[-1]) / 2
    worst = int(np.argmax(np.abs(values - mean_of_ends)))
    return float(mean_of_ends - values[worst])


def _profile(point_model, parameters, points, train_inputs, train_targets, test_inputs, test_targets, batch_size, what) -> dict:
    """Eval-mode loss and error (percent) of the models ``parameters(t)`` at ``points``, each
    after recomputing BatchNorm statistics on ``train_inputs``."""
    profile = {"train_error": [], "train_loss": [], "test_error": [], "test_loss": []}
    for t in points:
        began = time.perf_counter()
        load_parameters(point_model, parameters(t))
        recompute_batchnorm_statistics(point_model, train_inputs, batch_size=batch_size)
        train_loss, train_accuracy = evaluate_model(point_model, train_inputs, train_targets, EVAL_BATCH_SIZE)
        test_loss, test_accuracy = evaluate_model(point_model, test_inputs, test_targets, EVAL_BATCH_SIZE)
        profile["train_loss"].append(train_loss)
        profile["train_error"].append(100.0 - train_accuracy)
        profile["test_loss"].append(test_loss)
        profile["test_error"].append(100.0 - test_accuracy)
        logger.info(
            "%s t=%.3f train loss %.4f error %.2f%%, test loss %.4f error %.2f%% (%.2fs)",
            what,
            t,
            train_loss,
            100.0 - train_accuracy,
            test_loss,
            100.0 - test_accuracy,
            time.perf_counter() - began,
        )
    return profile


def line_bends(bends: Sequence[Mapping[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    """The straight line between a curve's ends (of any number of bends) as a quadratic Bezier curve: its middle bend is
    the midpoint, so theta(t) = (1 - t) w0 + t w2 (exactly w0 and w2 at the ends)."""
    start, end = bends[0], bends[-1]
    return [dict(start), {name: (start[name] + end[name]) / 2 for name in start}, dict(end)]


def evaluate_curve(
    model: nn.Module,
    bends: Sequence[Mapping[str, torch.Tensor]],
    train_inputs: torch.Tensor,
    train_targets: torch.Tensor,
    test_inputs: torch.Tensor,
    test_targets: torch.Tensor,
    *,
    points: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    batch_size: int = 128,
    line: bool = True,
    aligned_end: Mapping[str, torch.Tensor] | None = None,
    aligned_bends: Sequence[Mapping[str, torch.Tensor]] | None = None,
    curve: str = "bezier",
    weight_decay: float | None = None,
) -> dict:
    """Loss and 0-1 error (percent) along the curve and, beside it, along the straight line
    between its ends; mode connectivity of both.

    At each t the point is loaded into a copy of ``model`` (buffers other than BatchNorm
    statistics come from ``model``), BatchNorm statistics are recomputed on ``train_inputs``
    in batches of ``batch_size``, and the eval-mode cross-entropy and error are measured on the
    training set (``train_targets``: the cell's labels, noisy ones included) and the test set.
    The line shares the curve's ends (t = 0 and 1 are evaluated once).

    Returns
    -------
    dict with lists "t", "train_error", "train_loss", "test_error", "test_loss" (the curve),
    "line_train_error", ... (the line, with ``line``), floats "mode_connectivity" (on
    train_error), "mode_connectivity_loss" (train_loss), "mode_connectivity_test" (test_error),
    their "line_" counterparts, "curve_length", "line_length" (parameter space) and
    "train_loss_integral", "line_train_loss_integral" (the training cross-entropy averaged over
    t by the trapezoid rule on the points: ``integrated``, not the reference's arc-length
    average with its L2 term, ``arc_length_average``; with ``weight_decay`` that one too, as
    "train_loss_arc_average" and "line_train_loss_arc_average"). With
    ``aligned_end`` (the end model's parameters permuted onto the start's,
    ``lltax.metrics.alignment``) also the line from the start to it, as "aligned_line_...": its
    ends are the curve's (a permuted model computes the same function), its interior the
    permuted interpolation, BatchNorm recomputed at each point. With ``aligned_bends`` (a curve
    fitted from the start to that permuted end) also its profile as "aligned_curve_...", its
    "aligned_mode_connectivity" (+ "_loss", "_test") and "aligned_curve_length".
    """
    points = [float(t) for t in points]
    if points != sorted(points) or points[0] != 0.0 or points[-1] != 1.0:
        raise ValueError(f"curve points must increase from 0 to 1 (both ends included), got {points}")
    point_model = copy.deepcopy(model)
    data = (train_inputs, train_targets, test_inputs, test_targets, batch_size)
    result = {"t": points, **_profile(point_model, lambda t: curve_point(bends, t, curve), points, *data, "curve")}
    result["mode_connectivity"] = mode_connectivity(result["train_error"])
    result["mode_connectivity_loss"] = mode_connectivity(result["train_loss"])
    result["mode_connectivity_test"] = mode_connectivity(result["test_error"])
    length = curve_length if curve == "bezier" else polychain_length
    result["curve_length"] = length(bends)
    result["train_loss_integral"] = integrated(result["train_loss"], points)
    if weight_decay is not None:
        result["train_loss_arc_average"] = arc_length_average(result["train_loss"], bends, points, curve=curve, weight_decay=weight_decay)

    def add_line(prefix: str, straight: list) -> None:
        """A straight line's profile (ends shared with the curve: evaluated once) and its scalars."""
        inner = _profile(point_model, lambda t: curve_point(straight, t), points[1:-1], *data, prefix.rstrip("_").replace("_", " "))
        for key, values in inner.items():
            result[f"{prefix}{key}"] = [result[key][0], *values, result[key][-1]]
        for suffix, key in (("", "train_error"), ("_loss", "train_loss"), ("_test", "test_error")):
            result[f"{prefix}mode_connectivity{suffix}"] = mode_connectivity(result[f"{prefix}{key}"])
        result[f"{prefix}length"] = curve_length(straight)

    if line:
        add_line("line_", line_bends(bends))
        result["line_train_loss_integral"] = integrated(result["line_train_loss"], points)
        if weight_decay is not None:
            result["line_train_loss_arc_average"] = arc_length_average(
                result["line_train_loss"], line_bends(bends), points, weight_decay=weight_decay
            )
    if aligned_bends is not None:
        inner = _profile(point_model, lambda t: curve_point(aligned_bends, t, curve), points[1:-1], *data, "aligned curve")
        for key, values in inner.items():
            result[f"aligned_curve_{key}"] = [result[key][0], *values, result[key][-1]]
        for suffix, key in (("", "train_error"), ("_loss", "train_loss"), ("_test", "test_error")):
            result[f"aligned_mode_connectivity{suffix}"] = mode_connectivity(result[f"aligned_curve_{key}"])
        result["aligned_curve_length"] = length(aligned_bends)
    if aligned_end is not None:
        add_line("aligned_line_", line_bends([bends[0], None, aligned_end]))
    return result


def curve_epochs(epochs: int, scale_epochs: bool, train_fraction: float) -> int:
    """Curve-fitting epochs of a cell: ``epochs``, or with ``scale_epochs`` round(epochs / train_fraction).

    Scaling keeps the number of curve-fitting steps the same for every ``train_fraction``, as
    the reference code does (its int(10 / fraction) * 5 for 50 epochs).
    """
    return max(1, round(epochs / train_fraction)) if scale_epochs else epochs
