"""Issue 4's figures for the vertebra model: labelling on held-out real scans, the T9/T10 landmark of
``sct-t2_lumbar``, generated cases of every field of view and contrast, and speed/memory.

Every case goes through the very code the pipeline runs (`pipeline.vertebra_stage.find_vertebrae`
and `locate`), from the image file to the label map in the input's geometry. The ``oracle``
predictor replaces the network with the ground truth (one-hot semantic and level maps from the
case's own labels): it measures the labelling decoder and disc localisation alone, an upper bound
for any network.

Truth centroids are those of the true body masks (VerSe's definition), on the input grid; predicted
centroids those of the named instances. Dice is per vertebral body (sacrum excluded), on the input
grid, with the segmentation the pipeline writes.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

from ..io.volume import Volume
from ..labelling import instances_from_label_map
from ..names import LABEL_TO_VERTEBRA, VERTEBRA_LABELS
from .labelling_metrics import ScanScores, centroid_errors, dice_per_label, identification, summarise

log = logging.getLogger("spinegrade")

GENERATED_SEED0 = 10000  # evaluation seeds: 10000 + i, never used for training
FOVS = ("lumbar", "thoracolumbar", "whole")
CONTRASTS = ("T1", "T2", "STIR", "random")
SCT_LANDMARK = "T9/T10 disc, posterior tip"
_SACRUM = VERTEBRA_LABELS["S1"]


@dataclass
class CaseEvaluation:
    """One case's figures."""

    name: str
    kind: str  # "real", "sct", "generated"
    scores: Optional[ScanScores] = None
    named: List[str] = field(default_factory=list)
    disc_error_mm: Dict[str, float] = field(default_factory=dict)  # level -> centre distance to the truth
    discs_found: int = 0
    discs_true: int = 0
    seconds: float = 0.0
    warnings: List[str] = field(default_factory=list)
    extra: Dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, object]:
        s = self.scores
        return {
            "name": self.name, "kind": self.kind, "named": self.named, "seconds": round(self.seconds, 3),
            "identified": s.identified if s else None, "centroid_error_mm": s.centroid_error_mm if s else None,
            "dice": {LABEL_TO_VERTEBRA[k]: v for k, v in s.dice.items()} if s else None,
            "disc_error_mm": self.disc_error_mm, "discs_found": self.discs_found, "discs_true": self.discs_true,
            "warnings": self.warnings, **self.extra,
        }


# --- predictors ---------------------------------------------------------------------------------
def oracle_predictor(labels: Volume) -> Callable:
    """A predictor that returns the ground truth of ``labels`` (same geometry as the image) as
    one-hot semantic and level probabilities on the working grid; partly labelled scans (vb3) give
    bodies only, with every other voxel background."""

    def predict(model, image: np.ndarray, device: str = "cpu"):
        import SimpleITK as sitk

        from ..vertebrae.grid import to_working_grid, working_grid_for
        from ..vertebrae.targets import LEVELS, SEMANTIC, level_target, semantic_target

        grid = working_grid_for(labels)
        lab = to_working_grid(labels.with_array(np.asarray(labels.array).astype(np.int16)), grid, sitk.sitkNearestNeighbor)
        if lab.shape != image.shape:
            raise ValueError(f"oracle labels give a working grid of {lab.shape}, the image {image.shape}")
        sem, lvl = semantic_target(lab), level_target(lab)
        s, a, i = lab.shape
        sem_p = np.zeros((s, len(SEMANTIC), a, i), np.float16)
        for c in range(len(SEMANTIC)):
            sem_p[:, c] = sem == c
        lvl_p = np.full((s, len(LEVELS), a, i), 1.0 / len(LEVELS), np.float16)
        known = lvl >= 0
        for c in range(len(LEVELS)):
            lvl_p[:, c][known] = lvl[known] == c
        return sem_p, lvl_p

    return predict


# --- one case -----------------------------------------------------------------------------------
def truth_centroids(labels: Volume, values: Optional[Iterable[int]] = None) -> Dict[str, np.ndarray]:
    """True body centroids (RAS) from a VerSe-numbered label map; a sliver of a body at the edge of
    the field of view (below the detector's minimum size, ``MIN_BODY_MM3``) is not counted."""
    from ..labelling.instances import MIN_BODY_MM3

    return {i.truth: i.centroid_mm for i in instances_from_label_map(labels, list(values) if values else None)
            if i.volume_mm3 >= MIN_BODY_MM3}


def run_case(image: Volume, model, device: str = "cpu", predictor=None, outline=None):
    """The pipeline's vertebra and disc stages on one image: (findings, disc locations, segmentation, seconds).

    ``outline``: the body-outline network (`pipeline.vertebra_stage.load_outline(...).network`), or None
    for the vertebra network's own outlines."""
    from ..pipeline.vertebra_stage import find_vertebrae, input_segmentation, locate

    t0 = time.perf_counter()
    found = find_vertebrae(image, model, device, predictor)
    locations, warnings = locate(found) if found.labelling.vertebrae else ([], [])
    found.warnings.extend(warnings)
    seconds = time.perf_counter() - t0
    seg = input_segmentation(found, image, outline, device)
    return found, locations, seg, seconds


