"""Benchmarks: print the figures the targets are stated in. Nothing here is a test; tests never time.

    python bench/run.py                    # training-loop overhead, cpu-profile model (≈2 min)
    python bench/run.py --labs smoke       # + each lab's wall time and peak RSS under a profile
    python bench/run.py --papermill        # + papermill's overhead per notebook (kernel start to finish)
    python bench/run.py --rl cpu           # + RAFT vs PPO: wall time to the same held-out gold reward
    python bench/run.py --science cpu      # every lab + the RAFT-vs-PPO race under cpu, and each stage's effect
                                           #   against its target, from the labs' own metrics (≈35 min)
    python bench/run.py --science cpu --from-runs runs   # the same from a finished `make course` (≈5 min)
    python bench/run.py --papermill --speed  # + the speed targets: `lab` start-up and error paths, the smoke
                                           #   course in one `lab run`, grading 20 smoke lab-01 submissions
    python bench/run.py --quick            # a seconds-long version (the test suite runs this)
    python bench/run.py ... --json bench/results.json --markdown book/benchmarks.md   # keep the figures
                                           # (sections not measured keep their figures in the JSON)

Overhead: lablib's pretraining (HF Trainer: scheduler, clipping, logging) against a bare PyTorch loop
(forward, backward, AdamW step) on the same model, batch and data, alternated within one process so that
machine noise hits both alike; the ratio is lablib tokens/s over bare tokens/s (target ≥ 0.90).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from lablib import config, models, training  # noqa: E402


def bare_loop(model, blocks, batch_size: int, lr: float) -> float:
    """Tokens/s of the plainest correct loop."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    start = time.perf_counter()
    for i in range(0, len(blocks), batch_size):
        x = blocks[i:i + batch_size]
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return blocks.numel() / (time.perf_counter() - start)


def lablib_loop(model, blocks, train_cfg, out_dir) -> float:
    result = training.pretrain(model, blocks, blocks[:train_cfg.batch_size], train_cfg, 0, out_dir, resume=False)
    return result["tokens_per_s"]


def overhead(profile: str, steps: int, repeats: int) -> dict:
    cfg = config.load("lab01", [f"profile={profile}", f"train.max_steps={steps}", f"train.eval_every={steps}",
                                "train.progress=false"])
    vocab, b, t = cfg.tokenizer.vocab_size, cfg.train.batch_size, cfg.train.block_size
    blocks = torch.randint(0, vocab, (steps * b, t), generator=torch.Generator().manual_seed(0))
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            torch.manual_seed(r)
            bare.append(bare_loop(models.build_scratch(cfg.model, vocab), blocks, b, cfg.train.lr))
            torch.manual_seed(r)
            ours.append(lablib_loop(models.build_scratch(cfg.model, vocab), blocks, cfg.train, Path(tmp) / str(r)))
    ratios = [o / b_ for o, b_ in zip(ours, bare)]
    return {"profile": profile, "steps": steps, "batch": f"{b}x{t}", "threads": torch.get_num_threads(),
            "bare_tokens_per_s": statistics.median(bare), "lablib_tokens_per_s": statistics.median(ours),
            "ratio": statistics.median(ratios), "ratios": ratios}


def lab_times(profile: str, root: str) -> list:
    """Each lab run in its own process (forced, into the runs folder ``root``): wall time and peak RSS of its
    kernel."""
    from lablib import running

    rows = []
    for lab in running.manifest():
        code = ("import resource, sys, time; from lablib import running; t = time.perf_counter(); "
                f"running.run([{lab.id!r}], ['profile={profile}'], {root!r}, force=True, progress=False, "
                "echo=lambda *_: None); "
                "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"bench: lab {lab.id} failed under profile={profile}: "
                             f"{(out.stderr.strip().splitlines() or ['?'])[-1]}")
        seconds, rss_kb = out.stdout.split()[-2:]
        metrics = json.loads((running.run_dir(lab, profile, root) / "metrics.json").read_text())
        rows.append({"lab": lab.id, "name": lab.name, "profile": profile, "seconds": float(seconds),
                     "peak_rss_gb": int(rss_kb) / 2**20, "metrics": metrics})
        extra = f"val_loss {metrics['val_loss']:.3f}" if "val_loss" in metrics else ""
        print(f"  {lab.id} {lab.name:<14} {float(seconds):7.1f} s   peak RSS {rows[-1]['peak_rss_gb']:.2f} GB   {extra}")
    return rows


def lab_results(profile: str, root: str) -> list:
    """``lab_times`` rows read from a runs folder that already holds every lab under ``profile`` (e.g. after
    ``make course``): each lab's metrics and papermill's wall time; peak RSS is not known there (NaN)."""
    from lablib import running

    rows = []
    for lab in running.manifest():
        folder = running.run_dir(lab, profile, root)
        if not (folder / "metrics.json").exists():
            raise SystemExit(f"bench: no finished lab {lab.id} under {folder}: run `lab --runs {root} run "
                             f"profile={profile}` first")
        nb = json.loads((folder / "notebook.ipynb").read_text())
        rows.append({"lab": lab.id, "name": lab.name, "profile": profile,
                     "seconds": nb["metadata"]["papermill"]["duration"], "peak_rss_gb": float("nan"),
                     "metrics": json.loads((folder / "metrics.json").read_text())})
    return rows


