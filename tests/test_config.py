import pytest

from lablib import config


def test_smoke_profile_scales_every_group():
    cfg = config.load("lab01", ["profile=smoke"])
    assert cfg.profile == "smoke" and cfg.lab == "01"
    assert cfg.model.hidden_size == 64 and cfg.tokenizer.vocab_size == 384 and cfg.data.n_docs == 400


def test_cpu_is_the_default_profile_and_overrides_win():
    cfg = config.load("lab01", ["train.max_steps=7", "seed=3"])
    assert cfg.profile == "cpu" and cfg.train.max_steps == 7 and cfg.seed == 3


def test_config_is_read_only():
    cfg = config.load("lab01", ["profile=smoke"])
    from omegaconf.errors import ReadonlyConfigError

    with pytest.raises(ReadonlyConfigError):
        cfg.train.lr = 1.0
    with pytest.raises(ReadonlyConfigError):
        cfg["seed"] = 3
    assert cfg.train.lr != 1.0 and cfg.seed != 3


@pytest.mark.parametrize("override, message", [
    ("train.lr=abc", "train.lr"),
    ("train.nope=1", "nope"),
    ("model=nope", "model/nope"),
    ("profile=laptop", "profile/laptop"),
    ("model.hidden_size=65", "model.hidden_size"),
    ("data.val_fraction=1.5", "data.val_fraction"),
    ("train.block_size=512", "train.block_size"),
    ("data=text", "data.path"),
    ("nokey", "key=value"),
])
def test_bad_overrides_fail_with_one_line_naming_the_key(override, message):
    with pytest.raises(config.ConfigError) as err:
        config.load("lab01", [override])
    text = str(err.value)
    assert message in text and "\n" not in text


def test_unknown_config_name():
    with pytest.raises(config.ConfigError, match="no config"):
        config.load("lab99")


def test_summary_is_sorted_and_stable():
    a = config.summary(config.load("lab01", ["profile=smoke"]))
    b = config.summary(config.load("lab01", ["profile=smoke"]))
    assert a == b and a.index("data:") < a.index("model:") < a.index("train:")


def test_lab_show_explain_names_every_file_and_line_that_sets_a_key(capsys):
    """`lab show LAB --explain KEY`: the schema's default, each YAML file in the order Hydra applies it, the command
    line; the last one sets the value."""
    from lablib import cli

    assert cli.main(["show", "02", "--explain", "train.max_steps", "model=smollm2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "train.max_steps = 80  (lab 02, profile cpu)"
    where = [line.split()[0] for line in lines[1:]]
    assert [w.split(":")[0] for w in where] == ["lablib/core/schema.py", "conf/profile/cpu.yaml", "conf/sizes/lab02_cpu.yaml",
                                                "conf/model_profile/lab02_smollm2_cpu.yaml"]
    assert lines[-1].endswith("80   <- sets it")
    for w in where:  # each named line really sets the key
        path, line = w.rsplit(":", 1)
        assert "max_steps" in (config.home() / path).read_text().splitlines()[int(line) - 1]
    assert cli.main(["show", "05", "--explain", "domain.split.smoke.held_out", "ppo.steps=3"]) == 0
    out = capsys.readouterr().out
    assert "conf/domain/numbers.yaml:" in out and "24   <- sets it" in out
    assert cli.main(["show", "02", "--explain", "train.nope"]) == 2
    assert "--explain train.nope: lab 02 has no such key" in capsys.readouterr().err


def test_old_keys_fail_in_one_line_naming_the_new_ones():
    for old, new in (("data.n_tasks", "domain.split"), ("data.max_val", "data.val_docs"), ("track", "domain=")):
        with pytest.raises(config.ConfigError, match=rf"{old} is gone; use {new}"):
            config.load("lab02", [f"{old}=1"])
