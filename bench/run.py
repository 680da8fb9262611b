"""Benchmarks: print the figures the targets are stated in. Nothing here is a test; tests never time.

    python bench/run.py                    # training-loop overhead, cpu-profile model (≈2 min)
    python bench/run.py --labs smoke       # + each lab's wall time and peak RSS under a profile
    python bench/run.py --quick            # a seconds-long version (the test suite runs this)

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


def lab_times(profile: str) -> list:
    """Each lab run in its own process (forced, private runs folder): wall time and peak RSS of its kernel."""
    from lablib import running

    rows = []
    with tempfile.TemporaryDirectory() as root:
        for lab in running.manifest():
            code = ("import resource, sys, time; from lablib import running; t = time.perf_counter(); "
                    f"running.run([{lab.id!r}], ['profile={profile}'], {root!r}, force=True, progress=False, "
                    "echo=lambda *_: None); "
                    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            seconds, rss_kb = out.stdout.split()[-2:]
            metrics = json.loads((running.run_dir(lab, profile, root) / "metrics.json").read_text())
            rows.append({"lab": lab.id, "name": lab.name, "profile": profile, "seconds": float(seconds),
                         "peak_rss_gb": int(rss_kb) / 2**20, "metrics": metrics})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smoke sizes, a few seconds")
    ap.add_argument("--labs", metavar="PROFILE", help="also time every lab under this profile")
    ap.add_argument("--json", metavar="FILE", help="write the results here too")
    args = ap.parse_args()
    results = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}"}
    ov = overhead("smoke", 20, 1) if args.quick else overhead("cpu", 60, 3)
    results["overhead"] = ov
    print(f"training-loop overhead ({ov['profile']} model, batch {ov['batch']}, {ov['steps']} steps, "
          f"{ov['threads']} threads):")
    print(f"  bare PyTorch loop   {ov['bare_tokens_per_s']:>10,.0f} tokens/s")
    print(f"  lablib (HF Trainer) {ov['lablib_tokens_per_s']:>10,.0f} tokens/s")
    print(f"  ratio lablib/bare   {ov['ratio']:>10.3f}   (target >= 0.90; per repeat: "
          f"{', '.join(f'{r:.3f}' for r in ov['ratios'])})")
    if args.labs:
        results["labs"] = lab_times(args.labs)
        print(f"\nlabs under the {args.labs} profile (papermill included):")
        for r in results["labs"]:
            extra = f"val_loss {r['metrics']['val_loss']:.3f}" if "val_loss" in r["metrics"] else ""
            print(f"  {r['lab']} {r['name']:<14} {r['seconds']:7.1f} s   peak RSS {r['peak_rss_gb']:.2f} GB   {extra}")
        print(f"  total             {sum(r['seconds'] for r in results['labs']):7.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
