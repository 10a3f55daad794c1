"""``lltax hessian``: top Hessian eigenvalue(s) and trace of each of a cell's checkpoints."""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import torch

from lltax.config.schema import parse_settings
from lltax.jobs.metric_inputs import is_diverged, load_cell_data, load_model
from lltax.metrics.hessian import hessian_metrics, nan_metrics, resolve_trace_method, sample_seed, sample_training_data
from lltax.models import is_piecewise_linear
from lltax.runtime.device import resolve_device
from lltax.runtime.memory import DEFAULT_BUDGET_GB, GB, hessian_chunks, job_footprint
from lltax.storage import checkpoint
from lltax.storage.atomic_files import one_output_each, write_json

log = logging.getLogger(__name__)

HELP = "top Hessian eigenvalue(s) and trace of checkpoints' training loss"
ARGUMENTS = {
    "checkpoints": {},
    "settings": {
        "help": "the config section 'hessian' as JSON (backend, num_samples, chunk_size, top_k, tolerance, max_iterations, trace_method, trace_probes, seed)"
    },
    "device": {},
    "data_dir": {},
    "memory_budget_gb": {},
    "out": {"help": "output hessian.json, one per checkpoint"},
}


def hessian_of_checkpoint(
    path: str,
    settings: dict[str, Any],
    device: torch.device | str = "cpu",
    data_dir: str | None = None,
    memory_budget_gb: float = DEFAULT_BUDGET_GB,
) -> dict[str, Any]:
    """The ``hessian.json`` record of one checkpoint; ``settings`` is the config section 'hessian'.

    Samples per pass: the largest chunks, up to ``chunk_size``, that fit ``memory_budget_gb``
    for this model (lltax.runtime.memory.hessian_chunks); the record's ``chunks`` names them."""
    model, meta = load_model(path, device)
    piecewise_linear = is_piecewise_linear(meta["model"])
    # The schema-checked section as the numerics' named arguments (the job's one place for them).
    options = dict(
        backend=settings["backend"],
        top_k=settings["top_k"],
        tolerance=settings["tolerance"],
        max_iterations=settings["max_iterations"],
        lanczos_starts=settings["lanczos_starts"],
        trace_method=settings["trace_method"],
        trace_probes=settings["trace_probes"],
        chunk_size=settings["chunk_size"],
        seed=settings["seed"],
    )
    resolved = resolve_trace_method(settings["trace_method"], settings["backend"], piecewise_linear)
    chunks = None
    if is_diverged(model, meta):
        log.warning("%s is diverged: writing NaN Hessian metrics", path)
        record = nan_metrics(
            backend=settings["backend"], trace_method=resolved, top_k=settings["top_k"], num_samples=settings["num_samples"]
        )
    else:
        dataset = load_cell_data(meta, device, data_dir)
        inputs, targets = sample_training_data(
            dataset.x_train, dataset.y_train, settings["num_samples"], sample_seed(settings, meta["seed"])
        )
        parameters, activations, held = job_footprint(model, meta, dataset)
        chunks = hessian_chunks(
            memory_budget_gb * GB,
            parameters,
            activations,
            held=held,
            chunk_size=settings["chunk_size"],
            max_iterations=settings["max_iterations"],
            trace_method=resolved,
            trace_probes=settings["trace_probes"],
        )
        if min(chunks.values()) < min(settings["chunk_size"], len(inputs)):
            log.info("chunks %s fit memory_budget_gb %s (chunk_size %d)", chunks, memory_budget_gb, settings["chunk_size"])
        options["chunk_size"] = chunks["hessian_vector_products"]
        record = hessian_metrics(
            model, inputs, targets, piecewise_linear=piecewise_linear, **options, trace_chunk_size=chunks["exact_trace"]
        )
    return {
        **record,
        "settings": {
            **options,
            "chunk_size": settings["chunk_size"],
            "num_samples": settings["num_samples"],
            "sample": settings["sample"],
            "memory_budget_gb": memory_budget_gb,
        },
        "chunks": chunks,
        **checkpoint.provenance(meta, device),
    }


def run(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings, "hessian")
    device = resolve_device(args.device)
    for path, out in one_output_each(args.checkpoints, args.out, "checkpoint"):  # a cell's seeds in one process
        started = time.perf_counter()
        record = hessian_of_checkpoint(path, settings, device, args.data_dir, args.memory_budget_gb)
        log.info(
            "%s: top eigenvalue %s, trace %s (%d Hessian-vector products, %.1f s)",
            path,
            record["top_eigenvalue"],
            record["trace"],
            record["hvp_count"],
            time.perf_counter() - started,
        )
        write_json(out, record)
    return 0
