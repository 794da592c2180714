"""Vertebral-body outlines redrawn on the input's sagittal slices (`vertebrae.outline*`).

Geometry: the sagittal frame of a grid whatever its axis order, patches that look the same however
the array is stored, and a patch answer that goes back onto the pixels it came from. Redrawing:
fake networks (an answer computed from the patch's mask channel) show what may change and what may
not. Training data and loop on tiny synthetic volumes, and the pipeline's wiring (bundle lookup,
`input_segmentation` with an outline network).

The synthetic scenes are built in a *canonical* array (axes: left-right, anterior -> posterior,
inferior -> superior, i.e. LPS x, y, z) and stored with their axes permuted and flipped, so a result
can be brought back to the canonical array and compared across storage orders.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from SpineGradeLogic.errors import ModelError
from SpineGradeLogic.io.volume import Volume
from SpineGradeLogic.names import DISC_OFFSET, POSTERIOR_OFFSET, SPINAL_CANAL, SPINAL_CORD, VERTEBRA_LABELS
from SpineGradeLogic.vertebrae.outline import PATCH, body_slices, sagittal_frame
from SpineGradeLogic.vertebrae.outline_data import OutlineCase, make_batch, make_case, match_bodies, samples_of
from SpineGradeLogic.vertebrae.outline_model import body_patch, paste_answers, redraw_bodies

T12, L1, L2, L3, L4, L5, S1 = (VERTEBRA_LABELS[n] for n in ("T12", "L1", "L2", "L3", "L4", "L5", "S1"))
DISC = DISC_OFFSET + L4
SPACING = (2.0, 0.7, 0.9)  # canonical: across the slices, A-P, S-I (mm)
SHAPE = (8, 60, 80)  # 16 x 42 x 72 mm
# (axis order, flips): array axis j holds canonical axis order[j], reversed where flips[j]
IDENTITY = ((0, 1, 2), (False, False, False))
STORAGES = [
    IDENTITY,
    ((2, 0, 1), (True, False, True)),  # axis 0 = S-I downwards, axis 1 = left-right, axis 2 = A-P forwards
    ((1, 2, 0), (False, True, True)),  # axis 0 = A-P, axis 1 = left-right reversed, axis 2 = S-I downwards
    ((0, 2, 1), (True, True, True)),  # axis 1 = S-I before axis 2 = A-P: in-plane axes swapped, all reversed
]


# --- helpers ------------------------------------------------------------------------------------
def _stored(canonical, spacing=SPACING, storage=IDENTITY, dtype=None):
    """``canonical`` stored with its axes permuted and flipped; the Volume's direction says how."""
    order, flips = storage
    a = np.transpose(canonical, order)
    d = np.zeros((3, 3))
    for j, (o, f) in enumerate(zip(order, flips)):
        if f:
            a = np.flip(a, j)
        d[o, j] = -1.0 if f else 1.0
    a = np.ascontiguousarray(a, dtype=dtype or canonical.dtype)
    return Volume(a, tuple(spacing[o] for o in order), (0.0, 0.0, 0.0), d)


def _canonical(array, storage=IDENTITY):
    order, flips = storage
    a = np.asarray(array)
    for j, f in enumerate(flips):
        if f:
            a = np.flip(a, j)
    return np.transpose(a, np.argsort(order))


def _mm(shape=SHAPE, spacing=SPACING):
    """In-plane millimetre coordinates (A-P posterior, S-I superior) of the canonical grid."""
    return np.meshgrid(np.arange(shape[1]) * spacing[1], np.arange(shape[2]) * spacing[2], indexing="ij")


def _ellipse(ap=20.0, si=36.0, r_ap=12.0, r_si=9.0, shape=SHAPE, spacing=SPACING):
    u, v = _mm(shape, spacing)
    return ((u - ap) / r_ap) ** 2 + ((v - si) / r_si) ** 2 <= 1.0


def _scene(with_neighbours=True):
    """L4 on slices 2-5 (an ellipse 24 x 18 mm), and below/behind it a disc, the sacrum, canal and cord."""
    c = np.zeros(SHAPE, np.uint8)
    u, v = _mm()
    body = _ellipse()
    if with_neighbours:
        under = np.abs(u - 20.0) < 10.0
        c[:, under & (v >= 23.0) & (v < 26.5)] = DISC
        c[:, under & (v >= 15.0) & (v < 23.0)] = S1
        tube = (u >= 33.0) & (u < 38.0) & (v >= 24.0) & (v < 48.0)
        c[:, tube] = SPINAL_CANAL
        c[:, tube & (u >= 34.5) & (u < 36.5)] = SPINAL_CORD
    c[2:6][:, body] = L4
    return c


