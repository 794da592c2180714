"""Re-grading after a user corrects vertebra names: renames, new disc levels, grades, atomic writes."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from SpineGradeLogic.errors import InputError
from SpineGradeLogic.names import DISC_OFFSET, HEADS, POSTERIOR_OFFSET, SPINAL_CANAL, SPINAL_CORD, VERTEBRA_LABELS
from SpineGradeLogic.phantom import generate_case, write_case
from SpineGradeLogic.pipeline import RunOptions, run_study
from SpineGradeLogic.pipeline.regrade import correction_mapping, regrade, relabel_segmentation
from SpineGradeLogic.results import read_result_folder, validate_result_dict

FAST = RunOptions(saliency="none")


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A phantom study run through the pipeline with the shipped models (once for the module)."""
    root = tmp_path_factory.mktemp("regrade")
    case = write_case(generate_case(seed=7, fov="lumbar", contrast="T2"), root / "case")
    result = run_study(case / "image.nii.gz", root / "result")
    names = [v.label for v in result.vertebrae]
    if len(names) < 4 or "L5" not in names or names[-1] != "S1":
        pytest.skip(f"the shipped vertebra model named {names}; these tests expect a lumbar spine down to S1")
    return root / "result"


@pytest.fixture
def result_dir(original, tmp_path):
    return Path(shutil.copytree(original, tmp_path / "result"))


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _shift_down(names):
    """Every name one place down the spine with an L6 inserted above the sacrum: a missed L6."""
    order = ["C1", "C2", "C3", "C4", "C5", "C6", "C7"] + [f"T{i}" for i in range(1, 13)] + \
            [f"L{i}" for i in range(1, 7)]
    return [order[order.index(n) + 1] if n != "S1" else "S1" for n in names]


def test_regrade_inserting_l6_adds_a_level_and_grades_it(result_dir, tmp_path):
    before = _snapshot(result_dir)
    old = read_result_folder(result_dir)
    old_names = [v.label for v in old.result.vertebrae]
    new_names = _shift_down(old_names)
    out = tmp_path / "fixed"

    r = regrade(result_dir, new_names, out)

    assert _snapshot(result_dir) == before  # --out given: the original is untouched
    rf = read_result_folder(out)
    validate_result_dict(json.loads((out / "result.json").read_text()))
    assert [v.label for v in rf.result.vertebrae] == new_names == [v.label for v in r.vertebrae]
    levels = [d.level for d in rf.result.discs]
    assert "L5/L6" in levels and "L6/S1" in levels and "L5/S1" not in levels
    assert levels == [f"{a}/{b}" for a, b in zip(new_names, new_names[1:])]
    for d in rf.result.discs:  # every level graded by every head, with a saliency map on disk
        assert set(d.grades) == set(HEADS), d.level
        assert d.saliency and all((out / p).is_file() for p in d.saliency.values())
        assert d.level.replace("/", "-") in next(iter(d.saliency.values()))
    # the same physical discs, now under their corrected names
    for d0, d1 in zip(old.result.discs, rf.result.discs):
        assert np.linalg.norm(np.subtract(d0.center_mm, d1.center_mm)) < 2.0
    assert any(w.startswith("vertebra names corrected by the user:") and "L5->L6" in w for w in rf.result.warnings)
    assert {"vertebra": "L5", "label": "L6"} in rf.result.extra["corrections"]
    assert {v.label: v.centroid_mm for v in rf.result.vertebrae} == \
        {n: v.centroid_mm for n, v in zip(new_names, old.result.vertebrae)}

    seg0, seg1 = old.segmentation(), rf.segmentation()
    assert seg1.same_geometry(seg0, tol=0) and seg1.array.dtype == seg0.array.dtype
    a0, a1 = np.asarray(seg0.array), np.asarray(seg1.array)
    assert np.array_equal(a0 > 0, a1 > 0)  # only values change
    for o, n in zip(old_names, new_names):
        vo, vn = VERTEBRA_LABELS[o], VERTEBRA_LABELS[n]
        assert np.array_equal(a1 == vn, a0 == vo), (o, n)
        if (a0 == POSTERIOR_OFFSET + vo).any():
            assert np.array_equal(a1 == POSTERIOR_OFFSET + vn, a0 == POSTERIOR_OFFSET + vo)
    for o, n in zip(old_names[:-1], new_names[:-1]):
        assert np.array_equal(a1 == DISC_OFFSET + VERTEBRA_LABELS[n], a0 == DISC_OFFSET + VERTEBRA_LABELS[o])
    for v in (SPINAL_CANAL, SPINAL_CORD):
        assert np.array_equal(a1 == v, a0 == v)
    assert (a1 == DISC_OFFSET + VERTEBRA_LABELS["L5"]).any()  # the L5/L6 disc is labelled


