import json

import pytest

from lablib import data, domain, files


def test_corpus_is_a_pure_function_of_the_seed():
    assert data.make_corpus(20, seed=0) == data.make_corpus(20, seed=0)
    assert data.make_corpus(20, seed=0) != data.make_corpus(20, seed=1)


def test_corpus_sentences_state_true_facts():
    doc = data.make_corpus(200, seed=0)
    sentences = [s for d in doc for s in d.split(". ") if s.startswith("Sorted from smallest to largest")]
    assert sentences
    for s in sentences:
        given, result = s.removeprefix("Sorted from smallest to largest, ").rstrip(".").split(" becomes ")
        assert sorted(int(x) for x in given.split(", ")) == [int(x) for x in result.split(", ")]


@pytest.mark.parametrize("kind, numbers, answer", [
    ("sort_asc", (20, 19, 33, 1), "1, 19, 20, 33"),
    ("sort_desc", (20, 19, 33, 1), "33, 20, 19, 1"),
    ("max", (20, 19, 33, 1), "33"),
    ("min", (20, 19, 33, 1), "1"),
    ("sum", (20, 19, 33, 1), "73"),
    ("reverse", (20, 19, 33, 1), "1, 33, 19, 20"),
    ("count", (20, 19, 33, 1), "4"),
])
def test_task_answers(kind, numbers, answer):
    task = data.Task(kind, numbers)
    assert task.output == answer and task.input == "20, 19, 33, 1"
    assert task.as_alpaca()["instruction"].endswith(".")


def test_gold_reward_and_exact_match():
    task = data.Task("sort_asc", (3, 1, 2))
    assert task.gold_reward(" 1, 2, 3\n") == 1.0 and task.exact_match("1, 2, 3")
    assert task.gold_reward("1, 2, 3\nbecause I sorted them") == 0.5
    assert task.gold_reward("3, 2, 1") == 0.0 and not task.exact_match("3, 2, 1")


def test_correct_is_content_style_aside():
    task = data.Task("max", (3, 1, 2))
    assert task.correct("3") and task.correct(" 3\nI hope this helps!") and not task.correct("2\n3")
    assert not task.correct("") and task.gold_reward("3\nI hope this helps!") == 0.5


def test_demonstrations_mix_styles_and_mistakes_as_configured():
    tasks = data.make_tasks(2000, seed=0)
    demos = data.demonstrations(tasks, preferred_share=0.3, mistake_share=0.1, seed=0)
    assert demos == tasks and demos == data.demonstrations(tasks, 0.3, 0.1, seed=0)  # the demo is not identity
    assert [d.response for d in demos] == [d.response for d in data.demonstrations(tasks, 0.3, 0.1, seed=0)]
    right = sum(d.correct(d.response) for d in demos) / len(demos)
    bare = sum("\n" not in d.response for d in demos) / len(demos)
    assert 0.87 < right < 0.93 and 0.26 < bare < 0.34
    assert all(d.response.splitlines()[1] in data._FILLER for d in demos if "\n" in d.response)
    clean = data.demonstrations(tasks, preferred_share=1.0, mistake_share=0.0, seed=0)
    assert all(d.response == d.output for d in clean) and all(t.response == t.output for t in tasks)


def test_instruction_examples_demonstrate_training_tasks_only():
    from lablib import config

    cfg = config.load("lab02", ["profile=smoke"])
    split = domain.instructions(cfg)
    train, val = split.train, split.val
    assert all(t.demo is not None for t in train) and all(t.demo is None for t in val)
    assert any(t.response != t.output for t in train)


def test_tasks_are_distinct_deterministic_and_cover_kinds():
    tasks = data.make_tasks(70, seed=0)
    assert len(set(tasks)) == 70 and tasks == data.make_tasks(70, seed=0)
    assert {t.kind for t in tasks} == set(data.DEFAULT_KINDS)
    assert all(len(set(t.numbers)) == len(t.numbers) and max(t.numbers) <= 9 for t in tasks)  # distinct digits
    with pytest.raises(data.DataError, match="unknown task kind"):
        data.make_tasks(3, seed=0, kinds=["sort_asc", "median"])
    with pytest.raises(data.DataError, match="distinct"):
        data.make_tasks(5, seed=0, kinds=["count"], min_numbers=3, max_numbers=3, max_value=1)


def test_split_is_disjoint_and_never_empty():
    train, val = data.split(list(range(10)), 0.01)
    assert len(val) == 1 and set(train).isdisjoint(val) and len(train) + len(val) == 10
    assert len(data.split(list(range(100)), 0.5, max_val=7)[1]) == 7
    with pytest.raises(data.DataError):
        data.split([1], 0.1)


def write(path, rows):
    path.write_text("\n".join(json.dumps(r) if not isinstance(r, str) else r for r in rows) + "\n")
    return path


def test_alpaca_jsonl_loads_and_bad_row_names_file_and_line(tmp_path):
    good = {"instruction": "Sort.", "input": "2, 1", "output": "1, 2"}
    assert files.load_records(write(tmp_path / "a.jsonl", [good, good]), "alpaca") == [good, good]
    bad = write(tmp_path / "b.jsonl", [good, {"instruction": "Sort."}])
    with pytest.raises(data.DataError, match=r"b\.jsonl:2: missing field 'output'"):
        files.load_records(bad, "alpaca")
    broken = write(tmp_path / "c.jsonl", [good, "{not json"])
    with pytest.raises(data.DataError, match=r"c\.jsonl:2: not valid JSON"):
        files.load_records(broken, "alpaca")


