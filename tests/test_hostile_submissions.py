"""The hostile submissions tried against the grader, and the verdict each must get (book/instructors.md shows the
table: ``.venv/bin/python tests/test_hostile_submissions.py`` prints it).

No row may get a better verdict than an honest wrong answer, and nothing may run in the grader's process that a
submission chose. The rows that test the sandbox itself skip where bubblewrap cannot start; the others run on
every machine.
"""
import csv
import os
import sys
import uuid
from pathlib import Path

import nbformat
import pytest
from test_grading import WRONG, lab_notebook

from lablib import grading

SANDBOX = grading.sandbox_available()
needs_sandbox = pytest.mark.skipif(not SANDBOX, reason="the grading sandbox (bubblewrap) cannot start here")
MARK = f"lablib-hostile-{uuid.uuid4().hex[:8]}"  # a file or process name no honest code makes
GRADER_TMP = Path("/tmp") / MARK  # made only if the grader (not the sandbox) ran a submission's code
SECRET = f"s3cret-{uuid.uuid4().hex}"

# (key, what the submission does, the verdict it gets, needs the sandbox)
TABLE = [
    ("pickle-frame", "writes a pickle onto the result pipe whose loading would run `touch /tmp/…` as the grader",
     "`fail: a header that is not JSON`; nothing runs in the grader", False),
    ("computing-object", "returns an object whose deserialisation would compute the answer (`__reduce__` calling "
     "`reward.bt_loss`)", "`fail: … is not data the grader reads`", False),
    ("constructor-json", "writes a well-framed JSON result naming a constructor (`{\"__class__\": \"os.system\"}`)",
     "`fail: a value the format does not define`", False),
    ("wrong-type", "returns a string", "`fail: returned a str; the check expects a tensor or a number`", False),
    ("huge-tensor", "returns a 400 MB tensor", "`fail: sent 381.5 MB, more than a message may hold (8.0 MB)`", False),
    ("patches-checks", "patches `exercises.CHECKS`, `exercises.verdict` and `torch.allclose` in its own process",
     "the honest wrong answer's verdict (`fail: …expected…`)", False),
    ("prints-pass", "prints `PASS 04.bt_loss`", "`fail: …`: what a kernel prints counts for nothing", False),
    ("blinds-profiler", "replaces `sys.setprofile`/`getprofile` with no-ops, then calls `reward.bt_loss`",
     "`fail: …cannot be imported`: in the sandbox lablib's references, transformers, TRL and PEFT are empty", True),
    ("own-metrics", "writes `metrics.json` claiming `val_loss` 0.001 beside an untrained model",
     "its `val_loss` is the grader's (about ln V); 0.001 only under `self_reported`, never ranked by", False),
    ("linked-weights", "saves `model.safetensors` as a link to `/etc/passwd`",
     "`not scored: model/model.safetensors is not a plain file (a link?)`", False),
    ("pickled-weights", "saves `pytorch_model.bin` (a pickle that would run code) and no safetensors",
     "`not scored: model has no model.safetensors`; the pickle is never opened", False),
    ("linked-run", "replaces its run's `artifacts/` by a link to another student's",
     "`not scored: run/artifacts is a link`", False),
    ("env-secret", "raises an error holding the grader's environment variable `LABLIB_TEST_SECRET`",
     "the secret is not in its environment: the message says `None`", False),
    ("fills-disk", "writes 10 MB files until the disk is full", "`limits: its work folder passed its 0.1 GB limit`", False),
    ("reads-solutions", "reads `labs/04_reward.ipynb` by a path built at run time", "`crashed`: FileNotFoundError", True),
    ("reads-runs", "reads the course's runs folder and another student's work folder", "`crashed`: FileNotFoundError",
     True),
    ("writes-outside", "writes into the grader's folder, `lablib/` and the runs folder", "`crashed`: nothing written",
     True),
    ("socket", "opens a connection to 1.1.1.1:80", "`crashed`: the network is unreachable", True),
    ("fork-bomb", "forks until it cannot", "`limits: hit a limit (processes …)`; the others finish", True),
    ("leaves-process", "starts a process in a new session that outlives its kernel", "the process is gone after grading",
     True),
]
NEEDS = {key: sandbox for key, _, _, sandbox in TABLE}


