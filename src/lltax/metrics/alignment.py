"""Permutation alignment of two models of one architecture: weight matching (Ainsworth et al. 2023,
"Git Re-Basin", Algorithm 1).

Hidden units (channels) of a network can be permuted without changing its function: models of
different seeds may differ by such a permutation, and a barrier between them may be nothing
but that. A *permutation spec* names, for every tensor of the state dict, the permutation
group acting on each of its axes: a group is shared by everything that must move together
(a layer's output rows, its BatchNorm, the next layer's input columns; in a ResNet, every
tensor on one residual stream). Weight matching then looks for the permutations of model B
that maximize sum_w <w_A, P(w_B)>, one group at a time by a linear assignment problem,
until no group changes (a local optimum, as in the paper).

Specs are derived for the registry's architectures (``ResNet`` for resnet18/resnet1d, ``VGG``,
and plain ``nn.Sequential`` stacks such as ``mlp``, pooling layers included: a global
``AdaptiveAvgPool`` before ``Flatten`` keeps channels as features); another architecture
raises ``ValueError``, as does the ``transformer`` (heads and the residual stream: no rule yet).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from lltax.models.resnet import ResNet
from lltax.models.transformer import Transformer
from lltax.models.vgg import VGG

logger = logging.getLogger(__name__)

Spec = dict[str, tuple[str | None, ...]]  # state-dict name -> permutation group per axis (None: fixed)

_ADAPTIVE_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
_ELEMENTWISE = (nn.ReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Identity, nn.Dropout)


def _batchnorm(prefix: str, module: nn.Module, group: str | None, spec: Spec) -> None:
    for name, _ in module.named_parameters(recurse=False):
        spec[f"{prefix}{name}"] = (group,)
    for name, buffer in module.named_buffers(recurse=False):
        spec[f"{prefix}{name}"] = (group,) if buffer.dim() == 1 else ()


def _layer(prefix: str, module: nn.Module, out: str | None, inp: str | None, spec: Spec) -> None:
    """A Linear or ConvNd: weight (out, in, kernel...), bias (out,)."""
    if getattr(module, "groups", 1) != 1:  # grouped/depthwise: channels permute within groups only
        raise ValueError(f"alignment: no permutation rule for the grouped convolution {prefix.rstrip('.')}")
    spec[f"{prefix}weight"] = (out, inp) + (None,) * (module.weight.dim() - 2)
    if module.bias is not None:
        spec[f"{prefix}bias"] = (out,)


def _sequential(modules, prefix: str, inp: str | None, spec: Spec, last_fixed: bool) -> str | None:
    """Groups of a chain of layers: each Linear/Conv starts a new group, BatchNorm follows it."""
    layers = [(name, m) for name, m in modules if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    last = layers[-1][0] if layers and last_fixed else None
    current = inp
    one_position = False  # after a global (adaptive, output size 1) pooling: channels are the features
    for name, module in modules:
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            out = None if name == last else f"{prefix}{name}"
            _layer(f"{prefix}{name}.", module, out, current, spec)
            current, one_position = out, False
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            _batchnorm(f"{prefix}{name}.", module, current, spec)
        elif isinstance(module, nn.Flatten):
            if current is not None and not one_position:  # flattening permuted channels mixes them with positions
                raise ValueError("alignment: a Flatten after a permuted layer is not supported (unless a global pooling precedes it)")
        elif isinstance(module, _ADAPTIVE_POOLS):  # pooling acts per channel: it permutes trivially
            size = module.output_size if isinstance(module.output_size, tuple) else (module.output_size,)
            one_position = all(s == 1 for s in size)
        elif isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, *_ELEMENTWISE)):
            continue
        else:
            raise ValueError(f"alignment: no permutation rule for {type(module).__name__} at {prefix}{name}")
    return current


def permutation_spec(model: nn.Module) -> Spec:
    """The permutation groups of every state-dict tensor of ``model`` (module docstring)."""
    spec: Spec = {}
    if isinstance(model, ResNet):
        _layer("conv1.", model.conv1, "stem", None, spec)
        _batchnorm("bn1.", model.bn1, "stem", spec)
        stream = "stem"  # the residual stream's group: identity shortcuts add onto it
        for stage in model.stage_names:
            for index, block in enumerate(getattr(model, stage)):
                prefix, inner = f"{stage}.{index}.", f"{stage}.{index}.inner"
                # A projection shortcut, or none at all, starts a new group; identity ones share the stream's.
                out = f"{stage}.{index}.out" if len(block.shortcut) or not block.residual else stream
                _layer(f"{prefix}conv1.", block.conv1, inner, stream, spec)
                _batchnorm(f"{prefix}bn1.", block.bn1, inner, spec)
                _layer(f"{prefix}conv2.", block.conv2, out, inner, spec)
                _batchnorm(f"{prefix}bn2.", block.bn2, out, spec)
                if len(block.shortcut):
                    _layer(f"{prefix}shortcut.0.", block.shortcut[0], out, stream, spec)
                    _batchnorm(f"{prefix}shortcut.1.", block.shortcut[1], out, spec)
                stream = out
        _layer("linear.", model.linear, None, stream, spec)
    elif isinstance(model, VGG):
        last = _sequential(list(model.features.named_children()), "features.", None, spec, last_fixed=False)
        _layer("linear.", model.linear, None, last, spec)
    elif isinstance(model, nn.Sequential):
        _sequential(list(model.named_children()), "", None, spec, last_fixed=True)
    elif isinstance(model, Transformer):  # issue 28: refused rather than matched on half its symmetries
        raise ValueError(
            "alignment: weight matching has no rule for a Transformer (heads permute as blocks inside fused attention "
            "weights, and the residual stream ties every layer and the embeddings to one permutation); its curves are not aligned"
        )
    else:
        raise ValueError(f"alignment knows the registry's architectures (ResNet, VGG, nn.Sequential stacks), not {type(model).__name__}")
    missing = sorted(set(model.state_dict()) - set(spec))
    if missing:
        raise ValueError(f"alignment: no permutation rule for {missing[:3]} of {type(model).__name__}")
    return spec


def group_sizes(spec: Spec, state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for name, axes in spec.items():
        for axis, group in enumerate(axes):
            if group is not None:
                size = state[name].shape[axis]
                if sizes.setdefault(group, size) != size:
                    raise ValueError(f"alignment: group {group} has sizes {sizes[group]} and {size} ({name})")
    return sizes


def permute(spec: Spec, permutations: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with every axis of every tensor reindexed by its group's permutation (names not
    in ``spec``, and integer buffers such as num_batches_tracked, unchanged)."""
    out = {}
    for name, tensor in state.items():
        for axis, group in enumerate(spec.get(name, ())):
            if group is not None:
                tensor = tensor.index_select(axis, permutations[group].to(tensor.device))
        out[name] = tensor
    return out