def _image(labels):
    """An image the bodies stand out in (bright body, mid-grey rest, a little texture)."""
    rng = np.random.default_rng(7)
    img = np.where(np.isin(labels, (L4, L5, L3)), 400.0, 150.0) + rng.normal(0, 10, labels.shape)
    return img.astype(np.float32)


class Answer(torch.nn.Module):
    """A fake outline network: logit +10 where ``fn(mask channel)`` > 0.5, -10 elsewhere."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return torch.where(self.fn(x[:, 1:2]) > 0.5, 10.0, -10.0)


def grow(r):
    return Answer(lambda m: F.max_pool2d(m, 2 * r + 1, stride=1, padding=r))


def shrink(r):
    return Answer(lambda m: -F.max_pool2d(-m, 2 * r + 1, stride=1, padding=r))


def shift(rows, cols):
    """The mask moved ``rows`` patch pixels posterior and ``cols`` superior (1 mm each)."""
    def fn(m):
        out = torch.zeros_like(m)
        out[..., rows:, cols:] = m[..., :PATCH - rows, :PATCH - cols]
        return out
    return Answer(fn)


NOTHING = Answer(lambda m: torch.zeros_like(m))


def _redraw(canonical_labels, network, storage=IDENTITY):
    """Redraw a canonical scene stored as ``storage``; the result back on the canonical array."""
    seg = _stored(canonical_labels, storage=storage)
    img = _stored(_image(canonical_labels), storage=storage)
    return _canonical(np.asarray(redraw_bodies(seg, img, network).array), storage)


def _dice(a, b):
    return 2.0 * (a & b).sum() / max(a.sum() + b.sum(), 1)


# --- 1. the sagittal frame ------------------------------------------------------------------------
def test_sagittal_frame_of_the_identity_grid():
    """LPS identity: axis 0 runs right -> left, axis 1 anterior -> posterior, axis 2 up."""
    f = sagittal_frame(_stored(np.zeros(SHAPE, np.uint8)))
    assert (f.lr, f.ap, f.si, f.ap_sign, f.si_sign) == (0, 1, 2, 1.0, 1.0)
    assert (f.ap_mm, f.si_mm) == (0.7, 0.9)


@pytest.mark.parametrize("storage, expected", [
    # left-right on axis 2; axis 0 runs posterior -> anterior, axis 1 superior -> inferior
    (((1, 2, 0), (True, True, False)), (2, 0, 1, -1.0, -1.0, 0.7, 0.9)),
    # axis 0 = left-right, axis 1 = superior -> inferior, axis 2 = anterior -> posterior
    (((0, 2, 1), (False, True, False)), (0, 2, 1, 1.0, -1.0, 0.7, 0.9)),
    # axis 0 = inferior -> superior, axis 1 = left -> right, axis 2 = posterior -> anterior
    (((2, 0, 1), (False, True, True)), (1, 2, 0, -1.0, 1.0, 0.7, 0.9)),
])
def test_sagittal_frame_follows_permuted_and_flipped_axes(storage, expected):
    """Which axis is left-right, which in-plane axis is A-P and S-I, and the signs that make them
    point posterior and superior, follow the direction matrix; the spacings follow their axes."""
    f = sagittal_frame(_stored(np.zeros(SHAPE, np.uint8), storage=storage))
    assert (f.lr, f.ap, f.si, f.ap_sign, f.si_sign, f.ap_mm, f.si_mm) == expected


def _about_si(deg):
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_grids_too_oblique_to_left_right_have_no_sagittal_frame():
    """45 and 30 degrees about the S-I axis: no array axis is within 25 degrees of left-right."""
    zeros = np.zeros(SHAPE, np.uint8)
    for deg in (45.0, 30.0, -45.0):
        assert sagittal_frame(Volume(zeros, SPACING, (0, 0, 0), _about_si(deg))) is None
    f = sagittal_frame(Volume(zeros, SPACING, (0, 0, 0), _about_si(20.0)))  # 20 degrees: still sagittal
    assert f is not None and (f.lr, f.ap, f.si) == (0, 1, 2)
    # tilted within the sagittal plane (about left-right) the slices stay sagittal
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    tilt = np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])
    f = sagittal_frame(Volume(zeros, SPACING, (0, 0, 0), tilt))
    assert f is not None and (f.lr, f.ap, f.si, f.ap_sign, f.si_sign) == (0, 1, 2, 1.0, 1.0)


# --- 2. patches and pasting -----------------------------------------------------------------------
def _patches(canonical_labels, storage, canonical_image=None):
    """Every L4 patch of a canonical scene stored as ``storage``: (labels, frame, where, patches)."""
    seg = _stored(canonical_labels, storage=storage)
    lab = np.asarray(seg.array)
    image = _image(canonical_labels) if canonical_image is None else canonical_image
    img = np.asarray(_stored(image, storage=storage).array)
    frame = sagittal_frame(seg)
    where, xs = [], []
    for index, centre in body_slices(lab == L4, frame):
        x, _ = body_patch(img, lab, L4, frame, index, centre)
        where.append((L4, index, centre))
        xs.append(x)
    return lab, frame, where, np.stack(xs)


def test_a_patch_shows_the_spine_the_same_way_up_however_the_array_is_stored():
    """Rows run anterior -> posterior and columns inferior -> superior at 1 mm: the same body gives the
    same patch (image and mask) for every axis order and flip, and a bright marker anterior and
    inferior of the body lands at low rows and low columns."""
    c = _scene(with_neighbours=False)
    image = _image(c)
    image[2:6, 10:14, 20:24] = 1000.0  # ap 7-9 mm, si 18-21 mm: 11-13 mm anterior, 15-18 mm inferior of the centre
    ref = None
    for order, flips in STORAGES:
        lab, frame, where, xs = _patches(c, (order, flips), image)
        lr_flipped = flips[order.index(0)]
        slices = [SHAPE[0] - 1 - w[1] if lr_flipped else w[1] for w in where]
        assert sorted(slices) == [2, 3, 4, 5]
        xs = xs[::-1] if lr_flipped else xs  # slices in canonical order
        if ref is None:
            ref = xs
        else:
            np.testing.assert_allclose(xs, ref, atol=1e-4)
    mask = ref[0, 1] > 0.5
    rows, cols = np.nonzero(mask)
    # the body's centroid is the patch centre; it is 24 mm long along the rows, 18 mm along the columns
    assert abs(rows.mean() - (PATCH - 1) / 2) < 1.0 and abs(cols.mean() - (PATCH - 1) / 2) < 1.0
    assert 22 <= np.ptp(rows) + 1 <= 26 and 16 <= np.ptp(cols) + 1 <= 20
    mrows, mcols = np.nonzero(ref[0, 0] > 1.2)
    assert len(mrows) > 0
    assert mrows.mean() == pytest.approx(31.5 - 12.0, abs=1.5) and mcols.mean() == pytest.approx(31.5 - 16.5, abs=1.5)


def test_patch_image_channel_is_scaled_and_zero_outside_the_scan():
    """The image channel spans about 0-1 inside the scan (percentiles) and is 0 beyond its edges: the
    body centre is 20 mm behind the field's anterior edge and 21 mm in front of its posterior edge, so
    rows 0-10 and 53-63 of the 64 mm patch lie outside it (the 72 mm of S-I all lie inside)."""
    _, _, _, xs = _patches(_scene(with_neighbours=False), IDENTITY)
    img = xs[0, 0]
    assert img.min() >= -0.5 and img.max() <= 1.5
    assert np.all(img[:11] == 0.0) and np.all(img[54:] == 0.0) and np.all(img[12:52] != 0.0)
    body, grey = img[28:36, 28:36].mean(), img[45:52, :10].mean()
    assert body > 0.8 and 0.0 < grey < body - 0.4  # the bright body, the mid-grey surroundings


@pytest.mark.parametrize("storage", STORAGES)
def test_pasting_the_patch_mask_back_gives_the_labels_again(storage):
    """Anisotropic in-plane spacing (0.7 x 0.9 mm) and any axis order: the patch's own mask channel
    taken as the answer and pasted back reproduces the body; nothing else changes. The body has a
    bump at its anterior-superior corner, so a patch mirrored on the way back would not fit it."""
    c = _scene()
    u, v = _mm()
    c[2:6][:, (u >= 9.0) & (u < 14.0) & (v >= 40.0) & (v < 47.0)] = L4
    lab, frame, where, xs = _patches(c, storage)
    out = paste_answers(lab, frame, where, xs[:, 1])
    assert _dice(out == L4, lab == L4) > 0.98
    assert ((out != lab) & (lab != L4)).sum() < 0.02 * (lab == L4).sum()
    for value in (S1, SPINAL_CANAL, SPINAL_CORD):
        assert np.array_equal(out == value, lab == value)
    assert out is not lab and np.array_equal(lab, _stored(c, storage=storage).array)  # the input is not written


# --- 3. redrawing with a fake network -------------------------------------------------------------
def test_a_body_grows_into_background_and_disc_but_never_into_sacrum_canal_or_cord():
    c = _scene()
    out = _redraw(c, grow(5))
    changed = out != c
    assert changed.any()
    assert np.all(out[changed] == L4)  # every change is a pixel the body took
    assert set(np.unique(c[changed]).tolist()) == {0, DISC}  # from background and from the disc
    for value in (S1, SPINAL_CANAL, SPINAL_CORD):
        assert np.array_equal(out == value, c == value), value
    # the disc right under the body's centre is taken: the answer reaches 5 mm below its outline
    u, v = _mm()
    under_centre = (np.abs(u - 20.0) < 3.0) & (v >= 23.5) & (v < 26.5)
    assert np.all(out[2:6][:, under_centre] == L4)
    # only the slices where the body is are redrawn
    assert np.array_equal(out[[0, 1, 6, 7]], c[[0, 1, 6, 7]])


def test_body_pixels_the_answer_does_not_claim_become_background():
    c = _scene()
    out = _redraw(c, shrink(3))
    changed = out != c
    assert changed.any() and np.all(c[changed] == L4) and np.all(out[changed] == 0)
    inner = _ellipse(r_ap=7.0, r_si=4.0)
    assert np.all(out[2:6][:, inner] == L4)  # the inside stays
    gone = _redraw(c, NOTHING)
    assert not np.any(gone == L4)
    assert np.array_equal(gone[c != L4], c[c != L4])


def test_posterior_elements_may_be_taken():
    """Posterior elements are among what a redrawn outline may take (like background and discs)."""
    c = _scene(with_neighbours=False)
    u, v = _mm()
    c[:, (u >= 32.5) & (u < 36.0) & (v >= 30.0) & (v < 42.0)] = POSTERIOR_OFFSET + L4
    out = _redraw(c, grow(5))
    assert np.any((c == POSTERIOR_OFFSET + L4) & (out == L4))


@pytest.mark.parametrize("storage", STORAGES)
def test_a_shifted_answer_moves_the_body_posterior_and_superior(storage):
    """An answer 5 mm posterior and 4 mm superior of the input mask moves the body there in the
    patient, whatever the array's axis order: patch orientation and paste agree with the anatomy."""
    c = _scene(with_neighbours=False)
    out = _redraw(c, shift(5, 4), storage)
    before, after = np.argwhere(c == L4), np.argwhere(out == L4)
    assert len(after) == pytest.approx(len(before), rel=0.05)
    moved_mm = (after.mean(0) - before.mean(0))[1:] * np.asarray(SPACING[1:])
    np.testing.assert_allclose(moved_mm, [5.0, 4.0], atol=0.5)
    np.testing.assert_array_equal(out, _redraw(c, shift(5, 4), IDENTITY))  # identical in the patient


