"""Pipeline behaviour: stage order and timing, replaceable stages, cancel, progress output."""

from __future__ import annotations

import io

import numpy as np
import pytest

from fixtures_volumes import oblique_sagittal_volume
from SpineGradeLogic.cli.progress import Progress
from SpineGradeLogic.pipeline import Cancelled, default_stages, run_study
from SpineGradeLogic.pipeline.stages import Stage
from SpineGradeLogic.results import Vertebra, read_result_folder, write_volume


@pytest.fixture
def scan(tmp_path):
    write_volume(oblique_sagittal_volume(), tmp_path / "scan.nii.gz")
    return tmp_path / "scan.nii.gz"


def test_stages_run_in_order_and_are_timed(tmp_path, scan):
    seen = []
    r = run_study(scan, tmp_path / "o", progress=lambda d, n, s: seen.append((d, n, s)))
    assert [s for _, _, s in seen] == ["load", "vertebrae", "discs", "grades", "saliency", "write", "done"]
    assert all(v >= 0 for v in r.timing_s.values())
    assert r.timing_s["total"] >= r.timing_s["load"]


def test_a_replaced_stage_feeds_the_next(tmp_path, scan):
    class FakeLabels(Stage):
        name = "vertebrae"

        def run(self, ctx):
            ctx.result.vertebrae.append(Vertebra("L5", (0.0, 0.0, 0.0), 0.5))

    stages = default_stages()
    stages[1] = FakeLabels()
    r = run_study(scan, tmp_path / "o", stages=stages)
    assert not any("disc localisation" in w for w in r.warnings)  # vertebrae were there
    assert read_result_folder(tmp_path / "o").result.vertebrae[0].label == "L5"


def test_cancel_between_stages_writes_nothing(tmp_path, scan):
    calls = iter([False, False, True])
    with pytest.raises(Cancelled):
        run_study(scan, tmp_path / "o", should_cancel=lambda: next(calls, True))
    assert not (tmp_path / "o").exists()


def test_a_failing_stage_leaves_no_result(tmp_path, scan):
    class Broken(Stage):
        name = "grades"

        def run(self, ctx):
            raise RuntimeError("boom")

    stages = default_stages()
    stages[3] = Broken()
    with pytest.raises(RuntimeError):
        run_study(scan, tmp_path / "o", stages=stages)
    assert list(tmp_path.iterdir()) == [scan]


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere():
    plain = io.StringIO()
    with Progress("x", stream=plain) as p:
        p(1, 3, "load")
    assert plain.getvalue() == "PROGRESS 1/3 load\n"
    tty = _Tty()
    with Progress("x", stream=tty) as p:
        p(1, 3, "load")
    assert "PROGRESS" not in tty.getvalue() and "1/3" in tty.getvalue()
    quiet = io.StringIO()
    with Progress("x", quiet=True, stream=quiet) as p:
        p(1, 3, "load")
    assert quiet.getvalue() == ""
