"""The operating point (``sensitivity``): which grade is shown from calibrated probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from SpineGradeLogic.grading.decision import (PRIOR_FLOOR, check_sensitivity, decide, decision_weights, grade_priors,
                                              held_out_counts)
from SpineGradeLogic.names import HEAD_NAMES, HEADS


def test_zero_shows_the_most_probable_grade_and_one_weighs_every_grade_equally():
    priors = grade_priors({"disc_herniation": [900, 100]})
    p = np.array([[0.8, 0.2], [0.95, 0.05], [0.3, 0.7]])
    assert decide(p, decision_weights(priors, 0.0)["disc_herniation"]).tolist() == [0, 0, 1]
    # at 1: p / prior, so 0.2 / 0.1 beats 0.8 / 0.9; 0.05 / 0.1 does not beat 0.95 / 0.9
    assert decide(p, decision_weights(priors, 1.0)["disc_herniation"]).tolist() == [1, 0, 1]
    # in between: 0.8 / 0.9 ** 0.5 = 0.84 still beats 0.2 / 0.1 ** 0.5 = 0.63
    assert decide(p, decision_weights(priors, 0.5)["disc_herniation"]).tolist() == [0, 0, 1]
    assert decide(p).tolist() == p.argmax(1).tolist()


def test_a_grade_almost_never_seen_is_not_boosted_without_bound():
    priors = grade_priors({"disc_narrowing": [3000, 300, 200, 1]})
    assert priors["disc_narrowing"][3] == PRIOR_FLOOR
    assert priors["disc_narrowing"][0] == pytest.approx(3000 / 3501)
    # 2 % for grade 3 is not enough against 60 % normal, as it would be at its raw share of 1 in 3,501
    w = decision_weights(priors, 1.0)["disc_narrowing"]
    assert decide(np.array([0.6, 0.3, 0.08, 0.02]), w) != 3


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, "high", None])
def test_sensitivity_outside_0_to_1_is_refused(bad):
    with pytest.raises(ValueError, match="sensitivity"):
        check_sensitivity(bad)


def test_grade_counts_must_match_the_head():
    with pytest.raises(ValueError, match="modic"):
        grade_priors({"modic": [10, 2]})
    with pytest.raises(ValueError, match="disc_bulging"):
        grade_priors({"disc_bulging": [0, 0]})
    with pytest.raises(ValueError, match="disc_bulging"):
        grade_priors({"disc_bulging": [5, -1]})
    assert grade_priors({"not_a_head": [1, 2], "disc_bulging": None}) == {}


def test_counts_come_from_the_bundle_or_its_held_out_record():
    record = {"held_out": {"calibrated": {"heads": {"disc_bulging": {"support": [80, 20]}, "modic": {}}}}}
    assert held_out_counts({"training": record}) == {"disc_bulging": [80, 20]}
    assert held_out_counts({"grade_counts": {"disc_bulging": [1, 1]}, "training": record}) == {"disc_bulging": [1, 1]}
    assert held_out_counts({}) == {}


def test_the_shipped_bundle_has_priors_for_every_head():
    from SpineGradeLogic.grading.infer import Grader
    from SpineGradeLogic.models.bundle import find_bundle

    path = find_bundle("spinegrade_grading")
    if path is None:
        pytest.skip("no grading bundle installed")
    grader = Grader.load(path)
    assert set(grader.priors) == set(HEAD_NAMES)
    for h, p in grader.priors.items():
        assert p.shape == (len(HEADS[h]),) and (p >= PRIOR_FLOOR).all() and p.sum() >= 1.0 - 1e-9
