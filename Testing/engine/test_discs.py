"""Disc localisation: spine curve, centres, normals, boxes, crops and heatmaps mapped back."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures_spine import names_between, synthetic_spine
from SpineGradeLogic.discs import (
    DEFAULT_CROP,
    CropSampler,
    DiscLocation,
    SpineCurve,
    crop_geometry,
    discs_for_labelling,
    extract_crop,
    heatmap_to_input,
)
from SpineGradeLogic.io.volume import Volume
from SpineGradeLogic.labelling import label_from_label_map
from SpineGradeLogic.names import VERTEBRA_LABELS, disc_label
from SpineGradeLogic.results.folder import read_volume


@pytest.fixture(scope="module")
def spine():
    return synthetic_spine(names_between("T10", "S1"), with_canal=True)


@pytest.fixture(scope="module")
def located(spine):
    lab = label_from_label_map(spine.labels)
    return lab, discs_for_labelling(lab)


def test_centres_and_normals_match_the_anatomy(spine, located):
    lab, (discs, warnings) = located
    assert warnings == []
    assert [d.level for d in discs] == [f"{a}/{b}" for a, b in zip(lab.names, lab.names[1:])]
    for d in discs:
        err = np.linalg.norm(d.center_mm - spine.disc_centres[d.level])
        assert err < (5.0 if d.level == "L5/S1" else 2.0), (d.level, err)
        assert np.linalg.norm(d.normal) == pytest.approx(1.0)
        assert d.normal @ spine.disc_normals[d.level] > 0.99, d.level


def test_disc_mask_refines_the_centres(spine, located):
    lab, _ = located
    discs, _ = discs_for_labelling(lab, disc_labels=spine.labels)
    for d in discs:
        assert d.refined_by_mask
        assert np.linalg.norm(d.center_mm - spine.disc_centres[d.level]) < 1.0, d.level


def test_box_and_result_entry(located):
    _, (discs, _) = located
    for d in discs:
        box = d.bbox_mm
        corners = d.corners_mm()
        assert np.all(corners >= np.asarray(box.min) - 1e-9) and np.all(corners <= np.asarray(box.max) + 1e-9)
        assert np.all(d.half_size_mm > 0) and d.half_size_mm[2] < d.half_size_mm[0]  # a disc is flat
        entry = d.to_disc().to_dict()
        assert entry["level"] == d.level and len(entry["normal"]) == 3 and "bbox_mm" in entry


def test_frame_is_right_handed_and_posterior_points_to_the_canal(spine, located):
    _, (discs, _) = located
    for d in discs:
        f = d.frame
        np.testing.assert_allclose(f.T @ f, np.eye(3), atol=1e-9)
        assert np.linalg.det(f) == pytest.approx(1.0)
        # canal lies behind the bodies: the posterior axis points from the disc towards it
        canal = spine.labels.index_to_ras(np.argwhere(spine.labels.array == 200))
        near = canal[np.linalg.norm(canal - d.center_mm, axis=1) < 40]
        assert (near.mean(0) - d.center_mm) @ f[:, 1] > 10


def test_no_disc_between_vertebrae_that_are_not_adjacent(spine):
    lab = label_from_label_map(spine.labels)
    keep = [i for i, n in enumerate(lab.names) if n != "L3"]
    lab.instances = [lab.instances[i] for i in keep]
    lab.vertebrae = [lab.vertebrae[i] for i in keep]
    discs, warnings = discs_for_labelling(lab)
    assert "L2/L3" not in [d.level for d in discs] and "L2/L4" not in [d.level for d in discs]
    assert any("L2 and L4" in w for w in warnings)


def test_crop_geometry_maps_known_points(located):
    _, (discs, _) = located
    d = discs[3]
    geom = crop_geometry(d)
    c = DEFAULT_CROP.center_index
    np.testing.assert_allclose(geom.index_to_ras(c), d.center_mm, atol=1e-9)
    # 10 mm superior along the normal is 10 voxels up axis 2 (1 mm); 4 mm to the left is 2 voxels on axis 0
    p = d.center_mm + 10 * d.normal + 4 * d.frame[:, 0]
    np.testing.assert_allclose(geom.ras_to_index(p), c + [2, 0, 10], atol=1e-9)
    np.testing.assert_allclose(geom.index_to_ras(geom.ras_to_index(p)), p, atol=1e-9)


def test_crop_shows_disc_and_bodies_where_expected(spine, located):
    _, (discs, _) = located
    d = next(x for x in discs if x.level == "L3/L4")
    disc_img = spine.labels.with_array((spine.labels.array == disc_label("L3")).astype(np.float32))
    upper_img = spine.labels.with_array((spine.labels.array == VERTEBRA_LABELS["L3"]).astype(np.float32))
    c = np.rint(DEFAULT_CROP.center_index).astype(int)
    crop = extract_crop(disc_img, d)
    assert crop.image.shape == DEFAULT_CROP.size
    assert crop.image.array[tuple(c)] > 0.9
    up = extract_crop(upper_img, d).image.array
    assert up[c[0], c[1], c[2] + 18] > 0.9 and up[c[0], c[1], c[2] - 18] < 0.1


def test_heatmap_maps_back_into_the_input(spine, located):
    _, (discs, _) = located
    d = discs[2]
    crop = extract_crop(spine.labels.with_array(spine.labels.array.astype(np.float32)), d)
    heat = np.zeros(crop.image.shape, np.float32)
    peak = (14, 40, 36)
    heat[peak[0] - 1 : peak[0] + 2, peak[1] - 3 : peak[1] + 4, peak[2] - 3 : peak[2] + 4] = 1.0
    back = heatmap_to_input(heat, crop, spine.labels)
    assert back.same_geometry(spine.labels)
    w = back.array.ravel()
    where = (back.index_to_ras(np.argwhere(back.array >= 0)) * w[:, None]).sum(0) / w.sum()  # mass centre
    assert np.linalg.norm(where - crop.image.index_to_ras(peak)) < 1.0
    ones = heatmap_to_input(np.ones(crop.image.shape, np.float32), crop, spine.labels)
    centre_voxel = tuple(np.rint(spine.labels.ras_to_index(d.center_mm)).astype(int))
    assert ones.array[centre_voxel] == pytest.approx(1.0)
    far = spine.labels.ras_to_index(d.center_mm + 100 * d.normal)
    assert ones.array[tuple(np.clip(np.rint(far).astype(int), 0, np.array(spine.labels.shape) - 1))] == 0.0


def test_crop_outside_the_volume_reports_its_share():
    vol = Volume(np.ones((60, 60, 60), np.float32), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), np.eye(3))
    frame = np.stack([[-1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]], axis=1)  # L, P, S in RAS
    mid = vol.index_to_ras([30, 30, 30])
    inside = extract_crop(vol, DiscLocation("L4/L5", mid, frame, np.ones(3)))
    assert inside.outside_fraction == 0.0 and inside.image.array.min() == pytest.approx(1.0)
    corner = vol.index_to_ras([0, 0, 0])
    edge = extract_crop(vol, DiscLocation("L5/S1", corner, frame, np.ones(3)))
    assert 0.5 < edge.outside_fraction < 1.0
    assert edge.image.array[~edge.inside].max() == 0.0  # padding is zero


def test_inside_mask_is_each_crop_voxels_own_test_on_an_oblique_grid():
    # an anisotropic, rotated input and an oblique disc frame: the mask must agree with mapping every
    # crop voxel into the input one by one, and with where the resampled image is padding
    from scipy.spatial.transform import Rotation

    direction = Rotation.from_euler("xyz", [12, -20, 35], degrees=True).as_matrix()
    vol = Volume(np.ones((15, 90, 100), np.float32), (4.0, 0.8, 0.7), (5.0, -20.0, 40.0), direction)
    frame = Rotation.from_euler("xyz", [-30, 15, 50], degrees=True).as_matrix()
    centre = vol.index_to_ras([3.0, 80.0, 50.0])  # near two faces: the crop is partly outside
    sampler = CropSampler(vol)
    crop = sampler.crop(DiscLocation("L3/L4", centre, frame, np.ones(3)))
    geom = crop_geometry(DiscLocation("L3/L4", centre, frame, np.ones(3)))
    ijk = np.argwhere(np.ones(geom.shape, bool))
    idx = vol.ras_to_index(geom.index_to_ras(ijk))
    brute = np.all((idx >= -0.5) & (idx <= np.asarray(vol.shape) - 0.5), axis=1).reshape(geom.shape)
    assert 0.1 < brute.mean() < 0.9
    np.testing.assert_array_equal(crop.inside, brute)
    assert crop.image.array[~crop.inside].max() == 0.0
    # a second level from the same sampler is the same as a fresh extract_crop
    other = DiscLocation("L4/L5", vol.index_to_ras([7.0, 45.0, 50.0]), frame, np.ones(3))
    np.testing.assert_array_equal(sampler.crop(other).image.array, extract_crop(vol, other).image.array)


def test_curve_tangent_points_superior():
    pts = np.array([[0, 5 * np.sin(i / 3), -30.0 * i] for i in range(6)])
    curve = SpineCurve.fit(pts)
    for u in np.linspace(0, 1, 7):
        assert curve.tangent(u)[2] > 0.9
    np.testing.assert_allclose(curve.point(curve.u_points), pts, atol=1.5)
    assert curve.project(pts[2]) == pytest.approx(curve.u_points[2], abs=0.01)


def test_real_scans_disc_centres_between_bodies(real_dev):
    cases = sorted(p for p in real_dev.glob("vb3-*") if (p / "vertebrae.nii.gz").is_file())[:3]
    if not cases:
        pytest.skip(f"no vb3 cases in {real_dev}")
    for case in cases:
        labels = read_volume(case / "vertebrae.nii.gz")
        lab = label_from_label_map(labels)
        discs, warnings = discs_for_labelling(lab)
        assert [d.level for d in discs] == ["L1/L2", "L2/L3", "L3/L4", "L4/L5"], case.name
        cents = {v.label: np.asarray(v.centroid_mm) for v in lab.vertebrae}
        for d in discs:
            up, lo = cents[d.upper], cents[d.lower]
            axis = (up - lo) / np.linalg.norm(up - lo)
            assert d.normal @ axis > 0.9, (case.name, d.level)
            t = (d.center_mm - lo) @ (up - lo) / np.linalg.norm(up - lo) ** 2
            assert 0.3 < t < 0.7, (case.name, d.level, t)
            # not inside a labelled body, and the gap between endplates is disc-sized
            ijk = tuple(np.rint(labels.ras_to_index(d.center_mm)).astype(int))
            assert labels.array[ijk] == 0, (case.name, d.level)
            assert 2.0 < d.extra["endplate_gap_mm"] < 25.0, (case.name, d.level, d.extra)
        image = read_volume(case / "image.nii.gz")
        crop = extract_crop(image, discs[-1])
        assert crop.outside_fraction < 0.2 and crop.image.array.std() > 0
