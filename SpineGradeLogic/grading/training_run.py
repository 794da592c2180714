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
from .calibration import fit_temperatures
from .data import Augment, BatchSource, CropSet, iterate_images, load_prepared
from .heads import probabilities
from .loss import loss_on_batch
from .metrics import head_metrics, rsna_weighted_log_loss
from .network import NETWORK_KWARGS, build_network

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
    outs = [network(x).float().cpu() for x in iterate_images(crops, batch_size, device)]
    return torch.cat(outs) if outs else torch.zeros((0, 0))


def evaluate_outputs(raw: torch.Tensor, crops: CropSet, temperatures: Optional[Dict[str, float]] = None) -> Dict[str, object]:
    probs = probabilities(raw, temperatures)
    t = crops.targets
    per_head = head_metrics(probs, t)
    rsna = rsna_weighted_log_loss(probs, {h: t[:, HEAD_NAMES.index(h)] for h in HEAD_NAMES}, crops.case)
    return {"heads": per_head, "rsna": rsna,
            "mean_balanced_accuracy": float(np.nanmean([m["balanced_accuracy"] for m in per_head.values()])),
            "max_ece": float(np.nanmax([m["ece"] for m in per_head.values()]))}


def train_grading_model(cfg: GradingTrainingConfig, checkpoint: Path) -> Dict[str, object]:
    torch.manual_seed(cfg.seed)
    train, held = split_sets(cfg)
    log.info("training on %d crops from %d cases; %d held-out crops from %d cases",
             len(train), len(np.unique(train.case)), len(held), len(np.unique(held.case)))
    network = build_network().to(cfg.device)
    source = BatchSource(train, cfg.batch_size, cfg.device, cfg.seed, Augment())

    def validate(net):
        m = evaluate_outputs(raw_outputs(net, held, cfg.device), held)
        out = {"score": m["mean_balanced_accuracy"], "rsna": m["rsna"]["score"]}
        out.update({f"bacc_{h}": v["balanced_accuracy"] for h, v in m["heads"].items()})
        return out

    result = fit(network, source, loss_on_batch, validate, "score", checkpoint, cfg.epochs, cfg.steps_per_epoch,
                 cfg.lr, cfg.patience, time_limit_s=cfg.time_limit_s)
    raw = raw_outputs(network, held, cfg.device)
    temps = fit_temperatures(raw, torch.as_tensor(held.targets))
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
                     "class_counts": {h: np.bincount(train.targets[:, j]).tolist() for j, h in enumerate(HEAD_NAMES)}},
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "device": cfg.device},
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
        "environment": outcome["environment"],
        "network_kwargs": NETWORK_KWARGS,
    }


def write_record(path: Path, record: Dict[str, object]) -> None:
    path.write_text(json.dumps(record, indent=1, default=float))
