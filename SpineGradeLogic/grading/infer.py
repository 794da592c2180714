"""Grading at inference: a bundle's network + its temperatures applied to disc crops; the grade shown
is chosen at the run's operating point (``sensitivity``, grading/decision.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from ..errors import ModelError
from ..models.bundle import LoadedModel, load_bundle
from ..names import HEAD_NAMES
from ..results.model import Grade
from .calibration import check_temperatures
from .decision import decide, decision_weights, grade_priors, held_out_counts
from .data import axial_input, normalise_crop
from .heads import probabilities
from .network import CROP_SHAPE, GRADCAM_LAYER, input_channels


@dataclass
class Grader:
    """A loaded grading model with its per-head temperatures and the grade shares of its held-out
    crops (``priors``: head -> [K], the operating point's priors; empty for a bundle without them)."""

    model: LoadedModel
    temperatures: Dict[str, float]
    priors: Dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Union[str, Path], device: str = "cpu") -> "Grader":
        model = load_bundle(path, device)
        sg = model.metadata.get("spinegrade", {})
        try:
            temps = check_temperatures(sg.get("temperatures", {}))
            priors = grade_priors(held_out_counts(sg))
        except ValueError as e:
            raise ModelError(f"model bundle {path}: {e}") from e
        return cls(model, temps, priors)

    def missing_priors(self, heads: Sequence[str]) -> List[str]:
        """Of ``heads``, those this bundle has no grade shares for (graded at their most probable grade)."""
        return [h for h in heads if h not in self.priors]

    @property
    def network(self) -> torch.nn.Module:
        return self.model.network

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def gradcam_layer(self) -> str:
        return str(self.model.metadata.get("spinegrade", {}).get("gradcam_layer", GRADCAM_LAYER))

    @property
    def channels(self) -> int:
        """1: the model reads the sagittal crop only; 3: also the axial T2 (``data.INPUT_CHANNELS``)."""
        return input_channels(self.network)

    @property
    def uses_axial(self) -> bool:
        return self.channels > 1

    def input_tensor(self, crops: Sequence, axial: Optional[Sequence] = None) -> torch.Tensor:
        """``[n, C, 24, 80, 64]`` normalised inputs of :class:`DiscCrop` objects; ``axial`` the same
        levels' crops from the study's axial series (None where a level has none), used by a
        3-channel model and ignored by a 1-channel one."""
        axial = list(axial) if axial is not None else [None] * len(crops)
        if len(axial) != len(crops):
            raise ValueError(f"{len(axial)} axial crops for {len(crops)} sagittal ones")
        chans = []
        for c, ax in zip(crops, axial):
            a = np.asarray(c.image.array, np.float32)
            if a.shape != CROP_SHAPE:
                raise ValueError(f"crop of {c.level} has shape {a.shape}, the model needs {CROP_SHAPE}")
            x = [normalise_crop(a, getattr(c, "inside", None))]
            if self.uses_axial:
                values, present = axial_input(ax) if ax is not None else (np.zeros(CROP_SHAPE, np.float32),
                                                                          np.zeros(CROP_SHAPE, bool))
                x += [values, present.astype(np.float32)]
            chans.append(np.stack(x))
        return torch.as_tensor(np.stack(chans)).to(self.device)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, heads: Optional[Sequence[str]] = None) -> List[Dict[str, np.ndarray]]:
        """Calibrated probabilities per crop: a list of head -> ``[K]``."""
        self.network.eval()
        probs = probabilities(self.network(x), self.temperatures, heads or HEAD_NAMES)
        return [{h: p[i] for h, p in probs.items()} for i in range(x.shape[0])]

    def grade(self, crops: Sequence, heads: Optional[Sequence[str]] = None,
              axial: Optional[Sequence] = None, sensitivity: float = 0.0) -> List[Dict[str, Grade]]:
        """head -> :class:`Grade` per crop (``axial``: see :meth:`input_tensor`). ``sensitivity`` (0-1) is
        the operating point (grading/decision.py): 0 shows each head's most probable grade; heads
        without priors (:meth:`missing_priors`) always do."""
        if not crops:
            return []
        weights = decision_weights(self.priors, sensitivity) if sensitivity else {}  # checks the range
        out = self.predict(self.input_tensor(crops, axial), heads)
        return [{h: Grade.from_probabilities(h, p, int(decide(p, weights.get(h)))) for h, p in d.items()} for d in out]
