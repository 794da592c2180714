"""Training crops from a labelled dataset (SPIDER, RSNA 2024, the folder format), cached per study.

Per study: read the image (``LabelledStudy.load``: the same checks as a run) -> place every labelled
level -> cut its disc crop exactly as inference does (``discs.extract_crop`` + ``normalise_crop``)
-> one ``grading-<kind>-<study>.npz`` in the cache, with the labels as allowed-class bitmasks
(``grading/targets.py``: RSNA's Normal/Mild and SPIDER's "narrowing present" stay sets; heads the
dataset does not grade are unknown and add nothing to the loss).

Placing a level (``locate``):

* ``"pipeline"``: the vertebra model and disc localisation, as at inference, so the crops are the
  ones the grader will see. A dataset level takes the found disc of the same name when that disc
  lies within ``MATCH_MM`` of the dataset's anchor (or the dataset gives no anchor), else the found
  disc nearest the anchor within ``MATCH_MM``: the dataset's level names win (ours may be one off).
* ``"dataset"``: the dataset's own anchor. The disc normal comes from the reference mask's disc
  voxels where there is one (SPIDER: their thinnest principal axis), else from the line through the
  neighbouring levels' anchors. RSNA's anchors are reader points behind the disc's centre; they are
  moved forward along the disc frame by ``ANCHOR_BEHIND_DISC_MM`` (typical adult lumbar anatomy,
  an approximation: prefer the pipeline where it works).
* ``"auto"`` (default): the pipeline where it places the level, the dataset's geometry elsewhere.

Levels that neither way places, and crops more than ``max_outside`` outside the field of view (the
grading stage's own limit by default), are skipped with a warning. A study whose image cannot be
read is skipped with a warning naming it; no usable crop at all is a ``DatasetError``.
"""

from __future__ import annotations

import json
import logging
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DatasetError, InputError
from ..names import HEAD_NAMES, HEADS, disc_label
from .data import NO_AXIAL, CropSet, axial_channel, normalise_crop, quantise_crop
from .targets import indices_from_masks, mask_row

log = logging.getLogger("spinegrade")

LOCATE_MODES = ("auto", "pipeline", "dataset")
MATCH_MM = 20.0  # a found disc this close to the dataset's anchor is that level
#: how far behind the disc centre each kind of reader anchor lies (mm, along the disc frame's posterior axis)
ANCHOR_BEHIND_DISC_MM = {"mask_centroid": 0.0, "given": 0.0, "canal_point": 25.0, "foramina_mean": 20.0,
                         "subarticular_mean": 22.0}
MAX_OUTSIDE = 0.3  # as the grading stage: a crop more than this outside the field of view is not graded
CACHE_VERSION = "3"  # 2: crops carry the study's axial T2 where it has one; 3: cut from the stack covering the level


@dataclass
class StudyCrops:
    """One dataset study's crops and where they came from."""

    study_id: str
    patient_id: str
    subset: Optional[str]
    crops: CropSet
    placed: Dict[str, str] = field(default_factory=dict)  # level -> "pipeline" | "dataset"
    warnings: List[str] = field(default_factory=list)


def patient_case(patient_id: str) -> int:
    """A stable integer per patient (the ``case`` column: splits and metrics group by it)."""
    return int(zlib.crc32(str(patient_id).encode()) & 0x7FFFFFFF)


def cache_file(folder: Path, kind: str, study_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(study_id))
    return Path(folder) / f"grading-{kind}-{safe}.npz"


def open_labelled(path: Path, kind: Optional[str] = None, spider_series: str = "main"):
    """The dataset at ``path`` (a folder or a file in it), kind detected unless given; SPIDER with
    one series per patient (``"main"``) or all of them."""
    from ..datasets import detect_kind, open_dataset

    root = Path(path).parent if Path(path).is_file() else Path(path)
    kind = kind or detect_kind(root)
    return open_dataset(root, kind, **({"series": spider_series} if kind == "spider" else {}))


# --- placing levels -------------------------------------------------------------------------
def _frame(normal: np.ndarray) -> np.ndarray:
    from .prepare import truth_frame

    n = np.asarray(normal, float)
    return truth_frame(n if n[2] >= 0 else -n)  # normals point superior


