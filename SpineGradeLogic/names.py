"""Anatomical names, label values and grading heads shared by every part of SpineGrade.

Label values follow VerSe numbering for vertebrae (1-7 C1-C7, 8-19 T1-T12, 20-24 L1-L5, 25 L6,
26 sacrum, 28 T13). A disc is 100 + the value of the vertebra above it (L4/L5 = 123, L5/S1 = 124).
Label volumes written by SpineGrade hold the vertebral *body* under the vertebra's value and its
posterior elements under ``POSTERIOR_OFFSET`` + that value, so a body centroid is one mask away.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

VERTEBRA_LABELS: Dict[str, int] = {
    **{f"C{i}": i for i in range(1, 8)},
    **{f"T{i}": 7 + i for i in range(1, 13)},
    **{f"L{i}": 19 + i for i in range(1, 6)},
    "L6": 25,
    "S1": 26,
    "T13": 28,
}
LABEL_TO_VERTEBRA: Dict[int, str] = {v: k for k, v in VERTEBRA_LABELS.items()}

#: Cranio-caudal order, transitional vertebrae in their anatomical place.
SPINE_ORDER: Tuple[str, ...] = (
    *[f"C{i}" for i in range(1, 8)],
    *[f"T{i}" for i in range(1, 13)],
    "T13",
    *[f"L{i}" for i in range(1, 6)],
    "L6",
    "S1",
)

DISC_OFFSET = 100
POSTERIOR_OFFSET = 40  # posterior elements of vertebra v: 40 + v (41..68)
SPINAL_CANAL = 200  # thecal sac and its CSF, the whole canal content
SPINAL_CORD = 201  # cord down to the conus medullaris

OTHER_LABELS: Dict[int, str] = {
    SPINAL_CANAL: "spinal_canal",
    SPINAL_CORD: "spinal_cord",
}


def disc_level(upper: str, lower: str) -> str:
    """Name of the disc between two vertebrae, e.g. ``disc_level("L5", "S1") == "L5/S1"``."""
    return f"{upper}/{lower}"


def disc_label(upper: str) -> int:
    """Label value of the disc below vertebra ``upper`` (L4 -> 123 for L4/L5)."""
    return DISC_OFFSET + VERTEBRA_LABELS[upper]


def label_name(value: int) -> str:
    """Human-readable name of any label value SpineGrade writes."""
    if value in LABEL_TO_VERTEBRA:
        return LABEL_TO_VERTEBRA[value]
    if POSTERIOR_OFFSET < value <= POSTERIOR_OFFSET + 28 and value - POSTERIOR_OFFSET in LABEL_TO_VERTEBRA:
        return f"{LABEL_TO_VERTEBRA[value - POSTERIOR_OFFSET]} posterior elements"
    if DISC_OFFSET < value <= DISC_OFFSET + 28 and value - DISC_OFFSET in LABEL_TO_VERTEBRA:
        upper = LABEL_TO_VERTEBRA[value - DISC_OFFSET]
        lower = next_vertebra(upper)
        return f"{upper}/{lower} disc" if lower else f"{upper} disc"
    if value in OTHER_LABELS:
        return OTHER_LABELS[value]
    raise KeyError(f"unknown SpineGrade label value {value}")


def next_vertebra(name: str, has_t13: bool = False, has_l6: bool = False) -> str | None:
    """The vertebra below ``name`` given which transitional vertebrae are present."""
    has_t13 = has_t13 or name == "T13"
    has_l6 = has_l6 or name == "L6"
    order = [v for v in SPINE_ORDER if (v != "T13" or has_t13) and (v != "L6" or has_l6)]
    i = order.index(name)
    return order[i + 1] if i + 1 < len(order) else None


def spine_index(name: str) -> int:
    """Position of a vertebra along the spine (C1 = 0); raises KeyError for an unknown name."""
    return SPINE_ORDER.index(name)


# Grading heads: name -> the class values it reports, in order.
HEADS: Dict[str, Tuple[int, ...]] = {
    "pfirrmann": (1, 2, 3, 4, 5),
    "disc_narrowing": (0, 1, 2, 3),
    "disc_bulging": (0, 1),
    "disc_herniation": (0, 1),
    "spondylolisthesis": (0, 1),
    "upper_endplate_defect": (0, 1),
    "lower_endplate_defect": (0, 1),
    "modic": (0, 1, 2, 3),
    "central_canal_stenosis": (0, 1, 2, 3),
    "foraminal_stenosis_left": (0, 1, 2, 3),
    "foraminal_stenosis_right": (0, 1, 2, 3),
    "lateral_recess_stenosis_left": (0, 1, 2, 3),
    "lateral_recess_stenosis_right": (0, 1, 2, 3),
}
HEAD_NAMES: List[str] = list(HEADS)

SEQUENCES = ("T1", "T2", "STIR", "unknown")
