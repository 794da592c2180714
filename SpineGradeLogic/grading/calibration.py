"""Temperature scaling per head, fitted on held-out data, stored in the bundle, applied at inference.

One scalar ``T_h`` per head divides that head's raw outputs (logits, or the cumulative logits of an
ordinal head, which keeps their order) before the probabilities are formed. ``T_h`` minimises the
held-out negative log-likelihood: a coarse log-spaced grid, then a golden-section refinement
(deterministic, no optimiser state, a few milliseconds).
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import torch

from ..names import HEAD_NAMES
from .heads import head_log_probabilities, split_outputs
from .targets import bits, set_nll

T_MIN, T_MAX = 0.05, 20.0


def _nll(head: str, raw: torch.Tensor, t: torch.Tensor, T: float) -> float:
    """Mean NLL; ``t`` is [N] class indices or [N, K] booleans of allowed classes (set likelihood)."""
    logp = head_log_probabilities(head, raw, T)
    if t.dim() == 2:
        return float(set_nll(logp, t).mean())
    return float(-logp.gather(1, t[:, None]).mean())


def fit_temperature(head: str, raw: torch.Tensor, target: torch.Tensor, allowed: Optional[torch.Tensor] = None) -> float:
    """The temperature minimising this head's NLL on ``raw`` [N, n_outputs] with class indices ``target``,
    or, given ``allowed`` ([N] bitmasks of this head), the set likelihood of the allowed classes."""
    if allowed is not None:
        ok = bits(torch.as_tensor(allowed), head)
        keep = ~ok.all(1)
        raw, target = raw[keep].double(), ok[keep]
    else:
        keep = target >= 0
        raw, target = raw[keep].double(), target[keep].long()
    if len(target) == 0:
        return 1.0
    grid = np.exp(np.linspace(math.log(T_MIN), math.log(T_MAX), 61))
    losses = [_nll(head, raw, target, T) for T in grid]
    i = int(np.argmin(losses))
    lo, hi = math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, len(grid) - 1)])
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = _nll(head, raw, target, math.exp(a)), _nll(head, raw, target, math.exp(b))
    for _ in range(40):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = _nll(head, raw, target, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = _nll(head, raw, target, math.exp(b))
    T = math.exp((lo + hi) / 2)
    # never worse than no scaling
    return float(T) if _nll(head, raw, target, T) <= _nll(head, raw, target, 1.0) else 1.0


def fit_temperatures(raw: torch.Tensor, targets: torch.Tensor, heads: Sequence[str] = HEAD_NAMES,
                     allowed: Optional[torch.Tensor] = None) -> Dict[str, float]:
    """Per head temperature from the flat raw outputs ``[N, OUTPUT_SIZE]`` and class indices ``[N, 13]``
    (or, given ``allowed`` [N, 13] bitmasks, their set likelihood). A head without labels gets 1."""
    parts = split_outputs(torch.as_tensor(raw))
    targets = torch.as_tensor(targets)
    allowed = None if allowed is None else torch.as_tensor(np.asarray(allowed, np.int64))
    return {h: round(fit_temperature(h, parts[h], targets[:, HEAD_NAMES.index(h)],
                                     None if allowed is None else allowed[:, HEAD_NAMES.index(h)]), 5) for h in heads}


def check_temperatures(temps: Mapping[str, float]) -> Dict[str, float]:
    """Temperatures from bundle metadata, validated (positive, finite); missing heads get 1."""
    out = {}
    for h in HEAD_NAMES:
        T = float(temps.get(h, 1.0))
        if not (math.isfinite(T) and T > 0):
            raise ValueError(f"temperature of head {h} must be a positive number, got {T}")
        out[h] = T
    return out