def mask_normal(segmentation, level: str) -> Optional[np.ndarray]:
    """The thinnest principal axis of a level's disc voxels in a reference mask (RAS), or None."""
    try:
        value = disc_label(level.split("/")[0])
    except (KeyError, ValueError):
        return None
    ijk = np.argwhere(np.asarray(segmentation.array) == value)
    if len(ijk) < 10:
        return None
    pts = segmentation.index_to_ras(ijk)
    cov = np.cov((pts - pts.mean(0)).T)
    if not np.all(np.isfinite(cov)):
        return None
    w, v = np.linalg.eigh(cov)
    if w[1] <= 0 or w[0] > 0.8 * w[1]:  # no clear thin axis: a blob, not a disc
        return None
    return v[:, 0]


def anchor_normals(anchors: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Normals from the line through neighbouring anchors (levels in cranio-caudal order)."""
    names = list(anchors)
    out = {}
    for i, name in enumerate(names):
        up = anchors[names[i - 1]] if i > 0 else anchors[name]
        down = anchors[names[i + 1]] if i + 1 < len(names) else anchors[name]
        t = np.asarray(up, float) - np.asarray(down, float)
        if np.linalg.norm(t) > 5.0:  # anchors a few mm apart say nothing about direction
            out[name] = t / np.linalg.norm(t)
    return out


def dataset_locations(study, volume) -> Tuple[Dict[str, object], List[str]]:
    """DiscLocations from the dataset's own anchors (see the module's notes)."""
    from ..discs.localise import DiscLocation

    warnings: List[str] = []
    anchors = {lv: np.asarray(lab.center_ras, float) for lv, lab in study.levels.items() if lab.center_ras is not None}
    if not anchors:
        return {}, warnings
    seg = None
    if study.has_segmentation:
        try:
            seg = study.load_segmentation()
        except (DatasetError, InputError) as e:
            warnings.append(f"{study.study_id}: reference mask unreadable ({e}); disc normals from the level anchors")
    line = anchor_normals(anchors)
    out = {}
    for level, anchor in anchors.items():
        normal = mask_normal(seg, level) if seg is not None else None
        if normal is None:
            normal = line.get(level)
        if normal is None:
            # one anchor and no mask: the image's own superior axis is the best guess
            normal = np.array([0.0, 0.0, 1.0])
            warnings.append(f"{study.study_id} {level}: disc normal unknown (one level, no mask); the image's superior axis was used")
        frame = _frame(normal)
        kind = study.levels[level].center_kind or "given"
        centre = anchor - ANCHOR_BEHIND_DISC_MM.get(kind, 0.0) * frame[:, 1]
        out[level] = DiscLocation(level, centre, frame, np.array([20.0, 16.0, 5.0]))
    return out, warnings


def pipeline_locations(volume, model, device: str = "cpu") -> Tuple[list, List[str]]:
    """Disc locations found by the vertebra model and disc localisation (as a run finds them)."""
    from ..pipeline.vertebra_stage import find_vertebrae, locate

    found = find_vertebrae(volume, model, device)
    if not found.labelling.vertebrae or not found.labelling.instances:
        return [], list(found.warnings)
    locations, warnings = locate(found)
    return list(locations), list(found.warnings) + list(warnings)


def match_levels(study, found: Sequence) -> Dict[str, object]:
    """Dataset level -> found DiscLocation (same name near the anchor, else the nearest within MATCH_MM)."""
    by_name = {loc.level: loc for loc in found}
    out, used = {}, set()
    for level, lab in study.levels.items():
        anchor = None if lab.center_ras is None else np.asarray(lab.center_ras, float)
        behind = ANCHOR_BEHIND_DISC_MM.get(lab.center_kind or "given", 0.0)
        same = by_name.get(level)
        if same is not None and (anchor is None or np.linalg.norm(same.center_mm - anchor) <= MATCH_MM + behind):
            out[level] = same
            used.add(id(same))
            continue
        if anchor is None:
            continue
        free = [loc for loc in found if id(loc) not in used]
        if not free:
            continue
        d = [np.linalg.norm(loc.center_mm - anchor) for loc in free]
        i = int(np.argmin(d))
        if d[i] <= MATCH_MM + behind:
            out[level] = free[i]
            used.add(id(free[i]))
    return out


# --- crops ----------------------------------------------------------------------------------
def study_axial(study, warnings: List[str]) -> Optional[list]:
    """The study's axial T2 (RSNA's "Axial T2" series) as its axial stacks, largest first, or None;
    unreadable -> a warning."""
    name = study.axial_t2_name()
    if name is None:
        return None
    try:
        from ..io.orientation import acquisition_plane

        stacks = study.load_other_stacks(name)
        axial = [v for v in stacks if acquisition_plane(v).plane == "axial"]
        if not axial:
            plane = acquisition_plane(stacks[0]).plane
            warnings.append(f"{study.study_id}: '{name}' is a {plane} series, not axial; crops without the axial T2")
            return None
        return axial
    except Exception as e:  # noqa: BLE001 - one study's unreadable axial: its crops go on sagittal-only
        warnings.append(f"{study.study_id}: '{name}' could not be read ({e}); crops without the axial T2")
        return None


def study_crops(study, locate: str = "auto", vertebra_model=None, device: str = "cpu",
                max_outside: float = MAX_OUTSIDE) -> StudyCrops:
    """Crops of every placeable labelled level of one study (reads its image)."""
    from ..discs.crop import CropSampler, StackSampler
    from ..discs.localise import DiscLocation

    if locate not in LOCATE_MODES:
        raise ValueError(f"locate must be one of {LOCATE_MODES}, not {locate!r}")
    volume = study.load()
    warnings: List[str] = []
    places: Dict[str, Tuple[DiscLocation, str]] = {}
    if locate in ("auto", "pipeline") and vertebra_model is not None:
        try:
            found, w = pipeline_locations(volume, vertebra_model, device)
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as e:  # an image the labelling cannot take
            if locate == "pipeline":
                raise DatasetError(f"{study.source}: study {study.study_id}: vertebra labelling failed ({e})") from e
            found, w = [], [f"vertebra labelling failed ({type(e).__name__}: {e}); the dataset's anchors are used"]
        warnings += [f"{study.study_id}: {x}" for x in w]
        for level, loc in match_levels(study, found).items():
            # the dataset's name wins; the crop is placed where the pipeline found the disc
            places[level] = (DiscLocation(level, loc.center_mm, loc.frame, loc.half_size_mm), "pipeline")
    elif locate == "pipeline":
        raise DatasetError("--locate pipeline needs the vertebra model (bundle spinegrade_vertebrae), which is not installed")
    if locate in ("auto", "dataset"):
        fallback, w = dataset_locations(study, volume)
        warnings += w
        for level, loc in fallback.items():
            places.setdefault(level, (loc, "dataset"))
    axial = study_axial(study, warnings)
    sagittal, axial_sampler = CropSampler(volume), StackSampler(axial) if axial is not None else None
    imgs, axials, grades, masks, levels, outside, placed = [], [], [], [], [], [], {}
    for level, label in study.levels.items():
        if level not in places:
            warnings.append(f"{study.study_id} {level}: not placed ({'no anchor and ' if label.center_ras is None else ''}"
                            f"{'not found by the vertebra model' if locate != 'dataset' else 'no anchor'}); skipped")
            continue
        loc, how = places[level]
        crop = sagittal.crop(loc)
        if crop.outside_fraction > max_outside:
            warnings.append(f"{study.study_id} {level}: {crop.outside_fraction:.0%} of its crop is outside the image; skipped")
            continue
        x = normalise_crop(crop.image.array, crop.inside)
        imgs.append(quantise_crop(x))
        axials.append(axial_channel(axial_sampler.crop(loc)) if axial_sampler is not None
                      else np.full(x.shape, NO_AXIAL, np.uint8))
        row = mask_row({h: label.allowed(h) for h in label.grades})
        masks.append(row)
        idx = indices_from_masks(row[None])[0]
        grades.append([HEADS[h][i] if i >= 0 else -1 for h, i in zip(HEAD_NAMES, idx)])
        levels.append(level)
        outside.append(crop.outside_fraction)
        placed[level] = how
    n = len(imgs)
    case = patient_case(study.patient_id)
    if n == 0:
        crops = CropSet.empty()
    else:
        crops = CropSet(np.stack(imgs), np.asarray(grades, np.int64), np.asarray(levels, str),
                        np.asarray(outside, np.float32), np.full(n, case, np.int64),
                        np.full(n, study.sequence, dtype="<U8"), np.stack(masks), np.stack(axials))
    return StudyCrops(study.study_id, study.patient_id, study.subset, crops, placed, warnings)


def _cache_key(locate: str, vertebra_sha: Optional[str], max_outside: float) -> str:
    return json.dumps({"v": CACHE_VERSION, "locate": locate, "vertebrae": vertebra_sha, "max_outside": max_outside},
                      sort_keys=True)


def _load_cached(path: Path, key: str) -> Optional[StudyCrops]:
    if not path.is_file():
        return None
    try:
        with np.load(path) as d:
            if "key" not in d.files or str(d["key"]) != key:
                return None
            meta = json.loads(str(d["meta"]))
            crops = CropSet(d["image"], d["grades"].astype(np.int64), d["level"], d["outside"], d["case"],
                            d["contrast"], d["allowed"], d["axial"])
    except Exception:  # an unreadable or foreign cache file is made again
        return None
    return StudyCrops(meta["study_id"], meta["patient_id"], meta["subset"], crops, meta["placed"], meta["warnings"])


def prepare_dataset(dataset, cache: Path, locate: str = "auto", vertebra_bundle: Optional[Path] = None,
                    device: str = "cpu", max_outside: float = MAX_OUTSIDE, show_progress: bool = True) -> List[StudyCrops]:
    """Crops of every study of ``dataset`` (an adapter from ``datasets.open_dataset``), cached in ``cache``.

    A cached study is reused when it was made the same way (locate mode, vertebra model, outside
    limit); anything else is made again. Returns the studies that gave at least one crop.
    """
    from tqdm import tqdm

    model, sha = None, None
    if locate in ("auto", "pipeline"):
        from ..models.bundle import find_bundle
        from ..pipeline.vertebra_stage import BUNDLE, load_model

        path = find_bundle(BUNDLE, vertebra_bundle)
        if path is not None:
            model = load_model(path, device)
            sha = model.sha256
        elif locate == "pipeline":
            raise DatasetError("--locate pipeline needs the vertebra model (bundle spinegrade_vertebrae), which is not installed")
        else:
            log.warning("no vertebra model installed: levels are placed from the dataset's own anchors")
    key = _cache_key(locate, sha, max_outside)
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    out: List[StudyCrops] = []
    failed = 0
    ids = dataset.study_ids()
    for sid in tqdm(ids, desc=f"{dataset.kind} crops", disable=None if show_progress else True):
        path = cache_file(cache, dataset.kind, sid)
        sc = _load_cached(path, key)
        if sc is None:
            study = dataset.study(sid)
            try:
                sc = study_crops(study, locate, model, device, max_outside)
            except InputError as e:
                failed += 1
                log.warning("%s: study %s skipped: its image cannot be used (%s)", dataset.kind, sid, e)
                continue
            meta = {"study_id": sc.study_id, "patient_id": sc.patient_id, "subset": sc.subset, "placed": sc.placed,
                    "warnings": sc.warnings}
            sc.crops.save(path, key=key, meta=json.dumps(meta))
        for w in sc.warnings:
            log.info("%s", w)
        if len(sc.crops):
            out.append(sc)
    n = sum(len(s.crops) for s in out)
    log.info("%s: %d crops from %d of %d studies (%d unreadable)", dataset.kind, n, len(out), len(ids), failed)
    if n == 0:
        raise DatasetError(f"{dataset.root}: no usable crop in any of its {len(ids)} studies "
                           f"({failed} unreadable; see the warnings for levels that could not be placed)")
    return out


def split_studies(studies: Sequence[StudyCrops], share: float = 0.2, seed: int = 0) -> Tuple[CropSet, CropSet, Dict[str, list]]:
    """Training and held-out crops, whole patients at a time.

    The dataset's own split wins where it has one (SPIDER overview.csv: ``validation``); otherwise
    ``share`` of the patients (at least one, never all) are held out, drawn with ``seed``.
    """
    patients = sorted({s.patient_id for s in studies})
    own = sorted({s.patient_id for s in studies if (s.subset or "").lower() in ("validation", "val", "test")})
    if own and len(own) < len(patients):
        held_p = set(own)
    else:
        if len(patients) < 2:
            raise DatasetError(f"fine-tuning needs at least two patients (one to hold out for validation); found {len(patients)}")
        rng = np.random.default_rng(seed)
        n = min(len(patients) - 1, max(1, int(round(share * len(patients)))))
        held_p = set(rng.choice(patients, n, replace=False).tolist())
    train = CropSet.concat([s.crops for s in studies if s.patient_id not in held_p])
    held = CropSet.concat([s.crops for s in studies if s.patient_id in held_p])
    split = {"training_patients": [p for p in patients if p not in held_p], "held_out_patients": sorted(held_p),
             "source": "dataset subset" if own and len(own) < len(patients) else f"random share {share} (seed {seed})"}
    return train, held, split
