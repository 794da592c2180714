"""Saliency maps (Grad-CAM, Integrated Gradients, SmoothGrad, occlusion) land in the input's geometry and peak at a
planted signal; the grading and saliency stages run with a tiny bundle made here, and a crop outside
the image is a warning, never a crash."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from SpineGradeLogic.discs.crop import extract_crop
from SpineGradeLogic.discs.localise import DiscLocation
from SpineGradeLogic.grading.heads import OUTPUT_SIZE, OUTPUT_SLICES
from SpineGradeLogic.grading.network import CROP_SHAPE, GradingNet
from SpineGradeLogic.grading.prepare import truth_frame
from SpineGradeLogic.io.volume import Volume
from SpineGradeLogic.names import HEAD_NAMES
from SpineGradeLogic.saliency import heads_for_level, map_to_input, saliency_map

SAGITTAL_LPS = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


class Square(torch.nn.Module):
    def forward(self, x):
        return x * x


class BrightnessNet(torch.nn.Module):
    """Toy grader: 'herniation' logit = mean of the squared input, so the evidence for herniation is
    wherever the input is bright (and the gradient too, for SmoothGrad). Its last stage is named
    ``features.3`` like the real network's, so Grad-CAM finds it."""

    def __init__(self):
        super().__init__()
        conv = torch.nn.Conv3d(1, 2, 1)
        with torch.no_grad():
            conv.weight.fill_(1.0)
            conv.bias.zero_()
        self.features = torch.nn.Sequential(conv, Square(), torch.nn.Identity(), torch.nn.AvgPool3d((1, 2, 2)))

    def forward(self, x):
        f = self.features(x)
        out = torch.zeros(x.shape[0], OUTPUT_SIZE)
        s = OUTPUT_SLICES["disc_herniation"]
        score = 5.0 * f.mean(dim=(1, 2, 3, 4))
        out = out.index_put((torch.arange(x.shape[0]), torch.full((x.shape[0],), s.start + 1)), score)
        return out


def _volume_with_blob(blob_ras=None, shape=(100, 110, 16), spacing=(1.0, 1.0, 3.5)):
    """Sagittal LPS volume (i: A->P, j: S->I, k: L->R... per SAGITTAL_LPS) with noise and a bright blob."""
    rng = np.random.default_rng(0)
    vol = Volume(rng.normal(100, 5, shape).astype(np.float32), spacing, (0.0, 0.0, 0.0), SAGITTAL_LPS)
    centre = vol.index_to_ras((np.array(shape) - 1) / 2)
    if blob_ras is not None:
        ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
        d = np.linalg.norm(vol.index_to_ras(ijk) - blob_ras, axis=1).reshape(shape)
        vol.array[d < 4.0] += 400.0
    return vol, centre


def _location(centre, level="L4/L5"):
    return DiscLocation(level, np.asarray(centre, float), truth_frame([0.0, 0.0, 1.0]), np.array([20.0, 15.0, 5.0]))


@pytest.mark.parametrize("method", ["gradcam", "ig", "smoothgrad", "occlusion", "auto"])
def test_map_peaks_at_the_planted_signal_in_input_geometry(method):
    _, centre = _volume_with_blob()
    blob = centre + np.array([0.0, -6.0, 5.0])  # a little anterior and superior of the disc centre
    vol, _ = _volume_with_blob(blob)
    crop = extract_crop(vol, _location(centre))
    from SpineGradeLogic.grading.data import normalise_crop

    x = torch.as_tensor(normalise_crop(crop.image.array, crop.inside))[None, None]
    m = saliency_map(method, BrightnessNet(), x, "disc_herniation", 1)
    assert m.shape == CROP_SHAPE and m.max() == pytest.approx(1.0) and m.min() >= 0
    heat = map_to_input(m, crop, vol)
    assert heat.same_geometry(vol)
    peak = vol.index_to_ras(np.unravel_index(np.argmax(heat.array), vol.shape))
    tol = 9.0 if method == "occlusion" else 5.0  # occlusion works in 12 mm blocks
    assert np.linalg.norm(peak - blob) < tol, (method, peak, blob)


