"""Exercises: solutions pass their checks, releases fail them, wrong answers are told what is wrong, and lablib's
own function handed in does not pass."""
import functools
import inspect
import math

import nbformat
import pytest
import torch

from lablib import exercises, grading, ppo, raft, reward

SOLUTIONS = {
    "04.bt_loss": "def bt_loss(r_chosen, r_rejected):\n"
                  "    ### BEGIN SOLUTION\n"
                  "    return -torch.nn.functional.logsigmoid(r_chosen - r_rejected).mean()\n"
                  "    ### END SOLUTION\n",
    "05.gae": "def gae(rewards, values, mask, gamma, lam):\n"
              "    ### BEGIN SOLUTION\n"
              "    adv = torch.zeros_like(rewards)\n"
              "    last = torch.zeros(rewards.shape[0])\n"
              "    for t in reversed(range(rewards.shape[1])):\n"
              "        nxt = values[:, t + 1] * mask[:, t + 1] if t + 1 < rewards.shape[1] else 0.0\n"
              "        delta = rewards[:, t] * mask[:, t] + gamma * nxt - values[:, t] * mask[:, t]\n"
              "        last = delta + gamma * lam * last\n"
              "        adv[:, t] = last\n"
              "    adv = adv * mask\n"
              "    return adv, (adv + values * mask) * mask\n"
              "    ### END SOLUTION\n",
    "06.select": "def select(responses, scores, k):\n"
                 "    kept = []\n"
                 "    ### BEGIN SOLUTION\n"
                 "    for start in range(0, len(responses), k):\n"
                 "        ok = [i for i in range(start, start + k) if responses[i].strip() and math.isfinite(scores[i])]\n"
                 "        if ok:\n"
                 "            kept.append(max(ok, key=lambda i: (scores[i], -i)))\n"
                 "    ### END SOLUTION\n"
                 "    return kept\n",
}
FUNCTION = {"04.bt_loss": "bt_loss", "05.gae": "gae", "06.select": "select"}
# (The exercises of labs 01-03 are tested from the lab notebooks themselves, below.)


def run_cells(source: str, name: str) -> bool:
    scope = {"torch": torch, "math": __import__("math")}
    exec(source, scope)
    return exercises.check(name, scope[FUNCTION[name]])


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_the_solution_passes_and_the_released_stub_fails(name, capsys):
    assert run_cells(SOLUTIONS[name], name)
    assert capsys.readouterr().out.strip() == f"PASS {name}"
    released = grading.strip_solutions(SOLUTIONS[name])
    assert "BEGIN SOLUTION" not in released and grading.STUB in released
    assert not run_cells(released, name)
    assert capsys.readouterr().out.strip() == f"FAIL {name}: not implemented yet"


def test_a_wrong_answer_says_why(capsys):
    assert not exercises.check("04.bt_loss", lambda c, r: torch.log(torch.sigmoid(c - r)).mean())  # sign flipped
    assert "expected" in capsys.readouterr().out
    unstable = lambda c, r: -torch.log(torch.sigmoid(c - r)).mean()  # noqa: E731 -- overflows at large margins
    assert not exercises.check("04.bt_loss", unstable)
    assert "got a NaN or inf" in capsys.readouterr().out
    assert not exercises.check("06.select", lambda responses, scores, k: [0])
    assert "kept [0], expected" in capsys.readouterr().out
    F = torch.nn.functional
    unshifted = lambda logits, ids: F.cross_entropy(logits.flatten(0, 1), ids.flatten())  # noqa: E731
    assert not exercises.check("01.next_token_loss", unshifted)
    assert "shift by one" in capsys.readouterr().out

    def in_place(ids, prompt_lens, attention_mask):
        ids[attention_mask == 0] = -100
        return ids
    assert not exercises.check("02.mask_prompt", in_place)
    assert "changed in place" in capsys.readouterr().out
    assert not exercises.check("02.mask_prompt", lambda ids, lens, mask: ids.masked_fill(mask == 0, -100))
    assert "(a prompt token): label" in capsys.readouterr().out
    unscaled = lambda x, w, a, b, alpha: x @ w.T + (x @ a.T) @ b.T  # noqa: E731
    assert not exercises.check("03.lora_forward", unscaled)
    assert "not scaled" in capsys.readouterr().out

    def mean_nll(logits, ids, n_prompt):
        logp = torch.log_softmax(logits, -1)[n_prompt - 1:-1]
        return -logp.gather(1, ids[n_prompt:, None]).mean()
    assert not exercises.check("07.response_nll", mean_nll)
    assert "mean per token" in capsys.readouterr().out


