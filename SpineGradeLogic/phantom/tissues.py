"""Tissue classes of the anatomy map and how a tissue and a label share one int16 voxel.

The generator paints one int16 array in which each voxel holds ``label * 32 + tissue``: the label
(the `names` value written to ``labels.nii.gz``) says *which structure*, the tissue says *what it is
made of* and so how it looks. Tissue codes are written to ``tissues.nii.gz`` for SynthSeg-style training.
"""

from __future__ import annotations

import numpy as np

TISSUE_BITS = 5  # tissue < 32
TISSUE_MASK = (1 << TISSUE_BITS) - 1

BACKGROUND = 0  # air outside the body
SKIN = 1
FAT = 2  # subcutaneous fat
MUSCLE = 3  # paraspinal muscles
PSOAS = 4
ABDOMEN = 5  # bowel and viscera below the diaphragm
VESSEL = 6  # aorta, vena cava: flow void
LUNG = 7
CORTEX = 8  # cortical bone, endplates
MARROW = 9  # cancellous bone with fatty marrow
ANNULUS = 10
NUCLEUS = 11
CSF = 12
CORD = 13
NERVE = 14  # cauda equina and exiting roots
EPIDURAL_FAT = 15
LIGAMENT = 16  # ligamentum flavum, interspinous and longitudinal ligaments
MODIC1 = 17  # oedema-like marrow change
MODIC2 = 18  # fatty marrow change
MODIC3 = 19  # sclerotic marrow change
HERNIA = 20  # displaced disc material
CLEFT = 21  # intranuclear cleft
MEDIASTINUM = 22  # heart and mediastinum
BRAIN = 23
AIRWAY = 24
VEIN = 25  # basivertebral vein
FACET_FLUID = 26

NAMES = {
    v: k.lower()
    for k, v in dict(
        BACKGROUND=BACKGROUND, SKIN=SKIN, FAT=FAT, MUSCLE=MUSCLE, PSOAS=PSOAS, ABDOMEN=ABDOMEN,
        VESSEL=VESSEL, LUNG=LUNG, CORTEX=CORTEX, MARROW=MARROW, ANNULUS=ANNULUS, NUCLEUS=NUCLEUS,
        CSF=CSF, CORD=CORD, NERVE=NERVE, EPIDURAL_FAT=EPIDURAL_FAT, LIGAMENT=LIGAMENT, MODIC1=MODIC1,
        MODIC2=MODIC2, MODIC3=MODIC3, HERNIA=HERNIA, CLEFT=CLEFT, MEDIASTINUM=MEDIASTINUM, BRAIN=BRAIN,
        AIRWAY=AIRWAY, VEIN=VEIN, FACET_FLUID=FACET_FLUID,
    ).items()
}
N_TISSUES = 32

#: What fills the dural sac (counted as remaining canal in stenosis grading).
SAC = (CSF, CORD, NERVE)
#: Soft canal content a herniation or a thick ligament may displace.
DISPLACEABLE = (CSF, CORD, NERVE, EPIDURAL_FAT, LIGAMENT, MUSCLE, FAT)


def pack(label: int, tissue: int) -> int:
    return (int(label) << TISSUE_BITS) | int(tissue)


def tissue_of(packed: np.ndarray) -> np.ndarray:
    return packed & TISSUE_MASK


def label_of(packed: np.ndarray) -> np.ndarray:
    return packed >> TISSUE_BITS
