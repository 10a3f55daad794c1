"""Bezier curves and mode connectivity (lltax.metrics.bezier, lltax.metrics.curves).

Numerics run in float64 on tiny models; every expected value is computed independently of the
code under test (by hand from the definitions, or by the end models themselves).
"""

from __future__ import annotations

import copy
import math
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_models import tiny_mlp
from torch import nn

from lltax import cli
from lltax.contract import CURVE_PROFILES, CURVE_SCALARS
from lltax.jobs import curve_eval as curve_eval_job
from lltax.jobs import curve_fit as curve_fit_job
from lltax.jobs.metric_inputs import build_from_meta, load_model
from lltax.metrics.alignment import permutation_spec, permute, weight_matching
from lltax.metrics.bezier import (
    bezier_coefficients,
    curve_forward,
    curve_point,
    flatten_bend,
    initial_inner_bends,
    initial_middle_bend,
    load_parameters,
    parameters_of,
    polychain_coefficients,
    recompute_batchnorm_statistics,
    unflatten_bend,
)
from lltax.metrics.curve_measures import curve_length, polychain_length
from lltax.metrics.curves import evaluate_curve, fit_curve, learning_rate_factor, line_bends, mode_connectivity
from lltax.metrics.evaluate import evaluate_model
from lltax.storage.atomic_files import read_json
from lltax.storage.checkpoint import save_checkpoint

LENGTH, CLASSES = 8, 3


