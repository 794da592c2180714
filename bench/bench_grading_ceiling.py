"""What the grading targets ask of any reader: balanced-accuracy ceilings set by the generator itself.

    python bench/bench_grading_ceiling.py --prepared CACHE [CACHE ...] [--eval-json EVAL.json]
    python bench/bench_grading_ceiling.py --seeds 210000:210100 [--workers 2]

Every generated grade is a measurement cut at fixed thresholds (``phantom/grading.py``), and the
prepared crops carry those measurements (``grading/measures.py``). No network is run here: the bench
asks how well a reader would score that saw the measurements *with an error*, so that a model's
balanced accuracy can be read against what its inputs allow.

1. **Healthy disc height.** Narrowing (and Pfirrmann's height rule) compares a disc's height with its
   own healthy height, which the generator draws per disc as the level's reference x the person's
   size x U(0.9, 1.1) (``phantom/anatomy.py``). Even a reader that knew the person's size exactly sees
   only ``ratio x u``; the bench scores the best balanced-accuracy rule on that reading (fitted on
   half the crops, scored on the other half).
2. **Reading precision.** For each head with a continuous measurement, the Gaussian reading error
   (in the measurement's own unit) at which grading at the generator's own cuts falls to balanced
   accuracy 0.90 and 0.85. A model that measures less precisely than that cannot meet the target.

``--eval-json`` (``spinegrade evaluate grading --json``) adds the model's balanced accuracy per head;
``--checkpoint`` (a ``spinegrade train grading`` checkpoint, whose network still has the training-only
measurement layer of ``grading/measures.py``) adds how precisely that network reads each measurement
(SD of its error) and the balanced accuracy of cutting its readings at the generator's cuts.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

# head -> (measure, scale back to the physical unit, unit)
CONTINUOUS = {
    "pfirrmann": ("hydration", 1.0, "hydration (0-1)"),
    "disc_narrowing": ("height_loss", 1.0, "share of height"),
    "disc_bulging": ("bulge", 4.0, "mm"),
    "disc_herniation": ("herniation", 4.0, "mm"),
    "spondylolisthesis": ("slip", 6.0, "mm"),
    "upper_endplate_defect": ("upper_endplate_defect", 4.0, "mm"),
    "lower_endplate_defect": ("lower_endplate_defect", 4.0, "mm"),
    "central_canal_stenosis": ("central_compromise", 1.0, "share of area"),
    "foraminal_stenosis_left": ("foramen_compromise_left", 1.0, "share of area"),
    "foraminal_stenosis_right": ("foramen_compromise_right", 1.0, "share of area"),
    "lateral_recess_stenosis_left": ("recess_compromise_left", 1.0, "share of area"),
    "lateral_recess_stenosis_right": ("recess_compromise_right", 1.0, "share of area"),
}
HEALTHY_HEIGHT_SPREAD = (0.9, 1.1)  # phantom/anatomy.py build_layout: the per-disc draw


def balanced_accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[truth == k] == k) for k in np.unique(truth)]))


def grade_of(head: str, scaled: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """The generator's grade from (noisy) scaled measurements: its own cut functions and thresholds."""
    from SpineGradeLogic.phantom import grading as G

    physical = scaled * CONTINUOUS[head][1]
    if head == "pfirrmann":
        return np.array([G.pfirrmann_grade(h, r) for h, r in zip(physical, ratio)])
    if head == "disc_narrowing":
        return np.array([G.narrowing_grade(1.0 - v) for v in physical])
    if "stenosis" in head:
        return np.array([G.stenosis_grade(v) for v in physical])
    cut = {"disc_bulging": G.BULGE_MM, "disc_herniation": G.HERNIATION_MM, "spondylolisthesis": G.SLIP_MM}
    return (physical >= cut.get(head, G.ENDPLATE_MM)).astype(int)


def noisy_accuracy(head, truth, scaled, ratio, sigma, rng, draws=4) -> float:
    unit = CONTINUOUS[head][1]
    return float(np.mean([balanced_accuracy(truth, grade_of(head, scaled + rng.normal(0, sigma / unit, len(scaled)), ratio))
                          for _ in range(draws)]))


def sigma_for(head, truth, scaled, ratio, target, rng, hi) -> float:
    """Reading error (physical unit) at which balanced accuracy falls to ``target`` (bisection)."""
    lo = 0.0
    if noisy_accuracy(head, truth, scaled, ratio, hi, rng) >= target:
        return hi
    for _ in range(14):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if noisy_accuracy(head, truth, scaled, ratio, mid, rng) >= target else (lo, mid)
    return 0.5 * (lo + hi)


def best_rule_accuracy(truth: np.ndarray, reading: np.ndarray, rng, bins: int = 60) -> float:
    """Balanced accuracy of the best rule on a 1-D reading: per reading bin the grade with the highest
    likelihood ratio (class share in the bin / class share overall), fitted on one half, scored on the other."""
    edges = np.quantile(reading, np.linspace(0, 1, bins + 1)[1:-1])
    b = np.digitize(reading, edges)
    order = rng.permutation(len(truth))
    fit, test = order[::2], order[1::2]
    classes = np.unique(truth)
    prior = np.array([np.mean(truth[fit] == k) for k in classes])
    rule = {}
    for v in np.unique(b[fit]):
        m = fit[b[fit] == v]
        rule[v] = classes[np.argmax(np.array([np.mean(truth[m] == k) for k in classes]) / np.maximum(prior, 1e-9))]
    majority = classes[np.argmax(prior)]
    pred = np.array([rule.get(v, majority) for v in b[test]])
    return balanced_accuracy(truth[test], pred)


