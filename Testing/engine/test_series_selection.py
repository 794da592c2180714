"""Multi-series DICOM studies: the sagittal T2 by default, then STIR, then T1; or the user's choice."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import generate_uid

from fixtures_dicom import write_dicom_series
from fixtures_volumes import axial_volume, oblique_sagittal_volume
from SpineGradeLogic.errors import InputError
from SpineGradeLogic.io.dicom_series import find_series
from SpineGradeLogic.io.study import load_study


@pytest.fixture
def study(tmp_path):
    """A study folder with sagittal T1, T2 and STIR, and an axial T2; returns (folder, uids)."""
    uid = generate_uid()
    sag = oblique_sagittal_volume(shape=(24, 28, 6))
    uids = {
        "t1": write_dicom_series(sag, tmp_path / "s1", "SAG T1 TSE", 1, uid, tr=550, te=10),
        "t2": write_dicom_series(sag, tmp_path / "s2", "SAG T2 TSE", 2, uid, tr=3500, te=100),
        "stir": write_dicom_series(sag, tmp_path / "s3", "SAG STIR", 3, uid, tr=4000, te=60, ti=150),
        "ax": write_dicom_series(axial_volume(), tmp_path / "s4", "AX T2", 4, uid, tr=4000, te=100),
    }
    return tmp_path, uids


def test_study_lists_every_series_with_plane_and_sequence(study):
    folder, uids = study
    series = {s.series_instance_uid: s for s in find_series([folder])}
    assert len(series) == 4
    assert (series[uids["t1"]].sequence, series[uids["t1"]].plane) == ("T1", "sagittal")
    assert (series[uids["stir"]].sequence, series[uids["stir"]].plane) == ("STIR", "sagittal")
    assert (series[uids["ax"]].sequence, series[uids["ax"]].plane) == ("T2", "axial")


def test_sagittal_t2_is_chosen_and_the_reason_given(study):
    folder, uids = study
    s = load_study(folder)
    assert s.info.series_instance_uid == uids["t2"]
    assert s.info.sequence == "T2"
    assert "T2" in s.info.extra["selection"] and "sagittal" in s.info.extra["selection"]
    assert [x.series_instance_uid for x in s.other_series("axial")] == [uids["ax"]]


def test_stir_then_t1_when_t2_is_missing(study):
    folder, uids = study
    import shutil

    shutil.rmtree(folder / "s2")
    assert load_study(folder).info.series_instance_uid == uids["stir"]
    shutil.rmtree(folder / "s3")
    assert load_study(folder).info.series_instance_uid == uids["t1"]


def test_choose_by_uid_and_by_description(study):
    folder, uids = study
    assert load_study(folder, series_uid=uids["t1"]).info.series_instance_uid == uids["t1"]
    assert load_study(folder, series_description="stir").info.series_instance_uid == uids["stir"]
    with pytest.raises(InputError, match="no series with SeriesInstanceUID"):
        load_study(folder, series_uid="1.2.3")
    with pytest.raises(InputError, match="no series whose description contains 'DIXON'"):
        load_study(folder, series_description="DIXON")


def test_a_list_of_files_is_a_series(study):
    folder, uids = study
    files = sorted((folder / "s1").glob("*.dcm"))
    s = load_study(files)
    assert s.info.series_instance_uid == uids["t1"]
    assert s.volume.shape[2] == len(files)


def test_sequence_from_tr_te_when_the_description_says_nothing(tmp_path):
    sag = oblique_sagittal_volume(shape=(20, 20, 5))
    write_dicom_series(sag, tmp_path / "a", "SAG", 1, tr=3000, te=110)
    write_dicom_series(sag, tmp_path / "b", "SAG", 2, tr=500, te=12)
    seqs = sorted(s.sequence for s in find_series([tmp_path]))
    assert seqs == ["T1", "T2"]


def test_axial_only_study_asks_for_a_sagittal_series(tmp_path):
    write_dicom_series(axial_volume(), tmp_path / "ax", "AX T2", 1, tr=4000, te=100)
    with pytest.raises(InputError, match="only axial series.*sagittal"):
        load_study(tmp_path)


def test_coronal_series_is_accepted_through_its_geometry(tmp_path):
    cor = oblique_sagittal_volume(shape=(20, 24, 6))
    # rotate the sagittal frame 90 degrees about S-I: slices now face front-back
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    cor.direction_lps = rot @ cor.direction_lps
    write_dicom_series(cor, tmp_path / "cor", "COR T2", 1, tr=3000, te=100)
    s = load_study(tmp_path)
    assert s.info.extra["plane"] == "coronal"
