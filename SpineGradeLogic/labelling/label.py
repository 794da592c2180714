"""From instances to named vertebrae: order along the spine, decode, check, report.

This is the one entry point the pipeline calls (:func:`label_instances`); :func:`label_from_label_map`
gives the same structures from a ground-truth label map (tests, evaluation), and
:func:`named_label_map` writes the named bodies back as a VerSe-numbered label volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from ..io.volume import Volume
from ..names import SPINE_ORDER, VERTEBRA_LABELS
from ..results.model import Vertebra
from .decoder import Decoded, DecoderPriors, decode
from .evidence import EDGE_SACRUM_SOURCE, evidence_for
from .instances import SpineInstance, instances_from_label_map
from .ordering import order_along_spine

MIN_INSTANCES = 2  # fewer bodies than this is not a spine: never invent labels
UNANCHORED_WARNING = ("neither the sacrum nor C2 is in view: the levels rest on the level model alone, which "
                      "is least reliable on thoracic fields of view; check the names against a view that shows "
                      "the sacrum or C2")
EDGE_SACRUM_WARNING = ("the lowest bony piece is cut by the field of view's lower edge and was named S1, the top "
                       "of the sacrum (six lumbar vertebrae are rare); check the count against a view that shows "
                       "the whole sacrum")
MIN_CONFIDENCE = 0.5  # below this mean posterior the names are a guess: report, name nothing


@dataclass
class Labelling:
    """Named vertebrae, superior first, with what was found and decided on the way.

    Attributes:
        vertebrae: result entries (label, body centroid RAS, confidence, bbox), superior first.
        instances: the instance behind each entry of ``vertebrae``, same order.
        decoded: the decoder's full output (posteriors) or None where nothing was decoded.
        warnings: sentences for ``result.json``'s warnings.
        evidence_sources: what the names rest on ("network", "sacrum", "dens", ``EDGE_SACRUM_SOURCE``,
            "ground truth").
    """

    vertebrae: List[Vertebra] = field(default_factory=list)
    instances: List[SpineInstance] = field(default_factory=list)
    decoded: Optional[Decoded] = None
    warnings: List[str] = field(default_factory=list)
    evidence_sources: List[str] = field(default_factory=list)

    @property
    def names(self) -> List[str]:
        return [v.label for v in self.vertebrae]


def _vertebra(inst: SpineInstance, name: str, confidence: float) -> Vertebra:
    return Vertebra(name, tuple(inst.centroid_mm), float(confidence), inst.bbox_mm, {"volume_mm3": round(inst.volume_mm3, 1)})


def _ordered(instances: Sequence[SpineInstance], warnings: List[str]) -> List[SpineInstance]:
    """Instances superior first along the spine; off-curve pieces and anything below the sacrum dropped."""
    pts = np.array([i.centroid_mm for i in instances])
    sacra = [n for n, i in enumerate(instances) if i.kind == "sacrum"]
    so = order_along_spine(pts, protect=sacra)
    if len(so.outliers):
        warnings.append(f"{len(so.outliers)} vertebra-like structure(s) off the spine's curve were ignored")
    ordered = [instances[i] for i in so.order]
    pos = [n for n, i in enumerate(ordered) if i.kind == "sacrum"]
    if pos and pos[0] < len(ordered) - 1:  # coccyx or false positives below the sacrum
        warnings.append(f"{len(ordered) - 1 - pos[0]} structure(s) below the sacrum were ignored")
        ordered = ordered[: pos[0] + 1]
    return ordered


def _spacing(ordered: Sequence[SpineInstance]) -> List[float]:
    """Centroid distances between neighbours; a gap to the sacrum is set neutral (its centroid is deep)."""
    c = np.array([i.centroid_mm for i in ordered])
    d = list(np.linalg.norm(np.diff(c, axis=0), axis=1))
    body = [x for x, a, b in zip(d, ordered[:-1], ordered[1:]) if a.kind != "sacrum" and b.kind != "sacrum"]
    med = float(np.median(body)) if body else 1.0
    return [x if (a.kind != "sacrum" and b.kind != "sacrum") else med for x, a, b in zip(d, ordered[:-1], ordered[1:])]


def _count_warnings(names: Sequence[str], decoded: Decoded) -> List[str]:
    out = []
    if "L6" in names:
        out.append("transitional anatomy: six lumbar vertebrae (L6 named); check the count against a whole-spine view")
    if "T13" in names:
        out.append("transitional anatomy: thirteen thoracic vertebrae (T13 named); check the count against a whole-spine view")
    for i in decoded.skips:
        out.append(f"a vertebra between {names[i]} and {names[i + 1]} was not detected; its level is inferred")
    return out


def label_instances(
    instances: Sequence[SpineInstance],
    priors: DecoderPriors = DecoderPriors(),
    anchors: bool = True,
    min_instances: int = MIN_INSTANCES,
    min_confidence: float = MIN_CONFIDENCE,
) -> Labelling:
    """Name vertebral-body instances.

    Args:
        instances: unordered instances (bodies and at most one sacrum), each optionally carrying the
            network's probability vector over ``SPINE_ORDER``.
        priors: the decoder's priors (T13, L6, missed vertebra).
        anchors: use the sacrum and dens anchors besides the network's evidence.
        min_instances: fewer instances than this -> no spine: a warning, nothing named.
        min_confidence: if the mean confidence is below this, nothing is named (a warning says why);
            single vertebrae below it are named but listed in a warning.
    """
    out = Labelling()
    if len(instances) < min_instances:
        out.warnings.append(
            f"no spine found: {len(instances)} vertebral bod{'y' if len(instances) == 1 else 'ies'} detected "
            f"(at least {min_instances} needed); no vertebra was named"
        )
        return out
    ordered = _ordered(list(instances), out.warnings)
    if len(ordered) < min_instances:
        out.warnings.append("no spine found: too few vertebral bodies along a spine curve; no vertebra was named")
        return out
    evidence, used = evidence_for(ordered, anchors)
    decoded = decode(evidence, _spacing(ordered), priors)
    if EDGE_SACRUM_SOURCE in used and decoded.labels[-1] != "S1":  # the cut piece was not taken as the sacrum
        used = [u for u in used if u != EDGE_SACRUM_SOURCE]
    out.evidence_sources = used
    out.decoded = decoded
    if not used:
        out.warnings.append(
            "vertebrae were found but nothing identifies their levels (no sacrum, no C2, no level model); no vertebra was named"
        )
        return out
    if float(np.mean(decoded.confidence)) < min_confidence:
        out.warnings.append(
            f"vertebrae were found but their levels are uncertain (mean confidence {np.mean(decoded.confidence):.2f}); "
            "no vertebra was named"
        )
        return out
    out.instances = ordered
    out.vertebrae = [_vertebra(i, n, c) for i, n, c in zip(ordered, decoded.labels, decoded.confidence)]
    out.warnings.extend(_count_warnings(decoded.labels, decoded))
    if EDGE_SACRUM_SOURCE in used:
        out.warnings.append(EDGE_SACRUM_WARNING)
    elif anchors and used == ["network"]:
        out.warnings.append(UNANCHORED_WARNING)
    low = [v.label for v in out.vertebrae if v.confidence < min_confidence]
    if low:
        out.warnings.append(f"uncertain vertebra level(s): {', '.join(low)} (confidence below {min_confidence})")
    return out


def label_from_label_map(labels: Volume, values: Optional[Sequence[int]] = None) -> Labelling:
    """Ground truth as a :class:`Labelling`: names from the VerSe values, ordered along the spine."""
    inst = instances_from_label_map(labels, values)
    out = Labelling(evidence_sources=["ground truth"])
    if not inst:
        out.warnings.append("no vertebra in the label map")
        return out
    inst.sort(key=lambda i: SPINE_ORDER.index(i.truth))
    out.instances = inst
    out.vertebrae = [_vertebra(i, i.truth, 1.0) for i in inst]
    return out


def named_label_map(labelling: Labelling, grid: Optional[Volume] = None) -> Volume:
    """The named bodies as a VerSe-numbered label volume on the instances' grid (or ``grid``)."""
    if grid is None:
        if not labelling.instances:
            raise ValueError("no instances and no grid: nothing to draw on")
        grid = labelling.instances[0].grid
    arr = np.zeros(grid.shape, np.uint8)
    for inst, v in zip(labelling.instances, labelling.vertebrae):
        if inst.grid.same_geometry(grid):
            arr[tuple(inst.voxels.T)] = VERTEBRA_LABELS[v.label]
        else:  # another grid: map voxel centres across (nearest voxel)
            ijk = np.rint(grid.ras_to_index(inst.points_ras())).astype(int)
            ok = np.all((ijk >= 0) & (ijk < np.array(grid.shape)), axis=1)
            arr[tuple(ijk[ok].T)] = VERTEBRA_LABELS[v.label]
    return grid.with_array(arr)
