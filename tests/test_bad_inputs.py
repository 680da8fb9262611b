"""The table of bad inputs tried across the kit, and what each gets (book/bad_inputs.md is rendered from it).

Every row runs here, except those whose behaviour needs a lab kernel or a whole class of submissions: those
name the test that covers them, and a test below checks that test exists. Regenerate the page after
changing the table: ``.venv/bin/python tests/test_bad_inputs.py > book/bad_inputs.md``.
"""
import re
import sys
from pathlib import Path

import pytest

# (where, what the user typed, the one-line error it gets: a regular expression)
COMMANDS = [
    ("CLI", "lab run 42", r"unknown lab '42'; labs: 01 \(pretraining\), 02 \(sft\)"),
    ("CLI", "lab show", r"lab show takes exactly one lab"),
    ("CLI", "lab grade 01", r"lab grade takes a lab and a folder of submissions"),
    ("config", "lab run 01 train.lr=fast", r"train\.lr.*fast"),
    ("config", "lab run 01 train.max_steps=0", r"lab 01: train\.max_steps=0: must be >= 1"),
    ("config", "lab run 01 optimizer.lr=1", r"optimizer"),
    ("config", "lab run 01 profile=laptop", r"profile.*laptop"),
    ("config", "lab run 01 model.hidden_size=100 model.num_heads=3", r"model\.hidden_size=100: must be divisible"),
    ("config", "lab run 03 lora.grid=[full]", r"lora\.grid.*lab 03 needs a lora:R:TARGETS and a qlora"),
    ("config", "lab run 06 raft.ablation=[4:hot]", r"raft\.ablation.*entry '4:hot' must be K:TEMPERATURE"),
    ("config", "lab run 07 leaderboard.checkpoints=[]", r"leaderboard\.checkpoints.*needs at least one"),
    ("config", "lab run 05 ppo.grpo_steps=40", r"ppo\.grpo_steps is gone; use grpo\.steps"),
    ("config", "lab run 02 data.kinds=[median]", r"data\.kinds=.*must be a non-empty list of"),
    ("data", "lab run 01 data=text data.path=notes.txt", r"data\.path=.*notes\.txt.*no such file or folder"),
    ("data", "lab run 01 data=text", r"data\.path=None: data\.source=text needs data\.path"),
    ("upstream", "lab run 02 profile=smoke --no-upstream  (lab 01 never ran; without --no-upstream it runs first)",
     r"lab 02 needs model from lab 01: .*01_pretraining/artifacts/model does not exist \(run .lab run 01 profile=smoke. first"),
    ("own domain", "lab run 02 data=records data.path=tasks.jsonl data.format=alpaca",
     r"data=records: your own files run in the own-domain track .*`lab run 02 domain=own domain\.instructions=tasks\.jsonl "
     r"domain\.format=alpaca`"),
    ("own domain", "lab run 02 domain=own", r"domain\.instructions=None: domain=own needs your instruction file"),
    ("own domain", "lab run 02 domain=own domain.instructions=mine.json",
     r"domain\.instructions=.*mine\.json.*no such file or folder"),
    ("own domain", "lab run 02 domain=example domain.format=csv", r"domain\.format='csv': must be alpaca, prompt_completion"),
    ("grading", "lab grade 01 empty/", r"empty: no submissions in it"),
    ("grading", "lab grade 01 nowhere/", r"nowhere: not a folder of submissions"),
    ("batch", "lab batch 01 profile=smoke,cpu", r"the grid sweeps profile"),
    ("batch", "lab batch 01 train.lr=1e-3,fast profile=smoke", r"train\.lr.*fast"),
    ("batch", "lab batch 01 seed=0,1 --launcher ray", r"--launcher ray: must be one of local, submitit-local, slurm"),
    ("distributed", "python -m lablib.course.launch 05 profile=smoke --out ddp", r"lab 05 \(ppo\) has no multi-process stage"),
]

