"""The held-out rule, across labs: no lab trains on a task that any lab holds out.

Every numbers lab that reads the embedded tasks (SFT, LoRA, the RM's pairs, the RL prompts, the leaderboard) is
composed in every profile, and each lab's held-out prompts (instruction + input) are compared with every lab's
training prompts. The split is the tail of the same task list, so this fails the moment one lab's config holds
out fewer tasks than another's (lab 03 once held out 60 where lab 07 held out 120: 60 of lab 07's held-out
prompts were in lab 03's training set).
"""
import functools
import json

import pytest
from omegaconf import OmegaConf

from lablib import config, data, running

TASK_LABS = [lab for lab in running.manifest() if lab.id in ("02", "03", "04", "05", "06", "07")]


@functools.lru_cache(maxsize=None)
def _split(data_json: str, seed: int) -> tuple:
    train, val = data.instruction_examples(OmegaConf.create(json.loads(data_json)), seed)
    return {(e.instruction, e.input) for e in train}, {(e.instruction, e.input) for e in val}


def prompts(lab, profile) -> tuple:
    """``(training prompts, held-out prompts)`` of ``lab`` under ``profile``."""
    cfg = config.load(lab.config, [f"profile={profile}"])
    return _split(json.dumps(OmegaConf.to_container(cfg.data, resolve=True), sort_keys=True), cfg.seed)


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_no_lab_trains_on_a_prompt_any_lab_holds_out(profile):
    splits = {lab.id: prompts(lab, profile) for lab in TASK_LABS}
    for held_by, (_, held) in splits.items():
        for trained_by, (train, _) in splits.items():
            leaked = held & train
            assert not leaked, (f"{profile}: {len(leaked)} of lab {held_by}'s {len(held)} held-out prompts are in lab "
                                f"{trained_by}'s training set, e.g. {sorted(leaked)[0]}")
