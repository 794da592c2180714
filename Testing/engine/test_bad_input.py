"""Every kind of bad input: one clear error naming the problem, exit code 3, no result folder."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from fixtures_dicom import write_dicom_series
from fixtures_volumes import axial_volume, oblique_sagittal_volume
from SpineGradeLogic.cli import main
from SpineGradeLogic.errors import InputError
from SpineGradeLogic.io.study import load_study
from SpineGradeLogic.io.volume import Volume
from SpineGradeLogic.results import write_volume


def _nifti(tmp_path, volume, name="scan.nii.gz"):
    path = tmp_path / name
    write_volume(volume, path)
    return path


def _truncated_nifti(tmp_path):
    path = _nifti(tmp_path, oblique_sagittal_volume())
    raw = gzip.decompress(path.read_bytes())
    bad = tmp_path / "truncated.nii.gz"
    bad.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    return bad


def _corrupt_dicom(tmp_path):
    write_dicom_series(oblique_sagittal_volume(shape=(20, 20, 5)), tmp_path / "dcm")
    f = sorted((tmp_path / "dcm").glob("*.dcm"))[2]
    f.write_bytes(f.read_bytes()[:-300])
    return tmp_path / "dcm"


def _cases():
    v = oblique_sagittal_volume()
    nan = v.with_array(v.array.copy())
    nan.array[3, 4, 5] = np.nan
    inf = v.with_array(v.array.copy())
    inf.array[0, 0, 0] = np.inf
    flat = v.with_array(np.zeros_like(v.array))
    two_d = Volume(np.ones((30, 30, 1), np.float32), (1, 1, 1), (0, 0, 0), np.eye(3))
    return {
        "missing": (lambda t: t / "nope.nii.gz", "no such file or folder"),
        "text file": (lambda t: (t / "notes.txt").write_text("hello") and t / "notes.txt", "not a readable image"),
        "non-image .nii.gz": (lambda t: (t / "x.nii.gz").write_bytes(b"garbage" * 50) and t / "x.nii.gz",
                              "not a readable image"),
        "truncated nifti": (_truncated_nifti, "corrupt or truncated"),
        "corrupt dicom": (_corrupt_dicom, "corrupt or truncated"),
        "folder without dicom": (lambda t: (t / "d").mkdir() or (t / "d" / "a.txt").write_text("x") and t / "d",
                                 "no DICOM image series"),
        "2-D image": (lambda t: _nifti(t, two_d), "2-D image"),
        "axial only": (lambda t: _nifti(t, axial_volume()), "axial series.*sagittal"),
        "NaN voxels": (lambda t: _nifti(t, nan), "NaN or infinite"),
        "infinite voxels": (lambda t: _nifti(t, inf), "NaN or infinite"),
        "no contrast": (lambda t: _nifti(t, flat), "same value"),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_bad_input_is_one_clear_error(tmp_path, case):
    make, message = _cases()[case]
    path = make(tmp_path)
    with pytest.raises(InputError, match=message):
        load_study(path)


@pytest.mark.parametrize("case", ["missing", "truncated nifti", "axial only", "NaN voxels", "corrupt dicom"])
def test_cli_exit_code_and_no_result_folder(tmp_path, capsys, case):
    make, message = _cases()[case]
    path = make(tmp_path)
    out = tmp_path / "result"
    assert main(["-q", "run", str(path), "--out", str(out)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spinegrade: error:")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_4d_volume(tmp_path):
    img = sitk.JoinSeries([sitk.GetImageFromArray(np.random.rand(9, 20, 20).astype(np.float32))] * 3)
    path = tmp_path / "fmri.nii.gz"
    sitk.WriteImage(img, str(path))
    with pytest.raises(InputError, match="4-D volume"):
        load_study(path)


def test_volume_over_the_limit_is_refused_before_reading_pixels(tmp_path, monkeypatch):
    path = _nifti(tmp_path, oblique_sagittal_volume())
    monkeypatch.setenv("SPINEGRADE_MAX_VOXELS", "1000")
    with pytest.raises(InputError, match="exceeds the limit of 1,000"):
        load_study(path)


def test_dicom_folder_with_only_non_image_objects(tmp_path):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"  # Enhanced SR
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "SR", generate_uid(), generate_uid()
    (tmp_path / "sr").mkdir()
    ds.save_as(tmp_path / "sr" / "report.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match="no DICOM image series"):
        load_study(tmp_path / "sr")