def rows_markdown() -> str:
    lines = ["| submission | verdict | needs the sandbox |", "|---|---|---|"]
    lines += [f"| {what} | {verdict} | {'yes' if sandbox else 'no'} |" for _, what, verdict, sandbox in TABLE]
    return "\n".join(lines)


def test_the_instructors_page_shows_this_table():
    page = (Path(__file__).parents[1] / "book" / "instructors.md").read_text()
    assert rows_markdown() in page, "regenerate the table: .venv/bin/python tests/test_hostile_submissions.py"


# --------------------------------------------------------------------------------------------
# Results: the exercise process's answers (grading.recheck)
# --------------------------------------------------------------------------------------------
RAW = ("import os, struct, sys\n"
       "def _raw(body):\n"
       "    os.write(int(sys.argv[3]), struct.pack('>Q', len(body)) + body)\n")
EXERCISES = {
    "pickle-frame": RAW + ("import pickle\nclass Evil:\n    def __reduce__(self):\n"
                           f"        return (os.system, ('touch {GRADER_TMP}',))\n"
                           "def bt_loss(r_chosen, r_rejected):\n    p = pickle.dumps(('ok', Evil(), []))\n    _raw(struct.pack('>II', len(p), 0) + p)\n"
                           "    return r_chosen.mean()\n"),
    "computing-object": ("class Answer:\n    def __reduce__(self):\n        from lablib.reward import bt_loss\n"
                         "        return (bt_loss, (self.c, self.r))\n"
                         "def bt_loss(r_chosen, r_rejected):\n    a = Answer()\n    a.c, a.r = r_chosen, r_rejected\n"
                         "    return a\n"),
    "constructor-json": RAW + ("import json\n"
                               "def bt_loss(r_chosen, r_rejected):\n"
                               "    head = json.dumps({'__class__': 'os.system', 'args': ['id']}).encode()\n"
                               "    _raw(struct.pack('>II', len(head), 0) + head)\n    return r_chosen.mean()\n"),
    "wrong-type": "def bt_loss(r_chosen, r_rejected):\n    return '0.5'\n",
    "huge-tensor": "def bt_loss(r_chosen, r_rejected):\n    return torch.zeros(100_000_000)\n",
    "patches-checks": WRONG + ("from lablib import exercises\nexercises.CHECKS['04.bt_loss'] = lambda fn: None\n"
                               "exercises.verdict = lambda *a, **k: (True, '')\n"
                               "torch.allclose = lambda *a, **k: True\n"),
    "prints-pass": WRONG + "print('PASS 04.bt_loss')\n",
    "blinds-profiler": ("import sys\nsys.setprofile = lambda f: None\nsys.getprofile = lambda: None\n"
                        "from lablib.reward import bt_loss as _theirs\n"
                        "def bt_loss(r_chosen, r_rejected):\n    return _theirs(r_chosen, r_rejected)\n"),
    "env-secret": "import os\ndef bt_loss(r_chosen, r_rejected):\n    raise ValueError(os.environ.get('LABLIB_TEST_SECRET'))\n",
}
VERDICTS = {
    "pickle-frame": "fail: a header that is not JSON", "computing-object": "is not data the grader reads",
    "constructor-json": "fail: a value the format does not define",
    "wrong-type": "fail: returned a str; the check expects a tensor or a number",
    "huge-tensor": "more than a message may hold (8.0 MB)", "patches-checks": "expected",
    "prints-pass": "expected", "blinds-profiler": "cannot be imported", "env-secret": "ValueError: None",
}


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_a_hostile_result_gets_no_better_than_an_honest_wrong_answer(key, tmp_path, monkeypatch):
    if NEEDS[key] and not SANDBOX:
        pytest.skip("the grading sandbox (bubblewrap) cannot start here")
    monkeypatch.setenv("LABLIB_TEST_SECRET", SECRET)
    nbformat.write(lab_notebook(EXERCISES[key]), str(tmp_path / "sub.ipynb"))
    verdict = grading.recheck(tmp_path / "sub.ipynb", [("04.bt_loss", "bt_loss")], timeout_s=30,
                              sandbox_on=SANDBOX)["04.bt_loss"]
    assert verdict.startswith("fail: ") and VERDICTS[key] in verdict, verdict
    assert SECRET not in verdict
    assert not GRADER_TMP.exists(), "the grader ran a command the submission chose"


