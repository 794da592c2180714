"""Static checks: CMake lists every module file, the .ui matches the parameter node, resources agree."""

from __future__ import annotations

import ast
import csv
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from SpineGradeLogic.names import DISC_OFFSET, POSTERIOR_OFFSET, OTHER_LABELS, VERTEBRA_LABELS
from SpineGradeSlicer.SpineGradeLib import colortable

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "SpineGradeSlicer"
RES = ROOT / "Resources"


def _cmake_list(text: str, var: str) -> list:
    m = re.search(r"set\(\s*" + var + r"\s+(.*?)\)", text, re.S)
    assert m, f"{var} not set"
    return [t for t in m.group(1).split() if not t.startswith("#")]


def test_module_cmake_lists_every_script():
    text = (MODULE / "CMakeLists.txt").read_text()
    listed = {s.replace("${MODULE_NAME}", "SpineGrade") for s in _cmake_list(text, "MODULE_PYTHON_SCRIPTS")}
    on_disk = {p.relative_to(MODULE).as_posix() for p in MODULE.rglob("*.py")
               if "__pycache__" not in p.parts and p.relative_to(MODULE).as_posix() != "__init__.py"}
    assert listed == on_disk
    assert "slicerMacroBuildScriptedModule" in text


def test_top_level_cmake_ships_engine_and_every_resource():
    text = (ROOT / "CMakeLists.txt").read_text()
    for field in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                  "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert re.search(rf"set\({field}\s", text), field
    assert "add_subdirectory(SpineGradeSlicer)" in text
    assert "SpineGradeLogic/*.py" in text and "Resources/Models/*" in text
    listed = set(_cmake_list(text, "SpineGrade_SHARED_RESOURCES"))
    for sub in ("UI", "Icons", "ColorTables", "Terminology"):
        for f in (RES / sub).rglob("*"):
            if f.is_file():
                assert f.relative_to(ROOT).as_posix() in listed, f
    assert "Resources/requirements.txt" in listed
    for item in listed:
        if not item.startswith("$"):
            assert (ROOT / item).is_file(), item


def test_s4ext_and_catalog_entry_agree():
    s4 = dict(l.split(" ", 1) for l in (ROOT / "SpineGrade.s4ext").read_text().splitlines()
              if l.strip() and not l.startswith("#") and " " in l)
    entry = json.loads((ROOT / "SpineGrade.json").read_text())
    assert s4["scmurl"] == entry["scm_url"] and s4["scmrevision"] == entry["scm_revision"]
    assert s4["category"] == entry["category"] == "Segmentation"
    assert s4["build_subdirectory"] == entry["build_subdirectory"]


def _parameter_fields() -> dict:
    tree = ast.parse((MODULE / "SpineGrade.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
                getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list):
            return {s.target.id: ast.unparse(s.annotation) for s in node.body if isinstance(s, ast.AnnAssign)}
    raise AssertionError("no @parameterNodeWrapper class in SpineGrade.py")


def _ui_parameters() -> dict:
    root = ET.parse(RES / "UI" / "SpineGrade.ui").getroot()
    out = {}
    for w in root.iter("widget"):
        for prop in w.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                out[prop.find("string").text] = (w.get("class"), w.get("name"))
    return out


def test_ui_parameter_names_match_the_parameter_node():
    fields, ui = _parameter_fields(), _ui_parameters()
    assert set(ui) <= set(fields), f"widgets bound to unknown parameters: {set(ui) - set(fields)}"
    assert set(fields) - set(ui) == {"heads"}  # a checkable combo box, synchronised by the widget
    kinds = {"vtkMRMLScalarVolumeNode": "qMRMLNodeComboBox", "vtkMRMLSegmentationNode": "qMRMLNodeComboBox",
             "vtkMRMLTableNode": "qMRMLNodeComboBox", "bool": "QCheckBox", "Path": "ctkPathLineEdit"}
    for name, (cls, _) in ui.items():
        ann = fields[name]
        if ann in kinds:
            assert cls == kinds[ann], (name, ann, cls)
        if "Choice" in ann:
            assert cls == "QComboBox", name
        if "WithinRange" in ann:
            assert cls == "ctkSliderWidget", name


def test_widget_names_used_by_the_module_exist_in_the_ui():
    root = ET.parse(RES / "UI" / "SpineGrade.ui").getroot()
    names = {w.get("name") for w in root.iter("widget")}
    used = set(re.findall(r"self\.ui\.(\w+)", (MODULE / "SpineGrade.py").read_text()))
    assert used <= names, used - names


def test_shipped_colour_table_and_terminology_are_generated():
    assert (RES / colortable.COLOR_TABLE_FILE).read_text() == colortable.color_table_csv()
    assert (RES / colortable.TERMINOLOGY_FILE).read_text() == colortable.terminology_json()


def test_colour_table_covers_every_label_value():
    table = colortable.read_color_table_csv(RES / colortable.COLOR_TABLE_FILE)
    values = set(VERTEBRA_LABELS.values()) | {POSTERIOR_OFFSET + v for v in VERTEBRA_LABELS.values()} | set(OTHER_LABELS)
    values |= {DISC_OFFSET + v for n, v in VERTEBRA_LABELS.items() if n != "S1"}
    assert values <= set(table)
    for v, e in table.items():
        if e.type:
            assert e.type[0] == "SCT" and e.type[1] in colortable.ALL_CODES
        if e.region:
            assert e.region[1] in colortable.ALL_CODES
    assert table[VERTEBRA_LABELS["L4"]].type[1] == "11994002"
    assert table[DISC_OFFSET + VERTEBRA_LABELS["L4"]].name == "L4/L5"


def test_colour_table_loads_in_slicer_core():
    import pytest

    pytest.importorskip("slicer_core", reason="slicer-core is not installed")
    import slicer

    node = slicer.vtkMRMLColorTableNode()
    reader = slicer.vtkMRMLColorTableStorageNode()
    reader.SetFileName(str(RES / colortable.COLOR_TABLE_FILE))
    assert reader.ReadData(node)
    v = VERTEBRA_LABELS["L4"]
    assert node.GetColorName(v) == "L4"
    assert "SCT^11994002^L4 vertebra" in node.GetTerminologyAsString(v)


def test_engine_never_imports_slicer_qt_ctk_at_module_level():
    pattern = re.compile(r"^\s*(import|from)\s+(slicer|qt|ctk)\b", re.M)
    for p in (ROOT / "SpineGradeLogic").rglob("*.py"):
        assert not pattern.search(p.read_text()), p


def test_library_does_not_import_qt():
    pattern = re.compile(r"^\s*(import|from)\s+(qt|ctk)\b", re.M)
    for p in (MODULE / "SpineGradeLib").rglob("*.py"):
        text = p.read_text()
        assert not pattern.search(text), p
        assert not re.search(r"(?<!`)slicer\.(mrmlScene|app|modules)\b", text), p  # the scene is passed in