def score_case(
    name: str,
    kind: str,
    image: Volume,
    truth_labels: Optional[Volume],
    model,
    device: str = "cpu",
    predictor=None,
    body_values: Optional[Sequence[int]] = None,
    truth_discs: Optional[Dict[str, np.ndarray]] = None,
    outline=None,
) -> CaseEvaluation:
    """Run one case and score it against its truth.

    Args:
        body_values: the vertebra values the truth labels (vb3: 20-24); identification, centroid
            error and Dice are measured on those; a scan counts as "every vertebra right" when each
            is identified (the predictions of unlabelled levels, T12 or S1, are not held against it).
        truth_discs: level -> true disc centre (RAS) for the disc-centre error.
    """
    found, locations, seg, seconds = run_case(image, model, device, predictor, outline)
    ev = CaseEvaluation(name, kind, named=found.labelling.names, seconds=seconds, warnings=list(found.warnings))
    predicted = {v.label: np.asarray(v.centroid_mm) for v in found.labelling.vertebrae}
    if truth_labels is not None:
        truth = truth_centroids(truth_labels, body_values)
        ident = identification(truth, predicted)
        # "nothing named that is not there": a name absent from a fully labelled map counts against the
        # scan (a sliver at the edge that the truth does not count does not); partly labelled scans (vb3)
        # cannot tell, so there only the labelled levels count
        labelled = {LABEL_TO_VERTEBRA[int(v)] for v in np.unique(truth_labels.array) if int(v) in LABEL_TO_VERTEBRA}
        invented = [] if body_values is not None else [n for n in predicted if n not in labelled]
        n_pred = len(ident) + len(invented)
        body = [v for v in (body_values or sorted(LABEL_TO_VERTEBRA)) if v != _SACRUM]
        present = [v for v in body if LABEL_TO_VERTEBRA[v] in truth]
        dice = dice_per_label(np.asarray(truth_labels.array), np.asarray(seg.array), present) if present else {}
        ev.scores = ScanScores(ident, centroid_errors(truth, predicted), dice, n_pred)
    if truth_discs:
        found_discs = {loc.level: loc.center_mm for loc in locations}
        ev.discs_true = len(truth_discs)
        ev.discs_found = sum(1 for lv in truth_discs if lv in found_discs)
        ev.disc_error_mm = {lv: float(np.linalg.norm(found_discs[lv] - np.asarray(c))) for lv, c in truth_discs.items()
                            if lv in found_discs}
    ev.extra["locations"] = locations
    return ev


# --- data sets ----------------------------------------------------------------------------------
def bundle_split(bundle_path: Optional[Path]) -> Optional[List[str]]:
    """The real scans the bundle held out for validation (metadata spinegrade.training.split.real_validation)."""
    if bundle_path is None:
        return None
    meta = json.loads((Path(bundle_path) / "configs" / "metadata.json").read_text())
    split = meta.get("spinegrade", {}).get("training", {}).get("split", {})
    val = split.get("real_validation")
    return list(val) if val is not None else None


def evaluate_real(root: Path, names: Sequence[str], model, device: str = "cpu", oracle: bool = False,
                  outline=None) -> List[CaseEvaluation]:
    """vb3 scans: bodies L1-L5 (values 20-24) are what the truth labels."""
    from ..results.folder import read_volume

    out = []
    for n in names:
        folder = Path(root) / n
        if not (folder / "image.nii.gz").is_file() or not (folder / "vertebrae.nii.gz").is_file():
            log.warning("real case %s: image.nii.gz or vertebrae.nii.gz missing in %s; skipped", n, folder)
            continue
        image, labels = read_volume(folder / "image.nii.gz"), read_volume(folder / "vertebrae.nii.gz")
        values = sorted(int(v) for v in np.unique(labels.array) if int(v) in LABEL_TO_VERTEBRA)
        pred = oracle_predictor(labels) if oracle else None
        out.append(score_case(n, "real", image, labels, model, device, pred, body_values=values, outline=outline))
    return out


def evaluate_sct(folder: Path, model, device: str = "cpu", outline=None) -> CaseEvaluation:
    """``sct-t2_lumbar``: distance from the found T9/T10 disc to its landmark (the disc's posterior tip).

    Reports the distance to the found disc centre and to the centre of the found disc box's posterior
    face (the box without its margin), and the landmark's offset along the disc frame's posterior axis.
    """
    from ..discs.localise import MARGIN_MM
    from ..results.folder import read_volume

    folder = Path(folder)
    image = read_volume(folder / "image.nii.gz")
    meta = json.loads((folder / "meta.json").read_text())
    ijk = meta["landmarks_voxel_ijk"][SCT_LANDMARK]
    landmark = image.index_to_ras(np.asarray(ijk, float))
    ev = score_case("sct-t2_lumbar", "sct", image, None, model, device, outline=outline)
    ev.extra["landmark_ras"] = [round(float(x), 2) for x in landmark]
    loc = next((l for l in ev.extra["locations"] if l.level == "T9/T10"), None)
    if loc is None:
        ev.extra["t9_t10"] = None
        return ev
    post = loc.frame[:, 1]
    edge = loc.center_mm + (loc.half_size_mm[1] - MARGIN_MM) * post
    ev.extra["t9_t10"] = {
        "center_distance_mm": float(np.linalg.norm(landmark - loc.center_mm)),
        "posterior_edge_distance_mm": float(np.linalg.norm(landmark - edge)),
        "posterior_offset_mm": float((landmark - loc.center_mm) @ post),
        "posterior_half_depth_mm": float(loc.half_size_mm[1] - MARGIN_MM),
    }
    return ev


