"""Zero-shot evaluation speed (section 2 of benchmarks/speed.py), sentences/s on the PUD test sets:
`xlt_utils.evaluation.zero_shot_eval` (one pass over all languages, batches capped by padded tokens,
scoring included) vs one `predict` call per file (the old path) vs the `transformers`
token-classification pipeline, one call per file, same weights; and our share of the matmul peak of
the precision in use (FLOPs = 2 x non-embedding parameters x useful tokens).

    python benchmarks/speed_eval.py [--smoke] [--precision auto|bf16|fp32] [--data ...] [--out ...]
"""

from __future__ import annotations

import gc
import random
import time

from speed_common import hf_copy, log, non_embedding_params


def add_eval_share(ev: dict, peak: dict, precision: str, non_embedding_parameters: int) -> None:
    """Our zero-shot evaluation's model FLOP/s as a share of the peak of the precision in use.

    FLOPs = 2 x non-embedding parameters x useful tokens: the forward pass, counted as the
    fine-tuning's 6 x (forward 2 + backward 4) is, over the real subword tokens only (padding is not
    useful work), attention scores not counted (`attention_gflop_not_counted` says how much that
    leaves out); the time is the whole `zero_shot_eval` call (encoding and scoring included).
    """
    o = ev["ours"]
    o["model_gflop"] = 2 * non_embedding_parameters * o["useful_tokens"] / 1e9
    o["model_gflops"] = o["model_gflop"] / o["seconds"]
    o["share_of_peak"] = o["model_gflops"] / peak[f"{precision}_gflops"]
    ev["peak_precision"] = precision



OLD_PATH_NO_CAP = 10**9  # a token cap no batch reaches: the old path capped batches by sentences only


def pud_subsample(pud: dict, per_file: int | None, seed: int = 0) -> dict:
    """The same sent_ids from every PUD file (files are aligned by sent_id, not by position)."""
    common = sorted(set.intersection(*[{s.sent_id for s in sents} for sents in pud.values()]))
    keep = set(common if not per_file else random.Random(seed).sample(common, min(per_file, len(common))))
    return {lang: [s for s in sents if s.sent_id in keep] for lang, sents in pud.items()}


def _padding(lengths: list[int], batches: list[list[int]]) -> dict:
    """Batches, useful (real) tokens and processed (padded) tokens of a batching."""
    useful = sum(lengths)
    processed = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return {"batches": len(batches), "useful_tokens": useful, "processed_tokens": processed,
            "useful_share_of_processed": useful / processed}


