"""Landscape atlas numerics: directions, the point evaluator, basin radii, Hessian extremes, SLQ.

Float64 tiny models; expected values come from the definitions (norms, exact Hessians from
``torch.func.hessian``, the models' own losses), not from the code under test.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, hessian

from lltax.metrics.bezier import flatten_bend, recompute_batchnorm_statistics
from lltax.metrics.directions import direction_space, eigenvector_directions, pca_directions, plane_through, random_direction
from lltax.metrics.eigenratio import hessian_extremes
from lltax.metrics.evaluate import evaluate_model
from lltax.metrics.spectrum import lanczos_tridiagonal, slq_quadrature, spectral_density
from lltax.metrics.surface import basin_radii, evaluate_points, point_state


class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 3, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm1d(3)
        self.head = nn.Linear(3 * 6, 3)

    def forward(self, x):
        return self.head(torch.flatten(F.relu(self.bn(self.conv(x))), 1))


def trained(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 30, lr: float = 0.2) -> nn.Module:
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


def data(n: int = 48, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 6, generator=generator, dtype=torch.float64), torch.randint(0, 3, (n,), generator=generator)


@pytest.fixture(scope="module")
def bn_models():
    x, y = data()
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(trained(ConvBN().double(), x, y))
    return models, x, y


# ---------------------------------------------------------------------------------------------
# Directions


def test_filter_normalization_per_filter_and_biasbn(bn_models):
    model = bn_models[0][0]
    space = direction_space(model)
    d = random_direction(space, torch.Generator().manual_seed(0))
    for name, theta in space.items():
        if theta.dim() > 1:
            torch.testing.assert_close(d[name].flatten(1).norm(dim=1), theta.flatten(1).norm(dim=1), rtol=1e-9, atol=0)
        else:
            assert torch.equal(d[name], torch.zeros_like(theta))  # ignore biasbn
    kept = random_direction(space, torch.Generator().manual_seed(0), ignore_biasbn=False)
    assert torch.equal(kept["bn.weight"], space["bn.weight"]) and torch.equal(kept["conv.weight"], d["conv.weight"])  # the reference's copy


def test_layer_model_and_unit_normalizations(bn_models):
    model = bn_models[0][0]
    space = direction_space(model)
    multi = [n for n, t in space.items() if t.dim() > 1]
    layer = random_direction(space, torch.Generator().manual_seed(1), normalization="layer")
    for name in multi:
        assert float(layer[name].norm()) == pytest.approx(float(space[name].norm()), rel=1e-9)
    whole = random_direction(space, torch.Generator().manual_seed(1), normalization="model")
    norm = lambda d: float(torch.sqrt(sum(d[n].pow(2).sum() for n in multi)))  # noqa: E731
    assert norm(whole) == pytest.approx(norm(space), rel=1e-9)
    unit_filters = random_direction(space, torch.Generator().manual_seed(1), normalization="dfilter")
    torch.testing.assert_close(unit_filters["conv.weight"].flatten(1).norm(dim=1), torch.ones(3, dtype=torch.float64))
    assert float(random_direction(space, torch.Generator().manual_seed(1), normalization="dlayer")["head.weight"].norm()) == pytest.approx(
        1.0
    )
    with pytest.raises(ValueError, match="normalization"):
        random_direction(space, torch.Generator(), normalization="nope")


def test_states_direction_moves_batchnorm_statistics(bn_models):
    model = bn_models[0][0]
    states = direction_space(model, "states")
    assert {"bn.running_mean", "bn.running_var"} <= set(states) and "bn.num_batches_tracked" not in states
    assert set(direction_space(model)) < set(states)


def test_states_line_reproduces_both_endpoints_own_losses(bn_models):
    """Li et al.'s states interpolation: BatchNorm buffers move with the weights, so the ends
    are the two trained models, their own running statistics included."""
    (a, b), x, y = bn_models
    origin, end = direction_space(a, "states"), direction_space(b, "states")
    direction = {k: end[k] - origin[k] for k in origin}
    result = evaluate_points(a, origin, [direction], [[0.0, 0.5, 1.0]], {"train": (x, y)})
    for index, model in ((0, a), (2, b)):
        loss, acc = evaluate_model(model, x, y)
        assert result["train_loss"][index] == pytest.approx(loss, rel=1e-12) and result["train_acc"][index] == acc


def test_origin_equals_the_model_and_stacked_equals_the_loop(bn_models):
    (model, _), x, y = bn_models
    x_test, y_test = data(20, seed=5)
    space = direction_space(model)
    generator = torch.Generator().manual_seed(2)
    directions = [random_direction(space, generator), random_direction(space, generator)]
    coords = [np.linspace(-1, 1, 5), np.linspace(-1, 1, 3)]
    splits = {"train": (x, y), "test": (x_test, y_test)}
    loop = evaluate_points(model, space, directions, coords, splits, batch_size=16)
    assert loop["train_loss"].shape == (5, 3)
    for name, (inputs, targets) in splits.items():
        loss, acc = evaluate_model(model, inputs, targets)
        assert loop[f"{name}_loss"][2, 1] == pytest.approx(loss, rel=1e-12) and loop[f"{name}_acc"][2, 1] == acc
    stacked = evaluate_points(model, space, directions, coords, splits, batch_size=16, stack=4)
    for key in loop:
        np.testing.assert_allclose(stacked[key], loop[key], rtol=1e-10, atol=1e-12)


def test_recomputed_batchnorm_at_the_origin(bn_models):
    (model, _), x, y = bn_models
    space = direction_space(model)
    result = evaluate_points(
        model, space, [random_direction(space, torch.Generator())], [[0.0]], {"train": (x, y)}, batchnorm="recompute", batchnorm_inputs=x
    )
    reference = copy.deepcopy(model)
    recompute_batchnorm_statistics(reference, x, 1000)
    assert result["train_loss"][0] == pytest.approx(evaluate_model(reference, x, y)[0], rel=1e-12)
    assert result["train_loss"][0] != pytest.approx(evaluate_model(model, x, y)[0], rel=1e-6)  # trained stats differ


def smooth_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def full_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    params = {n: p.detach() for n, p in model.named_parameters()}
    names = list(params)

    def loss(flat):
        pieces = dict(zip(names, flat.split([p.numel() for p in params.values()])))
        shaped = {n: pieces[n].view_as(params[n]) for n in names}
        return F.cross_entropy(functional_call(model, shaped, (x,)), y)

    return hessian(loss)(flatten_bend(params))


def test_eigenvector_directions_are_orthonormal_and_curved_by_their_eigenvalue():
    x, y = data(40, seed=3)
    model = trained(smooth_mlp(), x, y, steps=50, lr=0.3)
    directions, values = eigenvector_directions(model, x, y, count=2)
    flat = [flatten_bend(d) for d in directions]
    gram = torch.stack(flat) @ torch.stack(flat).T
    torch.testing.assert_close(gram, torch.eye(2, dtype=torch.float64), rtol=0, atol=1e-8)
    exact = torch.linalg.eigvalsh(full_hessian(model, x, y))
    assert values == pytest.approx(exact.flip(0)[:2].tolist(), rel=1e-6)
    h = 1e-3
    losses = evaluate_points(model, direction_space(model), [directions[0]], [[-h, 0.0, h]], {"train": (x, y)})["train_loss"]
    assert (losses[0] - 2 * losses[1] + losses[2]) / h**2 == pytest.approx(values[0], rel=1e-3)


def test_eigenvectors_that_do_not_converge_are_an_error_that_names_the_way_out(monkeypatch):
    import scipy.sparse.linalg

    def never_converges(operator, k, **options):
        raise scipy.sparse.linalg.ArpackNoConvergence("ARPACK error -1: No convergence (301 iterations)", np.zeros(0), np.zeros((0, 0)))

    monkeypatch.setattr(scipy.sparse.linalg, "eigsh", never_converges)
    x, y = data(40, seed=3)
    with pytest.raises(ValueError, match="did not converge.*landscape.directions: random"):
        eigenvector_directions(smooth_mlp(), x, y, count=2)
    with pytest.raises(ValueError, match="dimension"):
        eigenvector_directions(nn.Linear(1, 1), x[:, :1], torch.zeros(40, 1), count=2)


def test_plane_through_three_models_passes_through_them(bn_models):
    (a, b), x, y = bn_models
    c = copy.deepcopy(a)
    with torch.no_grad():
        for p in c.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()), dtype=p.dtype))
    spaces = [direction_space(m) for m in (a, b, c)]
    origin, directions, coordinates = plane_through(spaces)
    np.testing.assert_allclose(coordinates[:2], [[0.0, 0.0], [1.0, 0.0]], atol=1e-12)
    assert float(flatten_bend(directions[0]) @ flatten_bend(directions[1])) == pytest.approx(0.0, abs=1e-9)
    third = point_state(origin, directions, coordinates[2])
    torch.testing.assert_close(flatten_bend(third), flatten_bend(spaces[2]), rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="one line"):
        plane_through([spaces[0], spaces[1], point_state(origin, directions[:1], [2.0])])


def test_pca_directions_explain_the_trajectory_in_order():
    generator = torch.Generator().manual_seed(0)
    axes = torch.linalg.qr(torch.randn(30, 3, generator=generator, dtype=torch.float64)).Q.T  # orthonormal
    scales = torch.tensor([5.0, 2.0, 0.5], dtype=torch.float64)
    weights = torch.randn(12, 3, generator=generator, dtype=torch.float64) * scales
    end = torch.randn(30, generator=generator, dtype=torch.float64)
    trajectory = [{"w": end + row @ axes} for row in weights] + [{"w": end}]
    directions, ratios, path = pca_directions(trajectory, count=2)
    assert ratios[0] > ratios[1] > 0 and ratios.sum() < 1
    offsets = torch.stack([t["w"] - end for t in trajectory])
    singular = torch.linalg.svdvals(offsets - offsets.mean(dim=0)) ** 2  # every point, centred, as sklearn's PCA
    np.testing.assert_allclose(ratios, (singular / singular.sum())[:2].numpy(), rtol=1e-10)
    np.testing.assert_allclose(path[-1], [0.0, 0.0], atol=1e-12)  # the end is the origin
    np.testing.assert_allclose(path[:, 0], (offsets @ directions[0]["w"]).numpy(), rtol=1e-10)


def logistic_regression() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(60, 1, 6, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 3, (60,), generator=generator)
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 3)).double(), x, y


def test_convex_problem_has_a_convex_surface_and_nonnegative_eigenvalue_ratio():
    model, x, y = logistic_regression()
    space = direction_space(model)
    generator = torch.Generator().manual_seed(0)
    directions = [random_direction(space, generator), random_direction(space, generator)]
    grid = np.linspace(-1, 1, 9)
    surface = evaluate_points(model, space, directions, [grid, grid], {"train": (x, y)})["train_loss"]
    assert (surface[2:] - 2 * surface[1:-1] + surface[:-2] >= -1e-12).all()  # convex along a
    assert (surface[:, 2:] - 2 * surface[:, 1:-1] + surface[:, :-2] >= -1e-12).all()  # and along b
    for a, b in ((0.0, 0.0), (1.0, -1.0), (-0.5, 0.5)):
        point = copy.deepcopy(model)
        point.load_state_dict(point_state(space, directions, [a, b]))
        low, high = hessian_extremes(point, x, y, tolerance=1e-8)
        exact = torch.linalg.eigvalsh(full_hessian(point, x, y))
        assert high == pytest.approx(float(exact[-1]), rel=1e-6)
        # Softmax regression's Hessian is PSD with a null space (logits shift): min ~ 0, ratio >= 0.
        assert low / high >= -1e-8 and float(exact[0]) >= -1e-10


def test_basin_radii_cross_the_threshold_and_scale_with_the_direction(bn_models):
    (model, _), x, y = bn_models
    space = direction_space(model)
    direction = random_direction(space, torch.Generator().manual_seed(3))
    radii, censored = basin_radii(model, [direction], x, y, rise=0.5, max_radius=8.0, refine=12)
    assert not censored.any() and len(radii) == 2
    base = evaluate_model(model, x, y)[0]
    loss = lambda r: evaluate_points(model, space, [direction], [[r]], {"t": (x, y)})["t_loss"][0]  # noqa: E731
    assert loss(radii[0] * 1.01) >= base + 0.5 - 1e-3 or loss(radii[0]) >= base + 0.45
    doubled = {k: 2 * v for k, v in direction.items()}
    radii_doubled, _ = basin_radii(model, [doubled], x, y, rise=0.5, max_radius=8.0, refine=12)
    np.testing.assert_allclose(radii_doubled, radii / 2, rtol=0.02)  # a longer direction: half the radius
    flat, flat_censored = basin_radii(model, [{k: 0 * v for k, v in direction.items()}], x, y, rise=0.5, max_radius=8.0)
    assert flat_censored.all() and (flat == 8.0).all()  # the loss never rises: censored at the cap


# ---------------------------------------------------------------------------------------------
# Stochastic Lanczos quadrature


def test_slq_with_full_steps_is_the_exact_spectral_measure():
    x, y = data(40, seed=3)
    model = trained(smooth_mlp(), x, y, steps=30)
    matrix = full_hessian(model, x, y)
    exact_values, exact_vectors = torch.linalg.eigh(matrix)
    start = torch.randn(len(matrix), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    alphas, betas = lanczos_tridiagonal(lambda v: matrix @ v, start, len(matrix))
    values, vectors = np.linalg.eigh(np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1))
    # Each distinct eigenvalue once (a start vector sees a repeated one, here the softmax's null
    # space, as one node), weighted by (u_i . v)^2 / |v|^2 summed over its eigenvectors.
    expected = ((exact_vectors.T @ start) ** 2 / start.pow(2).sum()).numpy()
    exact_values = exact_values.numpy()
    distinct = [exact_values[0]]
    for value in exact_values[1:]:
        if value - distinct[-1] > 1e-9:
            distinct.append(value)
    np.testing.assert_allclose(values, distinct, atol=1e-9)
    for node, weight in zip(values, vectors[0] ** 2):
        assert weight == pytest.approx(expected[np.abs(exact_values - node) <= 1e-9].sum(), abs=1e-8)
    assert len(values) < len(matrix)  # stopped at the invariant space, no spurious nodes


def test_slq_quadrature_is_exact_for_low_moments_and_the_density_integrates_to_one():
    x, y = data(40, seed=3)
    model = trained(smooth_mlp(), x, y, steps=30)
    matrix = full_hessian(model, x, y)
    nodes, weights = slq_quadrature(lambda v: matrix @ v, len(matrix), steps=6, runs=3, seed=1)
    generator = torch.Generator().manual_seed(1)
    for values, w in zip(nodes, weights):
        start = (torch.randint(0, 2, (len(matrix),), generator=generator) * 2 - 1).double()
        start = start / start.norm()
        assert w.sum() == pytest.approx(1.0, abs=1e-12)
        for power in range(2 * 6):  # Gauss quadrature with m nodes: exact below degree 2m
            moment = float(start @ torch.linalg.matrix_power(matrix, power) @ start)
            assert float((w * values**power).sum()) == pytest.approx(moment, rel=1e-6, abs=1e-10)
    grid = np.linspace(float(np.min(np.concatenate(nodes))) - 1, float(np.max(np.concatenate(nodes))) + 1, 4001)
    density = spectral_density(nodes, weights, grid, sigma=0.05)
    assert float(np.sum(density) * (grid[1] - grid[0])) == pytest.approx(1.0, abs=1e-3)
