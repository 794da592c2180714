"""The form every dataset adapter yields: `LabelledStudy` (one image + per-level labels).

A grade is either one class (``int``) or a *set* of classes the reader's answer allows
(``tuple`` of ints, sorted, two or more): RSNA 2024's "Normal/Mild" is ``(0, 1)`` and SPIDER's
binary "Disc narrowing = 1" is ``(1, 2, 3)`` on our 0-3 narrowing scale. Train on a set with the
set likelihood ``-log(sum of p[c] for c in the set)`` (see `LevelLabel.mask`), which does not
force the model to split its belief evenly inside the set; `LevelLabel.target` gives the uniform
soft target for code that can only take one.

Images are loaded lazily: iterating a dataset reads CSVs (and, for SPIDER, the small mask of
each study as it is reached) but never the images; `LabelledStudy.load()` reads the image now.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from ..errors import DatasetError
from ..io.volume import Volume
from ..names import HEADS, SEQUENCES, VERTEBRA_LABELS, next_vertebra

Grade = Union[int, Tuple[int, ...]]

#: How a level's ``center_ras`` was obtained (so a trainer knows how far to trust it).
CENTER_KINDS = (
    "mask_centroid",  # SPIDER: centroid of the disc's voxels in the reference mask
    "canal_point",  # RSNA: the reader's spinal-canal-stenosis point (just behind the disc, midline)
    "foramina_mean",  # RSNA: midpoint of the left and right neural-foramen points
    "subarticular_mean",  # RSNA: midpoint of the left and right subarticular points
    "given",  # folder format: centre columns in grades.csv
)


def normalise_grade(head: str, value: Any) -> Grade:
    """Check ``value`` (an int or an iterable of ints) against ``head``'s classes; sets come back sorted."""
    if head not in HEADS:
        raise ValueError(f"unknown grading head '{head}' (known: {', '.join(HEADS)})")
    classes = HEADS[head]
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value),)
    else:
        values = tuple(sorted({int(v) for v in value}))
    if not values:
        raise ValueError(f"{head}: an empty set of classes")
    bad = [v for v in values if v not in classes]
    if bad:
        raise ValueError(f"{head}: {bad[0]} is not one of its classes {classes[0]}-{classes[-1]}")
    return values[0] if len(values) == 1 else values


