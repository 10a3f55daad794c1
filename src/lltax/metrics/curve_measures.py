"""Measures along a fitted curve: its length in parameter space, and a profile averaged over
the curve's parameter t or (Garipov et al.'s integrated loss) over its arc length.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from lltax.metrics.bezier import curve_point, flatten_bend


def curve_length(bends: Sequence[Mapping[str, torch.Tensor]], intervals: int = 1000) -> float:
    """Euclidean length of the Bezier curve through ``bends`` in parameter space, integral of
    |theta'(t)| over [0, 1].

    With n + 1 bends, theta'(t) = n sum_i b_i(t) d_i, d_i = w_(i+1) - w_i and b_i the Bernstein
    weights of degree n - 1, so |theta'(t)|^2 = n^2 b(t)^T G b(t) with G the Gram matrix of the
    d_i: the integral of its root is taken by Simpson's rule on ``intervals`` (even) intervals,
    on scalars only. A straight line (bends evenly spaced on it) gives |wn - w0|.
    """
    flat = torch.stack([flatten_bend(bend).double() for bend in bends])
    steps = flat[1:] - flat[:-1]
    gram = (steps @ steps.T).numpy()
    degree = len(bends) - 1
    t = np.linspace(0.0, 1.0, intervals + 1)
    weights_t = np.stack([math.comb(degree - 1, i) * t**i * (1.0 - t) ** (degree - 1 - i) for i in range(degree)], axis=1)
    speed = degree * np.sqrt(np.maximum(np.einsum("ti,ij,tj->t", weights_t, gram, weights_t), 0.0))
    simpson = np.ones(intervals + 1)
    simpson[1:-1:2], simpson[2:-1:2] = 4.0, 2.0
    return float((speed * simpson).sum() / (3.0 * intervals))


def polychain_length(bends: Sequence[Mapping[str, torch.Tensor]]) -> float:
    """Length of the chain w0 -> w1 -> ... -> wn: the sum of its segments' lengths."""
    flat = [flatten_bend(bend).double() for bend in bends]
    return float(sum((b - a).norm() for a, b in zip(flat[:-1], flat[1:])))


def integrated(values: Sequence[float], points: Sequence[float]) -> float:
    """Trapezoid integral over t in [0, 1] of a profile at the evaluated points: the mean over
    the curve's *parameter* t, as coarse as the points. Not the reference's ``int`` column
    (dnn-mode-connectivity eval_curve.py), which averages over arc length and adds the L2 term:
    that is ``arc_length_average``."""
    values, points = np.asarray(values, dtype=float), np.asarray(points, dtype=float)
    return float(((values[1:] + values[:-1]) / 2 * np.diff(points)).sum())  # np.trapezoid is NumPy 2 only


def arc_length_average(
    values: Sequence[float],
    bends: Sequence[Mapping[str, torch.Tensor]],
    points: Sequence[float],
    *,
    curve: str = "bezier",
    weight_decay: float = 0.0,
) -> float:
    """Garipov et al.'s integrated loss (dnn-mode-connectivity eval_curve.py, ``stats``' ``int``):
    the trapezoid over the evaluated points weighted by the chord lengths
    dl_i = |theta(t_i) - theta(t_(i-1))| and divided by their sum (an average over arc length,
    not over t), of the loss plus the L2 term 0.5 x weight_decay x |theta(t)|^2 over every
    parameter the bends hold (eval_curve's ``tr_loss`` = nll + ``l2_regularizer(wd)``).
    ``values`` is the profile (e.g. the training cross-entropy) at ``points``; weight_decay 0
    gives the arc-length average of the profile itself. The reference evaluates 61 points."""
    values, points = np.asarray(values, dtype=float), [float(t) for t in points]
    flat_bends = [flatten_bend(b).double() for b in bends]
    flat = [curve_point(flat_bends, t, curve) for t in points]
    regularized = values + 0.5 * weight_decay * np.asarray([float(theta @ theta) for theta in flat])
    chords = np.asarray([float((b - a).norm()) for a, b in zip(flat[:-1], flat[1:])])
    if not chords.sum() > 0:
        return float("nan")
    return float(np.sum(0.5 * (regularized[:-1] + regularized[1:]) * chords) / np.sum(chords))
