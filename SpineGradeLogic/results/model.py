"""`StudyResult` and its parts: the in-memory mirror of ``result.schema.json`` (schema version "1").

Coordinates are RAS millimetres of the input image's physical space. ``to_dict`` gives exactly
the JSON the schema describes; ``from_dict`` reads it back (unknown extra fields are kept in
``extra`` so a round trip loses nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..names import HEADS

SCHEMA_VERSION = "1"
Point = Tuple[float, float, float]


def _point(p: Sequence[float]) -> Point:
    p = tuple(float(x) for x in p)
    if len(p) != 3 or not all(np.isfinite(p)):
        raise ValueError(f"a point needs three finite coordinates, got {p}")
    return p  # type: ignore[return-value]


@dataclass
class Box:
    """Axis-aligned box in RAS millimetres."""

    min: Point
    max: Point

    def __post_init__(self) -> None:
        self.min, self.max = _point(self.min), _point(self.max)

    @classmethod
    def around(cls, points_ras: np.ndarray) -> "Box":
        pts = np.asarray(points_ras, dtype=float).reshape(-1, 3)
        return cls(tuple(pts.min(0)), tuple(pts.max(0)))

    @property
    def center(self) -> np.ndarray:
        return (np.asarray(self.min) + np.asarray(self.max)) / 2

    def to_dict(self) -> Dict[str, Any]:
        return {"min": list(self.min), "max": list(self.max)}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Box":
        return cls(d["min"], d["max"])


@dataclass
class Grade:
    """One head's answer for one level: the grade and a probability per class (summing to 1)."""

    grade: int
    classes: List[int]
    probabilities: List[float]

    def __post_init__(self) -> None:
        self.grade = int(self.grade)
        self.classes = [int(c) for c in self.classes]
        self.probabilities = [float(p) for p in self.probabilities]
        if len(self.classes) != len(self.probabilities):
            raise ValueError("a grade needs one probability per class")
        if self.grade not in self.classes:
            raise ValueError(f"grade {self.grade} is not one of the classes {self.classes}")

    @classmethod
    def from_probabilities(cls, head: str, probabilities: Sequence[float], index: Optional[int] = None) -> "Grade":
        """The grade of ``head`` whose class has the highest probability, or the class at ``index``
        (a decision taken at another operating point, ``grading/decision.py``)."""
        classes = list(HEADS[head])
        p = np.clip(np.asarray(probabilities, dtype=float), 0.0, 1.0)
        if p.shape != (len(classes),):
            raise ValueError(f"{head} needs {len(classes)} probabilities, got {p.shape}")
        p = p / p.sum() if p.sum() > 0 else np.full_like(p, 1.0 / len(p))
        if index is None:
            index = int(np.argmax(p))
        elif not 0 <= int(index) < len(classes):
            raise ValueError(f"{head} has {len(classes)} classes, not a class index {index}")
        return cls(classes[int(index)], classes, p.tolist())

    @classmethod
    def certain(cls, head: str, grade: int) -> "Grade":
        """A one-hot grade, as ground truth is written."""
        classes = list(HEADS[head])
        return cls(grade, classes, [1.0 if c == grade else 0.0 for c in classes])

    def to_dict(self) -> Dict[str, Any]:
        return {"grade": self.grade, "classes": self.classes, "probabilities": self.probabilities}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Grade":
        return cls(d["grade"], d["classes"], d["probabilities"])


@dataclass
class Vertebra:
    label: str
    centroid_mm: Point
    confidence: float
    bbox_mm: Optional[Box] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.centroid_mm = _point(self.centroid_mm)
        self.confidence = float(min(1.0, max(0.0, self.confidence)))

    def to_dict(self) -> Dict[str, Any]:
        d = {"label": self.label, "centroid_mm": list(self.centroid_mm), "confidence": self.confidence}
        if self.bbox_mm is not None:
            d["bbox_mm"] = self.bbox_mm.to_dict()
        return {**self.extra, **d}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Vertebra":
        known = {"label", "centroid_mm", "confidence", "bbox_mm"}
        box = Box.from_dict(d["bbox_mm"]) if d.get("bbox_mm") else None
        return cls(d["label"], d["centroid_mm"], d["confidence"], box, {k: v for k, v in d.items() if k not in known})


