"""The plane of a landscape picture: its origin, two directions and what is drawn on it.

One function per kind of ``landscape.directions`` (Li et al. 2018; Garipov et al. 2018):
random filter-normalized directions, the top Hessian eigenvectors, the plane through seeds'
models, the principal directions of a training path (with the path projected) and the plane
of a fitted curve (with the curve projected). Directions are dicts of tensors like the
model's parameters (or state, ``over: states``); coordinates are numpy arrays.
"""

from __future__ import annotations

import numpy as np
import torch

from lltax.metrics.bezier import curve_point, flatten_bend, unflatten_bend
from lltax.metrics.directions import (
    direction_space,
    eigenvector_directions,
    orthogonalize,
    pca_directions,
    plane_through,
    random_direction,
)

CURVE_POINTS = 41  # points t of the curve drawn on its plane

# Planes through models (directions seeds, curve; a comparison): every model, and the curve
# drawn on the plane, lies at least this far inside each edge, in units of |s1 - s0| (Garipov et
# al.'s plane.py: margins of 0.2 on each side of the models' bounding box).
MODEL_MARGIN = 0.2


def plane_axis(low: float, high: float, half: float, points: int) -> tuple[float, float]:
    """The extent of a plane through models along one direction whose models (and curve) span
    [low, high]: half-width ``half`` (range_2d or range_b), or wider where the span and
    MODEL_MARGIN on each side need it, centred on the span's middle rounded to a multiple of
    the grid step, so that s0 (at 0) stays a grid point for an odd number of ``points``."""
    spread = (high - low) / 2 + MODEL_MARGIN
    # The centre moves by up to half a step: the half-width keeps the margin after it.
    half = max(half, spread * (points - 1) / (points - 2))
    step = 2 * half / (points - 1)
    centre = step * np.floor((low + high) / 2 / step + 0.5) if points % 2 else (low + high) / 2
    return float(centre - half), float(centre + half)


def plane_extent(extra: dict, range_a: float, range_b: float, points: int) -> dict[str, tuple[float, float]]:
    """The surface's coordinate range along d1 (a) and d2 (b) for a grid of ``points`` per side:
    [-range_a, range_a] x [-range_b, range_b] around s0, or for a plane through models
    (``extra``, as ``plane`` returns it, holds their coordinates) a range that holds every model
    and the curve drawn on it with MODEL_MARGIN on each side (plane_axis): a grid symmetric
    around s0 would put s1 on its edge at range_2d 1."""
    halves = {"a": range_a, "b": range_b}
    if "model_coordinates" not in extra:
        return {axis: (-half, half) for axis, half in halves.items()}
    held = np.asarray(extra["model_coordinates"][1], dtype=float)
    if "curve_coordinates" in extra:
        held = np.vstack([held, np.asarray(extra["curve_coordinates"][1], dtype=float)])
    held = held[np.isfinite(held).all(axis=1)]
    return {
        axis: plane_axis(float(held[:, index].min()), float(held[:, index].max()), half, points)
        for index, (axis, half) in enumerate(halves.items())
    }


def plane(models: list, settings: dict, train: tuple, trajectory: list | None = None, curve: dict | None = None) -> tuple[dict, list, dict]:
    """Origin entries, the two directions and extra variables (named like landscape.nc's:
    eigenvalues, model coordinates, the projected training path or curve) for the config
    section ``landscape``'s directions; ``trajectory`` (pca) and ``curve`` (curve) as loaded."""
    kind, seed = settings["directions"], settings["seed"]
    generator = torch.Generator().manual_seed(seed)
    extra = {}
    if kind == "random":
        space = direction_space(models[0], settings["over"])
        options = {"normalization": settings["normalization"], "ignore_biasbn": settings["ignore_biasbn"]}
        return space, [random_direction(space, generator, **options), random_direction(space, generator, **options)], extra
    space = direction_space(models[0])
    if kind == "eigenvectors":
        directions, values = eigenvector_directions(models[0], *train, count=2, seed=seed)
        extra["direction_eigenvalue"] = (
            ("direction",),
            np.asarray(values),
            {"units": "1", "long_name": "Hessian eigenvalue of each direction"},
        )
        return space, directions, extra
    if kind == "seeds":
        spaces = [direction_space(m) for m in models[:3]]
        if len(spaces) == 2:
            directions = line_and_random(spaces[0], spaces[1], generator)
            coordinates = np.array([[0.0, 0.0], [1.0, 0.0]])
        else:
            _, directions, coordinates = plane_through(spaces)
        extra["model_coordinates"] = (
            ("model", "direction"),
            coordinates,
            {"units": "1", "long_name": "coordinates of each seed's model in the plane"},
        )
        return space, directions, extra
    if kind == "curve":
        return space, *curve_plane(curve, space, len(models), generator)
    if kind == "pca":
        return space, *pca_plane(trajectory, space)
    raise ValueError(f"unknown directions {kind!r}")


