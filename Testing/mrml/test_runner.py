"""The background runner, dependency handling, label correction: plain Python beneath the widget."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from SpineGradeSlicer.SpineGradeLib import dependencies, relabel, runner


def test_parse_progress_lines():
    p = runner.parse_progress("PROGRESS 3/7 grading discs")
    assert (p.done, p.total, p.what, p.percent) == (3, 7, "grading discs", 43)
    assert runner.parse_progress("  PROGRESS 0/0 load ") .fraction == 0.0
    assert runner.parse_progress("INFO: something") is None
    assert runner.parse_progress("PROGRESS x/7") is None


def test_parse_error_line():
    lines = ["PROGRESS 1/4 load", "spinegrade: error: image.nii.gz: 2-D image, need 3-D"]
    assert runner.parse_error(lines) == "image.nii.gz: 2-D image, need 3-D"
    assert runner.parse_error(["spinegrade: internal error: ValueError: x (rerun)"]) == "ValueError: x (rerun)"


def test_build_command(tmp_path):
    req = runner.RunRequest(tmp_path / "in put.nii.gz", tmp_path / "out", heads=["pfirrmann", "modic"],
                            saliency="all", saliency_methods=["gradcam", "ig"], device="cuda",
                            bundles={"grader": tmp_path / "b"})
    cmd = runner.build_command(req, python="PythonSlicer")
    assert cmd[:4] == ["PythonSlicer", "-m", "SpineGradeLogic.cli", "run"]
    assert cmd[4] == str(tmp_path / "in put.nii.gz")  # one argv item, spaces and all
    assert cmd[cmd.index("--out") + 1] == str(tmp_path / "out")
    assert cmd[cmd.index("--heads") + 1:cmd.index("--heads") + 3] == ["pfirrmann", "modic"]
    assert "--saliency" in cmd and "all" in cmd and "ig" in cmd and "cuda" in cmd
    assert f"grader={tmp_path / 'b'}" in cmd
    minimal = runner.build_command(runner.RunRequest(Path("a.nii"), Path("o")), python="py")
    assert minimal == ["py", "-m", "SpineGradeLogic.cli", "run", "a.nii", "--out", "o"]


def test_build_command_is_accepted_by_the_engine_cli(tmp_path):
    from SpineGradeLogic.cli import build_parser

    req = runner.RunRequest(tmp_path / "a.nii.gz", tmp_path / "o", heads=["pfirrmann"], saliency="none",
                            saliency_methods=["occlusion"], device="cuda", bundles={"x": tmp_path},
                            axial=tmp_path / "ax ial.nii.gz")
    args = build_parser().parse_args(runner.build_command(req, python="py")[3:])
    assert args.command == "run" and args.heads == ["pfirrmann"] and args.saliency == "none"
    assert args.axial == tmp_path / "ax ial.nii.gz" and not args.no_axial and args.sensitivity == 0.0
    req.sensitivity = 0.35
    assert build_parser().parse_args(runner.build_command(req, python="py")[3:]).sensitivity == 0.35


def test_engine_environment(tmp_path):
    env = runner.engine_environment(models_dir=tmp_path)
    assert env["SPINEGRADE_MODELS"] == str(tmp_path)
    root = str(Path(runner.__file__).resolve().parents[2])
    assert root in env["PYTHONPATH"].split(":")


def _fake_engine(tmp_path, body: str) -> list:
    script = tmp_path / "fake_engine.py"
    script.write_text(textwrap.dedent(body))
    return [sys.executable, str(script)]


def test_engine_process_progress_and_success(tmp_path):
    cmd = _fake_engine(tmp_path, """
        import sys, time
        for i in range(3):
            print(f"PROGRESS {i}/3 stage{i}", file=sys.stderr, flush=True)
        print("PROGRESS 3/3 done", file=sys.stderr, flush=True)
    """)
    proc = runner.EngineProcess(cmd)
    assert proc.wait(timeout=30) == 0
    seen = proc.poll()
    assert [p.done for p in seen] == [0, 1, 2, 3] and seen[-1].what == "done"
    assert proc.failure_message() is None


def test_engine_process_failure_message(tmp_path):
    cmd = _fake_engine(tmp_path, """
        import sys
        print("PROGRESS 0/3 load", file=sys.stderr)
        print("spinegrade: error: x.nii: no such file or folder", file=sys.stderr)
        sys.exit(3)
    """)
    proc = runner.EngineProcess(cmd)
    assert proc.wait(timeout=30) == 3
    assert proc.failure_message() == "x.nii: no such file or folder"


def test_engine_process_cancel(tmp_path):
    cmd = _fake_engine(tmp_path, """
        import sys, time
        print("PROGRESS 0/2 waiting", file=sys.stderr, flush=True)
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            sys.exit(130)
    """)
    proc = runner.EngineProcess(cmd)
    for _ in range(100):
        if proc.poll() or proc.lines:
            break
        import time
        time.sleep(0.05)
    proc.cancel(grace_s=10)
    assert not proc.running and proc.cancelled
    assert proc.failure_message() == "cancelled; no result was written"


def test_run_blocking_raises_with_the_engine_message(tmp_path):
    req = runner.RunRequest(tmp_path / "missing.nii.gz", tmp_path / "out")
    with pytest.raises(runner.EngineFailed, match="missing.nii.gz"):
        runner.run_blocking(req, python=sys.executable)
    assert not (tmp_path / "out").exists()


def test_requirements_are_pinned_and_never_replace_slicers_packages():
    lines = [l.split("#")[0].strip() for l in dependencies.requirements_path().read_text().splitlines()]
    lines = [l for l in lines if l]
    assert lines and all("==" in l for l in lines)
    assert not any(dependencies._norm(dependencies.requirement_name(l)) in ("simpleitk", "vtk", "numpy") for l in lines)
    assert dependencies.read_requirements() == lines


def test_read_requirements_drops_slicer_provided(tmp_path):
    f = tmp_path / "r.txt"
    f.write_text("SimpleITK==2.3\n# note\nmonai==1.6.1  # pinned\nnumpy\nsimple_itk==1\n")
    assert dependencies.read_requirements(f) == ["monai==1.6.1", "simple_itk==1"]


def test_missing_requirements():
    assert dependencies.missing(["pytest"]) == []
    assert dependencies.missing(["no-such-package-spinegrade==1.0"]) == ["no-such-package-spinegrade==1.0"]
    assert dependencies.missing(["pytest==0.0.1"]) == ["pytest==0.0.1"]
    assert dependencies.ensure(requirements=["pytest"]) is True  # nothing to do: no slicer needed


def test_label_shift():
    with pytest.raises(ValueError, match="off the spine"):  # the sacrum has nowhere to go
        relabel.label_shift(["L3", "L4", "L5", "S1"], "L4", "L5")
    m = relabel.label_shift(["L2", "L3", "L4"], "L3", "L2")
    assert m == {"L2": "L1", "L3": "L2", "L4": "L3"}
    with pytest.raises(ValueError):
        relabel.label_shift(["L2"], "L9", "L2")


def test_the_panels_run_options_start_a_regrade(study, tmp_path):
    """What the panel's Logic.runOptions gives (the axial node, the sensitivity) is what a correction
    starts the engine with; the axial volume is not written again (the re-grade reuses the first run's)."""
    from SpineGradeLogic.cli import build_parser

    out, result, geom = study
    options = dict(heads=["pfirrmann"], saliency="none", saliency_methods=["auto"], device="cpu", models_dir=None,
                   axial_node=object(), sensitivity=0.5)
    # `true` stands in for the engine's Python: the command is checked, nothing runs
    proc, fixed = relabel.start_regrade(out, "L3", "L2", tmp_path / "fixed", python="true", **options)
    assert proc.proc.wait(timeout=30) == 0
    args = build_parser().parse_args(proc.command[3:])
    assert args.command == "regrade" and args.sensitivity == 0.5 and args.heads == ["pfirrmann"]
    assert fixed == tmp_path / "fixed"


def test_relabel_result(study, tmp_path):
    from SpineGradeLogic.names import VERTEBRA_LABELS
    from SpineGradeLogic.results import read_result_folder

    out, result, geom = study
    fixed = relabel.relabel_result(out, "L3", "L2", tmp_path / "fixed")
    rf = read_result_folder(fixed)
    assert [v.label for v in rf.result.vertebrae] == ["L2", "L3", "L4", "L5"]
    assert rf.result.discs[0].level == "L2/L3"
    assert rf.result.extra["corrections"] == [{"vertebra": "L3", "label": "L2"}]
    lab = rf.segmentation().array
    old = read_result_folder(out).segmentation().array
    assert np.array_equal(lab == VERTEBRA_LABELS["L2"], old == VERTEBRA_LABELS["L3"])
    assert np.array_equal(lab == 100 + VERTEBRA_LABELS["L2"], old == 100 + VERTEBRA_LABELS["L3"])
    assert (rf.path / rf.result.disc("L3/L4").saliency["pfirrmann"]).is_file()
