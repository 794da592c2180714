"""Grading metrics: balanced accuracy, quadratic-weighted kappa, expected calibration error, and the
RSNA 2024 lumbar spine weighted log loss.

Everything works on class indices (0..K-1) and probability arrays ``[N, K]``; plain numpy.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..names import HEAD_NAMES, HEADS


def balanced_accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Mean recall over the classes present in ``y_true`` (sklearn's definition)."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    classes = np.unique(t)
    if classes.size == 0:
        return float("nan")
    return float(np.mean([np.mean(p[t == c] == c) for c in classes]))


def recall_per_class(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> Tuple[list, list]:
    """``(recall, support)`` per class 0..K-1: the share of each class's rows predicted as it (None for
    a class with no rows: the lists go into JSON, which has no NaN) and how many rows it has. Balanced
    accuracy is the mean of the recalls that exist, so a class of two rows weighs as much as one of
    two thousand; the support says when."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    support = [int((t == c).sum()) for c in range(n_classes)]
    recall = [float(np.mean(p[t == c] == c)) if n else None for c, n in enumerate(support)]
    return recall, support


def balanced_accuracy_interval(y_true: Sequence[int], y_pred: Sequence[int], groups: Sequence,
                               n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Tuple[float, float]:
    """Percentile bootstrap interval of :func:`balanced_accuracy`, resampling whole ``groups``.

    Levels of one case share its anatomy and contrast, so cases, not crops, are the independent
    draws: each bootstrap sample draws cases with replacement and keeps all their rows. With a rare
    grade held by a handful of crops (severe lateral recess stenosis, Modic 3) one crop moves the
    balanced accuracy by several points, which is what the interval shows. A resample without some
    class averages over the classes it has, as the point estimate does.
    """
    t, p = np.asarray(y_true), np.asarray(y_pred)
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    if t.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n_groups = int(g.max()) + 1
    draws = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)  # [B, groups]
    w = draws[:, g].astype(float)  # [B, rows]: how often each row is in each resample
    recalls = []
    for c in np.unique(t):
        den = w[:, t == c].sum(1)
        num = w[:, (t == c) & (p == c)].sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append(np.where(den > 0, num / den, np.nan))
    ba = np.nanmean(np.stack(recalls, 1), 1)
    lo, hi = np.nanpercentile(ba, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def quadratic_weighted_kappa(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> float:
    """Cohen's kappa with weights ``(i - j)^2 / (K - 1)^2``; 1 = perfect, 0 = chance.

    Returns 1.0 when truth and prediction agree and hold a single class (kappa's 0/0 case), 0.0 when
    they disagree in that case.
    """
    t, p = np.asarray(y_true, int), np.asarray(y_pred, int)
    K = int(n_classes)
    O = np.zeros((K, K))
    np.add.at(O, (t, p), 1)
    W = (np.subtract.outer(np.arange(K), np.arange(K)) ** 2) / max((K - 1) ** 2, 1)
    E = np.outer(O.sum(1), O.sum(0)) / max(O.sum(), 1)
    den = (W * E).sum()
    if den == 0:
        return 1.0 if np.all(t == p) else 0.0
    return float(1 - (W * O).sum() / den)


def expected_calibration_error(probs: np.ndarray, y_true: Sequence[int], n_bins: int = 15) -> float:
    """ECE of the top-class confidence: sum over equal-width bins of |accuracy - confidence| x share."""
    p = np.asarray(probs, float)
    t = np.asarray(y_true, int)
    if len(t) == 0:
        return float("nan")
    conf = p.max(1)
    correct = (p.argmax(1) == t).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def nll(probs: np.ndarray, y_true: Sequence[int]) -> float:
    p = np.clip(np.asarray(probs, float)[np.arange(len(y_true)), np.asarray(y_true, int)], 1e-15, 1)
    return float(-np.log(p).mean())


# --- RSNA 2024 ---------------------------------------------------------------------------------

#: RSNA condition -> SpineGrade heads pooled into it (RSNA's "subarticular" = lateral recess)
RSNA_CONDITIONS: Dict[str, tuple] = {
    "spinal_canal_stenosis": ("central_canal_stenosis",),
    "neural_foraminal_narrowing": ("foraminal_stenosis_left", "foraminal_stenosis_right"),
    "subarticular_stenosis": ("lateral_recess_stenosis_left", "lateral_recess_stenosis_right"),
}
RSNA_WEIGHTS = np.array([1.0, 2.0, 4.0])  # normal/mild, moderate, severe


def to_rsna(probs: np.ndarray) -> np.ndarray:
    """0-3 probabilities ``[N, 4]`` -> RSNA's Normal/Mild, Moderate, Severe ``[N, 3]``."""
    p = np.asarray(probs, float)
    return np.stack([p[:, 0] + p[:, 1], p[:, 2], p[:, 3]], 1)


def rsna_severity(y_idx: Sequence[int]) -> np.ndarray:
    """0-3 grade -> 0 (normal/mild), 1 (moderate), 2 (severe)."""
    return np.clip(np.asarray(y_idx, int) - 1, 0, 2)


def _weighted_log_loss(p: np.ndarray, y: np.ndarray, w: np.ndarray, eps: float = 1e-15) -> float:
    p = np.clip(p, eps, 1 - eps)
    p = p / p.sum(1, keepdims=True)  # as sklearn's log_loss does
    return float(np.sum(-np.log(p[np.arange(len(y)), y]) * w) / np.sum(w))


def rsna_weighted_log_loss(probs: Mapping[str, np.ndarray], truth: Mapping[str, Sequence[int]],
                           study: Sequence, any_severe_scalar: float = 1.0) -> Dict[str, float]:
    """The RSNA 2024 lumbar spine competition metric on SpineGrade heads.

    Args:
        probs: head -> ``[N, 4]`` probabilities of grades 0-3 (one row per level).
        truth: head -> ``[N]`` true grades 0-3 (-1: not graded, the row is left out).
        study: ``[N]`` study identifier of each row (the any-severe term is per study).

    Per condition (foraminal and subarticular pool their left and right rows), sample-weighted log
    loss over Normal/Mild, Moderate, Severe with weights 1, 2, 4 by the true severity; then the
    any-severe-spinal term: per study, the label "any level severe" against the highest predicted
    severe probability, weighted by the study's largest spinal sample weight. The score is the average
    of the three condition losses and the any-severe loss (weight ``any_severe_scalar``).
    """
    out: Dict[str, float] = {}
    losses, weights = [], []
    for cond, heads in RSNA_CONDITIONS.items():
        if not all(h in probs for h in heads):
            continue
        rows = [np.asarray(truth[h]) >= 0 for h in heads]
        if not any(r.any() for r in rows):
            continue
        p = np.concatenate([to_rsna(np.asarray(probs[h])[r]) for h, r in zip(heads, rows)])
        y = np.concatenate([rsna_severity(np.asarray(truth[h])[r]) for h, r in zip(heads, rows)])
        out[cond] = _weighted_log_loss(p, y, RSNA_WEIGHTS[y])
        losses.append(out[cond])
        weights.append(1.0)
    canal = np.asarray(truth.get("central_canal_stenosis", [])) >= 0
    if "central_canal_stenosis" in probs and canal.any():
        study = np.asarray(study)[canal]
        p_sev = to_rsna(np.asarray(probs["central_canal_stenosis"])[canal])[:, 2]
        y_sev = rsna_severity(np.asarray(truth["central_canal_stenosis"])[canal])
        ids = list(dict.fromkeys(study.tolist()))
        lab = np.array([int((y_sev[study == s] == 2).any()) for s in ids])
        pred = np.array([p_sev[study == s].max() for s in ids])
        w = np.array([RSNA_WEIGHTS[y_sev[study == s]].max() for s in ids])
        pp = np.stack([1 - pred, pred], 1)
        out["any_severe_spinal"] = _weighted_log_loss(pp, lab, w)
        losses.append(out["any_severe_spinal"])
        weights.append(any_severe_scalar)
    out["score"] = float(np.average(losses, weights=weights)) if losses else float("nan")
    return out


def head_metrics(probs: Mapping[str, np.ndarray], targets: np.ndarray,
                 heads: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, float]]:
    """Per head: balanced accuracy, QWK, ECE, NLL, accuracy, the number of rows, and each grade's
    recall and number of rows (``recall``, ``support``; lists in the head's class order).

    ``targets`` is ``[N, 13]`` class indices in ``HEAD_NAMES`` order (-1 = unknown, skipped).
    """
    out = {}
    for h in heads or [h for h in HEAD_NAMES if h in probs]:
        j = HEAD_NAMES.index(h)
        t = np.asarray(targets)[:, j]
        m = t >= 0
        p, t = np.asarray(probs[h])[m], t[m]
        pred = p.argmax(1)
        recall, support = recall_per_class(t, pred, len(HEADS[h]))
        out[h] = {
            "balanced_accuracy": balanced_accuracy(t, pred),
            "qwk": quadratic_weighted_kappa(t, pred, len(HEADS[h])),
            "ece": expected_calibration_error(p, t),
            "nll": nll(p, t) if len(t) else float("nan"),
            "accuracy": float((pred == t).mean()) if len(t) else float("nan"),
            "n": int(len(t)),
            "recall": recall,
            "support": support,
        }
    return out
