"""Memory in bytes: what a job holds, and the chunk of samples a memory budget allows.

The Hessian's exact trace holds per-sample gradients of a whole chunk (chunk x parameters x 4
bytes: 200 x 44.7 M = 36 GB for ResNet18 at width 128), Hessian-vector products a double-backward
graph per chunk, stacked landscape points a copy of the weights per point: a chunk fixed in
samples fits a small model and not a large one (issue 26). Each job therefore takes the largest
chunk, up to its configured size, whose bytes fit ``memory_budget_gb`` beside what the job
holds anyway (data, model copies, Lanczos vectors). The same arithmetic gives ``lltax.runtime.cost``
the memory a job asks for. No torch here: the Snakefile uses it when it builds the DAG.

Sizes are float32 values (4 bytes) and estimates: activations per sample are the elements of
every layer's output (what autograd keeps for the backward pass), exact for the registered
models' layer structure (checked against forward hooks in tests/test_memory.py); a model given
by import path is assumed to have ResNet18's at its width. The factors per kind of work are
upper estimates (see each function).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from lltax.contract import resnet1d_variant

VALUE_BYTES = 4  # float32
GB = 1e9  # bytes; the budget is in decimal GB, as memory requests in MB are
DEFAULT_BUDGET_GB = 30.0  # fits a 40 GB GPU for every model of configs/yang2021_resnet18_cifar10.yaml
MODEL_COPIES = 8  # weights, gradients, momentum, curve ends and bend, directions: the most any job keeps
VGG11_LAYOUT = (1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M")

__all__ = [
    "DEFAULT_BUDGET_GB",
    "activation_elements",
    "held_bytes",
    "chunk_for_budget",
    "hessian_chunks",
    "hessian_bytes",
    "points_per_pass",
    "forward_batch",
]


def _resnet_activations(width: int, input_shape: Sequence[int], blocks: Sequence[int], shortcuts: bool) -> int:
    """Layer outputs of lltax.models.resnet.ResNet: stem (conv, bn, relu), each block's conv,
    bn, relu, conv, bn, relu (and the shortcut's conv, bn where the shape changes), pool, head."""
    size = list(input_shape[1:])
    channels = width
    total = 3 * width * math.prod(size)
    for stage, count in enumerate(blocks):
        out_channels = width * 2**stage
        for block in range(count):
            if stage > 0 and block == 0:
                size = [(s + 1) // 2 for s in size]  # 3-wide conv, stride 2, padding 1
            shortcut = shortcuts and (channels != out_channels or (stage > 0 and block == 0))
            total += (8 if shortcut else 6) * out_channels * math.prod(size)
            channels = out_channels
    return total + channels + 10


def _vgg_activations(width: int, input_shape: Sequence[int]) -> int:
    size, channels, total = list(input_shape[1:]), input_shape[0], 0
    for item in VGG11_LAYOUT:
        if item == "M":
            size = [(s + 1) // 2 for s in size]  # ceil_mode pooling
        else:
            channels = width * item
            total += 3 * channels * math.prod(size)  # conv, bn, relu
            continue
        total += channels * math.prod(size)
    return total + channels + 10


def activation_elements(model: str, width: int, input_shape: Sequence[int], num_classes: int = 10) -> int:
    """Layer-output elements of one sample's forward pass (autograd keeps about these for backward)."""
    if model == "mlp":  # flatten, two (linear, relu) hidden layers, head
        return math.prod(input_shape) + 4 * width + num_classes
    variant = resnet1d_variant(model)
    if variant:
        blocks, shortcuts = variant
        return _resnet_activations(width, input_shape, (blocks,) * 3, shortcuts)
    if model == "vgg11":
        return _vgg_activations(width, input_shape)
    return _resnet_activations(width, input_shape, (2, 2, 2, 2), True)  # resnet18, and any imported model


def held_bytes(parameters: int, data_bytes: int = 0, trajectory_bytes: int = 0) -> int:
    """What a job holds besides its chunks: the data, ``MODEL_COPIES`` model copies, a trajectory."""
    return int(data_bytes + MODEL_COPIES * VALUE_BYTES * parameters + trajectory_bytes)


def chunk_for_budget(budget_bytes: float, per_sample_bytes: float, *, held: float = 0, upper: int) -> int:
    """The largest number of samples, at most ``upper`` and at least 1, whose
    ``per_sample_bytes`` each fit beside ``held`` bytes in ``budget_bytes``."""
    if upper < 1:
        raise ValueError(f"the chunk's upper bound must be >= 1 sample, got {upper}")
    room = budget_bytes - held
    return max(1, min(upper, int(room // per_sample_bytes) if per_sample_bytes > 0 else upper))


# Per-sample bytes of each kind of work, from parameters P and activation elements A per sample:
# - per-sample gradients (exact trace, vmap(grad)): the gradients and their squares (2 P), the
#   forward's saved outputs and the backward's gradients of them with vmap's own (3 A);
# - Hessian-vector products (gradient with create_graph, then its backward): the forward's
#   outputs, the gradient graph's and the double backward's (6 A);
# - a forward pass without graph (landscape points, CKA): at most every output at once (A).
def _per_sample_gradient_bytes(parameters: int, activations: int) -> int:
    return VALUE_BYTES * (2 * parameters + 3 * activations)


def _double_backward_bytes(activations: int) -> int:
    return VALUE_BYTES * 6 * activations


def _vector_bytes(parameters: int, *, max_iterations: int, trace_method: str, trace_probes: int) -> int:
    """Vectors over the parameters the Hessian job keeps: the gradient with its graph, Lanczos's
    basis (full reorthogonalization: up to max_iterations + 1 vectors) and its work vectors, and
    for a stochastic trace the probe matrices (Hutch++: about four of trace_probes columns)."""
    lanczos = max_iterations + 3
    trace = {"hutchpp": 4 * trace_probes, "hutchinson": 4 * 10}.get(trace_method, 0)
    return VALUE_BYTES * parameters * (1 + max(lanczos, trace))


def hessian_chunks(
    budget_bytes: float,
    parameters: int,
    activations: int,
    *,
    held: int,
    chunk_size: int,
    max_iterations: int,
    trace_method: str,
    trace_probes: int,
) -> dict[str, int]:
    """The chunks (samples per pass) of the Hessian job: ``hessian_vector_products`` (Lanczos,
    stochastic traces) and ``exact_trace`` (per-sample gradients), each at most ``chunk_size``."""
    vectors = _vector_bytes(parameters, max_iterations=max_iterations, trace_method=trace_method, trace_probes=trace_probes)
    return {
        "hessian_vector_products": chunk_for_budget(
            budget_bytes, _double_backward_bytes(activations), held=held + vectors, upper=chunk_size
        ),
        "exact_trace": chunk_for_budget(budget_bytes, _per_sample_gradient_bytes(parameters, activations), held=held, upper=chunk_size),
    }


def hessian_bytes(parameters: int, activations: int, chunks: dict[str, int], *, held: int, **vector_settings) -> int:
    """Peak bytes of the Hessian job with ``chunks`` (from ``hessian_chunks``): the larger of its
    Lanczos phase and its exact-trace phase (they run one after the other)."""
    vectors = _vector_bytes(parameters, **vector_settings)
    products = vectors + chunks["hessian_vector_products"] * _double_backward_bytes(activations)
    exact = chunks["exact_trace"] * _per_sample_gradient_bytes(parameters, activations)
    return held + max(products, exact if vector_settings["trace_method"] == "exact" else 0)


def points_per_pass(budget_bytes: float, parameters: int, activations: int, *, held: int, batch_size: int, stack: int) -> int:
    """Landscape points evaluated per vmap'ed forward pass, at most ``stack``: each point holds a
    copy of the weights and a batch of ``batch_size`` samples' activations."""
    per_point = VALUE_BYTES * (parameters + batch_size * activations)
    return chunk_for_budget(budget_bytes, per_point, held=held, upper=stack)


def training_bytes(activations: int, batch_size: int) -> int:
    """A training step's activations: each layer's output is kept for the backward pass, which
    frees them as it makes their gradients (A per sample)."""
    return VALUE_BYTES * activations * batch_size


def hvp_bytes(parameters: int, activations: int, chunk: int, vectors: int) -> int:
    """Hessian-vector products on chunks of ``chunk`` samples with ``vectors`` vectors over the
    parameters kept beside them (Lanczos or ARPACK bases, probes)."""
    return VALUE_BYTES * parameters * (1 + vectors) + chunk * _double_backward_bytes(activations)


def forward_batch(budget_bytes: float, activations: int, *, held: int, batch_size: int) -> int:
    """Samples per forward pass without graph (CKA's outputs), at most ``batch_size``."""
    return chunk_for_budget(budget_bytes, VALUE_BYTES * activations, held=held, upper=batch_size)


# ---------------------------------------------------------------------------------------------
# A job's own sizes (duck-typed: torch modules and tensors, no torch import)


def data_bytes(data) -> int:
    """Bytes of the tensors a dataset object (lltax.data.loaders.Dataset) holds."""
    values = [getattr(data, field.name) for field in dataclasses.fields(data)] if dataclasses.is_dataclass(data) else [data]
    return int(sum(getattr(value, "nbytes", 0) for value in values))


def job_footprint(model, meta: dict, data) -> tuple[int, int, int]:
    """(parameters, activation elements per sample, bytes held) of a job on ``model`` (its
    checkpoint's ``meta``: model name, width, input_shape, num_classes) with ``data`` loaded."""
    parameters = sum(p.numel() for p in model.parameters())
    activations = activation_elements(meta["model"], int(meta["width"]), tuple(meta["input_shape"]), int(meta.get("num_classes", 10)))
    return parameters, activations, held_bytes(parameters, data_bytes(data))


def parameter_estimate(model: str, width: int, input_shape: tuple[int, ...], num_classes: int = 10) -> int:
    """Parameters of a registered model at ``width`` (exact for resnet1d and mlp, within 3% for resnet18 and vgg11 at widths >= 4)."""
    k = width
    variant = resnet1d_variant(model)
    if variant:  # n blocks per stage: conv weights (126 n - 20) k^2, 10 k^2 of them shortcuts (tests/test_models.py)
        n, shortcuts = variant
        conv, batchnorm = 126 * n - 20 - (0 if shortcuts else 10), 2 * (1 + 14 * n + (6 if shortcuts else 0))
        return conv * k * k + (batchnorm + 3 + 4 * num_classes) * k + num_classes
    if model == "mlp":
        inputs = math.prod(input_shape)
        return inputs * k + k + k * k + k + k * num_classes + num_classes
    if model == "transformer":  # the defaults (lltax.models.transformer); exact, tests/test_seq2seq.py
        return transformer_parameters(k, num_classes)
    # resnet18 / vgg11 grow as k^2: 11,173,962 and 9,228,362 parameters at k = 64.
    return int({"resnet18": 11_173_962, "vgg11": 9_228_362}[model] * (k / 64) ** 2)


def transformer_parameters(
    width: int, vocabulary: int, layers: int = 2, feedforward: int | None = None, tied_embeddings: bool = True
) -> int:
    """Parameters of ``lltax.models.transformer`` (pre-LN encoder-decoder, ``layers`` each)."""
    d, f = width, 4 * width if feedforward is None else feedforward
    attention, block = 4 * d * d + 4 * d, 2 * d * f + f + d  # q, k, v, o with biases; the feed-forward
    encoder, decoder = attention + block + 2 * 2 * d, 2 * attention + block + 3 * 2 * d  # LayerNorms: 2 and 3 per layer
    embeddings = vocabulary * d * (1 if tied_embeddings else 3)
    return embeddings + layers * (encoder + decoder) + 2 * 2 * d  # a final LayerNorm per stack
