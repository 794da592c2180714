"""The vertebra and disc stages: bundle or no bundle, wiring from network output to named vertebrae,
label volume in the input's geometry and disc levels, and bad input (noise, a tiny field of view).

The wiring tests replace the network by an oracle (the ground truth of a generated case as one-hot
network output), so they test everything after the network without depending on trained weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.networks.nets import UNet

from fixtures_volumes import oblique_sagittal_volume
from SpineGradeLogic.evaluation.evaluate_vertebrae import (bundle_split, evaluate_generated, oracle_predictor, score_case,
                                                           truth_centroids)
from SpineGradeLogic.io.volume import Volume
from SpineGradeLogic.models.bundle import save_bundle
from SpineGradeLogic.names import DISC_OFFSET, POSTERIOR_OFFSET, SPINAL_CANAL, VERTEBRA_LABELS
from SpineGradeLogic.pipeline import RunOptions, StudyContext, run_study
from SpineGradeLogic.pipeline.stages import LoadStage
from SpineGradeLogic.pipeline.vertebra_stage import (DiscStage, VertebraeStage, canal_centreline, clear_model_cache,
                                                     load_model)
from SpineGradeLogic.results import read_result_folder, validate_result_dict, write_volume
from SpineGradeLogic.results.folder import read_volume
from SpineGradeLogic.vertebrae.bundle_card import vertebra_metadata
from SpineGradeLogic.vertebrae.targets import LEVELS, SEMANTIC

TINY = dict(spatial_dims=2, in_channels=3, out_channels=len(SEMANTIC) + len(LEVELS), channels=(4, 8), strides=(2,),
            num_res_units=0)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """An untrained vertebra bundle of the right shape (3 slices in, semantic + level channels out)."""
    torch.manual_seed(0)
    record = {"split": {"real_train": ["vb3-01"], "real_validation": ["vb3-02", "vb3-05"]}, "command": "test"}
    return save_bundle(tmp_path_factory.mktemp("b") / "spinegrade_vertebrae", UNet(**TINY), TINY,
                       vertebra_metadata("0.0.1", "test bundle", record))


@pytest.fixture(scope="module")
def phantom():
    from SpineGradeLogic.phantom import generate_case

    return generate_case(10003, "lumbar", "T2")


@pytest.fixture
def no_installed_models(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINEGRADE_MODELS", str(tmp_path / "no-models"))
    monkeypatch.delenv("SPINEGRADE_VERTEBRAE_BUNDLE", raising=False)


def _run(path, out, bundle, predictor=None):
    """Load, vertebrae and discs stages on a file; returns the context (artifacts included)."""
    ctx = StudyContext(path, out, RunOptions(bundles={"spinegrade_vertebrae": bundle}))
    for stage in (LoadStage(), VertebraeStage(predictor), DiscStage()):
        stage.run(ctx)
    return ctx


def test_without_a_bundle_the_stage_says_so_and_invents_nothing(tmp_path, no_installed_models):
    write_volume(oblique_sagittal_volume(), tmp_path / "scan.nii.gz")
    r = run_study(tmp_path / "scan.nii.gz", tmp_path / "out")
    assert any("vertebra labelling: no model is installed" in w for w in r.warnings)
    assert any("disc localisation: no labelled vertebrae" in w for w in r.warnings)
    assert r.vertebrae == [] and r.discs == [] and r.models == []
    assert not (tmp_path / "out" / "segmentation.nii.gz").exists()


def test_an_untrained_bundle_runs_end_to_end_in_the_input_geometry(tmp_path, bundle):
    vol = oblique_sagittal_volume()
    write_volume(vol, tmp_path / "scan.nii.gz")
    r = run_study(tmp_path / "scan.nii.gz", tmp_path / "out", RunOptions(bundles={"vertebrae": bundle}))
    folder = read_result_folder(tmp_path / "out")
    validate_result_dict(folder.result.to_dict())
    seg = read_volume(tmp_path / "out" / "segmentation.nii.gz")
    assert seg.same_geometry(vol, tol=1e-4)  # overlays the input voxel for voxel
    vert = [m for m in r.models if m.name == "spinegrade_vertebrae"]
    assert len(vert) == 1 and len(vert[0].sha256) == 64
    if not r.vertebrae:  # an untrained network names nothing; it may find nothing and paints nothing then
        assert not np.isin(seg.array, list(VERTEBRA_LABELS.values())).any()
        assert r.warnings


def test_the_model_is_loaded_once_per_process(bundle):
    clear_model_cache()
    a = load_model(bundle)
    assert load_model(bundle) is a
    clear_model_cache()
    assert load_model(bundle) is not a


def test_oracle_output_names_vertebrae_places_discs_and_paints_labels(tmp_path, bundle, phantom):
    case = phantom
    write_volume(case.image, tmp_path / "image.nii.gz")
    ctx = _run(tmp_path / "image.nii.gz", tmp_path / "out", bundle, oracle_predictor(case.labels))
    r = ctx.result
    truth = truth_centroids(case.labels)
    assert [v.label for v in r.vertebrae] == [n for n in ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1") if n in truth]
    for v in r.vertebrae:
        assert np.linalg.norm(np.asarray(v.centroid_mm) - truth[v.label]) < 3.0, v.label
        assert v.confidence > 0.9 and v.bbox_mm is not None
    true_discs = {d.level: np.asarray(d.center_mm) for d in case.truth.discs}
    assert [d.level for d in r.discs] == [lv for lv in true_discs if lv in [d.level for d in r.discs]]
    assert {d.level for d in r.discs} >= {"T12/L1", "L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"}
    for d in r.discs:
        assert np.linalg.norm(np.asarray(d.center_mm) - true_discs[d.level]) < 3.0, d.level
        assert np.asarray(d.normal)[2] > 0.7  # points superior
    assert [loc.level for loc in ctx.artifacts["disc_locations"]] == [d.level for d in r.discs]
    assert ctx.artifacts["vertebrae"].canal_ras is not None  # the disc frames were oriented by the canal

    seg = ctx.segmentation
    assert seg.same_geometry(case.image)
    values = set(np.unique(seg.array).tolist())
    assert {VERTEBRA_LABELS["L3"], POSTERIOR_OFFSET + VERTEBRA_LABELS["L3"], DISC_OFFSET + VERTEBRA_LABELS["L4"],
            VERTEBRA_LABELS["S1"], SPINAL_CANAL} <= values
    t, p = np.asarray(case.labels.array), np.asarray(seg.array)
    for name in ("L1", "L3", "L5"):
        v = VERTEBRA_LABELS[name]
        dice = 2 * ((t == v) & (p == v)).sum() / ((t == v).sum() + (p == v).sum())
        assert dice > 0.8, (name, dice)
    for v in (POSTERIOR_OFFSET + VERTEBRA_LABELS["L2"], DISC_OFFSET + VERTEBRA_LABELS["L4"]):  # split by level
        agree = ((t == v) & (p == v)).sum() / max((p == v).sum(), 1)
        assert agree > 0.8, (v, agree)
    validate_result_dict(r.to_dict())


def test_a_noise_volume_has_no_spine(tmp_path, bundle):
    rng = np.random.default_rng(0)
    vol = Volume(rng.normal(100, 30, (256, 256, 15)).astype(np.float32), (0.9, 0.9, 4.0), (0, 0, 0),
                 np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], float))  # sagittal: k along left-right
    write_volume(vol, tmp_path / "noise.nii.gz")

    def speckles(model, image, device):  # what a trained network says on noise: background, a few specks
        s, a, i = image.shape
        sem = np.zeros((s, len(SEMANTIC), a, i), np.float16)
        sem[:, 0] = 1
        spots = rng.random((s, a, i)) < 0.002
        sem[:, 1][spots], sem[:, 0][spots] = 1, 0
        return sem, np.full((s, len(LEVELS), a, i), 1.0 / len(LEVELS), np.float16)

    ctx = _run(tmp_path / "noise.nii.gz", tmp_path / "out", bundle, speckles)
    assert ctx.result.vertebrae == [] and ctx.result.discs == []
    assert any("no spine found" in w for w in ctx.result.warnings)
    assert ctx.segmentation is not None and not ctx.segmentation.array.any()


def test_a_scatter_of_body_pieces_is_no_spine(tmp_path, bundle):
    """An untrained or confused network: hundreds of body-sized blobs everywhere; nothing is named."""
    write_volume(oblique_sagittal_volume(shape=(200, 220, 12), spacing=(1.0, 1.0, 4.0)), tmp_path / "scan.nii.gz")

    def blobs(model, image, device):
        s, a, i = image.shape
        sem = np.zeros((s, len(SEMANTIC), a, i), np.float16)
        grid = np.zeros((s, a, i), bool)
        grid[:, 2::12, 2::12] = True
        grid = np.logical_or.reduce([np.roll(np.roll(grid, dy, 1), dz, 2) for dy in range(8) for dz in range(8)])
        sem[:, 1][grid], sem[:, 0][~grid] = 1, 1
        return sem, np.full((s, len(LEVELS), a, i), 1.0 / len(LEVELS), np.float16)

    ctx = _run(tmp_path / "scan.nii.gz", tmp_path / "out", bundle, blobs)
    assert ctx.result.vertebrae == [] and ctx.result.discs == []
    assert any("no spine found" in w for w in ctx.result.warnings)


def test_a_tiny_field_of_view_names_nothing(tmp_path, bundle, phantom):
    case = phantom
    lab = np.asarray(case.labels.array)
    si_axis = int(np.argmax(np.abs(case.image.direction_lps[2])))  # the voxel axis closest to S-I
    along = np.flatnonzero(np.moveaxis(lab == VERTEBRA_LABELS["L3"], si_axis, 0).any(axis=(1, 2)))
    sl = [slice(None)] * 3
    sl[si_axis] = slice(along[0] + 2, along[-1] - 1)  # inside one body: one vertebra, no disc

    def crop(v: Volume) -> Volume:
        start = [s.start or 0 for s in sl]
        origin = np.asarray(v.origin_lps) + v.direction_lps @ (np.asarray(start) * np.asarray(v.spacing))
        return Volume(np.ascontiguousarray(np.asarray(v.array)[tuple(sl)]), v.spacing, origin, v.direction_lps)

    image, labels = crop(case.image), crop(case.labels)
    write_volume(image, tmp_path / "tiny.nii.gz")
    ctx = _run(tmp_path / "tiny.nii.gz", tmp_path / "out", bundle, oracle_predictor(labels))
    assert ctx.result.vertebrae == [] and ctx.result.discs == []
    assert any("too little spine" in w or "no spine found" in w for w in ctx.result.warnings)


def test_canal_centreline_follows_a_tilted_tube_superior_first():
    shape, spacing = (20, 64, 96), (3.0, 1.5, 1.5)
    grid = Volume(np.zeros(shape, np.uint8), spacing, (-30.0, 0.0, 0.0), np.eye(3))
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    lps = np.stack([i * 3.0 - 30.0, j * 1.5, k * 1.5], -1)
    axis_p = 50.0 + 0.4 * (lps[..., 2] - 70.0)  # the tube drifts posterior going up
    mask = (lps[..., 0] ** 2 + (lps[..., 1] - axis_p) ** 2) <= 6.0**2
    pts = canal_centreline(mask, grid)
    assert pts is not None and len(pts) >= 10
    assert np.all(np.diff(pts[:, 2]) < 0)  # superior first
    expected_a = -(50.0 + 0.4 * (pts[:, 2] - 70.0))  # RAS y = -LPS y
    assert np.abs(pts[:, 1] - expected_a).max() < 1.5 and np.abs(pts[:, 0]).max() < 1.5
    assert canal_centreline(np.zeros(shape, bool), grid) is None


def test_evaluation_scores_the_oracle_and_reads_the_bundle_split(bundle, phantom):
    assert bundle_split(bundle) == ["vb3-02", "vb3-05"]
    ev = score_case("p", "generated", phantom.image, phantom.labels, None, "cpu", oracle_predictor(phantom.labels),
                    truth_discs={d.level: np.asarray(d.center_mm) for d in phantom.truth.discs})
    assert ev.scores.identification_rate == 1.0 and ev.scores.all_correct
    assert np.mean(list(ev.scores.centroid_error_mm.values())) < 2.0
    assert min(ev.scores.dice.values()) > 0.85
    assert ev.discs_found == ev.discs_true and max(ev.disc_error_mm.values()) < 3.0


@pytest.mark.parametrize("n", [0])
def test_evaluate_generated_with_no_cases_is_empty(n):
    assert evaluate_generated(n, None, oracle=True) == []


# --- which sacrum candidate may anchor the names --------------------------------------------------
def _block(grid, x, y, z, half):
    """Voxels of a box centred at RAS (x, y, z) mm with half extents ``half`` on a 2 mm identity-LPS grid."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), -1).reshape(-1, 3)
    ras = grid.index_to_ras(ijk)
    m = np.all(np.abs(ras - np.array([x, y, z])) <= np.asarray(half), axis=1)
    return ijk[m]


