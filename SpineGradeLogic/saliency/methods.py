"""The saliency methods by name, and which one ``auto`` (the default) means for each head.

Kept apart from ``maps`` so that the CLI, the run options and the Slicer panel can name the methods
without importing torch.
"""

from __future__ import annotations

METHODS = ("auto", "gradcam", "ig", "smoothgrad", "occlusion")
DEFAULT_METHOD = "auto"
# heads whose lesions are a change of signal inside bone or disc (Modic, Schmorl nodes, nucleus water):
# IG, which weighs each voxel's gradient by its intensity, finds them; the other heads' lesions are
# changes of shape and position (a herniation, a slip, a narrowed canal), which SmoothGrad finds.
# Measured with bench/bench_grading.py (docs/grading.md, "Evidence on generated lesions").
SIGNAL_HEADS = ("modic", "upper_endplate_defect", "lower_endplate_defect", "pfirrmann")


def resolve_method(method: str, head: str) -> str:
    """The concrete method behind ``method`` for ``head``: ``auto`` -> ``ig`` or ``smoothgrad``."""
    if method != "auto":
        return method
    return "ig" if head in SIGNAL_HEADS else "smoothgrad"


def concrete_methods(methods, head: str) -> list:
    """``methods`` resolved for ``head``, in order, each once (``auto`` and ``ig`` are one for Modic)."""
    out = []
    for m in methods:
        c = resolve_method(m, head)
        if c not in out:
            out.append(c)
    return out
