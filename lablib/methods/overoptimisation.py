"""Over-optimisation: what happens to the gold reward when a policy is pushed against a *proxy* reward (the RM).

Gao et al. (2022), "Scaling Laws for Reward Model Overoptimization": with d = sqrt(KL(pi || pi_init)), the gold
reward gained by best-of-n sampling follows R(d) = d (alpha - beta d), and by RL R(d) = d (alpha - beta log d):
it rises, peaks and falls, while the proxy keeps rising. Best-of-n needs no training, so it is the cheapest
demonstration: sample n responses per prompt, keep the one the proxy likes best, and score it with both.
Its KL from the sampling policy is at most log n - (n - 1) / n (Beirami et al., 2024: a bound, not exact).
"""
from __future__ import annotations

import math
from typing import Callable, List, Sequence

import torch


def kl_bound(n: int) -> float:
    """The best-of-n KL bound, log n - (n - 1) / n nats."""
    return math.log(n) - (n - 1) / n


def n_for_kl(kl: float) -> float:
    """The inverse of :func:`kl_bound`: the (real) n whose best-of-n bound is ``kl`` nats, found by bisection
    (the bound rises monotonically in n; for large n it is close to ``exp(kl + 1)``)."""
    if kl <= 0:
        return 1.0
    lo, hi = 1.0, 2.0
    while kl_bound(hi) < kl:
        lo, hi = hi, 2 * hi
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if kl_bound(mid) < kl else (lo, mid)
    return (lo + hi) / 2


@torch.no_grad()
def best_of_n(policy, tokenizer, examples: Sequence, proxy: Callable, gold: Callable, max_n: int,
              temperature: float, max_new_tokens: int, seed: int, fmt: str = "chatml") -> List[dict]:
    """For n = 1, 2, 4 ... ``max_n``: the mean proxy and gold reward of the proxy's favourite of n samples.

    ``max_n`` samples per prompt are drawn once (seeded) and cut into ``max_n / n`` disjoint groups of n; each
    group's best-by-proxy sample counts, so every n is estimated from the same samples."""
    from ..core import generation

    if max_n < 1 or max_n & (max_n - 1):
        raise ValueError(f"max_n={max_n}: must be a power of two")
    torch.manual_seed(seed)
    many = [e for e in examples for _ in range(max_n)]
    responses = generation.respond(policy, tokenizer, many, fmt, max_new_tokens, batch_size=64,
                                   temperature=temperature)
    p, g = list(proxy(many, responses)), list(gold(many, responses))
    rows, n = [], 1
    while n <= max_n:
        picked = [max(range(s, s + n), key=lambda i: (p[i], -i)) for s in range(0, len(many), n)]
        rows.append({"n": n, "kl": kl_bound(n), "sqrt_kl": math.sqrt(kl_bound(n)),
                     "proxy": sum(p[i] for i in picked) / len(picked), "gold": sum(g[i] for i in picked) / len(picked)})
        n *= 2
    return rows


def fit_gao(d: Sequence[float], gain: Sequence[float], form: str = "bon") -> dict:
    """Least-squares fit of Gao et al.'s gold-reward gain R(d) = d (alpha - beta d) (``bon``) or
    d (alpha - beta log d) (``rl``) to points (d, gain), and where it peaks (d*, R(d*)); beta <= 0 means no peak
    within the fitted form (and with fewer than two points d > 0, both are NaN)."""
    rows = [(x, x * x if form == "bon" else x * math.log(x)) for x in d if x > 0]
    ys = [y for x, y in zip(d, gain) if x > 0]
    if len(rows) < 2:  # too few points to fit two parameters
        return {"alpha": float("nan"), "beta": float("nan"), "peak": None}
    a = torch.tensor([[x, -b] for x, b in rows], dtype=torch.float64)
    alpha, beta = torch.linalg.lstsq(a, torch.tensor(ys, dtype=torch.float64).unsqueeze(1)).solution.flatten().tolist()
    peak = None
    if beta > 0:
        d_star = alpha / (2 * beta) if form == "bon" else math.exp(alpha / beta - 1)
        peak = {"d": d_star, "gain": d_star * (alpha - beta * (d_star if form == "bon" else math.log(d_star)))}
    return {"alpha": alpha, "beta": beta, "peak": peak}