@pytest.mark.parametrize("name,ours", [("04.bt_loss", reward.bt_loss), ("05.gae", ppo.gae),
                                       ("06.select", raft.select)])
def test_handing_in_lablibs_own_function_does_not_pass(name, ours, capsys):
    assert not exercises.check(name, ours)
    assert "lablib's own" in capsys.readouterr().out


# exercise -> (module, attribute path of a reference, how a solution with the exercise's signature calls it)
def _lora_layer(x, W, A, B, alpha):
    import peft

    layer = peft.get_peft_model(torch.nn.Sequential(torch.nn.Linear(W.shape[1], W.shape[0], bias=False)),
                                peft.LoraConfig(r=A.shape[0], lora_alpha=alpha, target_modules=["0"])).base_model.model[0]
    with torch.no_grad():
        layer.base_layer.weight.copy_(W), layer.lora_A["default"].weight.copy_(A), layer.lora_B["default"].weight.copy_(B)
    return layer


REFERENCE_CALLS = {
    "01.next_token_loss": ("transformers.loss.loss_utils", "ForCausalLMLoss",
                           lambda ref: lambda logits, ids: ref(logits, ids, logits.shape[-1])),
    "02.mask_prompt": ("trl.trainer.sft_trainer", "DataCollatorForLanguageModeling",
                       lambda ref: lambda ids, lens, att: ref(pad_token_id=0)([{"input_ids": r.tolist()} for r in ids])["labels"]),
    "03.lora_forward": ("peft.tuners.lora.layer", "Linear.forward",
                        lambda ref: lambda x, W, A, B, alpha: ref(_lora_layer(x, W, A, B, alpha), x)),
    "04.bt_loss": ("lablib.methods.reward", "bt_loss", lambda ref: lambda c, r: ref(c, r)),
    "05.gae": ("lablib.methods.ppo", "gae", lambda ref: lambda *a: ref(*a)),
    "06.select": ("lablib.methods.raft", "select", lambda ref: lambda responses, scores, k: ref(responses, scores, k)),
    "07.response_nll": ("lablib.core.evaluation", "response_nll", lambda ref: lambda logits, ids, n: ref(None, None, [], [])),
    "01.nucleus": ("transformers.generation.logits_process", "TopPLogitsWarper.__call__",
                   lambda ref: lambda logits, t, p: torch.softmax(ref(_top_p(p), None, logits[None] / t)[0], -1)),
    "05.clipped_surrogate": ("lablib.methods.ppo", "policy_loss", lambda ref: lambda *a: ref(*a)[0]),
    "05.k3": ("lablib.methods.ppo", "kl_estimate", lambda ref: lambda logp, r: ref(logp, r, "k3")),
    "06.dpo_loss": ("lablib.methods.dpo", "dpo_loss", lambda ref: lambda *a: ref(*a)),
    "07.pass_at_k": ("lablib.core.evaluation", "pass_at_k", lambda ref: lambda n, c, k: ref(n, c, k)),
}


def _top_p(p):
    from transformers.generation.logits_process import TopPLogitsWarper

    return TopPLogitsWarper(p)
# a trainer (or model) method that computes the same thing, called the way a student might
METHOD_CALLS = {
    "04.bt_loss": ("trl", "RewardTrainer.compute_loss", lambda ref: lambda c, r: ref(object(), None, {})),
    "05.gae": ("lablib.methods.ppo", "PPO.step", lambda ref: lambda *a: ref(object(), [])),
    "06.select": ("lablib.methods.raft", "RAFT.iteration", lambda ref: lambda responses, scores, k: ref(object(), [])),
    "06.dpo_loss": ("trl", "DPOTrainer.compute_loss", lambda ref: lambda *a: ref(object(), None, {})),
    "01.nucleus": ("transformers.generation.logits_process", "TemperatureLogitsWarper.__call__",
                   lambda ref: lambda logits, t, p: ref(_temperature(t), None, logits)),
}


def _temperature(t):
    from transformers.generation.logits_process import TemperatureLogitsWarper

    return TemperatureLogitsWarper(t)


