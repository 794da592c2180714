"""Tissue signal per sequence (T1, T2, STIR) and the SynthSeg-style random contrast.

Relative signal on a 0-1 scale of typical spin-echo images at 1.5-3 T: CSF and hydrated nuclei
bright on T2 and STIR, fat (subcutaneous, epidural, marrow) bright on T1 and T2 TSE but dark on STIR,
cortex, ligaments and annulus dark everywhere, flowing blood and air black.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from ..names import POSTERIOR_OFFSET
from . import tissues as T
from .pathology import DiscPathology

N_LABELS = 256  # label values < 256 (names: at most 201)

SIGNAL = {  # tissue: (T1, T2, STIR)
    T.BACKGROUND: (0.0, 0.0, 0.0),
    T.SKIN: (0.45, 0.35, 0.3),
    T.FAT: (1.0, 0.78, 0.06),
    T.MUSCLE: (0.33, 0.17, 0.2),
    T.PSOAS: (0.33, 0.17, 0.2),
    T.ABDOMEN: (0.3, 0.22, 0.2),
    T.VESSEL: (0.08, 0.04, 0.05),
    T.LUNG: (0.03, 0.02, 0.02),
    T.CORTEX: (0.04, 0.03, 0.03),
    T.MARROW: (0.72, 0.45, 0.12),
    T.ANNULUS: (0.24, 0.11, 0.12),
    T.NUCLEUS: (0.34, 0.85, 0.8),
    T.CSF: (0.12, 1.0, 1.0),
    T.CORD: (0.5, 0.4, 0.42),
    T.NERVE: (0.45, 0.3, 0.3),
    T.EPIDURAL_FAT: (0.95, 0.7, 0.07),
    T.LIGAMENT: (0.3, 0.1, 0.1),
    T.MODIC1: (0.3, 0.8, 0.85),
    T.MODIC2: (0.98, 0.62, 0.1),
    T.MODIC3: (0.1, 0.1, 0.08),
    T.HERNIA: (0.3, 0.45, 0.45),
    T.CLEFT: (0.26, 0.22, 0.22),
    T.MEDIASTINUM: (0.3, 0.14, 0.18),
    T.BRAIN: (0.5, 0.45, 0.45),
    T.AIRWAY: (0.0, 0.0, 0.0),
    T.VEIN: (0.5, 0.8, 0.75),
    T.FACET_FLUID: (0.15, 0.85, 0.9),
}
TEXTURE = {T.ABDOMEN: 0.6, T.MEDIASTINUM: 0.5, T.MARROW: 0.12, T.MUSCLE: 0.1, T.PSOAS: 0.1, T.FAT: 0.06,
           T.BRAIN: 0.1, T.MODIC1: 0.15, T.MODIC2: 0.12}
SEQ_INDEX = {"T1": 0, "T2": 1, "STIR": 2}

#: Protocol parameters typical of each sequence (TR, TE, TI in ms, echo train, description).
PROTOCOL = {
    "T1": dict(tr=(450, 700), te=(8, 14), ti=None, etl=(3, 5), scanning="SE", variant=["SK", "SP"],
               description="SAG T1 TSE"),
    "T2": dict(tr=(2800, 4500), te=(85, 115), ti=None, etl=(15, 25), scanning="SE", variant=["SK", "SP"],
               description="SAG T2 TSE"),
    "STIR": dict(tr=(3500, 5500), te=(40, 70), ti=(140, 180), etl=(9, 17), scanning=["IR", "SE"],
                 variant=["SK", "SP", "MP"], description="SAG STIR"),
}


def _nucleus(seq: int, base: np.ndarray, hydration: float) -> float:
    if seq == 0:  # on T1 the disc is near isointense whatever its water
        return float(base[T.NUCLEUS] - 0.06 * (1 - hydration))
    return float(base[T.ANNULUS] + (base[T.NUCLEUS] - base[T.ANNULUS]) * hydration ** 1.3)


def signal_table(sequence: str, rng: np.random.Generator, pathology: Dict[int, DiscPathology],
                 randomise: bool = False) -> tuple:
    """``(lut, texture)``: signal per packed ``label * 32 + tissue`` value and texture per tissue.

    Args:
        sequence: "T1", "T2" or "STIR" (the base contrast; ignored when ``randomise`` and no base).
        pathology: disc label -> its pathology (nucleus hydration sets its signal).
        randomise: SynthSeg-style: every tissue gets a random mean (around the base contrast's when
            ``sequence`` is given, anywhere in 0-1 when it is "unknown").
    """
    base = np.zeros(T.N_TISSUES, np.float32)
    if sequence in SEQ_INDEX:
        for t, vals in SIGNAL.items():
            base[t] = vals[SEQ_INDEX[sequence]]
        base *= rng.uniform(0.9, 1.1, T.N_TISSUES).astype(np.float32)  # scanner to scanner
        if randomise:
            base = np.clip(base + rng.normal(0, 0.15, T.N_TISSUES), 0, 1).astype(np.float32)
    else:
        base = rng.uniform(0, 1, T.N_TISSUES).astype(np.float32)
    base[T.BACKGROUND] = 0.0 if not randomise else rng.uniform(0, 0.05)
    base[T.AIRWAY] = base[T.BACKGROUND]
    texture = np.zeros(T.N_TISSUES, np.float32)
    for t, a in TEXTURE.items():
        texture[t] = a
    if randomise:
        texture = rng.uniform(0, 0.3, T.N_TISSUES).astype(np.float32)
    lut = np.tile(base, N_LABELS).reshape(N_LABELS, T.N_TISSUES)
    seq = SEQ_INDEX.get(sequence, 1)
    # every vertebra's marrow a little different (age, red marrow islands); the thin posterior
    # elements hold less marrow than the bodies and look darker
    lut[:, T.MARROW] *= rng.uniform(0.92, 1.08, N_LABELS).astype(np.float32)
    lut[POSTERIOR_OFFSET + 1:POSTERIOR_OFFSET + 29, T.MARROW] *= 0.75
    for label, p in pathology.items():
        if sequence in SEQ_INDEX:
            lut[label, T.NUCLEUS] = _nucleus(seq, base, p.hydration)
            lut[label, T.HERNIA] = 0.5 * (lut[label, T.NUCLEUS] + base[T.ANNULUS]) + 0.1 * (seq != 0)
        else:
            lut[label, T.NUCLEUS] = base[T.ANNULUS] + (base[T.NUCLEUS] - base[T.ANNULUS]) * p.hydration
    return lut.ravel(), texture


def sequence_protocol(sequence: str, rng: np.random.Generator) -> dict:
    """TR/TE/TI and naming of the series for the DICOM headers (T2's for an unknown contrast)."""
    proto = PROTOCOL.get(sequence, PROTOCOL["T2"])
    out = dict(proto)
    out["tr"] = float(round(rng.uniform(*proto["tr"]), 1))
    out["te"] = float(round(rng.uniform(*proto["te"]), 1))
    out["ti"] = float(round(rng.uniform(*proto["ti"]), 1)) if proto["ti"] else None
    out["etl"] = int(rng.integers(proto["etl"][0], proto["etl"][1] + 1))
    if sequence not in PROTOCOL:
        out["description"] = "SAG SYNTH"
    return out