def line_and_random(start: dict, end: dict, generator: torch.Generator) -> list[dict]:
    """d1 = end - start and a random direction orthogonal to it, scaled to |d1|: the plane
    through two models when no third point fixes it."""
    first = {k: end[k] - start[k] for k in start}
    flat_first = flatten_bend(first).double()
    if not float(flat_first.norm()) > 0:
        raise ValueError("the two models have the same weights: there is no line through them")
    flat = orthogonalize(flat_first, flatten_bend(random_direction(start, generator)).double())
    flat = flat * (flat_first.norm() / flat.norm())
    return [first, {k: v.to(start[k].dtype) for k, v in unflatten_bend(flat, start).items()}]


def curve_plane(curve: dict, space: dict, models: int = 2, generator: torch.Generator | None = None) -> tuple[list, dict]:
    """Garipov et al.'s Figure 1 plane: through the curve's ends (s0, s1) and its midpoint
    theta(0.5) (for a quadratic Bezier curve or a one-bend chain, the plane of its three bends,
    which holds the whole curve). The curve at CURVE_POINTS points t is projected onto it;
    ``curve_residual`` is each point's distance from the plane in units of |s1 - s0|. Of
    ``models`` checkpoints only s0 and s1 lie in it: a third's coordinates are NaN. A curve
    that never left the line (its midpoint on it) spans no plane: then d2 is a random direction
    orthogonal to the line (``generator``), as for two seeds, and the curve is drawn on d1."""
    kind = curve["meta"]["settings"].get("curve", "bezier")
    names = list(space)
    bends = [torch.cat([bend[name].double().reshape(-1) for name in names]) for bend in curve["bends"]]
    like = {name: space[name].cpu() for name in names}
    middle = curve_point(bends, 0.5, kind)
    points = [unflatten_bend(v, like) for v in (bends[0], bends[-1], middle)]
    first, offset = bends[-1] - bends[0], middle - bends[0]
    # Off the line by less than 1e-6 |s1 - s0| (float32 bends' rounding): a straight curve.
    if float(orthogonalize(first, offset).norm()) > 1e-6 * float(first.norm()):
        _, directions, coordinates = plane_through(points)
    else:
        directions = line_and_random(points[0], points[1], generator or torch.Generator().manual_seed(0))
        coordinates = np.array([[0.0, 0.0], [1.0, 0.0]])
    basis = torch.stack([flatten_bend(d).double() for d in directions], dim=1)
    ts = np.linspace(0.0, 1.0, CURVE_POINTS)
    offsets = torch.stack([curve_point(bends, float(t), kind) - bends[0] for t in ts], dim=1)
    projected = torch.linalg.lstsq(basis, offsets).solution
    residual = (offsets - basis @ projected).norm(dim=0) / basis[:, 0].norm()
    extra = {
        "model_coordinates": (
            ("model", "direction"),
            np.vstack([coordinates[:2], np.full((models - 2, 2), np.nan)]),
            {"units": "1", "long_name": "coordinates of s0 and s1 in the plane (NaN: a model not in it)"},
        ),
        "curve_coordinates": (
            ("t", "direction"),
            projected.T.numpy(),
            {"units": "1", "long_name": f"the fitted {kind} curve s0 -> s1 projected on the plane"},
        ),
        "curve_residual": (
            ("t",),
            residual.numpy(),
            {"units": "1", "long_name": "distance of each curve point from the plane, in units of |s1 - s0|"},
        ),
    }
    return [{k: v.to(space[k]) for k, v in d.items()} for d in directions], extra


def pca_plane(trajectory: list[dict], space: dict) -> tuple[list, dict]:
    """Li et al.'s PCA plane of s0's training path, each unit principal direction scaled by the
    path's extent along it, so that coordinate +-1 reaches the farthest epoch on each axis
    (range_2d then says how far around to look); the path's coordinates in those units."""
    directions, ratios, path = pca_directions(trajectory, count=2)
    extent = np.abs(path).max(axis=0)
    extent[extent == 0] = 1.0  # a path that never left its end (zero learning rate)
    scaled = [{k: (v * float(length)).to(space[k]) for k, v in d.items()} for d, length in zip(directions, extent)]
    extra = {
        "path_coordinates": (
            ("epoch", "direction"),
            path / extent,
            {"units": "1", "long_name": "s0's training path projected on the plane (epoch 0 = initialisation)"},
        ),
        "pca_explained_variance": (
            ("direction",),
            np.asarray(ratios),
            {"units": "1", "long_name": "share of the path's variance each principal direction explains"},
        ),
        "direction_scale": (
            ("direction",),
            extent,
            {"units": "1", "long_name": "Euclidean length of each direction (the path's extent along it)"},
        ),
    }
    return scaled, extra
