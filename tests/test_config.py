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
