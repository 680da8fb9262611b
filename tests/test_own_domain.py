"""The own-domain track (lablib.domain, labs/own/): a user's messy files, the splits, the judge's win rate, the
runner's optional stages and upstream runs, and a user's long Alpaca answers through labs 01, 02, 03 and 07."""
import json

import pytest

from lablib import config, data, domain, evaluation, models, reward, running, sft


def own(tmp_path, **files):
    """The own-track lab 02 config for ``files`` (name -> text or bytes) written under ``tmp_path``."""
    overrides = ["profile=smoke", "domain=own"]
    for key, content in files.items():
        path = tmp_path / key
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        overrides.append(f"domain.{key.split('.')[0]}={path}")
    return config.load("own02", overrides)


def rows(*records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


GOOD = {"instruction": "How often should I water a fern?", "input": "", "output": "Keep its soil lightly moist."}


def test_messy_files_fail_with_file_and_line_before_training(tmp_path):
    bad_byte = rows(GOOD, {**GOOD, "instruction": "x"}).encode() + b'{"instruction": "\xff", "output": "y"}\n'
    with pytest.raises(data.DataError, match=r"instructions\.jsonl:3: not UTF-8 \(byte 0xff at column 18\)"):
        domain.instructions(own(tmp_path, **{"instructions.jsonl": bad_byte}))
    with pytest.raises(data.DataError, match=r"instructions\.jsonl:2: field 'output' is empty"):
        domain.instructions(own(tmp_path, **{"instructions.jsonl": rows(GOOD, {**GOOD, "output": " "})}))
    with pytest.raises(data.DataError, match=r"instructions\.jsonl:2: missing field 'instruction'"):
        domain.instructions(own(tmp_path, **{"instructions.jsonl": rows(GOOD, {"output": "y"})}))
    with pytest.raises(data.DataError, match=r"instructions\.jsonl: no records"):
        domain.instructions(own(tmp_path, **{"instructions.jsonl": "\n"}))
    corpus = b"a fern likes shade\nmoist soil\n\xe9t\xe9 in the garden\n"
    cfg = own(tmp_path, **{"instructions.jsonl": rows(GOOD, {**GOOD, "instruction": "x"}), "corpus.txt": corpus})
    with pytest.raises(data.DataError, match=r"corpus\.txt:3: not UTF-8 \(byte 0xe9 at column 1\)"):
        domain.corpus(cfg)


def test_repeated_prompts_are_dropped_and_counted_so_no_held_out_prompt_is_trained_on(tmp_path):
    records = [{**GOOD, "instruction": f"Question {i % 8}?", "output": f"Answer {i}."} for i in range(12)]
    split = domain.instructions(own(tmp_path, **{"instructions.jsonl": rows(*records)}))
    assert split.duplicates == 4 and len(split.train) + len(split.val) == 8
    assert not {data.user_turn(e) for e in split.train} & {data.user_turn(e) for e in split.val}


def test_pairs_are_split_by_prompt_between_the_rm_the_judge_and_held_out(tmp_path):
    pairs = [{"prompt": f"Q{i % 30}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(60)]
    cfg = own(tmp_path, **{"instructions.jsonl": rows(GOOD, {**GOOD, "instruction": "x"}), "pairs.jsonl": rows(*pairs)})
    split = domain.pairs(cfg)
    prompts = [{p.example.instruction for p in part} for part in (split.rm, split.judge, split.val)]
    assert len(split.rm) + len(split.judge) + len(split.val) == 60 and split.duplicates == 0
    assert not prompts[0] & prompts[1] and not (prompts[0] | prompts[1]) & prompts[2]
    assert prompts[0] and prompts[1] and prompts[2]


def test_the_judges_win_rate_counts_the_same_answer_as_a_tie():
    win = evaluation.win_rate([1.0, 0.0, 2.0, 0.5], [0.0, 1.0, 2.0, 0.4], ["a", "b", "c", "same"],
                              ["x", "y", "z", "same"])
    assert (win["wins"], win["ties"], win["losses"]) == (1, 2, 1) and win["rate"] == 0.5
    assert evaluation.inside_noise(win) and "length_controlled" not in win


@pytest.mark.parametrize("k, n, low, high", [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0),
                                             (45, 60, 0.6277, 0.8422)])
def test_the_wilson_interval_matches_the_textbook_values(k, n, low, high):
    got = evaluation.wilson(k / n, n)  # Brown, Cai & DasGupta (2001); e.g. 0 of 10: [0, 0.2775]
    assert got == pytest.approx((low, high), abs=1e-4)


def test_a_win_that_is_only_length_is_not_a_win_at_equal_length():
    # every longer answer wins, every shorter one loses: the judge likes length, nothing else
    gaps = [g for g in range(-10, 11) if g]
    wins = [float(g > 0) for g in gaps]
    lengths = [20 + g for g in gaps]
    win = evaluation.win_rate(wins, [0.5] * len(gaps), lengths=lengths, baseline_lengths=[20] * len(gaps))
    assert win["rate"] == 0.5 and win["length_controlled"] == pytest.approx(0.5, abs=1e-6)
    # longer by 3 tokens on average, winning 3 of 4 whatever the length: at equal length still about 3/4
    gaps = [(-2, 0, 3, 6, 9)[i % 5] for i in range(60)]
    win = evaluation.win_rate([1, 1, 1, 0] * 15, [0.5] * 60, lengths=[20 + g for g in gaps], baseline_lengths=[20] * 60)
    assert win["length_gap"] == pytest.approx(3.2) and win["rate"] == 0.75
    assert 0.65 < win["length_controlled"] < 0.85 and not evaluation.inside_noise(win)
    win = evaluation.win_rate([1.0] * 10, [0.0] * 10, lengths=[5] * 10, baseline_lengths=[4] * 10)
    assert win["length_controlled"] > 0.95  # every one won: finite, near 1


def test_the_held_out_prompts_are_drawn_and_their_paraphrases_kept_out_of_training(tmp_path):
    topics = [(f"alpha{i}", f"beta{i}", f"gamma{i}") for i in range(40)]  # three words of each prompt its own
    rows = [{"instruction": f"Tell me about {a} {b} {c}?", "input": "", "output": "Weekly."} for a, b, c in topics]
    rows += [{"instruction": f"{c}, {b} and {a}: tell me about", "input": "", "output": "Weekly."}
             for a, b, c in topics]  # the same words, another way: a near-duplicate of row i
    path = tmp_path / "i.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = config.load("own02", ["profile=smoke", "domain=own", f"domain.instructions={path}"])
    split = domain.instructions(cfg)
    held = {data.words(data.user_turn(e)) for e in split.val}
    assert len(split.val) == 6 and split.near_duplicates == 6  # each held-out prompt's twin left training
    assert any(e.instruction.startswith("Tell") for e in split.val)  # drawn from the whole file, not its tail
    assert not any(data.jaccard(data.words(data.user_turn(e)), h) >= 0.8 for e in split.train for h in held)
    assert len(split.train) == 80 - 6 - 6
    again = config.load("own02", ["profile=smoke", "domain=own", f"domain.instructions={path}", "domain.split_seed=1"])
    assert {e.instruction for e in domain.instructions(again).val} != {e.instruction for e in split.val}


def test_the_near_duplicate_measure_is_word_set_jaccard():
    a, b = data.words("Water the fern, weekly!"), data.words("weekly water THE fern")
    assert a == b and data.jaccard(a, b) == 1.0
    assert data.jaccard(data.words("water the fern"), data.words("water the cactus")) == 0.5
    assert data.near_duplicates(["water the fern", "feed the cat"], ["Water the fern?"], str, 0.8) == [0]


def test_long_answers_are_truncated_and_prompts_that_fill_the_length_dropped_and_counted():
    tokenizer = models.load_tokenizer(models.smollm2_dir())
    examples = [data.Example("Short?", "", "word " * 200), data.Example("Short?", "", "ok"),
                data.Example("long " * 100, "", "ok")]
    kept, fit = sft.fit_length(examples, tokenizer, "alpaca", 64)
    assert kept == examples[:2] and (fit["truncated"], fit["dropped"]) == (1, 1) and fit["longest"] > 200


def test_runs_of_different_domains_or_files_never_share_a_folder(tmp_path):
    (tmp_path / "a").mkdir()
    a = own(tmp_path / "a", **{"instructions.jsonl": rows(GOOD, GOOD)})
    b = own(tmp_path, **{"instructions.jsonl": rows(GOOD, GOOD)})
    keys = {domain.key(a), domain.key(b), domain.key(config.load("own02", ["domain=example"])),
            domain.key(config.load("lab02"))}
    assert len(keys) == 4 and "example" in keys and "" in keys


def test_without_pairs_the_rl_labs_run_on_self_play_pairs(tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text(rows(GOOD, {**GOOD, "instruction": "x"}))
    steps = running.plan([], ["profile=smoke", "domain=own", f"domain.instructions={f}"], tmp_path / "runs")
    assert not [s.lab.id for s in steps if s.skip]
    lab07 = steps[-1].cfg
    assert sorted(lab07.inputs) == ["dpo", "judge", "lora", "pairs", "ppo", "pretrained", "qlora", "raft",
                                    "reward_model", "sft"]
    assert all(s.folder.parent.name.startswith("own-") for s in steps)


def test_a_users_long_answers_run_through_lab_02_and_are_counted(tmp_path):
    """A user's Alpaca JSON with long open-ended answers and a repeated record, no corpus and no pairs: `lab run 07`
    runs 01 (which passes SmolLM2 on) to 06 first -- 04 on self-play pairs (the reference chosen, the SFT model's
    answer rejected) -- and ranks every checkpoint."""
    records = [{"instruction": f"Describe step {i} of repotting a plant in detail.", "input": "",
                "output": " ".join(["Loosen the root ball gently and keep the soil moist."] * 12)} for i in range(24)]
    f = tmp_path / "alpaca.json"
    f.write_text(json.dumps(records + records[:2]))
    said = []
    with pytest.raises(running.RunError, match="every training prompt is a near-duplicate.*domain.near_duplicate=0.8"):
        running.run(["02"], ["profile=smoke", "domain=own", f"domain.instructions={f}"], tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("notebook.ipynb"))
    out = running.run(["07"], ["profile=smoke", "domain=own", f"domain.instructions={f}", "sft.max_length=64",
                               "domain.near_duplicate=0.95"],  # "step 3" and "step 4": one word apart, 0.8 alike
                      tmp_path / "runs", progress=False, echo=said.append)
    assert [(r["lab"], r["status"]) for r in out] == [(f"0{i}", "ran") for i in range(1, 8)]
    assert sum("runs first: lab 07 needs" in s for s in said) == 6
    lab02 = next((tmp_path / "runs" / "smoke").glob("own-*/02_sft"))
    metrics = json.loads((lab02 / "metrics.json").read_text())
    assert metrics["truncated"] > 0 and metrics["duplicates"] == 2 and metrics["nll"] < metrics["nll_before"]
    cells = json.loads((lab02 / "notebook.ipynb").read_text())["cells"]
    printed = "".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c["outputs"])
    assert "examples truncated" in printed and "exact match" not in printed and "gold" not in printed
    board = (lab02.parent / "07_evaluation" / "artifacts" / "leaderboard.csv").read_text().splitlines()
    assert board[0].startswith("rank,checkpoint,rm,judge,win_rate,win_rate_lc,nll,") and len(board) == 8
    assert "gold" not in board[0] and "exact" not in board[0]  # a metric the domain does not have is never shown
    lab04 = json.loads((lab02.parent / "04_reward" / "metrics.json").read_text())
    assert lab04["pairs_source"] == "self_play" and lab04["pairs_rm"] > 0 and lab04["pairs_judge"] > 0
    saved = reward.load_pairs(lab02.parent / "04_reward" / "artifacts" / "pairs")
    judged, trained = {p.example.instruction for p in saved.judge}, {p.example.instruction for p in saved.rm}
    assert not judged & trained and all(p.chosen == p.example.output and p.how == "self_play" for p in saved.rm)


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_the_rm_and_dpo_read_pairs_at_one_length(profile):
    """Lab 04 fits the pairs to reward.max_length and lab 06's DPO trains on the RM's share of them at its own
    reward.max_length: the two must agree, or DPO drops pairs the RM kept."""
    lengths = {lab: config.load(lab, [f"profile={profile}", "domain=example"]).reward.max_length
               for lab in ("own04", "own06")}
    assert len(set(lengths.values())) == 1, lengths
