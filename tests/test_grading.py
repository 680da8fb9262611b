"""Releases and the grader: solution blocks are stubbed, bad submissions get clear entries, and grading never
modifies what was submitted."""
import csv
import hashlib

import nbformat
import pytest
from test_exercises import SOLUTIONS

from lablib import grading

SANDBOX = None if grading.sandbox_available() else False  # required where it can start; else the rows that need none


def test_unbalanced_markers_are_errors():
    with pytest.raises(grading.GradingError, match="never closed"):
        grading.strip_solutions("x = 1\n### BEGIN SOLUTION\ny = 2\n")
    with pytest.raises(grading.GradingError, match="without"):
        grading.strip_solutions("### END SOLUTION\n")


# --------------------------------------------------------------------------------------------
# Notebooks: release and grade (a miniature "lab 01" notebook keeps each run to seconds)
# --------------------------------------------------------------------------------------------
def lab_notebook(exercise_source: str, extra: str = "") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("overrides = []\nrun_dir = None\nruns_root = None")
    params.metadata["tags"] = ["parameters"]
    ex = nbformat.v4.new_code_cell("import math\nimport torch\n" + exercise_source)
    ex.metadata["tags"] = ["exercise"]
    nb.cells = [nbformat.v4.new_markdown_cell("# A lab"), params,
                nbformat.v4.new_code_cell("import lablib\nfrom lablib import exercises\n"
                                          "lab = lablib.start(\"01\", overrides, run_dir, runs_root)"),
                ex, nbformat.v4.new_code_cell('exercises.check("04.bt_loss", bt_loss)'),
                nbformat.v4.new_code_cell(extra or "lab.log(answer=42)\nlab.finish()")]
    return nb


def test_release_stubs_solutions_clears_outputs_and_keeps_checks(tmp_path):
    nb = lab_notebook(SOLUTIONS["04.bt_loss"])
    nb.cells[4].outputs = [nbformat.v4.new_output("stream", text="PASS 04.bt_loss\n")]
    nbformat.write(nb, str(tmp_path / "solution.ipynb"))
    info = grading.release(tmp_path / "solution.ipynb", tmp_path / "student" / "lab.ipynb")
    assert info == {"exercises": 1, "blocks": 1}
    text = (tmp_path / "student" / "lab.ipynb").read_text()
    assert "logsigmoid" not in text and "BEGIN SOLUTION" not in text and "PASS 04.bt_loss" not in text
    assert 'exercises.check(\\"04.bt_loss\\", bt_loss)' in text
    untagged = lab_notebook(SOLUTIONS["04.bt_loss"])
    untagged.cells[3].metadata["tags"] = []
    nbformat.write(untagged, str(tmp_path / "untagged.ipynb"))
    with pytest.raises(grading.GradingError, match="cell 3 has a solution block but no 'exercise' tag"):
        grading.release(tmp_path / "untagged.ipynb", tmp_path / "x.ipynb")


