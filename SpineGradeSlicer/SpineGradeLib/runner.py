"""Run the engine in a background process: build the command, parse its progress, cancel it.

The Slicer panel runs ``PythonSlicer -m SpineGradeLogic.cli run INPUT --out DIR ...`` so that Slicer
stays responsive and a crash in the engine cannot take the application down. The engine prints
plain progress lines on stderr when it is not on a terminal::

    PROGRESS <done>/<total> <what>

Everything here is plain Python (subprocess and a reader thread); the widget polls
:meth:`EngineProcess.poll` from a ``qt.QTimer``. The console path (:func:`run_blocking`) uses the
same class.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Deque, Dict, List, Optional, Sequence

PROGRESS_RE = re.compile(r"^PROGRESS\s+(\d+)\s*/\s*(\d+)\s*(.*)$")
ERROR_RE = re.compile(r"^spinegrade: (?:internal )?error: (.*)$")

EXIT_MESSAGES = {
    2: "the engine was called with wrong options (a bug in the module: please report it)",
    3: "the input volume cannot be used",
    5: "a model bundle is missing or fails its checksum",
    130: "cancelled",
}


@dataclass
class Progress:
    done: int
    total: int
    what: str

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def percent(self) -> int:
        return int(round(100 * self.fraction))


def parse_progress(line: str) -> Optional[Progress]:
    """``PROGRESS 3/7 grading`` -> Progress(3, 7, "grading"); anything else -> None."""
    m = PROGRESS_RE.match(line.strip())
    if not m:
        return None
    done, total = int(m.group(1)), int(m.group(2))
    return Progress(min(done, total) if total else done, total, m.group(3).strip())


def parse_error(lines: Sequence[str]) -> Optional[str]:
    """The engine's one-line error message, if it printed one."""
    for line in reversed(list(lines)):
        m = ERROR_RE.match(line.strip())
        if m:
            return m.group(1)
    return None


def python_executable() -> str:
    """``PythonSlicer`` inside Slicer (the interpreter beside the application), else this Python."""
    exe = Path(sys.executable)
    for name in ("PythonSlicer", "PythonSlicer.exe"):
        cand = exe.with_name(name)
        if cand.exists():
            return str(cand)
    found = shutil.which("PythonSlicer")
    return found or sys.executable


@dataclass
class RunRequest:
    """What the panel (or the console) asks the engine to do; mirrors ``spinegrade run``'s options."""

    input: Path
    out_dir: Path
    heads: Optional[List[str]] = None  # None: all
    saliency: str = "default"  # default | all | none
    saliency_methods: List[str] = field(default_factory=lambda: ["auto"])
    device: str = "cpu"
    bundles: Dict[str, Path] = field(default_factory=dict)
    sequence: Optional[str] = None
    models_dir: Optional[Path] = None  # a folder of model bundles (SPINEGRADE_MODELS for the engine)
    axial: Optional[Path] = None  # the study's axial T2 series, written beside the input
    sensitivity: float = 0.0  # operating point of the grade shown (0: the most probable grade)


def build_command(req: RunRequest, python: Optional[str] = None) -> List[str]:
    """The argv of the engine run (no shell, so paths with spaces are safe)."""
    cmd = [python or python_executable(), "-m", "SpineGradeLogic.cli", "run", str(req.input), "--out", str(req.out_dir)]
    if req.heads:
        cmd += ["--heads", *req.heads]
    if req.saliency != "default":
        cmd += ["--saliency", req.saliency]
    if req.saliency_methods and req.saliency_methods != ["auto"]:
        cmd += ["--saliency-method", *req.saliency_methods]
    if req.device and req.device != "cpu":
        cmd += ["--device", req.device]
    for name, path in sorted(req.bundles.items()):
        cmd += ["--bundle", f"{name}={path}"]
    if req.sequence:
        cmd += ["--sequence", req.sequence]
    if req.axial:
        cmd += ["--axial", str(req.axial)]
    if req.sensitivity:
        cmd += ["--sensitivity", f"{req.sensitivity:g}"]
    return cmd


