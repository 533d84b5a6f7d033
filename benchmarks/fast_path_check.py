"""Do our speed choices change the result? The toy profile's POS model, fine-tuned and evaluated
over seeds by our fast path and by a plain one; the source-language (en) test accuracy of both.

    python benchmarks/fast_path_check.py            # toy profile, seeds 1 2 3 (a few minutes on 2 cores)
    python benchmarks/fast_path_check.py --smoke    # tiny: 64 sentences, 1 epoch, 2 seeds (CI; no claim)

*Ours*: `xlt_utils.training.fine_tune` (length-grouped batches, padding to each batch's longest
sentence, bf16 autocast where the hardware has it, fused AdamW) and `zero_shot_eval` (one
length-sorted pass under inference mode, batches capped by padded tokens).

*Plain*: written here: random batches (a new permutation each epoch), every sentence padded to
128 subwords, fp32, torch's single-tensor AdamW (no foreach, no fused kernel); evaluation in input
order, batches of 32 padded to 128, under `torch.no_grad`. Everything else is the same: the
initial weights (the same `build_model` config), the data, learning rates (encoder and head),
weight decay, warm-up and linear decay, epochs, batch size, gradient clipping and the loss.

The issue's requirement: the speed choices change no result beyond noise, i.e. the two paths'
mean source score differ by at most one standard deviation over seeds (the sample standard
deviation of the seeds' scores, pooled over the two paths: sqrt((s_ours^2 + s_plain^2) / 2)).

Also reported: both evaluation paths on both models (their predictions should agree), and a
diagnostic third path, *ours with random batches*: `fine_tune` exactly as ours but with
`length_bucket=1`, i.e. random batches instead of length-grouped ones (each epoch's permutation is
plain's, cut the same way, so the batches hold the same sentences as plain's, padded dynamically
and taken in another order). It tells the batching choice apart from the others (padding,
precision, optimizer kernel): ours vs ours-random is the effect of length-grouped batches,
ours-random vs plain the effect of everything else.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from xlt_utils.batching import collate, make_examples  # noqa: E402
from xlt_utils.evaluation import predict_languages, score  # noqa: E402
from xlt_utils.experiments import build_model, experiment_config, load_split  # noqa: E402
from xlt_utils.precision import hardware_precision  # noqa: E402
from xlt_utils.profiles import get_profile  # noqa: E402
from xlt_utils.training import fine_tune, set_seed, task_loss  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TASK = "pos"
PAD_TO = 128  # the plain path pads every sentence to this many subwords (XTREME's max_seq_length)
PATHS = ("ours", "plain", "ours_random_batches")


def log(msg: str) -> None:
    print(f"[fast-path {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pad_to(batch: dict, width: int, pad_id: int) -> dict:
    """A collated batch padded further, to `width` subwords and `width` words per sentence."""
    out = {}
    for key, t in batch.items():
        fill = {"input_ids": pad_id, "labels": -100}.get(key, 0)
        padded = torch.full((t.shape[0], width), fill, dtype=t.dtype)
        padded[:, : t.shape[1]] = t
        out[key] = padded
    return out


def plain_fine_tune(model, tok, train, tc) -> list[float]:
    """The plain recipe: random batches padded to 128, fp32, single-tensor AdamW; same schedule."""
    set_seed(tc.seed)
    examples = make_examples(tok, train, model.task, tc.max_length)
    if max(len(e["input_ids"]) for e in examples) > PAD_TO:
        raise ValueError(f"a training sentence is longer than {PAD_TO} subwords")
    head = {id(p) for p in model.head.parameters()}
    groups = [{"params": [p for p in model.parameters() if p.requires_grad and id(p) not in head], "lr": tc.lr},
              {"params": [p for p in model.head.parameters() if p.requires_grad], "lr": tc.head_lr or tc.lr}]
    params = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW(groups, lr=tc.lr, weight_decay=tc.weight_decay, foreach=False, fused=False)
    steps_per_epoch = -(-len(examples) // tc.batch_size)
    total = steps_per_epoch * tc.epochs
    warm = max(1, int(tc.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / (total - warm))))
    history = []
    for epoch in range(tc.epochs):
        model.train()
        perm = torch.randperm(len(examples), generator=torch.Generator().manual_seed(tc.seed * 1000 + epoch)).tolist()
        losses = []
        for start in range(0, len(perm), tc.batch_size):
            idx = perm[start : start + tc.batch_size]
            batch = pad_to(collate([examples[i] for i in idx], tok.pad_token_id), PAD_TO, tok.pad_token_id)
            loss = task_loss(model, batch)  # fp32: no autocast
            loss.backward()
            if tc.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, tc.max_grad_norm)
            opt.step(), sched.step(), opt.zero_grad()
            losses.append(loss.item())
        history.append(sum(losses) / len(losses))
    model.eval()
    return history


@torch.no_grad()
def plain_predict(model, tok, sentences, batch_size: int = 32) -> list[list[str]]:
    """Input order, fixed batches padded to 128, fp32, no_grad."""
    from xlt_utils.data.records import label_set

    labels = label_set(model.task)
    examples = make_examples(tok, sentences, model.task, PAD_TO)
    model.eval()
    preds = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = pad_to(collate(chunk, tok.pad_token_id), PAD_TO, tok.pad_token_id)
        words, _ = model.word_states(batch["input_ids"], batch["attention_mask"], batch["first_subword"])
        ids = model.head(words).argmax(-1)
        preds += [[labels[t] for t in ids[b, : len(e["first_subword"])].tolist()] for b, e in enumerate(chunk)]
    return preds


def run_seed(seed: int, n_train: int | None, n_eval: int | None, epochs: int | None) -> dict:
    cfg = experiment_config(get_profile("toy"), task=TASK, seed=seed, targets=[])
    if epochs:
        cfg = replace(cfg, train=replace(cfg.train, epochs=epochs))
    n_train = n_train or cfg.n_train
    n_eval = n_eval or cfg.n_eval
    train = load_split(get_profile("toy"), cfg.source, TASK, "train", n_train)
    test = load_split(get_profile("toy"), cfg.source, TASK, "test", n_eval)
    initial, tok = build_model(cfg)
    res = {"seed": seed, "n_train": len(train), "n_eval": len(test), "epochs": cfg.train.epochs}
    models = {}
    for path in PATHS:
        model = copy.deepcopy(initial)  # every path starts from the same weights
        t0 = time.perf_counter()
        if path == "ours":
            loss = fine_tune(model, tok, train, cfg.train, progress=False)
        elif path == "ours_random_batches":
            loss = fine_tune(model, tok, train, replace(cfg.train, length_bucket=1), progress=False)
        else:
            loss = plain_fine_tune(model, tok, train, cfg.train)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        if path != "plain":
            preds = predict_languages(model, tok, {cfg.source: test}, precision=cfg.train.precision)[cfg.source]
        else:
            preds = plain_predict(model, tok, test)
        eval_s = time.perf_counter() - t0
        value = score(TASK, test, preds)["accuracy"]
        res[path] = {"accuracy": value, "train_s": train_s, "eval_s": eval_s, "train_loss": loss}
        models[path] = (model, preds)
        log(f"seed {seed} {path}: accuracy {value:.2f}, train {train_s:.1f} s, eval {eval_s:.2f} s")
    # Both evaluation paths on both main models: the evaluation alone changes no prediction.
    agree = {}
    for path in ("ours", "plain"):
        model, preds = models[path]
        other = (plain_predict(model, tok, test) if path == "ours"
                 else predict_languages(model, tok, {cfg.source: test}, precision=cfg.train.precision)[cfg.source])
        same = sum(a == b for p, q in zip(preds, other, strict=True) for a, b in zip(p, q, strict=True))
        agree[path] = same / sum(len(p) for p in preds)
    res["eval_paths_word_agreement"] = agree
    return res


def compare(out: dict, a: str, b: str) -> dict:
    """Mean of a minus mean of b, the pooled standard deviation, and whether |delta| <= it."""
    delta = out[a]["mean"] - out[b]["mean"]
    pooled = ((out[a]["std"] ** 2 + out[b]["std"] ** 2) / 2) ** 0.5
    return {"delta_mean": delta, "pooled_std": pooled, "within_one_std": bool(abs(delta) <= pooled)}


def summarise(runs: list[dict]) -> dict:
    out = {}
    for path in PATHS:
        values = [r[path]["accuracy"] for r in runs]
        out[path] = {"accuracies": values, "mean": statistics.mean(values),
                     "std": statistics.stdev(values) if len(values) > 1 else float("nan"),
                     "train_s": sum(r[path]["train_s"] for r in runs), "eval_s": sum(r[path]["eval_s"] for r in runs)}
    out.update(compare(out, "ours", "plain"))  # the requirement
    out["diagnostic"] = {  # ours - ours_random_batches: length grouping; ours_random_batches - plain: the rest
        "length_grouped_batches": compare(out, "ours", "ours_random_batches"),
        "everything_else": compare(out, "ours_random_batches", "plain"),
    }
    out["train_speedup"] = out["plain"]["train_s"] / out["ours"]["train_s"]
    out["eval_speedup"] = out["plain"]["eval_s"] / out["ours"]["eval_s"]
    out["min_eval_paths_word_agreement"] = min(min(r["eval_paths_word_agreement"].values()) for r in runs)
    return out


def table(summary: dict, runs: list[dict]) -> str:
    o, p, q = summary["ours"], summary["plain"], summary["ours_random_batches"]
    lines = [f"{'toy POS, source (en) test accuracy':40s} {'ours':>10s} {'plain':>10s}   {'ours, random batches':>20s}"]
    for r in runs:
        lines.append(f"{'  seed ' + str(r['seed']):40s} {r['ours']['accuracy']:10.2f} {r['plain']['accuracy']:10.2f}"
                     f"   {r['ours_random_batches']['accuracy']:20.2f}")
    lines += [
        f"{'  mean ± std over seeds':40s} {o['mean']:6.2f} ± {o['std']:.2f} {p['mean']:6.2f} ± {p['std']:.2f}"
        f"   {q['mean']:13.2f} ± {q['std']:.2f}",
        f"{'  |Δ mean| vs one std (pooled)':40s} {abs(summary['delta_mean']):10.2f} {summary['pooled_std']:10.2f}"
        f"   within one std: {'YES' if summary['within_one_std'] else 'NO'}",
        f"{'  fine-tuning seconds (all seeds)':40s} {o['train_s']:10.1f} {p['train_s']:10.1f}"
        f"   plain / ours {summary['train_speedup']:.1f}x",
        f"{'  evaluation seconds (all seeds)':40s} {o['eval_s']:10.2f} {p['eval_s']:10.2f}"
        f"   plain / ours {summary['eval_speedup']:.1f}x",
        f"{'  eval paths agree on (words, min)':40s} {summary['min_eval_paths_word_agreement']:10.2%}",
        "  diagnostic, |Δ mean| vs one std (pooled):",
    ]
    labels = {"length_grouped_batches": "    ours vs ours, random batches", "everything_else": "    ours, random batches vs plain"}
    for name, c in summary["diagnostic"].items():
        lines.append(f"{labels[name]:40s} {abs(c['delta_mean']):10.2f} {c['pooled_std']:10.2f}"
                     f"   within one std: {'YES' if c['within_one_std'] else 'NO'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="64 training sentences, 1 epoch, seeds 1 2: code paths only")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default 1 2 3 (smoke: 1 2)")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON (default benchmarks/results/fast_path_check.json, _smoke.json with --smoke)")
    args = ap.parse_args(argv)
    seeds = args.seeds or ([1, 2] if args.smoke else [1, 2, 3])
    if len(seeds) < 2:
        ap.error("a standard deviation over seeds needs at least two seeds")
    sizes = dict(n_train=64, n_eval=32, epochs=1) if args.smoke else dict(n_train=None, n_eval=None, epochs=None)
    out_path = args.out or RESULTS / ("fast_path_check_smoke.json" if args.smoke else "fast_path_check.json")
    started = time.perf_counter()
    runs = [run_seed(s, **sizes) for s in seeds]
    summary = summarise(runs)
    text = table(summary, runs)
    print(text)
    res = {"meta": {"mode": "smoke" if args.smoke else "toy profile", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "seeds": seeds, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "bf16_autocast": hardware_precision("cpu") == "bf16", "python": platform.python_version(),
                    "total_seconds": time.perf_counter() - started, **sizes},
           "runs": runs, "summary": summary, "table": text.splitlines()}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(res, indent=1))
    print(f"results written to {out_path}")
    return res


if __name__ == "__main__":
    main()
