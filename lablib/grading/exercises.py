"""Exercises: each lab's student function checked against lablib's own, on fresh inputs.

In a solution notebook an exercise is a code cell tagged ``exercise``; the student's part sits between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` (:data:`BEGIN`, :data:`END`). The cell after it calls
:func:`check`, which prints ``PASS name`` or ``FAIL name: why`` -- a message that names the mistake -- and never
stops the notebook, so a grader sees every exercise. Releasing and grading notebooks is ``lablib.grading``'s job.
"""
from __future__ import annotations

import math
import random
import sys
import threading
from typing import Callable, Dict, Tuple

import torch

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
EXERCISE_TAG = "exercise"


# --------------------------------------------------------------------------------------------
# Borrowing: calling the library's own implementation of the very thing an exercise asks for
# --------------------------------------------------------------------------------------------
# exercise -> the implementations its solution must not call, as (file, qualified name) of their code: whoever
# reaches them -- directly, through a wrapper, an alias, functools.partial, importlib or a trainer method -- runs
# that code object. Torch primitives (F.cross_entropy, logsigmoid, log_softmax) are allowed.
REFERENCES: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "01.next_token_loss": (("transformers/loss/loss_utils.py", "ForCausalLMLoss"), ("lablib/core/evaluation.py", "lm_loss")),
    "02.mask_prompt": (("trl/trainer/sft_trainer.py", "DataCollatorForLanguageModeling.torch_call"),),
    "03.lora_forward": (("peft/tuners/lora/layer.py", "Linear.forward"),),
    "04.bt_loss": (("lablib/methods/reward.py", "bt_loss"), ("trl/trainer/reward_trainer.py", "RewardTrainer.compute_loss")),
    "05.gae": (("lablib/methods/ppo.py", "gae"), ("lablib/methods/ppo.py", "PPO.step")),
    "06.select": (("lablib/methods/raft.py", "select"), ("lablib/methods/raft.py", "best_mean"), ("lablib/methods/raft.py", "RAFT.iteration")),
    "07.response_nll": (("lablib/core/evaluation.py", "response_nll"),),
    "01.nucleus": (("transformers/generation/logits_process.py", "TopPLogitsWarper.__call__"),
                   ("transformers/generation/logits_process.py", "TemperatureLogitsWarper.__call__")),
    "05.clipped_surrogate": (("lablib/methods/ppo.py", "policy_loss"),),
    "05.k3": (("lablib/methods/ppo.py", "kl_estimate"),),
    "06.dpo_loss": (("lablib/methods/dpo.py", "dpo_loss"), ("trl/trainer/dpo_trainer.py", "DPOTrainer.compute_loss")),
    "07.pass_at_k": (("lablib/core/evaluation.py", "pass_at_k"), ("lablib/core/evaluation.py", "pass_at_k_curve")),
}
OWNERS = {"lablib": "lablib's own ", "transformers": "transformers' own ", "trl": "TRL's own ", "peft": "PEFT's own "}
# bound at import, before any student code runs: patching sys.setprofile later does not blind the profiler
_SET, _GET = sys.setprofile, sys.getprofile
_TSET, _TGET = threading.setprofile, threading.getprofile


class Borrowed(AssertionError):
    """A solution that calls the library's own implementation of its exercise."""


def _display(file: str, qualname: str) -> str:
    package, _, rest = file.partition("/")
    module = rest[:-3].rsplit("/", 1)[-1] if package == "lablib" else ""  # its short name: reward, not methods.reward
    return OWNERS[package] + (f"{module}.{qualname}" if package == "lablib" else qualname)


