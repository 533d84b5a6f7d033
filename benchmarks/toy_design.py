"""The design study of the toy world: pretrain variants of the toy BERT and measure their transfer.

    python benchmarks/toy_design.py --list                  # the variants and what each changes
    python benchmarks/toy_design.py fresh-6L-long shipped # pretrain (cached) and measure those
    python benchmarks/toy_design.py --smoke                 # tiny pretraining, every code path (CI; no claim)

Each variant is a `PretrainRecipe` (architecture, corpus, steps, learning rate). It is pretrained
once into the cache (`XLT_CACHE_DIR/toy-design/<name>`), then measured on the calibration measures
of `toy_world.py`, seed 1: POS zero-shot accuracy per target from the pretrained encoder and from a
random encoder of the same shape, masked-word accuracy per language, and en->X retrieval per layer.
Every variant is pretrained with 1 thread, so that two can run side by side on 2 cores; the
benchmark README keeps the table of the study that chose the shipped recipe, with the wall times.

`shipped` measures the committed checkpoint (no pretraining); the others are pretrained with the
shipped tokenizer, so that they differ from it only in their recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import BertModel  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from toy_world import masked_words, retrieval_per_layer  # noqa: E402

from xlt_utils.ablation import RANDOM_INIT, REFERENCE  # noqa: E402
from xlt_utils.data.synthetic import cache_dir  # noqa: E402
from xlt_utils.experiments import experiment_config, run_experiment  # noqa: E402
from xlt_utils.models import MODEL_LOAD_KW, load_tokenizer  # noqa: E402
from xlt_utils.pretraining import ASSET_DIR, PretrainRecipe, pretrain  # noqa: E402
from xlt_utils.profiles import get_profile  # noqa: E402
from xlt_utils.verdicts import MAIN_METRIC  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = PretrainRecipe()
SHORT = dict(steps=1500, warmup=100, threads=1)
LONG = dict(steps=6000, warmup=300, threads=1)


def _recipe(layers=6, hidden=128, heads=4, intermediate=384, n_pretrain=110_000, lr=1e-3, **kw):
    corpus = dataclasses.replace(SHIPPED.corpus, n_pretrain=n_pretrain)
    return dataclasses.replace(SHIPPED, corpus=corpus, layers=layers, hidden=hidden, heads=heads,
                               intermediate=intermediate, lr=lr, **kw)


#: name -> (what it changes, recipe): the runs of the study in benchmarks/README.md
VARIANTS: dict[str, tuple[str, PretrainRecipe]] = {
    "repeat-6L": ("the old toy BERT: 6 layers, 1,500 steps over 12,000 sentences per language (each seen 2.3 times)",
                  _recipe(n_pretrain=12_000, **SHORT)),
    "fresh-6L": ("the same with fresh sentences (110,000 per language)", _recipe(**SHORT)),
    "fresh-6L-long": ("6 layers, fresh sentences, 6,000 steps", _recipe(**LONG)),
    "narrow-12L-long": ("12 layers 64 wide (2 heads, FFN 256), fresh sentences, 6,000 steps",
                        _recipe(layers=12, hidden=64, heads=2, intermediate=256, lr=7e-4, **LONG)),
    "shipped": ("the shipped toy BERT: 12 layers 128 wide (FFN 512), fresh sentences, 6,000 steps", SHIPPED),
}


def model_dir(name: str, recipe: PretrainRecipe, progress: bool) -> Path:
    """Pretrain a variant once (with the shipped tokenizer, so that variants differ only in the recipe)."""
    if name == "shipped":
        return ASSET_DIR
    out = cache_dir() / "toy-design" / name
    meta = out / "recipe.json"
    if meta.is_file() and json.loads(meta.read_text())["recipe"] == json.loads(json.dumps(recipe.to_dict())):
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    pretrain(recipe, tmp, progress=progress, tokenizer=load_tokenizer(ASSET_DIR))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def pos_transfer(path: Path, ablation, seed: int, smoke: bool) -> dict[str, float]:
    """The toy profile's POS run with this variant's weights (a profile override: the model is the
    variant's directory, so the run lands in the result store under its own key): {language: accuracy}."""
    sizes = dict(n_train=40, n_eval=20) if smoke else {}
    profile = get_profile("toy", model=str(path), **sizes)
    cfg = experiment_config(profile, task="pos", ablation=ablation, seed=seed, **(dict(epochs=1) if smoke else {}))
    record = run_experiment(cfg, progress=False)
    return {m["language"]: m["value"] for m in record["metrics"] if m["metric"] == MAIN_METRIC["pos"]}


def measure(name: str, recipe: PretrainRecipe, smoke: bool, progress: bool) -> dict:
    t0 = time.perf_counter()
    torch.set_num_threads(recipe.threads)
    path = model_dir(name, recipe, progress)
    t1 = time.perf_counter()
    prof = get_profile("toy")
    n = 20 if smoke else 300
    record = json.loads((path / "recipe.json").read_text())
    res = {"name": name, "recipe": recipe.to_dict(), "final_loss": record["final_loss"],
           "pretrain_s": round(t1 - t0, 1), "pos": pos_transfer(path, REFERENCE, 1, smoke),
           "pos_random": pos_transfer(path, RANDOM_INIT, 1, smoke)}
    tok = load_tokenizer(path)
    res["masked_word_accuracy"] = masked_words(tok, prof.languages, n, path)
    res["retrieval"] = retrieval_per_layer(BertModel.from_pretrained(path, add_pooling_layer=False, **MODEL_LOAD_KW), tok,
                                           prof.languages, prof.source, n)
    res["measure_s"] = round(time.perf_counter() - t1, 1)
    targets = prof.targets
    res["pos_target_mean"] = statistics.fmean(res["pos"][t] for t in targets)
    res["pos_gain_mean"] = statistics.fmean(res["pos"][t] - res["pos_random"][t] for t in targets)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variants", nargs="*", default=[])
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    if args.list:
        for name, (what, _) in VARIANTS.items():
            print(f"{name:<12} {what}")
        return 0
    if args.smoke:
        todo = {"smoke": ("a 2-layer model, 20 steps", _recipe(layers=2, n_pretrain=300, steps=20, warmup=5, threads=1))}
    else:
        unknown = [v for v in args.variants if v not in VARIANTS]
        if unknown or not args.variants:
            ap.error(f"name variants to run (unknown: {unknown}); valid: {', '.join(VARIANTS)}")
        todo = {v: VARIANTS[v] for v in args.variants}
    prof = get_profile("toy")
    for name, (what, recipe) in todo.items():
        res = measure(name, recipe, args.smoke, progress=False)
        gains = {t: res["pos"][t] - res["pos_random"][t] for t in prof.targets}
        best_layer = {t: max(range(len(a)), key=a.__getitem__) for t, a in res["retrieval"].items()}
        print(f"{name}: {what}")
        print(f"  pretraining {res['pretrain_s']:.0f} s, final MLM loss {res['final_loss']:.3f}")
        print("  POS zero-shot (seed 1): " + ", ".join(f"{t} {res['pos'][t]:.1f}" for t in prof.targets)
              + f"; target mean {res['pos_target_mean']:.1f}, source {res['pos'][prof.source]:.1f}")
        print("  gain over a random encoder: " + ", ".join(f"{t} {g:+.1f}" for t, g in gains.items())
              + f"; mean {res['pos_gain_mean']:+.1f}")
        print("  masked-word accuracy: " + ", ".join(f"{k} {v['accuracy']:.1f}" for k, v in res["masked_word_accuracy"].items()))
        print("  best retrieval layer (top-1 %): " + ", ".join(
            f"{t} L{best_layer[t]} {res['retrieval'][t][best_layer[t]]:.1f}" for t in best_layer), flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"toy_design-{name}.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