class TinyConvBN(nn.Module):
    """Conv1d -> BatchNorm -> ReLU -> Linear: the smallest model with BatchNorm in the middle."""

    def __init__(self, channels: int = 4):
        super().__init__()
        self.conv = nn.Conv1d(1, channels, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm1d(channels)
        self.head = nn.Linear(channels * LENGTH, CLASSES)

    def forward(self, x):
        return self.head(torch.flatten(F.relu(self.bn(self.conv(x))), 1))


def make_model(factory, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return factory().double()


def make_data(num_samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(num_samples, 1, LENGTH, generator=generator, dtype=torch.float64)
    y = torch.randint(0, CLASSES, (num_samples,), generator=generator)
    return x, y


def train_plain(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float = 0.5) -> nn.Module:
    """Full-batch gradient descent: enough to memorize a few random labels."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


def permuted_copy(model: nn.Sequential, seed: int) -> nn.Sequential:
    """The same function with its hidden units permuted (a different point in weight space)."""
    permutation = torch.randperm(model[1].out_features, generator=torch.Generator().manual_seed(seed))
    other = copy.deepcopy(model)
    with torch.no_grad():
        other[1].weight.copy_(model[1].weight[permutation])
        other[1].bias.copy_(model[1].bias[permutation])
        other[3].weight.copy_(model[3].weight[:, permutation])
    return other


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and do not stall when the CPU is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def memorized_pair():
    """An MLP that memorized random labels and its hidden-unit permutation: a barrier between them."""
    x, y = make_data(96, seed=0)
    model = train_plain(tiny_mlp(LENGTH, 32, CLASSES, seed=0), x, y, steps=100)
    return model, permuted_copy(model, seed=1), x, y


# ---------------------------------------------------------------------------------------------
# Curve geometry


def test_bezier_coefficients_by_hand():
    assert bezier_coefficients(0.0) == (1.0, 0.0, 0.0)
    assert bezier_coefficients(1.0) == (0.0, 0.0, 1.0)
    assert bezier_coefficients(0.5) == (0.25, 0.5, 0.25)
    assert bezier_coefficients(0.25) == pytest.approx((0.5625, 0.375, 0.0625))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bezier_coefficients(1.5)


def test_curve_point_ends_are_the_end_bends_exactly():
    bends = [parameters_of(make_model(TinyConvBN, seed)) for seed in (0, 1, 2)]
    for t, expected in ((0.0, bends[0]), (1.0, bends[2])):
        point = curve_point(bends, t)
        for name in expected:
            assert torch.equal(point[name], expected[name])
    middle = curve_point(bends, 0.5)
    for name in middle:
        torch.testing.assert_close(middle[name], 0.25 * bends[0][name] + 0.5 * bends[1][name] + 0.25 * bends[2][name])
    # The flat form (used while fitting) is the same curve.
    flat = unflatten_bend(curve_point([flatten_bend(b) for b in bends], 0.3), bends[0])
    expected = curve_point(bends, 0.3)
    assert list(flat) == list(expected)
    for name in flat:
        assert flat[name].shape == expected[name].shape
        torch.testing.assert_close(flat[name], expected[name], rtol=1e-15, atol=1e-15)


def test_curve_forward_at_ends_equals_end_models_in_train_mode():
    start, end = make_model(TinyConvBN, 0).train(), make_model(TinyConvBN, 1).train()
    template = make_model(TinyConvBN, 2).train()
    bends = [parameters_of(start), parameters_of(make_model(TinyConvBN, 3)), parameters_of(end)]
    flat_bends = [flatten_bend(bend) for bend in bends]
    x, _ = make_data(16, seed=3)
    scratch = {k: v.clone() for k, v in template.named_buffers()}
    before = {k: v.clone() for k, v in template.named_buffers()}
    for t, model in ((0.0, start), (1.0, end)):
        output = curve_forward(template, flat_bends, t, x, like=bends[0], buffers=scratch)
        torch.testing.assert_close(output, model(x), rtol=1e-12, atol=1e-12)
    # BatchNorm wrote its statistics into the scratch buffers, not into the module.
    for name, value in template.named_buffers():
        assert torch.equal(value, before[name])
    assert scratch["bn.num_batches_tracked"].item() == 2


def test_recompute_batchnorm_statistics_is_the_sample_weighted_average():
    torch.manual_seed(0)
    layer = nn.BatchNorm1d(3).double().eval()
    layer.momentum = 0.3
    x = torch.randn(10, 3, dtype=torch.float64) * 2 + 1
    recompute_batchnorm_statistics(layer, x, batch_size=4)  # batches of 4, 4, 2
    batches = [x[:4], x[4:8], x[8:]]
    sizes = torch.tensor([4.0, 4.0, 2.0], dtype=torch.float64)
    expected_mean = sum(s * b.mean(0) for s, b in zip(sizes, batches)) / 10
    expected_var = sum(s * b.var(0, unbiased=True) for s, b in zip(sizes, batches)) / 10
    torch.testing.assert_close(layer.running_mean, expected_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.running_var, expected_var, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.running_mean, x.mean(0), rtol=1e-12, atol=1e-12)  # weighting makes it exact
    assert layer.momentum == 0.3 and not layer.training
    recompute_batchnorm_statistics(layer, x, batch_size=100)  # one batch: the data's own statistics
    torch.testing.assert_close(layer.running_var, x.var(0, unbiased=True), rtol=1e-12, atol=1e-12)


def test_initial_middle_bend():
    start, end = parameters_of(make_model(TinyConvBN, 0)), parameters_of(make_model(TinyConvBN, 1))
    middle = initial_middle_bend(start, end, init="midpoint")
    for name in start:
        torch.testing.assert_close(middle[name], (start[name] + end[name]) / 2)
    state = torch.random.get_rng_state()
    random_middle = initial_middle_bend(start, end, init="random", model_factory=TinyConvBN, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    fresh = parameters_of(make_model(TinyConvBN, 7))
    for name in start:
        assert random_middle[name].dtype == torch.float64
        torch.testing.assert_close(random_middle[name], fresh[name])
    with pytest.raises(ValueError, match="model_factory"):
        initial_middle_bend(start, end, init="random")
    with pytest.raises(ValueError, match="midpoint"):
        initial_middle_bend(start, end, init="linear")


# ---------------------------------------------------------------------------------------------
# Evaluation along the curve and mode connectivity


def test_curve_ends_reproduce_end_models_after_batchnorm_update():
    start, end = make_model(TinyConvBN, 0), make_model(TinyConvBN, 1)
    for model in (start, end):  # stale statistics that the update must replace
        model.bn.running_mean.normal_()
        model.bn.running_var.uniform_(0.5, 2.0)
    x, y = make_data(40, seed=1)
    x_test, y_test = make_data(24, seed=2)
    bends = [parameters_of(start), parameters_of(make_model(TinyConvBN, 2)), parameters_of(end)]
    profile = evaluate_curve(start, bends, x, y, x_test, y_test, points=[0.0, 0.5, 1.0], batch_size=16)
    for index, model in ((0, start), (-1, end)):
        reference = copy.deepcopy(model)
        recompute_batchnorm_statistics(reference, x, batch_size=16)
        train_loss, train_accuracy = evaluate_model(reference, x, y)
        test_loss, test_accuracy = evaluate_model(reference, x_test, y_test)
        assert profile["train_loss"][index] == pytest.approx(train_loss, rel=1e-12)
        assert profile["test_loss"][index] == pytest.approx(test_loss, rel=1e-12)
        assert profile["train_error"][index] == pytest.approx(100 - train_accuracy)
        assert profile["test_error"][index] == pytest.approx(100 - test_accuracy)
    assert profile["t"] == [0.0, 0.5, 1.0]
    # The template model itself is not modified by the evaluation.
    assert torch.equal(start.conv.weight, bends[0]["conv.weight"])


def test_line_beside_the_curve_is_the_straight_line_with_batchnorm_recomputed():
    """The line's profile at every t is the model (1 - t) w0 + t w2 with its own BatchNorm
    statistics; at its ends, the end models (BatchNorm recomputed), as the curve's ends."""
    start, end = make_model(TinyConvBN, 0), make_model(TinyConvBN, 1)
    x, y = make_data(40, seed=1)
    x_test, y_test = make_data(24, seed=2)
    bends = [parameters_of(start), parameters_of(make_model(TinyConvBN, 2)), parameters_of(end)]
    points = [0.0, 0.3, 0.5, 1.0]
    profile = evaluate_curve(start, bends, x, y, x_test, y_test, points=points, batch_size=16)
    for index, t in enumerate(points):
        reference = copy.deepcopy(start)
        load_parameters(reference, {k: (1 - t) * bends[0][k] + t * bends[2][k] for k in bends[0]})
        recompute_batchnorm_statistics(reference, x, batch_size=16)
        train_loss, train_accuracy = evaluate_model(reference, x, y)
        test_loss, _ = evaluate_model(reference, x_test, y_test)
        assert profile["line_train_loss"][index] == pytest.approx(train_loss, rel=1e-9)
        assert profile["line_test_loss"][index] == pytest.approx(test_loss, rel=1e-9)
        assert profile["line_train_error"][index] == pytest.approx(100 - train_accuracy)
    assert profile["line_train_loss"][0] == profile["train_loss"][0] and profile["line_train_loss"][-1] == profile["train_loss"][-1]
    assert profile["line_mode_connectivity"] == mode_connectivity(profile["line_train_error"])
    assert profile["mode_connectivity_test"] == mode_connectivity(profile["test_error"])
    assert profile["line_train_loss_integral"] == pytest.approx(
        sum((a + b) / 2 * (t1 - t0) for a, b, t0, t1 in zip(profile["line_train_loss"], profile["line_train_loss"][1:], points, points[1:]))
    )


def test_a_polychain_through_the_midpoint_is_the_line():
    start, middle, end = (flatten_bend(parameters_of(make_model(TinyConvBN, seed))) for seed in range(3))
    midpoint = (start + end) / 2
    for t in (0.0, 0.1, 0.5, 0.8, 1.0):
        torch.testing.assert_close(curve_point([start, midpoint, end], t, "polychain"), (1 - t) * start + t * end, rtol=1e-12, atol=1e-12)
    assert torch.equal(curve_point([start, middle, end], 0.5, "polychain"), middle)  # the bend, at t = 1/2
    torch.testing.assert_close(curve_point([start, middle, end], 0.25, "polychain"), (start + middle) / 2, rtol=1e-12, atol=1e-12)
    as_dicts = [{"w": start}, {"w": middle}, {"w": end}]
    assert polychain_length(as_dicts) == pytest.approx(float((middle - start).norm() + (end - middle).norm()), rel=1e-12)
    with pytest.raises(ValueError, match="unknown curve 'spline'"):
        curve_point([start, middle, end], 0.5, "spline")


def test_polychain_fitting_lowers_the_loss_and_evaluates_its_own_kind(memorized_pair):
    model, permuted, x, y = memorized_pair
    start, end = parameters_of(model), parameters_of(permuted)
    middle = initial_middle_bend(start, end, init="midpoint")
    before = evaluate_curve(model, [start, middle, end], x, y, x, y, curve="polychain")
    bends, _, _ = fit_curve(model, start, end, middle, x, y, **{**FIT, "curve": "polychain"})
    after = evaluate_curve(model, bends, x, y, x, y, curve="polychain")
    assert np.mean(after["train_loss"]) < 0.5 * np.mean(before["train_loss"])
    assert after["curve_length"] == pytest.approx(polychain_length(bends))
    # The middle point of a polychain is the bend itself: its loss at t = 1/2.
    point = copy.deepcopy(model)
    load_parameters(point, bends[1])
    assert after["train_loss"][2] == pytest.approx(evaluate_model(point, x, y)[0], rel=1e-12)


def test_curve_length_against_a_fine_polyline():
    start, middle, end = (flatten_bend(parameters_of(make_model(TinyConvBN, seed))) for seed in range(3))
    as_dicts = [{"w": start}, {"w": middle}, {"w": end}]
    t = torch.linspace(0, 1, 20001, dtype=torch.float64)
    fine = torch.stack([curve_point([start, middle, end], float(v)) for v in t[::10]])
    polyline = float((fine[1:] - fine[:-1]).norm(dim=1).sum())
    assert curve_length(as_dicts) == pytest.approx(polyline, rel=1e-6)
    # The straight line's length is the ends' distance; a bend off the line only lengthens it.
    assert curve_length(line_bends(as_dicts)) == pytest.approx(float((end - start).norm()), rel=1e-9)
    assert curve_length(as_dicts) > float((end - start).norm())


def test_more_bends_by_hand():
    """Cubic Bezier weights are (1-t)^3, 3t(1-t)^2, 3t^2(1-t), t^3; a 4-bend chain passes through
    bend k at t = k/3 and is straight in between."""
    assert bezier_coefficients(0.5, 4) == (0.125, 0.375, 0.375, 0.125)
    assert bezier_coefficients(0.25, 4) == pytest.approx((27 / 64, 27 / 64, 9 / 64, 1 / 64))
    assert polychain_coefficients(1 / 3, 4) == pytest.approx((0.0, 1.0, 0.0, 0.0))
    assert polychain_coefficients(0.5, 4) == pytest.approx((0.0, 0.5, 0.5, 0.0))
    assert polychain_coefficients(1.0, 4) == (0.0, 0.0, 0.0, 1.0)
    bends = [flatten_bend(parameters_of(make_model(TinyConvBN, seed))) for seed in range(4)]
    torch.testing.assert_close(curve_point(bends, 0.5, "polychain"), (bends[1] + bends[2]) / 2, rtol=1e-12, atol=1e-12)
    assert torch.equal(curve_point(bends, 0.0), bends[0]) and torch.equal(curve_point(bends, 1.0, "polychain"), bends[3])
    lengths = sum(float((b - a).norm()) for a, b in zip(bends[:-1], bends[1:]))
    assert polychain_length([{"w": b} for b in bends]) == pytest.approx(lengths, rel=1e-12)
    with pytest.raises(ValueError, match="at least 3 bends"):
        curve_point(bends[:2], 0.5)


@pytest.mark.parametrize("count", [1, 2, 4])
@pytest.mark.parametrize("curve", ["bezier", "polychain"])
def test_inner_bends_start_as_the_line(count, curve):
    """Bends evenly spaced on the line make both curve kinds the line itself, traversed uniformly."""
    start, end = (parameters_of(make_model(TinyConvBN, seed)) for seed in (0, 1))
    bends = [start, *initial_inner_bends(start, end, count), end]
    flat_start, flat_end = flatten_bend(start), flatten_bend(end)
    for t in (0.0, 0.2, 0.5, 0.9, 1.0):
        torch.testing.assert_close(flatten_bend(curve_point(bends, t, curve)), (1 - t) * flat_start + t * flat_end, rtol=1e-12, atol=1e-12)
    assert curve_length(bends) == pytest.approx(float((flat_end - flat_start).norm()), rel=1e-9)
    random = initial_inner_bends(start, end, count, init="random", model_factory=lambda: TinyConvBN().double(), seed=3)
    assert len(random) == count and all(set(b) == set(start) for b in random)
    if count > 1:  # one seed per bend: distinct inits
        assert not torch.equal(flatten_bend(random[0]), flatten_bend(random[1]))


def test_cubic_curve_length_against_a_fine_polyline():
    bends = [flatten_bend(parameters_of(make_model(TinyConvBN, seed))) for seed in range(4)]
    t = torch.linspace(0, 1, 2001, dtype=torch.float64)
    fine = torch.stack([curve_point(bends, float(v)) for v in t])
    polyline = float((fine[1:] - fine[:-1]).norm(dim=1).sum())
    assert curve_length([{"w": b} for b in bends]) == pytest.approx(polyline, rel=1e-6)


def test_fitting_two_inner_bends_lowers_the_loss_and_keeps_the_ends(memorized_pair):
    model, permuted, x, y = memorized_pair
    start, end = parameters_of(model), parameters_of(permuted)
    inner = initial_inner_bends(start, end, 2)
    for curve in ("bezier", "polychain"):
        before = evaluate_curve(model, [start, *inner, end], x, y, x, y, curve=curve, line=False)
        bends, history, diverged = fit_curve(model, start, end, inner, x, y, **{**FIT, "curve": curve})
        after = evaluate_curve(model, bends, x, y, x, y, curve=curve, line=False)
        assert len(bends) == 4 and not diverged and len(history) == FIT["epochs"]
        assert all(torch.equal(bends[0][k], start[k]) and torch.equal(bends[-1][k], end[k]) for k in start)
        assert all(not torch.equal(bends[i][k], inner[i - 1][k]) for i in (1, 2) for k in ("1.weight",))  # both trained
        assert max(after["train_loss"][1:-1]) < max(before["train_loss"][1:-1])


def test_curve_between_copies_of_one_model_has_zero_mode_connectivity():
    model = make_model(TinyConvBN, 0)
    x, y = make_data(40, seed=1)
    start = parameters_of(model)
    bends = [start, initial_middle_bend(start, start, init="midpoint"), start]
    profile = evaluate_curve(model, bends, x, y, x, y, batch_size=16)
    assert len(set(profile["train_loss"])) == 1
    assert profile["mode_connectivity"] == 0.0
    assert profile["mode_connectivity_loss"] == 0.0


def test_permuted_copy_without_fitting_has_a_barrier(memorized_pair):
    model, permuted, x, y = memorized_pair
    torch.testing.assert_close(permuted(x), model(x))  # same function, other weights
    start, end = parameters_of(model), parameters_of(permuted)
    bends = [start, initial_middle_bend(start, end, init="midpoint"), end]
    profile = evaluate_curve(model, bends, x, y, x, y)
    assert profile["train_error"][0] == profile["train_error"][-1] < 10
    assert profile["mode_connectivity"] < -10  # percent
    assert profile["mode_connectivity_loss"] < 0
    assert profile["line_mode_connectivity"] == profile["mode_connectivity"]  # the midpoint bend: the line itself


def test_alignment_removes_the_barrier_of_a_permuted_copy(memorized_pair):
    """A model and its own permuted copy: a barrier along the straight line, none along the line
    to the copy permuted back by weight matching (zero barrier after alignment)."""
    model, permuted, x, y = memorized_pair
    spec = permutation_spec(model)
    start, end = parameters_of(model), parameters_of(permuted)
    aligned = permute(spec, weight_matching(spec, start, end), end)
    assert all(torch.equal(aligned[k], start[k]) for k in start)
    bends = [start, initial_middle_bend(start, end, init="midpoint"), end]
    profile = evaluate_curve(model, bends, x, y, x, y, points=[0.0, 0.25, 0.5, 0.75, 1.0], aligned_end=aligned)
    assert profile["line_mode_connectivity"] < -10
    assert profile["aligned_line_mode_connectivity"] == 0.0 and profile["aligned_line_length"] == 0.0
    # Flat along it: every point is the model itself (the end: its permuted copy, rounding apart).
    assert max(profile["aligned_line_train_loss"]) - min(profile["aligned_line_train_loss"]) < 1e-12


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        ([0.0, 12.0, 30.0, 12.0, 0.0], -30.0),  # barrier: the middle is worse than the ends
        ([2.0, 2.0, 2.0], 0.0),  # flat: well connected
        ([10.0, 6.0, 4.0, 6.0, 10.0], 6.0),  # under-trained ends: the curve is better
        ([2.0, 9.0, 4.0], -6.0),  # unequal ends: measured from their mean, 3
        ([4.0, 0.5, 5.0, 2.0], 2.5),  # the largest |deviation| wins, whatever its sign
    ],
)
def test_mode_connectivity_sign_cases(errors, expected):
    assert mode_connectivity(errors) == pytest.approx(expected)
    assert mode_connectivity(np.asarray(errors)) == pytest.approx(expected)


def test_mode_connectivity_bad_input():
    assert math.isnan(mode_connectivity([0.0, float("nan"), 1.0]))
    with pytest.raises(ValueError, match="t=0 and t=1"):
        mode_connectivity([1.0])


# ---------------------------------------------------------------------------------------------
# Fitting


def test_learning_rate_factor_by_hand():
    # alpha = epoch / 50: 1 up to 0.5, linear to 0.01 at 0.9, then 0.01.
    assert [learning_rate_factor(e, 50) for e in (1, 25)] == [1.0, 1.0]
    assert learning_rate_factor(30, 50) == pytest.approx(1 - 0.25 * 0.99)  # alpha 0.6
    assert learning_rate_factor(35, 50) == pytest.approx(0.505)  # alpha 0.7
    assert learning_rate_factor(45, 50) == pytest.approx(0.01)  # alpha 0.9
    assert learning_rate_factor(50, 50) == 0.01
    assert learning_rate_factor(1, 1) == 0.01
    with pytest.raises(ValueError, match="1-based"):
        learning_rate_factor(0, 50)


FIT = dict(epochs=8, batch_size=16, learning_rate=0.05, momentum=0.9, weight_decay=5e-4, seed=3)


def test_fit_lowers_the_curve_loss_and_keeps_the_ends(memorized_pair):
    model, permuted, x, y = memorized_pair
    start, end = parameters_of(model), parameters_of(permuted)
    middle = initial_middle_bend(start, end, init="midpoint")
    before = evaluate_curve(model, [start, middle, end], x, y, x, y)
    bends, history, diverged = fit_curve(model, start, end, middle, x, y, **FIT)
    after = evaluate_curve(model, bends, x, y, x, y)
    assert not diverged and [r["epoch"] for r in history] == list(range(1, 9))
    assert np.mean(after["train_loss"]) < 0.5 * np.mean(before["train_loss"])
    assert after["mode_connectivity_loss"] > before["mode_connectivity_loss"]
    for name in start:
        assert torch.equal(bends[0][name], start[name]) and torch.equal(bends[2][name], end[name])
    assert history[-1]["lr"] == pytest.approx(0.05 * learning_rate_factor(8, 8))
    # Same seed, same curve.
    again, _, _ = fit_curve(model, start, end, middle, x, y, **FIT)
    for name in start:
        assert torch.equal(again[1][name], bends[1][name])


@pytest.mark.parametrize("form", ["bend", "curve"])
def test_one_fitting_step_is_sgd_on_the_stated_objective(memorized_pair, form):
    """One step (one batch, momentum 0) moves the middle bend by -lr x the gradient of the
    cross-entropy at theta(t) plus, by form, wd x w1 (bend) or 0.5 wd ||theta(t)||^2 (curve)."""
    model, permuted, x, y = memorized_pair
    start, end = parameters_of(model), parameters_of(permuted)
    middle = {k: v + 0.01 for k, v in initial_middle_bend(start, end, init="midpoint").items()}
    wd, lr, seed = 0.3, 0.05, 4
    settings = dict(epochs=1, batch_size=len(x), learning_rate=lr, momentum=0.0, weight_decay=wd, weight_decay_form=form, seed=seed)
    bends, _, _ = fit_curve(model, start, end, middle, x, y, **settings)
    generator = torch.Generator().manual_seed(seed)  # the draws fit_curve makes: batch order, then t
    order = torch.randperm(len(x), generator=generator)
    (t,) = torch.rand(1, generator=generator, dtype=torch.float64).tolist()
    bend = {k: v.clone().requires_grad_(True) for k, v in middle.items()}
    theta = curve_point([start, bend, end], t)
    objective = F.cross_entropy(torch.func.functional_call(model, theta, (x[order],)), y[order])
    if form == "curve":
        objective = objective + 0.5 * wd * sum(v.pow(2).sum() for v in theta.values())
    objective.backward()
    step = lr * learning_rate_factor(1, 1)
    for name, value in middle.items():
        gradient = bend[name].grad + (wd * value if form == "bend" else 0.0)
        torch.testing.assert_close(bends[1][name], value - step * gradient, rtol=1e-10, atol=1e-12)


def test_fit_leaves_the_module_buffers_alone():
    model = make_model(TinyConvBN, 0).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = make_data(32, seed=1)
    start, end = parameters_of(model), parameters_of(make_model(TinyConvBN, 1))
    fit_curve(model, start, end, initial_middle_bend(start, end), x, y, **{**FIT, "epochs": 1})
    assert not model.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])