def watched(fn: Callable, name: str) -> Callable:
    """``fn``, each of whose calls runs under a profiler (``sys.setprofile``, and ``threading.setprofile`` for new
    threads) that watches every Python function it enters: reaching one of exercise ``name``'s references raises
    :class:`Borrowed` ("calls lablib's own reward.bt_loss"). The check computes its expected values outside these
    calls, so the reference it uses itself is never seen; a solution that switches the profiler off fails too."""
    refs = {(file, qualname) for file, qualname in REFERENCES.get(name, ())}

    def call(*args, **kwargs):
        hits: list = []

        def profiler(frame, event, arg):
            if event == "call":
                code = frame.f_code
                key = next((r for r in refs if code.co_qualname == r[1]
                            and code.co_filename.replace("\\", "/").endswith("/" + r[0])), None)
                if key and not hits:
                    hits.append(key)

        saved, saved_threads = _GET(), _TGET()
        out, error = None, None
        _SET(profiler)
        _TSET(profiler)
        try:
            out = fn(*args, **kwargs)
        except BaseException as exc:  # a borrowed call that then failed is still borrowed: decide below
            error = exc
        finally:
            still = _GET() is profiler
            _SET(saved)
            _TSET(saved_threads)
        if hits:
            raise Borrowed(f"calls {_display(*hits[0])}: write the computation yourself (torch primitives are fine)")
        if not still:
            raise Borrowed("switches off the grader's profiler (sys.setprofile): the check cannot trust it")
        if error is not None:
            raise error
        return out
    return call


# --------------------------------------------------------------------------------------------
# Checks: the student's function against lablib's on fresh inputs
# --------------------------------------------------------------------------------------------
CHECKS: Dict[str, Callable] = {}


def _registered(name: str):
    def wrap(fn):
        CHECKS[name] = fn
        return fn
    return wrap


def _close(got, want, what: str, atol: float = 1e-5) -> None:
    got, want = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(want, dtype=torch.float64)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    if not torch.isfinite(got).all():
        raise AssertionError(f"{what}: got a NaN or inf (compute it in a numerically stable way)")
    if not torch.allclose(got, want, atol=atol, rtol=1e-4):
        i = int((got - want).abs().argmax())
        raise AssertionError(f"{what}: got {got.flatten()[i].item():.6g}, expected {want.flatten()[i].item():.6g}")


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(random.randrange(2 ** 31))  # fresh inputs each time: no hard-coding


@_registered("01.next_token_loss")
def _check_next_token_loss(fn) -> None:
    F = torch.nn.functional
    g = _generator()
    for b, t, v, scale in ((1, 5, 7, 1.0), (3, 9, 11, 2.0), (2, 6, 5, 80.0)):  # the last needs log-softmax
        logits, ids = torch.randn(b, t, v, generator=g) * scale, torch.randint(0, v, (b, t), generator=g)
        want = F.cross_entropy(logits[:, :-1].reshape(-1, v).double(), ids[:, 1:].reshape(-1))
        got = torch.as_tensor(fn(logits.clone(), ids.clone()), dtype=torch.float64)
        unshifted = F.cross_entropy(logits.reshape(-1, v).double(), ids.reshape(-1))
        if got.shape == () and torch.isclose(got, unshifted) and not torch.isclose(got, want):
            raise AssertionError("the logits at position t must predict the token at t + 1: shift by one")
        _close(got, want, f"loss on a batch of {b} x {t} tokens, vocabulary {v}, logits of scale {scale:g}")


