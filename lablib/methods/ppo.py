"""PPO for RLHF: our own small implementation (TRL removed its PPO in 1.13); configured by ``cfg.ppo``.

One PPO step, as in InstructGPT and StackLLaMA:

1. **Rollout**: sample a response to each prompt of a batch from the policy.
2. **Reward**: the reward model scores each (prompt, response); every response token also pays a KL
   penalty against the frozen reference (the SFT model): ``r_t = -beta * (log pi(y_t) - log pi_ref(y_t))``,
   with the RM score added at the last token.
3. **Advantages**: a value head on the policy's last hidden state estimates the return from each token;
   generalised advantage estimation (GAE) turns rewards and values into advantages.
4. **Update**: a few epochs of minibatch steps on the clipped policy loss plus a clipped value loss -- and,
   for PPO-ptx (InstructGPT, Ouyang et al. 2022), ``ppo.ptx_coef`` times the next-token loss of a batch of
   pretraining documents, so the policy keeps the language it learned before.

An adaptive controller (Ziegler et al., 2019) can steer ``beta`` so the KL stays near a target. A step that
produces NaN rewards or a KL beyond ``ppo.kl_stop`` stops training and restores the last good weights.
"""
from __future__ import annotations

import copy
import math
import random
import time
from typing import Callable, List, Sequence

import torch

from ..core.generation import padding_side, sampling


class PPOStop(RuntimeError):
    """Training cannot go on (NaN rewards, a diverging KL); the message says why."""


