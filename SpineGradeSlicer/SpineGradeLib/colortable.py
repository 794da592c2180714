"""SpineGrade's colour table and terminology: one entry per label value SpineGrade writes.

The shipped files ``Resources/ColorTables/SpineGrade.csv`` (Slicer's colour-table CSV format, with
terminology columns) and ``Resources/Terminology/SegmentationCategoryTypeModifier-SpineGrade.term.json``
are generated from this module (``python -m SpineGradeSlicer.SpineGradeLib.colortable``); a test
checks that the shipped files equal what this module generates.

Codes (SNOMED CT, scheme ``SCT``) follow the TotalSegmentator Slicer extension's mapping
(``totalsegmentator_snomed_mapping.csv``): one code per named vertebra, ``Vertebra`` with a spine
region for vertebrae without a code of their own (T13, L6), ``Intervertebral disc`` with the spine
region for each disc, ``Sacrum`` and ``Spinal cord``. The spinal canal, which TotalSegmentator does
not segment, uses ``Spinal canal structure`` (61853006), the code the AAPM TG-263 structure-name
mapping gives the vertebral canal. Posterior elements carry a colour but no code of their own:
in a segmentation they are merged into their vertebra's segment.

Plain Python (no slicer import), so the engine, the tests and the Slicer module share it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from SpineGradeLogic.names import (
    DISC_OFFSET,
    POSTERIOR_OFFSET,
    SPINAL_CANAL,
    SPINAL_CORD,
    SPINE_ORDER,
    VERTEBRA_LABELS,
    next_vertebra,
)

Code = Tuple[str, str, str]  # (coding scheme, code value, code meaning)

ANATOMICAL_STRUCTURE: Code = ("SCT", "123037004", "Anatomical Structure")

VERTEBRA_CODES: Dict[str, Code] = {
    "C1": ("SCT", "14806007", "C1 vertebra"),
    "C2": ("SCT", "39976000", "C2 vertebra"),
    "C3": ("SCT", "113205007", "C3 vertebra"),
    "C4": ("SCT", "5329002", "C4 vertebra"),
    "C5": ("SCT", "36978003", "C5 vertebra"),
    "C6": ("SCT", "36054005", "C6 vertebra"),
    "C7": ("SCT", "87391001", "C7 vertebra"),
    "T1": ("SCT", "64864005", "T1 vertebra"),
    "T2": ("SCT", "53733008", "T2 vertebra"),
    "T3": ("SCT", "1626008", "T3 vertebra"),
    "T4": ("SCT", "73071006", "T4 vertebra"),
    "T5": ("SCT", "56401006", "T5 vertebra"),
    "T6": ("SCT", "45296009", "T6 vertebra"),
    "T7": ("SCT", "62487009", "T7 vertebra"),
    "T8": ("SCT", "11068009", "T8 vertebra"),
    "T9": ("SCT", "82687006", "T9 vertebra"),
    "T10": ("SCT", "7610001", "T10 vertebra"),
    "T11": ("SCT", "12989004", "T11 vertebra"),
    "T12": ("SCT", "23215003", "T12 vertebra"),
    "L1": ("SCT", "66794005", "L1 vertebra"),
    "L2": ("SCT", "14293000", "L2 vertebra"),
    "L3": ("SCT", "36470004", "L3 vertebra"),
    "L4": ("SCT", "11994002", "L4 vertebra"),
    "L5": ("SCT", "49668003", "L5 vertebra"),
    "S1": ("SCT", "54735007", "Sacrum"),  # label 26 is the whole sacrum (VerSe)
}
VERTEBRA: Code = ("SCT", "51282000", "Vertebra")
INTERVERTEBRAL_DISC: Code = ("SCT", "360499006", "Intervertebral disc")
SPINAL_CANAL_CODE: Code = ("SCT", "61853006", "Spinal canal structure")
SPINAL_CORD_CODE: Code = ("SCT", "2748008", "Spinal cord")
REGION_CODES: Dict[str, Code] = {
    "C": ("SCT", "122494005", "Cervical spine"),
    "T": ("SCT", "122495006", "Thoracic spine"),
    "L": ("SCT", "122496007", "Lumbar spine"),
}

#: Every code this module may write (a test checks the shipped files use only these).
ALL_CODES = {c[1] for c in VERTEBRA_CODES.values()} | {
    c[1] for c in (ANATOMICAL_STRUCTURE, VERTEBRA, INTERVERTEBRAL_DISC, SPINAL_CANAL_CODE, SPINAL_CORD_CODE)
} | {c[1] for c in REGION_CODES.values()}

CANAL_NAME = "spinal canal"
CORD_NAME = "spinal cord"

COLOR_TABLE_FILE = "ColorTables/SpineGrade.csv"
TERMINOLOGY_FILE = "Terminology/SegmentationCategoryTypeModifier-SpineGrade.term.json"
TERMINOLOGY_CONTEXT = "Segmentation category and type - SpineGrade"


@dataclass(frozen=True)
class Entry:
    value: int
    name: str
    rgb: Tuple[int, int, int]
    type: Optional[Code] = None  # None: no terminology (posterior elements)
    region: Optional[Code] = None

    @property
    def category(self) -> Optional[Code]:
        return ANATOMICAL_STRUCTURE if self.type else None

    def terminology_string(self) -> str:
        """Slicer's terminology entry string (as ``vtkMRMLColorTableNode.GetTerminologyAsString``)."""
        if not self.type:
            return ""
        f = lambda c: "^".join(c) if c else "^^"  # noqa: E731
        return f"~{f(self.category)}~{f(self.type)}~^^~~{f(self.region)}~^^~"


