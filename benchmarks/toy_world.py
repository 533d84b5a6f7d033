"""Calibration of the toy world: does cross-lingual transfer really come from pretraining?

    python benchmarks/toy_world.py                 # 3 tasks x {pretrained, random encoder} x seeds 1-3
    python benchmarks/toy_world.py --smoke         # tiny: 1 task, 1 seed, 40 sentences (CI; no claim)
    make calibrate                                 # the same as the first line

For every target language and task it fine-tunes the toy profile's model on the source (English)
and evaluates zero-shot, once from the pretrained toy BERT (the reference) and once from a randomly
initialised encoder of the same shape (`random_init`), over three seeds; the difference is the gain
that pretraining brings to transfer, which is what the toy world must show before its C1-C5
verdicts can teach anything. The runs go through `run_experiment`, so they land in (and are read
from) the same result store as the chapters and the paper grid.

It also describes the pretrained model itself:
- masked-word accuracy per language (one masked subword per test sentence), next to the accuracy of
  always guessing the language's most frequent subword;
- en->X retrieval of parallel test sentences per layer: the nearest neighbour (cosine) of each
  English sentence's mean-pooled state among the target's sentences, top-1 accuracy, next to
  chance (1/n);
- the typological distance of each target to the source (`typological_distance`: word order,
  adjective order, adposition side, script) and the Spearman correlation across targets between it
  and the zero-shot score (mBERT's transfer is graded by exactly these).

The acceptance thresholds of the toy world (checked and printed, never tuned on C1-C5):
- POS: mean zero-shot accuracy over the targets >= 65; gain over the random encoder >= 10 points for
  every target and >= 20 on average;
- NER and parsing: mean gain >= 10 points, and no target below the random encoder by more than its
  seed spread.

Writes `benchmarks/results/toy_world.json` (or `--out`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from xlt_utils.data.synthetic import TOY_LANGUAGES, load_toy, typological_distance  # noqa: E402
from xlt_utils.evaluation import mean_pooled_states  # noqa: E402
from xlt_utils.experiments import experiment_config, run_experiment  # noqa: E402
from xlt_utils.pretrained import load_encoder  # noqa: E402
from xlt_utils.pretraining import masked_word_accuracy, toy_model_dir  # noqa: E402
from xlt_utils.profiles import get_profile  # noqa: E402
from xlt_utils.verdicts import MAIN_METRIC  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("pos", "ner", "parse")


def zero_shot(task: str, encoder: str, seeds, smoke: bool) -> dict[int, dict[str, float]]:
    """{seed: {language: main metric}} for the pretrained encoder ("reference") or "random_init"."""
    out = {}
    for seed in seeds:
        cfg = experiment_config(get_profile("toy"), task=task, ablation=encoder, seed=seed, **(dict(epochs=1) if smoke else {}))
        if smoke:
            cfg = dataclasses.replace(cfg, n_train=40, n_eval=20)
        record = run_experiment(cfg, progress=False)
        out[seed] = {m["language"]: m["value"] for m in record["metrics"] if m["metric"] == MAIN_METRIC[task]}
    return out


def _mean_std(values) -> tuple[float, float]:
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def transfer_table(runs: dict, targets, source: str) -> dict:
    """Per task and language: pretrained and random mean/std over seeds, and the gain."""
    table = {}
    for task, by_encoder in runs.items():
        rows = {}
        for lang in (source, *targets):
            pre = _mean_std(s[lang] for s in by_encoder["reference"].values())
            rnd = _mean_std(s[lang] for s in by_encoder["random_init"].values())
            rows[lang] = {"pretrained": pre[0], "pretrained_std": pre[1], "random": rnd[0], "random_std": rnd[1],
                          "gain": pre[0] - rnd[0]}
        table[task] = rows
    return table


@torch.inference_mode()
def retrieval_per_layer(encoder, tokenizer, languages, source: str, n: int,
                        centred: bool = False) -> dict[str, list[float]]:
    """en->X top-1 retrieval accuracy (%) of parallel test sentences at every layer (0 = embeddings).

    Each source sentence's mean-pooled state is matched to its nearest neighbour (cosine) among the
    target's n sentences. `centred=True` first subtracts each language's mean vector at that layer
    (Libovicky et al., 2020): what is left is the part of the representation that is not a
    language's constant offset.
    """
    states = {lang: mean_pooled_states(encoder, tokenizer, [s.words for s in load_toy(lang, "test")[:n]])
              for lang in languages}
    if centred:
        states = {lang: x - x.mean(dim=1, keepdim=True) for lang, x in states.items()}
    out = {}
    for lang in languages:
        if lang == source:
            continue
        accs = []
        for layer in range(states[source].shape[0]):
            a = torch.nn.functional.normalize(states[source][layer], dim=-1)
            b = torch.nn.functional.normalize(states[lang][layer], dim=-1)
            accs.append(100 * (a @ b.T).argmax(1).eq(torch.arange(len(a))).float().mean().item())
        out[lang] = accs
    return out


def masked_words(tokenizer, languages, n: int, path: Path) -> dict[str, dict[str, float]]:
    """Masked-word accuracy per language, and the most-frequent-subword baseline on the same data."""
    out = {}
    for lang in languages:
        sents = [s.words for s in load_toy(lang, "test")[:n]]
        ids = [i for e in tokenizer(sents, is_split_into_words=True, add_special_tokens=False)["input_ids"] for i in e]
        baseline = 100 * Counter(ids).most_common(1)[0][1] / len(ids)
        out[lang] = {"accuracy": 100 * masked_word_accuracy(sents, path=path), "most_frequent": baseline}
    return out


def acceptance(table: dict, targets) -> list[tuple[str, bool, str]]:
    """The toy world's acceptance checks: (name, met, numbers)."""
    checks = []
    pos = table["pos"]
    mean_pos = statistics.fmean(pos[t]["pretrained"] for t in targets)
    gains = {t: pos[t]["gain"] for t in targets}
    checks.append(("POS mean zero-shot accuracy >= 65", mean_pos >= 65, f"{mean_pos:.1f}"))
    checks.append(("POS gain >= 10 for every target", min(gains.values()) >= 10,
                   f"min {min(gains.values()):.1f} ({min(gains, key=gains.get)})"))
    mean_gain = statistics.fmean(gains.values())
    checks.append(("POS mean gain >= 20", mean_gain >= 20, f"{mean_gain:.1f}"))
    for task in ("ner", "parse"):
        if task not in table:
            continue
        rows = table[task]
        g = statistics.fmean(rows[t]["gain"] for t in targets)
        checks.append((f"{task} mean gain >= 10", g >= 10, f"{g:.1f}"))
        below = [t for t in targets
                 if rows[t]["gain"] < -max(rows[t]["pretrained_std"], rows[t]["random_std"])]
        checks.append((f"{task}: no target below the random encoder by more than its seed spread", not below,
                       ", ".join(below) or "none"))
    return checks