class CompetitorNet(torch.nn.Module):
    """Toy Modic grader: a bright region B raises the Modic 2 logit; a small bright region A lowers
    the Modic 1 logit, which raises Modic 2's probability only by taking a competitor away."""

    A = (slice(10, 12), slice(10, 12), slice(10, 12))
    B = (slice(4, 20), slice(40, 70), slice(20, 50))

    def forward(self, x):
        out = torch.zeros(x.shape[0], OUTPUT_SIZE, dtype=x.dtype)
        s = OUTPUT_SLICES["modic"]
        out[:, s.start + 1] = -40.0 * x[(slice(None), 0) + self.A].mean(dim=(1, 2, 3))
        out[:, s.start + 2] = 2.0 * x[(slice(None), 0) + self.B].mean(dim=(1, 2, 3))
        return out


def test_ig_explains_a_grade_against_the_healthiest_one():
    x = torch.zeros(1, 1, *CROP_SHAPE)
    x[(0, 0) + CompetitorNet.A] = 1.0
    x[(0, 0) + CompetitorNet.B] = 1.0
    from SpineGradeLogic.saliency.maps import HeadLogProb, integrated_gradients_map

    model = HeadLogProb(CompetitorNet(), "modic")
    in_a = lambda m: np.unravel_index(int(np.argmax(m)), CROP_SHAPE)[2] < 15  # the peak's superior index
    # log p(Modic 2) rises where Modic 1 is pushed down: the plain score's map peaks in the small A
    assert in_a(integrated_gradients_map(model, x, 2, against_healthiest=False))
    # against the healthy grade only B, which raises Modic 2 itself, is evidence
    contrast = integrated_gradients_map(model, x, 2)
    assert not in_a(contrast) and contrast[CompetitorNet.A].max() < 0.05
    assert np.array_equal(saliency_map("ig", CompetitorNet(), x, "modic", 2), contrast)  # what a run draws


def test_auto_is_ig_for_signal_heads_and_smoothgrad_for_the_rest():
    from SpineGradeLogic.saliency import concrete_methods, resolve_method

    assert [resolve_method("auto", h) for h in ("modic", "upper_endplate_defect", "pfirrmann")] == ["ig"] * 3
    shape_heads = ("disc_herniation", "spondylolisthesis", "central_canal_stenosis")
    assert [resolve_method("auto", h) for h in shape_heads] == ["smoothgrad"] * 3
    assert resolve_method("gradcam", "modic") == "gradcam"
    assert concrete_methods(["auto", "ig", "gradcam"], "modic") == ["ig", "gradcam"]  # auto is ig here: once
    assert concrete_methods(["auto", "ig"], "disc_herniation") == ["smoothgrad", "ig"]


def test_smoothgrad_is_repeatable_and_leaves_the_global_random_state_alone():
    _, centre = _volume_with_blob()
    vol, _ = _volume_with_blob(centre + np.array([0.0, -6.0, 5.0]))
    crop = extract_crop(vol, _location(centre))
    x = torch.as_tensor(crop.image.array / crop.image.array.max(), dtype=torch.float32)[None, None]
    net = BrightnessNet()  # its initialisation draws random numbers too
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = saliency_map("smoothgrad", net, x, "disc_herniation", 1)
    after = torch.rand(1)
    b = saliency_map("smoothgrad", net, x, "disc_herniation", 1)
    assert np.array_equal(a, b)
    assert torch.equal(before, after)


class MaskSpy(BrightnessNet):
    """BrightnessNet on the sagittal channel of a 3-channel input; remembers the presence masks it saw."""

    def __init__(self):
        super().__init__()
        self.masks = []

    def forward(self, x):
        self.masks.append(x[:, 2].detach().clone())
        return super().forward(x[:, :1])


@pytest.mark.parametrize("method", ["smoothgrad", "ig"])
def test_attributions_leave_the_axial_presence_mask_as_it_is(method):
    _, centre = _volume_with_blob()
    vol, _ = _volume_with_blob(centre + np.array([0.0, -6.0, 5.0]))
    crop = extract_crop(vol, _location(centre))
    sag = torch.as_tensor(crop.image.array / crop.image.array.max(), dtype=torch.float32)[None, None]
    mask = torch.zeros_like(sag)
    mask[..., :40, :] = 1.0
    x = torch.cat([sag, torch.zeros_like(sag), mask], 1)
    net = MaskSpy()
    m = saliency_map(method, net, x, "disc_herniation", 1)
    assert m.shape == CROP_SHAPE and m.max() == pytest.approx(1.0)
    seen = torch.cat(net.masks)
    assert len(seen) >= 8 and torch.equal(torch.unique(seen), torch.tensor([0.0, 1.0]))
    assert all(torch.equal(s, mask[0, 0]) for s in seen)