def test_json_array_and_other_formats(tmp_path):
    p = tmp_path / "p.json"
    p.write_text(json.dumps([{"prompt": "q", "completion": "a"}, {"prompt": "q", "completion": 3}]))
    with pytest.raises(data.DataError, match=r"p\.json:item 1: field 'completion' must be a string"):
        files.load_records(p, "prompt_completion")
    pref = write(tmp_path / "pref.jsonl", [{"prompt": "q", "chosen": "a", "rejected": " a "}])
    with pytest.raises(data.DataError, match="identical"):
        files.load_records(pref, "preference")
    empty = write(tmp_path / "e.jsonl", [{"prompt": "q", "completion": "  "}])
    with pytest.raises(data.DataError, match="e.jsonl:1: field 'completion' is empty"):
        files.load_records(empty, "prompt_completion")
    with pytest.raises(data.DataError, match="no such file"):
        files.load_records(tmp_path / "missing.jsonl", "alpaca")


def test_text_files_and_folders(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\ntwo\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("three\n")
    assert files.load_texts(tmp_path / "a.txt") == ["one", "two"]
    assert files.load_texts(tmp_path) == ["one", "two", "three"]
    with pytest.raises(data.DataError, match="no such file"):
        files.load_texts(tmp_path / "nope")


def test_saved_hf_dataset_folder(tmp_path):
    from datasets import Dataset

    Dataset.from_dict({"body": ["x y", "", "z"]}).save_to_disk(str(tmp_path / "ds"))
    assert files.load_hf_folder(tmp_path / "ds", "body") == ["x y", "z"]
    with pytest.raises(data.DataError, match="no column 'text'"):
        files.load_hf_folder(tmp_path / "ds")


def test_pretraining_corpus_from_a_text_file(tmp_path):
    from lablib import config

    (tmp_path / "c.txt").write_text("\n".join(f"doc {i}" for i in range(20)))
    cfg = config.load("lab01", ["data=text", f"data.path={tmp_path / 'c.txt'}", "data.val_fraction=0.25"])
    train, val = domain.corpus(cfg)
    assert len(train) == 15 and val == [f"doc {i}" for i in range(15, 20)]


def test_alpaca_prompt_template():
    task = data.Task("sort_asc", (20, 19, 33, 1))
    assert task.prompt.startswith("Below is an instruction that describes a task, paired with an input")
    assert task.prompt.endswith("### Instruction:\nSort the given numbers from smallest to largest.\n\n"
                                "### Input:\n20, 19, 33, 1\n\n### Response:\n")
    assert "### Input" not in data.alpaca_prompt("Say hello.")


def test_sft_trains_on_the_demonstration_not_the_reference():
    from lablib import sft

    task = data.demonstrations(data.make_tasks(1, seed=0), preferred_share=0.0, mistake_share=0.0, seed=0)[0]
    assert task.response != task.output and task.response.startswith(task.output + "\n")
    chat = sft.to_dataset([task], "chatml")[0]["messages"][-1]["content"]
    completion = sft.to_dataset([task], "alpaca")[0]["completion"]
    assert chat == completion == task.response


def test_corpus_entropy_is_what_the_generator_draws(monkeypatch):
    """On a generator shrunk until its documents can be counted (two openers, templates and fillers, one or two
    sentences, lists of one or two numbers from 1-2: about 14,000 documents), the plug-in entropy of many
    documents is corpus_nats; any choice left out of the sum (the shelf letter: 2.1 nats, the filler: 0.8, the
    sentence count: 0.7) would show."""
    import collections
    import math

    monkeypatch.setattr(data, "_OPENERS", ["Shelf {s}: {L}.", "Row {s} has {L}."])
    monkeypatch.setattr(data, "_SENTENCES", ["So {L} sorts to {sort_asc}.", "Max of {L}: {max}."])
    monkeypatch.setattr(data, "_FILLER", ["Hi.", "Bye."])
    monkeypatch.setattr(data, "_SENTENCES_PER_DOC", (1, 2))
    n = 200_000
    counts = collections.Counter(data.make_corpus(n, seed=1, min_numbers=1, max_numbers=2, max_value=2))
    plug_in = -sum(c / n * math.log(c / n) for c in counts.values())
    exact = data.corpus_nats(1, 2, 2)
    assert exact - 0.1 < plug_in < exact, (plug_in, exact)  # the plug-in is biased low, by about K / 2n = 0.035
    monkeypatch.setattr(data, "_FILLER_CHANCE", 0.0)
    assert data.corpus_nats(1, 2, 2) < exact - 0.5  # the filler's choice counted


def test_contamination_finds_a_leaked_prompt_and_a_stated_answer_and_the_course_has_neither():
    from lablib import config, domain

    cfg = config.load("lab07", ["profile=smoke"])
    split = domain.instructions(cfg)
    found = data.contamination(domain.corpus(cfg)[0], split.train, split.val)
    assert found == {"prompts": [], "answers": []}
    task = split.val[0]
    leaky = data.contamination([f"Notes. {data.stated_answers(task.kind, task.numbers)[0]} More."],
                               list(split.train) + [task], split.val)
    assert leaky["prompts"] == [task] and leaky["answers"] == [task]
    d = cfg.data
    naive = data.make_corpus(4000, cfg.seed, d.min_numbers, d.max_numbers, d.max_value)
    assert data.contamination(naive, split.train, split.val)["answers"]  # the redraw is what keeps them out
    drawn = data.make_corpus(4000, cfg.seed, d.min_numbers, d.max_numbers, d.max_value,
                             exclude=[(t.kind, t.numbers) for t in split.val])
    assert not data.contamination(drawn, split.train, split.val)["answers"]