def test_regrade_in_place_with_a_partial_rename(result_dir):
    names = [v.label for v in read_result_folder(result_dir).result.vertebrae]
    r = regrade(result_dir, {"L5": "L6"}, options=FAST)  # L4 then L6: not adjacent, no disc between
    rf = read_result_folder(result_dir)
    assert [v.label for v in rf.result.vertebrae] == [n if n != "L5" else "L6" for n in names]
    levels = [d.level for d in rf.result.discs]
    assert "L6/S1" in levels and "L4/L5" not in levels and "L4/L6" not in levels
    assert any("no disc placed between L4 and L6" in w for w in r.warnings)
    assert all(set(d.grades) == set(HEADS) for d in rf.result.discs)
    lab = np.asarray(rf.segmentation().array)
    assert not (lab == DISC_OFFSET + VERTEBRA_LABELS["L4"]).any()  # L4 has no disc below any more
    assert (lab == DISC_OFFSET + VERTEBRA_LABELS["L6"]).any() and not (lab == VERTEBRA_LABELS["L5"]).any()
    assert not list(result_dir.parent.glob(".result.*"))  # no temporary folder left beside it
    validate_result_dict(json.loads((result_dir / "result.json").read_text()))


@pytest.mark.parametrize("corrections, message", [
    ({"L9": "L6"}, "L9: not one of this study's vertebrae"),
    ({"L5": "L7"}, "'L7': not a vertebra name"),
    ({"L4": "L5"}, "L5 would name two vertebrae (L4 and L5)"),
    ({"L1": "L4", "L4": "L1"}, "not in cranio-caudal order"),
    (["L1", "L2"], "2 names given for"),
    ({}, "no correction given"),
])
def test_bad_corrections_change_nothing(result_dir, corrections, message):
    before = _snapshot(result_dir)
    with pytest.raises(InputError) as e:
        regrade(result_dir, corrections, options=FAST)
    assert message in str(e.value)
    assert _snapshot(result_dir) == before
    assert sorted(p.name for p in result_dir.parent.iterdir()) == ["result"]


def test_the_input_image_gone(result_dir, tmp_path):
    data = json.loads((result_dir / "result.json").read_text())
    data["input"]["path"] = str(tmp_path / "moved" / "image.nii.gz")
    (result_dir / "result.json").write_text(json.dumps(data))
    before = _snapshot(result_dir)
    with pytest.raises(InputError, match="input image of this result is gone: .*moved/image.nii.gz"):
        regrade(result_dir, {"L5": "L6"}, options=FAST)
    assert _snapshot(result_dir) == before


def test_a_run_on_a_relative_path_is_found_again_from_any_folder(original, tmp_path, monkeypatch):
    """result.json names the input absolutely, so regrade (and scene export) work from anywhere."""
    src = read_result_folder(original).input_path()
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(src, work / "study.nii.gz")
    monkeypatch.chdir(work)
    run_study(Path("study.nii.gz"), Path("res"), FAST)
    named = json.loads((work / "res" / "result.json").read_text())["input"]["path"]
    assert named == str(work / "study.nii.gz")
    monkeypatch.chdir(tmp_path)
    assert read_result_folder(work / "res").input_path() == work / "study.nii.gz"
    regrade(work / "res", {"L5": "L6"}, tmp_path / "again", options=FAST)  # reads the image again from here


def test_an_older_result_with_a_relative_input_path_is_looked_up_beside_its_folder(result_dir, tmp_path, monkeypatch):
    src = read_result_folder(result_dir).input_path()
    shutil.copy(src, tmp_path / "study.nii.gz")
    data = json.loads((result_dir / "result.json").read_text())
    data["input"]["path"] = "../study.nii.gz"  # as runs before absolute paths wrote it, from tmp_path/result
    (result_dir / "result.json").write_text(json.dumps(data))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert read_result_folder(result_dir).input_path() == tmp_path / "study.nii.gz"
    data["input"]["path"] = "study.nii.gz"  # relative to the folder it was run in
    (result_dir / "result.json").write_text(json.dumps(data))
    monkeypatch.chdir(tmp_path)
    assert read_result_folder(result_dir).input_path() == tmp_path / "study.nii.gz"