@_registered("02.mask_prompt")
def _check_mask_prompt(fn) -> None:
    g = _generator()
    ids = torch.randint(5, 50, (3, 8), generator=g)
    prompt_lens = torch.tensor([2, 5, 1])
    attention = torch.tensor([[1] * 8, [1] * 7 + [0], [1] * 4 + [0] * 4])  # rows 2 and 3 end in padding
    want = ids.clone()
    want[torch.arange(8)[None, :] < prompt_lens[:, None]] = -100
    want[attention == 0] = -100
    before = ids.clone()
    got = torch.as_tensor(fn(ids, prompt_lens, attention))
    if not torch.equal(ids, before):
        raise AssertionError("input_ids were changed in place: build the labels in a copy (.clone())")
    if got.shape != want.shape:
        raise AssertionError(f"labels of shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    bad = (got != want).nonzero()
    if len(bad):
        i, j = bad[0].tolist()
        why = ("a prompt token" if j < prompt_lens[i] else "padding" if attention[i, j] == 0 else "a response token")
        raise AssertionError(f"row {i}, position {j} ({why}): label {got[i, j].item()}, expected {want[i, j].item()}")


@_registered("03.lora_forward")
def _check_lora_forward(fn) -> None:
    g = _generator()
    for shape, d_in, d_out, r, alpha in (((4,), 6, 5, 2, 4.0), ((2, 3), 8, 8, 4, 16.0), ((1,), 5, 3, 1, 1.0)):
        x, w = torch.randn(*shape, d_in, generator=g), torch.randn(d_out, d_in, generator=g)
        a, b = torch.randn(r, d_in, generator=g), torch.randn(d_out, r, generator=g)
        want = x @ w.T + (alpha / r) * (x @ a.T) @ b.T
        got = torch.as_tensor(fn(x, w, a, b, alpha))
        if got.shape == want.shape and r > 1 and torch.allclose(got, x @ w.T + (x @ a.T) @ b.T, atol=1e-4):
            raise AssertionError("the update is not scaled: multiply B(Ax) by alpha / r")
        if got.shape == want.shape and r > 1 and torch.allclose(got, x @ w.T + alpha * (x @ a.T) @ b.T, atol=1e-4):
            raise AssertionError("the update is scaled by alpha: the scale is alpha / r")
        _close(got, want, f"x of shape {tuple(x.shape)}, rank {r}, alpha {alpha:g}", atol=1e-4)
    # The same numbers as PEFT's own LoRA layer (random A and B, so the update is not zero).
    import peft

    base = torch.nn.Sequential(torch.nn.Linear(6, 4, bias=False))
    model = peft.get_peft_model(base, peft.LoraConfig(r=2, lora_alpha=8, target_modules=["0"],
                                                      init_lora_weights=False))
    layer = model.base_model.model[0]
    x = torch.randn(3, 6, generator=g)
    with torch.no_grad():
        _close(fn(x, layer.base_layer.weight, layer.lora_A["default"].weight, layer.lora_B["default"].weight, 8.0),
               layer(x), "against PEFT's LoRA layer (r=2, alpha=8)", atol=1e-4)


@_registered("04.bt_loss")
def _check_bt_loss(fn) -> None:
    from ..methods.reward import bt_loss

    g = _generator()
    for n, scale in ((1, 1.0), (8, 3.0), (5, 60.0)):  # the last needs a stable log-sigmoid
        chosen, rejected = torch.randn(n, generator=g) * scale, torch.randn(n, generator=g) * scale
        want = -torch.nn.functional.logsigmoid(chosen.double() - rejected.double()).mean()
        _close(fn(chosen, rejected), want, f"bt_loss on {n} pairs with rewards of scale {scale:g}")
    same = torch.zeros(3)
    _close(fn(same, same), math.log(2), "bt_loss when chosen and rejected score the same (should be log 2)")
    chosen, rejected = torch.tensor([-100.0, 3.0]), torch.tensor([100.0, 1.0])  # a margin of -200
    want = -torch.nn.functional.logsigmoid(chosen.double() - rejected.double()).mean()
    _close(fn(chosen, rejected), want, "bt_loss with a margin of -200 (rejected far ahead)")


@_registered("05.gae")
def _check_gae(fn) -> None:
    from ..methods.ppo import gae

    g = _generator()
    rewards, values = torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g)
    mask = torch.tensor([[1.0] * 6, [1.0] * 4 + [0.0] * 2, [1.0] + [0.0] * 5])
    for gamma, lam in ((1.0, 1.0), (1.0, 0.95), (0.9, 0.0)):
        adv, ret = gae(rewards, values, mask, gamma, lam)
        got = fn(rewards.clone(), values.clone(), mask, gamma, lam)
        if not isinstance(got, tuple) or len(got) != 2:
            raise AssertionError("gae must return (advantages, returns)")
        _close(got[0], adv, f"advantages with gamma={gamma}, lam={lam}")
        _close(got[1], ret, f"returns with gamma={gamma}, lam={lam}")


