"""A GPU check for any CUDA machine, one script under 8 minutes on a T4: mBERT's exact configuration
with random weights in the precision the policy chooses, then chapters 1 to 4 on the stand-in.

    python benchmarks/gpu_check.py [--data ../shared/data] [--steps 30] [--skip-chapters] [--out FILE.json]

1. Precision: `xlt_utils.precision.hardware_precision("cuda")` (bf16 on compute capability >= 8.0,
   fp16 + GradScaler on 7.x such as the T4, fp32 otherwise), printed with the device and its capability.
2. Speed: `xlt_utils.training.fine_tune` (the real loop: length-grouped batches, dynamic padding,
   autocast, the GradScaler where fp16, fused AdamW) on mBERT's architecture with random weights
   (BertConfig defaults, vocabulary 119,547), mBERT's real tokenizer and UD English-EWT dev
   sentences (UPOS), batch 32: seconds per step, useful (non-padding) subword tokens per second,
   peak GPU memory, and the share of the GPU's peak: achieved FLOP/s (6 x non-embedding parameters x
   useful tokens) over the matmul peak measured here in the same dtype (a large square matmul).
3. Checkpoint: the time and size of one resume checkpoint of that model (weights and AdamW's
   moments, `training.atomic_save`, what `fine_tune` writes when `checkpoint_due` says so).
4. Chapters 1 to 4 on the stand-in (`xlt_utils.standin`): papermill in the quick profile with
   `QUICK_SHAPED`'s tiny sizes on the real files of --data, with the chapters' default grids, the model
   on the GPU (chapter 2's hand-written training step included: model, head and batch must meet on
   one device); any exception fails the check. Wall time per chapter.

Everything measured goes to --out as JSON. Without CUDA it stops at once with exit status 2 and says so.
"""

from __future__ import annotations

import argparse
import json
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


def speed(data: Path, steps: int, device: str = "cuda", config: dict | None = None) -> dict:
    """Train `steps` batches of 32 EWT dev sentences on mBERT's shape (or `config`) on `device`."""
    import torch
    from transformers import BertConfig, BertModel

    from xlt_utils.data.conllu_io import read_conllu
    from xlt_utils.data.records import label_set
    from xlt_utils.models import XltModel, load_tokenizer
    from xlt_utils.precision import count_core_params, describe, resolve_precision
    from xlt_utils.training import TrainConfig, fine_tune, make_examples

    cuda = device.startswith("cuda")
    tok = load_tokenizer(data / "mbert-tokenizer")
    sents = read_conllu(data / "ud" / "UD_English-EWT" / "en_ewt-ud-dev.conllu", "en")[: 32 * steps]
    torch.manual_seed(0)
    model = XltModel(BertModel(BertConfig(vocab_size=len(tok), **(config or {})), add_pooling_layer=False),
                     "pos", len(label_set("pos"))).to(device)
    precision = resolve_precision("auto", device, model)
    cfg = TrainConfig(epochs=1, batch_size=32, lr=5e-5, max_length=512, precision="auto")
    fine_tune(model, tok, sents[:64], cfg, progress=False)  # warm-up (kernels, allocator)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    fine_tune(model, tok, sents, cfg, progress=False)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    tokens = sum(len(e["input_ids"]) for e in make_examples(tok, sents, "pos", 512, overflow="truncate"))
    n_steps = -(-len(sents) // 32)
    out = {"precision": precision, "precision_in_words": describe(precision), "sentences": len(sents),
           "steps": n_steps, "seconds": round(seconds, 3), "step_s": round(seconds / n_steps, 4),
           "tokens_per_s": round(tokens / seconds, 1),
           "tflops": round(6 * count_core_params(model) * tokens / seconds / 1e12, 3),
           "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2) if cuda else None}
    out.update(checkpoint_timing(model))
    return out


def checkpoint_timing(model) -> dict:
    """Write one resume checkpoint of `model` (its weights and the AdamW moments after one step, as
    `fine_tune` keeps them) with `training.atomic_save`: its size and the seconds it took."""
    import torch

    from xlt_utils.training import atomic_save, make_optimizer

    opt = make_optimizer(model.parameters(), lr=1e-5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # AdamW's moments exist from the first step on
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        t = time.perf_counter()
        atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict()}, path)
        seconds = time.perf_counter() - t
        size = path.stat().st_size
    opt.zero_grad(set_to_none=True)
    return {"checkpoint_gb": round(size / 1e9, 3), "checkpoint_s": round(seconds, 2)}


CHAPTERS = ("01_data_and_tokenisation.ipynb", "02_finetuning_zero_shot.ipynb", "03_reinit_ablation.ipynb",
            "04_representation_similarity.ipynb")


def chapters_on_standin(data: Path) -> dict:
    """Run chapters 1 to 4 in the quick shape on the (small) stand-in; wall seconds per chapter."""
    import papermill as pm

    from xlt_utils.standin import QUICK_SHAPED, build_standin

    walls = {}
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
            walls[name] = round(time.perf_counter() - t, 1)
            print(f"{name} on the stand-in: ran to the end in {walls[name]:.0f} s", flush=True)
    return walls


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared/data (mBERT tokenizer, UD, UNER)")
    ap.add_argument("--steps", type=int, default=30, help="timed training steps of 32 sentences")
    ap.add_argument("--skip-chapters", action="store_true", help="only the speed and checkpoint checks")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_check.json")
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
    from xlt_utils.precision import DTYPES, cuda_capability

    started = time.perf_counter()
    major, minor = cuda_capability()
    result = {"device": torch.cuda.get_device_name(0), "capability": f"{major}.{minor}",
              "torch": torch.__version__}
    print(f"device: {result['device']}, compute capability {major}.{minor}")
    r = speed(args.data, args.steps)
    r["peak_tflops"] = round(matmul_peak_tflops(DTYPES.get(r["precision"], torch.float32)), 1)
    r["share_of_peak"] = round(r["tflops"] / r["peak_tflops"], 3)
    result["mbert_shape"] = r
    print(f"precision (policy): {r['precision_in_words']}")
    print(f"fine-tuning: {r['step_s']:.3f} s per step of 32 sentences, {r['tokens_per_s']:.0f} useful tokens/s, "
          f"{r['tflops']:.1f} TFLOP/s = {100 * r['share_of_peak']:.1f}% of the measured matmul peak "
          f"({r['peak_tflops']:.1f} TFLOP/s in that precision); peak memory {r['peak_memory_gb']} GB")
    print(f"resume checkpoint: {r['checkpoint_gb']} GB written in {r['checkpoint_s']} s")
    status = 0
    if not args.skip_chapters:
        try:
            result["chapters_wall_s"] = chapters_on_standin(args.data)
        except Exception as e:  # any failure of a chapter fails the check, with its reason
            result["chapter_failure"] = f"{type(e).__name__}: {e}"
            print(f"gpu_check: a chapter on the stand-in failed: {type(e).__name__}: {e}", file=sys.stderr)
            status = 1
    result["total_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"gpu_check: {result['total_s']:.0f} s in all; wrote {args.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
