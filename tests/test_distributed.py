"""Distributed training: DDP with 2 CPU processes (gloo) through torchrun, and the accelerate configs offered
for GPUs (DDP, FSDP, DeepSpeed ZeRO) are files accelerate accepts."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lablib import config, launch

CONFIGS = sorted((config.conf_dir() / "accelerate").glob("*.yaml"))


def test_ddp_on_two_cpu_processes_trains_one_model(tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one core per process
    out = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "lablib.course.launch", "01",
                          "profile=smoke", "train.max_steps=40", "--out", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 40
    assert ranks[0]["weights"] == ranks[1]["weights"]  # gradients averaged: the replicas never drift apart
    assert ranks[0]["val_loss"] < ranks[0]["val_loss_before"]  # and it learned
    assert ranks[0]["tokens"] == 2 * ranks[0]["tokens_per_rank"]  # each process saw its own half of the data
    assert (tmp_path / "model" / "config.json").exists() and "lab 01 on 2 process(es)" in out.stdout


def test_a_stage_without_a_script_is_refused(capsys):
    assert launch.main(["04", "profile=smoke", "--out", "unused"]) == 2
    assert "lab 04 (reward) has no multi-process stage" in capsys.readouterr().err


def test_the_accelerate_configs_are_valid():
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import launch_command_parser

    options = {a.dest for a in launch_command_parser()._actions}
    kinds = {}
    for path in CONFIGS:
        cfg = ClusterConfig.from_yaml_file(str(path))  # unknown top-level keys raise
        kinds[path.stem] = cfg.distributed_type.value
        for key in [*cfg.fsdp_config, *cfg.deepspeed_config]:
            assert key in options, f"{path.name}: {key} is not an accelerate option"
    assert kinds == {"ddp_cpu": "MULTI_CPU", "ddp": "MULTI_GPU", "fsdp": "FSDP",
                     "deepspeed_zero2": "DEEPSPEED", "deepspeed_zero3": "DEEPSPEED"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_each_config_is_documented_in_the_book(path):
    assert f"`{path.name}`" in (config.home() / "book" / "distributed.md").read_text()
