"""Refit a grading bundle's per-head temperatures on more held-out crops, weights untouched.

Training fits the temperatures on the crops it also stops on (a few hundred); one temperature per
head from so few crops is noisy for the heads whose rare grades decide their calibration error
(Pfirrmann 4-5, severe stenosis). ``spinegrade train grading --recalibrate BUNDLE`` refits them on
every calibration-profile crop in ``--prepared`` and writes a new bundle whose record says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch

from ..errors import DatasetError
from .calibration import fit_temperatures
from .data import load_prepared
from .training_run import evaluate_outputs, raw_outputs


def recalibrated(bundle: Path, folders: Sequence[Path], device: str = "cpu") -> Dict[str, object]:
    """The bundle's network, temperatures refitted on the calibration crops in ``folders``, and
    the held-out figures with the old and the new temperatures."""
    from .infer import Grader

    held = load_prepared(folders, "calibration")
    if len(held) == 0:
        raise DatasetError(f"no calibration crops (grading-calibration-*.npz) in {', '.join(map(str, folders)) or 'no folder'}")
    grader = Grader.load(bundle, device)
    raw = raw_outputs(grader.network, held, device)
    temps = fit_temperatures(raw, torch.as_tensor(held.targets), allowed=held.allowed)
    old = dict(grader.temperatures)
    return {
        "network": grader.network.cpu().eval(),
        "metadata": grader.model.metadata,
        "temperatures": temps,
        "temperatures_before": old,
        "held_out": {"uncalibrated": evaluate_outputs(raw, held), "calibrated": evaluate_outputs(raw, held, temps),
                     "before": evaluate_outputs(raw, held, old), "crops": len(held),
                     "cases": [int(c) for c in np.unique(held.case)]},
    }