def papermill_overhead(repeats: int = 5) -> dict:
    """Seconds from kernel start to finish for (a) a notebook that does nothing and (b) a trivial lab: the
    parameters cell, ``lablib.start`` (config, seeds, run folder), one metric, ``finish``. Median of ``repeats``."""
    import nbformat

    from lablib import running

    trivial = ('import lablib\nlab = lablib.start("01", overrides, run_dir, runs_root)\n'
               'lab.log(answer=42)\nlab.finish()')
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, code in (("empty_notebook_s", "x = 1"), ("trivial_lab_s", trivial)):
            nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                   "language": "python"}})
            params = nbformat.v4.new_code_cell("overrides = []\nrun_dir = None\nruns_root = None")
            params.metadata["tags"] = ["parameters"]
            nb.cells = [params, nbformat.v4.new_code_cell(code)]
            src = Path(tmp) / f"{name}.ipynb"
            nbformat.write(nb, str(src))
            times = []
            for r in range(repeats):
                start = time.perf_counter()
                running.execute_notebook(src, Path(tmp) / f"out-{r}.ipynb", {"overrides": ["profile=smoke"],
                                                                             "run_dir": f"{tmp}/run-{r}",
                                                                             "runs_root": tmp}, Path(tmp))
                times.append(time.perf_counter() - start)
            out[name] = statistics.median(times)
    return out


# A lab's first cell, as lab 01 writes it: the imports and lablib.start (config, seeds, run folder).
FIRST_CELL = ("import lablib\nfrom lablib import config, domain, evaluation, exercises, generation, models, plots, "
              "tokenization, training\nlab = lablib.start('01', ['profile=smoke'], {run!r}, {root!r})")


def startup(repeats: int = 3) -> dict:
    """Seconds, each in a fresh process (median of ``repeats``): ``import torch`` (the floor), a lab's first cell
    (:data:`FIRST_CELL`), and which heavy modules that cell leaves unimported (bitsandbytes' kernels: deferred)."""
    probe = "import sys; print(int('bitsandbytes.backends' in sys.modules))"
    out, times = {}, {"import_torch_s": [], "first_cell_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for name, code in (("import_torch_s", "import torch"),
                               ("first_cell_s", FIRST_CELL.format(run=f"{tmp}/run-{r}", root=tmp) + "\n" + probe)):
                start = time.perf_counter()
                done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp)
                times[name].append(time.perf_counter() - start)
                if name == "first_cell_s":
                    out["bitsandbytes_imported"] = done.stdout.strip().endswith("1")
    out.update({name: statistics.median(v) for name, v in times.items()})
    out["ratio"] = out["first_cell_s"] / out["import_torch_s"]
    return out


def cli_times(repeats: int = 3) -> dict:
    """Seconds for ``lab`` commands that start no kernel, each in a fresh process (median of ``repeats``):
    what a user waits for before anything runs."""
    commands = {"lab list": ["list"], "lab show 01": ["show", "01"], "error: unknown lab": ["run", "99"],
                "error: bad override": ["run", "01", "train.lr=fast"], "error: unknown key": ["show", "01", "nope=1"]}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in commands.items():
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "lablib.course.cli", "--runs", tmp, *argv], capture_output=True)
                times.append(time.perf_counter() - start)
            out[name] = statistics.median(times)
    return out


