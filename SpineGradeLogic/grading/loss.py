"""Training loss of the grading network: the sum over heads of each head's negative log-likelihood.

For ordinal heads the likelihood is the cumulative-link model's (see ``heads.py``), whose class
probabilities are ordered by construction; nominal heads use softmax cross-entropy. A small
label-smoothing term (``smoothing``) keeps the logits from running away on a synthetic training set
whose easy cases would otherwise be fitted with ever larger margins (temperature scaling then has
less to undo).
"""

from __future__ import annotations

from typing import Dict, Optional

import torch

from ..names import HEAD_NAMES
from .heads import head_log_probabilities, split_outputs
from .targets import bits, set_nll


def grading_loss(raw: torch.Tensor, target: torch.Tensor, smoothing: float = 0.02,
                 head_weights: Optional[Dict[str, float]] = None, allowed: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``raw`` [B, OUTPUT_SIZE], ``target`` [B, 13] class indices (-1 = unknown for that head).

    With ``allowed`` ([B, 13] bitmasks, ``grading/targets.py``) each head's term is the set
    likelihood of the allowed classes instead (partial labels such as RSNA's Normal/Mild); rows
    whose mask allows every class add nothing.
    """
    parts = split_outputs(raw)
    total = raw.new_zeros(())
    for j, h in enumerate(HEAD_NAMES):
        if allowed is None:
            t = target[:, j]
            rows = t >= 0
            if not rows.any():
                continue
            logp = head_log_probabilities(h, parts[h][rows])
            nll = -logp.gather(1, t[rows, None]).squeeze(1)
        else:
            ok = bits(allowed[:, j], h)
            rows = ~ok.all(1)
            if not rows.any():
                continue
            logp = head_log_probabilities(h, parts[h][rows])
            nll = set_nll(logp, ok[rows])
        if smoothing > 0:
            nll = (1 - smoothing) * nll - smoothing * logp.mean(1)
        total = total + (head_weights or {}).get(h, 1.0) * nll.mean()
    return total


def loss_on_batch(network: torch.nn.Module, batch) -> torch.Tensor:
    return grading_loss(network(batch["image"]), batch["target"], allowed=batch.get("allowed"))


def loss_with_measures(weight: float):
    """The grading loss plus ``weight`` times the measurement loss, for a ``measures.MeasureTrainer``
    (crops without measurements add only their grades)."""

    def loss(trainer: torch.nn.Module, batch) -> torch.Tensor:
        raw, predicted = trainer.grades_and_measures(batch["image"])
        total = grading_loss(raw, batch["target"], allowed=batch.get("allowed"))
        return total + weight * trainer.measure_error(predicted, batch["measures"])

    return loss