def _similarity(spec: Spec, group: str, state_a, state_b, permutations) -> torch.Tensor:
    """sum over the tensors on ``group`` of <w_A[i], P_other(w_B)[j]>: an (n, n) matrix."""
    total = None
    for name, axes in spec.items():
        if name not in state_a:
            continue
        for axis, axis_group in enumerate(axes):
            if axis_group != group:
                continue
            others = {g: p for g, p in permutations.items() if g != group}
            b = state_b[name]
            for other_axis, other_group in enumerate(axes):
                if other_axis != axis and other_group in others:
                    b = b.index_select(other_axis, others[other_group])
            a = state_a[name].movedim(axis, 0).reshape(state_a[name].shape[axis], -1).double()
            b = b.movedim(axis, 0).reshape(b.shape[axis], -1).double()
            product = a @ b.T
            total = product if total is None else total + product
    return total


def weight_matching(
    spec: Spec, state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor], *, max_rounds: int = 100, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Permutations of B's groups that (locally) maximize sum_w <w_A, P(w_B)> over the floating
    tensors both states hold (parameters; pass buffers too to match on them). Groups are visited
    in a seeded random order each round until a round changes none."""
    state_a = {k: v.detach().cpu() for k, v in state_a.items() if v.is_floating_point()}
    state_b = {k: v.detach().cpu() for k, v in state_b.items() if k in state_a}
    sizes = group_sizes({k: v for k, v in spec.items() if k in state_a}, state_a)
    permutations = {group: torch.arange(size) for group, size in sizes.items()}
    generator = torch.Generator().manual_seed(seed)
    groups = sorted(sizes)
    for _ in range(max_rounds):
        changed = False
        for index in torch.randperm(len(groups), generator=generator).tolist():
            group = groups[index]
            similarity = _similarity(spec, group, state_a, state_b, permutations).numpy()
            rows, columns = linear_sum_assignment(similarity, maximize=True)
            current = similarity[np.arange(len(rows)), permutations[group].numpy()].sum()
            if similarity[rows, columns].sum() > current + 1e-12 * max(1.0, abs(current)):
                permutations[group] = torch.as_tensor(columns, dtype=torch.long)
                changed = True
        if not changed:
            break
    return permutations


def aligned_end(model: nn.Module, start: Mapping[str, torch.Tensor], end: Mapping[str, torch.Tensor], seed: int = 0) -> dict | None:
    """``end`` permuted onto ``start`` by weight matching (on ``end``'s device), or None (logged)
    when ``model``'s architecture has no permutation rule.

    The permutations are matched on the parameters only (``model``'s parameter names, as Git
    Re-Basin's weight matching); every entry ``end`` holds is then permuted, its BatchNorm
    running statistics included: pass ``end``'s state dict for a model that computes ``end``'s
    function with its own statistics. (The curve jobs pass parameters only and recompute
    BatchNorm at every point, so they need no buffers.)"""
    names = {name for name, _ in model.named_parameters()}
    try:
        spec = permutation_spec(model)
        permutations = weight_matching(
            spec, {k: v for k, v in start.items() if k in names}, {k: v for k, v in end.items() if k in names}, seed=seed
        )
    except ValueError as error:
        logger.warning("no alignment: %s", error)
        return None
    moved = sum(int((p != torch.arange(len(p))).sum()) for p in permutations.values())
    logger.info("weight matching: %d of %d units moved", moved, sum(len(p) for p in permutations.values()))
    cpu = {k: v.detach().cpu() for k, v in end.items()}
    return {k: v.to(end[k].device) for k, v in permute(spec, permutations, cpu).items()}