def _spine_pieces(sacrum_at=(0.0, 0.0, -75.0), sacrum_half=(20.0, 20.0, 50.0), extra=()):
    from SpineGradeLogic.labelling import SpineInstance

    grid = Volume(np.zeros((60, 80, 160), np.uint8), (2.0, 2.0, 2.0), (-60.0, -80.0, -160.0), np.eye(3))
    # five 30 mm bodies 40 mm apart along S-I (RAS z = -LPS... identity LPS: RAS z = LPS z)
    bodies = [SpineInstance(_block(grid, 0.0, 0.0, z, (20.0, 15.0, 15.0)), grid) for z in (0.0, 40.0, 80.0, 120.0, 160.0)]
    pieces = [SpineInstance(_block(grid, *c, h), grid) for c, h in extra]
    sacrum = SpineInstance(_block(grid, *sacrum_at, sacrum_half), grid, "sacrum")
    return bodies + pieces + [sacrum]


def test_a_whole_sacrum_below_l5_anchors_even_though_its_centroid_lies_far_down():
    from SpineGradeLogic.pipeline.vertebra_stage import _plausible_sacrum

    pieces = _spine_pieces()  # top of the sacrum 25 mm below the lowest body's centroid, centroid 75 mm
    assert any(p.kind == "sacrum" for p in _plausible_sacrum(pieces))


