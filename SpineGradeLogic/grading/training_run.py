"""`spinegrade train grading`: prepared crops in, a trained and calibrated network out.

Imports no SimpleITK: the crops come from npz caches (``grading/prepare.py`` makes them, here or
elsewhere), so this runs on a machine with only torch, numpy and MONAI.
"""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from ..errors import DatasetError
from ..names import HEAD_NAMES
from ..training import fit
from ..training.precision import autocast_dtype
from .calibration import fit_temperatures
from .data import Augment, BatchSource, CropSet, iterate_images, load_prepared
from .heads import head_log_probabilities, n_classes, probabilities, split_outputs
from .loss import loss_on_batch, loss_with_measures
from .measures import MeasureTrainer
from .metrics import RSNA_CONDITIONS, head_metrics, rsna_weighted_log_loss
from .targets import bits, known, rsna_truth, set_nll
from .network import NETWORK_KWARGS, build_network, input_channels, widen_input

log = logging.getLogger("spinegrade")


@dataclass
class GradingTrainingConfig:
    prepared: List[Path] = field(default_factory=list)  # folders with grading-<profile>-<seed>.npz
    calibration_share: float = 0.15  # of training cases, when no calibration-profile crops exist
    epochs: int = 40
    steps_per_epoch: int = 200
    batch_size: int = 32
    lr: float = 2e-3
    patience: int = 10
    seed: int = 0
    device: str = "cpu"
    time_limit_s: Optional[float] = None
    init: Optional[Path] = None  # start from this bundle's weights (fine-tuning)
    monitor: str = "balanced_accuracy"  # or "nll": held-out set likelihood (right for partial labels)
    measure_weight: float = 0.5  # auxiliary loss on the generator's measurements (0: grades only)
    precision: str = "auto"  # "auto" (bfloat16 autocast where the device has it natively), "bf16" or "fp32"


def split_sets(cfg: GradingTrainingConfig):
    """Training crops (profile ``train``) and held-out crops (profile ``calibration``, or a share of
    the training cases, whole cases at a time, when there are none)."""
    train = load_prepared(cfg.prepared, "train")
    held = load_prepared(cfg.prepared, "calibration")
    if len(train) == 0:
        raise DatasetError(f"no training crops (grading-train-*.npz) in {', '.join(map(str, cfg.prepared)) or 'no folder'}")
    if len(held) == 0:
        cases = np.unique(train.case)
        rng = np.random.default_rng(cfg.seed)
        n_val = max(1, int(round(len(cases) * cfg.calibration_share)))
        val_cases = rng.choice(cases, n_val, replace=False)
        m = np.isin(train.case, val_cases)
        train, held = train.subset(~m), train.subset(m)
    return train, held


@torch.no_grad()
def raw_outputs(network: torch.nn.Module, crops: CropSet, device, batch_size: int = 64) -> torch.Tensor:
    network.eval()
    outs = [network(x).float().cpu() for x in iterate_images(crops, batch_size, device, input_channels(network))]
    return torch.cat(outs) if outs else torch.zeros((0, 0))


def set_nll_per_head(raw: torch.Tensor, crops: CropSet, temperatures: Optional[Dict[str, float]] = None) -> Dict[str, float]:
    """Mean held-out set likelihood loss per labelled head (partial labels count as the sets they are)."""
    parts = split_outputs(raw.float())
    allowed = torch.as_tensor(crops.allowed.astype(np.int64))
    out = {}
    for j, h in enumerate(HEAD_NAMES):
        ok = bits(allowed[:, j], h)
        rows = ~ok.all(1)
        if rows.any():
            logp = head_log_probabilities(h, parts[h][rows], (temperatures or {}).get(h, 1.0))
            out[h] = float(set_nll(logp, ok[rows]).mean())
    return out


def evaluate_outputs(raw: torch.Tensor, crops: CropSet, temperatures: Optional[Dict[str, float]] = None) -> Dict[str, object]:
    """Per head metrics on exact labels, the RSNA 2024 score (Normal/Mild sets count as severity 0)
    and the set likelihood of every labelled head."""
    probs = probabilities(raw, temperatures)
    t = crops.targets
    per_head = {h: m for h, m in head_metrics(probs, t).items() if m["n"] > 0}
    truth = {h: t[:, HEAD_NAMES.index(h)] for h in HEAD_NAMES}
    truth.update({h: rsna_truth(crops.allowed, h) for hs in RSNA_CONDITIONS.values() for h in hs})
    rsna = rsna_weighted_log_loss(probs, truth, crops.case)
    nlls = set_nll_per_head(raw, crops, temperatures)
    bacc = [m["balanced_accuracy"] for m in per_head.values()]
    ece = [m["ece"] for m in per_head.values()]
    return {"heads": per_head, "rsna": rsna, "set_nll": nlls,
            "mean_set_nll": float(np.mean(list(nlls.values()))) if nlls else float("nan"),
            "mean_balanced_accuracy": float(np.nanmean(bacc)) if bacc else float("nan"),
            "max_ece": float(np.nanmax(ece)) if ece else float("nan")}


MONITORS = ("balanced_accuracy", "nll")


def initial_network(cfg: GradingTrainingConfig):
    """A fresh network, or the ``cfg.init`` bundle's (its SHA-256 checked) and that bundle's temperatures."""
    if cfg.init is None:
        return build_network(), {}, None
    from .infer import Grader

    grader = Grader.load(cfg.init, "cpu")
    info = grader.model.model_info
    network = build_network()
    try:  # a sagittal-only bundle gains the axial channels with zero weights (same outputs)
        state = widen_input(grader.network.state_dict(), input_channels(network))
        network.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError) as e:  # another architecture: fine-tuning needs the same network
        raise DatasetError(f"{cfg.init}: its network does not match SpineGrade's grading network ({e})") from e
    return network, dict(grader.temperatures), {"path": str(cfg.init), "name": info.name, "version": info.version,
                                               "sha256": info.sha256, "input_channels": input_channels(grader.network),
                                               "changelog": dict(grader.model.metadata.get("changelog") or {})}


