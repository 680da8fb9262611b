"""Tokenizer, packing, model building, loss and training: the pieces lab 01 is made of."""
import math

import pytest
import torch

from lablib import config, data, domain, evaluation, generation, models, tokenization, training


@pytest.fixture(scope="module")
def smoke():
    cfg = config.load("lab01", ["profile=smoke"])
    train_docs, val_docs = domain.corpus(cfg)
    tok = tokenization.train_bpe(train_docs, cfg.tokenizer.vocab_size)
    return cfg, tok, train_docs, val_docs


def test_bpe_round_trips_any_text_and_is_deterministic(smoke):
    cfg, tok, docs, _ = smoke
    assert len(tok) == cfg.tokenizer.vocab_size
    text = "Sorted 20, 19 → ünïcode ✓"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    again = tokenization.train_bpe(docs, cfg.tokenizer.vocab_size)
    assert again.get_vocab() == tok.get_vocab()


def test_pack_joins_with_eos_and_drops_the_tail():
    blocks = tokenization.pack([[1, 2, 3], [4, 5], [6, 7, 8, 9]], block_size=4, eos_id=0)
    assert blocks.tolist() == [[1, 2, 3, 0], [4, 5, 0, 6], [7, 8, 9, 0]]
    assert blocks.dtype == torch.int64
    with pytest.raises(ValueError, match="block_size=64"):
        tokenization.pack([[1, 2]], block_size=64, eos_id=0)


def test_scratch_model_size_and_tied_embeddings(smoke):
    cfg, tok, *_ = smoke
    torch.manual_seed(0)
    model = models.build_scratch(cfg.model, len(tok), tok)
    n = models.count_params(model)
    h, v, i, layers = 64, 384, 128, 2
    per_layer = 4 * h * h + 3 * h * i + 2 * h  # attention, SwiGLU MLP, two RMSNorms
    assert n["total"] == v * h + layers * per_layer + h == n["trainable"]


def test_lm_loss_matches_a_hand_computation_and_uniform_is_ln_v():
    torch.manual_seed(0)
    cfg = config.load("lab01", ["profile=smoke"])
    model = models.build_scratch(cfg.model, 50)
    x = torch.randint(0, 50, (3, 9))
    logits = model(input_ids=x).logits
    logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, x[:, 1:, None]).squeeze(-1)
    assert evaluation.lm_loss(model, x, batch_size=2) == pytest.approx(-logp.mean().item(), rel=1e-5)
    with torch.no_grad():
        model.lm_head.weight.zero_()  # tied: all logits 0 -> uniform
    assert evaluation.lm_loss(model, x) == pytest.approx(math.log(50), rel=1e-5)


def test_unigram_loss_by_hand():
    train = torch.tensor([[0, 0, 0, 1]])
    val = torch.tensor([[5, 0, 1]])  # targets 0 and 1
    p0, p1 = (3 + 1) / (4 + 3), (1 + 1) / (4 + 3)  # add-one over vocab 3
    assert evaluation.unigram_loss(train, val, 3) == pytest.approx(-(math.log(p0) + math.log(p1)) / 2)


def _pretrain_once(smoke, tmp_path, **train_over):
    cfg, tok, train_docs, val_docs = smoke
    over = [f"train.{k}={v}" for k, v in {"max_steps": 30, "eval_every": 10, **train_over}.items()]
    cfg = config.load("lab01", ["profile=smoke", *over])
    from transformers import set_seed

    set_seed(cfg.seed)
    model = models.build_scratch(cfg.model, len(tok), tok)
    tb = tokenization.pack(tokenization.encode_docs(tok, train_docs), cfg.train.block_size, tok.eos_token_id)
    vb = tokenization.pack(tokenization.encode_docs(tok, val_docs), cfg.train.block_size, tok.eos_token_id)
    before = evaluation.lm_loss(model, vb)
    result = training.pretrain(model, tb, vb, cfg.train, cfg.seed, tmp_path)
    return before, evaluation.lm_loss(model, vb), result, model


def test_pretraining_lowers_validation_loss_and_is_reproducible(smoke, tmp_path):
    before, after, result, _ = _pretrain_once(smoke, tmp_path / "a")
    assert after < before - 1.0
    assert result["steps"] == 30 and result["tokens"] == 30 * 8 * 64
    assert [r["step"] for r in result["history"] if "val_loss" in r] == [10, 20, 30]
    _, again, result2, _ = _pretrain_once(smoke, tmp_path / "b")
    assert again == after and result2["history"] == result["history"]


def test_generation_is_greedy_and_deterministic(smoke, tmp_path):
    *_, model = _pretrain_once(smoke, tmp_path)
    tok = smoke[1]
    a = generation.complete(model, tok, ["The largest of"], max_new_tokens=8)
    assert a == generation.complete(model, tok, ["The largest of"], max_new_tokens=8) and len(a[0]) > 0


def test_decoding_lesson_measures(smoke):
    """Lab 01's decoding, KV-cache and compute lessons: what each number means, on a model small enough to time."""
    cfg, tok, *_ = smoke
    assert generation.repeated_share([5, 5, 5, 7]) == pytest.approx(2 / 3)  # 2 of 3 tokens repeat the one before
    assert generation.distinct(["a b a b"], 2) == pytest.approx(2 / 3)  # (a b), (b a), (a b): 2 distinct of 3
    torch.manual_seed(0)
    model = models.build_scratch(cfg.model, len(tok), tok)
    rows = generation.compare_decoding(model, tok, ["Sorted from"], 8, samples=3, seed=0)
    assert [r["strategy"] for r in rows] == list(generation.STRATEGIES)
    assert rows == generation.compare_decoding(model, tok, ["Sorted from"], 8, samples=3, seed=0)  # seeded
    assert all(0 <= r["repeated"] <= 1 and 0 <= r["distinct_2"] <= 1 for r in rows)
    kv = generation.kv_cache_speedup(model, tok, "Sorted from", new_tokens=8, repeats=1)
    assert kv["same_output"] and kv["tokens"] == 8 and kv["speedup"] > 0
    cost = training.compute_cost(model, tokens=1000, seconds=2.0)
    n = models.count_params(model)["total"] - model.get_input_embeddings().weight.numel()
    assert cost["non_embedding_params"] == n and cost["flops"] == 6 * n * 1000 and cost["flops_per_s"] == 3 * n * 1000
