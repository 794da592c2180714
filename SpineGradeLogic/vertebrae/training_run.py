"""`spinegrade train vertebrae`: prepare cases, split, train, measure, and write the bundle."""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..errors import DatasetError
from ..training import fit
from .cases import PreparedCase, split_names
from .network import build_network
from .train import batch_sampler, body_dice, loss_on_batch

log = logging.getLogger("spinegrade")


@dataclass
class VertebraTrainingConfig:
    generated: List[Path] = field(default_factory=list)  # folders holding phantom cases (image + labels)
    real: List[Path] = field(default_factory=list)  # folders holding real cases with vertebrae.nii.gz
    prepared: List[Path] = field(default_factory=list)  # folders of prepared caches (generated-*.npz, real-*.npz)
    real_validation_share: float = 0.3
    generated_validation: int = 4
    epochs: int = 30
    steps_per_epoch: int = 200
    batch_size: int = 16
    lr: float = 2e-3
    patience: int = 8
    seed: int = 0
    device: str = "cpu"
    workers: int = 0  # data-loading processes
    init: Optional[Path] = None  # a bundle whose weights training starts from (fine-tuning)
    real_share: float = 0.5  # share of samples drawn from real scans
    fov_cut: float = 0.0  # share of samples whose field of view is cut from below (train.cut_field_of_view)
    cache: Optional[Path] = None
    time_limit_s: Optional[float] = None


def _case_dirs(roots: Sequence[Path], marker: str) -> List[Path]:
    out: List[Path] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: not a folder")
        out.extend(sorted(p.parent for p in root.glob(f"*/{marker}")))
    return out


def _sources(cfg: VertebraTrainingConfig) -> Dict[str, Dict[str, Path]]:
    """Every case by kind and name: case folders first, prepared caches for the rest."""
    found: Dict[str, Dict[str, Path]] = {"generated": {}, "real": {}}
    for d in _case_dirs(cfg.generated, "labels.nii.gz"):
        found["generated"][d.name] = d
    for d in _case_dirs(cfg.real, "vertebrae.nii.gz"):
        found["real"][d.name] = d
    for root in cfg.prepared:
        if not Path(root).is_dir():
            raise DatasetError(f"{root}: not a folder")
        for f in sorted(Path(root).glob("*.npz")):
            kind, _, name = f.name[: -len(".npz")].partition("-")
            if kind in found:
                found[kind].setdefault(name, f)
    return found


def load_cases(kind: str, sources: Dict[str, Path], names: Sequence[str], cache: Optional[Path]) -> List[PreparedCase]:
    """Prepared cases: from a cache file where there is one, else prepared now (and cached)."""
    cases = []
    for name in names:
        src = sources[name]
        cached = cache / f"{kind}-{name}.npz" if cache else None
        if src.suffix == ".npz":
            cached = src
        if cached is not None and cached.is_file():
            case = PreparedCase.load(cached)
        else:
            from .data import prepare_bodies_only, prepare_generated  # SimpleITK: only where cases are prepared

            case = prepare_generated(src) if kind == "generated" else prepare_bodies_only(src)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                case.save(cached)
        case.name = f"{kind}-{name}"
        cases.append(case)
    return cases


def train_vertebra_model(cfg: VertebraTrainingConfig, checkpoint: Path) -> Dict[str, object]:
    """Train on generated + real cases; return the network, the split and the validation history."""
    torch.manual_seed(cfg.seed)
    sources = _sources(cfg)
    gen, real = sources["generated"], sources["real"]
    if not gen and not real:
        raise DatasetError("no training cases found (generated cases need labels.nii.gz, real ones vertebrae.nii.gz)")
    real_train, real_val = split_names(list(real), cfg.real_validation_share, cfg.seed) if real else ([], [])
    gen_names = sorted(gen)
    gen_val, gen_train = gen_names[: cfg.generated_validation], gen_names[cfg.generated_validation:]
    train_cases = load_cases("generated", gen, gen_train, cfg.cache) + load_cases("real", real, real_train, cfg.cache)
    val_real = load_cases("real", real, real_val, cfg.cache)
    val_gen = load_cases("generated", gen, gen_val, cfg.cache)
    log.info("training on %d cases (%d generated, %d real); validating on %d real, %d generated",
             len(train_cases), len(gen_train), len(real_train), len(val_real), len(val_gen))
    network = build_network()
    if cfg.init is not None:
        from ..models.bundle import load_bundle

        network.load_state_dict(load_bundle(cfg.init).network.state_dict())
        log.info("starting from the weights of %s", cfg.init)
    network = network.to(cfg.device)
    sampler = batch_sampler(train_cases, cfg.batch_size, cfg.seed, cfg.workers, cfg.real_share, cfg.fov_cut)

    def to_device(batch):
        return {k: v.to(cfg.device) for k, v in batch.items()}

    def validate(net):
        m: Dict[str, float] = {}
        if val_real:
            m.update({f"real_{k}": v for k, v in body_dice(net, val_real, cfg.device).items()})
        if val_gen:
            m.update({f"generated_{k}": v for k, v in body_dice(net, val_gen, cfg.device).items()})
        m["score"] = float(np.mean([v for k, v in m.items() if k.endswith("body_dice")]))
        return m

    result = fit(network, lambda: (to_device(b) for b in sampler()), loss_on_batch, validate, "score", checkpoint,
                 cfg.epochs, cfg.steps_per_epoch, cfg.lr, cfg.patience, time_limit_s=cfg.time_limit_s)
    return {
        "network": network.cpu(),
        "split": {"real_train": real_train, "real_validation": real_val, "generated_validation": gen_val},
        "fit": result,
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "device": cfg.device},
    }


def write_training_record(path: Path, cfg: VertebraTrainingConfig, outcome: Dict[str, object], command: str) -> None:
    """What anyone needs to retrain the weights: the command, the data, the split, the history."""
    fit_result = outcome["fit"]
    record = {
        "command": command,
        "config": {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, list) else v)
                   for k, v in cfg.__dict__.items()},
        "split": outcome["split"],
        "best_epoch": fit_result.best_epoch,
        "best_score": fit_result.best_score,
        "history": fit_result.history,
        "environment": outcome["environment"],
    }
    path.write_text(json.dumps(record, indent=1))
