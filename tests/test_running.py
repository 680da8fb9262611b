"""The runner: manifest checks, errors before any kernel starts, caching, atomic run folders."""
import os
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from lablib import config, running

REPO = config.home()

FAKE_LAB = '''
import lablib
lab = lablib.start("{id}", overrides, run_dir, runs_root)
if lab.cfg.seed == 13:
    raise RuntimeError("unlucky seed")
out = lab.artifact("{produces}")
out.mkdir(parents=True)
upstream = open(lab.cfg.inputs["src"] + "/value.txt").read() if lab.cfg.inputs else ""
(out / "value.txt").write_text(upstream + str(lab.cfg.seed))
lab.log(seed=lab.cfg.seed)
lab.finish()
'''

MANIFEST = '''
labs:
  - {id: "01", name: first, title: First, notebook: labs/first.ipynb, config: lab01, produces: [thing]}
  - {id: "02", name: second, title: Second, notebook: labs/second.ipynb, config: lab01,
     consumes: {src: 01/thing}, produces: [other]}
'''


def fake_notebook(path: Path, lab_id: str, produces: str) -> None:
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    params = new_code_cell("overrides = []\nrun_dir = None\nruns_root = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(FAKE_LAB.format(id=lab_id, produces=produces))]
    nbformat.write(nb, str(path))


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """A kit with two fake, fast labs: 02 consumes 01's artifact."""
    kit = tmp_path / "kit"
    shutil.copytree(REPO / "conf", kit / "conf")
    (kit / "conf" / "course.yaml").write_text(MANIFEST)
    (kit / "labs").mkdir()
    fake_notebook(kit / "labs" / "first.ipynb", "01", "thing")
    fake_notebook(kit / "labs" / "second.ipynb", "02", "other")
    monkeypatch.setenv("LABLIB_HOME", str(kit))
    monkeypatch.setenv("LABLIB_RUNS", str(kit / "runs"))
    return kit


def test_manifest_of_the_course_is_valid():
    labs = running.manifest()
    assert labs[0].id == "01" and labs[0].notebook_path.exists()
    assert all(lab.notebook_path.exists() for lab in labs)


def test_manifest_rejects_an_unknown_upstream(home):
    (home / "conf" / "course.yaml").write_text(MANIFEST.replace("01/thing", "01/nothing"))
    with pytest.raises(running.RunError, match="consumes src='01/nothing', which no earlier lab produces"):
        running.manifest()


def test_errors_come_before_any_kernel(home):
    with pytest.raises(running.RunError, match="unknown lab '7'"):
        running.plan(["7"])
    with pytest.raises(running.RunError, match="lab 01: .*train.lr"):
        running.plan(["01"], ["train.lr=fast"])
    with pytest.raises(running.RunError, match=r"lab 02 needs src from lab 01: .*01_first/artifacts/thing does not exist"):
        running.plan(["02"], upstream=False)
    assert [s.lab.id for s in running.plan(["02", "01"])] == ["01", "02"]  # dependency order


def test_a_lab_whose_upstream_artifacts_are_missing_runs_them_first(home):
    steps = running.plan(["02"])
    assert [(s.lab.id, s.why) for s in steps] == [("01", "lab 02 needs its thing"), ("02", "")]
    said = []
    rows = running.run(["02"], progress=False, echo=said.append)
    assert [r["status"] for r in rows] == ["ran", "ran"]
    assert said[0] == "[01 first] runs first: lab 02 needs its thing (--no-upstream to stop instead)"
    assert [s.lab.id for s in running.plan(["02"])] == ["02"]  # the artifact exists now: 01 is not re-planned


def test_run_caches_forces_and_hands_artifacts_downstream(home, capfd):
    rows = running.run(["01", "02"], ["profile=smoke", "seed=4"], progress=False, echo=lambda *_: None)
    assert [r["status"] for r in rows] == ["ran", "ran"]
    assert "Kernel is running over TCP" not in capfd.readouterr().err  # the kernel's start-up notice is off
    second = home / "runs" / "smoke" / "02_second"
    assert (second / "artifacts" / "other" / "value.txt").read_text() == "44"
    assert json.loads((second / "metrics.json").read_text()) == {"seed": 4}
    assert (second / "notebook.ipynb").exists() and (second / "config.yaml").exists()
    rows = running.run(["02"], ["profile=smoke", "seed=4"], progress=False, echo=lambda *_: None)
    assert rows[0]["status"] == "cached"
    assert [s["status"] for s in running.status(["profile=smoke", "seed=4"])] == ["done", "done"]
    assert [s["status"] for s in running.status(["profile=smoke", "seed=5"])] == ["stale", "stale"]
    rows = running.run(["02"], ["profile=smoke", "seed=4"], force=True, progress=False, echo=lambda *_: None)
    assert rows[0]["status"] == "ran"


def test_a_failed_lab_keeps_the_previous_run_and_names_the_cell(home):
    running.run(["01"], ["profile=smoke", "seed=4"], progress=False, echo=lambda *_: None)
    folder = home / "runs" / "smoke" / "01_first"
    with pytest.raises(running.RunError, match=r"lab 01 \(first\) failed in cell 3: RuntimeError: unlucky seed"):
        running.run(["01"], ["profile=smoke", "seed=13"], progress=False, echo=lambda *_: None)
    assert (folder / "artifacts" / "thing" / "value.txt").read_text() == "4"  # previous good run intact
    assert (folder.parent / "01_first.failed.ipynb").exists()
    assert not [p for p in folder.parent.iterdir() if ".partial" in p.name]


def lab_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lablib.course.cli", *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("args, message", [
    (["run", "42"], "unknown lab '42'"),
    (["run", "01", "train.max_steps=many"], "train.max_steps"),
    (["show", "01", "optimizer.lr=1"], "optimizer"),
    (["show"], "exactly one lab"),
])
def test_cli_errors_are_one_line_with_exit_2(args, message):
    out = lab_cli(*args)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("lab: error:") and message in out.stderr