def _vertebra_rgb(name: str) -> Tuple[int, int, int]:
    """Bone tones by region; neighbours alternate in lightness so adjacent levels stand apart."""
    base = {"C": (230, 200, 150), "T": (215, 170, 110), "L": (200, 140, 80), "S": (170, 120, 90)}[name[0]]
    i = SPINE_ORDER.index(name)
    k = 1.0 if i % 2 == 0 else 0.78
    return tuple(int(round(c * k)) for c in base)  # type: ignore[return-value]


def _disc_rgb(upper: str) -> Tuple[int, int, int]:
    i = SPINE_ORDER.index(upper)
    return (60, 150, 235) if i % 2 == 0 else (40, 200, 210)


def _region(name: str) -> Optional[Code]:
    return REGION_CODES.get(name[0])


def entries() -> List[Entry]:
    """Every SpineGrade label value, sorted by value."""
    out: List[Entry] = []
    for name, value in VERTEBRA_LABELS.items():
        if name in VERTEBRA_CODES:
            out.append(Entry(value, name, _vertebra_rgb(name), VERTEBRA_CODES[name]))
        else:  # T13, L6: no code of their own
            out.append(Entry(value, name, _vertebra_rgb(name), VERTEBRA, _region(name)))
        r, g, b = _vertebra_rgb(name)
        out.append(Entry(POSTERIOR_OFFSET + value, f"{name} posterior elements",
                         (min(255, r + 25), min(255, g + 25), min(255, b + 25))))
        if name != "S1":
            lower = next_vertebra(name)
            level = f"{name}/{lower}" if lower else f"{name} disc"
            out.append(Entry(DISC_OFFSET + value, level, _disc_rgb(name), INTERVERTEBRAL_DISC, _region(name)))
    out.append(Entry(SPINAL_CANAL, CANAL_NAME, (120, 220, 90), SPINAL_CANAL_CODE))
    out.append(Entry(SPINAL_CORD, CORD_NAME, (255, 215, 0), SPINAL_CORD_CODE))
    return sorted(out, key=lambda e: e.value)


def entry_by_value() -> Dict[int, Entry]:
    return {e.value: e for e in entries()}


