"""Reward modelling: a scalar score for (prompt, response), learnt from preference pairs.

The reward model is the SFT model with its language-model head swapped for a one-output linear head
(``AutoModelForSequenceClassification(num_labels=1)``): it reads the whole conversation and returns the
score at the last token. Trained on pairs with the **Bradley-Terry** loss

    loss = -log sigmoid(r(prompt, chosen) - r(prompt, rejected))

it learns to put the chosen response above the rejected one; only differences of scores mean anything.
TRL's ``RewardTrainer`` does the training; :func:`bt_loss` writes the loss out so the lab can check it.
"""
from __future__ import annotations

import math
import random
import warnings
from pathlib import Path
from typing import List, Sequence, Tuple

import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification

from ..core import generation, models, training


class RewardError(ValueError):
    """Bad reward-modelling input, worded as one line that says where."""


def check_pairs(pairs: Sequence, where: str = "training") -> None:
    """Every pair must have two different, non-empty responses."""
    if not pairs:
        raise RewardError(f"the {where} pairs are empty (domain.split / data.val_fraction or the data file)")
    for i, p in enumerate(pairs):
        if not p.chosen.strip() or not p.rejected.strip():
            raise RewardError(f"{where} pair {i} ({p.how}): an empty {'chosen' if not p.chosen.strip() else 'rejected'}"
                              " response")
        if p.chosen.strip() == p.rejected.strip():
            raise RewardError(f"{where} pair {i} ({p.how}): chosen and rejected are identical ({p.chosen!r})")


def policy_pairs(pairs: Sequence, policy, tokenizer, share: float, samples: int, temperature: float,
                 max_new_tokens: int, seed: int, fmt: str = "chatml") -> list:
    """Replace a seeded ``share`` of the pairs by pairs of the policy's own samples, as InstructGPT's labellers
    compared the SFT model's outputs: ``samples`` responses per prompt (in the format the policy was fine-tuned
    in, ``fmt``), labelled by the gold checker (standing in for the labeller); every two distinct responses with
    different gold rewards make a pair, ties are dropped. A prompt whose samples all tie keeps its hand-made
    pair. A reward model trained only on hand-made flaws never sees the mistakes the policy actually makes, and
    RL would exploit that blind spot."""
    from ..core.data import Pair

    rng = random.Random(f"sampled-{seed}")
    chosen = sorted(rng.sample(range(len(pairs)), round(share * len(pairs))))
    many = [pairs[i].example for i in chosen for _ in range(samples)]
    torch.manual_seed(seed)
    responses = generation.respond(policy, tokenizer, many, fmt, max_new_tokens, batch_size=64,
                                   temperature=temperature)
    out, replaced = [], set()
    for j, i in enumerate(chosen):
        ex = pairs[i].example
        texts = sorted({r.strip() for r in responses[j * samples:(j + 1) * samples] if r.strip()})
        graded = [(ex.gold_reward(t), t) for t in texts]
        new = [Pair(ex, a, b, "sampled") for ga, a in graded for gb, b in graded if ga > gb]
        if new:
            out += new
            replaced.add(i)
    return [p for i, p in enumerate(pairs) if i not in replaced] + out


def course_pairs(cfg) -> tuple:
    """Lab 04's preference pairs, checked: the embedded tasks' pairs with hand-made flaws, where a share
    ``reward.sampled_share`` of the prompts get pairs of the SFT policy's own samples ranked by gold instead
    (:func:`policy_pairs`). Returns ``(train pairs, held-out pairs, policy, policy tokenizer)``; every chosen
    response has a higher gold reward than its rejected one."""
    from ..core import domain

    pairs = domain.pairs(cfg)
    train, val = pairs.rm, pairs.val
    policy, tokenizer = models.load_pretrained(cfg.model, cfg.inputs.model)
    if cfg.reward.sampled_share > 0:
        sample = dict(share=cfg.reward.sampled_share, samples=cfg.reward.samples, temperature=cfg.reward.temperature,
                      max_new_tokens=cfg.sft.max_new_tokens, fmt=cfg.sft.format)
        train = policy_pairs(train, policy, tokenizer, seed=cfg.seed, **sample)
        val = policy_pairs(val, policy, tokenizer, seed=cfg.seed + 1, **sample)
    check_pairs(train)
    check_pairs(val, "held-out")
    wrong = [p for p in train + val if p.example.gold_reward(p.chosen) <= p.example.gold_reward(p.rejected)]
    if wrong:
        raise RewardError(f"{len(wrong)} pairs whose chosen response is not better by gold, e.g. {wrong[0]}")
    return train, val, policy, tokenizer