def bench_eval(model, config, tok, pud: dict, cfg: dict, precision: str = "auto") -> dict:
    """zero_shot_eval's one pass over all PUD files vs the transformers pipeline, one call per file."""
    from transformers import pipeline

    from xlt_utils.batching import make_examples
    from xlt_utils.evaluation import MAX_TOKENS, predict, token_budget_batches, zero_shot_eval

    data = pud_subsample(pud, cfg["eval_per_file"])
    n_sent = sum(len(v) for v in data.values())
    hf = hf_copy(model, config).eval()  # same weights as ours; eval mode, as from_pretrained gives
    pipe = pipeline("token-classification", model=hf, tokenizer=tok)
    # every timed side warmed up once on the same few sentences
    warm = {lang: sents[:2] for lang, sents in list(data.items())[: max(1, cfg["eval_warmup_sentences"] // 2)]}
    zero_shot_eval(model, tok, warm, "pos", precision=precision)
    for sents in warm.values():
        predict(model, tok, sents, batch_size=128, max_tokens=OLD_PATH_NO_CAP, precision=precision)
    pipe([s.text for sents in warm.values() for s in sents])

    # What the batches look like (not timed): one pass over all files vs one predict call per file.
    lengths = {lang: [len(e["input_ids"]) for e in make_examples(tok, sents, "pos")] for lang, sents in data.items()}
    flat = [n for ls in lengths.values() for n in ls]
    one_pass = _padding(flat, token_budget_batches(flat, 128, MAX_TOKENS["cpu"]))
    # attention scores and weighted sums, 4 x layers x hidden x length^2 per sentence (forward): not
    # in the 2 x parameters x tokens count, reported to show how little that leaves out
    attention_gflop = 4 * config.num_hidden_layers * config.hidden_size * sum(n * n for n in flat) / 1e9
    # the old path: predict once per file, batches of up to 128 sentences and no token cap
    per_file = [_padding(ls, token_budget_batches(ls, 128, None)) for ls in lengths.values()]
    per_file = {k: sum(p[k] for p in per_file) for k in ("batches", "useful_tokens", "processed_tokens")}
    per_file["useful_share_of_processed"] = per_file["useful_tokens"] / per_file["processed_tokens"]

    log(f"evaluation: ours (zero_shot_eval, one pass) on {len(data)} files x {cfg['eval_per_file'] or 'all'} sentences")
    t0 = time.perf_counter()
    table = zero_shot_eval(model, tok, data, "pos", precision=precision)
    ours_s = time.perf_counter() - t0
    log("evaluation: ours, one predict call per file, no token cap (the previous zero_shot_eval)")
    t0 = time.perf_counter()
    n_words = 0
    for sents in data.values():
        n_words += sum(len(p) for p in predict(model, tok, sents, batch_size=128, max_tokens=OLD_PATH_NO_CAP,
                                               precision=precision))
    per_file_s = time.perf_counter() - t0
    log("evaluation: transformers pipeline, one call per file")
    t0 = time.perf_counter()
    n_ents = 0
    for sents in data.values():
        out = pipe([s.text for s in sents])
        n_ents += sum(len(o) for o in out)
    pipe_s = time.perf_counter() - t0
    del pipe, hf
    gc.collect()
    return {
        "files": len(data), "sentences_per_file": cfg["eval_per_file"] or "all", "sentences": n_sent,
        "ours": {"path": "zero_shot_eval (one pass over all files, scoring included)", "seconds": ours_s,
                 "sentences_per_s": n_sent / ours_s, "useful_tokens": one_pass["useful_tokens"],
                 "attention_gflop_not_counted": attention_gflop, "scored_languages": int(table.language.nunique()),
                 "labelled_words": int(table.drop_duplicates("language").n.sum()), "batching": one_pass},
        "ours_per_file": {"path": "predict once per file, <= 128 sentences per batch, no token cap (no scoring)",
                          "seconds": per_file_s,
                          "sentences_per_s": n_sent / per_file_s, "labelled_words": n_words, "batching": per_file},
        "pipeline": {"seconds": pipe_s, "sentences_per_s": n_sent / pipe_s, "labelled_subwords": n_ents},
        "ratio": pipe_s / ours_s,
        "ratio_per_file": pipe_s / per_file_s,
    }


def table_rows(ev: dict, prec: str) -> list[str]:
    """The zero-shot evaluation rows of speed.py's table."""
    return [
        f"{'zero-shot eval, sentences/s':34s} {ev['ours']['sentences_per_s']:12.1f} "
        f"{ev['pipeline']['sentences_per_s']:12.1f} {ev['ratio']:7.1f}x",
        f"{f'  share of {prec} matmul peak':34s} {ev['ours']['share_of_peak']:11.1%}",
        f"{'  one predict per file (old path)':34s} {ev['ours_per_file']['sentences_per_s']:12.1f} {'':12s} "
        f"{ev['ratio_per_file']:7.1f}x",
        f"{'  useful / processed tokens':34s} {ev['ours']['batching']['useful_share_of_processed']:11.1%} "
        f"{ev['ours_per_file']['batching']['useful_share_of_processed']:11.1%}   (one pass / per file)",
    ]


def main(argv: list[str] | None = None) -> dict:
    from speed_common import part_args, part_setup, write_json

    args = part_args(__doc__, "eval", argv)
    s = part_setup(args)
    ev = bench_eval(s["model"], s["config"], s["tok"], s["pud"], args.cfg, s["precision"])
    add_eval_share(ev, s["peak"], s["precision"], non_embedding_params(s["model"]))
    print("\n".join(table_rows(ev, s["precision"])))
    res = {"precision": s["precision"], "precision_why": s["precision_why"], "peak": s["peak"], "eval": ev}
    write_json(args.out, res)
    return res


if __name__ == "__main__":
    main()