def test_fit_reports_divergence():
    model = tiny_mlp(LENGTH, 32, CLASSES, seed=0)
    x, y = make_data(32, seed=1)
    start, end = parameters_of(model), parameters_of(tiny_mlp(LENGTH, 32, CLASSES, seed=1))
    _, history, diverged = fit_curve(model, start, end, initial_middle_bend(start, end), x * 1e200, y, **{**FIT, "learning_rate": 1e200})
    assert diverged and len(history) < FIT["epochs"]


def test_fit_rejects_a_batch_larger_than_the_data():
    model = tiny_mlp(LENGTH, 32, CLASSES, seed=0)
    x, y = make_data(8, seed=1)
    start = parameters_of(model)
    with pytest.raises(ValueError, match="curves.batch_size"):
        fit_curve(model, start, start, start, x, y, batch_size=16)


# ---------------------------------------------------------------------------------------------
# Command line


def _write_checkpoint(path, model, seed, diverged=False):
    meta = {
        "model": "mlp",
        "width": 16,
        "num_classes": CLASSES,
        "input_shape": [1, LENGTH],
        "dataset": {"name": "mnist1d", "root": "unused", "download": False, "augment": False},
        "cell": {"width": 16, "batch_size": 16, "label_noise": 0.0, "train_fraction": 1.0, "learning_rate": 0.1, "weight_decay": 0.0},
        "seed": seed,
        "diverged": diverged,
        "config_hash": "test",
        "versions": {},
    }
    save_checkpoint(path, model, meta)


