"""Vertebra labelling: instances, ordering along the curve, the sequence decoder, warnings."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures_spine import names_between, noisy_evidence, synthetic_spine
from SpineGradeLogic.io.volume import Volume
from SpineGradeLogic.labelling import (
    DecoderPriors,
    SpineInstance,
    decode,
    instances_from_masks,
    label_from_label_map,
    label_instances,
    named_label_map,
    order_along_spine,
)
from SpineGradeLogic.names import SPINE_ORDER, VERTEBRA_LABELS
from SpineGradeLogic.results.folder import read_volume

SACRUM = VERTEBRA_LABELS["S1"]


def masks(spine, drop=()):
    """Body and sacrum masks as a network would give them (no names)."""
    arr = spine.labels.array
    body = (arr >= 1) & (arr <= 28) & (arr != SACRUM)
    for name in drop:
        body &= arr != VERTEBRA_LABELS[name]
    return spine.labels.with_array(body), spine.labels.with_array(arr == SACRUM)


def labelled(spine, sacrum=True, evidence_rng=None, drop=(), **kw):
    body, sac = masks(spine, drop)
    inst = instances_from_masks(body, sac if sacrum else None)
    if evidence_rng is not None:
        arr = spine.labels.array
        for i in inst:
            values, counts = np.unique(arr[tuple(i.voxels.T)], return_counts=True)
            truth = {v: k for k, v in VERTEBRA_LABELS.items()}[int(values[np.argmax(counts)])]
            i.probabilities = noisy_evidence([truth], evidence_rng, **kw)[0]
    return label_instances(inst)


def test_lumbar_with_sacrum_named_from_the_sacrum_alone():
    spine = synthetic_spine(names_between("L1", "S1"))
    lab = labelled(spine)
    assert lab.names == ["L1", "L2", "L3", "L4", "L5", "S1"]
    assert lab.evidence_sources == ["sacrum"]
    assert min(v.confidence for v in lab.vertebrae) > 0.8
    assert lab.warnings == []
    truth = label_from_label_map(spine.labels)
    for v, t in zip(lab.vertebrae, truth.vertebrae):  # same voxels -> same centroids and boxes
        np.testing.assert_allclose(v.centroid_mm, t.centroid_mm, atol=1e-6)
        assert v.bbox_mm == t.bbox_mm
    for v in lab.vertebrae[:-1]:  # the analytic centres, within half a voxel
        assert np.linalg.norm(np.subtract(v.centroid_mm, spine.centres[v.label])) < 1.0


def test_lumbar_without_any_anchor_names_nothing():
    spine = synthetic_spine(names_between("L1", "L5"))
    lab = labelled(spine, sacrum=False)
    assert lab.vertebrae == []
    assert any("nothing identifies" in w for w in lab.warnings)


def test_lumbar_without_sacrum_named_by_network_evidence():
    spine = synthetic_spine(names_between("T11", "L4"))
    lab = labelled(spine, sacrum=False, evidence_rng=np.random.default_rng(0))
    assert lab.names == ["T11", "T12", "L1", "L2", "L3", "L4"]
    assert lab.evidence_sources == ["network"]
    assert any("neither the sacrum nor C2 is in view" in w for w in lab.warnings)
    anchored = labelled(synthetic_spine(names_between("T11", "S1")), evidence_rng=np.random.default_rng(0))
    assert not any("neither the sacrum nor C2" in w for w in anchored.warnings)


def test_thoraco_lumbar_with_weak_noisy_evidence():
    spine = synthetic_spine(names_between("T6", "S1"))
    lab = labelled(spine, evidence_rng=np.random.default_rng(1), sharpness=0.7, noise=1.0)
    assert lab.names == names_between("T6", "S1")


def test_whole_spine_anchored_on_sacrum_and_dens():
    spine = synthetic_spine(names_between("C2", "S1"))
    lab = labelled(spine)
    assert lab.names == names_between("C2", "S1")
    assert set(lab.evidence_sources) == {"sacrum", "dens"}
    assert min(v.confidence for v in lab.vertebrae) > 0.9


def test_cervico_thoracic_named_from_the_dens():
    spine = synthetic_spine(names_between("C2", "T4"))
    lab = labelled(spine, sacrum=False)
    assert lab.evidence_sources == ["dens"]
    assert lab.names == names_between("C2", "T4")


def test_l6_only_where_the_evidence_supports_it():
    names = names_between("T11", "S1", l6=True)
    spine = synthetic_spine(names)
    plain = labelled(spine)  # six lumbar-like bodies, sacrum only: the prior keeps the usual count
    assert "L6" not in plain.names and plain.names[-2:] == ["L5", "S1"]
    lab = labelled(spine, evidence_rng=np.random.default_rng(2), sharpness=1.5, noise=0.3)
    assert lab.names == names
    assert any("L6" in w for w in lab.warnings)


def test_t13_named_and_flagged():
    names = names_between("T10", "L2", t13=True)
    spine = synthetic_spine(names)
    lab = labelled(spine, sacrum=False, evidence_rng=np.random.default_rng(3), sharpness=2.0, noise=0.2)
    assert lab.names == names
    assert any("T13" in w for w in lab.warnings)


def test_missed_vertebra_is_bridged_and_reported():
    spine = synthetic_spine(names_between("L1", "S1"))
    lab = labelled(spine, drop=("L3",), evidence_rng=np.random.default_rng(4), sharpness=1.0, noise=0.5)
    assert lab.names == ["L1", "L2", "L4", "L5", "S1"]
    assert any("between L2 and L4" in w for w in lab.warnings)


def test_order_follows_the_curve_not_the_array_axis():
    spine = synthetic_spine(names_between("T12", "S1"))
    vol = spine.labels
    # the same anatomy with the array axes permuted and flipped: geometry keeps RAS identical
    arr = vol.array.transpose(2, 0, 1)[::-1]
    d = vol.direction_lps[:, [2, 0, 1]].copy()
    d[:, 0] *= -1
    origin = vol.index_to_ras([0, 0, vol.shape[2] - 1]) * [-1, -1, 1]
    other = Volume(np.ascontiguousarray(arr), (vol.spacing[2], vol.spacing[0], vol.spacing[1]), tuple(origin), d)
    a = labelled(spine)
    b = label_instances(instances_from_masks(other.with_array((arr >= 1) & (arr <= 28) & (arr != SACRUM)), other.with_array(arr == SACRUM)))
    assert a.names == b.names == names_between("T12", "S1")
    np.testing.assert_allclose([v.centroid_mm for v in a.vertebrae], [v.centroid_mm for v in b.vertebrae], atol=1e-6)


def test_ordering_drops_an_off_curve_blob():
    pts = np.array([[0, 0, -35.0 * i] for i in range(6)], float)
    pts[:, 1] = 10 * np.sin(np.arange(6) / 2)
    blob = np.array([[80.0, 40.0, -90.0]])
    so = order_along_spine(np.vstack([pts[::-1], blob]))
    assert list(so.outliers) == [6]
    assert list(so.order) == [5, 4, 3, 2, 1, 0]


def test_no_spine_gives_a_warning_and_no_names():
    spine = synthetic_spine(names_between("L1", "L2"))
    empty = spine.labels.with_array(np.zeros(spine.labels.shape, bool))
    lab = label_instances(instances_from_masks(empty, empty))
    assert lab.vertebrae == [] and "no spine found" in lab.warnings[0]
    one = spine.labels.with_array(spine.labels.array == VERTEBRA_LABELS["L1"])
    lab = label_instances(instances_from_masks(one))
    assert lab.vertebrae == [] and "no spine found" in lab.warnings[0]
    noise = spine.labels.with_array(np.random.default_rng(0).random(spine.labels.shape) > 0.7)
    assert label_instances(instances_from_masks(noise)).vertebrae == []  # speckle: no piece big enough


def test_decoder_confidence_is_the_posterior_marginal():
    k = len(SPINE_ORDER)
    ev = np.ones((3, k))
    ev[2] = 1e-6
    ev[2, SPINE_ORDER.index("S1")] = 1
    d = decode(ev, priors=DecoderPriors(p_l6=0.2))
    assert d.labels == ["L4", "L5", "S1"]
    # with no other evidence the L6 alternative costs exactly its prior
    assert d.confidence[1] == pytest.approx(0.8, abs=0.01)
    np.testing.assert_allclose(d.marginals.sum(1), 1.0)


def test_level_probabilities_split_merged_bodies():
    spine = synthetic_spine(names_between("L3", "S1"), with_discs=False)
    arr = spine.labels.array
    body = (arr >= 1) & (arr <= 28) & (arr != SACRUM)
    from scipy import ndimage

    merged = ndimage.binary_closing(body, iterations=4) & ~(arr == SACRUM)  # discs missed: bodies touch
    probs = np.zeros((len(SPINE_ORDER), *arr.shape), np.float32)
    probs[SPINE_ORDER.index("L1")] = 1.0
    for name in ("L3", "L4", "L5"):
        near = ndimage.distance_transform_edt(arr != VERTEBRA_LABELS[name]) < 6
        probs[:, near] = 0
        probs[SPINE_ORDER.index(name), near] = 1.0
    inst = instances_from_masks(spine.labels.with_array(merged), spine.labels.with_array(arr == SACRUM), probs)
    lab = label_instances(inst)
    assert lab.names == ["L3", "L4", "L5", "S1"]


def test_named_label_map_round_trips():
    spine = synthetic_spine(names_between("L1", "S1"))
    lab = labelled(spine)
    out = named_label_map(lab)
    truth = spine.labels.array.copy()
    truth[truth > 28] = 0
    np.testing.assert_array_equal(out.array, truth)


def test_real_scans_ground_truth_and_decoding(real_dev):
    cases = sorted(p for p in real_dev.glob("vb3-*") if (p / "vertebrae.nii.gz").is_file())[:3]
    if not cases:
        pytest.skip(f"no vb3 cases in {real_dev}")
    rng = np.random.default_rng(5)
    for case in cases:
        labels = read_volume(case / "vertebrae.nii.gz")
        truth = label_from_label_map(labels)
        assert truth.names == ["L1", "L2", "L3", "L4", "L5"]
        z = [v.centroid_mm[2] for v in truth.vertebrae]
        assert all(a > b for a, b in zip(z, z[1:])), f"{case.name}: L1..L5 not superior to inferior in RAS"
        inst = instances_from_masks(labels.with_array(labels.array > 0))
        for i in inst:
            value = int(np.bincount(labels.array[tuple(i.voxels.T)].astype(int)).argmax())
            i.probabilities = noisy_evidence([{v: k for k, v in VERTEBRA_LABELS.items()}[value]], rng, 1.0, 0.5)[0]
        lab = label_instances(inst)
        assert lab.names == truth.names, case.name
        np.testing.assert_allclose([v.centroid_mm for v in lab.vertebrae], [v.centroid_mm for v in truth.vertebrae], atol=1e-6)


def test_instances_carry_ras_geometry():
    vol = Volume(np.zeros((10, 10, 10), bool), (2.0, 1.0, 3.0), (5.0, -3.0, 7.0), np.eye(3))
    vol.array[2:4, 5:7, 1:3] = True
    inst = SpineInstance(np.argwhere(vol.array), vol)
    np.testing.assert_allclose(inst.centroid_mm, vol.index_to_ras([2.5, 5.5, 1.5]))
    assert inst.volume_mm3 == pytest.approx(8 * 6.0)
    np.testing.assert_allclose(np.sort([inst.bbox_mm.min, inst.bbox_mm.max], 0)[0], inst.bbox_mm.min)


def test_ordering_survives_an_outlier_dropped_on_the_last_pass():
    """Four clear outliers use up every pass; the curve must then describe only the kept points."""
    from SpineGradeLogic.labelling.ordering import order_along_spine

    spine = np.stack([np.zeros(12), np.zeros(12), -30.0 * np.arange(12)], axis=1)
    far = np.array([[90.0, 0, -45], [-95.0, 0, -105], [100.0, 0, -165], [-85.0, 0, -225], [92.0, 0, -285]])
    order = order_along_spine(np.concatenate([spine, far]))
    assert len(order.order) == len(order.arc_mm) == len(order.residual_mm)
    assert set(order.order.tolist()) <= set(range(17))


def _grid(shape):
    from SpineGradeLogic.io.volume import Volume

    return Volume(np.zeros(shape, np.uint8), (3.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))


def test_lateral_parts_of_one_body_are_one_instance():
    """A body seen as two pieces across thick sagittal slices counts once; its neighbour stays apart."""
    from SpineGradeLogic.labelling.instances import instances_from_masks

    g = _grid((12, 40, 80))
    mask = np.zeros(g.shape, bool)
    mask[1:4, 10:30, 10:30] = True  # left part of body A
    mask[6:9, 10:30, 11:31] = True  # right part of body A (a slice gap between)
    mask[1:9, 10:30, 45:65] = True  # body B, a disc below
    bodies = instances_from_masks(g.with_array(mask))
    assert len(bodies) == 2
    assert sorted(b.n_voxels for b in bodies) == [2 * 3 * 20 * 20, 8 * 20 * 20]


def test_a_body_the_level_head_wavers_on_is_not_split():
    """Two level votes inside one compact body: one instance; two bodies fused across a missed disc: two."""
    from SpineGradeLogic.labelling.instances import instances_from_masks
    from SpineGradeLogic.names import SPINE_ORDER

    g = _grid((6, 30, 90))
    mask = np.zeros(g.shape, bool)
    mask[:, 5:25, 5:25] = True  # one body: the head says L3 on its left half, L4 on its right
    probs = np.zeros((len(SPINE_ORDER), *g.shape), np.float32)
    probs[SPINE_ORDER.index("L3"), :3] = 1
    probs[SPINE_ORDER.index("L4"), 3:] = 1
    assert len(instances_from_masks(g.with_array(mask), level_probs=probs)) == 1
    fused = np.zeros(g.shape, bool)
    fused[:, 5:25, 30:80] = True  # two bodies with no disc between: L3 above, L4 below
    probs2 = np.zeros_like(probs)
    probs2[SPINE_ORDER.index("L4"), :, :, 30:55] = 1
    probs2[SPINE_ORDER.index("L3"), :, :, 55:80] = 1
    assert len(instances_from_masks(g.with_array(fused), level_probs=probs2)) == 2


def test_the_atlas_comes_apart_from_c2_however_small_and_close():
    """A C1 piece fused to C2 (an eighth of the piece, centroids 8 mm apart) is split off and stays apart."""
    from SpineGradeLogic.labelling.instances import instances_from_masks
    from SpineGradeLogic.names import SPINE_ORDER

    g = _grid((6, 40, 60))
    mask = np.zeros(g.shape, bool)
    mask[:, 5:25, 10:40] = True  # C2 with its dens
    mask[:, 5:12, 40:44] = True  # the atlas's anterior arch on top of it, touching
    probs = np.zeros((len(SPINE_ORDER), *g.shape), np.float32)
    probs[SPINE_ORDER.index("C2")] = 1
    probs[:, :, 5:12, 40:44] = 0
    probs[SPINE_ORDER.index("C1"), :, 5:12, 40:44] = 1
    pieces = instances_from_masks(g.with_array(mask), level_probs=probs)
    assert sorted(SPINE_ORDER[int(np.argmax(i.probabilities))] for i in pieces) == ["C1", "C2"]
    # the same small piece called C3 is the level head wavering: one body
    probs[SPINE_ORDER.index("C3")] = probs[SPINE_ORDER.index("C1")]
    probs[SPINE_ORDER.index("C1")] = 0
    assert len(instances_from_masks(g.with_array(mask), level_probs=probs)) == 1


def test_no_disc_between_atlas_and_axis():
    from SpineGradeLogic.discs import adjacent_pairs

    assert adjacent_pairs(["C1", "C2", "C3", "C5"]) == [(1, 2)]


def test_bodies_joined_across_a_missed_disc_are_cut_at_the_waist():
    """Two bodies joined by a thin bridge (a disc the network missed) are two instances even when
    the level head calls both the same; a tall piece without a waist, or one no bigger than its
    neighbours, is left whole."""
    from SpineGradeLogic.labelling.instances import instances_from_masks

    g = _grid((8, 40, 150))  # 3 x 1 x 1 mm
    single = 8 * 30 * 26
    mask = np.zeros(g.shape, bool)
    for lo in (10, 40, 75, 110):  # four 26 mm bodies, discs of 4 and 9 mm
        mask[:, 5:35, lo : lo + 26] = True
    mask[3:5, 18:21, 36:40] = True  # the two lowest joined by a bridge across their disc
    pieces = instances_from_masks(g.with_array(mask))
    assert len(pieces) == 4
    for p in pieces:  # one body each, the lowest two with part of the bridge
        assert single <= p.n_voxels <= single + 2 * 3 * 4
    tall = mask.copy()
    tall[:, 5:35, 10:66] = True  # the lowest two as one 56 mm block: no waist
    assert len(instances_from_masks(g.with_array(tall))) == 3
    alone = np.zeros(g.shape, bool)
    alone[:, 5:35, 10:66] = mask[:, 5:35, 10:66]
    alone[3:5, 18:21, 36:40] = True
    assert len(instances_from_masks(g.with_array(alone))) == 1  # nothing to compare it with


def test_the_atlas_comes_apart_even_where_the_level_head_wavers_on_c2():
    """C2 split between C2 and C3 votes (one body, the halves too close to be two) keeps its voxels
    together while the atlas on top of it still comes apart."""
    from SpineGradeLogic.labelling.instances import instances_from_masks
    from SpineGradeLogic.names import SPINE_ORDER

    g = _grid((6, 40, 60))
    mask = np.zeros(g.shape, bool)
    mask[:, 5:25, 10:40] = True  # C2 with its dens
    mask[:, 5:12, 40:44] = True  # the atlas
    probs = np.zeros((len(SPINE_ORDER), *g.shape), np.float32)
    probs[SPINE_ORDER.index("C2"), :3] = 1  # the level head wavers left/right on C2: halves 9 mm apart
    probs[SPINE_ORDER.index("C3"), 3:] = 1
    probs[:, :, 5:12, 40:44] = 0
    probs[SPINE_ORDER.index("C1"), :, 5:12, 40:44] = 1
    pieces = instances_from_masks(g.with_array(mask), level_probs=probs)
    assert len(pieces) == 2
    atlas = min(pieces, key=lambda p: p.n_voxels)
    assert SPINE_ORDER[int(np.argmax(atlas.probabilities))] == "C1" and atlas.n_voxels == 6 * 7 * 4
    assert max(p.n_voxels for p in pieces) == mask.sum() - 6 * 7 * 4


def _with_evidence(spine, rows):
    """Body instances of ``spine`` (superior first) carrying the given probability rows."""
    body, _ = masks(spine)
    inst = sorted(instances_from_masks(body), key=lambda i: -i.centroid_mm[2])
    for i, row in zip(inst, rows):
        i.probabilities = np.asarray(row, float) / np.sum(row)
    return inst


def _row(**p):
    row = np.full(len(SPINE_ORDER), 1e-3)
    for name, v in p.items():
        row[SPINE_ORDER.index(name)] = v
    return row


def test_a_body_cut_by_the_lower_edge_is_taken_as_the_sacrum_not_an_l6():
    """No sacrum in view, the lowest piece cut by the field of view and called L5/L6 by the network
    (which never learned a real S1): the priors make it S1, and a warning says so."""
    from SpineGradeLogic.labelling.evidence import CUT_BY_FIELD_OF_VIEW, EDGE_SACRUM_SOURCE
    from SpineGradeLogic.labelling.label import EDGE_SACRUM_WARNING, UNANCHORED_WARNING

    spine = synthetic_spine(names_between("T11", "L5"))  # seven bodies: the lowest plays the cut S1
    rows = [_row(T12=1.0), _row(L1=1.0), _row(L2=1.0), _row(L3=1.0), _row(L4=1.0), _row(L5=1.0),
            _row(L5=0.4, L6=0.55, S1=0.01)]
    uncut = label_instances(_with_evidence(spine, rows))
    assert uncut.names[-2:] == ["L5", "L6"] and UNANCHORED_WARNING in uncut.warnings
    inst = _with_evidence(spine, rows)
    inst[-1].extra[CUT_BY_FIELD_OF_VIEW] = True
    cut = label_instances(inst)
    assert cut.names == ["T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    assert EDGE_SACRUM_SOURCE in cut.evidence_sources
    assert EDGE_SACRUM_WARNING in cut.warnings and UNANCHORED_WARNING not in cut.warnings
    assert not any("L6" in w for w in cut.warnings)


def test_a_cut_body_the_network_knows_keeps_its_level():
    from SpineGradeLogic.labelling.evidence import CUT_BY_FIELD_OF_VIEW, EDGE_SACRUM_SOURCE
    from SpineGradeLogic.labelling.label import UNANCHORED_WARNING

    spine = synthetic_spine(names_between("T11", "L4"))
    rows = [_row(T11=1.0), _row(T12=1.0), _row(L1=1.0), _row(L2=1.0), _row(L3=1.0), _row(L4=0.9, L5=0.1)]
    inst = _with_evidence(spine, rows)
    inst[-1].extra[CUT_BY_FIELD_OF_VIEW] = True  # a field of view that ends inside L4
    lab = label_instances(inst)
    assert lab.names == ["T11", "T12", "L1", "L2", "L3", "L4"]
    assert EDGE_SACRUM_SOURCE not in lab.evidence_sources and UNANCHORED_WARNING in lab.warnings
