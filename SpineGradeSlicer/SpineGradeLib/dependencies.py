"""The engine's Python packages inside Slicer: checked, and installed on first use after the user agrees.

Pins come from ``Resources/requirements.txt``. Slicer ships its own SimpleITK (and VTK, numpy):
those are never passed to pip, neither as a requirement nor as a transitive dependency.
``slicer.packaging.pip_ensure`` is used where Slicer has it (it checks, asks and installs with
progress); older Slicers get ``slicer.util.pip_install`` after a confirmation dialog.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from SpineGradeLogic.resources import resources_dir

REQUIREMENTS_FILE = "requirements.txt"
#: Packages Slicer provides itself; installing them from PyPI would break Slicer.
SLICER_PROVIDED = ("SimpleITK", "vtk", "numpy", "slicer", "slicer-core")

_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_path() -> Path:
    return resources_dir() / REQUIREMENTS_FILE


def read_requirements(path: Optional[Path] = None) -> List[str]:
    """Requirement lines (comments and blanks dropped), without the packages Slicer provides."""
    out = []
    skip = {_norm(n) for n in SLICER_PROVIDED}
    for raw in Path(path or requirements_path()).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _NAME_RE.match(line)
        if m and _norm(m.group(1)) in skip:
            continue
        out.append(line)
    return out


def requirement_name(line: str) -> str:
    m = _NAME_RE.match(line)
    return m.group(1) if m else line


def _pinned_version(line: str) -> Optional[str]:
    m = re.search(r"==\s*([^\s;,]+)", line)
    return m.group(1) if m else None


def missing(requirements: Sequence[str]) -> List[str]:
    """The requirements not installed, or installed at another version than pinned (no pip call)."""
    out = []
    for line in requirements:
        name = requirement_name(line)
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out.append(line)
            continue
        want = _pinned_version(line)
        if want and have.split("+")[0] != want.split("+")[0]:
            out.append(line)
    return out


def ensure(confirm: Optional[Callable[[str], bool]] = None, requirements: Optional[Sequence[str]] = None) -> bool:
    """Make sure the engine's packages are there; returns True when they are (after installing).

    Inside Slicer: ``slicer.packaging.pip_ensure`` where present, else ask with ``confirm`` (default:
    ``slicer.util.confirmOkCancelDisplay``) and ``slicer.util.pip_install``.
    """
    reqs = list(requirements if requirements is not None else read_requirements())
    todo = missing(reqs)
    if not todo:
        return True
    import slicer  # only inside Slicer does installing make sense

    if any(_norm(requirement_name(t)) == "torch" for t in todo) and _install_torch_with_pytorchutils():
        todo = missing(reqs)
        if not todo:
            return True

    packaging = getattr(slicer, "packaging", None)
    if packaging is not None and hasattr(packaging, "pip_ensure"):
        try:
            packaging.pip_ensure(todo, requester="SpineGrade", skip_packages=list(SLICER_PROVIDED))
        except TypeError:  # a pip_ensure without skip_packages
            packaging.pip_ensure(todo, requester="SpineGrade")
        return not missing(reqs)
    ask = confirm or (lambda text: slicer.util.confirmOkCancelDisplay(text, "SpineGrade"))
    text = ("SpineGrade needs these Python packages, which are not installed yet:\n\n  " + "\n  ".join(todo)
            + "\n\nInstall them now? This takes a few minutes and needs an internet connection.")
    if not ask(text):
        return False
    slicer.util.pip_install(" ".join(todo))
    return not missing(reqs)


def _install_torch_with_pytorchutils() -> bool:
    """Use the PyTorch extension's installer (it picks the CPU/CUDA build that fits) where present."""
    try:
        import PyTorchUtils  # the SlicerPyTorch extension

        return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True) is not None
    except Exception:
        return False