def test_nothing_to_redraw_returns_the_same_volume():
    """No body (only sacrum, canal, cord), or a grid with no sagittal slices: the very same Volume."""
    c = _scene()
    no_body = np.where(c == L4, 0, c).astype(np.uint8)
    seg = _stored(no_body)
    assert redraw_bodies(seg, _stored(_image(no_body)), grow(5)) is seg
    oblique = Volume(c, SPACING, (0, 0, 0), _about_si(45.0))
    img = Volume(_image(c), SPACING, (0, 0, 0), _about_si(45.0))
    assert redraw_bodies(oblique, img, grow(5)) is oblique


def test_image_and_labels_on_different_grids_are_refused():
    c = _scene()
    seg = _stored(c)
    for img in (Volume(_image(c), (2.0, 0.7, 1.0), (0, 0, 0), np.eye(3)),
                Volume(_image(c), SPACING, (1.0, 0, 0), np.eye(3)),
                Volume(_image(c)[:, :, :-1], SPACING, (0, 0, 0), np.eye(3))):
        with pytest.raises(ValueError, match="share one grid"):
            redraw_bodies(seg, img, grow(5))


def test_where_two_bodies_claim_a_pixel_the_higher_answer_wins():
    """L4 over L5 with a 6 mm disc between: a soft answer (the share of mask within 5 mm, claimed above
    a tenth) lets both bodies claim the middle of the disc; each of its pixels goes to the body whose
    answer there is higher, i.e. the nearer one, and both bodies keep all their own pixels."""
    c = np.zeros(SHAPE, np.uint8)
    c[2:6][:, _ellipse(si=52.0, r_si=8.0)] = L4  # 44-60 mm
    c[2:6][:, _ellipse(si=30.0, r_si=8.0)] = L5  # 22-38 mm
    u, v = _mm()
    gap = (np.abs(u - 20.0) < 10.0) & (v > 38.0) & (v < 44.0)
    c[(c == 0) & gap[None]] = DISC

    class Soft(torch.nn.Module):
        def forward(self, x):
            return 20.0 * (F.avg_pool2d(x[:, 1:2], 11, stride=1, padding=5, count_include_pad=True) - 0.1)

    out = _redraw(c, Soft())
    assert np.all(out[c == L4] == L4) and np.all(out[c == L5] == L5)
    centre = (np.abs(u - 20.0) < 3.0)[None] & np.isin(np.arange(SHAPE[0]), [2, 3, 4, 5])[:, None, None]
    near_l5 = centre & (c == DISC) & (v[None] > 39.0) & (v[None] < 40.5)
    near_l4 = centre & (c == DISC) & (v[None] > 41.5) & (v[None] < 43.0)
    assert near_l5.any() and near_l4.any()
    assert np.all(out[near_l5] == L5) and np.all(out[near_l4] == L4)