def test_a_class_is_graded_in_parallel_with_an_entry_for_every_submission(tmp_path, runs_root):
    subs = tmp_path / "submissions"
    subs.mkdir()
    solution = lab_notebook(SOLUTIONS["04.bt_loss"])
    nbformat.write(solution, str(tmp_path / "solution.ipynb"))
    nbformat.write(solution, str(subs / "ada.ipynb"))
    grading.release(tmp_path / "solution.ipynb", subs / "bob.ipynb")
    nbformat.write(lab_notebook(SOLUTIONS["04.bt_loss"], extra="raise ValueError('boom')"), str(subs / "cy.ipynb"))
    nbformat.write(lab_notebook(SOLUTIONS["04.bt_loss"], extra="while True:\n    pass"), str(subs / "dee.ipynb"))
    other = lab_notebook(SOLUTIONS["04.bt_loss"])
    other.cells[2].source = other.cells[2].source.replace('"01"', '"05"')
    nbformat.write(other, str(subs / "eve.ipynb"))
    (subs / "fay.txt").write_text("my answers")
    no_params = lab_notebook(SOLUTIONS["04.bt_loss"])
    no_params.cells[1].metadata["tags"] = []
    nbformat.write(no_params, str(subs / "gus.ipynb"))
    peek = lab_notebook(SOLUTIONS["04.bt_loss"], extra="open('../../labs/04_reward.ipynb').read()")
    nbformat.write(peek, str(subs / "hal.ipynb"))
    hog = lab_notebook(SOLUTIONS["04.bt_loss"], extra="x = bytearray(64 * 2 ** 30)")
    nbformat.write(hog, str(subs / "ivy.ipynb"))
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in subs.iterdir()}

    out = tmp_path / "grades"
    book = grading.grade(subs, "01", out, ["profile=smoke"], workers=2, timeout_s=90, runs_root=runs_root,
                         solution=tmp_path / "solution.ipynb", echo=lambda *_: None, sandbox=SANDBOX)
    rows = {r["student"]: r for r in csv.DictReader(book.open())}
    assert set(rows) == {"ada", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy"}
    assert rows["ada"]["status"] == "ok" and rows["ada"]["04.bt_loss"] == "pass"
    assert '"answer": 42' in rows["ada"]["self_reported"] and rows["ada"]["metrics"] == ""  # no model saved: unscored
    assert rows["bob"]["status"] == "ok" and rows["bob"]["04.bt_loss"] == "fail: not implemented yet"
    assert rows["cy"]["status"] == "crashed" and "ValueError: boom" in rows["cy"]["message"]
    assert rows["cy"]["message"].startswith("cell ") and rows["cy"]["04.bt_loss"] == "pass"
    assert rows["dee"]["status"] == "timeout"
    assert rows["eve"]["message"] == "a notebook of lab 05, not lab 01"
    assert rows["fay"]["message"] == "not a notebook (.txt)"
    assert rows["gus"]["message"].startswith("no parameters cell")
    assert rows["hal"]["message"].startswith("refused")
    assert rows["ivy"]["status"] == "memory" and "6 GB memory limit" in rows["ivy"]["message"]
    assert "| ada | ok |" in (out / "gradebook.md").read_text()
    assert before == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in subs.iterdir()}

    # Resumable: a second call finds everyone graded and runs nothing.
    said = []
    grading.grade(subs, "01", out, ["profile=smoke"], runs_root=runs_root, solution=tmp_path / "solution.ipynb",
                  echo=said.append, sandbox=SANDBOX)
    assert "9 already graded, 0 to go" in said[0]
    assert len(list(csv.DictReader(book.open()))) == 9


WRONG = "def bt_loss(r_chosen, r_rejected):\n    return (r_rejected - r_chosen).mean()\n"
FORGERIES = {
    # a wrong answer whose cell patches the checks, the check function and torch's comparison at definition time
    "patches": WRONG + ("from lablib import exercises\nexercises.CHECKS['04.bt_loss'] = lambda fn: None\n"
                        "exercises.verdict = lambda *a, **k: (True, '')\ntorch.allclose = lambda *a, **k: True\n"),
    # a wrong answer that prints the PASS line itself
    "prints": WRONG + "print('PASS 04.bt_loss')\n",
    # lablib's own function, bound to another name before any check runs
    "borrows": "from lablib.reward import bt_loss as _mine\n\ndef bt_loss(r_chosen, r_rejected):\n"
               "    return _mine(r_chosen, r_rejected)\n",
}


@pytest.mark.parametrize("how", sorted(FORGERIES))
def test_the_graders_verdict_cannot_be_forged_from_the_students_code(how, tmp_path):
    nb = lab_notebook(FORGERIES[how])
    nbformat.write(nb, str(tmp_path / "sub.ipynb"))
    verdict = grading.recheck(tmp_path / "sub.ipynb", [("04.bt_loss", "bt_loss")])["04.bt_loss"]
    assert verdict.startswith("fail: "), verdict
    if how == "borrows":  # caught by the profiler, or (sandboxed) the reference cannot even be imported
        assert verdict.startswith("fail: calls lablib's own reward.bt_loss") or "cannot be imported" in verdict, verdict


