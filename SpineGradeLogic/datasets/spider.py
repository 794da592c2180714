"""SPIDER lumbar spine MRI (van der Graaf et al., Sci Data 2024; Zenodo 10159290).

Layout read::

    <root>/images/<patient>_<series>.mha      series: t1, t2, t2_SPACE
    <root>/masks/<patient>_<series>.mha       reference segmentation, same geometry
    <root>/radiological_gradings.csv          Patient, IVD label, Modic, UP endplate, LOW endplate,
                                              Spondylolisthesis, Disc herniation, Disc narrowing,
                                              Disc bulging, Pfirrman grade
    <root>/overview.csv                       optional: new_file_name (e.g. "1_t2"), subset

Mask values: vertebrae 1-25 numbered from the bottom (L5 = 1, L4 = 2, ...), 101-125 the same
vertebrae when only partly in the field of view, 100 the spinal canal, discs 201-225 numbered from
the bottom too (201 = L5/S1, 202 = L4/L5, ...). A grading row's ``IVD label`` N is mask value
200 + N. Counting from the bottom assumes five lumbar vertebrae (SPIDER does not mark L6/T13).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import DatasetError
from ..io.volume import Volume
from ..names import DISC_OFFSET, SPINAL_CANAL, VERTEBRA_LABELS
from functools import partial

from .common import Dataset, LabelledStudy, LevelLabel, load_image, sort_levels
from .tables import Table, read_table

GRADINGS = "radiological_gradings.csv"
OVERVIEW = "overview.csv"

#: Vertebrae counted from the bottom as SPIDER does: index 0 is mask value 1 (L5).
FROM_BOTTOM: Tuple[str, ...] = (
    *[f"L{i}" for i in range(5, 0, -1)],
    *[f"T{i}" for i in range(12, 0, -1)],
    *[f"C{i}" for i in range(7, 0, -1)],
)

# SPIDER column -> (our head, {SPIDER value -> our grade}). Unlisted values are errors.
_BINARY = {0: 0, 1: 1}
COLUMN_MAP: Dict[str, Tuple[str, Dict[int, object]]] = {
    "Modic": ("modic", {0: 0, 1: 1, 2: 2, 3: 3}),
    "UP endplate": ("upper_endplate_defect", _BINARY),
    "LOW endplate": ("lower_endplate_defect", _BINARY),
    "Spondylolisthesis": ("spondylolisthesis", _BINARY),
    "Disc herniation": ("disc_herniation", _BINARY),
    # SPIDER grades narrowing present/absent; present is any of our mild, moderate, severe.
    "Disc narrowing": ("disc_narrowing", {0: 0, 1: (1, 2, 3)}),
    "Disc bulging": ("disc_bulging", _BINARY),
    "Pfirrman grade": ("pfirrmann", {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
}
_ALIASES = {"pfirrmann grade": "Pfirrman grade", "pfirrmann": "Pfirrman grade", "ivd": "IVD label"}

#: Main-series preference when a patient has several (Pfirrmann is read on T2).
SERIES_PREFERENCE = ("t2", "t2_space", "t1")
_IMAGE_RE = re.compile(r"^([^_]+)_(.+)\.mha$", re.IGNORECASE)


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name.strip().lower())


def level_of_ivd(n: int) -> str:
    """SPIDER disc number (1 = lowest) -> level name: 1 -> L5/S1, 2 -> L4/L5, 6 -> T12/L1."""
    if not 1 <= n <= len(FROM_BOTTOM):
        raise ValueError(f"IVD label {n} is outside 1-{len(FROM_BOTTOM)}")
    upper = FROM_BOTTOM[n - 1]
    lower = "S1" if n == 1 else FROM_BOTTOM[n - 2]
    return f"{upper}/{lower}"


def spider_label_lut() -> np.ndarray:
    """Lookup table SPIDER mask value -> SpineGrade label value (0 where SPIDER's has no meaning to us)."""
    lut = np.zeros(256, dtype=np.int16)
    for n, name in enumerate(FROM_BOTTOM, start=1):
        lut[n] = VERTEBRA_LABELS[name]
        lut[100 + n] = VERTEBRA_LABELS[name]  # partly visible: still that vertebra
        lut[200 + n] = DISC_OFFSET + VERTEBRA_LABELS[name]  # disc below vertebra n
    lut[100] = SPINAL_CANAL
    return lut


def sequence_of_series(series: str) -> str:
    s = series.lower()
    if s.startswith("t2"):
        return "T2"
    if s.startswith("t1"):
        return "T1"
    if "stir" in s:
        return "STIR"
    return "unknown"


def _patient_key(text: str) -> str:
    return str(int(text)) if text.isdigit() else text


def read_mask(path: Path) -> Volume:
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise DatasetError(f"{path}: not a readable mask image") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise DatasetError(f"{path}: a mask must be a 3-D single-component label image")
    return Volume.from_sitk(image, source=str(path))


def disc_centroids_ras(mask: Volume) -> Dict[int, Tuple[float, float, float]]:
    """Mask value (201-225) -> RAS centroid of its voxels, for every disc value present."""
    a = mask.array
    idx = np.nonzero((a > 200) & (a <= 200 + len(FROM_BOTTOM)))
    if not idx[0].size:
        return {}
    values = a[idx].astype(np.int64)
    counts = np.bincount(values)
    out: Dict[int, Tuple[float, float, float]] = {}
    sums = [np.bincount(values, weights=i.astype(np.float64)) for i in idx]
    for v in np.nonzero(counts)[0]:
        ijk = np.array([s[v] / counts[v] for s in sums])
        out[int(v)] = tuple(float(c) for c in mask.index_to_ras(ijk))
    return out


class SpiderDataset(Dataset):
    """SPIDER: one `LabelledStudy` per patient (``series="main"``, T2 preferred) or per series (``"all"``).

    A patient's grades are the same on every series; with ``series="all"`` split by
    ``patient_id``. Disc centres are the centroids of the disc's voxels in that series' mask.
    """

    kind = "spider"

    def __init__(self, root: Path, series: str = "main") -> None:
        super().__init__(root)
        if series not in ("main", "all"):
            raise ValueError("series must be 'main' or 'all'")
        self.series_mode = series
        self.images_dir = self.root / "images"
        self.masks_dir = self.root / "masks"
        if not self.images_dir.is_dir():
            raise DatasetError(f"{self.root}: no images/ folder (SPIDER keeps its .mha images in images/)")
        self.gradings_path = self.root / GRADINGS
        self._grades, self._rows = self._read_gradings(read_table(self.gradings_path, what="SPIDER gradings"))
        self._subset = self._read_overview()
        self._series = self._find_series()
        self._ids = self._study_list()

    # --- reading ----------------------------------------------------------------------------
    def _read_gradings(self, table: Table):
        by_norm = {_norm(c): c for c in table.columns if c}

        def column(canonical: str) -> Optional[str]:
            keys = [_norm(canonical)] + [a for a, c in _ALIASES.items() if c == canonical]
            return next((by_norm[k] for k in keys if k in by_norm), None)

        resolved = {c: column(c) for c in ("Patient", "IVD label", *COLUMN_MAP)}
        missing = [c for c, col in resolved.items() if col is None]
        if missing:
            raise table.error(1, "missing column" + ("s " if len(missing) > 1 else " ")
                              + ", ".join(f"'{c}'" for c in missing) + f" (found: {', '.join(table.columns)})")
        grades: Dict[str, Dict[int, Dict[str, object]]] = {}
        rows: Dict[Tuple[str, int], int] = {}
        for row in table:
            patient = row.get(resolved["Patient"])
            if not patient:
                raise table.error(row.number, "'Patient' is blank")
            patient = _patient_key(patient)
            ivd = table.int_value(row, resolved["IVD label"])
            if ivd is None:
                raise table.error(row.number, "'IVD label' is blank")
            if ivd == 0:  # names no disc (mask discs start at 201); seen in the released file
                self.warnings.append(f"{table.path}, row {row.number}: 'IVD label' is 0 (no disc); row skipped")
                continue
            if not 1 <= ivd <= len(FROM_BOTTOM):
                raise table.error(row.number, f"'IVD label' is {ivd}; must be 1-{len(FROM_BOTTOM)} (1 = L5/S1, mask value 201)")
            key = (patient, ivd)
            if key in rows:
                raise table.error(row.number, f"patient {patient}, IVD label {ivd} is graded twice (first at row {rows[key]})")
            rows[key] = row.number
            g: Dict[str, object] = {}
            for canonical, (head, mapping) in COLUMN_MAP.items():
                v = table.int_value(row, resolved[canonical], allowed=sorted(mapping))
                if v is not None:
                    g[head] = mapping[v]
            grades.setdefault(patient, {})[ivd] = g
        return grades, rows

    def _read_overview(self) -> Dict[str, str]:
        path = self.root / OVERVIEW
        if not path.is_file():
            return {}
        table = read_table(path, required=("new_file_name",), what="SPIDER overview")
        subset: Dict[str, str] = {}
        for row in table:
            name = row.get("new_file_name")
            if not name:
                raise table.error(row.number, "'new_file_name' is blank")
            stem = re.sub(r"\.mha$", "", name, flags=re.IGNORECASE)
            if row.get("subset"):
                subset[stem.lower()] = row.get("subset")
        return subset

    def _find_series(self) -> Dict[str, Dict[str, Path]]:
        series: Dict[str, Dict[str, Path]] = {}
        for f in sorted(self.images_dir.iterdir()):
            m = _IMAGE_RE.match(f.name)
            if not f.is_file() or not m:
                if f.is_file():
                    self.warnings.append(f"{f}: not named <patient>_<series>.mha; ignored")
                continue
            series.setdefault(_patient_key(m.group(1)), {})[m.group(2)] = f
        return series

    def _study_list(self) -> List[str]:
        graded, imaged = set(self._grades), set(self._series)
        if imaged - graded:
            self.warnings.append(f"{len(imaged - graded)} patient(s) have images but no gradings in {GRADINGS}; skipped")
        if graded - imaged:
            self.warnings.append(f"{len(graded - imaged)} patient(s) are graded in {GRADINGS} but have no image; skipped")
        ids: List[str] = []
        for patient in sorted(graded & imaged, key=lambda p: (not p.isdigit(), int(p) if p.isdigit() else 0, p)):
            names = self._ordered_series(patient)
            ids.extend([f"{patient}_{s}" for s in names] if self.series_mode == "all" else [patient])
        return ids

    def _ordered_series(self, patient: str) -> List[str]:
        names = list(self._series[patient])
        rank = {s: i for i, s in enumerate(SERIES_PREFERENCE)}
        return sorted(names, key=lambda s: (rank.get(s.lower(), len(rank)), s))

    # --- studies ----------------------------------------------------------------------------
    def study_ids(self) -> List[str]:
        return list(self._ids)

    def heads(self) -> List[str]:
        return [head for head, _ in COLUMN_MAP.values()]

    def study(self, study_id: str) -> LabelledStudy:
        if study_id not in self._ids:
            raise DatasetError(f"{self.root}: no SPIDER study '{study_id}'")
        if self.series_mode == "all":
            patient, series = study_id.split("_", 1)
        else:
            patient, series = study_id, self._ordered_series(study_id)[0]
        image = self._series[patient][series]
        mask_path = self.masks_dir / image.name
        centroids = disc_centroids_ras(read_mask(mask_path)) if mask_path.is_file() else {}
        levels: Dict[str, LevelLabel] = {}
        for ivd, grades in sorted(self._grades[patient].items()):
            centre = centroids.get(200 + ivd)
            levels[level_of_ivd(ivd)] = LevelLabel(
                grades=dict(grades), center_ras=centre, center_kind="mask_centroid" if centre else None)
        seq = sequence_of_series(series)
        stem = image.name[: -len(".mha")]
        others = {s: str(p) for s, p in self._series[patient].items() if s != series}
        return LabelledStudy(
            study_id=study_id, levels=sort_levels(levels), sequence=seq,
            source=f"spider: {self.gradings_path}", dataset=self.kind, image_path=str(image),
            loader=partial(load_image, str(image), seq), patient_id=patient, other_images=others,
            subset=self._subset.get(stem.lower()),
            meta={"series": series, "mask": str(mask_path) if mask_path.is_file() else None,
                  "grading_rows": {level_of_ivd(ivd): self._rows[(patient, ivd)] for ivd in self._grades[patient]}},
            segmentation_loader=partial(load_spider_segmentation, str(mask_path)) if mask_path.is_file() else None,
        )


def load_spider_segmentation(path: str) -> Volume:
    """A SPIDER mask with its values mapped to SpineGrade's label values (`spider_label_lut`)."""
    mask = read_mask(Path(path))
    a = np.asarray(mask.array)
    if a.size and (a.min() < 0 or a.max() > 255):
        raise DatasetError(f"{path}: mask values outside 0-255 are not SPIDER labels")
    return mask.with_array(spider_label_lut()[a.astype(np.int64)], source=str(path), labels="spinegrade")
