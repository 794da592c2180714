"""The bodies' lateral rim on output grids finer than the working grid (`vertebrae.body_rim`)."""

from __future__ import annotations

import numpy as np

from SpineGradeLogic.io.volume import Volume
from SpineGradeLogic.names import DISC_OFFSET, POSTERIOR_OFFSET, VERTEBRA_LABELS
from SpineGradeLogic.vertebrae.body_rim import grow_bodies_across_slices, left_right_axis

L4, L5, S1 = VERTEBRA_LABELS["L4"], VERTEBRA_LABELS["L5"], VERTEBRA_LABELS["S1"]

# array axis 0 runs patient right to left (LPS x), axis 1 anterior to posterior, axis 2 up
SAGITTAL = np.eye(3)
# a coronal stack: axis 0 left-right, axis 1 inferior to superior, axis 2 anterior to posterior
CORONAL = np.array([[1.0, 0, 0], [0, 0, 1], [0, 1, 0]])


def _volume(array, spacing=(1.0, 1.0, 1.0), direction=SAGITTAL):
    return Volume(array.astype(np.uint8), spacing, (0.0, 0.0, 0.0), direction)


def _body(shape=(30, 20, 20), lr=slice(10, 20), value=L4):
    a = np.zeros(shape, np.uint8)
    a[lr, 5:15, 5:15] = value
    return a


def test_body_grows_two_mm_to_either_side_along_left_right_only():
    out = grow_bodies_across_slices(_volume(_body()))
    grown = np.asarray(out.array) == L4
    assert np.array_equal(np.flatnonzero(grown.any(axis=(1, 2))), np.arange(8, 22))  # 10-19 plus 2 each side
    assert np.array_equal(np.flatnonzero(grown.any(axis=(0, 2))), np.arange(5, 15))  # A-P untouched
    assert np.array_equal(np.flatnonzero(grown.any(axis=(0, 1))), np.arange(5, 15))  # S-I untouched


def test_growth_follows_the_spacing_in_millimetres():
    out = grow_bodies_across_slices(_volume(_body(), spacing=(0.9, 1.0, 1.0)))
    assert np.array_equal(np.flatnonzero((np.asarray(out.array) == L4).any(axis=(1, 2))), np.arange(8, 22))  # 1.8 mm
    coarse = _volume(_body(), spacing=(3.0, 0.5, 0.5))  # a clinical sagittal series: nothing finer to give back
    assert grow_bodies_across_slices(coarse) is coarse


def test_growth_never_takes_another_structure_or_another_body():
    a = _body()
    a[21, 5:15, 5:15] = L5  # another body right beside it
    a[8, 5:15, 5:15] = DISC_OFFSET + L4
    a[9, 5:15, 5:15] = POSTERIOR_OFFSET + L4
    out = np.asarray(grow_bodies_across_slices(_volume(a)).array)
    assert (out[8] == DISC_OFFSET + L4)[5:15, 5:15].all() and (out[9] == POSTERIOR_OFFSET + L4)[5:15, 5:15].all()
    assert (out[20, 5:15, 5:15] != 0).all()  # the one free voxel row between the two bodies is taken
    assert (out[21, 5:15, 5:15] == L5).all()
    assert ((out == L4) | (out == L5)).sum() > (a == L4).sum() + (a == L5).sum()


def test_sacrum_is_not_grown():
    vol = _volume(_body(value=S1))
    assert grow_bodies_across_slices(vol) is vol


def test_coronal_grid_grows_along_its_own_left_right_axis():
    vol = _volume(_body(), direction=CORONAL)
    assert left_right_axis(vol) == (0, 1.0)
    grown = np.asarray(grow_bodies_across_slices(vol).array) == L4
    assert np.array_equal(np.flatnonzero(grown.any(axis=(1, 2))), np.arange(8, 22))
    # the same stack turned so that left-right is array axis 2
    turned = _volume(_body().transpose(2, 1, 0), direction=CORONAL[:, ::-1])
    assert left_right_axis(turned)[0] == 2
    grown = np.asarray(grow_bodies_across_slices(turned).array) == L4
    assert np.array_equal(np.flatnonzero(grown.any(axis=(0, 1))), np.arange(8, 22))


def test_grid_too_oblique_to_left_right_is_left_alone():
    c, s = np.cos(np.radians(50)), np.sin(np.radians(50))
    oblique = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])  # 50 degrees about the long axis
    vol = _volume(_body(), direction=oblique)
    assert grow_bodies_across_slices(vol) is vol