def test_paraspinal_specks_below_the_spine_do_not_veto_the_sacrum():
    from SpineGradeLogic.pipeline.vertebra_stage import _plausible_sacrum

    specks = [((-40.0, 60.0, -140.0), (5.0, 5.0, 5.0)), ((-42.0, 62.0, -100.0), (6.0, 6.0, 6.0))]
    assert any(p.kind == "sacrum" for p in _plausible_sacrum(_spine_pieces(extra=specks)))


def test_a_sacrum_candidate_beside_or_above_the_bodies_is_dropped():
    from SpineGradeLogic.pipeline.vertebra_stage import _plausible_sacrum

    far_below = _spine_pieces(sacrum_at=(0.0, 0.0, -150.0), sacrum_half=(15.0, 15.0, 10.0))
    assert not any(p.kind == "sacrum" for p in _plausible_sacrum(far_below))
    mid_spine = _spine_pieces(sacrum_at=(0.0, 40.0, 60.0), sacrum_half=(15.0, 10.0, 20.0))
    assert not any(p.kind == "sacrum" for p in _plausible_sacrum(mid_spine))
    speck = _spine_pieces(sacrum_at=(0.0, 0.0, -35.0), sacrum_half=(4.0, 4.0, 4.0))
    assert not any(p.kind == "sacrum" for p in _plausible_sacrum(speck))