@dataclass
class Disc:
    level: str
    center_mm: Point
    grades: Dict[str, Grade] = field(default_factory=dict)
    normal: Optional[Point] = None
    bbox_mm: Optional[Box] = None
    saliency: Dict[str, str] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.center_mm = _point(self.center_mm)
        if self.normal is not None:
            n = np.asarray(_point(self.normal))
            norm = float(np.linalg.norm(n))
            if norm == 0:
                raise ValueError("a disc normal cannot be the zero vector")
            # normalise once; leave an already-unit vector untouched so a round trip is exact
            self.normal = tuple((n / norm).tolist()) if abs(norm - 1.0) > 1e-9 else tuple(n.tolist())

    @property
    def upper(self) -> str:
        return self.level.split("/")[0]

    @property
    def lower(self) -> str:
        return self.level.split("/")[1]

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {
            "level": self.level,
            "center_mm": list(self.center_mm),
            "grades": {h: g.to_dict() for h, g in self.grades.items()},
        }
        if self.normal is not None:
            d["normal"] = list(self.normal)
        if self.bbox_mm is not None:
            d["bbox_mm"] = self.bbox_mm.to_dict()
        if self.saliency:
            d["saliency"] = dict(self.saliency)
        return {**self.extra, **d}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Disc":
        known = {"level", "center_mm", "grades", "normal", "bbox_mm", "saliency"}
        return cls(
            d["level"],
            d["center_mm"],
            {h: Grade.from_dict(g) for h, g in d.get("grades", {}).items()},
            d.get("normal"),
            Box.from_dict(d["bbox_mm"]) if d.get("bbox_mm") else None,
            dict(d.get("saliency", {})),
            {k: v for k, v in d.items() if k not in known},
        )


@dataclass
class InputInfo:
    """What was read: the file or series, its shape and spacing, and why this series was chosen."""

    path: str
    shape: Tuple[int, int, int]
    spacing_mm: Tuple[float, float, float]
    series_instance_uid: Optional[str] = None
    sequence: str = "unknown"
    extra: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        d = {
            "path": self.path,
            "shape": [int(s) for s in self.shape],
            "spacing_mm": [float(s) for s in self.spacing_mm],
            "series_instance_uid": self.series_instance_uid,
            "sequence": self.sequence,
        }
        return {**self.extra, **d}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "InputInfo":
        known = {"path", "shape", "spacing_mm", "series_instance_uid", "sequence"}
        return cls(
            d["path"],
            tuple(d["shape"]),
            tuple(d["spacing_mm"]),
            d.get("series_instance_uid"),
            d.get("sequence", "unknown"),
            {k: v for k, v in d.items() if k not in known},
        )


@dataclass
class ModelInfo:
    name: str
    version: str
    sha256: str

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


@dataclass
class StudyResult:
    """Everything one pipeline run found in one study."""

    input: InputInfo
    vertebrae: List[Vertebra] = field(default_factory=list)
    discs: List[Disc] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    models: List[ModelInfo] = field(default_factory=list)
    segmentation: Optional[str] = None
    timing_s: Dict[str, float] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def vertebra(self, label: str) -> Optional[Vertebra]:
        return next((v for v in self.vertebrae if v.label == label), None)

    def disc(self, level: str) -> Optional[Disc]:
        return next((d for d in self.discs if d.level == level), None)

    def to_dict(self) -> Dict[str, Any]:
        d = {
            "schema_version": SCHEMA_VERSION,
            "input": self.input.to_dict(),
            "vertebrae": [v.to_dict() for v in self.vertebrae],
            "discs": [x.to_dict() for x in self.discs],
            "segmentation": self.segmentation,
            "warnings": list(self.warnings),
            "models": [m.to_dict() for m in self.models],
            "timing_s": {k: round(float(v), 4) for k, v in self.timing_s.items()},
        }
        return {**self.extra, **d}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "StudyResult":
        if str(d.get("schema_version")) != SCHEMA_VERSION:
            raise ValueError(f"unsupported result schema version {d.get('schema_version')!r}")
        known = {"schema_version", "input", "vertebrae", "discs", "segmentation", "warnings", "models", "timing_s"}
        return cls(
            InputInfo.from_dict(d["input"]),
            [Vertebra.from_dict(v) for v in d.get("vertebrae", [])],
            [Disc.from_dict(x) for x in d.get("discs", [])],
            list(d.get("warnings", [])),
            [ModelInfo(**m) for m in d.get("models", [])],
            d.get("segmentation"),
            dict(d.get("timing_s", {})),
            {k: v for k, v in d.items() if k not in known},
        )
