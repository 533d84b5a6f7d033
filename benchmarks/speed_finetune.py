"""Fine-tuning speed (section 1 of benchmarks/speed.py): `xlt_utils.training.fine_tune` vs the XTREME
`run_tag` recipe (every sentence padded to 128, random batches, fp32, plain AdamW,
BertForTokenClassification), same initial weights, same warm-up and timed steps, interleaved;
useful tokens/s, the time split data / forward + backward / optimizer, and the share of the matmul
peak of the precision in use (FLOPs = 6 x non-embedding parameters x useful tokens).

    python benchmarks/speed_finetune.py [--smoke] [--precision auto|bf16|fp32] [--data ...] [--out ...]

On its own it measures the peak once, before fine-tuning (speed.py: the max of before and after).
"""

from __future__ import annotations

import gc
import statistics
import time

import torch
from speed_common import hf_copy, log, non_embedding_params


def xtreme_features(tok, sentences, labels: dict, max_len: int):
    """XTREME run_tag's features: [CLS] subwords [SEP] padded to max_len, label on the first subword."""
    enc = tok([s.words for s in sentences], is_split_into_words=True, add_special_tokens=False)
    n = len(sentences)
    ids = torch.full((n, max_len), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((n, max_len), dtype=torch.long)
    lab = torch.full((n, max_len), -100, dtype=torch.long)
    for b, s in enumerate(sentences):
        pieces: list[list[int]] = [[] for _ in s.words]
        for tid, w in zip(enc["input_ids"][b], enc.word_ids(b), strict=True):
            pieces[w].append(tid)
        toks, labs = [], []
        for w, p in enumerate(pieces):
            p = p or [tok.unk_token_id]  # a word with no subword becomes [UNK], as in run_tag
            toks += p
            labs += [labels[s.upos[w]]] + [-100] * (len(p) - 1)
        toks, labs = toks[: max_len - 2], labs[: max_len - 2]
        row = [tok.cls_token_id, *toks, tok.sep_token_id]
        ids[b, : len(row)] = torch.tensor(row)
        mask[b, : len(row)] = 1
        lab[b, 1 : len(labs) + 1] = torch.tensor(labs)
    return ids, mask, torch.zeros_like(ids), lab


class Ours:
    """`xlt_utils.training.fine_tune` itself (no copy of its loop), timed call by call: each call
    fine-tunes for `steps` optimizer steps (one epoch over the next steps x batch_size sentences),
    so that it builds its examples, batches, optimizer and schedule as a real run does. The time of
    the optimizer steps is taken with torch's global optimizer hooks; the rest of the call (data,
    forward, backward, clipping) is reported as `fwd_bwd_s`, an upper bound of forward + backward."""

    name = "ours"

    def __init__(self, model, tok, sentences, batch_size: int, seed: int = 1, precision: str = "auto"):
        from xlt_utils.training import TrainConfig

        self.cfg = TrainConfig(batch_size=batch_size, seed=seed, epochs=1, precision=precision)
        self.model, self.tok, self.sentences, self.bs = model, tok, list(sentences), batch_size
        self.k = 0

    def run(self, steps: int) -> dict:
        from torch.optim.optimizer import (
            register_optimizer_step_post_hook,
            register_optimizer_step_pre_hook,
        )

        from xlt_utils.batching import length_grouped_batches, make_examples
        from xlt_utils.training import fine_tune

        if steps < 2:
            raise ValueError("a timed fine_tune call needs at least 2 steps (its schedule warms up for one)")
        n = len(self.sentences)
        chunk = [self.sentences[(self.k * self.bs + i) % n] for i in range(steps * self.bs)]
        self.k += steps
        # the tokens these steps process (computed outside the timed call, as fine_tune batches them)
        lengths = [len(e["input_ids"]) for e in make_examples(self.tok, chunk, "pos", self.cfg.max_length)]
        batches = length_grouped_batches(lengths, self.bs, torch.Generator().manual_seed(self.cfg.seed * 1000),
                                         self.cfg.length_bucket)
        optim = {"s": 0.0, "t0": 0.0}
        pre = register_optimizer_step_pre_hook(lambda *_: optim.__setitem__("t0", time.perf_counter()))
        post = register_optimizer_step_post_hook(
            lambda *_: optim.__setitem__("s", optim["s"] + time.perf_counter() - optim["t0"]))
        try:
            t0 = time.perf_counter()
            history = fine_tune(self.model, self.tok, chunk, self.cfg, progress=False)
            seconds = time.perf_counter() - t0
        finally:
            pre.remove(), post.remove()
        return {"steps": len(batches), "useful": sum(lengths), "processed": sum(len(b) * max(lengths[i] for i in b)
                                                                                for b in batches),
                "seconds": seconds, "data_s": 0.0, "fwd_bwd_s": seconds - optim["s"], "optim_s": optim["s"],
                "loss": history[-1]}


class XtremeBaseline:
    """XTREME `run_tag` (udpos): pad to 128, random batches, fp32, plain AdamW, linear schedule."""

    name = "baseline"

    def __init__(self, hf_model, tok, sentences, batch_size: int, max_len: int, seed: int = 1):
        from xlt_utils.data.records import label_set

        labels = {lab: i for i, lab in enumerate(label_set("pos"))}
        self.model, self.bs = hf_model, batch_size
        self.tensors = xtreme_features(tok, sentences, labels, max_len)
        no_decay = ("bias", "LayerNorm.weight")
        groups = [
            {"params": [p for n, p in hf_model.named_parameters() if not any(nd in n for nd in no_decay)],
             "weight_decay": 0.0},
            {"params": [p for n, p in hf_model.named_parameters() if any(nd in n for nd in no_decay)],
             "weight_decay": 0.0},
        ]
        # Plain AdamW: the single-tensor for-loop (no foreach, no fused), as the run_tag era had it.
        self.opt = torch.optim.AdamW(groups, lr=2e-5, eps=1e-8, foreach=False, fused=False)
        n = len(sentences)
        total = 3 * (-(-n // batch_size))  # 3 epochs; warm-up 0 steps (run_tag defaults)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: max(0.0, (total - s) / total))
        self.perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))  # RandomSampler
        self.k = 0

    def step(self) -> dict:
        n = len(self.perm)
        start = (self.k * self.bs) % n
        idx = self.perm[start : start + self.bs]
        self.k += 1
        t0 = time.perf_counter()
        ids, mask, types, labels = (t[idx] for t in self.tensors)  # = default_collate of TensorDataset rows
        t1 = time.perf_counter()
        out = self.model(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels)
        out.loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step(), self.sched.step(), self.model.zero_grad()
        loss = out.loss.item()
        t3 = time.perf_counter()
        return {"useful": int(mask.sum()), "processed": ids.numel(),
                "data_s": t1 - t0, "fwd_bwd_s": t2 - t1, "optim_s": t3 - t2, "loss": loss}


def summarise(steps: list[dict]) -> dict:
    """Totals over timed entries: single steps (the baseline) or fine_tune calls of several steps (ours)."""
    seconds = [s["data_s"] + s["fwd_bwd_s"] + s["optim_s"] for s in steps]
    per_step = [sec / s.get("steps", 1) for sec, s in zip(seconds, steps, strict=True)]
    n_steps = sum(s.get("steps", 1) for s in steps)
    total = sum(seconds)
    useful = sum(s["useful"] for s in steps)
    processed = sum(s["processed"] for s in steps)
    return {
        "timed_steps": n_steps,
        "seconds": total,
        "useful_tokens": useful,
        "processed_tokens": processed,
        "useful_share_of_processed": useful / processed,
        "useful_tokens_per_s": useful / total,
        "median_step_s": statistics.median(per_step),
        "mean_useful_tokens_per_step": useful / n_steps,
        "time_split": {k: sum(s[k] for s in steps) / total for k in ("data_s", "fwd_bwd_s", "optim_s")},
        "losses": [round(s["loss"], 4) for s in steps],
    }


def bench_finetune(model, config, tok, ewt, cfg: dict, precision: str = "auto") -> dict:
    """Ours vs XTREME run_tag on the same sentences and the same initial weights, interleaved."""
    from xlt_utils.batching import make_examples

    max_len = cfg["xtreme_max_len"]
    enc_lengths = [len(e["input_ids"]) for e in make_examples(tok, ewt, "pos", max_length=10**6)]
    sentences = [s for s, n in zip(ewt, enc_lengths, strict=True) if n <= max_len]
    dropped = len(ewt) - len(sentences)
    if cfg["train_sentences"]:
        sentences = sentences[: cfg["train_sentences"]]
    hf = hf_copy(model, config)  # same initial weights
    model.train(), hf.train()
    ours = Ours(model, tok, sentences, cfg["batch_size"], precision=precision)
    base = XtremeBaseline(hf, tok, sentences, cfg["batch_size"], max_len)

    warm, steps, rounds = cfg["warmup_steps"], cfg["timed_steps"], cfg["rounds"]
    log(f"fine-tuning warm-up: {warm} steps each; then {steps} timed steps each, in {rounds} interleaved rounds")
    ours.run(warm)
    for _ in range(warm):
        base.step()
    timed = {"ours": [], "baseline": []}
    for r in range(rounds):  # interleaved, so that both recipes see the same machine load
        share = steps * (r + 1) // rounds - steps * r // rounds
        for _ in range(share):
            timed["baseline"].append(base.step())
        timed["ours"].append(ours.run(share))
        log(f"fine-tuning round {r + 1}/{rounds}: {share} steps each")
    res_o, res_b = summarise(timed["ours"]), summarise(timed["baseline"])
    del ours, base, hf
    model.zero_grad(set_to_none=True)
    gc.collect()
    return {
        "sentences": len(sentences), "dropped_longer_than_max_len": dropped, "max_len": max_len,
        "batch_size": cfg["batch_size"], "parameters": sum(p.numel() for p in model.parameters()),
        "non_embedding_parameters": non_embedding_params(model), "ours": res_o, "baseline": res_b,
        "ratio": res_o["useful_tokens_per_s"] / res_b["useful_tokens_per_s"],
    }


def add_peak_shares(ft: dict, peak: dict, precision: str) -> None:
    """Model FLOP/s (6 x non-embedding parameters x useful tokens/s) as a share of the matmul peaks.

    The share that counts (`share_of_peak`, the target) is of the peak of the precision our
    fine-tuning really runs in (`precision_in_use`): bf16 where the hardware has native bf16
    matmuls (then autocast is on), else fp32. A share of an emulated bf16 peak would say nothing.
    `share_of_peak_fwd_bwd_only` divides by the time outside the optimizer step (data, forward,
    backward, clipping: an upper bound of forward + backward), so it is a lower bound.
    """
    flops_per_token = 6 * ft["non_embedding_parameters"]
    for r in (ft["ours"], ft["baseline"]):
        r["model_gflops"] = flops_per_token * r["useful_tokens_per_s"] / 1e9
        r["share_of_bf16_peak"] = r["model_gflops"] / peak["bf16_gflops"]
        r["share_of_fp32_peak"] = r["model_gflops"] / peak["fp32_gflops"]
        r["share_of_peak"] = r[f"share_of_{precision}_peak"]
        fwd_bwd_s = r["seconds"] * r["time_split"]["fwd_bwd_s"]
        r["model_gflops_fwd_bwd_only"] = flops_per_token * r["useful_tokens"] / fwd_bwd_s / 1e9
        r["share_of_peak_fwd_bwd_only"] = r["model_gflops_fwd_bwd_only"] / peak[f"{precision}_gflops"]
    ft["peak_precision"] = precision
    ft["ours_share_of_peak"] = ft["ours"]["share_of_peak"]



def table_rows(ft: dict, prec: str) -> list[str]:
    """The fine-tuning rows of speed.py's table."""
    o, b = ft["ours"], ft["baseline"]

    def split(r):
        return "/".join(f"{100 * r['time_split'][k]:.0f}" for k in ("data_s", "fwd_bwd_s", "optim_s"))

    return [
        f"{'fine-tuning, useful tokens/s':34s} {o['useful_tokens_per_s']:12.1f} {b['useful_tokens_per_s']:12.1f} "
        f"{ft['ratio']:7.1f}x",
        f"{f'  share of {prec} matmul peak':34s} {o['share_of_peak']:11.1%} {b['share_of_peak']:11.1%}",
        f"{'  (fwd+bwd only, ours)':34s} {o['share_of_peak_fwd_bwd_only']:11.1%}",
        f"{'  useful / processed tokens':34s} {o['useful_share_of_processed']:11.1%} "
        f"{b['useful_share_of_processed']:11.1%}",
        f"{'  median step, s':34s} {o['median_step_s']:12.2f} {b['median_step_s']:12.2f}",
        f"{'  time split data/fwd+bwd/optim':34s} "
        + " ".join(f"{split(r):>12s}" for r in (o, b)),
    ]


def main(argv: list[str] | None = None) -> dict:
    from speed_common import part_args, part_setup, write_json

    args = part_args(__doc__, "finetune", argv)
    s = part_setup(args)
    ft = bench_finetune(s["model"], s["config"], s["tok"], s["ewt"], args.cfg, s["precision"])
    add_peak_shares(ft, s["peak"], s["precision"])
    print("\n".join(table_rows(ft, s["precision"])))
    res = {"precision": s["precision"], "precision_why": s["precision_why"], "peak": s["peak"], "finetune": ft}
    write_json(args.out, res)
    return res


if __name__ == "__main__":
    main()