def engine_environment(extra_paths: Sequence[Path] = (), models_dir: Optional[Path] = None) -> Dict[str, str]:
    """The child's environment: the engine's folder on PYTHONPATH, plain (non-tty) progress,
    ``SPINEGRADE_MODELS`` where the user chose a folder of model bundles."""
    env = dict(os.environ)
    if models_dir:
        env["SPINEGRADE_MODELS"] = str(models_dir)
    here = Path(__file__).resolve()
    paths = [str(p) for p in extra_paths]
    for root in (here.parents[2], here.parents[1]):  # repo / qt-scripted-modules folder
        if (root / "SpineGradeLogic").is_dir():
            paths.append(str(root))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class EngineProcess:
    """One engine run in the background. ``poll()`` returns new progress; ``cancel()`` stops it."""

    def __init__(self, command: Sequence[str], env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None):
        self.command = list(command)
        self.lines: Deque[str] = deque(maxlen=500)
        self._pending: Deque[Progress] = deque()
        self._lock = threading.Lock()
        self.cancelled = False
        self.started = time.monotonic()
        popen_kw = {}
        if os.name == "posix":
            popen_kw["start_new_session"] = True  # cancel reaches the engine's own children too
        else:
            popen_kw["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        self.proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=str(cwd) if cwd else None, text=True, bufsize=1, errors="replace", **popen_kw)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._lock:
                self.lines.append(line)
                p = parse_progress(line)
                if p is not None:
                    self._pending.append(p)

    def poll(self) -> List[Progress]:
        with self._lock:
            out = list(self._pending)
            self._pending.clear()
        return out

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.poll()

    def cancel(self, grace_s: float = 5.0) -> None:
        """Ask the engine to stop (SIGINT: it leaves nothing half-written), then kill it."""
        if not self.running:
            return
        self.cancelled = True
        try:
            if os.name == "posix":
                os.killpg(self.proc.pid, signal.SIGINT)
            else:
                self.proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
            self.proc.wait(timeout=grace_s)
        except (subprocess.TimeoutExpired, ProcessLookupError, OSError):
            self.proc.kill()
            self.proc.wait()

    def wait(self, timeout: Optional[float] = None) -> int:
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return rc

    def failure_message(self) -> Optional[str]:
        """A readable message when the run failed (None when it succeeded)."""
        rc = self.returncode
        if rc in (None, 0):
            return None
        if self.cancelled:
            return "cancelled; no result was written"
        with self._lock:
            lines = list(self.lines)
        msg = parse_error(lines)
        if msg:
            return msg
        tail = "\n".join(l for l in lines[-8:] if l.strip())
        return f"{EXIT_MESSAGES.get(rc, f'the engine stopped with exit code {rc}')}" + (f":\n{tail}" if tail else "")


class EngineFailed(RuntimeError):
    pass


def run_blocking(req: RunRequest, on_progress: Optional[Callable[[Progress], None]] = None,
                 python: Optional[str] = None, poll_s: float = 0.2) -> Path:
    """Run the engine and wait (the console and batch path). Raises EngineFailed with the engine's message."""
    proc = EngineProcess(build_command(req, python), env=engine_environment(models_dir=req.models_dir))
    wait_for(proc, on_progress, poll_s)
    return Path(req.out_dir)


def wait_for(proc: "EngineProcess", on_progress: Optional[Callable[[Progress], None]] = None,
             poll_s: float = 0.2) -> None:
    """Block until ``proc`` ends, passing on its progress; Ctrl-C cancels it. Raises EngineFailed."""
    try:
        while proc.running:
            for p in proc.poll():
                if on_progress:
                    on_progress(p)
            time.sleep(poll_s)
    except KeyboardInterrupt:
        proc.cancel()
        raise
    proc.wait()
    for p in proc.poll():
        if on_progress:
            on_progress(p)
    msg = proc.failure_message()
    if msg:
        raise EngineFailed(msg)