def _resolve(module: str, attr: str):
    import importlib

    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def test_every_exercise_names_its_references_and_they_exist():
    assert set(exercises.REFERENCES) == set(exercises.CHECKS) == set(REFERENCE_CALLS)
    for name, refs in exercises.REFERENCES.items():
        for file, qualname in refs:
            module = file[:-3].replace("/", ".")
            obj = inspect.unwrap(_resolve(module, qualname))  # torch.no_grad wraps some
            assert obj.__code__.co_filename.endswith(file) and obj.__code__.co_qualname == qualname, (name, file)


def _borrowing(name: str, how: str):
    """A solution of exercise ``name`` that reaches a reference in the way ``how``."""
    import functools
    import importlib

    module, attr, call = (METHOD_CALLS if how == "method" else REFERENCE_CALLS)[name]
    ref = _resolve(module, attr)
    if how == "partial":
        return call(functools.partial(ref))
    if how == "importlib":
        return call(functools.reduce(getattr, attr.split("."), importlib.import_module(module)))
    if how == "wrapper":
        inner = call(ref)

        def solution(*args):
            return inner(*args)
        return solution
    if how == "alias":
        my_function = ref  # bound before the check arms anything: attribute swapping would miss it
        return call(my_function)
    return call(ref)


@pytest.mark.parametrize("how", ["direct", "wrapper", "partial", "alias", "importlib", "method"])
@pytest.mark.parametrize("name", sorted(REFERENCE_CALLS))
def test_a_solution_that_borrows_the_reference_fails_and_says_so(name, how, capsys):
    if how == "method" and name not in METHOD_CALLS:
        pytest.skip(f"{name} has no trainer method that computes it")
    assert not exercises.check(name, _borrowing(name, how))
    out = capsys.readouterr().out
    assert out.startswith(f"FAIL {name}: calls ") and " own " in out, out


def test_a_solution_that_switches_the_profiler_off_fails():
    import sys

    def sneaky(c, r):
        sys.setprofile(None)
        return reward.bt_loss(c, r)

    assert not exercises.check("04.bt_loss", sneaky)


@pytest.mark.parametrize("lab_key", ["01", "02", "03", "04", "05", "06", "07"])
def test_each_labs_exercises_pass_as_solutions_and_fail_as_released(lab_key, tmp_path, capsys):
    """The real lab notebooks: run each exercise cell and its check, from the solution and from the release."""
    from lablib import running

    lab = running.find_lab(lab_key)
    released = tmp_path / "student.ipynb"
    assert grading.release(lab.notebook_path, released)["exercises"] >= 1
    for path, verdict in ((lab.notebook_path, "PASS"), (released, "FAIL")):
        cells = nbformat.read(str(path), as_version=4).cells
        for i, cell in enumerate(cells):
            if "exercise" in cell.metadata.get("tags", []):
                scope = {"torch": torch, "exercises": exercises}
                exec(cell.source, scope)
                exec(cells[i + 1].source, scope)
                out = capsys.readouterr().out
                assert out.startswith(verdict), f"{path.name} cell {i}: {out}"
    assert "BEGIN SOLUTION" not in released.read_text()


# --------------------------------------------------------------------------------------------
# The exercises that make a student think: each passes with a solution written from the idea, and each of at
# least three typical wrong answers fails with the message that names its mistake.
# --------------------------------------------------------------------------------------------
def nucleus(logits, temperature, top_p, *, multiply=False, drop_crossing=False, renormalise=True, cut_first=False):
    if cut_first:  # the nucleus chosen on the untempered distribution
        keep = nucleus(logits, 1.0, top_p) > 0
        return torch.softmax(logits.double() / temperature, -1) * keep / (
            torch.softmax(logits.double() / temperature, -1) * keep).sum(-1, keepdim=True)
    probs = torch.softmax(logits.double() * temperature if multiply else logits.double() / temperature, -1)
    p, idx = probs.sort(-1, descending=True)
    before = p.cumsum(-1) - (0 if drop_crossing else p)
    keep = before < top_p
    keep[..., 0] = True
    out = torch.zeros_like(probs).scatter(-1, idx, p * keep)
    return out / out.sum(-1, keepdim=True) if renormalise else out


