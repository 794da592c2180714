"""The vertebra and disc stages: the vertebra network's output turned into named vertebrae, a label
volume in the input's geometry, and disc levels.

``VertebraeStage`` (see docs/vertebrae.md):

1. finds the ``spinegrade_vertebrae`` bundle (``RunOptions.bundles`` > ``$SPINEGRADE_VERTEBRAE_BUNDLE``
   > ``Resources/Models``); without one it says so in the warnings and produces nothing;
2. loads it once per process (cached by folder, weights hash and device);
3. resamples the study onto the model's working grid (axis-aligned sagittal slices, 3 x 1.5 x 1.5 mm)
   and runs the network slice by slice (semantic classes + a vertebra level per bony voxel);
4. builds 3-D instances of the vertebral bodies and the sacrum with their mean level probabilities,
   and names them with the sequence decoder (`labelling.label_instances`);
5. paints a label map of what was named (bodies, posterior elements, discs, sacrum, canal, cord;
   values from `names`) on the working grid and resamples it onto the input's exact geometry;
6. leaves a :class:`SpineFindings` in ``ctx.artifacts["vertebrae"]`` for the disc stage.

``DiscStage`` places every disc between adjacent named vertebrae (`discs.discs_for_labelling`), with
the network's disc mask split by level to refine the centres and the canal centreline to orient
the disc frames, and leaves the `DiscLocation` list in ``ctx.artifacts["disc_locations"]``.

Nothing is invented: no bundle, no spine in view or a field of view too small to name anything
gives a warning and no vertebrae.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from ..io.volume import Volume
from ..names import DISC_OFFSET, POSTERIOR_OFFSET, SPINAL_CANAL, SPINAL_CORD, SPINE_ORDER, VERTEBRA_LABELS
from .context import StudyContext
from .stages import Stage

log = logging.getLogger("spinegrade")

BUNDLE = "spinegrade_vertebrae"
OUTLINE_BUNDLE = "spinegrade_body_outline"  # optional: redraws the bodies' outlines at 1 mm (vertebrae.outline)
# semantic classes of the vertebra network (vertebrae.targets.SEMANTIC; repeated here so that importing
# the pipeline does not import torch)
BODY, POSTERIOR, DISC, SACRUM, CANAL, CORD = 1, 2, 3, 4, 5, 6

FRAGMENT_SHARE = 0.15  # body pieces under this share of the median body volume are fragments
ATLAS_REACH_MM = 25.0  # the atlas's centroid lies this close to C2's (it rings C2's dens)
SPINE_BODY_SHARE = 0.3  # bodies under this share of the largest bodies' volume do not decide where the sacrum may be
MAX_SACRUM_LATERAL_MM = 25.0  # bodies farther to one side of the sacrum than this are not its spine
MIN_SACRUM_MM3 = 3000.0  # even an S1 cut by the field of view's edge is a few cm3
SACRAL_FRAGMENT_SHARE = 0.5  # body pieces touching the sacrum below its top and under this share of the median body are sacral
SACRAL_FRAGMENT_GAP_MM = 3.0  # "touching": one of its voxels within this distance of a sacrum voxel
FOV_CUT_SHARE = 0.01  # share of a body's voxels on the field of view's lower edge that makes it a cut body
MAX_SACRUM_GAP_MM = 45.0  # lowest body's centroid to the nearest sacrum voxel (half a body + a disc + margin)
MAX_INSTANCES = 40  # a spine has at most 26 bodies and a sacrum; this many more pieces is not a spine
MAX_BODY_MM3 = 150_000.0  # a lumbar body is 30-50 cm3; a piece this big is no single vertebral body
MIN_CANAL_MM3 = 500.0  # canal/cord pieces smaller than this are noise
CANAL_BIN_MM = 6.0  # canal centreline: one point per this much along the spine (S-I)
MIN_SPINE_EXTENT_MM = 45.0  # along S-I: less than about two vertebrae cannot be named reliably
AXIS_REACH_MM = 90.0  # posterior elements / disc voxels farther than this from the vertebra are dropped

Predictor = Callable[[Any, np.ndarray, str], Tuple[np.ndarray, np.ndarray]]


# --- model loading ------------------------------------------------------------------------------
_MODELS: Dict[tuple, Any] = {}
_MODELS_LOCK = threading.Lock()


def bundle_path(options, name: str = BUNDLE) -> Optional[Path]:
    """Where bundle ``name`` is: ``--bundle NAME=PATH`` (or its short name without ``spinegrade_``,
    e.g. ``vertebrae=PATH``), ``$SPINEGRADE_<NAME>_BUNDLE``, ``Resources/Models/NAME``; None if not
    installed."""
    from ..models.bundle import find_bundle

    chosen = None
    for key in (name, name.replace("spinegrade_", "", 1)):
        if options is not None and key in (options.bundles or {}):
            chosen = options.bundles[key]
            break
    return find_bundle(name, chosen)


def load_model(path: Path, device: str = "cpu", name: str = BUNDLE):
    """The bundle at ``path`` loaded once per process: cached by folder, weights hash, size, mtime, device.

    A replaced weights file (new mtime or size) is loaded and SHA-256-checked again.
    """
    from ..models.bundle import WEIGHTS, load_bundle, read_metadata

    path = Path(path).resolve()
    meta = read_metadata(path)
    weights = path / WEIGHTS
    st = weights.stat() if weights.is_file() else None
    key = (str(path), str(meta.get("sha256")), str(device), st.st_mtime_ns if st else 0, st.st_size if st else 0)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = load_bundle(path, device, name=name)
            _MODELS[key] = model
            log.info("%s loaded: %s (version %s)", name, path, model.version)
    return model


def clear_model_cache() -> None:
    with _MODELS_LOCK:
        _MODELS.clear()


def default_predictor(model, image: np.ndarray, device: str) -> Tuple[np.ndarray, np.ndarray]:
    """The network's softmax over the working grid: ([S, C_sem, A, I], [S, C_lvl, A, I]) float16."""
    from ..vertebrae.infer import predict_grid

    return predict_grid(model.network, image, device=device)