def test_the_graders_verdict_passes_an_honest_answer_and_names_a_missing_one(tmp_path):
    nbformat.write(lab_notebook(SOLUTIONS["04.bt_loss"]), str(tmp_path / "ok.ipynb"))
    assert grading.recheck(tmp_path / "ok.ipynb", [("04.bt_loss", "bt_loss")]) == {"04.bt_loss": "pass"}
    assert grading.recheck(tmp_path / "ok.ipynb", [("05.gae", "gae")])["05.gae"].startswith(
        "fail: NameError: the exercise cells define no function gae")


def test_the_exercise_process_takes_its_share_of_the_cores(tmp_path, monkeypatch):
    """Two submissions graded at once on 2 cores: each exercise process gets 1 thread, as each kernel does (two
    OpenMP jobs each spinning a thread per core ran 7x slower than one)."""
    import subprocess

    from lablib.grading import verdicts

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    seen, real = [], subprocess.Popen
    monkeypatch.setattr(verdicts.subprocess, "Popen", lambda *a, **k: seen.append(k["env"]) or real(*a, **k))
    nbformat.write(lab_notebook(SOLUTIONS["04.bt_loss"]), str(tmp_path / "ok.ipynb"))
    assert grading.recheck(tmp_path / "ok.ipynb", [("04.bt_loss", "bt_loss")], workers=2) == {"04.bt_loss": "pass"}
    assert seen[0]["OMP_NUM_THREADS"] == seen[0]["MKL_NUM_THREADS"] == "1"


def test_an_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(grading.GradingError, match="no submissions"):
        grading.grade(tmp_path / "empty", "01", tmp_path / "out")


NEXT_TOKEN = ("def next_token_loss(logits, input_ids):\n    v = logits.shape[-1]\n"
              "    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, v), input_ids[:, 1:].reshape(-1))\n")


def test_a_class_folder_gets_a_course_gradebook_and_feedback_per_student(tmp_path, runs_root):
    """One sub-folder per student: the lab of each notebook is found from its code; one table student x exercise
    with totals, and a feedback file per student that says what failed and why, with the lab's metrics."""
    cls = tmp_path / "class"
    for student, source in (("ada", NEXT_TOKEN), ("bob", NEXT_TOKEN.replace("[:, :-1]", "").replace("[:, 1:]", "")),
                            ("cy", "from transformers.loss.loss_utils import ForCausalLMLoss as L\n\n"
                                   "def next_token_loss(logits, input_ids):\n"
                                   "    return L(logits, input_ids, logits.shape[-1])\n")):
        (cls / student).mkdir(parents=True)
        nb = lab_notebook(source)
        nb.cells[4].source = 'exercises.check("01.next_token_loss", next_token_loss)'
        nbformat.write(nb, str(cls / student / "my_lab.ipynb"))
    (cls / "dee").mkdir()
    (cls / "dee" / "notes.txt").write_text("no notebook")
    out = tmp_path / "grades"
    course = grading.grade_class(cls, out, ["profile=smoke"], workers=2, timeout_s=60, runs_root=runs_root,
                                 echo=lambda *_: None, sandbox=SANDBOX)
    rows = {r["student"]: r for r in csv.DictReader(course.open())}
    assert rows["ada"]["01.next_token_loss"] == "pass" and rows["ada"]["passed"] == "1"
    assert rows["ada"]["total"] == "2" and rows["ada"]["01.nucleus"] != "pass"  # lab 01 has two; ada did one
    assert rows["bob"]["01.next_token_loss"].startswith("fail: the logits at position t must predict")
    cy = rows["cy"]["01.next_token_loss"]  # the profiler's catch, or (sandboxed) transformers is not even there
    assert cy.startswith("fail: calls transformers' own ForCausalLMLoss") or "cannot be imported" in cy, cy
    assert rows["dee"]["01.next_token_loss"] == "not submitted" and rows["dee"]["passed"] == "0"
    ada = (out / "feedback" / "ada.md").read_text()
    assert "## Lab 01" in ada and "01.next_token_loss: pass" in ada and "Run: ok" in ada
    assert "fail: the logits" in (out / "feedback" / "bob.md").read_text()
    assert "Not graded: notes.txt" in (out / "feedback" / "dee.md").read_text()
    assert (out / "course.md").read_text().startswith("Sandbox: " + ("bubblewrap" if SANDBOX is None else "none"))
    assert (out / "labs" / "01" / "gradebook.csv").exists()
    assert "01 val_loss" in rows["ada"]  # the lab's headline metric (the miniature lab logs none: empty)


