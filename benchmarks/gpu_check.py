"""A GPU check for any CUDA machine: the real fine-tuning step in the precision the policy chooses,
its tokens/s and share of the GPU's peak, then chapters 1 and 2 on the mBERT stand-in.

    python benchmarks/gpu_check.py [--data ../shared/data] [--steps 30] [--skip-chapter]

1. Precision: `xlt_utils.precision.hardware_precision("cuda")` (bf16 on compute capability >= 8.0,
   fp16 + GradScaler on 7.x, fp32 otherwise), printed with the device and its capability.
2. Speed: `xlt_utils.training.fine_tune` (the real loop: length-grouped batches, dynamic padding,
   autocast, GradScaler where fp16, fused AdamW) on mBERT's architecture with random weights
   (BertConfig defaults, vocabulary 119,547), mBERT's real tokenizer and UD English-EWT dev
   sentences (UPOS), batch 32. Useful (non-padding) subword tokens per second, and the share of the
   GPU's peak: achieved FLOP/s (6 x non-embedding parameters x useful tokens) over the matmul peak
   measured here in the same dtype (a large square matmul, best of several).
3. Chapters 1 and 2 on the stand-in (`xlt_utils.standin`): papermill in a quick-shaped profile with
   tiny sizes on the real files of --data, the model on the GPU (chapter 2's hand-written training
   step included: model, head and batch must meet on one device); any exception fails the check.

Without CUDA it stops at once with exit status 2 and says so.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"


def matmul_peak_tflops(dtype, size: int = 8192, repeats: int = 10) -> float:
    """The best TFLOP/s of a size x size matmul in `dtype` on the current GPU."""
    import torch

    a = torch.randn(size, size, device="cuda", dtype=dtype)
    b = torch.randn(size, size, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e12


def speed(data: Path, steps: int) -> dict:
    import torch
    from transformers import BertConfig, BertModel

    from xlt_utils.data.conllu_io import read_conllu
    from xlt_utils.data.records import label_set
    from xlt_utils.models import XltModel, load_tokenizer
    from xlt_utils.precision import DTYPES, count_core_params, describe, hardware_precision
    from xlt_utils.training import TrainConfig, fine_tune, make_examples

    precision = hardware_precision("cuda")
    tok = load_tokenizer(data / "mbert-tokenizer")
    sents = read_conllu(data / "ud" / "UD_English-EWT" / "en_ewt-ud-dev.conllu", "en")[: 32 * steps]
    torch.manual_seed(0)
    model = XltModel(BertModel(BertConfig(vocab_size=len(tok)), add_pooling_layer=False), "pos",
                     len(label_set("pos"))).to("cuda")
    cfg = TrainConfig(epochs=1, batch_size=32, lr=5e-5, max_length=512, precision="auto")
    fine_tune(model, tok, sents[:64], cfg, progress=False)  # warm-up (kernels, allocator)
    torch.cuda.synchronize()
    t = time.perf_counter()
    fine_tune(model, tok, sents, cfg, progress=False)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    tokens = sum(len(e["input_ids"]) for e in make_examples(tok, sents, "pos", 512, overflow="truncate"))
    flops = 6 * count_core_params(model) * tokens / seconds / 1e12
    peak = matmul_peak_tflops(DTYPES.get(precision, torch.float32))
    return {"precision": describe(precision), "sentences": len(sents), "seconds": seconds,
            "tokens_per_s": tokens / seconds, "tflops": flops, "peak_tflops": peak, "share": flops / peak}


CHAPTERS = ("01_data_and_tokenisation.ipynb", "02_finetuning_zero_shot.ipynb")


def chapters_on_standin(data: Path) -> None:
    import papermill as pm

    from xlt_utils.standin import QUICK_SHAPED, build_standin

    with tempfile.TemporaryDirectory() as tmp:
        model = build_standin(Path(tmp) / "standin", data / "mbert-tokenizer")
        overrides = {**QUICK_SHAPED, "model": str(model)}
        overrides = {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}
        env = {"XLT_DATA_DIR": str(data), "XLT_OFFLINE": "1", "XLT_CACHE_DIR": str(Path(tmp) / "cache"),
               "XLT_SHIPPED_RESULTS": "0", "XLT_PROGRESS": "0"}
        os.environ.update(env)
        for name in CHAPTERS:
            t = time.perf_counter()
            pm.execute_notebook(str(ROOT / "notebooks" / name), str(Path(tmp) / name),
                                parameters={"profile": "quick", "profile_overrides": overrides},
                                cwd=str(ROOT / "notebooks"), progress_bar=False, kernel_name="python3")
            print(f"{name} on the stand-in: ran to the end in {time.perf_counter() - t:.0f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared/data (mBERT tokenizer, UD, UNER)")
    ap.add_argument("--steps", type=int, default=30, help="timed training steps of 32 sentences")
    ap.add_argument("--skip-chapter", action="store_true", help="only the speed check")
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible to torch (torch.cuda.is_available() is False; "
              f"torch {torch.__version__}, CUDA build {torch.version.cuda}). Run it on a machine with an NVIDIA GPU "
              "and a CUDA build of torch; on Colab: Runtime > Change runtime type > GPU.", file=sys.stderr)
        return 2
    if not (args.data / "mbert-tokenizer" / "tokenizer.json").is_file():
        print(f"gpu_check: {args.data} has no mbert-tokenizer/tokenizer.json; pass --data <shared/data>",
              file=sys.stderr)
        return 2
    from xlt_utils.precision import cuda_capability

    major, minor = cuda_capability()
    print(f"device: {torch.cuda.get_device_name(0)}, compute capability {major}.{minor}")
    r = speed(args.data, args.steps)
    print(f"precision (policy): {r['precision']}")
    print(f"fine-tuning: {r['tokens_per_s']:.0f} useful tokens/s ({r['sentences']} sentences in {r['seconds']:.1f} s), "
          f"{r['tflops']:.1f} TFLOP/s = {100 * r['share']:.1f}% of the measured matmul peak "
          f"({r['peak_tflops']:.1f} TFLOP/s in that precision)")
    if not args.skip_chapter:
        try:
            chapters_on_standin(args.data)
        except Exception as e:  # any failure of a chapter fails the check, with its reason
            print(f"gpu_check: a chapter on the stand-in failed: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
