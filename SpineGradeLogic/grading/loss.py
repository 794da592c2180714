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


def grading_loss(raw: torch.Tensor, target: torch.Tensor, smoothing: float = 0.02,
                 head_weights: Optional[Dict[str, float]] = None) -> torch.Tensor:
    """``raw`` [B, OUTPUT_SIZE], ``target`` [B, 13] class indices (-1 = unknown for that head)."""
    parts = split_outputs(raw)
    total = raw.new_zeros(())
    for j, h in enumerate(HEAD_NAMES):
        t = target[:, j]
        known = t >= 0
        if not known.any():
            continue
        logp = head_log_probabilities(h, parts[h][known])
        nll = -logp.gather(1, t[known, None]).squeeze(1)
        if smoothing > 0:
            nll = (1 - smoothing) * nll - smoothing * logp.mean(1)
        total = total + (head_weights or {}).get(h, 1.0) * nll.mean()
    return total


def loss_on_batch(network: torch.nn.Module, batch) -> torch.Tensor:
    return grading_loss(network(batch["image"]), batch["target"])