def test_heads_for_level_modes():
    probs = {h: np.array([0.9] + [0.1 / (len(v) - 1)] * (len(v) - 1)) for h, v in
             __import__("SpineGradeLogic.names", fromlist=["HEADS"]).HEADS.items()}
    probs["spondylolisthesis"] = np.array([0.2, 0.8])
    assert heads_for_level(probs, "default") == ["spondylolisthesis"]
    assert heads_for_level(probs, "all", ["modic", "pfirrmann"]) == ["modic", "pfirrmann"]
    assert heads_for_level(probs, "none") == []


# --- the stages ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    from SpineGradeLogic.grading.bundle_card import grading_metadata
    from SpineGradeLogic.models.bundle import save_bundle

    torch.manual_seed(0)
    kwargs = dict(in_channels=1, channels=[4, 4, 8, 8], dropout=0.0)
    net = GradingNet(**kwargs)
    path = tmp_path_factory.mktemp("bundles") / "spinegrade_grading"
    meta = grading_metadata("0.0.1", "test", {h: 1.5 for h in HEAD_NAMES}, {})
    save_bundle(path, net, kwargs, meta, "# tiny untrained test bundle", network_class_name="SpineGradeLogic.grading.network.GradingNet")
    return path


def _context(tmp_path, bundle, locations, vol, **options):
    from SpineGradeLogic.io.study import LoadedStudy
    from SpineGradeLogic.pipeline.context import RunOptions, StudyContext
    from SpineGradeLogic.results.model import InputInfo, StudyResult

    info = InputInfo("test.nii.gz", vol.shape, vol.spacing)
    opts = RunOptions(bundles={"spinegrade_grading": bundle} if bundle else {}, **options)
    ctx = StudyContext(source="test.nii.gz", out_dir=tmp_path / "out", options=opts)
    ctx.study = LoadedStudy(vol, info)
    ctx.result = StudyResult(info)
    ctx.result.discs = [loc.to_disc() for loc in locations]
    ctx.artifacts["disc_locations"] = locations
    return ctx


def test_stages_grade_and_write_saliency_with_edge_crops(tmp_path, tiny_bundle, monkeypatch):
    from SpineGradeLogic.pipeline.grading_stage import GradingStage, SaliencyStage
    from SpineGradeLogic.pipeline.stages import WriteStage
    from SpineGradeLogic.results.folder import read_result_folder
    from SpineGradeLogic.results.validate import validate_result_dict

    monkeypatch.delenv("SPINEGRADE_GRADING_BUNDLE", raising=False)
    vol, centre = _volume_with_blob()
    extent_s = vol.shape[1] * vol.spacing[1] / 2  # j runs superior -> inferior
    inside = _location(centre, "L3/L4")
    partly = _location(centre + np.array([0, 0, extent_s - 20.0]), "L2/L3")  # some of the crop above the image
    outside = _location(centre + np.array([0, 0, extent_s + 5.0]), "L1/L2")  # most of it above
    fractions = {l.level: extract_crop(vol, l).outside_fraction for l in (inside, partly, outside)}
    assert fractions["L3/L4"] == 0 and 0.1 < fractions["L2/L3"] <= 0.3 and fractions["L1/L2"] > 0.3
    ctx = _context(tmp_path, tiny_bundle, [outside, partly, inside], vol)
    GradingStage().run(ctx)
    SaliencyStage().run(ctx)
    d = {x.level: x for x in ctx.result.discs}
    assert not d["L1/L2"].grades  # skipped...
    assert any("L1/L2 not graded" in w for w in ctx.result.warnings)  # ...with a warning
    assert set(d["L2/L3"].grades) == set(HEAD_NAMES)  # graded...
    assert any("L2/L3 graded although" in w for w in ctx.result.warnings)  # ...with a warning
    for level in ("L2/L3", "L3/L4"):
        for g in d[level].grades.values():
            assert sum(g.probabilities) == pytest.approx(1.0)
        assert len(d[level].saliency) == 1  # default: one map per level
        (head, path), = d[level].saliency.items()
        assert path in ctx.heatmaps and ctx.heatmaps[path].same_geometry(vol)
        # the default method is auto: the file names the method that made it
        signal = head in ("modic", "upper_endplate_defect", "lower_endplate_defect", "pfirrmann")
        assert path.endswith("_ig.nii.gz" if signal else "_smoothgrad.nii.gz"), path
    assert ctx.result.models and ctx.result.models[0].name == "spinegrade_grading"
    WriteStage().run(ctx)
    folder = read_result_folder(ctx.out_dir)
    validate_result_dict(folder.result.to_dict())
    for disc in folder.result.discs:
        for path in disc.saliency.values():
            assert folder.volume(path).same_geometry(vol)