@_registered("06.select")
def _check_select(fn) -> None:
    from ..methods.raft import select

    rng = random.Random()
    cases = [(["a", "b", "c", "d"], [0.1, 0.9, 0.5, 0.5], 2),  # a tie: the earlier sample wins
             (["a", "", "c", "d", "e", "f"], [5.0, 9.0, float("nan"), 1.0, 2.0, 3.0], 3)]  # invalid samples
    scores = [rng.gauss(0, 1) for _ in range(12)]
    cases.append(([f"r{i}" for i in range(12)], scores, 4))
    for responses, sc, k in cases:
        want = select(responses, sc, k, "per_prompt")
        got = fn(responses, sc, k)
        if list(got) != want:
            raise AssertionError(f"for scores {[round(s, 2) for s in sc]} and k={k}: kept {list(got)}, expected {want}")


@_registered("07.response_nll")
def _check_response_nll(fn) -> None:
    g = _generator()
    for t, v, n_prompt, scale in ((6, 7, 2, 1.0), (9, 5, 4, 3.0), (5, 11, 1, 80.0)):  # the last: log-softmax
        logits, ids = torch.randn(t, v, generator=g) * scale, torch.randint(0, v, (t,), generator=g)
        logp = torch.log_softmax(logits.double(), -1)
        want = -logp[n_prompt - 1:-1].gather(1, ids[n_prompt:, None]).sum()
        got = torch.as_tensor(fn(logits.clone(), ids.clone(), n_prompt), dtype=torch.float64)
        if got.shape == () and torch.isclose(got, want / (t - n_prompt)) and t - n_prompt > 1:
            raise AssertionError("that is the mean per token: the leaderboard sums over the response's tokens")
        unshifted = -logp[n_prompt:].gather(1, ids[n_prompt:, None]).sum()
        if got.shape == () and torch.isclose(got, unshifted) and not torch.isclose(got, want):
            raise AssertionError("the token at position t is predicted by the logits at t - 1: shift by one")
        _close(got, want, f"{t} tokens of which {n_prompt} prompt, vocabulary {v}, logits of scale {scale:g}",
               atol=1e-4)


def _same(got, want) -> bool:
    try:
        _close(got, want, "")
        return True
    except AssertionError:
        return False


def _named(got, mistakes: dict) -> None:
    """Raise the message of the first typical mistake whose value ``got`` reproduces (the right answer differs)."""
    for why, value in mistakes.items():
        if _same(got, value):
            raise AssertionError(why)


def _nucleus(logits: torch.Tensor, temperature: float, top_p: float, keep_crossing: bool = True,
             renormalise: bool = True) -> torch.Tensor:
    probs = torch.softmax(logits.double() / temperature, -1)
    order = probs.sort(-1, descending=True)
    before = order.values.cumsum(-1) - (order.values if keep_crossing else 0)
    keep = before < top_p
    keep[..., 0] = True  # the most likely token always stays
    kept = torch.zeros_like(probs).scatter(-1, order.indices, order.values * keep)
    return kept / kept.sum(-1, keepdim=True) if renormalise else kept


@_registered("01.nucleus")
def _check_nucleus(fn) -> None:
    g = _generator()
    for shape, t, p in (((9,), 1.0, 0.9), ((3, 12), 0.7, 0.8), ((2, 7), 1.6, 0.5), ((5,), 1.0, 1.0), ((4,), 0.5, 1e-6)):
        logits = torch.randn(*shape, generator=g) * 2
        want = _nucleus(logits, t, p)
        got = fn(logits.clone(), t, p)
        if not _same(got, want):
            _named(got, {"the temperature divides the logits (T < 1 sharpens): logits / T": _nucleus(logits * t * t, t, p),
                         "keep the token that crosses top_p too: the nucleus is the smallest set whose probability "
                         "reaches top_p": _nucleus(logits, t, p, keep_crossing=False),
                         "the kept probabilities must sum to 1: renormalise after cutting the tail":
                             _nucleus(logits, t, p, renormalise=False),
                         "top_p is read on the tempered distribution: apply the temperature first": _nucleus(
                             torch.log(_nucleus(logits, 1.0, p).clamp_min(1e-300)) / t, 1.0, 1.0 + 1e-9)})
        _close(got, want, f"logits of shape {shape}, temperature {t:g}, top_p {p:g}")