@pytest.fixture(scope="module")
def cli_models():
    from lltax.models import build_model

    x, y = make_data(64, seed=0)
    x_test, y_test = make_data(32, seed=1)
    dataset = types.SimpleNamespace(x_train=x.float(), y_train=y, x_test=x_test.float(), y_test=y_test)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(train_plain(build_model("mlp", 16, CLASSES, (1, LENGTH)), dataset.x_train, y, steps=50, lr=0.2))
    return models, dataset


@pytest.fixture
def cli_setup(tmp_path, monkeypatch, cli_models):
    models, dataset = cli_models
    # The cell's data would come from lltax.data.cells; a tiny in-memory set keeps the test offline and fast.
    for job in (curve_fit_job, curve_eval_job):
        monkeypatch.setattr(job, "load_cell_data", lambda meta, device, data_dir=None: dataset)
    paths = []
    for seed, model in enumerate(models):
        paths.append(tmp_path / f"seed={seed}" / "model.pt")
        _write_checkpoint(paths[-1], model, seed)
    return tmp_path, paths


def _run(argv):
    return cli.run(argv)


SETTINGS = '{"epochs": 2, "batch_size": 16, "points": [0.0, 0.5, 1.0], "init": "random", "pairs": "first"}'


def test_cli_fit_and_eval(cli_setup):
    folder, (path_a, path_b) = cli_setup
    curve_path, eval_path = folder / "pair=0-1" / "curve.pt", folder / "pair=0-1" / "curve_eval.json"
    assert (
        _run(["curve-fit", "--checkpoints", str(path_a), str(path_b), "--settings", SETTINGS, "--device", "cpu", "--out", str(curve_path)])
        == 0
    )
    payload = torch.load(curve_path, weights_only=True)
    meta = payload["meta"]
    assert (meta["seed_a"], meta["seed_b"], meta["diverged"]) == (0, 1, False)
    assert meta["settings"]["epochs"] == 2 and meta["settings"]["learning_rate"] == 0.01  # given + schema default
    assert [r["epoch"] for r in meta["history"]] == [1, 2] and "seconds" not in meta["history"][0]
    # Same checkpoints, settings and seed: a byte-identical file (no rerun downstream).
    again = folder / "again" / "curve.pt"
    _run(["curve-fit", "--checkpoints", str(path_a), str(path_b), "--settings", SETTINGS, "--device", "cpu", "--out", str(again)])
    assert again.read_bytes() == curve_path.read_bytes()
    end_a = torch.load(path_a, weights_only=True)["state_dict"]
    assert all(torch.equal(payload["bends"][0][k], end_a[k]) for k in payload["bends"][0])
    # As the curve_eval rule does: only the points (the BatchNorm batch size comes from the fit).
    assert (
        _run(
            [
                "curve-eval",
                "--curves",
                str(curve_path),
                "--settings",
                '{"points": [1.0, 0.5, 0.0]}',
                "--device",
                "cpu",
                "--out",
                str(eval_path),
            ]
        )
        == 0
    )
    result = read_json(eval_path)
    assert set(result) == {
        "seed_a",
        "seed_b",
        "t",
        "train_error",
        "train_loss",
        "test_error",
        "test_loss",
        "cell",
        "checkpoints_sha256",
        "settings",  # this evaluation's, and the curve's fitting settings: checked against the config when merged
        "fit_settings",
        "runtime",  # device, precision, code
        *CURVE_SCALARS.values(),
        *CURVE_PROFILES.values(),
    }
    # Provenance: the cell and both end models' weights checksums.
    assert result["checkpoints_sha256"] == {
        str(s): torch.load(p, weights_only=True)["meta"]["state_sha256"] for s, p in ((0, path_a), (1, path_b))
    }
    assert result["t"] == [0.0, 0.5, 1.0] and len(result["train_error"]) == 3
    assert result["mode_connectivity"] == pytest.approx(mode_connectivity(result["train_error"]))
    assert result["line_mode_connectivity"] == pytest.approx(mode_connectivity(result["line_train_error"]))
    # t = 0 is end model A itself (no BatchNorm in an MLP): its own training loss.
    model_a, _ = load_model(path_a)
    dataset = curve_eval_job.load_cell_data(None, "cpu")
    assert result["train_loss"][0] == pytest.approx(evaluate_model(model_a, dataset.x_train, dataset.y_train)[0], rel=1e-6)