# --- what the vertebra stage finds --------------------------------------------------------------
@dataclass
class SpineFindings:
    """Everything the vertebra stage found, on the model's working grid.

    Attributes:
        grid: the working-grid geometry as a Volume (its array is the semantic map, uint8 class index).
        labelling: the decoder's output (named vertebrae and their instances, superior first).
        labels: uint8 label map on the working grid (values of `names`; 0 where nothing was named).
        canal_ras: canal centreline points, superior first (RAS mm), or None.
        spine_extent_mm: superior-inferior extent of the bony structures found.
    """

    grid: Volume
    labelling: Any
    labels: np.ndarray
    canal_ras: Optional[np.ndarray] = None
    spine_extent_mm: float = 0.0
    warnings: List[str] = field(default_factory=list)

    @property
    def semantic(self) -> np.ndarray:
        return np.asarray(self.grid.array)

    def disc_labels(self) -> Volume:
        """The disc voxels split by level (100 + the value of the vertebra above), other values 0."""
        lab = self.labels
        return self.grid.with_array(np.where((lab > DISC_OFFSET) & (lab <= DISC_OFFSET + 28), lab, 0).astype(np.uint8))


def _grid_volume(grid, array: np.ndarray) -> Volume:
    return Volume(array, grid.spacing, grid.origin_lps, np.eye(3))


