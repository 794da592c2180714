"""One training loop for every model: epochs of sampled batches, validation, checkpoints, resume.

The checkpoint holds the network, the optimiser, the epoch, the best score and the best weights;
it is written atomically after each epoch, so a run stopped at any point resumes where it was.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import torch
from tqdm import tqdm

from .precision import autocast

log = logging.getLogger("spinegrade")


@dataclass
class FitResult:
    best_score: float
    best_epoch: int
    epochs_run: int
    history: List[Dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fit(
    network: torch.nn.Module,
    batches: Callable[[], Iterator],
    loss_fn: Callable[[torch.nn.Module, object], torch.Tensor],
    validate: Callable[[torch.nn.Module], Dict[str, float]],
    monitor: str,
    checkpoint: Path,
    epochs: int = 20,
    steps_per_epoch: int = 100,
    lr: float = 1e-3,
    patience: int = 5,
    resume: bool = True,
    time_limit_s: Optional[float] = None,
    show_progress: bool = True,
    autocast_dtype: Optional[torch.dtype] = None,
) -> FitResult:
    """Train ``network`` and leave its best weights (by ``validate()[monitor]``, higher is better) in it.

    Args:
        batches: returns a fresh iterator of training batches for one epoch.
        loss_fn: ``(network, batch) -> scalar loss``.
        validate: ``network -> metrics``; must contain ``monitor``.
        checkpoint: file for the checkpoint; resumed from when ``resume`` and it exists.
        patience: stop after this many epochs without improvement.
        time_limit_s: stop after the epoch during which this much time has passed.
        autocast_dtype: run ``loss_fn`` under autocast to this dtype (``precision.autocast_dtype``);
            the backward pass and the optimiser stay as they are. None: float32 throughout.
    """
    optimiser = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, epochs))
    state = {"epoch": 0, "best": -math.inf, "best_epoch": 0, "history": []}
    if resume and checkpoint.is_file():
        ck = torch.load(checkpoint, weights_only=True, map_location="cpu")
        network.load_state_dict(ck["network"])
        optimiser.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        state = {k: ck[k] for k in state}
        best_weights = ck["best_network"]
        log.info("resumed from %s at epoch %d (best %s %.4f)", checkpoint, state["epoch"], monitor, state["best"])
    else:
        best_weights = {k: v.detach().clone() for k, v in network.state_dict().items()}
    started = time.perf_counter()
    stopped_early = False
    device = next(network.parameters()).device
    for epoch in range(state["epoch"], epochs):
        network.train()
        total, n = 0.0, 0
        bar = tqdm(batches(), total=steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}", leave=False,
                   disable=None if show_progress else True)  # None: off when not a terminal
        for step, batch in enumerate(bar):
            if step >= steps_per_epoch:
                break
            optimiser.zero_grad()
            with autocast(device, autocast_dtype):
                loss = loss_fn(network, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
            optimiser.step()
            total, n = total + loss.item(), n + 1
            bar.set_postfix(loss=f"{total / n:.4f}")
        scheduler.step()
        metrics = {"epoch": epoch + 1, "loss": total / max(n, 1), **validate(network)}
        state["history"].append(metrics)
        improved = metrics[monitor] > state["best"]
        if improved:
            state["best"], state["best_epoch"] = metrics[monitor], epoch + 1
            best_weights = {k: v.detach().clone() for k, v in network.state_dict().items()}
        state["epoch"] = epoch + 1
        log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "epoch"))
        _save_atomic({**state, "network": network.state_dict(), "optimizer": optimiser.state_dict(),
                      "scheduler": scheduler.state_dict(), "best_network": best_weights}, checkpoint)
        if epoch + 1 - state["best_epoch"] >= patience:
            log.info("no improvement in %s for %d epochs: stopping early", monitor, patience)
            stopped_early = True
            break
        if time_limit_s is not None and time.perf_counter() - started > time_limit_s:
            log.info("time limit reached after epoch %d", epoch + 1)
            break
    network.load_state_dict(best_weights)
    return FitResult(state["best"], state["best_epoch"], state["epoch"], state["history"], stopped_early)