def test_a_curve_file_is_trusted_as_a_whole(cli_setup):
    folder, (path_a, path_b) = cli_setup
    curve_path = folder / "pair=0-1" / "curve.pt"
    _run(["curve-fit", "--checkpoints", str(path_a), str(path_b), "--settings", SETTINGS, "--device", "cpu", "--out", str(curve_path)])
    payload = torch.load(curve_path, weights_only=True)
    name = next(iter(payload["bends"][1]))
    payload["bends"][1][name] = payload["bends"][1][name] + 1.0  # a flipped middle bend
    torch.save(payload, curve_path)
    with pytest.raises(ValueError, match="curve.pt is corrupt: its contents do not match the checksum"):
        _run(["curve-eval", "--curves", str(curve_path), "--settings", SETTINGS, "--device", "cpu", "--out", str(folder / "e.json")])
    del payload["checksum"]
    torch.save(payload, curve_path)
    with pytest.raises(ValueError, match="carries no checksum"):
        _run(["curve-eval", "--curves", str(curve_path), "--settings", SETTINGS, "--device", "cpu", "--out", str(folder / "e.json")])


def test_cli_diverged_end_model_gives_nan(cli_setup):
    folder, (path_a, path_b) = cli_setup
    state = torch.load(path_b, weights_only=True)
    model = build_from_meta(state["meta"])
    model.load_state_dict(state["state_dict"])
    _write_checkpoint(path_b, model, seed=1, diverged=True)
    curve_path, eval_path = folder / "curve.pt", folder / "curve_eval.json"
    _run(["curve-fit", "--checkpoints", str(path_a), str(path_b), "--settings", SETTINGS, "--device", "cpu", "--out", str(curve_path)])
    assert torch.load(curve_path, weights_only=True)["meta"]["diverged"] is True
    _run(["curve-eval", "--curves", str(curve_path), "--settings", SETTINGS, "--device", "cpu", "--out", str(eval_path)])
    result = read_json(eval_path)
    assert result["mode_connectivity"] is None and result["train_error"] == [None, None, None]
    assert result["t"] == [0.0, 0.5, 1.0] and (result["seed_a"], result["seed_b"]) == (0, 1)


