"""Speed of the xlt_utils recipes next to the usual ones, measured side by side in one process.

    python benchmarks/speed.py [--smoke] [--precision auto|bf16|fp32] [--with-suite]
        [--out benchmarks/results/speed.json]

Sections (see benchmarks/README.md for what every number means):

1. fine-tuning, useful (non-padding) subword tokens per second, on mBERT's architecture with
   random weights, mBERT's real tokenizer and the UD English-EWT dev sentences (UPOS labels):
   ours (`xlt_utils.training.fine_tune` itself, called for a few steps at a time) vs the XTREME
   `run_tag` recipe (every sentence padded to 128, random batches, fp32, plain
   AdamW, BertForTokenClassification), both starting from the same weights, batch 32, the same
   warm-up and number of timed steps, interleaved so that both see the same machine load. Plus the machine's bf16
   and fp32 matmul peaks and our share of the peak of the precision in use (FLOPs = 6 x
   non-embedding parameters x useful tokens).
2. zero-shot evaluation, sentences per second on the 21 PUD test sets: xlt_utils.evaluation.zero_shot_eval
   (one pass over all languages: sentences of every language sorted by length together, batches
   capped by padded tokens, scoring included) vs the `transformers` token-classification pipeline
   on the sentence texts, one call per file, same weights; every side warmed up on the same few
   sentences, then timed once. Our share of the peak: FLOPs = 2 x non-embedding parameters x
   useful tokens (the forward third of the training count).
3. CKA per layer (13 layers x 1000 x 768, float64): xlt_utils.similarity.cka_per_layer vs the numpy
   implementation of Kornblith et al.'s released code (Gram matrices centred with means, one layer at
   a time), and as a second row the same with an explicit centring matrix H (O(n^3)); and the time
   of the Gram products alone (Xc Xc^T and Yc Yc^T of every layer, as cka_per_layer forms them).
   Every side gets one warm-up call and the same number of timed repeats, interleaved (median).
4. the toy suite's wall time and peak memory (benchmarks/toy_suite.py): run with --with-suite,
   else read from its last results file.

The precision in use is the one `fine_tune` and `zero_shot_eval` resolve for this model
(`xlt_utils.precision.resolve_precision`: on an mBERT-sized model, the hardware policy: bf16 on a
CPU with AVX-512 BF16 or AMX, else fp32; --precision asks for one explicitly). The hardware class
(device + precision in use, e.g. "CPU, bf16 native") heads the targets of issue 16, restated per
class: fine-tuning >= 45% of the peak of that precision (forward + backward >= 50%), zero-shot
evaluation >= 40%, CKA within 1.5x of the time of its Gram products. They are printed as met / not
met with the numbers; the ratios against the baselines are reported beside them, with no target.

--smoke runs every code path on a tiny model and a few sentences in well under a minute (CI); its
numbers say nothing about speed. Speed targets are reported here, never asserted in unit tests.

This file is the driver; the parts live beside it, named for what they measure: speed_finetune.py
(1), speed_eval.py (2), speed_cka.py (3), speed_report.py (the targets, the toy suite (4), the table)
and speed_common.py (configurations, machine, data and model, precision, hardware class, matmul
peaks). speed_finetune.py, speed_eval.py and speed_cka.py also run on their own (`--smoke`, `--out`).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # the parts beside it, also when this file is loaded by its path (the tests)
    sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from speed_cka import bench_cka, cka_inputs, np_cka_explicit_h, np_cka_kornblith  # noqa: E402
from speed_common import (  # noqa: E402  (sets the offline environment before transformers loads)
    DEFAULT_DATA,
    FULL,
    RESULTS,
    SMOKE,
    cpu_name,
    cpu_snapshot,
    hardware_class,
    load_data,
    loadavg,
    log,
    matmul_gflops,
    mbert_like,
    measure_peak,
    native_bf16,
    other_cores,
    precision_in_use,
    write_json,
)
from speed_eval import add_eval_share, bench_eval  # noqa: E402
from speed_finetune import add_peak_shares, bench_finetune  # noqa: E402
from speed_report import TARGETS, ratios, table, target_lines, toy_suite, verdicts  # noqa: E402

# importable from speed.py by name, as before the split (tests/test_benchmarks.py loads this file)
__all__ = ["TARGETS", "add_eval_share", "add_peak_shares", "cka_inputs", "hardware_class", "main", "matmul_gflops",
           "np_cka_explicit_h", "np_cka_kornblith", "precision_in_use", "toy_suite"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny model and data: every code path in < 1 min (CI)")
    ap.add_argument("--with-suite", action="store_true", help="also run benchmarks/toy_suite.py (~5 min)")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON results (default benchmarks/results/speed.json, or speed_smoke.json with --smoke)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder (default ../shared/data)")
    ap.add_argument("--suite-json", type=Path, default=RESULTS / "toy_suite.json",
                    help="where the toy suite's results are read (and written with --with-suite)")
    ap.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                    help="the precision fine_tune and zero_shot_eval are asked for (default auto: the project's "
                         "policy, xlt_utils.precision); the targets are reported for the resulting hardware class")
    args = ap.parse_args(argv)
    cfg = SMOKE if args.smoke else FULL
    out_path = args.out or RESULTS / ("speed_smoke.json" if args.smoke else "speed.json")

    import transformers

    transformers.logging.set_verbosity_error()
    started = time.perf_counter()
    meta = {"mode": "smoke" if args.smoke else "full", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "loadavg_before": loadavg(), "config": cfg}
    meta["bf16_native"] = native_bf16("cpu")

    log("loading data and mBERT's tokenizer")
    tok, ewt, pud = load_data(args.data, cfg)
    contention = {}
    log("measuring the matmul peak")
    snap = cpu_snapshot()
    peak_start = measure_peak(cfg)
    model, config = mbert_like(tok, cfg)
    contention["peak_start"] = other_cores(snap)
    precision, why = precision_in_use(args.precision, model)
    meta["precision_requested"], meta["bf16_autocast"] = args.precision, precision == "bf16"
    log(f"precision in use: {precision} ({why})")
    snap = cpu_snapshot()
    finetune = bench_finetune(model, config, tok, ewt, cfg, precision)
    contention["finetune"] = other_cores(snap)
    snap = cpu_snapshot()
    peak_end = measure_peak(cfg)
    contention["peak_end"] = other_cores(snap)
    peak = {"size": cfg["peak"]["size"],
            "bf16_gflops": max(peak_start["bf16_gflops"], peak_end["bf16_gflops"]),
            "bf16_size": min(peak_start["bf16_size"], peak_end["bf16_size"]),
            "fp32_gflops": max(peak_start["fp32_gflops"], peak_end["fp32_gflops"]),
            "fp32_size": min(peak_start["fp32_size"], peak_end["fp32_size"]),
            "training_precision": precision, "bf16_native": meta["bf16_native"],
            "start": peak_start, "end": peak_end}
    hardware = {"device": "cpu", "precision": precision, "precision_why": why,
                "class": hardware_class("cpu", precision, meta["bf16_native"]),
                "peak_gflops": peak[f"{precision}_gflops"]}
    add_peak_shares(finetune, peak, precision)
    snap = cpu_snapshot()
    evaluation = bench_eval(model, config, tok, pud, cfg, precision)
    contention["eval"] = other_cores(snap)
    add_eval_share(evaluation, peak, precision, finetune["non_embedding_parameters"])
    del model
    gc.collect()
    snap = cpu_snapshot()
    cka_res = bench_cka(cfg)
    contention["cka"] = other_cores(snap)
    meta["other_processes_cores"] = contention
    busy = {k: round(v, 2) for k, v in contention.items() if v > 0.2}
    if busy:
        log(f"WARNING: other processes kept CPU cores busy during {busy}: timings are contaminated")
    suite = toy_suite(args.suite_json, args.with_suite)
    meta["loadavg_after"] = loadavg()
    meta["total_seconds"] = time.perf_counter() - started
    res = {"meta": meta, "hardware": hardware, "peak": peak, "finetune": finetune, "eval": evaluation,
           "cka": cka_res, "toy_suite": suite}
    res["verdicts"] = verdicts(res)
    res["ratios"] = ratios(res)
    res["target_lines"] = target_lines(res)
    text = table(res)
    print(text)
    res["table"] = text.splitlines()
    write_json(out_path, res)
    return res


if __name__ == "__main__":
    main()
