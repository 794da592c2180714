"""Correct a vertebra's label: the named vertebra takes the new name and its neighbours follow.

Labelling errors on spine MRI are almost always an off-by-n shift of the whole column (a missed
L6/T13, a field of view without C2 or the sacrum), so a correction shifts every vertebra by the
same number of places (:func:`label_shift`).

:func:`regrade_result` is what the module does: it hands the renames to the engine,
``PythonSlicer -m SpineGradeLogic.cli regrade RESULT_DIR --rename OLD=NEW ... --out DIR``, in a
background process (the same runner as ``run``), which renames the vertebrae and their label values,
places the disc levels again (a new L6 adds L5/L6), grades them and makes the saliency maps again on
the input image. The corrected result goes into a new folder beside the old one (``-corrected``), or
over it when it is already a corrected one.

:func:`relabel_result` only renames (labels, level names, grades kept as they were); it is what is
left when the input image is gone and nothing can be graded again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from SpineGradeLogic.names import DISC_OFFSET, POSTERIOR_OFFSET, SPINE_ORDER, VERTEBRA_LABELS
from SpineGradeLogic.results import read_result_folder, write_result_folder
from SpineGradeLogic.saliency.methods import DEFAULT_METHOD

from . import runner


def label_shift(names, vertebra: str, new_label: str) -> Dict[str, str]:
    """Old name -> new name for every vertebra in ``names`` when ``vertebra`` becomes ``new_label``."""
    if vertebra not in names:
        raise ValueError(f"{vertebra} is not one of this study's vertebrae ({', '.join(names)})")
    if new_label not in SPINE_ORDER:
        raise ValueError(f"{new_label} is not a vertebra name")
    keep = set(names) | {new_label}
    order = [v for v in SPINE_ORDER if v not in ("T13", "L6") or v in keep]
    shift = order.index(new_label) - order.index(vertebra)
    out = {}
    for name in names:
        i = order.index(name) + shift
        if not 0 <= i < len(order):
            raise ValueError(f"calling {vertebra} {new_label} would move {name} off the spine")
        out[name] = order[i]
    return out


def relabel_result(folder: Path, vertebra: str, new_label: str, out_dir: Optional[Path] = None) -> Path:
    """Write the corrected result next to ``folder`` (or into ``out_dir``); return its path."""
    rf = read_result_folder(Path(folder))
    res = rf.result
    mapping = label_shift([v.label for v in res.vertebrae], vertebra, new_label)

    for v in res.vertebrae:
        v.label = mapping[v.label]
    for d in res.discs:
        u, l = d.level.split("/")
        d.level = f"{mapping.get(u, u)}/{mapping.get(l, l)}"
    note = f"{vertebra} relabelled {new_label} by hand (its neighbours follow); grades were not re-run"
    res.extra.setdefault("corrections", []).append({"vertebra": vertebra, "label": new_label})
    res.warn(note)

    labels = rf.segmentation()
    if labels is not None:
        lut = np.arange(max(int(labels.array.max()) + 1, 256), dtype=np.int64)
        for old, new in mapping.items():
            o, n = VERTEBRA_LABELS[old], VERTEBRA_LABELS[new]
            lut[o], lut[POSTERIOR_OFFSET + o] = n, POSTERIOR_OFFSET + n
            if old != "S1" and new != "S1":
                lut[DISC_OFFSET + o] = DISC_OFFSET + n
        labels = labels.with_array(lut[np.asarray(labels.array, dtype=np.int64)].astype(labels.array.dtype))
    heatmaps = {d.saliency[h]: rf.volume(d.saliency[h]) for d in res.discs for h in d.saliency
                if (rf.path / d.saliency[h]).is_file()}
    out = Path(out_dir) if out_dir else rf.path.with_name(rf.path.name + "-corrected")
    write_result_folder(res, out, segmentation=labels, heatmaps=heatmaps)
    return out


def sacrum_anchored_shift(names, vertebra: str, new_label: str) -> Dict[str, str]:
    """:func:`label_shift` with the sacrum kept as S1: the network finds the sacrum by its shape,
    so a shifted column means a missed or extra vertebra above it (calling L5 "L6" inserts an L6
    above the sacrum). Where the sacrum itself is renamed, or something is called S1, the whole
    column shifts as in :func:`label_shift`."""
    if vertebra == "S1" or new_label == "S1" or "S1" not in names:
        return label_shift(names, vertebra, new_label)
    if vertebra not in names:
        raise ValueError(f"{vertebra} is not one of this study's vertebrae ({', '.join(names)})")
    if new_label not in SPINE_ORDER:
        raise ValueError(f"{new_label} is not a vertebra name")
    # above the sacrum the column may grow into an L6 (a lumbarised S1); T13 only where it is named
    order = [v for v in SPINE_ORDER if v != "S1" and (v != "T13" or v in set(names) | {new_label})]
    shift = order.index(new_label) - order.index(vertebra)
    out = {"S1": "S1"}
    for name in names:
        if name == "S1":
            continue
        i = order.index(name) + shift
        if not 0 <= i < len(order):
            raise ValueError(f"calling {vertebra} {new_label} would move {name} off the spine")
        out[name] = order[i]
    return {n: out[n] for n in names}


def corrected_dir(folder: Path) -> Path:
    """Where a corrected result goes: beside ``folder`` (``NAME-corrected``), or ``folder`` itself
    when it already is a corrected result (correcting twice does not pile up folders)."""
    folder = Path(folder)
    return folder if folder.name.endswith("-corrected") else folder.with_name(folder.name + "-corrected")


def build_regrade_command(folder: Path, renames: Dict[str, str], out_dir: Optional[Path] = None,
                          python: Optional[str] = None, heads: Optional[Sequence[str]] = None,
                          saliency: str = "default", saliency_methods: Sequence[str] = (DEFAULT_METHOD,),
                          device: str = "cpu", bundles: Optional[Dict[str, Path]] = None,
                          sensitivity: float = 0.0) -> List[str]:
    """The argv of ``spinegrade regrade`` (no shell, so paths with spaces are safe)."""
    cmd = [python or runner.python_executable(), "-m", "SpineGradeLogic.cli", "regrade", str(folder)]
    for old, new in renames.items():
        cmd += ["--rename", f"{old}={new}"]
    if out_dir is not None:
        cmd += ["--out", str(out_dir)]
    if heads:
        cmd += ["--heads", *heads]
    if saliency != "default":
        cmd += ["--saliency", saliency]
    if saliency_methods and list(saliency_methods) != [DEFAULT_METHOD]:
        cmd += ["--saliency-method", *saliency_methods]
    if device and device != "cpu":
        cmd += ["--device", device]
    for name, path in sorted((bundles or {}).items()):
        cmd += ["--bundle", f"{name}={path}"]
    if sensitivity:
        cmd += ["--sensitivity", f"{sensitivity:g}"]
    return cmd


def start_regrade(folder: Path, vertebra: str, new_label: str, out_dir: Optional[Path] = None,
                  python: Optional[str] = None, models_dir: Optional[Path] = None, axial_node=None, **options):
    """The engine re-grading in the background: returns (EngineProcess, out_dir). ``options`` are the
    panel's run options; ``axial_node`` is not written again: the re-grade reads the axial volume
    the first run was given (``pipeline/regrade.py``).

    ``vertebra`` becomes ``new_label`` and its neighbours follow, the sacrum staying S1
    (:func:`sacrum_anchored_shift`); a name that cannot be given raises ValueError before anything
    starts, and the engine checks the result again (order, duplicates).
    """
    folder = Path(folder)
    names = [v.label for v in read_result_folder(folder).result.vertebrae]
    renames = {old: new for old, new in sacrum_anchored_shift(names, vertebra, new_label).items() if old != new}
    if not renames:
        raise ValueError(f"{vertebra} is already called {new_label}")
    out = Path(out_dir) if out_dir else corrected_dir(folder)
    cmd = build_regrade_command(folder, renames, out, python, **options)
    env = runner.engine_environment(models_dir=Path(models_dir) if models_dir else None)
    return runner.EngineProcess(cmd, env=env), out


def regrade_result(folder: Path, vertebra: str, new_label: str, out_dir: Optional[Path] = None,
                   python: Optional[str] = None, on_progress: Optional[Callable[[runner.Progress], None]] = None,
                   poll_s: float = 0.2, models_dir: Optional[Path] = None, **options) -> Path:
    """Correct ``vertebra`` to ``new_label`` (neighbours follow) and re-grade; blocks until the engine
    is done and returns the corrected result folder. Raises ``runner.EngineFailed`` with the engine's
    message (nothing is written then)."""
    proc, out = start_regrade(folder, vertebra, new_label, out_dir, python, models_dir, **options)
    runner.wait_for(proc, on_progress, poll_s)
    return out