@pytest.mark.skipif(not grading.sandbox_available(), reason="bubblewrap (Debian: bubblewrap) is not installed")
def test_a_submission_runs_where_the_solutions_and_the_network_do_not_exist(tmp_path, runs_root):
    """The path filter is easy to get around; the sandbox is not: the kit's labs/ (the solutions) and the network
    are simply absent, and the work folder is the only place it can write."""
    subs = tmp_path / "submissions"
    subs.mkdir()
    peek = ("import lablib\nsecret = lablib.config.home() / ('labs/04_reward.ip' + 'ynb')\n"
            "print(open(secret).read()[:100])")
    net = "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)"
    for name, extra in (("peek", peek), ("net", net)):
        nbformat.write(lab_notebook(SOLUTIONS["04.bt_loss"], extra=extra), str(subs / f"{name}.ipynb"))
    solution = tmp_path / "solution.ipynb"
    nbformat.write(lab_notebook(SOLUTIONS["04.bt_loss"]), str(solution))
    book = grading.grade(subs, "01", tmp_path / "grades", ["profile=smoke"], workers=2, timeout_s=60,
                         runs_root=runs_root, solution=solution, echo=lambda *_: None, sandbox=True)
    rows = {r["student"]: r for r in csv.DictReader(book.open())}
    assert rows["peek"]["status"] == "crashed" and "FileNotFoundError" in rows["peek"]["message"]
    assert rows["net"]["status"] == "crashed" and "OSError" in rows["net"]["message"] or \
        "Network is unreachable" in rows["net"]["message"]
    assert rows["peek"]["04.bt_loss"] == rows["net"]["04.bt_loss"] == "pass"


def test_submissions_run_as_submitit_jobs_into_the_same_gradebook(tmp_path, runs_root):
    subs = tmp_path / "submissions"
    subs.mkdir()
    solution = tmp_path / "solution.ipynb"
    nbformat.write(lab_notebook(SOLUTIONS["04.bt_loss"]), str(solution))
    nbformat.write(lab_notebook(SOLUTIONS["04.bt_loss"]), str(subs / "ada.ipynb"))
    nbformat.write(lab_notebook(WRONG), str(subs / "bob.ipynb"))
    kwargs = dict(workers=2, timeout_s=60, runs_root=runs_root, solution=solution, launcher="submitit-local",
                  sandbox=SANDBOX)
    book = grading.grade(subs, "01", tmp_path / "grades", ["profile=smoke"], echo=lambda *_: None, **kwargs)
    rows = {r["student"]: r for r in csv.DictReader(book.open())}
    assert rows["ada"]["04.bt_loss"] == "pass" and rows["bob"]["04.bt_loss"].startswith("fail: ")
    assert list((tmp_path / "grades" / "submitit").glob("*_result.pkl"))  # they ran as submitit jobs
    said = []
    grading.grade(subs, "01", tmp_path / "grades", ["profile=smoke"], echo=said.append, **kwargs)
    assert "2 already graded, 0 to go" in said[0]
