"""``lltax fge``: fast geometric ensembling from a cell's first seed, against one model and the
cell's independent seeds ensembled -> fge.json.

Budgets are counted in training epochs: one model costs train.epochs (E), the FGE ensemble of k
snapshots E + k x fge.cycle_epochs, the ensemble of the first s seeds s x E. The record holds
the test accuracy of every ensemble size, so equal budgets can be read off (Garipov et al.'s
Table 1 compares FGE and independent ensembles at equal budget).
"""

from __future__ import annotations

import argparse
import logging

import torch

from lltax.config.schema import parse_settings
from lltax.jobs.metric_inputs import build_from_meta, cell_models, load_cell_data
from lltax.metrics.bezier import curve_point, load_parameters, recompute_batchnorm_statistics
from lltax.metrics.ensembles import ensemble_accuracy, fast_geometric_ensembling, probabilities
from lltax.runtime.device import resolve_device
from lltax.storage import checkpoint
from lltax.storage.atomic_files import write_json
from lltax.storage.checkpoint import load_curve

log = logging.getLogger(__name__)

HELP = "fast geometric ensembling from a cell's first seed, against one model and the independent seeds; writes fge.json"
ARGUMENTS = {
    "checkpoints": {"help": "the seed checkpoints of one cell (FGE starts from the first)"},
    "curves": {
        "nargs": "*",
        "required": False,
        "default": [],
        "help": "the cell's curve files; the first one's points make the curve ensemble",
    },
    "settings": {"help": "the config section 'fge' as JSON (cycles, cycle_epochs, lr_max, lr_min, seed)"},
    "device": {},
    "data_dir": {},
    "out": {"nargs": None, "help": "output fge.json"},
}


def fge_record(paths: list[str], settings: dict, device, data_dir: str | None, curve_path: str | None = None) -> dict:
    """The ``fge.json`` record of one cell's seed checkpoints (NaN accuracies where a seed diverged);
    with ``curve_path`` also the ensemble of ``fge.curve_points`` models evenly spaced along that
    fitted curve, ends included (Garipov et al.'s curve ensembles), BatchNorm recomputed at each."""
    metas, members, start, data = [], [], None, None
    for model, meta in cell_models(paths, device):
        metas.append(meta)
        if data is None:
            data = load_cell_data(meta, device, data_dir)
        members.append(None if model is None else probabilities(model, data.x_test))
        if start is None and model is not None and meta is metas[0]:
            start = (model, meta)
    nan = float("nan")
    epochs = None if metas[0].get("external") else metas[0]["train"]["epochs"]  # unknown for checkpoints trained elsewhere
    record = {
        "settings": settings,
        "seed": metas[0]["seed"],
        "single_test_acc": nan,
        "fge_test_acc": nan,
        "seed_ensemble_test_acc": nan,
        "fge_test_acc_by_snapshots": [],
        "seed_ensemble_test_acc_by_seeds": [],
        "model_epochs": epochs,
        "fge_epochs": None if epochs is None else epochs + settings["cycles"] * settings["cycle_epochs"],
        "seed_ensemble_epochs": None if epochs is None else len(metas) * epochs,
        "curve_ensemble_test_acc": nan,
        "curve_ensemble_epochs": None,
        **checkpoint.cell_provenance(metas, device),
    }
    if start is None or any(m is None for m in members):
        log.warning("a seed of %s diverged: writing NaN ensemble accuracies", paths[0])
        return record
    model, meta = start
    cell = meta["cell"]
    snapshots = fast_geometric_ensembling(
        model,
        data.x_train,
        data.y_train,
        cycles=settings["cycles"],
        cycle_epochs=settings["cycle_epochs"],
        lr_max=settings["lr_max"],
        lr_min=settings["lr_min"],
        batch_size=cell["batch_size"],
        momentum=meta["train"]["momentum"],
        weight_decay=cell["weight_decay"],
        seed=settings["seed"],
    )
    snapshot_model = build_from_meta(meta).to(device)
    fge_members = []
    for state in snapshots:
        snapshot_model.load_state_dict(state)
        fge_members.append(probabilities(snapshot_model, data.x_test))
    y = data.y_test
    record.update(
        single_test_acc=ensemble_accuracy(members[:1], y),
        fge_test_acc=ensemble_accuracy(fge_members, y),
        seed_ensemble_test_acc=ensemble_accuracy(members, y),
        fge_test_acc_by_snapshots=[ensemble_accuracy(fge_members[:k], y) for k in range(1, len(fge_members) + 1)],
        seed_ensemble_test_acc_by_seeds=[ensemble_accuracy(members[:k], y) for k in range(1, len(members) + 1)],
    )
    # A model whose outputs are not finite (FGE at a learning rate that diverges) has no accuracy:
    # its entries are NaN (lltax.metrics.ensembles.ensemble_accuracy) and the record says so.
    record["fge_diverged"] = not all(bool(torch.isfinite(member).all()) for member in fge_members)
    if record["fge_diverged"]:
        log.warning("FGE snapshots of %s have non-finite outputs (diverged at fge.lr_max %s): NaN accuracies", paths[0], settings["lr_max"])
    if curve_path:
        record.update(curve_ensemble(curve_path, settings["curve_points"], data, device, epochs, metas))
    log.info(
        "test accuracy: one model %.2f%%, FGE of %d snapshots %.2f%%, %d seeds %.2f%%",
        record["single_test_acc"],
        len(fge_members),
        record["fge_test_acc"],
        len(members),
        record["seed_ensemble_test_acc"],
    )
    return record


def curve_ensemble(curve_path: str, count: int, data, device, epochs: int | None, metas: list | None = None) -> dict:
    """Test accuracy of the ensemble of ``count`` models evenly spaced in t along a fitted curve,
    and its budget: two models plus the curve's fitting epochs. With ``metas`` (the cell's
    checkpoints) the curve must join two of them: another cell's curve is refused, naming it."""
    curve = load_curve(curve_path)
    meta = curve["meta"]
    if metas is not None:
        shas = {str(m["seed"]): m.get("state_sha256") for m in metas}
        ends = meta.get("checkpoints_sha256") or {}
        if not ends or any(shas.get(seed) != sha for seed, sha in ends.items()):
            raise ValueError(
                f"{curve_path} was fitted between other checkpoints (cell {meta['endpoint'].get('cell')}, seeds {sorted(ends)}) than "
                f"the --checkpoints given (cell {metas[0]['cell']}): give the curve of this cell's seeds"
            )
    if meta["diverged"]:
        return {}
    model = build_from_meta(meta["endpoint"]).to(device)
    model.load_state_dict({**curve["bends"][0], **curve["buffers"]})
    bends = [{k: v.to(device) for k, v in bend.items()} for bend in curve["bends"]]
    kind = meta["settings"].get("curve", "bezier")
    members = []
    for t in torch.linspace(0, 1, count, dtype=torch.float64).tolist():
        load_parameters(model, curve_point(bends, t, kind))
        recompute_batchnorm_statistics(model, data.x_train, batch_size=meta["settings"]["batch_size"])
        members.append(probabilities(model, data.x_test))
    return {
        "curve_ensemble_test_acc": ensemble_accuracy(members, data.y_test),
        "curve_ensemble_epochs": None if epochs is None else 2 * epochs + meta["settings"]["epochs"],
    }


def run(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings, "fge")
    settings = {k: v for k, v in settings.items() if k != "enabled"}
    record = fge_record(args.checkpoints, settings, resolve_device(args.device), args.data_dir, args.curves[0] if args.curves else None)
    write_json(args.out, record)
    return 0