def train_grading_model(cfg: GradingTrainingConfig, checkpoint: Path, train: Optional[CropSet] = None,
                        held: Optional[CropSet] = None) -> Dict[str, object]:
    """Train (or, with ``cfg.init``, fine-tune), keep the best epoch by ``cfg.monitor`` on the held-out
    crops, then fit one temperature per head on them. ``train``/``held`` default to ``split_sets(cfg)``."""
    if cfg.monitor not in MONITORS:
        raise ValueError(f"monitor must be one of {MONITORS}, not {cfg.monitor!r}")
    torch.manual_seed(cfg.seed)
    if train is None or held is None:
        train, held = split_sets(cfg)
    if len(train) == 0 or len(held) == 0:
        raise DatasetError(f"training needs crops on both sides of the split ({len(train)} training, {len(held)} held out)")
    log.info("training on %d crops from %d cases (%d with axial T2); %d held-out crops from %d cases (%d with axial T2)",
             len(train), len(np.unique(train.case)), int(train.has_axial.sum()), len(held), len(np.unique(held.case)),
             int(held.has_axial.sum()))
    network, init_temps, init_info = initial_network(cfg)
    amp = autocast_dtype(cfg.precision, cfg.device)
    # channels-last 3-D convolutions: about a quarter faster on a CPU in float32 as in bfloat16
    network = network.to(cfg.device, memory_format=torch.channels_last_3d)
    log.info("training in %s on %s", "bfloat16 mixed precision" if amp is not None else "float32", cfg.device)
    source = BatchSource(train, cfg.batch_size, cfg.device, cfg.seed, Augment(), channels=input_channels(network))
    with_measures = int(np.isfinite(train.measures).any(1).sum()) if cfg.measure_weight > 0 else 0
    trained, loss_fn = network, loss_on_batch
    if with_measures:  # the measurement head trains with the network and is dropped afterwards
        log.info("auxiliary measurement loss (weight %g) on %d of %d training crops", cfg.measure_weight,
                 with_measures, len(train))
        trained, loss_fn = MeasureTrainer(network, train.measures).to(cfg.device), loss_with_measures(cfg.measure_weight)

    def validate(net):
        m = evaluate_outputs(raw_outputs(net, held, cfg.device), held)
        score = m["mean_balanced_accuracy"] if cfg.monitor == "balanced_accuracy" else -m["mean_set_nll"]
        out = {"score": score, "set_nll": m["mean_set_nll"], "rsna": m["rsna"]["score"]}
        out.update({f"bacc_{h}": v["balanced_accuracy"] for h, v in m["heads"].items()})
        return out

    result = fit(trained, source, loss_fn, validate, "score", checkpoint, cfg.epochs, cfg.steps_per_epoch,
                 cfg.lr, cfg.patience, time_limit_s=cfg.time_limit_s,
                 autocast_dtype=amp)  # leaves the best weights in ``network``
    network = network.to(memory_format=torch.contiguous_format)  # bundles hold plain float32 tensors
    raw = raw_outputs(network, held, cfg.device)
    temps = fit_temperatures(raw, torch.as_tensor(held.targets), allowed=held.allowed)
    unlabelled = [h for h in HEAD_NAMES if not known(held.allowed)[:, HEAD_NAMES.index(h)].any()]
    for h in unlabelled:  # nothing held out to fit on: keep what the starting bundle had
        temps[h] = float(init_temps.get(h, 1.0))
    before, after = evaluate_outputs(raw, held), evaluate_outputs(raw, held, temps)
    log.info("calibration: max ECE %.3f -> %.3f; mean balanced accuracy %.3f", before["max_ece"], after["max_ece"],
             after["mean_balanced_accuracy"])
    return {
        "network": network.cpu().eval(),
        "temperatures": temps,
        "fit": result,
        "held_out": {"uncalibrated": before, "calibrated": after, "crops": len(held),
                     "cases": [int(c) for c in np.unique(held.case)]},
        "training": {"crops": len(train), "cases": int(len(np.unique(train.case))),
                     "crops_with_axial": int(train.has_axial.sum()),
                     "crops_with_measurements": with_measures,
                     "class_counts": {h: np.bincount(t[t >= 0], minlength=n_classes(h)).tolist()
                                      for h, t in zip(HEAD_NAMES, train.targets.T)},
                     "labelled_crops": {h: int(k) for h, k in zip(HEAD_NAMES, known(train.allowed).sum(0))}},
        "temperatures_kept_from_init": unlabelled if cfg.init is not None else [],
        "init": init_info,
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "device": cfg.device,
                        "precision": "bf16" if amp is not None else "fp32"},
    }


def training_record(cfg: GradingTrainingConfig, outcome: Dict[str, object], command: str) -> Dict[str, object]:
    fr = outcome["fit"]
    return {
        "command": command,
        "config": {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, list) else v)
                   for k, v in cfg.__dict__.items()},
        "best_epoch": fr.best_epoch,
        "best_score": fr.best_score,
        "epochs_run": fr.epochs_run,
        "history": fr.history,
        "temperatures": outcome["temperatures"],
        "held_out": outcome["held_out"],
        "training": outcome["training"],
        "init": outcome.get("init"),
        "environment": outcome["environment"],
        "network_kwargs": NETWORK_KWARGS,
    }


def write_record(path: Path, record: Dict[str, object]) -> None:
    path.write_text(json.dumps(record, indent=1, default=float))
