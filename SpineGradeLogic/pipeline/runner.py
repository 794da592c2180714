"""Run the stages on one study, timing each into ``timing_s``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import SpineGradeError
from ..results.model import StudyResult
from .context import ProgressCallback, RunOptions, StudyContext, log
from .stages import Stage, default_stages


class Cancelled(SpineGradeError):
    """The run was cancelled between stages; nothing was written."""

    exit_code = 130


def run_study(
    source,
    out_dir: Path,
    options: Optional[RunOptions] = None,
    stages: Optional[Sequence[Stage]] = None,
    progress: Optional[ProgressCallback] = None,
    should_cancel: Optional[Callable[[], bool]] = None,
) -> StudyResult:
    """Load ``source``, run every stage and write the result folder ``out_dir``.

    The folder appears only when every stage has finished; on an error or a cancel nothing is
    left under ``out_dir``'s name.
    """
    ctx = StudyContext(source=source, out_dir=Path(out_dir), options=options or RunOptions())
    stages = list(stages or default_stages())
    started = time.perf_counter()
    for i, stage in enumerate(stages):
        if should_cancel is not None and should_cancel():
            raise Cancelled("cancelled; no result was written")
        if progress:
            progress(i, len(stages), stage.name)
        t0 = time.perf_counter()
        if stage.name == "write":  # its own time cannot be inside the file it writes
            ctx.result.timing_s["total"] = time.perf_counter() - started
        stage.run(ctx)
        if ctx.result is not None and stage.name != "write":
            ctx.result.timing_s[stage.name] = time.perf_counter() - t0
        log.debug("stage %s took %.2f s", stage.name, time.perf_counter() - t0)
    if progress:
        progress(len(stages), len(stages), "done")
    return ctx.result