def surrogate(logp, old, adv, mask, clip, *, sign=1.0, clipped=True, optimistic=False, all_tokens=False):
    ratio = (logp - old).exp()
    a, b = -adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)
    loss = (torch.minimum(a, b) if optimistic else torch.maximum(a, b)) if clipped else a
    return sign * (loss.mean() if all_tokens else (loss * mask).sum() / mask.sum())


def k3(logp, ref, *, inverted=False, minus_one=True):
    log_r = (logp - ref) if inverted else (ref - logp)
    return log_r.exp() - log_r - (1 if minus_one else 0)


def dpo(c, r, rc, rr, beta, *, scale=True, ref=1.0, outside=False, unstable=False):
    margin = (c - ref * rc) - (r - ref * rr)
    z = (beta if scale and not outside else 1.0) * margin
    loss = -(torch.log(torch.sigmoid(z)) if unstable else torch.nn.functional.logsigmoid(z)).mean()
    return beta * loss if outside else loss


def pass_k(n, c, k, *, plug_in=False, ignore_k=False, no_edge=False):
    if plug_in:
        return 1 - (1 - c / n) ** k
    if ignore_k:
        return c / n
    if no_edge:  # C(n-c, k) / C(n, k) with n - c < k: math.comb gives 0 there by chance; ours divides by zero
        return 1 - math.prod(range(n - c - k + 1, n - c + 1)) / math.prod(range(n - k + 1, n + 1)) if n - c >= k \
            else 1 - 1 / (n - c - k)
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1 - k / i
    return 1 - miss


NEW = {  # exercise -> (a right answer, {wrong answer: what its FAIL line must say})
    "01.nucleus": (nucleus, {
        functools.partial(nucleus, multiply=True): "the temperature divides the logits",
        functools.partial(nucleus, drop_crossing=True): "keep the token that crosses top_p",
        functools.partial(nucleus, renormalise=False): "renormalise",
        functools.partial(nucleus, cut_first=True): "apply the temperature first"}),
    "05.clipped_surrogate": (surrogate, {
        functools.partial(surrogate, sign=-1.0): "the sign",
        functools.partial(surrogate, clipped=False): "the ratio is not clipped",
        functools.partial(surrogate, optimistic=True): "optimistic bound",
        functools.partial(surrogate, all_tokens=True): "padding counted"}),
    "05.k3": (k3, {
        lambda logp, ref: logp - ref: "that is k1",
        functools.partial(k3, inverted=True): "upside down",
        functools.partial(k3, minus_one=False): "without the - 1"}),
    "06.dpo_loss": (dpo, {
        functools.partial(dpo, scale=False): "not scaled",
        functools.partial(dpo, ref=0.0): "the reference is ignored",
        functools.partial(dpo, ref=-1.0): "the reference's sign",
        functools.partial(dpo, outside=True): "not in front of the loss",
        functools.partial(dpo, unstable=True): "NaN or inf"}),
    "07.pass_at_k": (pass_k, {
        functools.partial(pass_k, plug_in=True): "plug-in",
        functools.partial(pass_k, ignore_k=True): "pass@1 whatever k",
        functools.partial(pass_k, no_edge=True): "fewer than k samples fail"}),
}


@pytest.mark.parametrize("name", sorted(NEW))
def test_a_solution_from_the_idea_passes(name, capsys):
    assert exercises.check(name, NEW[name][0]), capsys.readouterr().out


@pytest.mark.parametrize("name,wrong,why", [(n, w, y) for n, (_, wrongs) in sorted(NEW.items()) for w, y in wrongs.items()],
                         ids=[f"{n}:{y[:24]}" for n, (_, wrongs) in sorted(NEW.items()) for y in wrongs.values()])
def test_a_typical_wrong_answer_is_told_its_mistake(name, wrong, why, capsys):
    for _ in range(3):  # fresh inputs each time: the mistake is caught on every draw
        assert not exercises.check(name, wrong)
        out = capsys.readouterr().out
        assert out.startswith(f"FAIL {name}: ") and why in out, out


def test_each_new_exercise_has_at_least_three_wrong_answers():
    assert len(NEW) >= 4 and all(len(wrongs) >= 3 for _, wrongs in NEW.values())
    assert sum(name[:2] in {"01", "02", "03", "04", "05", "06", "07"} for name in exercises.CHECKS) >= 11
