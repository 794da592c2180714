"""`spinegrade train grading --recalibrate`: temperatures refitted on more held-out crops, weights
untouched, and the record and model card say so."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from SpineGradeLogic.errors import DatasetError
from SpineGradeLogic.grading.data import CropSet
from SpineGradeLogic.grading.network import CROP_SHAPE
from SpineGradeLogic.names import HEAD_NAMES, HEADS


def _crops(n, seed) -> CropSet:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 40, (n, *CROP_SHAPE)).astype(np.uint8)
    grades = np.array([[HEADS[h][rng.integers(len(HEADS[h]))] for h in HEAD_NAMES] for _ in range(n)])
    return CropSet(img, grades, np.array(["L4/L5"] * n), np.zeros(n, np.float32), seed * 100 + np.arange(n) // 4,
                   np.array(["T2"] * n))


def _parser():
    from SpineGradeLogic.grading.cli import register_grading

    p = argparse.ArgumentParser()
    register_grading(p.add_subparsers(dest="model"))
    return p


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("recal")
    _crops(8, 0).save(root / "prep" / "grading-train-0.npz")
    _crops(4, 1).save(root / "prep" / "grading-calibration-100000.npz")
    out = root / "spinegrade_grading"
    args = _parser().parse_args(["grading", "--prepared", str(root / "prep"), "--out", str(out), "--epochs", "1",
                                 "--steps", "1", "--batch-size", "4", "--version", "0.9.0", "--changelog", "toy"])
    assert args.func(args) == 0
    return root, out


def test_recalibration_refits_temperatures_and_keeps_the_weights(trained):
    from SpineGradeLogic.grading.infer import Grader

    root, bundle = trained
    for i in range(3):  # more held-out crops, with grades the toy network cannot know
        _crops(12, 10 + i).save(root / "more" / f"grading-calibration-{100100 + i}.npz")
    out = root / "recalibrated"
    args = _parser().parse_args(["grading", "--recalibrate", str(bundle), "--prepared", str(root / "prep"),
                                 str(root / "more"), "--out", str(out)])
    assert args.func(args) == 0
    before, after = Grader.load(bundle), Grader.load(out)
    for k, v in before.network.state_dict().items():
        assert torch.equal(v, after.network.state_dict()[k])
    assert after.temperatures != before.temperatures
    meta = json.loads((out / "configs" / "metadata.json").read_text())
    assert meta["version"] == "0.9.0" and "temperatures refitted on 40 held-out crops" in meta["changelog"]["0.9.0"]
    record = meta["spinegrade"]["training"]
    assert record["recalibration"]["crops"] == 40 and record["recalibration"]["cases"] == 10
    assert record["recalibration"]["temperatures_before"] == pytest.approx(before.temperatures)
    assert record["held_out"]["crops"] == 40 and record["held_out_in_training"]["crops"] == 4
    card = (out / "docs" / "README.md").read_text()
    assert "Temperatures refitted afterwards on 40 held-out crops from 10 cases" in card
    assert "Held out: 4 crops" in card


def test_recalibration_needs_calibration_crops(trained, tmp_path):
    root, bundle = trained
    args = _parser().parse_args(["grading", "--recalibrate", str(bundle), "--prepared", str(root / "prep"),
                                 "--out", str(tmp_path / "x")])
    _crops(4, 2).save(tmp_path / "only-train" / "grading-train-5.npz")
    args.prepared = [tmp_path / "only-train"]
    with pytest.raises(DatasetError, match="no calibration crops"):
        args.func(args)
    assert not (tmp_path / "x").exists()