def test_cli_show_and_list():
    out = lab_cli("show", "01", "profile=smoke", "train.max_steps=3")
    assert out.returncode == 0 and "max_steps: 3" in out.stdout and "profile: smoke" in out.stdout
    out = lab_cli("--runs", "/nonexistent-runs", "list", "profile=smoke")
    assert out.returncode == 0 and "01   pretraining    not run" in out.stdout


def test_a_lab_that_forgets_its_artifact_replaces_nothing(home):
    nb = nbformat.read(str(home / "labs" / "first.ipynb"), as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace('out = lab.artifact("thing")', 'out = lab.artifact("other")')
    nbformat.write(nb, str(home / "labs" / "first.ipynb"))
    with pytest.raises(running.RunError, match="lab 01 ran but did not write artifacts/thing; nothing was replaced"):
        running.run(["01"], ["profile=smoke"], progress=False, echo=lambda *_: None)
    assert not (home / "runs" / "smoke" / "01_first").exists()


def test_a_second_lab_command_is_told_that_the_cores_are_taken(tmp_path):
    """`lab run` while another lab command holds the cores: one line naming it (pid and command), then it runs."""
    import subprocess
    import sys

    from lablib.course import cores

    lock = tmp_path / "cores.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom lablib.course import cores\n"
                               f"assert cores.claim('lab run profile=cpu', {str(lock)!r}) is None\n"
                               "print('held', flush=True)\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        line = cores.claim("lab run profile=smoke", lock)
        assert line.startswith(f"note: pid {holder.pid} (lab run profile=cpu) is already using this machine's cores")
        assert "\n" not in line
    finally:
        holder.kill()
        holder.wait()
    assert cores.claim("lab run profile=smoke", lock) is None  # free again: this process takes them
    assert f"pid {os.getpid()}" in lock.read_text()
