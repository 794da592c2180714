"""The spinegrade command: exit codes, info, run, batch with failures, resume and parallel jobs."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from fixtures_dicom import write_dicom_series
from fixtures_volumes import oblique_sagittal_volume
from SpineGradeLogic.cli import main
from SpineGradeLogic.results import read_result_folder, validate_result_dict, write_volume


@pytest.fixture
def scan(tmp_path):
    path = tmp_path / "scan_T2w.nii.gz"
    write_volume(oblique_sagittal_volume(), path)
    return path


def test_run_writes_a_valid_result_and_names_missing_models(tmp_path, scan, monkeypatch):
    monkeypatch.setenv("SPINEGRADE_MODELS", str(tmp_path / "no-models-here"))
    assert main(["-q", "run", str(scan), "--out", str(tmp_path / "out")]) == 0
    r = read_result_folder(tmp_path / "out").result
    validate_result_dict(r.to_dict())
    assert r.input.sequence == "T2"  # from the BIDS-style file name
    assert any("vertebra labelling: no model" in w for w in r.warnings)
    assert r.vertebrae == [] and r.discs == []  # nothing invented
    assert {"load", "vertebrae", "discs", "grades", "saliency", "total"} <= set(r.timing_s)


def test_shipped_models_find_no_spine_in_a_pattern(tmp_path, scan):
    """The shipped models on a volume with no spine in it: said plainly, nothing named."""
    assert main(["-q", "run", str(scan), "--out", str(tmp_path / "out")]) == 0
    r = read_result_folder(tmp_path / "out").result
    validate_result_dict(r.to_dict())
    assert r.vertebrae == [] and r.discs == []
    assert {m.name for m in r.models} >= {"spinegrade_vertebrae"}
    assert any("no spine" in w or "too little spine" in w for w in r.warnings), r.warnings


def test_usage_error_is_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run"])
    assert e.value.code == 2


@pytest.mark.parametrize("command", ["run", "batch", "regrade"])
def test_sensitivity_flag_reaches_the_run_options_and_outside_0_to_1_is_a_usage_error(command, capsys):
    from SpineGradeLogic.cli import build_parser
    from SpineGradeLogic.cli.options import run_options

    argv = [command, "in", "--out", "o"] if command != "regrade" else [command, "res", "--rename", "L3=L2"]
    assert run_options(build_parser().parse_args(argv)).sensitivity == 0.0
    assert run_options(build_parser().parse_args(argv + ["--sensitivity", "0.5"])).sensitivity == 0.5
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv + ["--sensitivity", "1.5"])
    assert e.value.code == 2 and "sensitivity must be between 0 and 1" in capsys.readouterr().err


def test_info_lists_series_and_choice(tmp_path, capsys):
    sag = oblique_sagittal_volume(shape=(20, 20, 5))
    write_dicom_series(sag, tmp_path / "a", "SAG T1", 1, tr=500, te=10)
    write_dicom_series(sag, tmp_path / "b", "SAG T2", 2, tr=3000, te=100)
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 image series" in out and "would use: SAG T2" in out and "why:" in out


def test_batch_records_errors_goes_on_and_resumes(tmp_path, capsys):
    src = tmp_path / "in"
    write_volume(oblique_sagittal_volume(seed=1), src / "a.nii.gz")
    write_volume(oblique_sagittal_volume(seed=2), src / "sub" / "b.mha")
    write_dicom_series(oblique_sagittal_volume(shape=(20, 20, 5)), src / "dicomstudy" / "series1")
    (src / "broken.nii.gz").write_bytes(b"not an image at all" * 20)
    out = tmp_path / "out"
    assert main(["-q", "batch", str(src), "--out", str(out)]) == 4
    rows = {r["study"]: r for r in csv.DictReader(open(out / "summary.csv"))}
    assert set(rows) == {"a", "sub_b", "dicomstudy_series1", "broken"}
    assert rows["broken"]["status"] == "error" and "not a readable image" in rows["broken"]["error"]
    assert not (out / "broken").exists()
    assert all(rows[s]["status"] == "ok" for s in ("a", "sub_b", "dicomstudy_series1"))
    read_result_folder(out / "dicomstudy_series1")
    # a rerun skips what is done and retries what failed
    assert main(["-q", "batch", str(src), "--out", str(out)]) == 4
    rows = {r["study"]: r for r in csv.DictReader(open(out / "summary.csv"))}
    assert rows["a"]["status"].startswith("skipped") and rows["broken"]["status"] == "error"


def test_batch_in_parallel_processes(tmp_path):
    src = tmp_path / "in"
    for i in range(3):
        write_volume(oblique_sagittal_volume(seed=i), src / f"s{i}.nii.gz")
    assert main(["-q", "batch", str(src), "--out", str(tmp_path / "out"), "--jobs", "2"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "out" / "summary.csv")))
    assert [r["status"] for r in rows] == ["ok"] * 3


def test_console_script_plain_progress_and_exit_code(tmp_path, scan):
    """As a program sees it (no terminal): plain PROGRESS lines on stderr, documented exit codes."""
    cmd = [sys.executable, "-m", "SpineGradeLogic.cli", "run", str(scan), "--out", str(tmp_path / "o")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "PROGRESS 0/6 load" in p.stderr and "PROGRESS 6/6 done" in p.stderr
    p = subprocess.run(cmd[:4] + [str(tmp_path / "missing.nii")] + cmd[5:], capture_output=True, text=True, timeout=300)
    assert p.returncode == 3 and "no such file or folder" in p.stderr


def test_batch_pairs_a_volume_file_with_its_axial_file(tmp_path, monkeypatch):
    """case_axial.nii.gz beside case.nii.gz is the study's axial T2, not a study; an axial file with
    no sagittal beside it stays a study of its own (and fails there with the axial-only error)."""
    import SpineGradeLogic.batch as batch

    src = tmp_path / "in"
    write_volume(oblique_sagittal_volume(seed=1), src / "case01.nii.gz")
    write_volume(oblique_sagittal_volume(seed=2), src / "case01_axial.nii.gz")
    write_volume(oblique_sagittal_volume(seed=3), src / "other" / "lone_axial.nii.gz")
    items = {i.study_id: i for i in batch.find_studies(src)}
    assert set(items) == {"case01", "other_lone_axial"}
    assert items["case01"].axial == src / "case01_axial.nii.gz" and "axial: case01_axial" in items["case01"].description
    assert items["other_lone_axial"].axial is None

    seen = {}

    class Result:  # what the batch row counts
        vertebrae, discs, warnings = [], [], []

    monkeypatch.setattr(batch, "run_study", lambda s, o, opt: (seen.__setitem__(str(s), opt.axial), Result())[1])
    batch.run_batch(src, tmp_path / "out")
    assert seen[str(src / "case01.nii.gz")] == src / "case01_axial.nii.gz"
    assert seen[str(src / "other" / "lone_axial.nii.gz")] is None
    seen.clear()
    from SpineGradeLogic.pipeline import RunOptions

    batch.run_batch(src, tmp_path / "out2", RunOptions(use_axial=False))  # --no-axial: nothing paired
    assert seen[str(src / "case01.nii.gz")] is None
