"""Training loop of the body-outline model: Dice + BCE on augmented patches, best validation Dice kept."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .outline_data import OutlineCase, make_batch, sample_weights, samples_of
from .outline_model import build_network, predict_patches


@dataclass
class OutlineTraining:
    network: object
    history: List[Dict[str, float]] = field(default_factory=list)
    best_step: int = 0
    best_dice: float = 0.0
    input_dice: float = float("nan")  # the validation patches' own input masks against the targets
    n_train_patches: int = 0
    n_val_patches: int = 0


def patch_dice(network, xs: np.ndarray, ys: np.ndarray, device: str = "cpu") -> float:
    """Dice of the thresholded answers against the targets, pooled over the patches."""
    p = predict_patches(network, xs, device) > 0.5
    t = ys[:, 0] > 0.5
    return float(2 * (p & t).sum() / max(p.sum() + t.sum(), 1))


def train_outline(train: Sequence[OutlineCase], val: Sequence[OutlineCase], steps: int = 3000, batch: int = 32,
                  lr: float = 2e-3, every: int = 250, seed: int = 0, device: str = "cpu",
                  time_limit: Optional[float] = None, init=None, real_share: Optional[float] = None,
                  progress: Optional[Callable[[int, Dict[str, float]], None]] = None) -> OutlineTraining:
    """Train (or, with ``init``, train further) the outline network; returns the best-validation weights.

    Validation: every ``every`` steps, Dice on every validation patch (no augmentation); without
    validation cases the last weights are kept. ``real_share``: the share of each batch drawn from
    real cases (`outline_data.sample_weights`).
    """
    import torch
    from monai.losses import DiceCELoss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = init if init is not None else build_network()
    network.to(device)
    samples = samples_of(train)
    if not samples:
        raise ValueError("no training patches: no case has a pipeline body that matches a reference body")
    weights = sample_weights(train, samples, real_share)
    val_samples = samples_of(val)
    val_x, val_y = make_batch(val, val_samples, range(len(val_samples))) if val_samples else (None, None)
    loss_fn = DiceCELoss(sigmoid=True, batch=True)
    opt = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    # best_dice starts below any Dice, so the first validation is kept even where it scores 0
    out = OutlineTraining(network, best_dice=-1.0, n_train_patches=len(samples), n_val_patches=len(val_samples))
    if val_x is not None:  # what the vertebra model's outlines score on the same patches: the bar to clear
        given, target = val_x[:, 1] > 0.5, val_y[:, 0] > 0.5
        out.input_dice = float(2 * (given & target).sum() / max(given.sum() + target.sum(), 1))
    best_state = copy.deepcopy(network.state_dict())
    start, running = time.monotonic(), []
    for step in range(1, steps + 1):
        network.train()
        xs, ys = make_batch(train, samples, rng.choice(len(samples), batch, p=weights), rng)
        loss = loss_fn(network(torch.from_numpy(xs).to(device)), torch.from_numpy(ys).to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running.append(float(loss.detach()))
        out_of_time = time_limit is not None and time.monotonic() - start > time_limit
        if step % every == 0 or step == steps or out_of_time:
            network.eval()
            record = {"step": step, "loss": float(np.mean(running)), "seconds": time.monotonic() - start}
            running = []
            if val_x is not None:
                record["val_dice"] = patch_dice(network, val_x, val_y, device)
                if record["val_dice"] > out.best_dice:
                    out.best_dice, out.best_step = record["val_dice"], step
                    best_state = copy.deepcopy(network.state_dict())
            else:
                out.best_step, best_state = step, copy.deepcopy(network.state_dict())
            out.history.append(record)
            if progress:
                progress(step, record)
        if out_of_time:
            break
    network.load_state_dict(best_state)
    network.eval()
    return out