# --- 4. training data: pairing the pipeline's bodies with the reference ---------------------------
def test_match_bodies_pairs_by_overlap_and_leaves_out_what_the_reference_does_not_label():
    """Pairs go by overlap, not by name; a body on what the reference leaves unlabelled (T12 above an
    L1-L5 reference), on a structure that is not among the reference's bodies (the canal) or with less
    than 30 % of it in one reference body is left out."""
    shape = (4, 30, 70)
    truth = np.zeros(shape, np.uint8)
    labels = np.zeros(shape, np.uint8)
    truth[:, 5:20, 40:50] = L1
    truth[:, 5:20, 25:35] = L2
    truth[:, 5:20, 10:20] = L3
    truth[:, 22:26, :] = SPINAL_CANAL
    values = [L1, L2, L3, L4, L5]
    labels[:, 5:20, 55:65] = T12  # above everything the reference labels
    labels[:, 5:20, 42:52] = L1  # shifted 2 voxels: 80 % inside the reference L1
    labels[:, 5:20, 25:35] = L3  # misnamed: lies on the reference L2
    labels[:, 22:26, 10:60] = L4  # on the canal only
    labels[:, 5:20, 19:25] = L5  # one column of six on L3, the rest on nothing: 17 %
    assert match_bodies(labels, truth, values) == [(L1, L1), (L3, L2)]
    labels[:, 5:20, 19:25] = 0
    labels[:, 5:20, 18:28] = L5  # 2 columns on L3, 5 on nothing, 3 on L2 (30 %, the threshold): L2
    assert match_bodies(labels, truth, values) == [(L1, L1), (L3, L2), (L5, L2)]
    # the reference's canal counts once it is among the values the reference is trusted for
    assert (L4, SPINAL_CANAL) in match_bodies(labels, truth, values + [SPINAL_CANAL])


