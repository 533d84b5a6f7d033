"""Toy profile, per task: fine-tuning throughput and how close the profile's short run gets to the
attainable source-language score.

    python benchmarks/finetune_tasks.py [--seeds 1 2 3] [--out benchmarks/results/finetune_tasks.json]

"Attainable" is measured, not assumed: the same model fine-tuned on all 3,000 synthetic training
sentences for 6 epochs. The profile's run (2,000 sentences, 2 epochs) is reported as a share of it.
Throughput counts training sentences (and useful, non-padding subword tokens) per second.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from xlt_utils.batching import make_examples
from xlt_utils.evaluation import zero_shot_eval
from xlt_utils.experiments import build_model, experiment_config, load_split
from xlt_utils.profiles import get_profile
from xlt_utils.training import fine_tune

ROOT = Path(__file__).resolve().parents[1]
MAIN = {"pos": "accuracy", "ner": "f1", "parse": "las"}


def run(task: str, seed: int, n_train: int | None, epochs: int) -> dict:
    """Fine-tune on the source only; returns throughput and the source test score."""
    cfg = experiment_config(get_profile("toy"), task=task, seed=seed, targets=[], epochs=epochs)
    cfg = replace(cfg, n_train=n_train)
    model, tok = build_model(cfg)
    train = load_split(get_profile("toy"), "en", task, "train", n_train)
    tokens = sum(len(e["input_ids"]) for e in make_examples(tok, train, task)) * epochs
    start = time.perf_counter()
    fine_tune(model, tok, train, cfg.train, progress=False)
    seconds = time.perf_counter() - start
    test = {"en": load_split(get_profile("toy"), "en", task, "test", cfg.n_eval)}
    value = zero_shot_eval(model, tok, test, task).set_index("metric")["value"][MAIN[task]]
    return {"task": task, "seed": seed, "n_train": len(train), "epochs": epochs, "seconds": round(seconds, 2),
            "sentences_per_s": round(len(train) * epochs / seconds, 1), "tokens_per_s": round(tokens / seconds),
            MAIN[task]: round(float(value), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--tasks", nargs="+", default=list(MAIN))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "finetune_tasks.json")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rows = []
    print(f"{'task':6s} {'run':10s} {'sent/s':>8s} {'tok/s':>8s} {'score':>7s}")
    for task in args.tasks:
        for seed in args.seeds:
            for name, n_train, epochs in (("profile", 2000, 2), ("attainable", None, 6)):
                r = run(task, seed, n_train, epochs) | {"run": name}
                rows.append(r)
                print(f"{task:6s} {name:10s} {r['sentences_per_s']:8.1f} {r['tokens_per_s']:8d} {r[MAIN[task]]:7.2f}",
                      flush=True)
    summary = {}
    for task in args.tasks:
        def mean(name, key, task=task):
            vals = [r[key] for r in rows if r["task"] == task and r["run"] == name]
            return sum(vals) / len(vals)

        score, best = mean("profile", MAIN[task]), mean("attainable", MAIN[task])
        summary[task] = {"metric": MAIN[task], "profile_score": round(score, 2), "attainable_score": round(best, 2),
                         "share_of_attainable": round(score / best, 4),
                         "train_sentences_per_s": round(mean("profile", "sentences_per_s"), 1)}
        print(f"{task}: profile {score:.2f} / attainable {best:.2f} = {100 * score / best:.1f}% "
              f"({summary[task]['train_sentences_per_s']} training sentences/s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": rows, "summary": summary, "seeds": args.seeds}, indent=1))


if __name__ == "__main__":
    main()
