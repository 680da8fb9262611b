"""The held-out rule, across labs and domains: no lab trains on a task that any lab holds out.

Every lab that reads a domain's tasks (SFT, LoRA, the RM's pairs, the RL prompts, the leaderboard) is composed
in every profile, for both domains, and each lab's held-out prompts (instruction + input) are compared with
every lab's training prompts. The split is defined once per domain and profile (``domain.split``), so this
fails the moment a lab holds out other tasks than another (lab 03 once held out 60 where lab 07 held out 120:
60 of lab 07's held-out prompts were in lab 03's training set).

Lab 01's corpus must never state the answer to a held-out task: no sentence that describes a held-out list
under its held-out operation ("The largest of 3, 9, 1 is 9."). The generator draws around the held-out set;
without that (``exclude=()``, as before), the cpu corpus stated the answers of 65 of the 120 held-out tasks
(gpu: 427 of 600; smoke: none of 24, by luck).
"""
import functools
import re

import pytest

from lablib import config, data, domain, running

DOMAINS = {"numbers": [], "example": ["domain=example"]}
PROFILES = ["smoke", "cpu", "gpu"]


def task_labs(track):
    return [lab for lab in running.manifest(track) if lab.id in ("02", "03", "04", "05", "06", "07")]


def prompts(lab, profile, name) -> tuple:
    """``(training prompts, held-out prompts)`` of ``lab`` under ``profile`` in domain ``name``: the
    instructions, and for a lab that trains a reward model the RM's and the judge's pairs too."""
    return _prompts(lab.config, lab.id, profile, name)


@functools.lru_cache(maxsize=None)
def _prompts(config_name, lab_id, profile, name) -> tuple:
    cfg = config.load(config_name, [f"profile={profile}", *DOMAINS[name]])
    split = domain.instructions(cfg)
    train = {data.user_turn(e) for e in split.train}
    if lab_id == "04" and (pairs := domain.pairs(cfg)) is not None:
        train |= {data.user_turn(p.example) for p in pairs.rm + pairs.judge}
    return frozenset(train), frozenset(data.user_turn(e) for e in split.val)


@pytest.mark.parametrize("name", DOMAINS)
@pytest.mark.parametrize("profile", PROFILES)
def test_no_lab_trains_on_a_prompt_any_lab_holds_out(profile, name):
    labs = task_labs(domain.named(name).track)
    splits = {lab.id: prompts(lab, profile, name) for lab in labs}
    assert len({held for _, held in splits.values()}) == 1, f"{profile}/{name}: the labs hold out different prompts"
    for held_by, (_, held) in splits.items():
        for trained_by, (train, _) in splits.items():
            leaked = held & train
            assert not leaked, (f"{profile}/{name}: {len(leaked)} of lab {held_by}'s {len(held)} held-out prompts are "
                                f"in lab {trained_by}'s training set, e.g. {sorted(leaked)[0]!r}")


def stated(cfg, docs) -> list:
    """The held-out tasks whose answers ``docs`` state."""
    sentences = {s for d in docs for s in re.split(r"(?<=[.!]) ", d)}
    return [t for t in domain.named("numbers").tasks(cfg)[1]
            if any(s in sentences for s in data.stated_answers(t.kind, t.numbers))]


@pytest.mark.parametrize("profile", PROFILES)
def test_lab_01s_corpus_never_states_a_held_out_answer(profile):
    cfg = config.load("lab01", [f"profile={profile}"])
    train, val = domain.corpus(cfg)
    leaked = stated(cfg, train + val)
    assert not leaked, f"{profile}: lab 01's corpus states the answers of {len(leaked)} held-out tasks: {leaked[0]}"


def test_the_corpus_check_would_catch_a_corpus_not_drawn_around_the_held_out_set():
    cfg = config.load("lab01", ["profile=cpu"])
    d = cfg.data
    plain = data.make_corpus(d.n_docs, cfg.seed, d.min_numbers, d.max_numbers, d.max_value)  # no exclusions
    assert len(stated(cfg, plain)) == 65  # of the 120 held-out tasks: what lab 01's cpu corpus stated before


def test_lab_01_reads_the_same_held_out_tasks_as_lab_02():
    for profile in PROFILES:
        tasks = [domain.named("numbers").tasks(config.load(f"lab0{i}", [f"profile={profile}"]))[1] for i in (1, 2)]
        assert tasks[0] == tasks[1], profile


@pytest.mark.parametrize("profile", PROFILES)
def test_no_policy_trains_on_a_near_duplicate_of_a_held_out_prompt(profile):
    """Your files: a paraphrase of a held-out prompt (word-set Jaccard >= domain.near_duplicate) is the held-out
    prompt for a model that learns facts. No prompt a policy trains on -- SFT's and RL's instructions, DPO's pairs
    (the RM's share) -- is one; the judge's pairs may hold them (the judge trains no policy)."""
    cfg = config.load("own06", [f"profile={profile}", "domain=example"])
    split, pairs = domain.instructions(cfg), domain.pairs(cfg)
    held = [data.user_turn(e) for e in split.val] + [data.user_turn(p.example) for p in pairs.val]
    trained = [data.user_turn(e) for e in split.train] + [data.user_turn(p.example) for p in pairs.rm]
    near = data.near_duplicates(trained, held, str, cfg.domain.near_duplicate)
    assert not near, f"{profile}: {len(near)} trained prompts are near-duplicates of held-out ones, e.g. {trained[near[0]]!r}"
    assert split.near_duplicates + pairs.near_duplicates > 0  # the example domain words its facts many ways