def test_cli_rejects_pairs_of_different_cells(cli_setup):
    folder, (path_a, path_b) = cli_setup
    state = torch.load(path_b, weights_only=True)
    model = build_from_meta(state["meta"])
    model.load_state_dict(state["state_dict"])
    save_checkpoint(path_b, model, {**state["meta"], "cell": {**state["meta"]["cell"], "batch_size": 32}})
    with pytest.raises(ValueError, match="same grid cell"):
        _run(["curve-fit", "--checkpoints", str(path_a), str(path_b), "--settings", "{}", "--device", "cpu", "--out", str(folder / "c.pt")])


def test_cli_bad_settings_name_the_key(cli_setup):
    folder, (path_a, path_b) = cli_setup
    with pytest.raises(ValueError, match="epochs"):
        _run(
            [
                "curve-fit",
                "--checkpoints",
                str(path_a),
                str(path_b),
                "--settings",
                '{"epochs": 0}',
                "--device",
                "cpu",
                "--out",
                str(folder / "c.pt"),
            ]
        )


def test_registered_in_the_lltax_command():
    from lltax.cli import COMMAND_MODULES

    assert {"lltax.jobs.curve_fit", "lltax.jobs.curve_eval"} <= set(COMMAND_MODULES)


def test_curve_epochs_scale_with_the_data_fraction_to_keep_the_steps():
    from lltax.metrics.curves import curve_epochs

    assert curve_epochs(50, False, 0.3) == 50
    assert curve_epochs(50, True, 1.0) == 50
    assert curve_epochs(50, True, 0.5) == 100  # the reference code: int(10 / 0.5) * 5
    assert curve_epochs(50, True, 0.1) == 500  # int(10 / 0.1) * 5
    # steps per epoch scale with the fraction, so epochs x fraction stays ~ constant
    for fraction in (0.3, 0.7, 0.05):
        assert abs(curve_epochs(50, True, fraction) * fraction - 50) <= 0.5 * fraction