# (where, input, what happens, the test that shows it)
COVERED_ELSEWHERE = [
    ("data", "`data=records data.path=tasks.jsonl`, line 2 not JSON", "lab stops in its data cell: `tasks.jsonl:2: not valid JSON`",
     "tests/test_data.py::test_alpaca_jsonl_loads_and_bad_row_names_file_and_line"),
    ("own domain", "an instruction file with a byte that is not UTF-8, an empty field, a missing field, or no rows",
     "one line before any training: `mine.jsonl:3: not UTF-8 (byte 0xff at column 17)`, `...:2: field 'output' is empty`",
     "tests/test_own_domain.py::test_messy_files_fail_with_file_and_line_before_training"),
    ("own domain", "answers longer than `sft.max_length`; repeated prompts",
     "truncated (or, if the prompt alone is too long, dropped) and counted; repeats dropped and counted; all printed",
     "tests/test_own_domain.py::test_a_users_long_answers_run_through_lab_02_and_are_counted"),
    ("data", "preference pair whose chosen and rejected are the same", "`pairs.jsonl:2: 'chosen' and 'rejected' are identical`",
     "tests/test_reward.py::test_preference_file_errors_name_the_line"),
    ("runner", "a lab that raises in a cell", "`lab 01 (first) failed in cell 3: RuntimeError: ...`; the previous good run is kept",
     "tests/test_running.py::test_a_failed_lab_keeps_the_previous_run_and_names_the_cell"),
    ("runner", "a lab that forgets to save an artifact", "`lab 01 ran but did not write artifacts/thing; nothing was replaced`",
     "tests/test_running.py::test_a_lab_that_forgets_its_artifact_replaces_nothing"),
    ("runner", "the kernel killed mid-training", "the re-run resumes from the last checkpoint, same final metrics",
     "tests/test_reliability.py::test_a_killed_lab_resumes_from_its_checkpoint_with_the_same_metrics"),
    ("grading", "a submission that is not a notebook", "gradebook entry `invalid`: `not a notebook (.txt)`",
     "tests/test_grading.py::test_a_class_is_graded_in_parallel_with_an_entry_for_every_submission"),
    ("grading", "another lab's notebook; no parameters cell; code that opens the solutions",
     "gradebook entry `invalid`, each with its reason", "tests/test_grading.py::test_a_class_is_graded_in_parallel_with_an_entry_for_every_submission"),
    ("grading", "a submission that crashes, loops forever, or allocates 64 GB",
     "entry `crashed` (with its cell), `timeout`, `memory`; the batch goes on", "tests/test_grading.py::test_a_class_is_graded_in_parallel_with_an_entry_for_every_submission"),
    ("grading", "a wrong exercise answer", "`FAIL 04.bt_loss: ... got -0.31, expected 0.31` (the reason, not just FAIL)",
     "tests/test_exercises.py::test_a_wrong_answer_says_why"),
    ("batch", "one failing run in a grid", "the others finish; the summary names it with its failing cell",
     "tests/test_batch.py::test_a_failed_run_is_named_with_its_cell_and_the_others_finish"),
]

ROOT = Path(__file__).resolve().parent.parent


def render() -> str:
    lines = ["# Bad input: what each gets", "",
             "Every bad input we know of, across the config, the data, the command line, grading and the runner, "
             "with the one-line answer it gets. Each row is a test: the commands below are run by "
             "`tests/test_bad_inputs.py`; the other rows name the test that covers them. Nothing runs, and nothing "
             "already written is touched, before these checks pass.", "",
             "| Where | Input | What you get |", "|---|---|---|"]
    for where, cmd, pattern in COMMANDS:
        lines.append(f"| {where} | `{cmd}` | exit status 2, one line matching `{pattern}` |")
    lines += ["", "| Where | Input | What happens | Test |", "|---|---|---|---|"]
    for where, what, outcome, test in COVERED_ELSEWHERE:
        lines.append(f"| {where} | {what} | {outcome} | `{test.split('::')[1]}` |")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("where,cmd,pattern", COMMANDS, ids=[c[1].split("  ")[0] for c in COMMANDS])
def test_each_bad_command_gets_its_one_line_error(where, cmd, pattern, tmp_path, monkeypatch, capsys):
    from lablib import cli, launch

    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    argv = cmd.split("  ")[0].split()
    if argv[0] == "python":
        code = launch.main(argv[3:] + ["--runs", str(tmp_path / "runs")])
    else:
        code = cli.main(["--runs", str(tmp_path / "runs"), *argv[1:]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and re.search(pattern, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # nothing was written anywhere


@pytest.mark.parametrize("test", sorted({row[3] for row in COVERED_ELSEWHERE}))
def test_every_other_row_names_a_real_test(test):
    path, name = test.split("::")
    assert f"def {name}(" in (ROOT / path).read_text(), f"{test} does not exist"


def test_the_book_page_is_the_table():
    assert (ROOT / "book" / "bad_inputs.md").read_text() == render(), \
        "book/bad_inputs.md is out of date: .venv/bin/python tests/test_bad_inputs.py > book/bad_inputs.md"


if __name__ == "__main__":
    sys.stdout.write(render())