# --------------------------------------------------------------------------------------------
# The maths, one function each (unit-tested)
# --------------------------------------------------------------------------------------------
def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit variance over the unmasked entries."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token estimates of KL(pi || pi_ref) from tokens sampled from pi.

    ``k1``: log pi - log pi_ref (unbiased, can be negative per token; the PPO penalty uses it);
    ``k3``: (ratio - 1) - log ratio with ratio = pi_ref / pi (unbiased and never negative; Schulman 2020).
    """
    log_ratio = ref_logp - logp
    if kind == "k1":
        return -log_ratio
    if kind == "k3":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"unknown KL estimator {kind!r}")


def token_rewards(scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor,
                  beta: float) -> torch.Tensor:
    """``r_t = -beta * KL_t`` on every response token, plus the sequence's score on its last token."""
    rewards = -beta * kl_estimate(logp, ref_logp) * mask
    last = mask.sum(1).long().clamp(min=1) - 1
    rewards[torch.arange(len(scores)), last] += scores
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """Generalised advantage estimation over each row's masked (response) tokens.

    ``delta_t = r_t + gamma V_{t+1} - V_t`` and ``A_t = delta_t + gamma lam A_{t+1}``, with V = 0 after the
    last token. Returns (advantages, returns = advantages + values).
    """
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    steps = rewards.shape[1]
    for t in reversed(range(steps)):
        next_value = values[:, t + 1] if t + 1 < steps else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                clip: float):
    """The clipped surrogate: ``-min(ratio A, clip(ratio, 1-eps, 1+eps) A)``, averaged over tokens.
    Returns (loss, fraction of tokens where the clip was active)."""
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    return loss, masked_mean((clipped > unclipped).float(), mask)


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float) -> torch.Tensor:
    """``0.5 * max((V - R)^2, (V_clipped - R)^2)``: the value may move at most ``clip`` from its old value."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def lm_loss(model, tokenizer, texts: Sequence[str], max_tokens: int) -> torch.Tensor:
    """The mean next-token NLL of ``texts``, each cut to ``max_tokens`` tokens: pretraining's loss, which PPO-ptx
    mixes into the RL update."""
    with padding_side(tokenizer, "right"):
        enc = tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True, max_length=max_tokens,
                        add_special_tokens=False)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    return model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=labels).loss


class KLController:
    """Fixed ``beta``, or adaptive (Ziegler et al. 2019): beta *= 1 + clip(KL/target - 1, +-0.2) * n/horizon."""

    def __init__(self, beta: float, adaptive: bool = False, target: float = 6.0, horizon: int = 10000):
        self.value, self.adaptive, self.target, self.horizon = beta, adaptive, target, horizon

    def update(self, kl: float, n_samples: int) -> float:
        if self.adaptive:
            error = max(-0.2, min(0.2, kl / self.target - 1.0))
            self.value *= 1.0 + error * n_samples / self.horizon
        return self.value


# --------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------
def _is_peft(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


class PPO:
    """PPO on a causal LM with a scalar value head on its last hidden state.

    ``reward_fn(examples, responses) -> list[float]`` scores decoded responses; ``prompt_fn(example) -> str``
    renders an example as the prompt text. ``metrics`` maps names to functions of the same signature as
    ``reward_fn``, logged per step (e.g. the gold reward). ``ref`` is the frozen reference: a copy of the
    policy by default, or -- for a PEFT (LoRA) policy -- the same model with its adapter switched off.
    ``ptx_texts`` are the pretraining documents PPO-ptx draws from (needed when ``ppo_cfg.ptx_coef`` > 0).
    """

    def __init__(self, policy, tokenizer, reward_fn: Callable, prompt_fn: Callable, ppo_cfg, stop_ids,
                 ref=None, metrics: dict | None = None, seed: int = 0, ptx_texts: Sequence[str] = ()):
        self.policy, self.tokenizer, self.cfg = policy, tokenizer, ppo_cfg
        self.reward_fn, self.prompt_fn, self.metrics = reward_fn, prompt_fn, dict(metrics or {})
        self.stop_ids = list(stop_ids)
        self.ptx_texts = list(ptx_texts) if ppo_cfg.ptx_coef > 0 else []  # gamma 0: plain PPO, texts or not
        if ppo_cfg.ptx_coef > 0 and not self.ptx_texts:
            raise ValueError(f"ppo.ptx_coef={ppo_cfg.ptx_coef} mixes in pretraining text, but no ptx_texts were given")
        torch.manual_seed(seed)
        self.rng = random.Random(seed)
        self.ptx_rng = random.Random(f"ptx-{seed}")  # its own draws: the prompt batches are plain PPO's
        self.lora = _is_peft(policy)
        if ref is None and not self.lora:
            ref = copy.deepcopy(policy)
        if ref is not None:
            ref.eval().requires_grad_(False)
        self.ref = ref
        hidden = policy.config.get_text_config().hidden_size
        self.value_head = torch.nn.Linear(hidden, 1)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)
        self.params = [p for p in policy.parameters() if p.requires_grad] + list(self.value_head.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=ppo_cfg.lr, weight_decay=0.0)
        self.kl_ctl = KLController(ppo_cfg.kl_coef, ppo_cfg.adaptive_kl, ppo_cfg.target_kl, ppo_cfg.kl_horizon)
        self.history: List[dict] = []
        self.stopped: str | None = None
        self._good = self._snapshot()

    # -- pieces of a step ----------------------------------------------------------------------
    def _snapshot(self) -> dict:
        return {"policy": {n: p.detach().clone() for n, p in self.policy.named_parameters() if p.requires_grad},
                "value": copy.deepcopy(self.value_head.state_dict()), "beta": self.kl_ctl.value}

    def _restore(self) -> None:
        params = dict(self.policy.named_parameters())
        with torch.no_grad():
            for name, value in self._good["policy"].items():
                params[name].copy_(value)
        self.value_head.load_state_dict(self._good["value"])
        self.kl_ctl.value = self._good["beta"]

    def _forward(self, model, ids, attention, n_prompt, with_values: bool):
        """Log-probabilities of the response tokens (and values of the states before them)."""
        positions = (attention.cumsum(1) - 1).clamp(min=0)
        out = model(input_ids=ids, attention_mask=attention, position_ids=positions,
                    output_hidden_states=with_values)
        logits = out.logits[:, n_prompt - 1:-1].float() / self.cfg.temperature
        logp = torch.log_softmax(logits, -1).gather(-1, ids[:, n_prompt:, None]).squeeze(-1)
        if not with_values:
            return logp, None
        values = self.value_head(out.hidden_states[-1][:, n_prompt - 1:-1].float()).squeeze(-1)
        return logp, values

    def _ref_logp(self, ids, attention, n_prompt):
        if self.ref is not None:
            return self._forward(self.ref, ids, attention, n_prompt, False)[0]
        with self.policy.disable_adapter():
            return self._forward(self.policy, ids, attention, n_prompt, False)[0]

    @torch.no_grad()
    def rollout(self, examples: Sequence) -> dict:
        """Sample responses to ``examples``; return token ids, masks, texts and the frozen log-probs/values."""
        self.policy.eval()
        tok = self.tokenizer
        with padding_side(tok, "left"):
            enc = tok([self.prompt_fn(e) for e in examples], return_tensors="pt", padding=True,
                      add_special_tokens=False)
        ids = self.policy.generate(**enc, max_new_tokens=self.cfg.max_new_tokens, **sampling(self.cfg.temperature),
                                   pad_token_id=tok.pad_token_id, eos_token_id=self.stop_ids)
        n_prompt = enc["input_ids"].shape[1]
        response = ids[:, n_prompt:]
        is_stop = torch.isin(response, torch.tensor(self.stop_ids))
        mask = ((is_stop.cumsum(1) - is_stop.long()) == 0).float()  # up to and including the first stop token
        attention = torch.cat([enc["attention_mask"], mask.long()], 1)
        logp, values = self._forward(self.policy, ids, attention, n_prompt, True)
        ref_logp = self._ref_logp(ids, attention, n_prompt)
        texts = [tok.decode(r[m.bool()], skip_special_tokens=True) for r, m in zip(response, mask)]
        return {"ids": ids, "attention": attention, "n_prompt": n_prompt, "mask": mask, "texts": texts,
                "logp": logp, "values": values, "ref_logp": ref_logp}

    def _credit(self, ro: dict, scores: torch.Tensor):
        """Per response token: the KL estimate, the reward (KL penalty, plus the score at the end), GAE's
        advantage and the return."""
        mask = ro["mask"]
        rewards = token_rewards(scores, ro["logp"], ro["ref_logp"], mask, self.kl_ctl.value)
        advantages, returns = gae(rewards, ro["values"], mask, self.cfg.gamma, self.cfg.lam)
        return kl_estimate(ro["logp"], ro["ref_logp"]) * mask, rewards, advantages, returns

    def explain(self, examples: Sequence) -> dict:
        """A rollout of ``examples`` taken apart token by token, as a step sees it before its update: each
        response's tokens (decoded), and per token the KL estimate, the reward, the value and the advantage
        (before whitening). The lab draws them as heat maps."""
        ro = self.rollout(examples)
        scores = torch.tensor(self.reward_fn(examples, ro["texts"]), dtype=torch.float32)
        kl, rewards, advantages, _ = self._credit(ro, scores)
        lengths = ro["mask"].sum(1).long().tolist()
        response = ro["ids"][:, ro["n_prompt"]:]

        def cut(x):
            return [row[:n].tolist() for row, n in zip(x, lengths)]

        return {"tokens": [[self.tokenizer.decode([int(t)]) for t in row[:n]] for row, n in zip(response, lengths)],
                "texts": ro["texts"], "scores": scores.tolist(), "kl": cut(kl), "reward": cut(rewards),
                "value": cut(ro["values"] * ro["mask"]), "advantage": cut(advantages)}

    def step(self, examples: Sequence) -> dict:
        """One PPO step on a batch of examples; returns the step's statistics."""
        start = time.perf_counter()
        ro = self.rollout(examples)
        scores = torch.tensor(self.reward_fn(examples, ro["texts"]), dtype=torch.float32)
        if not torch.isfinite(scores).all():
            bad = int((~torch.isfinite(scores)).nonzero()[0])
            raise PPOStop(f"the reward model returned {scores[bad].item()} for response {ro['texts'][bad]!r}")
        mask, beta = ro["mask"], self.kl_ctl.value
        kl_tokens, rewards, advantages, returns = self._credit(ro, scores)
        advantages = whiten(advantages, mask)

        self.policy.eval()  # no dropout: the log-probs must match the rollout's
        n = len(examples)
        stats = {"policy_loss": 0.0, "value_loss": 0.0, "clip_frac": 0.0, **({"ptx_loss": 0.0} if self.ptx_texts else {})}
        updates = 0
        for _ in range(self.cfg.epochs):
            order = torch.randperm(n)
            for i in range(0, n, self.cfg.minibatch_size):
                idx = order[i:i + self.cfg.minibatch_size]
                logp, values = self._forward(self.policy, ro["ids"][idx], ro["attention"][idx], ro["n_prompt"], True)
                pg, clip_frac = policy_loss(logp, ro["logp"][idx], advantages[idx], mask[idx], self.cfg.clip)
                vf = value_loss(values, ro["values"][idx], returns[idx], mask[idx], self.cfg.clip_value)
                loss = pg + self.cfg.vf_coef * vf
                if self.ptx_texts:
                    ptx = lm_loss(self.policy, self.tokenizer, self.ptx_rng.sample(self.ptx_texts, self.cfg.ptx_batch_size),
                                  self.cfg.ptx_tokens)
                    loss = loss + self.cfg.ptx_coef * ptx
                    stats["ptx_loss"] += ptx.item()
                if not torch.isfinite(loss):
                    raise PPOStop(f"the PPO loss became {loss.item()}")
                self.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
                self.optimizer.step()
                stats["policy_loss"] += pg.item()
                stats["value_loss"] += vf.item()
                stats["clip_frac"] += clip_frac.item()
                updates += 1
        stats = {k: v / updates for k, v in stats.items()}
        kl = float(kl_tokens.sum(1).mean())
        if not math.isfinite(kl) or kl > self.cfg.kl_stop:
            raise PPOStop(f"the KL to the reference reached {kl:.1f} nats (ppo.kl_stop={self.cfg.kl_stop})")
        self.kl_ctl.update(kl, n)
        stats.update(rm=float(scores.mean()), kl=kl, beta=beta, length=float(mask.sum(1).mean()),
                     seconds=time.perf_counter() - start)
        for name, fn in self.metrics.items():
            stats[name] = sum(fn(examples, ro["texts"])) / n
        return stats

    def train(self, examples: Sequence, steps: int, progress: bool = True) -> List[dict]:
        """``steps`` PPO steps on batches drawn (seeded) from ``examples``. Stops early, restoring the last
        good weights, if a step raises :class:`PPOStop`; ``self.stopped`` then says why."""
        from tqdm.auto import tqdm

        bar = tqdm(range(steps), desc="PPO", disable=not progress)
        for i in bar:
            batch = self.rng.sample(list(examples), min(self.cfg.batch_size, len(examples)))
            try:
                stats = self.step(batch)
            except PPOStop as exc:
                self._restore()
                self.stopped = f"stopped at step {i + 1}: {exc}; kept the weights of step {i}"
                break
            stats["step"] = i + 1
            self.history.append(stats)
            self._good = self._snapshot()
            bar.set_postfix(rm=f"{stats['rm']:.2f}", kl=f"{stats['kl']:.2f}")
        self.policy.eval()
        return self.history