@torch.no_grad()
def gold_agreement(model, tokenizer, policy, policy_tokenizer, pairs: Sequence, cfg) -> dict:
    """How the RM's scores of the SFT policy's own samples (``reward.samples`` per held-out prompt, at
    ``reward.temperature``) agree with the gold reward: the scores per gold level, Spearman's rank correlation
    (NaN when every sample has one gold level), and :func:`within_prompt_accuracy`."""
    check_tokenizers(policy_tokenizer, tokenizer)
    examples = [p.example for p in pairs for _ in range(cfg.reward.samples)]
    torch.manual_seed(cfg.seed)
    samples = generation.respond(policy, policy_tokenizer, examples, cfg.sft.format, cfg.sft.max_new_tokens,
                                 temperature=cfg.reward.temperature)
    scores = score(model, tokenizer, examples, samples).tolist()
    gold = [e.gold_reward(s) for e, s in zip(examples, samples)]
    levels = {g: [r for r, g2 in zip(scores, gold) if g2 == g] for g in sorted(set(gold))}
    return {"samples": len(samples), "levels": levels, "rho": rank_correlation(scores, gold),
            "within": within_prompt_accuracy(examples, scores, gold)}


def conversation(example, response: str) -> list:
    return [generation.chat_turn(example), {"role": "assistant", "content": response}]


def to_dataset(pairs: Sequence) -> Dataset:
    """TRL's conversational preference type: a user prompt, and the chosen and rejected assistant turns."""
    return Dataset.from_list([{"prompt": [generation.chat_turn(p.example)],
                               "chosen": [{"role": "assistant", "content": p.chosen}],
                               "rejected": [{"role": "assistant", "content": p.rejected}]} for p in pairs])


