"""Labelling metrics: VerSe identification, all-correct scans, centroid error, Dice."""

from __future__ import annotations

import numpy as np
import pytest

from SpineGradeLogic.evaluation.labelling_metrics import (
    centroid_errors,
    dice_per_label,
    identification,
    score_scan,
    summarise,
)

TRUTH = {"L3": [0, 0, 0.0], "L4": [0, 0, -35.0], "L5": [0, 0, -70.0]}


def test_identification_needs_20mm_and_nearest():
    pred = {"L3": [0, 3, 0.0], "L4": [0, 0, -30.0], "L5": [0, 0, -95.0]}
    ident = identification(TRUTH, pred)
    assert ident == {"L3": True, "L4": True, "L5": False}  # L5 is 25 mm off
    # within 20 mm but another prediction is nearer: not identified (a shifted labelling)
    shifted = {"L3": [0, 0, -17.0], "L4": [0, 0, -2.0], "L5": [0, 0, -40.0]}
    assert identification(TRUTH, shifted) == {"L3": False, "L4": False, "L5": False}
    assert identification(TRUTH, {"L3": [0, 0, 0.0]}) == {"L3": True, "L4": False, "L5": False}


def test_centroid_errors_and_scan_score():
    pred = {"L3": [3, 4, 0.0], "L4": [0, 0, -35.0], "L5": [0, 0, -70.0], "S1": [0, 0, -110.0]}
    assert centroid_errors(TRUTH, pred) == {"L3": 5.0, "L4": 0.0, "L5": 0.0}
    s = score_scan(TRUTH, pred)
    assert s.identification_rate == 1.0
    assert not s.all_correct  # S1 named but not in the truth
    assert score_scan(TRUTH, {k: v for k, v in pred.items() if k != "S1"}).all_correct


def test_dice_per_label_uses_monai():
    t = np.zeros((20, 20, 20), np.uint8)
    p = np.zeros_like(t)
    t[2:6, 2:6, 2:6] = 22
    p[2:6, 2:6, 3:7] = 22  # 3/4 overlap
    t[10:12, 10:12, 10:12] = 23  # missed entirely
    d = dice_per_label(t, p)
    assert d[22] == pytest.approx(0.75)
    assert d[23] == 0.0
    with pytest.raises(ValueError):
        dice_per_label(t, p[:10])


def test_summary_pools_scans():
    a = score_scan(TRUTH, TRUTH)
    b = score_scan(TRUTH, {"L3": [0, 0, 0.0], "L4": [0, 0, -35.0]})
    t = np.zeros((8, 8, 8), np.uint8)
    t[2:5, 2:5, 2:5] = 22
    a.dice = {22: 1.0}
    b.dice = {22: 0.5}
    s = summarise([a, b])
    assert s.identification_rate == pytest.approx(5 / 6)
    assert s.all_correct_share == 0.5
    assert s.mean_centroid_error_mm == 0.0
    assert s.mean_dice == 0.75
    assert any("identification rate: 83.3%" in line for line in s.lines())