def course_time(profile: str) -> dict:
    """``lab run profile=PROFILE`` on an empty runs folder: the whole course, papermill included, as a user
    runs it."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "lablib.course.cli", "--runs", tmp, "run", f"profile={profile}", "--quiet"],
                             capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"bench: the {profile} course failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return {"profile": profile, "seconds": seconds}


def grading_time(n: int, workers: int = 2) -> dict:
    """A class of ``n`` lab-01 submissions (half the released notebook, half the solution), smoke profile,
    graded with ``workers`` at once; lab 01 has no upstream, so this is grading alone."""
    import shutil

    from lablib import grading, running

    lab = running.find_lab("01")
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        subs.mkdir()
        grading.release(lab.notebook_path, Path(tmp) / "released.ipynb")
        for i in range(n):
            shutil.copyfile(Path(tmp) / "released.ipynb" if i % 2 else lab.notebook_path, subs / f"student{i:02d}.ipynb")
        start = time.perf_counter()
        grading.grade(subs, "01", Path(tmp) / "grades", ["profile=smoke"], workers=workers, runs_root=Path(tmp) / "runs",
                      echo=lambda *_: None, sandbox=None if grading.sandbox_available() else False)
        seconds = time.perf_counter() - start
    return {"submissions": n, "workers": workers, "seconds": seconds, "per_submission_s": seconds / n}


def raft_vs_ppo(profile: str, every: int, root: str | None = None) -> dict:
    """PPO and RAFT from the same SFT policy against the same reward model (lab 06's setting, its upstream labs
    taken from the runs folder or run there first), each for its configured length. Every ``every`` steps (PPO) or iteration (RAFT) the policy answers the held-out prompts
    greedily; the clock runs only while training. Reported: the seconds each needs to first reach the highest
    held-out gold reward (and RM score) that both reach."""
    import copy

    from lablib import raft, rl_setting, running

    lab = running.find_lab("06")
    upstream = [k for k in running.with_upstream([lab.id]) if k != lab.id]
    running.run(upstream, [f"profile={profile}"], root, progress=False, echo=lambda *_: None)  # cached if up to date
    cfg = running.compose(lab, [f"profile={profile}"], root)
    with tempfile.TemporaryDirectory() as tmp:
        rl = rl_setting.Setting(cfg)
        start = rl.evaluate(rl.policy)
        curves = {"ppo": [(0.0, start["gold_reward"], start["rm"])], "raft": [(0.0, start["gold_reward"], start["rm"])]}
        ppo, clock = rl.ppo(copy.deepcopy(rl.policy)), 0.0
        for _ in range(0, cfg.ppo.steps, every):
            clock += sum(h["seconds"] for h in ppo.train(rl.train, every, progress=False)[-every:])
            e = rl.evaluate(ppo.policy)
            curves["ppo"].append((clock, e["gold_reward"], e["rm"]))
        run, clock = raft.RAFT(copy.deepcopy(rl.policy), rl.tokenizer, rl.rm_reward, cfg, Path(tmp) / "raft"), 0.0
        for i in range(cfg.raft.iterations):
            batch = run.rng.sample(list(rl.train), min(cfg.raft.batch_size, len(rl.train)))
            clock += run.iteration(batch, i)["seconds"]
            e = rl.evaluate(run.policy)
            curves["raft"].append((clock, e["gold_reward"], e["rm"]))

    def time_to(points, col, target):
        return next((p[0] for p in points if p[col] >= target - 1e-9), None)

    result = {"profile": profile, "start_gold": start["gold_reward"], "start_rm": start["rm"], "curves": curves}
    for col, name in ((1, "gold"), (2, "rm")):
        target = min(max(p[col] for p in curves["ppo"]), max(p[col] for p in curves["raft"]))
        result[name] = {"target": target, "improved": target > curves["ppo"][0][col] + 1e-9,
                        "ppo_s": time_to(curves["ppo"], col, target), "raft_s": time_to(curves["raft"], col, target)}
    return result


def keep_notebooks(profile: str, root: str, coverage_dir: str | None) -> dict:
    """The executed notebooks of a `cpu` run kept for the book (``book/executed/cpu``, with the fingerprint of the
    code each ran), their stderr line counts, and lablib's line coverage under the profile
    (``bench/coverage_cpu.json``, what tests/test_labs.py holds `smoke` to)."""
    from lablib import book, running
    from lablib.course import coverage

    out = {"stderr_lines": {}}
    for lab in running.manifest():
        executed = running.run_dir(lab, profile, root) / "notebook.ipynb"
        if profile == book.KEPT_PROFILE:
            out["stderr_lines"][lab.id] = book.keep(lab, executed)
        else:
            out["stderr_lines"][lab.id] = running.stderr_lines(executed)
    for lab in running.manifest("own"):  # the own track on the example domain, where this run has it
        executed = running.run_dir(lab, profile, root, "example") / "notebook.ipynb"
        if executed.exists():
            keep = profile == book.KEPT_PROFILE
            out["stderr_lines"][f"own/{lab.id}"] = book.keep(lab, executed) if keep else running.stderr_lines(executed)
    if coverage_dir and Path(coverage_dir).exists():
        keys = coverage.covered(coverage_dir)
        coverage.save(keys, Path(__file__).parent / f"coverage_{profile}.json")
        out["covered_lines"] = len(keys)
    return out


def science(rows: list, rl: dict | None) -> list:
    """Each stage's effect against the targets of the science issue, from the labs' own metrics (``lab_times``
    rows of one profile) and the RAFT-vs-PPO race: (stage, target, measured, met)."""
    m = {r["lab"]: r["metrics"] for r in rows}
    out = []

    def add(stage, target, measured, met):
        out.append({"stage": stage, "target": target, "measured": measured, "met": bool(met)})

    if "01" in m:
        a = m["01"]
        add("01 pretraining", "val loss far below unigram; bits per byte",
            f"val {a['val_loss']:.2f} vs unigram {a['unigram_loss']:.2f} nats/token; {a['bits_per_byte']:.2f} bits/byte",
            a["val_loss"] < a["unigram_loss"] - 1.0)
    if "02" in m:
        a = m["02"]
        add("02 SFT", "held-out correct >= 60 %, no kind < 30 %, NLL falls, gold headroom >= 0.2",
            f"correct {a['correct']:.0%} (weakest {a['correct_weakest']:.0%}), NLL {a['nll_before']:.1f} -> "
            f"{a['nll']:.1f}, gold {a['gold_reward']:.2f}",
            a["correct"] >= 0.6 and a["correct_weakest"] >= 0.3 and a["nll"] < a["nll_before"]
            and a["gold_reward"] <= 0.8)
    if "04" in m:
        a = m["04"]
        add("04 RM", "pairs: hand-made >= 90 %, policy's own >= 80 %; within-prompt agreement >= 80 %",
            f"hand-made {a['pair_accuracy_made']:.0%}, policy's own {a['pair_accuracy_sampled']:.0%}, "
            f"within-prompt {a['within_prompt_accuracy']:.0%}",
            a["pair_accuracy_made"] >= 0.9 and a["pair_accuracy_sampled"] >= 0.8 and a["within_prompt_accuracy"] >= 0.8)
    if "05" in m:
        a = m["05"]
        gains = [g - a["gold_reward_before"] for g in a["gold_reward_per_seed"]]
        add("05 PPO", "gold +0.10 on every seed, KL <= 10 nats, RM rises",
            f"gold {', '.join(f'{g:+.2f}' for g in gains)}; KL {a['kl']:.1f}; RM {a['rm_before']:+.2f} -> {a['rm']:+.2f}",
            min(gains) >= 0.1 and a["kl"] <= 10 and a["rm"] > a["rm_before"])
        if "bon_gold" in a:
            add("over-optimisation", "best-of-n: gold peaks while the proxy keeps rising",
                f"n = {', '.join(str(n) for n in a['bon_n'])}: proxy {', '.join(f'{x:+.2f}' for x in a['bon_proxy'])}; "
                f"gold {', '.join(f'{x:.2f}' for x in a['bon_gold'])}",
                a["bon_gold"].index(max(a["bon_gold"])) < len(a["bon_gold"]) - 1 and a["bon_proxy"][-1] >= max(a["bon_proxy"]))
        if "rlvr_pass1_per_seed" in a:
            gains = [p - a["rlvr_pass1_before"] for p in a["rlvr_pass1_per_seed"]]
            add("05 RLVR", "held-out pass@1 +0.15 on every seed",
                f"pass@1 {a['rlvr_pass1_before']:.2f} -> {', '.join(f'{p:.2f}' for p in a['rlvr_pass1_per_seed'])} "
                f"({', '.join(f'{g:+.2f}' for g in gains)})", min(gains) >= 0.15)
        if "ptx_text_nll" in a:
            add("05 PPO-ptx", "plain-text NLL below PPO's (same seed), gold not below it",
                f"text NLL per document: SFT {a['text_nll_sft']:.0f}, PPO {a['text_nll_ppo']:.0f}, PPO-ptx "
                f"{a['ptx_text_nll']:.0f}; gold PPO {a['gold_reward_per_seed'][0]:.2f}, PPO-ptx {a['ptx_gold_reward']:.2f}",
                a["ptx_text_nll"] < a["text_nll_ppo"] and a["ptx_gold_reward"] >= a["gold_reward_per_seed"][0])
    if "06" in m:
        a = m["06"]
        for key, name in (("raft", "06 RAFT"), ("dpo", "06 DPO")):
            gains = [g - a["gold_reward_before"] for g in a[f"{key}_gold_per_seed"]]
            add(name, "gold +0.10 on every seed", ", ".join(f"{g:+.2f}" for g in gains), min(gains) >= 0.1)
        add("06 RAFT vs PPO", "RAFT's reference perplexity below PPO's",
            f"RAFT {a['raft_ppl']:.2f}, PPO {a['ppo_ppl']:.2f}", a["raft_ppl"] < a["ppo_ppl"])
    if rl and rl["gold"]["ppo_s"] and rl["gold"]["raft_s"] is not None:
        g = rl["gold"]
        add("RAFT vs PPO", "wall time to the same held-out gold: RAFT <= 0.7 x PPO",
            f"gold {g['target']:.2f}: RAFT {g['raft_s']:.0f} s, PPO {g['ppo_s']:.0f} s "
            f"({g['raft_s'] / g['ppo_s']:.2f} x)", g["improved"] and g["raft_s"] <= 0.7 * g["ppo_s"])
    if rows:
        total = sum(r["seconds"] for r in rows)
        add(f"{rows[0]['profile']} course", "<= 35 min", f"{total / 60:.1f} min", total <= 2100)
    return out


def _by_profile(rows: list) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(r["profile"], []).append(r)
    return out


def own_track(profile: str, root: str) -> dict:
    """The own track's run on the example domain (``lab --runs ROOT run profile=PROFILE domain=example``): each lab's
    wall time (papermill's) and stderr lines, the win rates of every alignment method against SFT with their 95 %
    intervals and equal-length values, and (under `cpu`) its notebooks kept for the book."""
    from lablib import book, running

    rows, wins = [], {}
    for lab in running.manifest("own"):
        folder = running.run_dir(lab, profile, root, "example")
        if not (folder / "metrics.json").exists():
            raise SystemExit(f"bench: no finished own lab {lab.id} under {folder}: run `lab --runs {root} run "
                             f"profile={profile} domain=example` first")
        nb = json.loads((folder / "notebook.ipynb").read_text())
        keep = profile == book.KEPT_PROFILE
        noise = book.keep(lab, folder / "notebook.ipynb") if keep else running.stderr_lines(folder / "notebook.ipynb")
        rows.append({"lab": lab.id, "name": lab.name, "seconds": nb["metadata"]["papermill"]["duration"],
                     "stderr_lines": noise})
    board = json.loads((running.run_dir(running.find_lab("07", "own"), profile, root, "example") / "artifacts"
                        / "leaderboard.json").read_text())
    from lablib import evaluation

    for r in board:
        if "win_rate" in r and r["checkpoint"] in ("ppo", "raft", "dpo"):
            n = len(r["responses"])
            wins[r["checkpoint"]] = {"rate": r["win_rate"], "n": n, "interval": evaluation.wilson(r["win_rate"], n),
                                     "length_controlled": r["win_rate_lc"], "length": r["length"]}
    return {"profile": profile, "labs": rows, "seconds": sum(r["seconds"] for r in rows), "win_rates": wins}


def machine_speed(steps: int = 30, repeats: int = 3) -> dict:
    """The machine-speed reference: tokens/s of a fixed bare PyTorch training loop (a 4-layer, 256-wide Llama of
    a 2,048-token vocabulary, batch 8 x 128, AdamW), median of ``repeats``. Wall times divided by this machine's
    slowness against the reference speed (:data:`REFERENCE_TOKENS_PER_S`) compare across machines."""
    from types import SimpleNamespace

    shape = SimpleNamespace(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=768, max_position=256)
    blocks = torch.randint(0, 2048, (steps * 8, 128), generator=torch.Generator().manual_seed(0))

    speeds = []
    for r in range(repeats):
        torch.manual_seed(r)
        model = models.build_scratch(shape, 2048)
        bare_loop(model, blocks[:16], 8, 1e-4)  # warm-up
        speeds.append(bare_loop(model, blocks, 8, 1e-4))
    return {"tokens_per_s": statistics.median(speeds), "threads": torch.get_num_threads(),
            "factor": REFERENCE_TOKENS_PER_S / statistics.median(speeds)}


# The speed the reference loop runs at on the machine behind the project's figures (2 cores, 2026-12): a figure
# times a machine's `factor` (reference / its speed) is in "this machine's seconds" on any machine.
REFERENCE_TOKENS_PER_S = 10_000.0


def markdown(results: dict) -> str:
    """The figures as the book's benchmarks page."""
    lines = ["# Benchmarks", "",
             f"Measured on {results['machine']}; the latest run, {results['date']}: `python bench/run.py "
             f"{results.get('args', '')}`. Sections that run did not measure keep the figures of an earlier one "
             "(`--labs`, `--rl`). Speed targets live here, not in tests; rerun the command to refresh.", ""]
    if "machine_speed" in results:
        ms = results["machine_speed"]
        lines += ["## Machine speed", "",
                  f"The reference loop (`bench/run.py: machine_speed`, a fixed bare PyTorch training loop) ran at "
                  f"**{ms['tokens_per_s']:,.0f} tokens/s** on {ms['threads']} threads here; wall times below are "
                  f"also given normalised, as seconds × {ms['factor']:.2f} (reference {REFERENCE_TOKENS_PER_S:,.0f} "
                  "tokens/s / this machine's): on a machine twice as slow, the raw figures double and the normalised "
                  "ones stay.", ""]
    ov = results["overhead"]
    lines += ["## Training-loop overhead", "",
              f"lablib's pretraining (HF `Trainer`) against a bare PyTorch loop on the {ov['profile']} model, batch "
              f"{ov['batch']}, {ov['steps']} steps, {ov['threads']} threads, alternated in one process.", "",
              "| loop | tokens/s |", "|---|---|",
              f"| bare PyTorch | {ov['bare_tokens_per_s']:,.0f} |", f"| lablib (HF Trainer) | {ov['lablib_tokens_per_s']:,.0f} |",
              "", f"Ratio lablib / bare: **{ov['ratio']:.3f}** (target ≥ 0.90).", ""]
    if "papermill" in results:
        pm = results["papermill"]
        lines += ["## Papermill overhead per notebook", "",
                  "| notebook | seconds, kernel start to finish |", "|---|---|",
                  f"| empty (one cell) | {pm['empty_notebook_s']:.2f} |",
                  f"| trivial lab (`lablib.start`, one metric, `finish`) | {pm['trivial_lab_s']:.2f} |", "",
                  "Target ≤ 1.5 s for the papermill machinery itself (the empty notebook); the trivial lab adds "
                  "the import of lablib and its stack.", ""]
    if "speed" in results:
        sp = results["speed"]
        lines += ["## Speed targets", "", "| what | seconds | target |", "|---|---|---|"]
        if "startup" in results:
            st = results["startup"]
            lines += [f"| `import torch` (fresh process) | {st['import_torch_s']:.2f} | the floor |",
                      f"| a lab's first cell: imports + `lablib.start` | {st['first_cell_s']:.2f} "
                      f"({st['ratio']:.2f}x torch) | ≤ 1.5x torch |"]
        lines += [f"| `{name}` (fresh process) | {v:.2f} | {'≤ 1' if name.startswith('error') else '≤ 1.5'} |"
                  for name, v in sp["cli_s"].items()]
        if "papermill" in results:
            lines.append(f"| trivial lab (kernel start to finish) | {results['papermill']['trivial_lab_s']:.2f} | ≤ 4 |")
        if "smoke_course" in sp:
            lines.append(f"| smoke course, `lab run profile=smoke` | {sp['smoke_course']['seconds']:.1f} | ≤ 90 |")
        if "class_grading" in results:
            g = results["class_grading"]
            lines.append(f"| grading a class of {g['submissions']} smoke lab-01 submissions, `--workers {g['workers']}`, "
                         f"sandbox {'on' if g['sandbox'] else 'off'} | {g['seconds']:.1f} "
                         f"({g['per_submission_s']:.1f} each) | reported |")
        if "grading" in sp:
            g = sp["grading"]
            lines.append(f"| grading {g['submissions']} smoke lab-01 submissions, `--workers {g['workers']}` | "
                         f"{g['seconds']:.1f} ({g['per_submission_s']:.1f} each) | ≤ 150 |")
        lines += ["", "Every lab kernel imports torch, transformers, TRL, PEFT and bitsandbytes in its first cell "
                  "(they pull in torch's compiler and distributed packages): that, not the labs' work, is most of "
                  "a smoke lab's time and of a graded submission's.", ""]
    for profile, rows in _by_profile(results.get("labs", [])).items():
        lines += [f"## Labs under the `{profile}` profile", "",
                  "| lab | wall time (s) | peak RSS (GB) |", "|---|---|---|"]
        lines += [f"| {r['lab']} {r['name']} | {r['seconds']:.1f} | {r['peak_rss_gb']:.2f} |" for r in rows]
        lines += [f"| **total** | **{sum(r['seconds'] for r in rows):.1f}** | "
                  f"max {max(r['peak_rss_gb'] for r in rows):.2f} |", ""]
        if any(r["lab"] == "03" and "peak_gb_full_SFT" in r["metrics"] for r in rows):
            m = next(r["metrics"] for r in rows if r["lab"] == "03")
            peaks = ", ".join(f"{k[8:].replace('_', ' ')} {v:.2f}" for k, v in m.items() if k.startswith("peak_gb_"))
            lines += ["Peak RSS is the kernel's. Lab 03 trains SmolLM2 in separate worker processes to measure each "
                      f"method's memory alone; their peaks, as the lab measured them (GB): {peaks}.", ""]
    if results.get("science"):
        lines += ["## Does every stage show its effect?", "",
                  f"From the labs' own metrics under `{results['science_profile']}` (`python bench/run.py --science "
                  f"{results['science_profile']}`), against the targets of the science issue.", "",
                  "| stage | target | measured | met |", "|---|---|---|---|"]
        lines += [f"| {r['stage']} | {r['target']} | {r['measured']} | {'yes' if r['met'] else '**no**'} |"
                  for r in results["science"]]
        lines.append("")
    if "own" in results:
        own, f = results["own"], results.get("machine_speed", {}).get("factor", float("nan"))
        lines += [f"## The own-domain track on the example domain (`{own['profile']}` profile)", "",
                  "`lab run profile=cpu domain=example`; papermill's wall time per lab (normalised: × the machine "
                  "factor above).", "", "| lab | seconds | normalised | stderr lines |", "|---|---|---|---|"]
        lines += [f"| {r['lab']} {r['name']} | {r['seconds']:.0f} | {r['seconds'] * f:.0f} | {r['stderr_lines']} |"
                  for r in own["labs"]]
        lines += [f"| **total** | **{own['seconds']:.0f}** ({own['seconds'] / 60:.1f} min) | {own['seconds'] * f:.0f} | |",
                  "", "Win rates against SFT as the judge sees them (lab 07, held-out prompts, one answer length):", "",
                  "| method | win rate | 95 % interval | at equal length | prompts |", "|---|---|---|---|---|"]
        lines += [f"| {m} | {w['rate']:.0%} | {w['interval'][0]:.0%}–{w['interval'][1]:.0%} | "
                  f"{w['length_controlled']:.0%} | {w['n']} |" for m, w in own["win_rates"].items()]
        lines.append("")
    if "rl" in results:
        rl = results["rl"]
        lines += [f"## RAFT vs PPO: wall time to the same reward (`{rl['profile']}` profile)", "",
                  "Both start from lab 02's SFT policy and train against lab 04's reward model; the held-out prompts "
                  "are answered greedily after each PPO step block / RAFT iteration (not timed).", "",
                  "| reward (held-out) | start | target (best both reach) | PPO (s) | RAFT (s) |", "|---|---|---|---|---|"]
        for name in ("gold", "rm"):
            r = rl[name]
            fmt = lambda s: "—" if s is None else f"{s:.1f}"  # noqa: E731
            lines.append(f"| {name} | {rl['start_' + name]:.3f} | {r['target']:.3f}"
                         f"{'' if r['improved'] else ' (no gain)'} | {fmt(r['ppo_s'])} | {fmt(r['raft_s'])} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smoke sizes, a few seconds")
    ap.add_argument("--labs", metavar="PROFILES", help="also time every lab under these profiles (smoke,cpu)")
    ap.add_argument("--papermill", action="store_true", help="also papermill's overhead per notebook")
    ap.add_argument("--rl", metavar="PROFILE", help="also RAFT vs PPO wall time to the same reward")
    ap.add_argument("--speed", action="store_true",
                    help="also the speed targets: lab commands' start-up, the smoke course, grading 20 submissions")
    ap.add_argument("--grading", type=int, metavar="N",
                    help="also grade a class of N smoke lab-01 submissions with --workers 2 (sandboxed when bwrap is)")
    ap.add_argument("--science", metavar="PROFILE",
                    help="every lab and the RAFT-vs-PPO race under PROFILE, and each stage's effect against its target")
    ap.add_argument("--from-runs", metavar="DIR",
                    help="with --science: read the labs' metrics and times from this runs folder instead of rerunning")
    ap.add_argument("--coverage", metavar="DIR",
                    help="with --science: lablib's coverage data of the profile's run (LABLIB_COVERAGE=DIR lab run ...); "
                         "without --from-runs the labs record it there themselves")
    ap.add_argument("--own", metavar="PROFILE", help="the own track's run on the example domain under PROFILE "
                    "(its times, win rates, and under cpu its notebooks kept for the book); needs --own-from")
    ap.add_argument("--own-from", metavar="DIR", default="runs",
                    help="with --own: the runs folder of `lab run profile=PROFILE domain=example` (default runs)")
    ap.add_argument("--rl-every", type=int, default=2, help="PPO steps between evaluations (default 2)")
    ap.add_argument("--json", metavar="FILE", help="write the results here too")
    ap.add_argument("--markdown", metavar="FILE", help="and as a Markdown page (the book's benchmarks page)")
    args = ap.parse_args()
    if args.science:
        if not args.from_runs:
            args.labs = ",".join(dict.fromkeys((args.labs.split(",") if args.labs else []) + [args.science]))
        args.rl = args.science
    sys.stdout.reconfigure(line_buffering=True)  # progress shows as it happens, also into a log file
    results = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}",
               "args": " ".join(a for a in sys.argv[1:] if not a.endswith((".json", ".md")) and a not in ("--json", "--markdown"))}
    results["machine_speed"] = ms = machine_speed(8 if args.quick else 30, 1 if args.quick else 3)
    print(f"machine speed: the reference loop at {ms['tokens_per_s']:,.0f} tokens/s on {ms['threads']} threads "
          f"(normalised figures = seconds x {ms['factor']:.2f})")
    if args.own:
        results["own"] = own = own_track(args.own, args.own_from)
        print(f"\nthe own track ({args.own} profile, example domain), papermill's wall time per lab:")
        for r in own["labs"]:
            print(f"  {r['lab']} {r['name']:<14} {r['seconds']:7.1f} s  (normalised {r['seconds'] * ms['factor']:7.1f})"
                  f"  {r['stderr_lines']} stderr lines")
        print(f"  total             {own['seconds']:7.1f} s = {own['seconds'] / 60:.1f} min (target <= 30 min)")
        for m, w in own["win_rates"].items():
            print(f"  {m:>5} vs SFT: {w['rate']:.0%} [{w['interval'][0]:.0%}, {w['interval'][1]:.0%}] on {w['n']} "
                  f"prompts, at equal length {w['length_controlled']:.0%} (target >= 60 %)")
    ov = overhead("smoke", 20, 1) if args.quick else overhead("cpu", 60, 3)
    results["overhead"] = ov
    print(f"training-loop overhead ({ov['profile']} model, batch {ov['batch']}, {ov['steps']} steps, "
          f"{ov['threads']} threads):")
    print(f"  bare PyTorch loop   {ov['bare_tokens_per_s']:>10,.0f} tokens/s")
    print(f"  lablib (HF Trainer) {ov['lablib_tokens_per_s']:>10,.0f} tokens/s")
    print(f"  ratio lablib/bare   {ov['ratio']:>10.3f}   (target >= 0.90; per repeat: "
          f"{', '.join(f'{r:.3f}' for r in ov['ratios'])})")

    kept = json.loads(Path(args.json).read_text()) if args.json and Path(args.json).exists() else {}

    def save() -> None:  # after every section: an interrupted bench keeps what it measured
        merged = {**kept, **results}  # sections not measured this time keep their last figures
        if args.json:
            Path(args.json).write_text(json.dumps(merged, indent=2) + "\n")
        if args.markdown:
            Path(args.markdown).write_text(markdown(merged) + "\n")

    save()
    if args.papermill or args.quick:
        results["papermill"] = papermill_overhead(2 if args.quick else 5)
        pm = results["papermill"]
        print(f"\npapermill, kernel start to finish: empty notebook {pm['empty_notebook_s']:.2f} s (target <= 1.5), "
              f"trivial lab {pm['trivial_lab_s']:.2f} s")
        save()
    if args.speed or args.quick:
        results["startup"] = st = startup(1 if args.quick else 5)
        print(f"\nstart-up, fresh process: import torch {st['import_torch_s']:.2f} s, a lab's first cell (imports + "
              f"lablib.start) {st['first_cell_s']:.2f} s = {st['ratio']:.2f}x (target <= 1.5x); bitsandbytes "
              f"{'imported' if st['bitsandbytes_imported'] else 'deferred'}")
        speed = results["speed"] = {"cli_s": cli_times(1 if args.quick else 3)}
        print("\nlab commands that start no kernel (fresh process each; targets: errors <= 1 s, list/show <= 1.5 s):")
        for name, s_ in speed["cli_s"].items():
            print(f"  {name:<22} {s_:5.2f} s")
        save()
        if not args.quick:
            speed["smoke_course"] = course_time("smoke")
            print(f"\nsmoke course, `lab run profile=smoke` on an empty runs folder: {speed['smoke_course']['seconds']:.1f} s "
                  "(target <= 90)")
            save()
            speed["grading"] = g = grading_time(20)
            print(f"grading 20 smoke lab-01 submissions, --workers 2: {g['seconds']:.1f} s, "
                  f"{g['per_submission_s']:.1f} s each (target <= 150 s)")
            save()
    if args.grading:
        from lablib import grading

        results["class_grading"] = g = {**grading_time(args.grading), "sandbox": grading.sandbox_available()}
        print(f"\ngrading {args.grading} smoke lab-01 submissions, --workers 2 (sandbox: {g['sandbox']}): "
              f"{g['seconds']:.1f} s, {g['per_submission_s']:.1f} s per submission")
        save()
    labs_root = tempfile.TemporaryDirectory(prefix="bench-runs-")  # the labs' runs, reused by --rl when it can
    profiles = args.labs.split(",") if args.labs else []
    if profiles:
        results["labs"] = []
    if args.science and not args.from_runs:  # the science run records lablib's coverage (tests/test_labs.py)
        args.coverage = args.coverage or tempfile.mkdtemp(prefix="bench-coverage-")
    for profile in profiles:
        print(f"\nlabs under the {profile} profile (papermill included):")
        if profile == args.science and args.coverage:
            Path(args.coverage).mkdir(parents=True, exist_ok=True)
            os.environ["LABLIB_COVERAGE"] = args.coverage
        rows = lab_times(profile, labs_root.name)
        os.environ.pop("LABLIB_COVERAGE", None)
        results["labs"] += rows
        print(f"  total             {sum(r['seconds'] for r in rows):7.1f} s")
        save()
    if args.science and args.from_runs:
        results["labs"] = [r for r in results.get("labs", []) if r["profile"] != args.science]
        results["labs"] += lab_results(args.science, args.from_runs)
    if args.rl:
        root = args.from_runs if args.science and args.from_runs else labs_root.name if args.rl in profiles else None
        results["rl"] = rl = raft_vs_ppo(args.rl, args.rl_every, root)
        print(f"\nRAFT vs PPO ({args.rl} profile), seconds of training to the best held-out reward both reach:")
        for name in ("gold", "rm"):
            r = rl[name]
            print(f"  {name:>4}: start {rl['start_' + name]:.3f} -> target {r['target']:.3f}: PPO {r['ppo_s']} s, "
                  f"RAFT {r['raft_s']} s{'' if r['improved'] else '  (neither improved on the SFT policy)'}")
        save()
    if args.science:
        results["notebooks"] = kept = keep_notebooks(args.science, args.from_runs or labs_root.name, args.coverage)
        print(f"\nstderr lines per executed {args.science} notebook (target 0): "
              + ", ".join(f"{k} {v}" for k, v in kept["stderr_lines"].items())
              + (f"; {kept['covered_lines']} lablib lines covered" if "covered_lines" in kept else ""))
        results["science_profile"] = args.science
        results["science"] = science([r for r in results["labs"] if r["profile"] == args.science], results["rl"])
        noise = sum(kept["stderr_lines"].values())
        results["science"].append({"stage": "notebooks", "target": "no stderr in any executed notebook",
                                   "measured": f"{noise} lines", "met": noise == 0})
        print(f"\neach stage's effect ({args.science} profile):")
        for r in results["science"]:
            print(f"  {'ok ' if r['met'] else 'NO '} {r['stage']:<18} {r['measured']}   (target: {r['target']})")
    save()


if __name__ == "__main__":
    main()