def evaluate_generated(n: int, model, device: str = "cpu", fovs: Sequence[str] = FOVS, contrasts: Sequence[str] = CONTRASTS,
                       oracle: bool = False, seed0: int = GENERATED_SEED0, outline=None) -> List[CaseEvaluation]:
    """``n`` generated cases per field of view and contrast, seeds ``seed0 + i`` (i counts over all cases)."""
    from ..phantom import generate_case

    out, i = [], 0
    for fov in fovs:
        for contrast in contrasts:
            for _ in range(n):
                seed = seed0 + i
                i += 1
                case = generate_case(seed, fov, contrast)
                discs = {d.level: np.asarray(d.center_mm) for d in case.truth.discs}
                pred = oracle_predictor(case.labels) if oracle else None
                ev = score_case(f"generated-{seed}-{fov}-{contrast}", "generated", case.image, case.labels, model, device,
                                pred, truth_discs=discs, outline=outline)
                ev.extra.update(fov=fov, contrast=contrast, seed=seed)
                out.append(ev)
    return out


# --- reporting ----------------------------------------------------------------------------------
def summary_lines(cases: Sequence[CaseEvaluation], title: str) -> List[str]:
    scored = [c for c in cases if c.scores is not None]
    lines = [f"== {title} =="]
    if not cases:
        return lines + ["(no cases)"]
    if scored:
        lines += ["  " + l for l in summarise([c.scores for c in scored]).lines()]
    errs = [e for c in cases for e in c.disc_error_mm.values()]
    if any(c.discs_true for c in cases):
        found, true = sum(c.discs_found for c in cases), sum(c.discs_true for c in cases)
        lines.append(f"  disc levels found: {found}/{true}")
        if errs:
            lines.append(f"  mean disc-centre error: {np.mean(errs):.2f} mm (max {np.max(errs):.2f})")
    # names the scores do not see where the reference stops at L5 (vb3): an L6 there is the sacrum misnamed
    extra = [c for c in cases if {"L6", "T13"} & set(c.named)]
    in_ref = [c for c in extra if c.scores is not None and {"L6", "T13"} & set(c.scores.identified)]
    lines.append(f"  L6 or T13 named: {len(extra)} of {len(cases)} scans ({len(in_ref)} with one in the reference); "
                 f"S1 named: {sum('S1' in c.named for c in cases)}")
    secs = [c.seconds for c in cases]
    lines.append(f"  labelling + discs: mean {np.mean(secs):.2f} s per case (max {np.max(secs):.2f})")
    wrong = [c for c in scored if not c.scores.all_correct]
    for c in wrong[:10]:
        miss = [k for k, v in c.scores.identified.items() if not v]
        lines.append(f"  not all right: {c.name}: named {' '.join(c.named) or '-'}; not identified {' '.join(miss)}")
    return lines


def group_by(cases: Sequence[CaseEvaluation], key: str) -> Dict[str, List[CaseEvaluation]]:
    out: Dict[str, List[CaseEvaluation]] = {}
    for c in cases:
        out.setdefault(str(c.extra.get(key)), []).append(c)
    return out


def sct_lines(ev: Optional[CaseEvaluation]) -> List[str]:
    if ev is None:
        return []
    lines = ["== sct-t2_lumbar (T9/T10 disc landmark, posterior tip) ==", f"  named: {' '.join(ev.named) or '-'}"]
    t = ev.extra.get("t9_t10")
    if not t:
        lines.append("  T9/T10 disc not found" + (f" ({'; '.join(ev.warnings)})" if ev.warnings else ""))
        return lines
    lines += [
        f"  distance to the found disc centre: {t['center_distance_mm']:.2f} mm",
        f"  distance to the found disc's posterior edge: {t['posterior_edge_distance_mm']:.2f} mm",
        f"  landmark along the disc's posterior axis: {t['posterior_offset_mm']:+.2f} mm from the centre "
        f"(posterior half-depth of the found disc {t['posterior_half_depth_mm']:.2f} mm)",
    ]
    return lines


def report_json(cases: Sequence[CaseEvaluation]) -> List[Dict[str, object]]:
    out = []
    for c in cases:
        d = c.to_dict()
        d.pop("locations", None)
        out.append(json.loads(json.dumps(d, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))))
    return out


__all__ = ["CaseEvaluation", "oracle_predictor", "score_case", "run_case", "evaluate_real", "evaluate_sct",
           "evaluate_generated", "bundle_split", "summary_lines", "sct_lines", "group_by", "truth_centroids"]