def test_make_case_needs_a_sagittal_grid_and_a_matching_body():
    c = _scene(with_neighbours=False)
    img = _stored(_image(c))
    case = make_case("a", img, c, c, [L4])
    assert isinstance(case, OutlineCase) and case.pairs == [(L4, L4)] and case.frame.lr == 0
    assert make_case("b", img, c, np.zeros_like(c), [L4]) is None  # the reference labels nothing there
    oblique = Volume(_image(c), SPACING, (0, 0, 0), _about_si(45.0))
    assert make_case("c", oblique, c, c, [L4]) is None


# --- 5. batches ------------------------------------------------------------------------------------
def _case(name="a", storage=IDENTITY, offset_mm=0.0):
    """A case whose pipeline body sits ``offset_mm`` anterior of the reference body."""
    truth = _scene(with_neighbours=False)
    labels = np.zeros_like(truth)
    labels[2:6][:, _ellipse(ap=20.0 - offset_mm)] = L4
    img = _stored(_image(truth), storage=storage)
    return make_case(name, img, np.asarray(_stored(labels, storage=storage).array),
                     np.asarray(_stored(truth, storage=storage).array), [L4])


def test_make_batch_shapes_targets_and_augmentation():
    cases = [_case("a"), _case("b", STORAGES[2], offset_mm=2.0)]
    samples = samples_of(cases)
    assert len(samples) == 8 and {s[0] for s in samples} == {0, 1} and all(s[1:3] == (L4, L4) for s in samples)
    xs, ys = make_batch(cases, samples, range(8))
    assert xs.shape == (8, 2, PATCH, PATCH) and ys.shape == (8, 1, PATCH, PATCH)
    assert xs.dtype == np.float32 and ys.dtype == np.float32
    assert ys.min() >= 0.0 and ys.max() <= 1.0 and ys.max() == 1.0
    # case a: labels are the reference, so without augmentation the input mask is the target
    np.testing.assert_array_equal(xs[:4, 1], ys[:4, 0])
    # case b: the pipeline body is 2 mm anterior of the reference: the target's rows lie further down
    rows = lambda m: np.nonzero(m > 0.5)[0].mean()
    assert rows(ys[4, 0]) - rows(xs[4, 1]) == pytest.approx(2.0, abs=0.5)
    aug, aug_y = make_batch(cases, samples, range(8), np.random.default_rng(1))
    assert aug.shape == xs.shape and aug_y.shape == ys.shape
    assert not np.allclose(aug, xs) and not np.allclose(aug_y, ys)
    assert aug_y.min() >= 0.0 and aug_y.max() <= 1.0
    again, again_y = make_batch(cases, samples, range(8), np.random.default_rng(1))
    np.testing.assert_array_equal(again, aug)  # the same seed, the same batch
    np.testing.assert_array_equal(again_y, aug_y)


