"""The shipped pretrained model loads offline; the benchmark runs and prints its figures."""
import json
import subprocess
import sys

import torch

from lablib import config, models


def test_smollm2_converts_once_loads_offline_and_is_a_real_model():
    cfg = config.load("lab01", ["model=smollm2", "profile=smoke"])
    folder = models.smollm2_dir()
    assert (folder / "config.json").exists() and models.smollm2_dir() == folder  # cached
    model, tok = models.load_pretrained(cfg.model)
    assert len(tok) == 49152 and tok.eos_token == "<|im_end|>"
    assert 134_000_000 < models.count_params(model)["total"] < 135_000_000
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        loss = model(**ids, labels=ids["input_ids"]).loss.item()
    assert loss < 6.0  # a random 49k-vocab model scores ~10.8 nats/token


def test_a_missing_model_folder_is_a_one_line_error(tmp_path):
    cfg = config.load("lab01", ["model.source=path", f"model.path={tmp_path}"])
    try:
        models.load_pretrained(cfg.model)
    except models.ModelError as exc:
        assert str(exc) == f"{tmp_path}: not a saved model folder (no config.json)"
    else:
        raise AssertionError("expected ModelError")


def test_bench_quick_prints_every_figure(tmp_path):
    """The bench in smoke mode: overhead, papermill and RAFT vs PPO, saved as JSON and as the book's page."""
    out = subprocess.run([sys.executable, str(config.home() / "bench" / "run.py"), "--quick", "--rl", "smoke",
                          "--json", str(tmp_path / "b.json"), "--markdown", str(tmp_path / "b.md")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ratio lablib/bare" in out.stdout and "papermill, kernel start to finish" in out.stdout
    results = json.loads((tmp_path / "b.json").read_text())
    # Figures, not targets: under a loaded test machine they swing either way, so only their sanity is tested.
    ov = results["overhead"]
    assert ov["bare_tokens_per_s"] > 0 and 0 < ov["ratio"] < float("inf")
    assert 0 < results["papermill"]["empty_notebook_s"] < results["papermill"]["trivial_lab_s"]
    assert set(results["speed"]["cli_s"]) >= {"lab list", "lab show 01", "error: unknown lab"}
    assert all(0 < v < 60 for v in results["speed"]["cli_s"].values())
    rl = results["rl"]
    for name in ("ppo", "raft"):
        times = [p[0] for p in rl["curves"][name]]
        assert times[0] == 0 and times == sorted(times) and len(times) >= 2  # evaluated along a running clock
    assert rl["gold"]["ppo_s"] is not None and rl["gold"]["raft_s"] is not None  # both reach the common target
    page = (tmp_path / "b.md").read_text()
    assert page.startswith("# Benchmarks") and "RAFT vs PPO" in page and f"{ov['ratio']:.3f}" in page