def test_a_whole_spine_names_the_atlas_and_places_no_c1_c2_disc(tmp_path, bundle):
    """C1 is an eighth of C2 and rings its dens: it is its own vertebra, not a fragment of C2, and
    there is no disc between them."""
    from SpineGradeLogic.phantom import generate_case

    case = generate_case(10000, "whole", "T2")
    write_volume(case.image, tmp_path / "image.nii.gz")
    ctx = _run(tmp_path / "image.nii.gz", tmp_path / "out", bundle, oracle_predictor(case.labels))
    names = [v.label for v in ctx.result.vertebrae]
    truth = truth_centroids(case.labels)
    assert names[:3] == ["C1", "C2", "C3"] and names == [n for n in truth if n in names]
    assert np.linalg.norm(np.asarray(ctx.result.vertebrae[0].centroid_mm) - truth["C1"]) < 3.0
    levels = [d.level for d in ctx.result.discs]
    assert "C1/C2" not in levels and levels[0] == "C2/C3"
    assert VERTEBRA_LABELS["C1"] in np.unique(ctx.segmentation.array)


def _piece(grid, kind, lo, hi):
    from SpineGradeLogic.labelling.instances import SpineInstance

    box = np.zeros(grid.shape, bool)
    box[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return SpineInstance(np.argwhere(box), grid, kind)


def test_bodies_cut_by_the_lower_edge_of_the_field_of_view_are_marked():
    from SpineGradeLogic.labelling.evidence import CUT_BY_FIELD_OF_VIEW
    from SpineGradeLogic.pipeline.vertebra_stage import _mark_field_of_view_cuts

    grid = Volume(np.zeros((10, 40, 60), np.uint8), (3.0, 1.5, 1.5), (0.0, 0.0, 0.0), np.eye(3))
    inside = np.ones(grid.shape, bool)
    inside[:, :, :8] = False  # the field of view starts at k = 8 (axis 2 runs inferior to superior)
    cut = _piece(grid, "body", (2, 10, 8), (8, 30, 18))  # its lowest layer lies on the edge
    clear = _piece(grid, "body", (2, 10, 25), (8, 30, 40))
    sacrum = _piece(grid, "sacrum", (2, 10, 8), (8, 30, 12))
    _mark_field_of_view_cuts([cut, clear, sacrum], inside)
    assert cut.extra.get(CUT_BY_FIELD_OF_VIEW) and CUT_BY_FIELD_OF_VIEW not in clear.extra
    assert CUT_BY_FIELD_OF_VIEW not in sacrum.extra  # only bodies may be a sacrum's cut-off top


def test_small_body_pieces_beside_the_sacrum_join_it():
    from SpineGradeLogic.pipeline.vertebra_stage import _sacral_fragments_into_sacrum

    grid = Volume(np.zeros((12, 40, 120), np.uint8), (3.0, 1.5, 1.5), (0.0, 0.0, 0.0), np.eye(3))
    levels = np.full((len(LEVELS),) + grid.shape, 1.0 / len(LEVELS), np.float32)
    bodies = [_piece(grid, "body", (2, 10, k), (10, 30, k + 18)) for k in (40, 62, 84)]  # L3, L4, L5
    sacrum = _piece(grid, "sacrum", (2, 10, 5), (10, 30, 36))
    beside = _piece(grid, "body", (10, 12, 20), (12, 24, 30))  # small, touching the sacrum, below its top
    far = _piece(grid, "body", (10, 12, 20), (12, 24, 30))
    far.voxels = far.voxels + np.array([0, 0, 70])  # the same piece up beside L4: not the sacrum's
    out = _sacral_fragments_into_sacrum(bodies + [sacrum, beside, far], levels)
    merged = [i for i in out if i.kind == "sacrum"]
    assert len(merged) == 1 and merged[0].n_voxels == sacrum.n_voxels + beside.n_voxels
    kept = [id(i) for i in out]
    assert id(beside) not in kept and id(far) in kept and all(id(b) in kept for b in bodies)
    alone = bodies + [sacrum]
    assert [id(i) for i in _sacral_fragments_into_sacrum(alone, levels)] == [id(i) for i in alone]


def test_input_segmentation_gives_the_bodies_lateral_rim_back_on_a_fine_grid():
    from types import SimpleNamespace

    from SpineGradeLogic.pipeline.vertebra_stage import input_segmentation
    from SpineGradeLogic.vertebrae.grid import from_working_grid, working_grid_for

    volume = Volume(np.zeros((60, 60, 60), np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    grid = working_grid_for(volume)
    labels = np.zeros(grid.size, np.uint8)
    labels[8:12, 10:30, 10:30] = VERTEBRA_LABELS["L4"]
    plain = np.asarray(from_working_grid(labels, grid, volume).array) == VERTEBRA_LABELS["L4"]
    seg = np.asarray(input_segmentation(SimpleNamespace(labels=labels), volume).array) == VERTEBRA_LABELS["L4"]
    lr = lambda m: np.flatnonzero(m.any(axis=(1, 2)))  # array axis 0 is left-right here
    assert lr(seg).min() == lr(plain).min() - 2 and lr(seg).max() == lr(plain).max() + 2
    assert seg.sum() > plain.sum()


def test_evaluation_counts_l6_and_t13_names_the_scores_do_not_see():
    from SpineGradeLogic.evaluation.evaluate_vertebrae import CaseEvaluation, summary_lines

    cases = [CaseEvaluation("a", "real", named=["L4", "L5", "L6"]), CaseEvaluation("b", "real", named=["L4", "L5", "S1"])]
    assert "  L6 or T13 named: 1 of 2 scans (0 with one in the reference); S1 named: 1" in summary_lines(cases, "t")
