"""Every lab runs headlessly under `smoke`, its checks pass, its outputs carry no stray stderr, and it takes the
code paths a student's `cpu` run takes (lablib's line coverage, compared with the bench's `cpu` record)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

from lablib import running
from lablib.course import coverage

LABS = running.manifest()
ROOT = Path(__file__).resolve().parents[1]
CPU_RECORD = ROOT / "bench" / "coverage_cpu.json"  # made by `python bench/run.py --science cpu`
EXCUSED = ROOT / "tests" / "coverage_excused.yaml"  # lines only `cpu` runs, each with its reason


def test_the_whole_course_runs_under_smoke_on_the_paths_cpu_takes(tmp_path):
    data = tmp_path / "coverage"
    data.mkdir()
    env = {**os.environ, "LABLIB_COVERAGE": str(data)}
    out = subprocess.run([sys.executable, "-m", "lablib.course.cli", "--runs", str(tmp_path), "run", "--quiet",
                          "profile=smoke"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    done = [line for line in out.stdout.splitlines() if " done in " in line]  # `lab run` counts stderr per lab
    assert len(done) == len(LABS) and all(", 0 lines on stderr" in line for line in done), "\n".join(done)
    m = json.loads((tmp_path / "smoke" / "01_pretraining" / "metrics.json").read_text())
    assert m["val_loss"] < m["unigram_loss"] < m["val_loss_before"]
    assert (tmp_path / "smoke" / "01_pretraining" / "artifacts" / "model" / "model.safetensors").exists()
    # nbval compares only the checked cells; a warning or error on stderr in *any* cell of any lab fails here.
    for lab in LABS:
        nb = nbformat.read(str(running.run_dir(lab, "smoke", tmp_path) / "notebook.ipynb"), as_version=4)
        for i, cell in enumerate(nb.cells):
            for o in cell.get("outputs", []):
                assert not (o.output_type == "stream" and o.name == "stderr"), \
                    f"lab {lab.id}, cell {i} wrote to stderr:\n{o.text[:2000]}"
    if not CPU_RECORD.exists():
        import pytest
        pytest.skip(f"no {CPU_RECORD.name} yet: `python bench/run.py --science cpu` records it")
    excused = yaml.safe_load(EXCUSED.read_text())
    missing = coverage.missing(coverage.load(CPU_RECORD), coverage.covered(data), excused)
    assert not missing, (f"{len(missing)} lines of lablib run under `cpu` but not under `smoke` (make smoke take "
                         f"the path, or excuse it with a reason in {EXCUSED.name}):\n" + "\n".join(missing[:40]))


def test_stderr_lines_are_counted_per_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stderr", text="one\ntwo\n"),
        nbformat.v4.new_output("stream", name="stdout", text="not counted\n")]),
        nbformat.v4.new_code_cell("y", outputs=[nbformat.v4.new_output("stream", name="stderr", text="three")])]
    nbformat.write(nb, str(tmp_path / "n.ipynb"))
    assert running.stderr_lines(tmp_path / "n.ipynb") == 3


def test_a_line_keeps_its_name_when_code_above_it_changes(tmp_path, monkeypatch):
    pkg = tmp_path / "lablib"
    pkg.mkdir()
    monkeypatch.setattr(coverage, "PACKAGE", pkg)
    src = pkg / "m.py"
    src.write_text("def f():\n    x = 1\n    return x\n")
    before = coverage.line_keys(src)
    src.write_text("import os\n\n\ndef f():\n    x = 1\n    return x\n")
    after = coverage.line_keys(src)
    assert before[3] == after[6] == "lablib/m.py::f::return x#1"
    assert coverage.missing({before[3], "lablib/m.py::f::gone#1"}, set(), {}) == [before[3]]
    assert coverage.missing({before[3]}, set(), {"m.py::f": "only under cpu"}) == []
