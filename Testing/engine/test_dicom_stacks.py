"""A DICOM series of several stacks (axial blocks angled per disc, separate slabs): split, each read
with its own geometry, and each disc's axial crop cut from the block that covers it."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from fixtures_datasets import tilted_axial
from fixtures_dicom import write_dicom_series
from SpineGradeLogic.discs.crop import CropSampler, StackSampler
from SpineGradeLogic.discs.localise import DiscLocation
from SpineGradeLogic.io.axial import load_axial
from SpineGradeLogic.io.dicom_series import find_series, read_series, read_stacks
from SpineGradeLogic.io.volume import Volume

T2 = dict(description="AX T2 TSE", tr=4000.0, te=100.0)


def anatomy(ras: np.ndarray) -> np.ndarray:
    """A smooth signal defined in world (RAS) space, so any stack's voxels can be checked."""
    x, y, z = ras[..., 0], ras[..., 1], ras[..., 2]
    return 100 + 40 * np.sin(x / 7) + 30 * np.cos(y / 9) + 20 * np.sin(z / 11)


def stack(shape, origin_lps, direction, step=4.0) -> Volume:
    v = Volume(np.zeros(shape, np.float32), (1.0, 1.0, step), origin_lps, direction)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    return v.with_array(anatomy(v.index_to_ras(ijk)).reshape(shape).astype(np.float32))


def write_blocks(folder, blocks):
    """Every block into one series (one SeriesInstanceUID and frame of reference), instances running on."""
    uid = frame = None
    first = 0
    for b in blocks:
        uid = write_dicom_series(b, folder, series_uid=uid, frame_uid=frame, first_instance=first, **T2)
        frame = frame or pydicom.dcmread(next(folder.glob("IM*.dcm")), stop_before_pixels=True).FrameOfReferenceUID
        first += b.shape[2]
    return folder


LOWER = stack((40, 40, 4), (-20.0, -20.0, -6.0), np.eye(3))  # flat, around z = 0
UPPER = stack((40, 40, 3), (-20.0, -20.0, 40.0), tilted_axial(15.0))  # angled 15 degrees, around z = 44


@pytest.fixture(scope="module")
def angled(tmp_path_factory):
    return write_blocks(tmp_path_factory.mktemp("angled"), [LOWER, UPPER])


def test_a_series_of_angled_blocks_is_split_and_each_read_true(angled):
    (info,) = find_series([angled])
    assert info.n_stacks == 2 and info.n_files == 4 and "largest of 2 stacks" in info.summary()
    largest = read_series(info)
    assert largest.shape == (40, 40, 4) and np.allclose(largest.spacing, (1.0, 1.0, 4.0))
    blocks = read_stacks(info)
    assert [b.shape for b in blocks] == [(40, 40, 4), (40, 40, 3)]
    for read, written in zip(blocks, (LOWER, UPPER)):
        assert np.allclose(read.direction_lps, written.direction_lps, atol=1e-4)
        assert np.allclose(read.origin_lps, written.origin_lps, atol=1e-3)
        assert np.allclose(read.array, written.array, atol=0.1)  # 16-bit storage


def test_each_disc_is_cut_from_the_block_that_covers_it(angled):
    axial = load_axial(angled)
    assert len(axial.stacks) == 2 and axial.summary()["stacks"] == 2
    # a disc inside the upper, angled block; the lower one lies over 20 mm below its crop
    centre = UPPER.index_to_ras(np.array([[19.5, 19.5, 1.0]]))[0]
    loc = DiscLocation("L3/L4", centre, np.array([[-1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]]), np.array([20.0, 20.0, 5.0]))
    crop = StackSampler(axial.stacks).crop(loc)
    assert crop.outside_fraction < CropSampler(axial.volume).crop(loc).outside_fraction == 1.0
    inside = np.argwhere(crop.inside)
    truth = anatomy(crop.image.index_to_ras(inside))
    assert np.abs(crop.image.array[crop.inside] - truth).mean() < 2.0  # the signal range is 180


def test_parallel_slabs_are_split_but_a_missing_slice_is_not(tmp_path):
    far = stack((40, 40, 3), (-20.0, -20.0, 40.0), np.eye(3))  # same orientation, 34 mm above the first slab
    (info,) = find_series([write_blocks(tmp_path / "slabs", [LOWER, far])])
    assert info.n_stacks == 2 and [s.n_files for s in info.stacks] == [4, 3]

    one = write_blocks(tmp_path / "gap", [stack((40, 40, 6), (-20.0, -20.0, -6.0), np.eye(3))])
    (one / "IM0002.dcm").unlink()  # slice 3 of 6 lost: one step of 8 mm among steps of 4 mm
    (info,) = find_series([one])
    assert info.n_stacks == 1 and info.n_files == 5


def test_a_sagittal_series_with_a_localizer_block_reads_its_sagittal_stack(tmp_path):
    from fixtures_volumes import SAGITTAL_LPS
    from SpineGradeLogic.io.study import load_study

    sagittal = stack((40, 48, 9), (10.0, -20.0, 30.0), SAGITTAL_LPS, step=3.0)
    folder = write_blocks(tmp_path / "sag", [sagittal, LOWER])  # the series also holds a 4-slice axial block
    study = load_study(folder)
    assert study.volume.shape == (40, 48, 9) and study.info.extra["plane"] == "sagittal"
    assert "2 stacks" in study.info.extra["selection"] and "its largest, 9 images, was read" in study.info.extra["selection"]



def test_blocks_too_thin_to_be_volumes_are_left_out(tmp_path):
    blocks = [stack((40, 40, n), (-20.0, -20.0, z), tilted_axial(deg)) for n, z, deg in ((4, 0.0, 0.0), (2, 40.0, 10.0))]
    folder = write_blocks(tmp_path / "thin", blocks)
    (info,) = find_series([folder])
    assert info.n_stacks == 2 and [v.shape for v in read_stacks(info)] == [(40, 40, 4)]
    assert len(load_axial(folder).stacks) == 1