# --- 6. training ------------------------------------------------------------------------------------
def test_a_tiny_training_run_returns_a_network_and_its_validation_history():
    from SpineGradeLogic.vertebrae.outline_train import OutlineTraining, train_outline

    torch.set_num_threads(1)
    train, val = [_case("a", offset_mm=1.5)], [_case("b", STORAGES[1], offset_mm=1.5)]
    seen = []
    out = train_outline(train, val, steps=4, batch=4, every=2, progress=lambda step, rec: seen.append(step))
    assert isinstance(out, OutlineTraining) and isinstance(out.network, torch.nn.Module)
    assert not out.network.training
    assert [r["step"] for r in out.history] == [2, 4] and seen == [2, 4]
    assert all(0.0 <= r["val_dice"] <= 1.0 and np.isfinite(r["loss"]) for r in out.history)
    assert out.n_train_patches == 4 and out.n_val_patches == 4
    assert out.best_dice == max(r["val_dice"] for r in out.history)
    if out.best_dice > 0:
        assert next(r for r in out.history if r["step"] == out.best_step)["val_dice"] == out.best_dice
    y = out.network(torch.zeros(1, 2, PATCH, PATCH))
    assert tuple(y.shape) == (1, 1, PATCH, PATCH)
    # without validation cases the last weights are kept
    last = train_outline(train, [], steps=2, batch=2, every=5)
    assert last.best_step == 2 and ["val_dice" in r for r in last.history] == [False]


def test_training_without_a_matching_body_is_refused():
    from SpineGradeLogic.vertebrae.outline_train import train_outline

    c = _scene(with_neighbours=False)
    unmatched = OutlineCase("x", _image(c), c, np.zeros_like(c), sagittal_frame(_stored(c)), pairs=[])
    for train in ([], [unmatched]):
        with pytest.raises(ValueError, match="no training patches"):
            train_outline(train, [], steps=2, batch=2)


# --- 7. the pipeline's wiring -------------------------------------------------------------------------
def test_input_segmentation_with_an_outline_network_redraws_the_bodies():
    from SpineGradeLogic.pipeline.vertebra_stage import input_segmentation
    from SpineGradeLogic.vertebrae.grid import working_grid_for

    volume = Volume(np.full((10, 50, 60), 100.0, np.float32), (2.0, 0.8, 0.8), (0.0, 0.0, 0.0), np.eye(3))
    grid = working_grid_for(volume)
    at = lambda mm, axis: int(round((mm - grid.origin_lps[axis]) / grid.spacing[axis]))  # working-grid index
    labels = np.zeros(grid.size, np.uint8)
    labels[at(4, 0):at(12, 0), at(10, 1):at(28, 1), at(12, 2):at(30, 2)] = L4
    labels[at(4, 0):at(12, 0), at(10, 1):at(28, 1), at(30, 2):at(34, 2)] = DISC
    found = SimpleNamespace(labels=labels)
    plain = input_segmentation(found, volume)
    redrawn = input_segmentation(found, volume, outline=grow(3))
    assert redrawn.same_geometry(volume)
    p, r = np.asarray(plain.array), np.asarray(redrawn.array)
    assert (r == L4).sum() > (p == L4).sum()
    np.testing.assert_array_equal(r, np.asarray(redraw_bodies(plain, volume, grow(3)).array))