def _surrogate(logp, old, adv, mask, clip, pick=torch.maximum, clipped=True, masked=True):
    ratio = torch.exp(logp - old)
    loss = pick(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)) if clipped else -adv * ratio
    return (loss * mask).sum() / mask.sum() if masked else loss.mean()


@_registered("05.clipped_surrogate")
def _check_clipped_surrogate(fn) -> None:
    from ..methods.ppo import policy_loss

    g = _generator()
    mask = torch.tensor([[1.0] * 6, [1.0] * 4 + [0.0] * 2, [1.0] * 2 + [0.0] * 4])
    for clip in (0.2, 0.1, 0.3):
        old = torch.randn(3, 6, generator=g).double() - 2
        logp = old + torch.randn(3, 6, generator=g).double() * 0.5  # ratios well inside and outside 1 +/- clip
        adv = torch.randn(3, 6, generator=g).double()
        want = policy_loss(logp, old, adv, mask, clip)[0]
        got = fn(logp.clone(), old.clone(), adv.clone(), mask, clip)
        if not _same(got, want):
            _named(got, {"the sign: the loss is minus the objective (minimising it must raise ratio x A)":
                             -want,
                         "the ratio is not clipped: the surrogate is min(r A, clip(r, 1-eps, 1+eps) A)":
                             _surrogate(logp, old, adv, mask, clip, clipped=False),
                         "that is the optimistic bound: PPO takes the smaller objective, min(r A, clip(r) A), i.e. "
                         "the larger loss": _surrogate(logp, old, adv, mask, clip, pick=torch.minimum),
                         "padding counted: average over the response tokens (mask == 1) only":
                             _surrogate(logp, old, adv, mask, clip, masked=False)})
        _close(got, want, f"clip {clip:g}, advantages of both signs, rows of 6, 4 and 2 response tokens")


@_registered("05.k3")
def _check_k3(fn) -> None:
    from ..methods.ppo import kl_estimate

    g = _generator()
    for scale in (0.1, 1.0, 3.0):
        logp = -torch.rand(4, 7, generator=g).double() * 3
        ref = logp + torch.randn(4, 7, generator=g).double() * scale
        log_r = ref - logp
        want = kl_estimate(logp, ref, "k3")
        got = fn(logp.clone(), ref.clone())
        if not _same(got, want):
            _named(got, {"that is k1 (log pi - log pi_ref), unbiased but negative on some tokens; k3 is "
                         "(r - 1) - log r": logp - ref,
                         "the ratio is upside down: for tokens sampled from pi, r = pi_ref / pi":
                             torch.expm1(-log_r) + log_r,
                         "k3 is (r - 1) - log r: without the - 1 it is not 0 when pi = pi_ref": torch.exp(log_r) - log_r})
        _close(got, want, f"per-token k3 on 4 x 7 tokens, log-ratios of scale {scale:g}")
    same = torch.full((2, 3), -1.5)
    _close(fn(same, same.clone()), torch.zeros(2, 3), "k3 when pi = pi_ref (should be 0 on every token)")


def _dpo(c, r, rc, rr, beta, scaled=True, ref_sign=1.0):
    margin = (c - ref_sign * rc) - (r - ref_sign * rr)
    return -torch.nn.functional.logsigmoid((beta if scaled else 1.0) * margin).mean()