def _axis_points(labelling) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per named vertebra: its centroid, its point on the spine axis (the sacrum's superior endplate)
    and the local unit axis pointing superior (central differences of the axis points)."""
    from ..discs.localise import curve_points

    pts = [i.points_ras() for i in labelling.instances]
    centroids = np.array([p.mean(0) for p in pts])
    axis = curve_points(labelling.names, pts)
    n = len(axis)
    tang = np.zeros_like(axis)
    for i in range(n):
        a, b = max(i - 1, 0), min(i + 1, n - 1)
        d = axis[a] - axis[b]  # superior first: a is above b
        tang[i] = d / max(np.linalg.norm(d), 1e-9)
    return centroids, axis, tang


def _nearest_along_axis(points: np.ndarray, anchors: np.ndarray, tangents: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each point: index of the anchor nearest along the local spine axis, the signed offset
    (positive = superior) and the distance across the axis."""
    v = points[:, None, :] - anchors[None, :, :]  # N x M x 3
    s = np.einsum("nmk,mk->nm", v, tangents)
    j = np.abs(s).argmin(1)
    rows = np.arange(len(points))
    along = s[rows, j]
    across = np.linalg.norm(v[rows, j] - along[:, None] * tangents[j], axis=1)
    return j, along, across


def _local_spacing(axis: np.ndarray) -> np.ndarray:
    """Per vertebra: the distance to its neighbours along the spine (mean of both sides)."""
    if len(axis) < 2:
        return np.full(len(axis), 30.0)
    d = np.linalg.norm(np.diff(axis, axis=0), axis=1)
    up = np.concatenate([[d[0]], d])
    down = np.concatenate([d, [d[-1]]])
    return 0.5 * (up + down)


def paint_labels(semantic: np.ndarray, grid: Volume, labelling) -> np.ndarray:
    """The label map of what was named, on the working grid.

    Bodies: the named instances' voxels (VerSe value). Sacrum: the sacrum instance (26). Posterior
    elements: 40 + the value of the named vertebra nearest along the local spine axis. Discs:
    100 + the value of the vertebra above, only between adjacent named vertebrae. Canal (200) and cord
    (201): their larger pieces, within reach of the named spine. Nothing is painted when nothing was
    named.
    """
    from ..discs.localise import adjacent_pairs

    out = np.zeros(semantic.shape, np.uint8)
    if not labelling.vertebrae:
        return out
    names = labelling.names
    values = np.array([VERTEBRA_LABELS[n] for n in names])
    for inst, v in zip(labelling.instances, values):
        out[tuple(inst.voxels.T)] = v
    centroids, axis, tang = _axis_points(labelling)
    spacing = _local_spacing(axis)

    # posterior elements: nearest named vertebra along the spine axis (from the body centroids)
    idx = np.argwhere(semantic == POSTERIOR)
    if len(idx):
        pts = grid.index_to_ras(idx)
        j, along, across = _nearest_along_axis(pts, centroids, tang)
        ok = (np.abs(along) <= 0.75 * spacing[j]) & (across <= AXIS_REACH_MM)
        out[tuple(idx[ok].T)] = POSTERIOR_OFFSET + values[j[ok]]

    # discs: the nearest vertebra along the axis (the sacrum by its endplate) and the side of it
    idx = np.argwhere(semantic == DISC)
    if len(idx) and len(names) >= 2:
        pts = grid.index_to_ras(idx)
        j, along, across = _nearest_along_axis(pts, axis, tang)
        upper = np.where(along > 0, j - 1, j)  # above vertebra j: the disc below j-1
        pairs = {i for i, _ in adjacent_pairs(names)}
        ok = (upper >= 0) & (upper < len(names) - 1) & np.isin(upper, list(pairs)) & (across <= AXIS_REACH_MM / 2)
        ok &= np.abs(along) <= 0.75 * spacing[j]
        out[tuple(idx[ok].T)] = DISC_OFFSET + values[upper[ok]]

    # canal and cord: pieces of the canal content near the named spine
    canal = _canal_mask(semantic, grid, centroids)
    out[canal & (semantic == CANAL)] = SPINAL_CANAL
    out[canal & (semantic == CORD)] = SPINAL_CORD
    return out


def _canal_mask(semantic: np.ndarray, grid: Volume, centroids: Optional[np.ndarray] = None) -> np.ndarray:
    """Canal content (canal + cord classes): pieces of at least ``MIN_CANAL_MM3`` and at least a tenth
    of the largest, and (given the named bodies) passing within ``AXIS_REACH_MM`` of one of them."""
    mask = (semantic == CANAL) | (semantic == CORD)
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(lab.ravel())[1:] * float(np.prod(grid.spacing))
    keep = np.flatnonzero((sizes >= MIN_CANAL_MM3) & (sizes >= 0.1 * sizes.max())) + 1
    if centroids is not None and len(centroids) and len(keep):
        near = []
        for c in keep:
            pts = grid.index_to_ras(np.argwhere(lab == c)[::50])
            d = np.linalg.norm(pts[:, None, :] - centroids[None], axis=2).min()
            if d <= AXIS_REACH_MM:
                near.append(c)
        keep = np.array(near, int)
    return np.isin(lab, keep)


def canal_centreline(mask: np.ndarray, grid: Volume, bin_mm: float = CANAL_BIN_MM, min_points: int = 3) -> Optional[np.ndarray]:
    """Centreline of a canal mask on the working grid: one point per ``bin_mm`` along S-I, superior first.

    Each point is the centroid of the canal voxels in a slab of the grid's S-I axis (axis 2). A tube
    tilted from S-I cuts such a slab in an ellipse centred on its axis, so this follows lordosis and
    kyphosis. Slabs with too few voxels are skipped; points that jump off the running median (a
    stray piece) are dropped. Returns None when fewer than ``min_points`` remain.
    """
    idx = np.argwhere(mask)
    if len(idx) == 0:
        return None
    step = max(1, int(round(bin_mm / grid.spacing[2])))
    bins = idx[:, 2] // step
    area_min = 0.25 * (25.0 / (grid.spacing[0] * grid.spacing[1]))  # a quarter of a 5 x 5 mm cross-section
    pts = []
    for b in np.unique(bins):
        sel = idx[bins == b]
        if len(sel) < area_min * step:
            continue
        pts.append(grid.index_to_ras(sel.mean(0)))
    if len(pts) < min_points:
        return None
    pts = np.array(pts)
    pts = pts[np.argsort(-pts[:, 2])]  # superior first
    med = np.stack([ndimage.median_filter(pts[:, d], size=5, mode="nearest") for d in range(3)], axis=1)
    keep = np.linalg.norm(pts[:, :2] - med[:, :2], axis=1) <= 10.0
    pts = pts[keep]
    return pts if len(pts) >= min_points else None


def _consistent(names: Sequence[str]) -> bool:
    """Names strictly in spine order, each at most once (the decoder's chain guarantees it unless no
    valid chain exists at all, e.g. more pieces than vertebrae)."""
    from ..names import spine_index

    idx = [spine_index(n) for n in names]
    return all(b > a for a, b in zip(idx, idx[1:]))


def _without_fragments(instances: list) -> list:
    """Drop body pieces far smaller than the spine's own bodies (bits of sacrum, partial-volume specks).

    Each piece given to the decoder counts as a vertebra, so fragments would make it insert L6/T13
    to fit them; a body cut by the field of view's edge is still well above this share. The atlas
    is small by nature and stays (`_atlas`).
    """
    bodies = [i.volume_mm3 for i in instances if i.kind == "body"]
    if len(bodies) < 3:
        return instances
    floor = FRAGMENT_SHARE * float(np.median(bodies))
    atlas = _atlas(instances)
    kept = [i for i in instances if i.kind != "body" or i.volume_mm3 >= floor or i is atlas]
    if len(kept) < len(instances):
        log.info("%d body fragment(s) under %.0f mm3 dropped", len(instances) - len(kept), floor)
    return kept


def _mark_field_of_view_cuts(instances: list, inside: np.ndarray, min_share: float = FOV_CUT_SHARE) -> None:
    """Mark the body pieces that the field of view's inferior edge cuts (`labelling.evidence`'s
    ``CUT_BY_FIELD_OF_VIEW``): at least ``min_share`` of their voxels have the voxel below them
    outside the field of view or off the grid (a body cut flat has its whole cross-section there,
    a tenth to a quarter of its voxels; the top of a tilted sacrum that the edge cuts obliquely,
    2-5 % on the vb3 scans; a body clear of the edge, none)."""
    from ..labelling.evidence import CUT_BY_FIELD_OF_VIEW

    for inst in instances:
        if inst.kind != "body":
            continue
        v = inst.voxels
        below = v[:, 2] - 1  # working-grid axis 2 runs inferior to superior
        outside = below < 0
        on = ~outside
        outside[on] = ~inside[v[on, 0], v[on, 1], below[on]]
        if outside.sum() >= max(3, min_share * len(v)):
            inst.extra[CUT_BY_FIELD_OF_VIEW] = True


def _atlas(instances: list):
    """The body piece that is the atlas (C1), or None: the level head calls it C1, it is the most
    superior body and lies within ``ATLAS_REACH_MM`` of the body below it (C2, around its dens)."""
    bodies = [i for i in instances if i.kind == "body"]
    if len(bodies) < 2:
        return None
    top = max(bodies, key=lambda i: i.centroid_mm[2])
    if top.probabilities is None or int(np.argmax(top.probabilities)) != SPINE_ORDER.index("C1"):
        return None
    gap = min(float(np.linalg.norm(top.centroid_mm - i.centroid_mm)) for i in bodies if i is not top)
    return top if gap <= ATLAS_REACH_MM else None


def _plausible_sacrum(instances: list) -> list:
    """Keep the sacrum only where it can be one: big enough, below every body, next to the lowest.

    The sacrum anchors the names, so a false-positive speck (fat, a bowel loop) called sacrum would
    rename the whole spine; without a plausible one the level head's evidence names it instead.
    """
    bodies = [i for i in instances if i.kind == "body"]
    sacra = [i for i in instances if i.kind == "sacrum"]
    if not sacra or not bodies:
        return instances
    s = sacra[0]
    s_centroid = s.centroid_mm
    # judge against the spine's own bodies: pieces far smaller than the largest bodies, or far to one
    # side of the sacrum (paraspinal fat and muscle on fluid-sensitive images), are not its vertebrae
    ref = float(np.median(sorted(b.volume_mm3 for b in bodies)[-5:]))
    spine = [b for b in bodies if b.volume_mm3 >= SPINE_BODY_SHARE * ref
             and abs(b.centroid_mm[0] - s_centroid[0]) <= MAX_SACRUM_LATERAL_MM]
    if not spine:
        log.info("sacrum candidate of %.0f mm3 at %s dropped: no vertebral body above it", s.volume_mm3,
                 np.round(s_centroid, 1))
        return [i for i in instances if i.kind != "sacrum"]
    body_centroids = np.array([b.centroid_mm for b in spine])
    lowest = body_centroids[np.argmin(body_centroids[:, 2])]
    # the gap is measured to the sacrum's nearest voxel (its top, S1's endplate), not to its centroid:
    # a whole sacrum in view reaches 10 cm down, so its centroid lies 60-80 mm below L5's
    gap = sacrum_gap_mm(s, lowest)
    plausible = (s.volume_mm3 >= MIN_SACRUM_MM3 and s_centroid[2] < body_centroids[:, 2].min()
                 and gap <= MAX_SACRUM_GAP_MM)
    if not plausible:
        log.info("sacrum candidate of %.0f mm3 at %s (%.0f mm from the lowest body) dropped: not below and next "
                 "to the lowest body", s.volume_mm3, np.round(s_centroid, 1), gap)
        return [i for i in instances if i.kind != "sacrum"]
    return instances


def _sacral_fragments_into_sacrum(instances: list, level_probs: np.ndarray) -> list:
    """Body pieces that are bits of the sacrum, merged into it.

    A lateral piece of S1 or an ala that the network calls body would otherwise be named as a
    vertebra between L5 and the sacrum (an L6). A piece is taken as sacral when it is small (under
    ``SACRAL_FRAGMENT_SHARE`` of the median body), touches the sacrum (within
    ``SACRAL_FRAGMENT_GAP_MM``) and its centroid lies below the sacrum's top (the 90th percentile of
    its height): a vertebra above the sacrum, L6 included, has its centroid well above that.
    """
    from scipy.spatial import cKDTree

    from ..labelling.instances import SpineInstance, mean_probabilities

    sacra = [i for i in instances if i.kind == "sacrum"]
    bodies = [i for i in instances if i.kind == "body"]
    if not sacra or len(bodies) < 3:
        return instances
    sacrum = sacra[0]
    pts = sacrum.points_ras()
    top = float(np.percentile(pts[:, 2], 90))
    tree = cKDTree(pts)
    small = SACRAL_FRAGMENT_SHARE * float(np.median([b.volume_mm3 for b in bodies]))
    frags = [b for b in bodies if b.volume_mm3 < small and b.centroid_mm[2] < top
             and float(tree.query(b.points_ras(), distance_upper_bound=SACRAL_FRAGMENT_GAP_MM + 1e-6)[0].min())
             <= SACRAL_FRAGMENT_GAP_MM]
    if not frags:
        return instances
    log.info("%d sacral piece(s) the network called vertebral body merged into the sacrum", len(frags))
    voxels = np.concatenate([sacrum.voxels] + [f.voxels for f in frags])
    merged = SpineInstance(voxels, sacrum.grid, "sacrum", mean_probabilities(voxels, level_probs), extra=dict(sacrum.extra))
    return [merged if i is sacrum else i for i in instances if not any(i is f for f in frags)]


def sacrum_gap_mm(sacrum, point: np.ndarray, max_points: int = 20000) -> float:
    """Distance from ``point`` (RAS) to the nearest voxel of the sacrum instance (subsampled when large)."""
    pts = sacrum.points_ras()
    if len(pts) > max_points:
        pts = pts[:: int(np.ceil(len(pts) / max_points))]
    return float(np.min(np.linalg.norm(pts - np.asarray(point, float), axis=1)))


def _whole_sacrum(inst, level_probs: np.ndarray, gap_mm: float = 10.0):
    """The sacrum instance with the sacrum pieces that lie within ``gap_mm`` of it added back.

    The sacral canal separates the dorsal sacrum from the sacral bodies (and thick slices cut the
    alae apart); dropping those pieces would move its centroid by several millimetres.
    """
    from ..labelling import SpineInstance, mean_probabilities

    grid = inst.grid
    mask = np.asarray(grid.array) > 0
    lab, n = ndimage.label(mask)
    if n < 2:
        return inst
    own = lab[tuple(inst.voxels[0])]
    near = ndimage.distance_transform_edt(lab != own, sampling=grid.spacing) <= gap_mm
    min_vox = max(1, int(round(300.0 / float(np.prod(grid.spacing)))))
    sizes = np.bincount(lab.ravel())
    keep = [c for c in np.unique(lab[near & mask]) if c and sizes[c] >= min_vox]
    if keep == [own]:
        return inst
    voxels = np.argwhere(np.isin(lab, keep))
    return SpineInstance(voxels, grid, "sacrum", mean_probabilities(voxels, level_probs), extra=dict(inst.extra))


def find_vertebrae(volume: Volume, model=None, device: str = "cpu", predictor: Optional[Predictor] = None) -> SpineFindings:
    """Run the vertebra model on ``volume`` and name what it finds (working-grid results).

    Args:
        volume: the study's image.
        model: a loaded bundle (`models.bundle.LoadedModel`), passed to ``predictor``.
        device: torch device.
        predictor: ``(model, image[S, A, I], device) -> (semantic probs [S, C, A, I], level probs
            [S, L, A, I])``; the network by default (tests replace it).
    """
    from ..labelling import instances_from_masks, label_instances
    from ..labelling.label import Labelling
    from ..vertebrae.grid import study_on_grid

    predictor = predictor or default_predictor
    grid, image, inside = study_on_grid(volume)
    sem_p, lvl_p = predictor(model, image, device)
    semantic = np.asarray(sem_p).argmax(1).astype(np.uint8)
    semantic[~inside] = 0
    del sem_p
    gvol = _grid_volume(grid, semantic)
    warnings: List[str] = []

    bony = np.isin(semantic, (BODY, SACRUM, DISC))
    extent = 0.0
    if bony.any():
        k = np.flatnonzero(bony.any(axis=(0, 1)))
        extent = float((k[-1] - k[0] + 1) * grid.spacing[2])

    level_probs = np.asarray(lvl_p).transpose(1, 0, 2, 3)  # [L, S, A, I], a view
    body = gvol.with_array(semantic == BODY)
    sacrum = gvol.with_array(semantic == SACRUM)
    instances = [_whole_sacrum(i, level_probs) if i.kind == "sacrum" else i
                 for i in instances_from_masks(body, sacrum, level_probs)]
    instances = _sacral_fragments_into_sacrum(_plausible_sacrum(instances), level_probs)
    big = [i for i in instances if i.kind == "body" and i.volume_mm3 > MAX_BODY_MM3]
    if big:
        warnings.append(f"{len(big)} body-like structure(s) too large for a vertebral body were ignored")
        instances = [i for i in instances if not (i.kind == "body" and i.volume_mm3 > MAX_BODY_MM3)]
    instances = _without_fragments(instances)
    _mark_field_of_view_cuts(instances, inside)
    n_bodies = sum(1 for i in instances if i.kind == "body")
    del lvl_p, level_probs

    if not instances or not n_bodies:
        labelling = Labelling(warnings=["no spine found: no vertebral body was detected in this volume; no vertebra was named"])
    elif n_bodies > MAX_INSTANCES:
        labelling = Labelling(warnings=[
            f"no spine found: {n_bodies} separate body-like pieces were detected, more than any spine has "
            f"(at most {MAX_INSTANCES} are accepted); no vertebra was named"])
    elif extent < MIN_SPINE_EXTENT_MM:
        labelling = Labelling(warnings=[
            f"the field of view holds too little spine to name vertebrae ({extent:.0f} mm along the spine, "
            f"at least {MIN_SPINE_EXTENT_MM:.0f} mm needed); no vertebra was named"])
    else:
        try:
            labelling = label_instances(instances)
        except (ValueError, IndexError, np.linalg.LinAlgError) as e:  # degenerate pieces: no spine curve through them
            log.warning("vertebra labelling failed on %d pieces: %s: %s", len(instances), type(e).__name__, e)
            log.debug("labelling failed", exc_info=True)
            labelling = Labelling(warnings=[f"no spine found: the vertebra-like pieces do not line up along a spine ({e}); "
                                            "no vertebra was named"])
        if not _consistent(labelling.names):
            labelling = Labelling(warnings=labelling.warnings + [
                f"the decoded sequence is not a spine ({' '.join(labelling.names)}); no vertebra was named"])
    warnings.extend(labelling.warnings)

    labels = paint_labels(semantic, gvol, labelling)
    canal_ras = None
    if labelling.vertebrae:
        canal_ras = canal_centreline((labels == SPINAL_CANAL) | (labels == SPINAL_CORD), gvol)
    return SpineFindings(gvol, labelling, labels, canal_ras, extent, warnings)


def input_segmentation(found: SpineFindings, volume: Volume, outline=None, device: str = "cpu") -> Volume:
    """The working-grid label map on ``volume``'s exact grid (nearest neighbour), the bodies' lateral
    rim given back where that grid is finer across the slices (`vertebrae.body_rim`), and, with an
    ``outline`` network (the ``spinegrade_body_outline`` bundle's), each body's outline redrawn on
    every sagittal slice of that grid (`vertebrae.outline_model.redraw_bodies`)."""
    from ..vertebrae.body_rim import grow_bodies_across_slices
    from ..vertebrae.grid import from_working_grid, working_grid_for

    seg = grow_bodies_across_slices(from_working_grid(found.labels, working_grid_for(volume), volume))
    if outline is not None:
        from ..vertebrae.outline_model import redraw_bodies

        seg = redraw_bodies(seg, volume, outline, device)
    return seg


def load_outline(options, device: str = "cpu"):
    """The body-outline bundle, loaded, or None where it is not installed (the outlines then stay
    as the vertebra network drew them)."""
    path = bundle_path(options, OUTLINE_BUNDLE)
    if path is None:
        log.info("body outlines: no '%s' bundle installed; outlines are the vertebra network's", OUTLINE_BUNDLE)
        return None
    return load_model(path, device, name=OUTLINE_BUNDLE)


class VertebraeStage(Stage):
    """Vertebra labelling with the ``spinegrade_vertebrae`` model (a warning when it is not installed)."""

    name = "vertebrae"

    def __init__(self, predictor: Optional[Predictor] = None):
        self.predictor = predictor

    def run(self, ctx: StudyContext) -> None:
        path = bundle_path(ctx.options)
        if path is None:
            ctx.warn(f"vertebra labelling: no model is installed (bundle '{BUNDLE}'); this stage was skipped")
            return
        model = load_model(path, ctx.options.device)
        ctx.result.models.append(model.model_info)
        volume = ctx.study.volume
        found = find_vertebrae(volume, model, ctx.options.device, self.predictor)
        for w in found.warnings:
            ctx.warn(w)
        ctx.result.vertebrae.extend(found.labelling.vertebrae)
        ctx.artifacts["vertebrae"] = found
        ctx.artifacts["labelling"] = found.labelling
        outline = load_outline(ctx.options, ctx.options.device) if found.labelling.vertebrae else None
        if outline is not None:
            ctx.result.models.append(outline.model_info)
        ctx.segmentation = input_segmentation(found, volume, outline.network if outline else None, ctx.options.device)
        log.info("vertebrae: %s", ", ".join(found.labelling.names) or "none named")


class DiscStage(Stage):
    """Disc levels between the named vertebrae: centre, normal, disc-aligned box."""

    name = "discs"

    def run(self, ctx: StudyContext) -> None:
        found: Optional[SpineFindings] = ctx.artifacts.get("vertebrae")
        if not ctx.result.vertebrae:
            ctx.warn("disc localisation: no labelled vertebrae, so no disc levels were placed")
            return
        if found is None or not found.labelling.instances:
            log.info("discs: the vertebrae came without body masks; no disc levels were placed")
            return
        locations, warnings = locate(found)
        for w in warnings:
            ctx.warn(w)
        ctx.result.discs.extend(loc.to_disc() for loc in locations)
        ctx.artifacts["disc_locations"] = locations
        log.info("discs: %s", ", ".join(loc.level for loc in locations) or "none placed")


def locate(found: SpineFindings):
    """Disc locations for the stage's findings (disc mask split by level, canal centreline)."""
    from ..discs import discs_for_labelling

    return discs_for_labelling(found.labelling, found.disc_labels(), found.canal_ras)


__all__ = ["VertebraeStage", "DiscStage", "SpineFindings", "find_vertebrae", "paint_labels", "canal_centreline",
           "load_model", "load_outline", "bundle_path", "clear_model_cache", "default_predictor", "input_segmentation"]