def test_cli_fit_aligned_and_more_bends(cli_setup):
    """curves.fit_aligned: a second curve, same settings, from A to B permuted onto A by weight
    matching; its end computes B's function, and the aligned line shares that end."""
    folder, (path_a, path_b) = cli_setup
    curve_path, eval_path = folder / "curve.pt", folder / "curve_eval.json"
    settings = SETTINGS[:-1] + ', "bends": 4, "fit_aligned": true}'
    _run(["curve-fit", "--checkpoints", str(path_a), str(path_b), "--settings", settings, "--device", "cpu", "--out", str(curve_path)])
    payload = torch.load(curve_path, weights_only=True)
    assert len(payload["bends"]) == len(payload["aligned_bends"]) == 4
    assert payload["meta"]["settings"]["bends"] == 4 and payload["meta"]["settings"]["fit_aligned"] is True
    assert [r["epoch"] for r in payload["meta"]["aligned_history"]] == [1, 2] and payload["meta"]["aligned_diverged"] is False
    model_a, _ = load_model(path_a)
    model_b, _ = load_model(path_b)
    start, end = parameters_of(model_a), parameters_of(model_b)
    spec = permutation_spec(model_b)
    expected = permute(spec, weight_matching(spec, start, end, seed=0), end)
    assert all(torch.equal(payload["aligned_bends"][-1][k], expected[k]) for k in expected)
    assert all(torch.equal(payload["aligned_bends"][0][k], start[k]) for k in start)
    x = curve_eval_job.load_cell_data(None, "cpu").x_test
    aligned_model = copy.deepcopy(model_b)
    load_parameters(aligned_model, payload["aligned_bends"][-1])
    torch.testing.assert_close(aligned_model(x), model_b(x), rtol=1e-5, atol=1e-5)  # a permutation: the same function
    _run(
        ["curve-eval", "--curves", str(curve_path), "--settings", '{"points": [0.0, 0.5, 1.0]}', "--device", "cpu", "--out", str(eval_path)]
    )
    result = read_json(eval_path)
    assert result["aligned_mode_connectivity"] == pytest.approx(mode_connectivity(result["aligned_curve_train_error"]))
    assert result["aligned_curve_train_loss"][0] == result["train_loss"][0]
    assert result["aligned_curve_length"] > 0 and result["aligned_line_length"] == pytest.approx(
        float((flatten_bend(expected) - flatten_bend(start)).norm()), rel=1e-6
    )
    # Without fit_aligned the aligned curve's variables are NaN (null in JSON).
    _run(["curve-fit", "--checkpoints", str(path_a), str(path_b), "--settings", SETTINGS, "--device", "cpu", "--out", str(curve_path)])
    _run(
        ["curve-eval", "--curves", str(curve_path), "--settings", '{"points": [0.0, 0.5, 1.0]}', "--device", "cpu", "--out", str(eval_path)]
    )
    result = read_json(eval_path)
    assert result["aligned_mode_connectivity"] is None and result["aligned_line_mode_connectivity"] is not None