def test_the_wire_builds_only_data():
    from lablib.grading import wire

    import torch
    value = (torch.arange(6.0).reshape(2, 3), [1, 2.5, "x", None, True], {"k": torch.tensor(1, dtype=torch.int8)})
    back = wire.decode(wire.encode(value))
    assert torch.equal(back[0], value[0]) and back[1] == value[1] and back[2]["k"].dtype == torch.int8
    for bad in (b"\x00" * 8 + b"x", wire.encode(1)[:-1]):
        with pytest.raises(wire.WireError):
            wire.decode(bad)
    with pytest.raises(wire.WireError, match="not data"):
        wire.encode(object())


# --------------------------------------------------------------------------------------------
# Whole submissions: a class graded once, each row a test of its own
# --------------------------------------------------------------------------------------------
SAVE_MODEL = ("from lablib import domain, models, tokenization\nimport torch\n"
              "docs, _ = domain.corpus(lab.cfg)\n"
              "tok = tokenization.train_bpe(docs, lab.cfg.tokenizer.vocab_size, lab.cfg.tokenizer.min_frequency)\n"
              "torch.manual_seed(0)\nsaved = lab.save_model(models.build_scratch(lab.cfg.model, len(tok), tok), tok, 'model')\n")
NOTEBOOKS = {
    "own-metrics": SAVE_MODEL + "lab.log(val_loss=0.001)\nlab.finish()",
    "linked-weights": SAVE_MODEL + ("(saved / 'model.safetensors').unlink()\n"
                                    "(saved / 'model.safetensors').symlink_to('/etc/passwd')\nlab.finish()"),
    "pickled-weights": SAVE_MODEL + ("import os, pickle\nclass Evil:\n    def __reduce__(self):\n"
                                     f"        return (os.system, ('touch {GRADER_TMP}',))\n"
                                     "(saved / 'model.safetensors').unlink()\n"
                                     "(saved / 'pytorch_model.bin').write_bytes(pickle.dumps(Evil()))\nlab.finish()"),
    "linked-run": ("lab.finish()\nimport shutil\nfrom pathlib import Path\n"
                   "shutil.rmtree(lab.dir / 'artifacts', ignore_errors=True)\n"
                   "(lab.dir / 'artifacts').symlink_to(Path.cwd().parents[1] / 'own-metrics' / 'nb' / 'run' / 'artifacts')"),
    "env-secret": "import os\nraise ValueError(str(os.environ.get('LABLIB_TEST_SECRET')))",
    "fills-disk": "for i in range(100):\n    open(f'fill{i}.bin', 'wb').write(b'x' * 10_000_000)",
    "reads-solutions": ("import lablib\nsecret = lablib.config.home() / ('labs/04_reward.ip' + 'ynb')\n"
                        "print(open(secret).read()[:100])"),
    "reads-runs": ("import os\nfrom pathlib import Path\nprint(os.listdir(Path(runs_root) / 'smoke'))\n"
                   "print(os.listdir(Path.cwd().parents[1] / 'honest' / 'nb'))"),
    "writes-outside": ("import lablib\nfrom pathlib import Path\n"
                       f"for target in (Path.cwd().parent / '{MARK}', lablib.config.home() / 'lablib' / '{MARK}',\n"
                       f"               Path(runs_root) / '{MARK}'):\n"
                       "    try:\n        target.write_text('owned')\n    except OSError as exc:\n"
                       "        print(type(exc).__name__)\n"
                       "    else:\n        raise SystemExit('wrote ' + str(target))\nraise RuntimeError('nothing written')"),
    "socket": "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)",
    "fork-bomb": ("import os, time\nkids = []\nwhile True:\n    pid = os.fork()\n    if pid == 0:\n"
                  "        time.sleep(20)\n        os._exit(0)\n    kids.append(pid)"),
    "leaves-process": ("import subprocess, sys\n"
                       f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', '{MARK}'],\n"
                       "                 start_new_session=True)\nlab.finish()"),
    "honest": "lab.log(answer=42)\nlab.finish()",
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory, runs_root):
    """One class of every hostile notebook (the sandbox rows only where it can start), graded once."""
    tmp = tmp_path_factory.mktemp("hostile")
    subs = tmp / "submissions"
    subs.mkdir()
    from test_exercises import SOLUTIONS

    for key, extra in NOTEBOOKS.items():
        if key == "honest" or SANDBOX or not NEEDS[key]:
            nbformat.write(lab_notebook(SOLUTIONS["04.bt_loss"], extra=extra), str(subs / f"{key}.ipynb"))
    solution = tmp / "solution.ipynb"
    nbformat.write(lab_notebook(SOLUTIONS["04.bt_loss"]), str(solution))
    os.environ["LABLIB_TEST_SECRET"] = SECRET
    try:
        book = grading.grade(subs, "01", tmp / "grades", ["profile=smoke"], workers=2, timeout_s=90,
                             runs_root=runs_root, solution=solution, echo=lambda *_: None,
                             sandbox=None if SANDBOX else False, disk_gb=0.1, processes=200)
    finally:
        del os.environ["LABLIB_TEST_SECRET"]
    return {r["student"]: r for r in csv.DictReader(book.open())}, tmp / "grades"