@dataclass
class LevelLabel:
    """What a dataset says about one disc level.

    grades: head name (`names.HEADS`) -> one class, or a tuple of the classes allowed. Only the
        heads the dataset grades at this level are present; an absent head is unknown.
    center_ras: disc-level anchor in RAS millimetres of the study's physical space, or None
        (the pipeline's own labelling must then find the level). ``center_kind`` says what it is.
    points_ras: where readers marked findings (RSNA: head -> RAS point), for evidence checks.
    """

    grades: Dict[str, Grade] = field(default_factory=dict)
    center_ras: Optional[Tuple[float, float, float]] = None
    center_kind: Optional[str] = None
    points_ras: Dict[str, Tuple[float, float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.grades = {h: normalise_grade(h, v) for h, v in self.grades.items()}
        if self.center_ras is not None:
            self.center_ras = tuple(float(c) for c in self.center_ras)
            if self.center_kind is None:
                self.center_kind = "given"
        if self.center_kind is not None and self.center_kind not in CENTER_KINDS:
            raise ValueError(f"center_kind must be one of {CENTER_KINDS}, not '{self.center_kind}'")

    def allowed(self, head: str) -> Tuple[int, ...]:
        """The classes the label allows for ``head`` (all of them when the head is ungraded)."""
        g = self.grades.get(head)
        if g is None:
            return HEADS[head]
        return g if isinstance(g, tuple) else (g,)

    def is_exact(self, head: str) -> bool:
        """True when ``head`` is graded with a single class."""
        return isinstance(self.grades.get(head), int)

    def mask(self, head: str) -> np.ndarray:
        """Boolean vector over ``HEADS[head]``: True for every allowed class (for the set likelihood)."""
        allowed = set(self.allowed(head))
        return np.array([c in allowed for c in HEADS[head]], dtype=bool)

    def target(self, head: str) -> np.ndarray:
        """Uniform probability vector over the allowed classes (a soft target)."""
        m = self.mask(head).astype(np.float64)
        return m / m.sum()


@dataclass
class LabelledStudy:
    """One training study: an image (read on demand) and per-level labels.

    study_id: unique within the dataset (SPIDER with ``series="all"``: ``"<patient>_<series>"``).
    levels: disc level name (``"L4/L5"``) -> `LevelLabel`.
    sequence: T1, T2, STIR or unknown (of the main image).
    source: ``"<dataset>: <file>"`` the labels came from (for messages and provenance).
    patient_id: split train/validation by this, never by study (SPIDER repeats a patient's
        grades on each of its series).
    image_path: the volume file or DICOM series folder the main image is read from.
    other_images: further series of the same study, name -> path (e.g. ``"Axial T2 (123)"``).
    subset: the dataset's own split when it has one (SPIDER overview.csv: training/validation).
    meta: anything else the adapter knows (series ids, descriptions).
    """

    study_id: str
    levels: Dict[str, LevelLabel]
    sequence: str
    source: str
    dataset: str
    image_path: str
    loader: Callable[[], Volume] = field(repr=False)
    patient_id: str = ""
    other_images: Dict[str, str] = field(default_factory=dict)
    subset: Optional[str] = None
    meta: Dict[str, Any] = field(default_factory=dict)
    segmentation_loader: Optional[Callable[[], Volume]] = field(default=None, repr=False)
    _image: Optional[Volume] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.sequence not in SEQUENCES:
            raise ValueError(f"sequence must be one of {SEQUENCES}, not '{self.sequence}'")
        self.patient_id = self.patient_id or self.study_id

    # --- images ---------------------------------------------------------------------------
    def load(self) -> Volume:
        """Read the main image now (not cached); raises InputError for an unreadable image."""
        return self.loader()

    @property
    def image(self) -> Volume:
        """The main image, read on first access and kept until `unload()`."""
        if self._image is None:
            self._image = self.loader()
        return self._image

    def unload(self) -> None:
        self._image = None

    @property
    def has_segmentation(self) -> bool:
        return self.segmentation_loader is not None

    def load_segmentation(self) -> Volume:
        """Reference label volume in SpineGrade's label values (SPIDER only), in the image's geometry."""
        if self.segmentation_loader is None:
            raise DatasetError(f"{self.source}: study {self.study_id} has no reference segmentation")
        return self.segmentation_loader()

    def axial_t2_name(self) -> Optional[str]:
        """The name of the study's axial T2 among `other_images` (RSNA: ``"Axial T2 (<series>)"``), or
        None; of several, the first (adapters list the best first: RSNA the one its points were marked on)."""
        names = [n for n in self.other_images if "axial" in n.lower() and "t2" in n.lower()]
        return names[0] if names else None

    def load_other(self, name: str) -> Volume:
        """Read one of `other_images` (any plane: an axial series is read as it is; of a DICOM series of
        several stacks, its largest)."""
        return self.load_other_stacks(name, largest_only=True)[0]

    def load_other_stacks(self, name: str, largest_only: bool = False) -> List[Volume]:
        """Every stack of one of `other_images`, the largest first (an axial series planned as a block
        of slices per disc holds several; ``io/dicom_series.py``); only the largest if asked."""
        from ..io.dicom_series import find_series, read_series, read_stacks
        from ..io.study import is_volume_file, load_volume_pixels

        if name not in self.other_images:
            raise DatasetError(f"study {self.study_id} has no other image '{name}' (has: {', '.join(self.other_images) or 'none'})")
        path = Path(self.other_images[name])
        if path.is_file() and is_volume_file(path):
            return [load_volume_pixels(path)]  # any plane: not the sagittal checks of a main image
        series = find_series([path])
        if not series:
            raise DatasetError(f"{path}: no DICOM image series in this folder")
        if largest_only:
            return [read_series(series[0])]
        stacks = read_stacks(series[0])
        if not stacks:
            raise DatasetError(f"{path}: no stack of three or more slices in this series")
        return stacks

    # --- labels ---------------------------------------------------------------------------
    def heads(self) -> List[str]:
        """Heads graded at any level of this study, in `names.HEADS` order."""
        present = {h for lv in self.levels.values() for h in lv.grades}
        return [h for h in HEADS if h in present]


class Dataset:
    """Base of the adapters: iterate `LabelledStudy` lazily, one at a time."""

    kind = "dataset"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.warnings: List[str] = []

    def study_ids(self) -> List[str]:  # pragma: no cover - each adapter implements it
        raise NotImplementedError

    def study(self, study_id: str) -> LabelledStudy:  # pragma: no cover
        raise NotImplementedError

    def heads(self) -> List[str]:
        """Heads this dataset can grade at all (`names.HEADS` order)."""
        raise NotImplementedError  # pragma: no cover

    def __len__(self) -> int:
        return len(self.study_ids())

    def validate(self) -> int:
        """Read every study's labels now (SPIDER masks, RSNA coordinate headers; not the images).

        Raises the first `DatasetError`; returns the number of labelled levels.
        """
        return sum(len(self.study(sid).levels) for sid in self.study_ids())

    def __iter__(self) -> Iterator[LabelledStudy]:
        for sid in self.study_ids():
            yield self.study(sid)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, {len(self)} studies)"


# --- level names ------------------------------------------------------------------------------
_LEVEL_RE = re.compile(r"^\s*([CTLS])(\d{1,2})\s*[/_\- ]?\s*([CTLS])(\d{1,2})\s*$", re.IGNORECASE)


def sort_levels(levels: Dict[str, "LevelLabel"]) -> Dict[str, "LevelLabel"]:
    """Levels in cranio-caudal order (T12/L1 before L1/L2 ... before L5/S1)."""
    from ..names import spine_index

    return dict(sorted(levels.items(), key=lambda kv: spine_index(kv[0].split("/")[0])))


def load_image(path: str, sequence: str) -> Volume:
    """Read a volume file or a one-series DICOM folder through `io.study.load_study` (picklable loader)."""
    from ..io.study import load_study

    return load_study(Path(path), sequence=None if sequence == "unknown" else sequence).volume


def parse_level(text: str) -> Optional[str]:
    """``"L4/L5"``, ``"l4_l5"``, ``"L4-L5"`` -> ``"L4/L5"``; None for anything that is not a disc level."""
    m = _LEVEL_RE.match(str(text))
    if not m:
        return None
    upper = f"{m.group(1).upper()}{int(m.group(2))}"
    lower = f"{m.group(3).upper()}{int(m.group(4))}"
    if upper not in VERTEBRA_LABELS or lower not in VERTEBRA_LABELS or upper == "S1":
        return None
    below = {next_vertebra(upper, has_t13=t, has_l6=l) for t in (False, True) for l in (False, True)}
    return f"{upper}/{lower}" if lower in below else None
