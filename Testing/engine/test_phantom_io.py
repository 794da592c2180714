"""Phantom files: write_case, DICOM round trip, and the `phantom` command's arguments."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from SpineGradeLogic.errors import InputError
from SpineGradeLogic.io.volume import Volume
from SpineGradeLogic.phantom import PhantomConfig, generate_case, write_case
from SpineGradeLogic.results import validate_result_dict
from SpineGradeLogic.results.folder import read_volume


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    case = generate_case(8, "lumbar", "STIR", PhantomConfig.small(oblique_deg=8.0))
    out = write_case(case, tmp_path_factory.mktemp("ph") / "case", dicom=True)
    return case, out


def test_files_and_truth(written):
    case, out = written
    for name in ("image.nii.gz", "labels.nii.gz", "tissues.nii.gz", "truth.json"):
        assert (out / name).is_file()
    truth = json.loads((out / "truth.json").read_text())
    validate_result_dict(truth)
    assert truth["input"]["sequence"] == "STIR"
    labels = read_volume(out / "labels.nii.gz")
    assert labels.same_geometry(case.image, tol=1e-3)
    assert np.array_equal(labels.array, case.labels.array)


def test_dicom_round_trip_keeps_geometry(written):
    case, out = written
    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(out / "dicom"))
    assert len(files) == case.image.shape[2]
    reader.SetFileNames(files)
    back = Volume.from_sitk(reader.Execute())
    assert back.shape == case.image.shape
    assert np.allclose(back.spacing, case.image.spacing, atol=1e-4)
    assert np.allclose(back.origin_lps, case.image.origin_lps, atol=1e-3)
    assert np.allclose(back.direction_lps, case.image.direction_lps, atol=1e-5)
    corners = np.array([[0, 0, 0], [5, 17, 2], np.array(case.image.shape) - 1])
    assert np.allclose(back.index_to_ras(corners), case.image.index_to_ras(corners), atol=1e-3)
    top = float(case.image.array.max())
    assert np.abs(back.array - case.image.array).max() <= top / 4095 + 1e-3
    ds = pydicom.dcmread(files[0])
    assert ds.SeriesDescription == "SAG STIR" and "IR" in list(ds.ScanningSequence)
    assert ds.InversionTime > 100 and ds.RepetitionTime > 2000 and ds.EchoTime > 30
    assert ds.SeriesInstanceUID == case.truth.input.series_instance_uid


def test_dicom_uids_are_deterministic(written, tmp_path):
    case, out = written
    again = write_case(generate_case(8, "lumbar", "STIR", PhantomConfig.small(oblique_deg=8.0)), tmp_path / "again", dicom=True)
    a = pydicom.dcmread(sorted((out / "dicom").iterdir())[0])
    b = pydicom.dcmread(sorted((again / "dicom").iterdir())[0])
    assert (a.StudyInstanceUID, a.SeriesInstanceUID, a.SOPInstanceUID) == (b.StudyInstanceUID, b.SeriesInstanceUID, b.SOPInstanceUID)


def _parser():
    from SpineGradeLogic.cli import phantom

    parser = argparse.ArgumentParser(prog="spinegrade")
    phantom.register(parser.add_subparsers(dest="command"))
    return parser


@pytest.mark.parametrize("argv", [["--n", "0"], ["--n", "x"], ["--fov", "neck"], ["--contrast", "PD"], ["--seed", "-3"], []])
def test_cli_rejects_bad_arguments(argv, tmp_path, capsys):
    extra = [] if argv == [] else ["--out", str(tmp_path)]
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(["phantom", *extra, *argv])
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


def test_cli_handler_checks_too(tmp_path):
    from SpineGradeLogic.cli.phantom import run_phantom

    ns = argparse.Namespace(out=tmp_path, n=0, seed=0, fov="lumbar", contrast="T2", dicom=False)
    with pytest.raises(InputError, match="--n"):
        run_phantom(ns)
    ns.n, ns.fov = 1, "neck"
    with pytest.raises(InputError, match="fov"):
        run_phantom(ns)


def test_cli_writes_cases(tmp_path, capsys):
    args = _parser().parse_args(["phantom", "--out", str(tmp_path), "--n", "1", "--seed", "4"])
    assert args.func(args) == 0
    assert (tmp_path / "case-00004" / "truth.json").is_file()
    assert "case-00004" in capsys.readouterr().out
