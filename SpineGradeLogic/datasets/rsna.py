"""RSNA 2024 Lumbar Spine Degenerative Classification (Kaggle).

Layout read::

    <root>/train.csv                        study_id + 25 columns <condition>_<level>, e.g.
                                            spinal_canal_stenosis_l4_l5; values Normal/Mild,
                                            Moderate, Severe or blank
    <root>/train_label_coordinates.csv      study_id, series_id, instance_number, condition,
                                            level, x, y   (condition "Spinal Canal Stenosis",
                                            level "L4/L5"; x = column, y = row in pixels)
    <root>/train_series_descriptions.csv    study_id, series_id, series_description
                                            ("Sagittal T1", "Sagittal T2/STIR", "Axial T2")
    <root>/train_images/<study>/<series>/<instance>.dcm

Severities: Normal/Mild -> the class set (0, 1), Moderate -> 2, Severe -> 3 (DESIGN.md).
A level's centre is the reader's spinal-canal point when there is one (midline, just behind the
disc), else the midpoint of the left and right foramen points, else of the subarticular points.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from ..errors import DatasetError
from ..io.volume import LPS_TO_RAS
from functools import partial

from .common import Dataset, LabelledStudy, LevelLabel, load_image, parse_level, sort_levels
from .tables import Table, error, read_table

TRAIN = "train.csv"
COORDINATES = "train_label_coordinates.csv"
DESCRIPTIONS = "train_series_descriptions.csv"
IMAGES = "train_images"

#: RSNA condition (snake case, as in train.csv) -> our head. Left/right are the patient's.
CONDITIONS: Dict[str, str] = {
    "spinal_canal_stenosis": "central_canal_stenosis",
    "left_neural_foraminal_narrowing": "foraminal_stenosis_left",
    "right_neural_foraminal_narrowing": "foraminal_stenosis_right",
    "left_subarticular_stenosis": "lateral_recess_stenosis_left",
    "right_subarticular_stenosis": "lateral_recess_stenosis_right",
}
SEVERITIES: Dict[str, object] = {"normal/mild": (0, 1), "moderate": 2, "severe": 3}
#: Main image preference: the sagittal T2/STIR carries the canal and disc; T1 the foramina.
DESCRIPTION_PREFERENCE = ("sagittal t2/stir", "sagittal t1")


class Coordinate(NamedTuple):
    row: int
    series_id: str
    instance: int
    head: str
    level: str
    x: float
    y: float


def _snake(text: str) -> str:
    return "_".join(text.strip().lower().replace("-", " ").split())


def parse_column(column: str) -> Optional[Tuple[str, str]]:
    """``"left_neural_foraminal_narrowing_l4_l5"`` -> ``("foraminal_stenosis_left", "L4/L5")``."""
    col = _snake(column)
    for condition, head in CONDITIONS.items():
        if col.startswith(condition + "_"):
            level = parse_level(col[len(condition) + 1:])
            return (head, level) if level else None
    return None


def sequence_of_description(description: str) -> str:
    d = description.upper()
    for token, seq in (("T2", "T2"), ("T1", "T1"), ("STIR", "STIR")):  # "T2/STIR" counts as T2
        if token in d:
            return seq
    return "unknown"


def pixel_to_ras(ipp, iop, pixel_spacing, x: float, y: float) -> Tuple[float, float, float]:
    """DICOM pixel (x = column, y = row; 0 = the first pixel's centre) on one image -> RAS mm."""
    ipp = np.asarray(ipp, dtype=float)
    row_dir, col_dir = np.asarray(iop[:3], dtype=float), np.asarray(iop[3:6], dtype=float)
    spacing_between_rows, spacing_between_columns = float(pixel_spacing[0]), float(pixel_spacing[1])
    lps = ipp + x * spacing_between_columns * row_dir + y * spacing_between_rows * col_dir
    return tuple(float(v) for v in LPS_TO_RAS @ lps)


class RsnaDataset(Dataset):
    """RSNA 2024 lumbar: one `LabelledStudy` per study, main image its Sagittal T2/STIR series."""

    kind = "rsna"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.train_path = self.root / TRAIN
        self.coords_path = self.root / COORDINATES
        self.desc_path = self.root / DESCRIPTIONS
        self.images_dir = self.root / IMAGES
        self._grades, self._grade_rows = self._read_train(read_table(self.train_path, ("study_id",), "RSNA grades"))
        self._series = self._read_descriptions(read_table(
            self.desc_path, ("study_id", "series_id", "series_description"), "RSNA series descriptions"))
        self._coords = self._read_coordinates(read_table(
            self.coords_path, ("study_id", "series_id", "instance_number", "condition", "level", "x", "y"),
            "RSNA label coordinates"))
        self._main: Dict[str, str] = {}
        self._ids = self._study_list()

    # --- CSVs -------------------------------------------------------------------------------
    def _read_train(self, table: Table):
        columns: Dict[str, Tuple[str, str]] = {}
        for col in table.columns:
            if col == "study_id" or not col:
                continue
            parsed = parse_column(col)
            if parsed is None:
                raise table.error(1, f"unknown column '{col}': expected <condition>_<level> such as "
                                  f"spinal_canal_stenosis_l4_l5 (conditions: {', '.join(CONDITIONS)})")
            columns[col] = parsed
        grades: Dict[str, Dict[str, Dict[str, object]]] = {}
        rows: Dict[str, int] = {}
        for row in table:
            sid = row.get("study_id")
            if not sid:
                raise table.error(row.number, "'study_id' is blank")
            if sid in rows:
                raise table.error(row.number, f"study {sid} appears twice (first at row {rows[sid]})")
            rows[sid] = row.number
            levels: Dict[str, Dict[str, object]] = {}
            for col, (head, level) in columns.items():
                text = row.get(col)
                if not text:
                    continue
                key = " ".join(text.lower().replace("_", "/").split()).replace(" / ", "/")
                if key not in SEVERITIES:
                    raise table.error(row.number, f"'{col}' is '{text}'; must be Normal/Mild, Moderate, Severe or blank")
                levels.setdefault(level, {})[head] = SEVERITIES[key]
            grades[sid] = levels
        return grades, rows

    def _read_descriptions(self, table: Table) -> Dict[str, Dict[str, str]]:
        series: Dict[str, Dict[str, str]] = {}
        rows: Dict[Tuple[str, str], int] = {}
        for row in table:
            sid, ser = row.get("study_id"), row.get("series_id")
            if not sid or not ser:
                raise table.error(row.number, "'study_id' and 'series_id' must not be blank")
            if (sid, ser) in rows:
                raise table.error(row.number, f"series {ser} of study {sid} appears twice (first at row {rows[(sid, ser)]})")
            rows[(sid, ser)] = row.number
            series.setdefault(sid, {})[ser] = row.get("series_description")
        return series

    def _read_coordinates(self, table: Table) -> Dict[str, List[Coordinate]]:
        coords: Dict[str, List[Coordinate]] = {}
        orphans = 0
        for row in table:
            sid, ser = row.get("study_id"), row.get("series_id")
            if not sid or not ser:
                raise table.error(row.number, "'study_id' and 'series_id' must not be blank")
            condition = _snake(row.get("condition"))
            if condition not in CONDITIONS:
                raise table.error(row.number, f"unknown condition '{row.get('condition')}' (known: "
                                  + ", ".join(c.replace('_', ' ').title() for c in CONDITIONS) + ")")
            level = parse_level(row.get("level"))
            if level is None:
                raise table.error(row.number, f"unknown level '{row.get('level')}' (expected a disc level such as L4/L5)")
            instance = table.int_value(row, "instance_number", lo=1)
            if instance is None:
                raise table.error(row.number, "'instance_number' is blank")
            x, y = table.float_value(row, "x"), table.float_value(row, "y")
            if x is None or y is None:
                raise table.error(row.number, "'x' and 'y' must not be blank")
            if ser not in self._series.get(sid, {}):
                raise table.error(row.number, f"series {ser} of study {sid} is not in {DESCRIPTIONS}")
            if sid not in self._grades:
                orphans += 1
                continue
            coords.setdefault(sid, []).append(Coordinate(row.number, ser, instance, CONDITIONS[condition], level, x, y))
        if orphans:
            self.warnings.append(f"{self.coords_path}: {orphans} coordinate row(s) name studies that {TRAIN} does not grade; ignored")
        return coords

    def _study_list(self) -> List[str]:
        missing, no_sagittal = 0, []
        ids: List[str] = []
        for sid in self._grades:
            folder = self.images_dir / sid
            if not folder.is_dir():
                missing += 1
                continue
            present = {ser: d for ser, d in self._series.get(sid, {}).items() if (folder / ser).is_dir()}
            ranked = sorted(
                (ser for ser, d in present.items() if d.strip().lower() in DESCRIPTION_PREFERENCE),
                key=lambda s: (DESCRIPTION_PREFERENCE.index(present[s].strip().lower()),
                               -sum(c.series_id == s for c in self._coords.get(sid, [])), s))
            if not ranked:
                no_sagittal.append(sid)
                continue
            self._main[sid] = ranked[0]
            ids.append(sid)
        if missing:
            self.warnings.append(f"{missing} graded stud(y/ies) have no folder under {self.images_dir}; skipped")
        if no_sagittal:
            self.warnings.append(f"{len(no_sagittal)} stud(y/ies) have no sagittal series on disk "
                                 f"(e.g. {no_sagittal[0]}); skipped")
        return ids

    # --- studies ----------------------------------------------------------------------------
    def study_ids(self) -> List[str]:
        return list(self._ids)

    def heads(self) -> List[str]:
        return list(CONDITIONS.values())

    def _point(self, sid: str, c: Coordinate) -> Tuple[float, float, float]:
        import pydicom
        from pydicom.errors import InvalidDicomError

        series_dir = self.images_dir / sid / c.series_id
        if not series_dir.is_dir():
            raise error(self.coords_path, c.row, f"series folder {series_dir} does not exist")
        f = series_dir / f"{c.instance}.dcm"
        if not f.is_file():
            raise error(self.coords_path, c.row, f"instance {c.instance} does not exist in series {c.series_id} "
                        f"of study {sid} (no {f})")
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=[
                "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"])
        except (InvalidDicomError, OSError, ValueError, EOFError) as e:
            raise error(self.coords_path, c.row, f"{f} is not a readable DICOM file ({e})") from None
        ipp, iop, ps = (getattr(ds, k, None) for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"))
        if ipp is None or iop is None or ps is None or len(ipp) != 3 or len(iop) != 6 or len(ps) != 2:
            raise error(self.coords_path, c.row, f"{f} lacks the position, orientation or pixel spacing "
                        "needed to place the point")
        rows, cols = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
        if rows and cols and not (-0.5 <= c.x <= cols - 0.5 and -0.5 <= c.y <= rows - 0.5):
            raise error(self.coords_path, c.row, f"point ({c.x}, {c.y}) lies outside the {cols}x{rows} image {f}")
        return pixel_to_ras(ipp, iop, ps, c.x, c.y)

    def study(self, study_id: str) -> LabelledStudy:
        if study_id not in self._main:
            raise DatasetError(f"{self.root}: no usable RSNA study '{study_id}'")
        levels: Dict[str, LevelLabel] = {lv: LevelLabel(grades=dict(g)) for lv, g in self._grades[study_id].items()}
        for c in self._coords.get(study_id, []):
            label = levels.setdefault(c.level, LevelLabel())
            if c.head not in label.points_ras:  # the first mark of a head at a level counts
                label.points_ras[c.head] = self._point(study_id, c)
        for label in levels.values():
            label.center_ras, label.center_kind = _centre(label.points_ras)
        series = self._main[study_id]
        descriptions = self._series[study_id]
        folder = self.images_dir / study_id / series
        seq = sequence_of_description(descriptions[series])
        # best first: a study of several axial series is read through the one its points were marked on
        marks = {ser: sum(c.series_id == ser for c in self._coords.get(study_id, [])) for ser in descriptions}
        others = {f"{descriptions[ser]} ({ser})": str(self.images_dir / study_id / ser)
                  for ser in sorted(descriptions, key=lambda s: (-marks[s], s))
                  if ser != series and (self.images_dir / study_id / ser).is_dir()}
        return LabelledStudy(
            study_id=study_id, levels=sort_levels(levels),
            sequence=seq, source=f"rsna: {self.train_path}", dataset=self.kind, image_path=str(folder),
            loader=partial(load_image, str(folder), seq), patient_id=study_id, other_images=others,
            meta={"series_id": series, "series_description": descriptions[series],
                  "train_row": self._grade_rows[study_id],
                  "coordinate_rows": [c.row for c in self._coords.get(study_id, [])]},
        )


def _centre(points: Dict[str, Tuple[float, float, float]]):
    if "central_canal_stenosis" in points:
        return points["central_canal_stenosis"], "canal_point"
    for left, right, kind in (("foraminal_stenosis_left", "foraminal_stenosis_right", "foramina_mean"),
                              ("lateral_recess_stenosis_left", "lateral_recess_stenosis_right", "subarticular_mean")):
        if left in points and right in points:
            return tuple(float(v) for v in (np.asarray(points[left]) + np.asarray(points[right])) / 2), kind
    return None, None