def _row(graded, key):
    if NEEDS[key] and not SANDBOX:
        pytest.skip("the grading sandbox (bubblewrap) cannot start here")
    rows, out = graded
    assert SECRET not in (out / "gradebook.csv").read_text()
    assert not GRADER_TMP.exists(), "the grader ran a command the submission chose"
    assert rows["honest"]["status"] == "ok" and rows["honest"]["04.bt_loss"] == "pass"  # the others finished
    return rows[key], out


def test_own_metrics_are_shown_as_self_reported_and_the_graders_are_ranked(graded):
    import json

    row, out = _row(graded, "own-metrics")
    graded_loss, claimed = json.loads(row["metrics"])["val_loss"], json.loads(row["self_reported"])["val_loss"]
    assert claimed == 0.001 and graded_loss > 1.0, (graded_loss, claimed)  # an untrained model: near ln V
    table = (out / "gradebook.md").read_text()
    assert f"| {graded_loss:.4g} |" in table and "| 0.001 |" not in table


@pytest.mark.parametrize("key,message", [("linked-weights", "not scored: model/model.safetensors is not a plain file"),
                                         ("pickled-weights", "not scored: model has no model.safetensors"),
                                         ("linked-run", "not scored: run/artifacts is a link")])
def test_weights_that_are_not_plain_safetensors_are_not_read(graded, key, message):
    row, _ = _row(graded, key)
    assert row["status"] == "ok" and row["message"].startswith(message) and row["metrics"] == "", row


@pytest.mark.parametrize("key,status,message", [
    ("env-secret", "crashed", "ValueError: None"),
    ("fills-disk", "limits", "its work folder passed its 0.1 GB limit"),
    ("reads-solutions", "crashed", "FileNotFoundError"),
    ("reads-runs", "crashed", "FileNotFoundError"),
    ("writes-outside", "crashed", "nothing written"),
    ("socket", "crashed", "Error"),
    ("fork-bomb", "limits", "hit a limit"),
])
def test_a_hostile_notebook_gets_its_own_row_and_the_class_finishes(graded, key, status, message):
    row, _ = _row(graded, key)
    assert row["status"] == status and message in row["message"], row
    assert row["sandbox"] == ("bubblewrap" if SANDBOX else "none")


def test_nothing_a_submission_started_outlives_it(graded):
    _row(graded, "leaves-process")
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if MARK.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                alive.append(pid)
        except OSError:
            pass
    assert not alive, f"processes left running: {alive}"


def test_writes_outside_left_nothing(graded):
    _row(graded, "writes-outside")
    import lablib

    assert not (lablib.config.home() / "lablib" / MARK).exists()


def test_grading_refuses_without_a_sandbox_unless_told(tmp_path, monkeypatch):
    from lablib.grading import sandbox

    (tmp_path / "subs").mkdir()
    nbformat.write(lab_notebook(WRONG), str(tmp_path / "subs" / "ada.ipynb"))
    monkeypatch.setattr(sandbox, "problem", lambda: "bubblewrap is not installed (Debian: apt-get install bubblewrap)")
    with pytest.raises(grading.GradingError, match=r"sandbox cannot start: bubblewrap is not installed.*--no-sandbox"):
        grading.grade(tmp_path / "subs", "01", tmp_path / "out", ["profile=smoke"], echo=lambda *_: None)
    assert not (tmp_path / "out").exists()  # refused before anything was written


if __name__ == "__main__":
    sys.stdout.write(rows_markdown() + "\n")
