"""Which grade to show from calibrated probabilities: the operating point (``sensitivity``).

The probabilities are what the model knows; the grade shown is a decision on top of them. At
sensitivity 0 (the default) it is the most probable grade. That favours the common grades: a disc
with P(normal) = 0.55 and P(mild) = 0.45 is shown as normal, and mild and moderate grades are missed
more often than normal discs are over-called (docs/grading.md, per-grade recall).

Sensitivity ``s`` in [0, 1] shows the grade with the largest ``p_k / prior_k ** s``, where ``prior_k``
is how common grade k was among the bundle's held-out calibration crops. At 1 every grade is weighed
as if all were equally common: the decision that maximises expected balanced accuracy when the
probabilities are calibrated. Values between trade plain accuracy (fewer false calls) for recall of
the uncommon grades. The probabilities themselves never change.

A grade rarer than ``PRIOR_FLOOR`` counts as that common: a grade seen on one or two held-out crops
would otherwise be boosted a thousandfold and called on every disc where it has any probability.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional

import numpy as np

from ..names import HEADS

PRIOR_FLOOR = 0.03


def check_sensitivity(value: Any) -> float:
    """``value`` as a float in [0, 1], or ValueError naming the problem."""
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"sensitivity must be a number between 0 and 1, got {value!r}") from None
    if not (math.isfinite(s) and 0.0 <= s <= 1.0):
        raise ValueError(f"sensitivity must be between 0 and 1, got {value!r}")
    return s


def grade_priors(counts: Mapping[str, Any]) -> Dict[str, np.ndarray]:
    """Per head, each grade's share of the held-out crops (``counts``: head -> per-grade crop counts in
    the head's class order), floored at ``PRIOR_FLOOR``. Heads without counts are left out."""
    out = {}
    for h, c in counts.items():
        if h not in HEADS or c is None:
            continue
        c = np.asarray(c, float)
        if c.shape != (len(HEADS[h]),) or not np.isfinite(c).all() or (c < 0).any() or c.sum() <= 0:
            raise ValueError(f"grade counts of {h} must be {len(HEADS[h])} non-negative numbers, not all 0; got {list(c)}")
        out[h] = np.maximum(c / c.sum(), PRIOR_FLOOR)
    return out


def held_out_counts(spinegrade_meta: Mapping[str, Any]) -> Dict[str, Any]:
    """Per-grade crop counts behind a bundle's temperatures: ``spinegrade.grade_counts`` where the
    bundle has them, else the held-out figures of its training record (``support`` per head)."""
    if spinegrade_meta.get("grade_counts"):
        return dict(spinegrade_meta["grade_counts"])
    heads = ((((spinegrade_meta.get("training") or {}).get("held_out") or {}).get("calibrated") or {})
             .get("heads") or {})
    return {h: m.get("support") for h, m in heads.items() if m.get("support")}


def decision_weights(priors: Mapping[str, np.ndarray], sensitivity: float) -> Dict[str, np.ndarray]:
    """Per head the factors the probabilities are multiplied by before the largest is taken."""
    s = check_sensitivity(sensitivity)
    return {h: np.asarray(p, float) ** -s for h, p in priors.items()}


def decide(probabilities: np.ndarray, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Class index per row of ``probabilities`` ([..., K]): the largest ``p * weights`` (the most probable
    class without weights)."""
    p = np.asarray(probabilities, float)
    return (p if weights is None else p * np.asarray(weights, float)).argmax(-1)