def model_readings(checkpoint: Path, crops) -> np.ndarray:
    """[n, len(MEASURE_NAMES)] measurements as a checkpoint's best network reads them (stored scale)."""
    import torch

    from SpineGradeLogic.grading.data import network_input
    from SpineGradeLogic.grading.measures import MeasureTrainer
    from SpineGradeLogic.grading.network import STEM_WEIGHT, build_network

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["best_network"]
    if "measure.weight" not in state:
        raise SystemExit(f"{checkpoint}: its network has no measurement layer (trained with --measure-weight 0?)")
    channels = int(state["grading." + STEM_WEIGHT].shape[1])
    trainer = MeasureTrainer(build_network(in_channels=channels), crops.measures)
    trainer.load_state_dict(state)
    trainer.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(crops), 64):
            axial = torch.as_tensor(crops.axial[i:i + 64]) if channels > 1 else None
            out.append(trainer.predicted_measures(network_input(torch.as_tensor(crops.image[i:i + 64]), axial, channels)).numpy())
    return np.concatenate(out) if out else np.zeros((0, crops.measures.shape[1]), np.float32)


def load(args):
    from SpineGradeLogic.grading.data import load_prepared

    if args.prepared:
        return load_prepared(args.prepared, None)
    from SpineGradeLogic.grading.prepare import parse_seeds, prepare_seeds

    tmp = tempfile.mkdtemp(prefix="spinegrade-ceiling-")
    prepare_seeds(parse_seeds(args.seeds), "eval", Path(tmp), args.workers)
    return load_prepared([Path(tmp)], "eval")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prepared", nargs="*", type=Path, default=[], help="folders of prepared crops (grading-*.npz)")
    p.add_argument("--seeds", default="210000:210100", help="eval seeds to prepare when --prepared is not given")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--eval-json", type=Path, help="a `spinegrade evaluate grading --json` file: adds the model's figures")
    p.add_argument("--checkpoint", type=Path, help="a grading training checkpoint: adds how precisely its network reads")
    args = p.parse_args()

    from SpineGradeLogic.grading.measures import MEASURE_NAMES
    from SpineGradeLogic.names import HEAD_NAMES

    crops = load(args)
    rng = np.random.default_rng(0)
    measures = crops.measures
    ratio_col = 1.0 - measures[:, MEASURE_NAMES.index("height_loss")]
    model = {}
    if args.eval_json:
        model = {h: v.get("balanced_accuracy") for h, v in json.loads(args.eval_json.read_text())["calibrated"]["heads"].items()}
    print(f"{len(crops)} crops with the generator's measurements")

    print("\n1. healthy disc height known only to the generator's per-disc spread "
          f"(U{HEALTHY_HEIGHT_SPREAD}), everything else read exactly:")
    for head in ("disc_narrowing", "pfirrmann"):
        truth = crops.grades[:, HEAD_NAMES.index(head)]
        ok = (truth >= 0) & np.isfinite(ratio_col)
        u = rng.uniform(*HEALTHY_HEIGHT_SPREAD, ok.sum())
        reading = ratio_col[ok] * u
        if head == "disc_narrowing":
            ceiling = best_rule_accuracy(truth[ok], reading, rng)
        else:  # hydration exact, height through the ambiguous reference, at the generator's cuts
            hyd = measures[ok, MEASURE_NAMES.index("hydration")]
            ceiling = balanced_accuracy(truth[ok], grade_of(head, hyd, reading))
        extra = f"   model {model[head]:.3f}" if model.get(head) is not None else ""
        print(f"   {head:<32} ceiling {ceiling:.3f}{extra}")

    read = model_readings(args.checkpoint, crops) if args.checkpoint else None
    print("\n2. reading error (1 SD, the measurement's unit) at which grading at the generator's cuts "
          "falls to balanced accuracy 0.90 / 0.85" + ("; the checkpoint's own reading error and the balanced "
                                                     "accuracy of its readings cut there" if read is not None else "") + ":")
    print(f"   {'head':<32}{'unit':<18}{'0.90':>8}{'0.85':>8}{'model':>8}" + (f"{'reads':>8}{'cut':>8}" if read is not None else ""))
    for head, (name, unit, label) in CONTINUOUS.items():
        truth = crops.grades[:, HEAD_NAMES.index(head)]
        scaled = measures[:, MEASURE_NAMES.index(name)]
        ok = (truth >= 0) & np.isfinite(scaled) & np.isfinite(ratio_col)
        if len(np.unique(truth[ok])) < 2:
            continue
        hi = 4.0 * unit
        s90, s85 = (sigma_for(head, truth[ok], scaled[ok], ratio_col[ok], t, rng, hi) for t in (0.90, 0.85))
        m = f"{model[head]:8.3f}" if model.get(head) is not None else f"{'':>8}"
        if read is not None:
            j = MEASURE_NAMES.index(name)
            ratio_read = 1.0 - read[ok, MEASURE_NAMES.index("height_loss")]
            m += f"{np.std((read[ok, j] - scaled[ok]) * unit):8.3f}"
            m += f"{balanced_accuracy(truth[ok], grade_of(head, read[ok, j], ratio_read)):8.3f}"
        print(f"   {head:<32}{label:<18}{s90:8.3f}{s85:8.3f}{m}")


if __name__ == "__main__":
    main()
