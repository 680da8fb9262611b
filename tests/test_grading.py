"""Exercises, releases and the grader: solutions pass their checks, releases fail them, bad submissions
get clear entries, and grading never modifies what was submitted."""
import csv
import hashlib

import nbformat
import pytest
import torch

from lablib import grading, ppo, raft, reward

SOLUTIONS = {
    "04.bt_loss": "def bt_loss(r_chosen, r_rejected):\n"
                  "    ### BEGIN SOLUTION\n"
                  "    return -torch.nn.functional.logsigmoid(r_chosen - r_rejected).mean()\n"
                  "    ### END SOLUTION\n",
    "05.gae": "def gae(rewards, values, mask, gamma, lam):\n"
              "    ### BEGIN SOLUTION\n"
              "    adv = torch.zeros_like(rewards)\n"
              "    last = torch.zeros(rewards.shape[0])\n"
              "    for t in reversed(range(rewards.shape[1])):\n"
              "        nxt = values[:, t + 1] * mask[:, t + 1] if t + 1 < rewards.shape[1] else 0.0\n"
              "        delta = rewards[:, t] * mask[:, t] + gamma * nxt - values[:, t] * mask[:, t]\n"
              "        last = delta + gamma * lam * last\n"
              "        adv[:, t] = last\n"
              "    adv = adv * mask\n"
              "    return adv, (adv + values * mask) * mask\n"
              "    ### END SOLUTION\n",
    "06.select": "def select(responses, scores, k):\n"
                 "    kept = []\n"
                 "    ### BEGIN SOLUTION\n"
                 "    for start in range(0, len(responses), k):\n"
                 "        ok = [i for i in range(start, start + k) if responses[i].strip() and math.isfinite(scores[i])]\n"
                 "        if ok:\n"
                 "            kept.append(max(ok, key=lambda i: (scores[i], -i)))\n"
                 "    ### END SOLUTION\n"
                 "    return kept\n",
}
FUNCTION = {"04.bt_loss": "bt_loss", "05.gae": "gae", "06.select": "select"}
# (The exercises of labs 01-03 are tested from the lab notebooks themselves, below.)


def run_cells(source: str, name: str) -> bool:
    scope = {"torch": torch, "math": __import__("math")}
    exec(source, scope)
    return grading.check(name, scope[FUNCTION[name]])


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_the_solution_passes_and_the_released_stub_fails(name, capsys):
    assert run_cells(SOLUTIONS[name], name)
    assert capsys.readouterr().out.strip() == f"PASS {name}"
    released = grading.strip_solutions(SOLUTIONS[name])
    assert "BEGIN SOLUTION" not in released and grading.STUB in released
    assert not run_cells(released, name)
    assert capsys.readouterr().out.strip() == f"FAIL {name}: not implemented yet"


def test_a_wrong_answer_says_why(capsys):
    assert not grading.check("04.bt_loss", lambda c, r: torch.log(torch.sigmoid(c - r)).mean())  # sign flipped
    assert "expected" in capsys.readouterr().out
    unstable = lambda c, r: -torch.log(torch.sigmoid(c - r)).mean()  # noqa: E731 -- overflows at large margins
    assert not grading.check("04.bt_loss", unstable)
    assert "got a NaN or inf" in capsys.readouterr().out
    assert not grading.check("06.select", lambda responses, scores, k: [0])
    assert "kept [0], expected" in capsys.readouterr().out
    F = torch.nn.functional
    unshifted = lambda logits, ids: F.cross_entropy(logits.flatten(0, 1), ids.flatten())  # noqa: E731
    assert not grading.check("01.next_token_loss", unshifted)
    assert "shift by one" in capsys.readouterr().out

    def in_place(ids, prompt_lens, attention_mask):
        ids[attention_mask == 0] = -100
        return ids
    assert not grading.check("02.mask_prompt", in_place)
    assert "changed in place" in capsys.readouterr().out
    assert not grading.check("02.mask_prompt", lambda ids, lens, mask: ids.masked_fill(mask == 0, -100))
    assert "(a prompt token): label" in capsys.readouterr().out
    unscaled = lambda x, w, a, b, alpha: x @ w.T + (x @ a.T) @ b.T  # noqa: E731
    assert not grading.check("03.lora_forward", unscaled)
    assert "not scaled" in capsys.readouterr().out

    def mean_nll(logits, ids, n_prompt):
        logp = torch.log_softmax(logits, -1)[n_prompt - 1:-1]
        return -logp.gather(1, ids[n_prompt:, None]).mean()
    assert not grading.check("07.response_nll", mean_nll)
    assert "mean per token" in capsys.readouterr().out


@pytest.mark.parametrize("name,ours", [("04.bt_loss", reward.bt_loss), ("05.gae", ppo.gae),
                                       ("06.select", raft.select)])
def test_handing_in_lablibs_own_function_does_not_pass(name, ours, capsys):
    assert not grading.check(name, ours)
    assert "lablib's own" in capsys.readouterr().out


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
                nbformat.v4.new_code_cell("import lablib\nfrom lablib import grading\n"
                                          "lab = lablib.start(\"01\", overrides, run_dir, runs_root)"),
                ex, nbformat.v4.new_code_cell('grading.check("04.bt_loss", bt_loss)'),
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
    assert 'grading.check(\\"04.bt_loss\\", bt_loss)' in text
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
    book = grading.grade(subs, "01", out, ["profile=smoke"], workers=2, timeout_s=45, runs_root=runs_root,
                         solution=tmp_path / "solution.ipynb", echo=lambda *_: None)
    rows = {r["student"]: r for r in csv.DictReader(book.open())}
    assert set(rows) == {"ada", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy"}
    assert rows["ada"]["status"] == "ok" and rows["ada"]["04.bt_loss"] == "pass" and '"answer": 42' in rows["ada"]["metrics"]
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
                  echo=said.append)
    assert "9 already graded, 0 to go" in said[0]
    assert len(list(csv.DictReader(book.open()))) == 9


def test_an_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(grading.GradingError, match="no submissions"):
        grading.grade(tmp_path / "empty", "01", tmp_path / "out")


@pytest.mark.parametrize("lab_key", ["01", "02", "03", "04", "05", "06", "07"])
def test_each_labs_exercises_pass_as_solutions_and_fail_as_released(lab_key, tmp_path, capsys):
    """The real lab notebooks: run each exercise cell and its check, from the solution and from the release."""
    from lablib import running

    lab = running.find_lab(lab_key)
    released = tmp_path / "student.ipynb"
    assert grading.release(lab.notebook_path, released)["exercises"] >= 1
    for path, verdict in ((lab.notebook_path, "PASS"), (released, "FAIL")):
        cells = nbformat.read(str(path), as_version=4).cells
        for i, cell in enumerate(cells):
            if "exercise" in cell.metadata.get("tags", []):
                scope = {"torch": torch, "grading": grading}
                exec(cell.source, scope)
                exec(cells[i + 1].source, scope)
                out = capsys.readouterr().out
                assert out.startswith(verdict), f"{path.name} cell {i}: {out}"
    assert "BEGIN SOLUTION" not in released.read_text()
