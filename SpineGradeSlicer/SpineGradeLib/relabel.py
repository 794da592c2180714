"""Correct a vertebra's label: the named vertebra takes the new name and its neighbours follow.

Labelling errors on spine MRI are almost always an off-by-n shift of the whole column (a missed
L6/T13, a field of view without C2 or the sacrum), so a correction shifts every vertebra by the
same number of places. The label volume's values, the disc level names and the grades table
follow; the corrected result is written as a new result folder beside the old one, noting the
correction in ``result.json`` (``corrections``) and in its warnings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np

from SpineGradeLogic.names import DISC_OFFSET, POSTERIOR_OFFSET, SPINE_ORDER, VERTEBRA_LABELS
from SpineGradeLogic.results import read_result_folder, write_result_folder


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
