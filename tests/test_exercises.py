"""Exercises: solutions pass their checks, releases fail them, wrong answers are told what is wrong, and lablib's
own function handed in does not pass."""
import inspect

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
}
# a trainer (or model) method that computes the same thing, called the way a student might
METHOD_CALLS = {
    "04.bt_loss": ("trl", "RewardTrainer.compute_loss", lambda ref: lambda c, r: ref(object(), None, {})),
    "05.gae": ("lablib.methods.ppo", "PPO.step", lambda ref: lambda *a: ref(object(), [])),
    "06.select": ("lablib.methods.raft", "RAFT.iteration", lambda ref: lambda responses, scores, k: ref(object(), [])),
}


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