@pytest.mark.parametrize("methods, expected", [
    (["gradcam", "ig"], {"modic": "gradcam", "disc_herniation": "gradcam", "modic:ig": "ig", "disc_herniation:ig": "ig"}),
    # auto is ig for Modic: made once; the files name the concrete method
    (["auto", "ig"], {"modic": "ig", "disc_herniation": "smoothgrad", "disc_herniation:ig": "ig"}),
])
def test_all_heads_and_two_methods(tmp_path, tiny_bundle, methods, expected):
    from SpineGradeLogic.pipeline.grading_stage import GradingStage, SaliencyStage

    vol, centre = _volume_with_blob()
    ctx = _context(tmp_path, tiny_bundle, [_location(centre)], vol, saliency="all",
                   saliency_methods=methods, heads=["modic", "disc_herniation"])
    GradingStage().run(ctx)
    SaliencyStage().run(ctx)
    disc = ctx.result.discs[0]
    assert set(disc.grades) == {"modic", "disc_herniation"}
    assert set(disc.saliency) == set(expected)
    for key, method in expected.items():
        assert disc.saliency[key].endswith(f"_{method}.nii.gz"), (key, disc.saliency[key])
    assert len(ctx.heatmaps) == len(expected)


@pytest.fixture(scope="module")
def counted_bundle(tmp_path_factory):
    """The tiny bundle with held-out grade counts in which every abnormal grade is rare."""
    from SpineGradeLogic.grading.bundle_card import grading_metadata
    from SpineGradeLogic.models.bundle import save_bundle
    from SpineGradeLogic.names import HEADS

    torch.manual_seed(0)
    kwargs = dict(in_channels=1, channels=[4, 4, 8, 8], dropout=0.0)
    path = tmp_path_factory.mktemp("bundles") / "spinegrade_grading"
    record = {"held_out": {"calibrated": {"heads": {h: {"support": [1000] + [10] * (len(v) - 1)}
                                                      for h, v in HEADS.items()}}}}
    meta = grading_metadata("0.0.1", "test", {h: 1.5 for h in HEAD_NAMES}, record)
    assert meta["spinegrade"]["grade_counts"]["modic"] == [1000, 10, 10, 10]
    save_bundle(path, GradingNet(**kwargs), kwargs, meta, "# tiny untrained test bundle",
                network_class_name="SpineGradeLogic.grading.network.GradingNet")
    return path


def test_sensitivity_chooses_the_grade_shown_and_the_evidence_explains_it(tmp_path, counted_bundle):
    from SpineGradeLogic.grading.decision import decide, decision_weights
    from SpineGradeLogic.grading.heads import NORMAL_CLASSES
    from SpineGradeLogic.grading.infer import Grader
    from SpineGradeLogic.names import HEADS
    from SpineGradeLogic.pipeline.grading_stage import GradingStage, SaliencyStage

    vol, centre = _volume_with_blob()
    priors = Grader.load(counted_bundle).priors
    shown, probs = {}, {}
    for s in (0.0, 1.0):
        ctx = _context(tmp_path / str(s), counted_bundle, [_location(centre)], vol, saliency="all",
                       saliency_methods=["gradcam"], sensitivity=s)
        GradingStage().run(ctx)
        SaliencyStage().run(ctx)
        assert ctx.result.extra["grading"] == {"sensitivity": s} and not ctx.result.warnings
        disc = ctx.result.discs[0]
        weights = decision_weights(priors, s)
        for h, g in disc.grades.items():
            assert HEADS[h].index(g.grade) == decide(np.array(g.probabilities), weights[h])
            if g.grade not in NORMAL_CLASSES[h]:  # an abnormal grade shown is the grade its map explains
                assert disc.extra["saliency_class"][h] == g.grade
        shown[s] = {h: g.grade for h, g in disc.grades.items()}
        probs[s] = {h: g.probabilities for h, g in disc.grades.items()}
    assert shown[0.0] != shown[1.0]  # the abnormal grades are 100 times rarer: some head changes its call
    assert all(shown[1.0][h] >= shown[0.0][h] or h == "modic" for h in shown[0.0])  # towards the rare grades
    assert probs[0.0] == probs[1.0]  # the probabilities do not depend on the operating point


