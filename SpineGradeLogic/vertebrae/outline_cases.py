"""Training cases of the body-outline model: a scan, what the vertebra pipeline draws on it, its reference.

Each case is run through the vertebra stage as it ships without the outline model
(`pipeline.vertebra_stage.find_vertebrae` + `input_segmentation`), so the outline model learns to
correct exactly the outlines it will be given. Cases are cached one ``.npz`` per scan (the image,
the pipeline's labels, the reference labels, the grid) and reused: the cache name records the
vertebra bundle's SHA-256, so a new vertebra model never trains on another model's outlines.

Real scans: vb3-style folders (``image.nii.gz`` + ``vertebrae.nii.gz``); the bodies the reference
labels are those whose values it holds (vb3: L1-L5), the rest are left out. Generated
cases: `phantom.generate_case` over every field of view and contrast, whose label maps name every
body.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from ..io.volume import Volume
from .outline_data import OutlineCase, make_case
from .outline_model import BODY_VALUES

log = logging.getLogger("spinegrade")

FOVS = ("lumbar", "thoracolumbar", "whole")
CONTRASTS = ("T1", "T2", "STIR", "random")


def generated_spec(seed: int) -> tuple:
    """(field of view, contrast) of the generated case with ``seed``: consecutive seeds take every
    pairing in turn."""
    return FOVS[seed % len(FOVS)], CONTRASTS[(seed // len(FOVS)) % len(CONTRASTS)]


def _save(path: Path, image: Volume, labels: np.ndarray, truth: np.ndarray, truth_values: Sequence[int], kind: str) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, image=np.asarray(image.array, np.float32), labels=labels.astype(np.uint8),
                        truth=truth.astype(np.uint8), spacing=np.asarray(image.spacing), origin=np.asarray(image.origin_lps),
                        direction=np.asarray(image.direction_lps), truth_values=np.asarray(truth_values), kind=kind)
    tmp.replace(path)  # never a half-written cache file


def load_cached(path: Path) -> Optional[OutlineCase]:
    """The cached case at ``path`` (None where its grid is not sagittal or no body matches)."""
    from ..errors import DatasetError

    try:
        d = dict(np.load(path))
    except Exception as e:  # a truncated or foreign file: say which, and how to recover
        raise DatasetError(f"{path}: not a readable outline cache file ({type(e).__name__}: {e}); "
                           "delete it and the case is prepared again") from e
    image = Volume(d["image"], tuple(d["spacing"]), tuple(d["origin"]), d["direction"])
    case = make_case(path.name[:-4], image, d["labels"], d["truth"], [int(v) for v in d["truth_values"]])
    if case is not None:
        case.kind = str(d["kind"])
    return case


def pipeline_labels(image: Volume, model, device: str = "cpu") -> np.ndarray:
    """The label volume the vertebra stage writes for ``image`` without the outline model."""
    from ..pipeline.vertebra_stage import find_vertebrae, input_segmentation

    return np.asarray(input_segmentation(find_vertebrae(image, model, device), image).array)


def prepare_cases(cache: Path, model, real_root: Optional[Path], real_names: Sequence[str], generated_seeds: Sequence[int],
                  device: str = "cpu", progress: Optional[Callable[[int, int, str], None]] = None) -> List[Path]:
    """Cache files for the named real scans and the generated seeds (existing ones reused)."""
    from ..phantom import generate_case
    from ..results.folder import read_volume

    cache = Path(cache) / f"outline-{model.sha256[:12]}"
    cache.mkdir(parents=True, exist_ok=True)
    jobs = [("real", n) for n in real_names] + [("generated", int(s)) for s in generated_seeds]
    paths = []
    for k, (kind, name) in enumerate(jobs):
        path = cache / (f"{name}.npz" if kind == "real" else f"generated-{name}.npz")
        if not path.is_file():
            if kind == "real":
                folder = Path(real_root) / name
                image, truth = read_volume(folder / "image.nii.gz"), np.asarray(read_volume(folder / "vertebrae.nii.gz").array)
                values = [int(v) for v in np.unique(truth) if int(v) in BODY_VALUES]
            else:
                fov, contrast = generated_spec(name)
                case = generate_case(name, fov, contrast)
                image, truth, values = case.image, np.asarray(case.labels.array), BODY_VALUES
            _save(path, image, pipeline_labels(image, model, device), truth, values, kind)
        paths.append(path)
        if progress:
            progress(k + 1, len(jobs), path.name)
    return paths