CSV_COLUMNS = [
    "LabelValue", "Name", "Color_R", "Color_G", "Color_B", "Color_A",
    "Category_CodingScheme", "Category_CodeValue", "Category_CodeMeaning",
    "Type_CodingScheme", "Type_CodeValue", "Type_CodeMeaning",
    "TypeModifier_CodingScheme", "TypeModifier_CodeValue", "TypeModifier_CodeMeaning",
    "Region_CodingScheme", "Region_CodeValue", "Region_CodeMeaning",
    "RegionModifier_CodingScheme", "RegionModifier_CodeValue", "RegionModifier_CodeMeaning",
]


def color_table_csv() -> str:
    """The colour table in Slicer's CSV colour-table format (terminology columns included)."""
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for e in entries():
        empty = ("", "", "")
        w.writerow([e.value, e.name, *e.rgb, 255, *(e.category or empty), *(e.type or empty),
                    *empty, *(e.region or empty), *empty])
    return buf.getvalue()


def read_color_table_csv(path: Path) -> Dict[int, Entry]:
    """Read a colour table written by :func:`color_table_csv` (plain Python, no slicer)."""
    out: Dict[int, Entry] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            t = (row["Type_CodingScheme"], row["Type_CodeValue"], row["Type_CodeMeaning"])
            r = (row["Region_CodingScheme"], row["Region_CodeValue"], row["Region_CodeMeaning"])
            out[int(float(row["LabelValue"]))] = Entry(
                int(float(row["LabelValue"])), row["Name"],
                (int(float(row["Color_R"])), int(float(row["Color_G"])), int(float(row["Color_B"]))),
                t if t[1] else None, r if r[1] else None)
    return out


def terminology_json() -> str:
    """A Slicer terminology context listing SpineGrade's structure types, for the terminology selector."""
    types: Dict[str, dict] = {}
    for e in entries():
        if not e.type or e.type[1] in types:
            continue
        types[e.type[1]] = {
            "CodeMeaning": e.type[2],
            "CodingSchemeDesignator": e.type[0],
            "CodeValue": e.type[1],
            "SNOMEDCTConceptID": e.type[1],
            "recommendedDisplayRGBValue": list(e.rgb),
            "3dSlicerLabel": e.type[2].lower(),
        }
    doc = {
        "SegmentationCategoryTypeContextName": TERMINOLOGY_CONTEXT,
        "@schema": "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/segment-context-schema.json#",
        "SegmentationCodes": {
            "Category": [{
                "CodeMeaning": ANATOMICAL_STRUCTURE[2],
                "CodingSchemeDesignator": ANATOMICAL_STRUCTURE[0],
                "CodeValue": ANATOMICAL_STRUCTURE[1],
                "showAnatomy": True,
                "Type": list(types.values()),
            }]
        },
    }
    return json.dumps(doc, indent=2) + "\n"


def write_resources(resources_dir: Path) -> List[Path]:
    paths = []
    for rel, text in ((COLOR_TABLE_FILE, color_table_csv()), (TERMINOLOGY_FILE, terminology_json())):
        p = Path(resources_dir) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        paths.append(p)
    return paths


if __name__ == "__main__":  # pragma: no cover - regenerates the shipped files
    from SpineGradeLogic.resources import resources_dir

    for p in write_resources(resources_dir()):
        print(p)


# --- the saliency colour map (the same in the scene and in the screenshots) -------------------
HEAT_NAME = "SpineGrade heat"
SALIENCY_THRESHOLD = 0.1  # heatmaps are stored in [0, 1]; below this the overlay is transparent


def heat_lut(n: int = 256):
    """A "hot" ramp, dark red -> red -> yellow -> white, as an ``(n, 3)`` uint8 array."""
    import numpy as np

    t = np.linspace(0.0, 1.0, n)
    r = np.clip(0.35 + 0.65 * t / 0.4, 0, 1)
    g = np.clip((t - 0.35) / 0.4, 0, 1)
    b = np.clip((t - 0.75) / 0.25, 0, 1)
    return (np.stack([r, g, b], 1) * 255).round().astype(np.uint8)
