"""Best-of-n against a proxy, the KL bound, and the Gao et al. fits; the RL headroom table."""
import math

import pytest

from lablib import data, generation, overoptimisation, rl_setting


def test_kl_bound():
    assert overoptimisation.kl_bound(1) == 0.0
    assert overoptimisation.kl_bound(64) == pytest.approx(math.log(64) - 63 / 64)
    for n in (1, 2, 7.5, 64, 1000):  # the inverse, exact where exp(kl + 1) is not
        assert overoptimisation.n_for_kl(overoptimisation.kl_bound(n)) == pytest.approx(n)
    assert overoptimisation.n_for_kl(overoptimisation.kl_bound(4)) != pytest.approx(math.exp(overoptimisation.kl_bound(4) + 1), rel=0.1)


def test_best_of_n_keeps_the_proxys_favourite(monkeypatch):
    tasks = data.make_tasks(2, seed=0, kinds=["max"])
    # per prompt four samples; the proxy prefers longer text, gold is 1 for the right answer only
    samples = {0: ["9", "1", "22", "333"], 1: ["4444", "9", "1", "2"]}
    monkeypatch.setattr(generation, "respond", lambda model, tok, many, *a, **k: samples[0] + samples[1])
    proxy = lambda ex, rs: [float(len(r)) for r in rs]  # noqa: E731
    gold = lambda ex, rs: [float(r == "9") for r in rs]  # noqa: E731
    rows = overoptimisation.best_of_n(None, None, tasks, proxy, gold, 4, 1.0, 8, seed=0)
    assert [r["n"] for r in rows] == [1, 2, 4]
    assert rows[0]["gold"] == pytest.approx(2 / 8) and rows[0]["proxy"] == pytest.approx(14 / 8)
    # n=2 groups: (9,1)->9 (22,333)->333 (4444,9)->4444 (1,2)->1: gold 1/4
    assert rows[1]["gold"] == pytest.approx(1 / 4) and rows[1]["proxy"] == pytest.approx((1 + 3 + 4 + 1) / 4)
    assert rows[2]["gold"] == 0.0 and rows[2]["proxy"] == 3.5 and rows[2]["kl"] == overoptimisation.kl_bound(4)
    with pytest.raises(ValueError, match="power of two"):
        overoptimisation.best_of_n(None, None, tasks, proxy, gold, 3, 1.0, 8, seed=0)


@pytest.mark.parametrize("form, fn, peak", [
    ("bon", lambda d: d * (0.4 - 0.1 * d), 2.0),
    ("rl", lambda d: d * (0.4 - 0.2 * math.log(d)), math.e),
])
def test_fit_gao_recovers_the_curve_and_its_peak(form, fn, peak):
    d = [0.3, 0.7, 1.1, 1.6, 2.2, 3.0]
    fit = overoptimisation.fit_gao(d, [fn(x) for x in d], form)
    assert fit["alpha"] == pytest.approx(0.4) and fit["peak"]["d"] == pytest.approx(peak)
    rising = overoptimisation.fit_gao(d, [0.3 * x + 0.01 * x * x for x in d], "bon")
    assert rising["beta"] < 0 and rising["peak"] is None
    assert overoptimisation.fit_gao([0.0, 1.0], [0.0, 0.1])["peak"] is None  # one usable point: no fit


def test_headroom_counts_pass_at_k_and_mixed_groups(monkeypatch):
    tasks = data.make_tasks(2, seed=0, kinds=["max"])
    right = [t.output for t in tasks]
    scripted = [right[0], right[0] + "\nok", "0", "0",  # one fully right of four: mixed
                "0", "0", "0", "0"]  # none right: not mixed
    monkeypatch.setattr(generation, "respond", lambda *a, **k: scripted)
    room = rl_setting.headroom(None, None, tasks, lambda ex, rs: [float(len(r)) for r in rs], 4, 1.0, 8, seed=0)
    for key in ("max", "all"):
        r = room[key]
        assert (r["pass@1"], r["pass@K"], r["mixed"]) == (1 / 8, 1 / 2, 1 / 2)
        assert r["sampled_gold"] == pytest.approx(1.5 / 8) and r["pairs"] == 5