def load_backbone(path: str | Path, seed: int):
    """(reward model, tokenizer): the model at ``path`` with a fresh scalar head (seeded)."""
    torch.manual_seed(seed)
    tokenizer = models.load_tokenizer(path)
    if tokenizer.chat_template is None:
        raise RewardError(f"{path}: the tokenizer has no chat template; start from the SFT lab's model (02/model)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some weights were newly initialised": the score head, as intended
        model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def scorer(path: str | Path, seed: int = 0):
    """The reward model saved at ``path`` as a reward function, ``fn(examples, responses) -> list of scores``
    (what PPO, RAFT, GRPO and the leaderboards take); ``fn.model`` and ``fn.tokenizer`` are the model's."""
    model, tokenizer = load_backbone(path, seed)

    def fn(examples: Sequence, responses: Sequence[str]) -> List[float]:
        return score(model, tokenizer, examples, responses).tolist()

    fn.model, fn.tokenizer = model, tokenizer
    return fn


def make_trainer(model, tokenizer, train_pairs: Sequence, val_pairs: Sequence, cfg, out_dir: str | Path):
    """A ``RewardTrainer`` configured from ``cfg.train`` and ``cfg.reward``, after checking the pairs."""
    from trl import RewardConfig, RewardTrainer

    check_pairs(train_pairs)
    check_pairs(val_pairs, "held-out")
    trainer = training.build(RewardTrainer, RewardConfig, cfg.train, cfg.seed, out_dir, args=dict(
        max_length=cfg.reward.max_length, gradient_checkpointing=False,
        center_rewards_coefficient=cfg.reward.center or None), model=model, processing_class=tokenizer,
        train_dataset=to_dataset(train_pairs), eval_dataset=to_dataset(val_pairs[: cfg.train.eval_items]))
    if len(trainer.train_dataset) < len(train_pairs):
        raise RewardError(f"reward.max_length={cfg.reward.max_length}: "
                          f"{len(train_pairs) - len(trainer.train_dataset)} training pairs are longer and were dropped")
    return trainer


def fit_length(pairs: Sequence, tokenizer, max_length: int) -> Tuple[list, int]:
    """The pairs whose chosen and rejected conversations both fit ``max_length`` tokens, and how many did not
    (real answers are long: the own-domain labs drop and count them where :func:`make_trainer` would refuse)."""
    def n_tokens(p, response: str) -> int:
        text = tokenizer.apply_chat_template(conversation(p.example, response), tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    kept = [p for p in pairs if max(n_tokens(p, p.chosen), n_tokens(p, p.rejected)) <= max_length]
    return kept, len(pairs) - len(kept)


def train(path: str | Path, train_pairs: Sequence, val_pairs: Sequence, cfg, out_dir: str | Path) -> dict:
    """A reward model from the model at ``path`` (a fresh scalar head), trained on ``train_pairs``: the model,
    its tokenizer, the training result (:func:`lablib.training.fit`) and the held-out :func:`pair_accuracy`
    before and after."""
    model, tokenizer = load_backbone(path, cfg.seed)
    trainer = make_trainer(model, tokenizer, train_pairs, val_pairs, cfg, out_dir)
    before = pair_accuracy(model, tokenizer, val_pairs)
    result = training.fit(trainer)
    return {"model": model, "tokenizer": tokenizer, "result": result, "before": before,
            "after": pair_accuracy(model, tokenizer, val_pairs)}


def late_loss(history: Sequence[dict]) -> float:
    """The mean training loss over the last quarter of the logged steps: what lab 04 compares with chance (log 2,
    the loss of a model that cannot tell chosen from rejected)."""
    losses = [h["train_loss"] for h in history if "train_loss" in h]
    n = len(losses) // 4 or 1
    return sum(losses[-n:]) / n


def check_below_chance(history: Sequence[dict], margin: float, name: str = "RM") -> float:
    """:func:`late_loss`, checked to lie ``margin`` (``reward.min_loss_drop``) below chance; returns it."""
    late = late_loss(history)
    if not late < math.log(2) - margin:
        raise AssertionError(f"the {name}'s training loss stayed near chance: {late:.3f} (log 2 = {math.log(2):.3f})")
    return late


def bt_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """The Bradley-Terry loss: minus the log-probability that chosen beats rejected, ``log sigmoid(r_chosen -
    r_rejected)``, averaged over pairs. ``logsigmoid`` keeps it finite where ``log(sigmoid(x))`` would give
    ``-inf`` (a margin below about -100)."""
    return -torch.nn.functional.logsigmoid(r_chosen - r_rejected).mean()


@torch.no_grad()
def check_bt(trainer, n_pairs: int = 8) -> dict:
    """The trainer's loss and :func:`bt_loss` on the same batch of ``n_pairs`` training pairs."""
    rows = [trainer.train_dataset[i] for i in range(min(n_pairs, len(trainer.train_dataset)))]
    batch = trainer.data_collator(rows)
    trainer.model.eval()
    theirs = float(trainer.compute_loss(trainer.model, dict(batch)))
    rewards = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    r_chosen, r_rejected = rewards[: len(rows)], rewards[len(rows):]
    ours = float(bt_loss(r_chosen, r_rejected))
    return {"trainer": theirs, "ours": ours, "pairs": len(rows)}


@torch.no_grad()
def score(model, tokenizer, examples: Sequence, responses: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """The reward model's score of each (example's prompt, response), rendered as in training."""
    model.eval()
    texts = [tokenizer.apply_chat_template(conversation(e, r), tokenize=False) for e, r in zip(examples, responses,
                                                                                               strict=True)]
    out = []
    with generation.padding_side(tokenizer, "right"):
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            out.append(model(**enc).logits[:, 0].float())
    return torch.cat(out) if out else torch.zeros(0)


def pair_accuracy(model, tokenizer, pairs: Sequence) -> dict:
    """Held-out accuracy (chosen scored above rejected), the margins, and accuracy per flaw."""
    chosen = score(model, tokenizer, [p.example for p in pairs], [p.chosen for p in pairs])
    rejected = score(model, tokenizer, [p.example for p in pairs], [p.rejected for p in pairs])
    margins = (chosen - rejected).tolist()
    by_how: dict = {}
    for p, m in zip(pairs, margins):
        by_how.setdefault(p.how, []).append(m > 0)
    return {"accuracy": sum(m > 0 for m in margins) / len(margins), "margins": margins,
            "by_how": {h: sum(v) / len(v) for h, v in sorted(by_how.items())},
            "n_by_how": {h: len(v) for h, v in sorted(by_how.items())}}


def by_source(accuracy: dict) -> dict:
    """:func:`pair_accuracy` split by where the rejected response came from: ``made`` (hand-made flaws, and pairs
    from a file) and ``sampled`` (the policy's own samples); each ``(accuracy, n)``, or ``None`` with no pairs."""
    out = {}
    for source, keep in (("made", lambda h: h != "sampled"), ("sampled", lambda h: h == "sampled")):
        n = sum(v for h, v in accuracy["n_by_how"].items() if keep(h))
        right = sum(accuracy["by_how"][h] * v for h, v in accuracy["n_by_how"].items() if keep(h))
        out[source] = (right / n, n) if n else None
    return out


def within_prompt_accuracy(examples: Sequence, scores: Sequence[float], gold: Sequence[float]) -> dict:
    """Over every two samples of the same prompt with different gold rewards: the share the RM orders as gold
    does. (Scores of different prompts are not comparable: the Bradley-Terry loss only fixes differences.)"""
    groups: dict = {}
    for e, r, g in zip(examples, scores, gold, strict=True):
        groups.setdefault(id(e), []).append((r, g))
    right = total = 0
    for items in groups.values():
        for i, (ri, gi) in enumerate(items):
            for rj, gj in items[i + 1:]:
                if gi != gj:
                    total += 1
                    right += (ri - rj) * (gi - gj) > 0
    return {"accuracy": right / total if total else float("nan"), "pairs": total}


def ranks(values: Sequence[float]) -> List[float]:
    """Ranks 1..n, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def rank_correlation(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho: the Pearson correlation of the ranks (NaN when either side is constant)."""
    ra, rb = ranks(a), ranks(b)
    n = len(ra)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    sa, sb = math.sqrt(sum((x - ma) ** 2 for x in ra)), math.sqrt(sum((y - mb) ** 2 for y in rb))
    return cov / (sa * sb) if sa and sb else float("nan")


def check_tokenizers(policy_tokenizer, rm_tokenizer, where: str = "the reward model") -> None:
    """The reward model must read token ids exactly as the policy writes them."""
    a, b = policy_tokenizer.get_vocab(), rm_tokenizer.get_vocab()
    if a != b:
        diff = sorted(set(a.items()) ^ set(b.items()), key=str)[:3]
        raise RewardError(f"{where}'s tokenizer does not match the policy's ({len(b)} vs {len(a)} tokens; "
                          f"e.g. {diff}): train the reward model from the same SFT model")
    if rm_tokenizer.chat_template != policy_tokenizer.chat_template:
        raise RewardError(f"{where}'s chat template differs from the policy's: train it from the same SFT model")


# Where the own track's pairs came from, as lab 04 records it (labs 06 and 07 read the saved split).
SOURCES = {"domain.pairs": "your preference file (domain.pairs)",
           "self_play": "self-play: your reference answer chosen, the SFT model's own answer rejected (SPIN)"}


def preference_pairs(cfg):
    """The own track's pairs, split by prompt (RM, judge, held out), and where they came from: ``domain.pairs``
    when it is set, else self-play pairs built from the instructions and lab 02's SFT model (``cfg.inputs.model``),
    :meth:`lablib.domain.Files.self_play_pairs`."""
    from ..core import domain

    pairs = domain.pairs(cfg)
    if pairs is not None:
        return pairs, "domain.pairs"
    policy, tokenizer = models.load_pretrained(cfg.model, cfg.inputs.model)
    return domain.of(cfg).self_play_pairs(cfg, policy, tokenizer), "self_play"


PARTS = ("rm", "judge", "val")


def save_pairs(pairs, folder: str | Path) -> Path:
    """The split as three preference files (``rm.jsonl``, ``judge.jsonl``, ``val.jsonl``): data the later labs load."""
    import json

    from ..core import data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        rows = data.pair_rows(getattr(pairs, part))
        (folder / f"{part}.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return folder


def load_pairs(folder: str | Path):
    """A split saved by :func:`save_pairs` (an empty part is an empty list)."""
    from ..core import domain, files

    folder = Path(folder)
    parts = {p: files.pair_records(folder / f"{p}.jsonl") if (folder / f"{p}.jsonl").stat().st_size else []
             for p in PARTS}
    return domain.PairSplit(parts["rm"], parts["judge"], parts["val"])