@pytest.fixture
def no_installed_outline(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINEGRADE_MODELS", str(tmp_path / "no-models"))
    monkeypatch.delenv("SPINEGRADE_BODY_OUTLINE_BUNDLE", raising=False)


def test_outline_bundle_by_its_short_name(tmp_path, no_installed_outline):
    from SpineGradeLogic.models.bundle import save_bundle
    from SpineGradeLogic.pipeline import RunOptions
    from SpineGradeLogic.pipeline.vertebra_stage import OUTLINE_BUNDLE, bundle_path, clear_model_cache, load_outline
    from SpineGradeLogic.vertebrae.outline_model import NETWORK_KWARGS, build_network, predict_patches

    assert bundle_path(RunOptions(), OUTLINE_BUNDLE) is None and load_outline(RunOptions()) is None
    torch.manual_seed(0)
    path = save_bundle(tmp_path / OUTLINE_BUNDLE, build_network(), NETWORK_KWARGS, {"version": "0.0.1"})
    for key in ("body_outline", OUTLINE_BUNDLE):
        assert bundle_path(RunOptions(bundles={key: path}), OUTLINE_BUNDLE) == path
    loaded = load_outline(RunOptions(bundles={"body_outline": path}))
    try:
        assert loaded is not None and loaded.name == OUTLINE_BUNDLE
        assert predict_patches(loaded.network, np.zeros((3, 2, PATCH, PATCH), np.float32)).shape == (3, PATCH, PATCH)
    finally:
        clear_model_cache()
    with pytest.raises(ModelError, match="is not a bundle"):
        bundle_path(RunOptions(bundles={"body_outline": tmp_path / "nothing here"}), OUTLINE_BUNDLE)


def _vb3_like_folder(root, name):
    """A scan folder as real-dev holds them (image.nii.gz, vertebrae.nii.gz) with one L4."""
    from SpineGradeLogic.results.folder import write_volume

    truth = _scene(with_neighbours=False)
    truth = np.where(truth == L4, L4, 0).astype(np.uint8)
    (root / name).mkdir(parents=True)
    write_volume(_stored(_image(truth).astype(np.float32)), root / name / "image.nii.gz")
    write_volume(_stored(truth), root / name / "vertebrae.nii.gz")


def test_train_outline_command_writes_a_bundle_that_redraws(tmp_path, monkeypatch, no_installed_outline):
    """`spinegrade train outline`: cases prepared once and cached, the vertebra bundle's held-out scans
    never used, a bundle written that the pipeline loads (weights checked) and that redraws bodies."""
    import json

    from SpineGradeLogic.cli import main
    from SpineGradeLogic.models.bundle import read_metadata, save_bundle
    from SpineGradeLogic.pipeline import RunOptions
    from SpineGradeLogic.pipeline.vertebra_stage import clear_model_cache, load_outline
    from SpineGradeLogic.vertebrae import outline_cases
    from SpineGradeLogic.vertebrae.network import NETWORK_KWARGS as VERTEBRA_KWARGS, build_network as vertebra_network

    real = tmp_path / "real"
    for name in ["s1", "s2", "s3", "held"]:
        _vb3_like_folder(real, name)
    vertebra = save_bundle(tmp_path / "spinegrade_vertebrae", vertebra_network(), VERTEBRA_KWARGS,
                           {"spinegrade": {"training": {"split": {"real_train": ["s1", "s2", "s3"], "real_validation": ["held"]}}}})
    seen = []

    def fake_pipeline(image, model, device="cpu"):  # the vertebra stage's outline: the reference, 2 mm anterior
        seen.append(image.shape)
        truth = np.asarray(image.array) > 275
        return np.where(np.roll(truth, -3, axis=1), L4, 0).astype(np.uint8)

    monkeypatch.setattr(outline_cases, "pipeline_labels", fake_pipeline)
    out = tmp_path / "spinegrade_body_outline"
    argv = ["train", "outline", "--real", str(real), "--cache", str(tmp_path / "cache"), "--out", str(out),
            "--vertebra-bundle", str(vertebra), "--steps", "4", "--every", "2", "--batch-size", "4",
            "--validation-share", "0.34"]
    monkeypatch.setattr("sys.argv", ["spinegrade", *argv])  # the command the bundle records
    try:
        assert main(argv) == 0
        assert len(seen) == 3  # s1-s3, never the held-out scan
        record = read_metadata(out)["spinegrade"]["training"]
        assert "held" not in record["real_train"] + record["real_validation"]
        assert len(record["real_validation"]) == 1 and [h["step"] for h in record["history"]] == [2, 4]
        assert "train outline" in record["command"]
        assert main(argv) == 0 and len(seen) == 3  # the cache is reused
        loaded = load_outline(RunOptions(bundles={"body_outline": out}))
        assert loaded is not None and loaded.sha256 == read_metadata(out)["sha256"]
        card = (out / "docs" / "README.md").read_text()
        assert "Not a medical device" in card and "train outline" in card
    finally:
        clear_model_cache()
    with pytest.raises(SystemExit):
        main(["train", "outline", "--cache", "c", "--out", "o", "--generated-seeds", "5:5"])


def test_shipped_outline_model_redraws_a_held_out_real_scan_closer_to_its_reference(real_dev):
    """On a real scan neither model trained on (the vertebra bundle's held-out vb3-03), the shipped
    outline model brings the L1-L5 bodies closer to the reference outline than the vertebra model's own."""
    from SpineGradeLogic.evaluation.labelling_metrics import dice_per_label
    from SpineGradeLogic.pipeline import RunOptions
    from SpineGradeLogic.pipeline.vertebra_stage import bundle_path, find_vertebrae, input_segmentation, load_model, load_outline
    from SpineGradeLogic.results.folder import read_volume

    folder = real_dev / "vb3-03"
    vertebra, outline = bundle_path(RunOptions()), load_outline(RunOptions())
    if vertebra is None or outline is None or not folder.is_dir():
        pytest.skip("needs the shipped vertebra and outline bundles and real-dev's vb3-03")
    image, truth = read_volume(folder / "image.nii.gz"), np.asarray(read_volume(folder / "vertebrae.nii.gz").array)
    found = find_vertebrae(image, load_model(vertebra))
    plain = np.asarray(input_segmentation(found, image).array)
    redrawn = np.asarray(input_segmentation(found, image, outline.network).array)
    bodies = [20, 21, 22, 23, 24]
    before = np.mean(list(dice_per_label(truth, plain, bodies).values()))
    after = np.mean(list(dice_per_label(truth, redrawn, bodies).values()))
    assert after > before + 0.01, (before, after)
    kept = np.isin(plain, (S1, SPINAL_CANAL, SPINAL_CORD))
    np.testing.assert_array_equal(redrawn[kept], plain[kept])


def test_an_unreadable_cache_file_is_named_in_the_error(tmp_path):
    from SpineGradeLogic.errors import DatasetError
    from SpineGradeLogic.vertebrae.outline_cases import load_cached

    bad = tmp_path / "vb3-99.npz"
    bad.write_bytes(b"not a numpy archive")
    with pytest.raises(DatasetError, match="vb3-99.npz.*delete it"):
        load_cached(bad)


def test_evaluate_vertebrae_names_the_outline_bundle_it_uses(tmp_path, capsys, no_installed_outline):
    """`spinegrade evaluate vertebrae` uses the outline bundle a run would find (or the one named with
    --outline) and says which; --no-outline keeps the vertebra network's own outlines."""
    from SpineGradeLogic.cli import main
    from SpineGradeLogic.models.bundle import save_bundle
    from SpineGradeLogic.pipeline.vertebra_stage import OUTLINE_BUNDLE, clear_model_cache
    from SpineGradeLogic.vertebrae.network import NETWORK_KWARGS as VERTEBRA_KWARGS, build_network as vertebra_network
    from SpineGradeLogic.vertebrae.outline_model import NETWORK_KWARGS, build_network

    vertebra = save_bundle(tmp_path / "spinegrade_vertebrae", vertebra_network(), VERTEBRA_KWARGS)
    outline = save_bundle(tmp_path / OUTLINE_BUNDLE, build_network(), NETWORK_KWARGS)
    base = ["evaluate", "vertebrae", "--bundle", str(vertebra)]
    try:
        assert main(base) == 0
        assert "body outlines: the vertebra network's own" in capsys.readouterr().out
        assert main(base + ["--outline", str(outline)]) == 0
        assert f"body outlines: {outline}" in capsys.readouterr().out
        assert main(base + ["--outline", str(outline), "--no-outline"]) == 0
        assert "body outlines: the vertebra network's own" in capsys.readouterr().out
    finally:
        clear_model_cache()
