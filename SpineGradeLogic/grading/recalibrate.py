"""Refit a grading bundle's per-head temperatures on more held-out crops, weights untouched.

Training fits the temperatures on the crops it also stops on (a few hundred); one temperature per
head from so few crops is noisy for the heads whose rare grades decide their calibration error
(Pfirrmann 4-5, severe stenosis). ``spinegrade train grading --recalibrate BUNDLE`` refits them on
every calibration-profile crop in ``--prepared`` and writes a new bundle whose record says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Sequence, Tuple

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


def recalibration_record(out: Dict[str, object], command: str) -> Tuple[str, str, Dict[str, object]]:
    """``(version, changelog line, training record)`` for the bundle :func:`recalibrated` made: the
    starting bundle's record with the new temperatures, the held-out figures on the larger set, the
    early-stopping set kept apart (``held_out_in_training``) and a ``recalibration`` entry."""
    meta = out["metadata"]
    record = dict(meta.get("spinegrade", {}).get("training") or {})
    version = str(meta.get("version", "0.0.0"))
    held = out["held_out"]
    record["recalibration"] = {
        "command": command, "crops": held["crops"], "cases": len(held["cases"]),
        "temperatures_before": out["temperatures_before"],
        "held_out_before": {k: held["before"][k] for k in ("mean_balanced_accuracy", "max_ece", "mean_set_nll")},
    }
    record["temperatures"] = out["temperatures"]
    first = record.get("held_out_in_training") or record.get("held_out") or {}
    record["held_out_in_training"] = {"crops": first.get("crops"), "cases": first.get("cases")}
    record["held_out"] = {k: held[k] for k in ("uncalibrated", "calibrated", "crops", "cases")}
    changelog = dict(meta.get("changelog") or {})
    if record.get("init"):  # the metadata's changelog is the starting bundle's plus this version's line
        record["init"] = {**record["init"], "changelog": {k: v for k, v in changelog.items() if k != version}}
    line = f"{changelog.get(version, '')} (temperatures refitted on {held['crops']} held-out crops)".strip()
    return version, line, json.loads(json.dumps(record, default=float))