def test_arc_length_average_is_garipov_et_al_integrated_loss():
    """The reference's integrated loss (timgaripov/dnn-mode-connectivity eval_curve.py: dl from
    consecutive points' weights, ``int = sum(0.5 (v[:-1] + v[1:]) dl[1:]) / sum(dl[1:])`` of
    tr_loss = nll + 0.5 wd |theta(t)|^2) against lltax's trapezoid over t, on a hand-computed
    quadratic Bezier curve w0 = (0, 0), w1 = (1, 1), w2 = (2, 0) at t = 0, 0.25, 1:
    theta(0.25) = (0.5, 0.375), chords 0.625 and sqrt(2.390625)."""
    from lltax.metrics.curve_measures import arc_length_average, integrated

    bends = [{"w": torch.tensor(v, dtype=torch.float64)} for v in ([0.0, 0.0], [1.0, 1.0], [2.0, 0.0])]
    points, nll = [0.0, 0.25, 1.0], np.array([1.0, 2.0, 4.0])
    chords = np.array([0.625, math.sqrt(2.390625)])
    by_hand = (1.5 * chords[0] + 3.0 * chords[1]) / chords.sum()
    assert arc_length_average(nll, bends, points) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(2.568204, abs=1e-6) and integrated(nll, points) == pytest.approx(2.625)  # not the same
    # The reference's stats() on the regularized profile (ported), weight decay 0.1.
    weights = np.array([[0.0, 0.0], [0.5, 0.375], [2.0, 0.0]])
    tr_loss = nll + 0.5 * 0.1 * (weights**2).sum(axis=1)
    dl = np.zeros(3)
    dl[1:] = np.sqrt(np.sum(np.square(weights[1:] - weights[:-1]), axis=1))
    reference = np.sum(0.5 * (tr_loss[:-1] + tr_loss[1:]) * dl[1:]) / np.sum(dl[1:])
    assert arc_length_average(nll, bends, points, weight_decay=0.1) == pytest.approx(reference, rel=1e-12)