def gradedness(table: dict, targets, source: str) -> dict:
    """Spearman correlation across targets between the zero-shot score and the typological distance."""
    dist = {t: typological_distance(t, source) for t in targets}
    out = {}
    for task, rows in table.items():
        scores = [rows[t]["pretrained"] for t in targets]
        rho = spearmanr(scores, [dist[t] for t in targets]).statistic
        easiest, hardest = max(targets, key=lambda t: rows[t]["pretrained"]), min(targets, key=lambda t: rows[t]["pretrained"])
        out[task] = {"spearman_score_vs_distance": rho, "easiest": easiest, "hardest": hardest,
                     "easiest_score": rows[easiest]["pretrained"], "hardest_score": rows[hardest]["pretrained"]}
    return {"distance": dist, "tasks": out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--n-retrieval", type=int, default=300, help="parallel test sentences for retrieval")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks every code path, no claim")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "toy_world.json")
    args = ap.parse_args(argv)
    if args.smoke:
        args.tasks, args.seeds, args.n_retrieval = ["pos"], [1], 20
    profile = get_profile("toy")
    source, targets = profile.source, profile.targets
    t0 = time.perf_counter()
    runs = {task: {enc: zero_shot(task, enc, args.seeds, args.smoke) for enc in ("reference", "random_init")}
            for task in args.tasks}
    table = transfer_table(runs, targets, source)
    t1 = time.perf_counter()
    encoder, tok = load_encoder(profile)
    retrieval = retrieval_per_layer(encoder, tok, profile.languages, source, args.n_retrieval)
    retrieval_c = retrieval_per_layer(encoder, tok, profile.languages, source, args.n_retrieval, centred=True)
    mlm = masked_words(tok, profile.languages, args.n_retrieval, toy_model_dir())
    t2 = time.perf_counter()
    checks = acceptance(table, targets) if "pos" in table and not args.smoke else []
    graded = gradedness(table, targets, source)

    print(f"toy world calibration: seeds {args.seeds}, {len(targets)} targets, model {toy_model_dir().name}")
    for task, rows in table.items():
        print(f"\n{task} ({MAIN_METRIC[task]}), mean ± std over seeds")
        print(f"{'language':<9}{'pretrained':>16}{'random encoder':>18}{'gain':>8}")
        for lang, r in rows.items():
            role = " (source)" if lang == source else ""
            print(f"{lang + role:<9}{r['pretrained']:>9.1f} ± {r['pretrained_std']:<4.1f}"
                  f"{r['random']:>11.1f} ± {r['random_std']:<4.1f}{r['gain']:>+8.1f}")
        tg = [rows[t] for t in targets]
        print(f"{'targets':<9}{statistics.fmean(r['pretrained'] for r in tg):>9.1f}{'':7}"
              f"{statistics.fmean(r['random'] for r in tg):>11.1f}{'':7}{statistics.fmean(r['gain'] for r in tg):>+8.1f}")
        g = graded["tasks"][task]
        print(f"graded: Spearman(score, typological distance) = {g['spearman_score_vs_distance']:+.2f}; "
              f"easiest {g['easiest']} {g['easiest_score']:.1f}, hardest {g['hardest']} {g['hardest_score']:.1f}")
    print("\ntypological distance to the source:", graded["distance"])
    print("\nmasked-word accuracy per language (most-frequent-subword baseline):")
    print("  " + ", ".join(f"{lang} {v['accuracy']:.1f} ({v['most_frequent']:.1f})" for lang, v in mlm.items()))
    chance = 100 / args.n_retrieval
    print(f"\nen->X retrieval top-1 (%) per layer, {args.n_retrieval} parallel sentences, chance {chance:.2f}:")
    for name, per_layer in (("plain", retrieval), ("language-centred", retrieval_c)):
        print(f"  {name}")
        for lang, accs in per_layer.items():
            print(f"    {lang}: " + " ".join(f"{a:5.1f}" for a in accs))
    if checks:
        print("\nacceptance:")
        for name, met, numbers in checks:
            print(f"  [{'met' if met else 'MISSED'}] {name}: {numbers}")
    result = {
        "seeds": args.seeds, "tasks": args.tasks, "source": source, "targets": list(targets),
        "transfer": table, "runs": runs, "graded": graded, "masked_word_accuracy": mlm,
        "retrieval": {"n": args.n_retrieval, "chance": chance, "per_layer": retrieval, "centred_per_layer": retrieval_c},
        "acceptance": [{"check": n, "met": m, "numbers": v} for n, m, v in checks],
        "languages": {c: TOY_LANGUAGES[c].describe() for c in profile.languages},
        "timings_s": {"fine_tuning": round(t1 - t0, 1), "description": round(t2 - t1, 1)},
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "smoke": args.smoke,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