@_registered("06.dpo_loss")
def _check_dpo_loss(fn) -> None:
    from ..methods.dpo import dpo_loss

    g = _generator()
    for n, beta, scale in ((6, 0.1, 5.0), (4, 0.5, 10.0), (5, 2.0, 60.0)):  # the last: a stable log-sigmoid
        c, r, rc, rr = (-torch.rand(n, generator=g).double() * scale * 4 for _ in range(4))
        want = dpo_loss(c, r, rc, rr, beta)
        got = fn(c.clone(), r.clone(), rc.clone(), rr.clone(), beta)
        if not _same(got, want):
            _named(got, {"the margin is not scaled: beta multiplies it inside the sigmoid": _dpo(c, r, rc, rr, beta, False),
                         "the reference is ignored: the implicit reward is beta (log pi - log pi_ref)":
                             _dpo(c, r, rc, rr, beta, ref_sign=0.0),
                         "the reference's sign: subtract its log-probabilities from the policy's":
                             _dpo(c, r, rc, rr, beta, ref_sign=-1.0),
                         "beta goes inside the sigmoid, not in front of the loss":
                             beta * _dpo(c, r, rc, rr, beta, False)})
        _close(got, want, f"dpo_loss on {n} pairs, beta {beta:g}, log-probabilities of scale {scale * 4:g}")
    c, r, zero = torch.tensor([-500.0, -3.0]), torch.tensor([-2.0, -4.0]), torch.zeros(2)  # a margin of -498
    _close(fn(c, r, zero, zero.clone(), 1.0), dpo_loss(c.double(), r.double(), zero, zero, 1.0),
           "dpo_loss with the chosen answer 498 nats behind (needs a stable log-sigmoid)")
    same = -torch.rand(3, generator=g).double()
    _close(fn(same, same.clone(), same.clone(), same.clone(), 0.1), math.log(2),
           "dpo_loss while the policy is still the reference (should be log 2)")


@_registered("07.pass_at_k")
def _check_pass_at_k(fn) -> None:
    from ..core.evaluation import pass_at_k

    rng = random.Random()
    cases = [(10, 3, 1), (10, 3, 4), (16, 1, 8), (8, 6, 4), (8, 0, 3), (5, 5, 5), (300, 2, 150)]
    n = rng.randrange(20, 60)
    cases += [(n, rng.randrange(1, n // 2), rng.randrange(2, n // 2))]
    for n, c, k in cases:
        want = pass_at_k(n, c, k)
        got = float(fn(n, c, k))
        if not _same(got, want):
            _named(got, {"that is the plug-in 1 - (1 - c/n)^k, biased low: draw k of the n samples without "
                         "replacement": 1 - (1 - c / n) ** k,
                         "that is pass@1 whatever k: the chance that k samples hold at least one correct": c / n})
            raise AssertionError(f"pass@{k} from {n} samples of which {c} correct: got {got:.6g}, expected {want:.6g}"
                                 + (" (fewer than k samples fail, so every draw holds a correct one)" if n - c < k else ""))


class StudentError(Exception):
    """An exception the student's function raised in another process, carried back as ``Type: message``."""


def verdict(name: str, fn: Callable, watch: bool = True) -> Tuple[bool, str]:
    """Exercise ``name``'s check on ``fn``: ``(passed, why not)``; never raises. ``watch``: look for borrowing here
    (the grader's isolated runs look for it in the student's process instead)."""
    if name not in CHECKS:
        raise ValueError(f"no exercise called {name!r}; known: {', '.join(sorted(CHECKS))}")
    try:
        CHECKS[name](watched(fn, name) if watch else fn)
        return True, ""
    except NotImplementedError:
        return False, "not implemented yet"
    except Exception as exc:  # the student's code may raise anything; report it, do not stop the notebook
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        plain = isinstance(exc, (AssertionError, StudentError))
        return False, first if plain else f"{type(exc).__name__}: {first}"


def check(name: str, fn: Callable) -> bool:
    """Run exercise ``name``'s check on the student's ``fn``; print PASS or FAIL with the reason; never raise.
    (What the student sees; the grader's verdict comes from its own run, :func:`lablib.grading.recheck`.)"""
    ok, why = verdict(name, fn)
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}")
    return ok