def test_sensitivity_with_a_bundle_without_grade_counts_warns_and_shows_the_most_probable(tmp_path, tiny_bundle):
    from SpineGradeLogic.pipeline.grading_stage import GradingStage

    vol, centre = _volume_with_blob()
    ctx = _context(tmp_path, tiny_bundle, [_location(centre)], vol, saliency="none", sensitivity=0.7)
    GradingStage().run(ctx)
    assert any("no held-out grade shares" in w and "sensitivity 0.7" in w for w in ctx.result.warnings)
    for g in ctx.result.discs[0].grades.values():
        assert g.grade == g.classes[int(np.argmax(g.probabilities))]


def test_without_a_bundle_the_stages_only_warn(tmp_path, monkeypatch):
    from SpineGradeLogic.pipeline.grading_stage import GradingStage, SaliencyStage

    monkeypatch.setenv("SPINEGRADE_MODELS", str(tmp_path / "no-models"))
    monkeypatch.delenv("SPINEGRADE_GRADING_BUNDLE", raising=False)
    vol, centre = _volume_with_blob()
    ctx = _context(tmp_path, None, [_location(centre)], vol)
    GradingStage().run(ctx)
    SaliencyStage().run(ctx)
    assert ctx.result.warnings == [
        "disc grading: no model is installed (bundle 'spinegrade_grading'); this stage was skipped",
        "saliency maps: no model is installed (bundle 'spinegrade_grading'); this stage was skipped",
    ]
    assert not ctx.result.discs[0].grades and not ctx.heatmaps


def test_pfirrmann_on_a_t1_series_comes_with_a_warning(tmp_path, tiny_bundle):
    from SpineGradeLogic.pipeline.grading_stage import GradingStage

    vol, centre = _volume_with_blob()
    for sequence, warned in (("T1", True), ("T2", False)):
        ctx = _context(tmp_path / sequence, tiny_bundle, [_location(centre)], vol, saliency="none")
        ctx.result.input.sequence = sequence
        GradingStage().run(ctx)
        assert "pfirrmann" in ctx.result.discs[0].grades
        assert any("Pfirrmann grades are defined on T2" in w for w in ctx.result.warnings) == warned


def test_backward_batches_change_the_speed_not_the_map(monkeypatch):
    # IG's path points and SmoothGrad's noisy copies go through the network a few at a time
    # (IG_BATCH, SMOOTHGRAD_BATCH); one pass over all of them must give the same map
    from SpineGradeLogic.saliency import maps

    torch.manual_seed(0)
    net = GradingNet(in_channels=3, channels=(4, 8, 8, 8)).eval()
    x = torch.rand(1, 3, *CROP_SHAPE)
    x[:, 2] = 1.0  # the axial presence mask
    model = maps.HeadLogProb(net, "modic")
    small = maps.integrated_gradients_map(model, x, 1), maps.smoothgrad_map(model, x, 1)
    monkeypatch.setattr(maps, "IG_BATCH", maps.IG_STEPS)
    monkeypatch.setattr(maps, "SMOOTHGRAD_BATCH", maps.SMOOTHGRAD_SAMPLES)
    whole = maps.integrated_gradients_map(model, x, 1), maps.smoothgrad_map(model, x, 1)
    assert maps.IG_BATCH > 2 and small[0].max() > 0 and small[1].max() > 0
    for a, b in zip(small, whole):
        np.testing.assert_allclose(a, b, atol=1e-4)