def test_not_a_result_folder(tmp_path):
    with pytest.raises(InputError, match="not a SpineGrade result folder"):
        regrade(tmp_path, {"L5": "L6"})


def test_correction_mapping_and_label_table():
    names = ["L3", "L4", "L5", "S1"]
    assert correction_mapping(names, {"L4": "L5", "L5": "L6", "L3": "L4"}) == \
        {"L3": "L4", "L4": "L5", "L5": "L6", "S1": "S1"}
    assert correction_mapping(names, ["L2", "L3", "L4", "S1"])["L5"] == "L4"
    a = np.array([VERTEBRA_LABELS["L5"], POSTERIOR_OFFSET + 24, DISC_OFFSET + 24, DISC_OFFSET + 23, 200, 0], np.uint8)
    out = relabel_segmentation(a, {"L3": "L3", "L4": "L4", "L5": "L6", "S1": "S1"})
    assert out.tolist() == [25, 65, 125, 0, 200, 0] and out.dtype == np.uint8


def test_cli_regrade(result_dir, tmp_path, capsys):
    from SpineGradeLogic.cli import regrade as cli_regrade

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli_regrade.register(sub)
    args = parser.parse_args(["regrade", str(result_dir), "--rename", "L5=L6", "--out", str(tmp_path / "o"),
                              "--saliency", "none"])
    args.quiet = True
    assert args.func(args) == 0
    assert "L6/S1" in [d.level for d in read_result_folder(tmp_path / "o").result.discs]
    with pytest.raises(InputError, match="OLD=NEW"):
        cli_regrade.parse_renames(["L5"])
    with pytest.raises(InputError, match="renamed twice"):
        cli_regrade.parse_renames(["L5=L6", "L5=L4"])


def test_slicer_correction_runs_the_engine(result_dir, tmp_path):
    """The module's correction: label_shift's renames -> `spinegrade regrade` in a background process."""
    from SpineGradeLogic import cli
    from SpineGradeSlicer.SpineGradeLib import relabel

    cmd = relabel.build_regrade_command(result_dir, {"L5": "L6"}, tmp_path / "o", python="py", device="cuda")
    assert cmd == ["py", "-m", "SpineGradeLogic.cli", "regrade", str(result_dir), "--rename", "L5=L6",
                   "--out", str(tmp_path / "o"), "--device", "cuda"]
    assert relabel.corrected_dir(tmp_path / "r") == tmp_path / "r-corrected"
    assert relabel.corrected_dir(tmp_path / "r-corrected") == tmp_path / "r-corrected"
    if "regrade" not in cli.COMMAND_MODULES:
        pytest.skip("'regrade' is not yet in SpineGradeLogic.cli.COMMAND_MODULES")
    seen = []
    out = relabel.regrade_result(result_dir, "L5", "L6", python=sys.executable, on_progress=seen.append,
                                 saliency="none")
    assert out == relabel.corrected_dir(result_dir)
    names = [v.label for v in read_result_folder(out).result.vertebrae]
    assert names[-2:] == ["L6", "S1"] and "L5" in names  # the neighbours followed: L4 -> L5, ...
    assert "L5/L6" in [d.level for d in read_result_folder(out).result.discs]
    assert seen and seen[-1].what == "done"


def test_slicer_shift_keeps_the_sacrum():
    from SpineGradeSlicer.SpineGradeLib import relabel

    assert relabel.sacrum_anchored_shift(["L3", "L4", "L5", "S1"], "L5", "L6") == \
        {"L3": "L4", "L4": "L5", "L5": "L6", "S1": "S1"}
    assert relabel.sacrum_anchored_shift(["L3", "L4", "L5", "S1"], "L4", "L3") == \
        {"L3": "L2", "L4": "L3", "L5": "L4", "S1": "S1"}
    assert relabel.sacrum_anchored_shift(["L3", "L4", "L5", "S1"], "L4", "L5") == \
        {"L3": "L4", "L4": "L5", "L5": "L6", "S1": "S1"}  # the lowest lumbar becomes L6
    with pytest.raises(ValueError, match="off the spine"):
        relabel.sacrum_anchored_shift(["L4", "L5", "L6", "S1"], "L4", "L5")
