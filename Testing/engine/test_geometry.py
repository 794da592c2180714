"""Geometry survives every path: files, DICOM (LPS) to RAS results, and outputs overlay inputs."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from fixtures_dicom import write_dicom_series
from fixtures_volumes import oblique_sagittal_volume
from SpineGradeLogic.io.orientation import acquisition_plane, orientation_code, reorient, sagittal_axis
from SpineGradeLogic.io.study import load_study
from SpineGradeLogic.io.volume import Volume
from SpineGradeLogic.pipeline import default_stages, run_study
from SpineGradeLogic.pipeline.stages import Stage
from SpineGradeLogic.results import read_result_folder, write_volume


def test_affine_is_ras_and_invertible(sagittal_volume):
    v = sagittal_volume
    ijk = np.array([[0, 0, 0], [3, 5, 7], [39, 47, 8]], float)
    ras = v.index_to_ras(ijk)
    assert np.allclose(v.ras_to_index(ras), ijk)
    # RAS is LPS with x and y negated
    lps = np.asarray(v.origin_lps) + v.direction_lps @ (np.asarray(v.spacing) * ijk[1])
    assert np.allclose(ras[1], [-lps[0], -lps[1], lps[2]])


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_volume_file_round_trip_keeps_oblique_geometry(tmp_path, sagittal_volume, suffix):
    path = tmp_path / f"scan{suffix}"
    write_volume(sagittal_volume, path)
    loaded = load_study(path).volume
    assert loaded.same_geometry(sagittal_volume, tol=1e-4)
    assert np.allclose(loaded.array, sagittal_volume.array, atol=1e-3)
    assert np.allclose(loaded.affine, sagittal_volume.affine, atol=1e-4)


def test_dicom_lps_becomes_ras(tmp_path):
    v = oblique_sagittal_volume()
    write_dicom_series(v, tmp_path / "dcm", file_names="shuffled")
    study = load_study(tmp_path / "dcm")
    loaded = study.volume
    assert loaded.shape == v.shape
    assert np.allclose(loaded.affine, v.affine, atol=1e-3)
    ipp_first = np.asarray(v.origin_lps)
    assert np.allclose(loaded.index_to_ras([0, 0, 0]), [-ipp_first[0], -ipp_first[1], ipp_first[2]], atol=1e-3)
    # pixel values land on the right voxel though the file names are shuffled
    assert np.allclose(loaded.array, v.array, atol=(v.array.max() - v.array.min()) / 4000 + 1e-3)
    assert study.info.extra["plane"] == "sagittal"


def test_sagittal_axis_comes_from_cosines_not_array_order(sagittal_volume):
    v = sagittal_volume
    assert sagittal_axis(v) == 2
    plane = acquisition_plane(v)
    assert plane.plane == "sagittal" and 0 < plane.obliquity_deg < 25
    # the same anatomy stored with permuted axes is still sagittal, the L-R axis found where it went
    permuted = Volume(v.array.transpose(2, 0, 1), (v.spacing[2], v.spacing[0], v.spacing[1]), v.origin_lps,
                      v.direction_lps[:, [2, 0, 1]])
    assert sagittal_axis(permuted) == 0
    assert acquisition_plane(permuted).plane == "sagittal"


def test_reorient_is_exact_and_invertible(sagittal_volume):
    v = sagittal_volume
    ras = reorient(v, "RAS")
    back = reorient(ras, orientation_code(v))
    assert back.same_geometry(v)
    assert np.array_equal(back.array, v.array)
    # the same physical point holds the same value in both
    i, j, k = 7, 11, 3
    p = v.index_to_ras([i, j, k])
    idx = np.round(ras.ras_to_index(p)).astype(int)
    assert ras.array[tuple(idx)] == v.array[i, j, k]


class _ThresholdSegmentation(Stage):
    """A stand-in labelling stage: marks bright voxels, in the input's own geometry."""

    name = "vertebrae"

    def run(self, ctx):
        v = ctx.study.volume
        ctx.segmentation = v.with_array((v.array > np.median(v.array)).astype(np.int16) * 20)


def test_outputs_overlay_inputs_voxel_for_voxel(tmp_path):
    v = oblique_sagittal_volume()
    write_dicom_series(v, tmp_path / "dcm")
    stages = default_stages()
    stages[1] = _ThresholdSegmentation()
    run_study(tmp_path / "dcm", tmp_path / "out", stages=stages)
    folder = read_result_folder(tmp_path / "out")
    seg = folder.segmentation()
    src = load_study(tmp_path / "dcm").volume
    assert seg.same_geometry(src, tol=1e-3)
    assert np.array_equal(seg.array == 20, src.array > np.median(src.array))
    # and nibabel (another reader, RAS natively) agrees on the affine
    nib = pytest.importorskip("nibabel")
    img = nib.load(str(tmp_path / "out" / "segmentation.nii.gz"))
    assert np.allclose(img.affine, src.affine, atol=1e-3)
