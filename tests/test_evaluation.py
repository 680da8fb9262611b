"""Lab 07's evaluation pieces (NLL benchmarks, leaderboard, chat helper) and lab 06's DPO."""
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from lablib import config, data, dpo, evaluation, generation, leaderboard, models, schema, tokenization, training


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random chat model (BPE tokenizer, ChatML), saved to a folder as a lab would save it."""
    tok = tokenization.train_bpe(data.make_corpus(200, 0), 320)
    torch.manual_seed(0)
    model = models.build_scratch(SimpleNamespace(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                                 max_position=256), len(tok), tok)
    generation.use_chatml(model, tok)
    folder = tmp_path_factory.mktemp("ckpt") / "sft"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return model.eval(), tok, folder


def plain_loop_nll(model, tok, prompt: str, text: str) -> float:
    """NLL of ``text`` after ``prompt``, one sample, straight from the logits."""
    p_ids, t_ids = tok(prompt, add_special_tokens=False)["input_ids"], tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([p_ids + t_ids])).logits[0].double(), -1)
    return -sum(logp[len(p_ids) + j - 1, t].item() for j, t in enumerate(t_ids))


def test_text_nll_is_summed_per_text_and_matches_a_plain_loop(tiny):
    model, tok, _ = tiny
    texts = data.make_corpus(5, seed=7)
    got = evaluation.text_nll(model, tok, texts, batch_size=2)
    want = [plain_loop_nll(model, tok, "\n", t) for t in texts]
    assert got["per_sample"] == pytest.approx(want, rel=1e-4)
    assert got["nll"] == pytest.approx(sum(want) / len(want), rel=1e-4)
    n_tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
    assert got["nll_per_token"] == pytest.approx(sum(want) / n_tokens, rel=1e-4)


def lb_cfg(tmp_path, tiny_folder, **lb):
    inputs = {"sft": str(tiny_folder), "ppo": str(tmp_path / "missing"), "reward_model": str(tiny_folder)}
    return OmegaConf.create({"lab": "07", "inputs": inputs,
                             "leaderboard": {**OmegaConf.to_container(OmegaConf.structured(schema.LeaderboardConf)),
                                             "int8": [], "chat": "", **lb}})


def test_checkpoints_resolve_names_paths_and_int8_twins(tiny, tmp_path):
    _, _, folder = tiny
    cks = leaderboard.checkpoints(lb_cfg(tmp_path, folder, checkpoints=["sft", f"mine={folder}"], int8=["sft"]))
    assert [c.label for c in cks] == ["sft", "mine", "sft (8-bit)"]
    assert cks[2].bits == 8 and cks[2].path == str(folder)


@pytest.mark.parametrize("entries,int8,msg", [
    (["ppo"], [], r"leaderboard.checkpoints: 'ppo': .*missing is not a saved model folder.*does not exist"),
    (["nope"], [], r"'nope': not an input of lab 07 \(ppo, sft\), smollm2, or NAME=PATH"),
    (["x=/no/such/dir"], [], r"'x=/no/such/dir': /no/such/dir is not a saved model folder"),
    (["sft", "sft"], [], r"the name 'sft' appears twice"),
    (["sft"], ["raft"], r"leaderboard.int8: 'raft' is not in leaderboard.checkpoints"),
    (["sft"], [], r"leaderboard.chat: 'raft' is not in leaderboard.checkpoints"),
])
def test_a_bad_checkpoint_entry_is_one_clear_error(tiny, tmp_path, entries, int8, msg):
    _, _, folder = tiny
    with pytest.raises(leaderboard.EvalError, match=msg):
        leaderboard.checkpoints(lb_cfg(tmp_path, folder, checkpoints=entries, int8=int8,
                                       chat="raft" if "chat" in msg else ""))


def test_a_leaderboard_row_measures_what_it_says(tiny, tmp_path):
    model, tok, folder = tiny
    tasks = data.make_tasks(6, seed=1)
    prompts = leaderboard.chat_prompts(tasks, tok)
    texts = data.make_corpus(3, seed=9)
    row = leaderboard.score(leaderboard.Checkpoint("sft", str(folder)), tasks, prompts, texts,
                            {"rm": lambda ex, rs: [len(r) for r in rs]}, max_new_tokens=4, batch_size=4)
    nll = [plain_loop_nll(model, tok, p, e.output) for p, e in zip(prompts, tasks)]
    assert row["nll"] == pytest.approx(sum(nll) / len(nll), rel=1e-4)
    assert row["text_nll"] == pytest.approx(sum(plain_loop_nll(model, tok, "\n", t) for t in texts) / 3, rel=1e-4)
    assert row["rm"] == pytest.approx(sum(len(r) for r in row["responses"]) / 6)
    assert row["gold_reward"] == evaluation.task_scores(tasks, row["responses"])["gold_reward"]
    assert row["tokens_per_s"] > 0 and row["memory_mb"] > 0 and row["params"] == models.count_params(model)["total"]


def test_rank_orders_by_gold_then_nll_and_the_csv_has_every_column():
    def row(name, gold, nll):
        return {c: 1.0 for c in leaderboard.COLUMNS} | {"checkpoint": name, "gold_reward": gold, "nll": nll}

    rows = leaderboard.rank([row("a", 0.1, 5.0), row("b", 0.3, 9.0), row("c", 0.1, 4.0)])
    assert [(r["rank"], r["checkpoint"]) for r in rows] == [(1, "b"), (2, "c"), (3, "a")]
    lines = leaderboard.to_csv(rows).splitlines()
    assert lines[0].split(",") == list(leaderboard.COLUMNS) and lines[1].startswith("1,b,0.3,")
    assert leaderboard.finite(rows) and not leaderboard.finite([{**rows[0], "nll": float("nan")}])


def test_quantization_cost_compares_each_8bit_row_with_its_full_precision_twin():
    full = {"checkpoint": "sft", "gold_reward": 0.5, "nll": 10.0, "text_nll": 100.0, "memory_mb": 4.0,
            "tokens_per_s": 100.0, "responses": ["1", "2"]}
    eight = {**full, "checkpoint": "sft (8-bit)", "gold_reward": 0.25, "nll": 10.5, "memory_mb": 1.0,
             "responses": ["1", "3"]}
    [cost] = leaderboard.quantization_cost([full, eight])
    assert cost == {"checkpoint": "sft", "gold_change": -0.25, "nll_change": 0.5, "text_nll_change": 0.0,
                    "memory_ratio": 0.25, "speed_ratio": 1.0, "same_responses": 0.5}


def test_chat_keeps_the_history_and_refuses_a_model_without_a_chat_template(tiny):
    model, tok, _ = tiny
    bot = generation.Chat(model, tok, max_new_tokens=3)
    first = bot.say("Sort from smallest to largest:\n3, 1, 2")
    bot.say("And the largest?")
    assert [t["role"] for t in bot.history] == ["user", "assistant", "user", "assistant"]
    assert bot.history[1]["content"] == first
    bot.reset()
    assert bot.history == []
    plain = tokenization.train_bpe(data.make_corpus(50, 0), 300)
    with pytest.raises(ValueError, match="no chat template"):
        generation.Chat(model, plain)


def test_lab_chat_streams_resets_and_exits(tiny):
    from lablib.course import chat

    _, _, folder = tiny
    bot = chat.bot(chat.resolve(str(folder)), max_new_tokens=4)
    said = iter(["Sort 3, 1, 2.", "", "/reset", "And 5, 4?", "/exit", "never read"])
    written = []
    assert chat.terminal(bot, read=lambda _: next(said), write=written.append) == 2
    text = "".join(written)
    assert text.startswith("(/reset starts a new conversation") and "(a new conversation)" in text
    assert bot.history[1]["content"] in text and len(bot.history) == 2  # the reset dropped the first exchange
    # the reply streamed in pieces: more writes than whole lines
    assert len(written) > text.count("\n") + 2
    assert chat.terminal(bot, read=lambda _: (_ for _ in ()).throw(EOFError), write=written.append) == 0  # Ctrl-D


def test_lab_chat_finds_a_run_folders_model_and_refuses_what_is_not_a_model(tiny, tmp_path):
    from lablib import running
    from lablib.course import chat

    _, _, folder = tiny
    run = tmp_path / "06_raft" / "artifacts"
    run.mkdir(parents=True)
    (run / "model").symlink_to(folder)
    assert chat.resolve(str(tmp_path / "06_raft")) == run / "model"
    with pytest.raises(running.RunError, match=r"lab chat: .*: not a saved model folder .*; .* does not exist"):
        chat.resolve(str(tmp_path / "nowhere"))
    with pytest.raises(running.RunError, match=r"not a saved model folder \(no config.json\) nor a lab run$"
                       r"|with artifacts/model$"):
        chat.resolve(str(tmp_path))
    from lablib.course import cli

    assert cli.main(["chat", str(tmp_path)]) == 2


# --------------------------------------------------------------------------------------------
# DPO
# --------------------------------------------------------------------------------------------
def test_dpo_loss_written_out():
    lp = torch.tensor([-3.0, -5.0])
    assert float(dpo.dpo_loss(lp, lp, lp, lp, 0.1)) == pytest.approx(torch.log(torch.tensor(2.0)).item())
    # chosen up by 2 nats and rejected down by 1 against the reference: margin 3, loss -log sigmoid(0.1 * 3)
    got = dpo.dpo_loss(torch.tensor([-1.0]), torch.tensor([-6.0]), torch.tensor([-3.0]), torch.tensor([-5.0]), 0.1)
    assert float(got) == pytest.approx(-torch.nn.functional.logsigmoid(torch.tensor(0.3)).item())


def test_dpo_trainer_matches_our_loss_and_learns_the_pairs(tiny, tmp_path):
    model, tok, folder = tiny
    policy = models.load_pretrained(SimpleNamespace(source="path", dtype="float32"), str(folder))[0]
    pairs = data.preference_pairs(data.make_tasks(16, seed=2), seed=0)
    cfg = config.with_changes(config.load("lab06", ["profile=smoke"]),
                              dpo={"steps": 6, "batch_size": 8, "lr": 3e-3}, train={"progress": False})
    trainer = dpo.make_trainer(policy, tok, pairs, cfg, tmp_path)
    start = dpo.check_loss(trainer, cfg.dpo.beta)
    assert start["trainer"] == pytest.approx(start["ours"], abs=1e-5)
    assert start["ours"] == pytest.approx(0.693147, abs=1e-5)  # the policy is still the reference
    result = training.fit(trainer, row=dpo.log_row)
    assert result["history"][-1]["margin"] > 0  # chosen responses gained on rejected ones
    after = dpo.check_loss(trainer, cfg.dpo.beta)
    assert after["trainer"] == pytest.approx(after["ours"], abs=1e-5) and after["ours"] < start["ours"]


def test_dpo_refuses_identical_pairs(tiny, tmp_path):
    _, tok, folder = tiny
    task = data.make_tasks(1, seed=0)[0]
    cfg = config.load("lab06", ["profile=smoke"])
    with pytest.raises(ValueError, match="identical"):
        dpo.make_trainer(None, tok, [data.Pair(task, "1", "1", "x")], cfg, tmp_path)


@pytest.mark.parametrize("lab,override,msg", [
    ("lab06", "dpo.beta=0", r"dpo.beta=0.*must be > 0"),
    ("lab06", "dpo.steps=0", r"dpo.steps=0.*must be >= 1"),
    ("lab07", "leaderboard.text_docs=0", r"leaderboard.text_docs=0.*must be >= 1"),
    ("lab07", "leaderboard.checkpoints=[]", r"leaderboard.checkpoints.*at least one"),
    ("lab03", "lora.grid=[full,lora:4:attention]", r"lora.grid.*qlora4\|qlora8"),
])
def test_bad_dpo_leaderboard_and_grid_config_names_the_key(lab, override, msg):
    with pytest.raises(config.ConfigError, match=msg):
        config.load(lab, ["profile=smoke", override])
