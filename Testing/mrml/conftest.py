"""Fixtures for the MRML adapter tests: a small hand-made study result in an oblique geometry.

Every test here needs ``slicer-core`` (Slicer's MRML libraries without Qt); where it cannot be
imported they are skipped with one clear reason instead of failing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from SpineGradeLogic.io.volume import Volume
from SpineGradeLogic.names import DISC_OFFSET, POSTERIOR_OFFSET, SPINAL_CANAL, VERTEBRA_LABELS
from SpineGradeLogic.results import Box, Disc, Grade, InputInfo, ModelInfo, StudyResult, Vertebra
from SpineGradeLogic.results import heatmap_path, write_result_folder

SLICER_CORE = importlib.util.find_spec("slicer") is not None and importlib.util.find_spec("slicer_core") is not None
needs_slicer = pytest.mark.skipif(
    not SLICER_CORE,
    reason="slicer-core is not installed (pip install -e '.[slicer]'): the MRML adapter tests need Slicer's MRML libraries",
)


# the oblique sagittal test geometry shared with the engine tests (Testing/ is on sys.path)
from fixtures_volumes import SAGITTAL_LPS  # noqa: E402
from fixtures_volumes import rotation as _rotation  # noqa: E402

SHAPE = (48, 72, 11)
SPACING = (1.0, 1.0, 3.0)
LEVELS = ["L3", "L4", "L5", "S1"]


def study_geometry() -> Volume:
    direction = _rotation(1, 8.0) @ _rotation(2, 5.0) @ SAGITTAL_LPS
    return Volume(np.zeros(SHAPE, np.float32), SPACING, (-20.0, 15.0, 60.0), direction)


def make_labels(geom: Volume) -> np.ndarray:
    """Box vertebrae stacked along j (superior first), discs between them, a canal behind."""
    lab = np.zeros(SHAPE, np.uint16)
    k0, k1 = 2, 9
    j = 4
    for n, name in enumerate(LEVELS):
        v = VERTEBRA_LABELS[name]
        lab[8:28, j:j + 12, k0:k1] = v
        lab[28:36, j + 2:j + 10, k0 + 1:k1 - 1] = POSTERIOR_OFFSET + v if name != "S1" else v
        j += 12
        if n < len(LEVELS) - 1:
            lab[9:27, j:j + 4, k0:k1] = DISC_OFFSET + v
            j += 4
    lab[29:33, 2:j, 4:7] = np.where(lab[29:33, 2:j, 4:7] == 0, SPINAL_CANAL, lab[29:33, 2:j, 4:7])
    return lab


def _box_and_centre(geom: Volume, mask: np.ndarray):
    ijk = np.argwhere(mask)
    ras = geom.index_to_ras(ijk)
    return Box.around(ras), ras.mean(0)


def make_study(folder: Path, with_image: bool = True):
    """Write a result folder (and the input image) into ``folder``; return (result_dir, result, geom)."""
    geom = study_geometry()
    lab = make_labels(geom)
    image_path = folder / "input" / "image_T2w.nii.gz"
    if with_image:
        from SpineGradeLogic.results import write_volume

        img = np.where(lab > 0, 300.0, 80.0).astype(np.float32)
        img += np.random.default_rng(0).normal(0, 5, SHAPE).astype(np.float32)
        write_volume(geom.with_array(img), image_path)
    vertebrae = []
    for name in LEVELS:
        v = VERTEBRA_LABELS[name]
        box, centre = _box_and_centre(geom, lab == v)
        vertebrae.append(Vertebra(name, tuple(centre), 0.9, box))
    discs, heatmaps = [], {}
    rng = np.random.default_rng(1)
    for upper, lower in zip(LEVELS, LEVELS[1:]):
        value = DISC_OFFSET + VERTEBRA_LABELS[upper]
        box, centre = _box_and_centre(geom, lab == value)
        grades = {
            "pfirrmann": Grade.from_probabilities("pfirrmann", rng.dirichlet(np.ones(5))),
            "disc_herniation": Grade.from_probabilities("disc_herniation", [0.3, 0.7]),
            "central_canal_stenosis": Grade.from_probabilities("central_canal_stenosis", rng.dirichlet(np.ones(4))),
        }
        level = f"{upper}/{lower}"
        disc = Disc(level, tuple(centre), grades, normal=(0.0, 0.1, 1.0), bbox_mm=box)
        if level == "L4/L5":
            rel = heatmap_path(level, "pfirrmann", "gradcam")
            cijk = geom.ras_to_index(centre)
            ii, jj, kk = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
            d2 = ((ii - cijk[0]) / 5.0) ** 2 + ((jj - cijk[1]) / 3.0) ** 2 + ((kk - cijk[2]) / 1.5) ** 2
            heatmaps[rel] = geom.with_array(np.exp(-d2).astype(np.float32))
            disc.saliency["pfirrmann"] = rel
        discs.append(disc)
    result = StudyResult(
        InputInfo(str(image_path), SHAPE, SPACING, None, "T2"),
        vertebrae, discs, [], [ModelInfo("test", "0", "0" * 64)],
    )
    out = write_result_folder(result, folder / "result", segmentation=geom.with_array(lab), heatmaps=heatmaps)
    return out, result, geom


@pytest.fixture
def study(tmp_path):
    return make_study(tmp_path)


@pytest.fixture
def scene():
    if not SLICER_CORE:
        pytest.skip("slicer-core is not installed: the MRML adapter tests need Slicer's MRML libraries")
    import slicer

    return slicer.vtkMRMLScene()
