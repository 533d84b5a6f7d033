"""What every part of benchmarks/speed.py shares: the run configurations (full and --smoke), the
machine (CPU name, load, the cores other processes keep busy), the data and the mBERT-shaped model,
the precision in use and the hardware class, the matmul peaks, and the command line and JSON
writing of a part run on its own (`python benchmarks/speed_cka.py --smoke`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"

FULL = {
    "model": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                  max_position_embeddings=512),
    "batch_size": 32,
    "xtreme_max_len": 128,
    "train_sentences": None,  # all EWT dev sentences that fit into 128 subwords
    "warmup_steps": 2, "timed_steps": 8, "rounds": 2,  # the same for both recipes
    "eval_per_file": 20, "eval_files": None,  # 20 sentences (the same sent_ids) from each of the 21 PUD files
    "eval_warmup_sentences": 16,
    "cka": dict(layers=13, n=1000, dim=768, repeats=3),
    "peak": dict(size=4096, seconds=4.0, fp32_seconds=2.0),
}

SMOKE = {
    "model": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=512),
    "batch_size": 8,
    "xtreme_max_len": 128,
    "train_sentences": 64,
    "warmup_steps": 2, "timed_steps": 2, "rounds": 1,
    "eval_per_file": 4, "eval_files": 3,
    "eval_warmup_sentences": 2,
    "cka": dict(layers=3, n=50, dim=768, repeats=3),
    "peak": dict(size=512, seconds=0.2, fp32_seconds=0.1),
}


def log(msg: str) -> None:
    print(f"[speed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def cpu_snapshot() -> tuple[float, float, float]:
    """(busy CPU seconds of the whole machine, CPU seconds of this process, wall time)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
        own = sum(int(x) for x in Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[11:13])
        tick = os.sysconf("SC_CLK_TCK")
        return busy / tick, own / tick, time.perf_counter()
    except (OSError, ValueError, IndexError):
        return float("nan"), float("nan"), time.perf_counter()


def other_cores(before: tuple[float, float, float]) -> float:
    """Average number of cores that other processes kept busy since `before` (contention check)."""
    after = cpu_snapshot()
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / (after[2] - before[2]))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ------------------------------------------------------------------------------------------------
# Data and models
# ------------------------------------------------------------------------------------------------


def load_data(data_dir: Path, cfg: dict):
    """EWT dev sentences, PUD files ({lang: sentences}) and mBERT's tokenizer."""
    from xlt_utils.data.conllu_io import read_conllu
    from xlt_utils.models import load_tokenizer

    tok = load_tokenizer(data_dir / "mbert-tokenizer")
    ewt = read_conllu(data_dir / "ud" / "UD_English-EWT" / "en_ewt-ud-dev.conllu", "en")
    files = sorted((data_dir / "ud").glob("UD_*-PUD/*_pud-ud-test.conllu"))
    if not files:
        raise FileNotFoundError(f"no PUD test files under {data_dir / 'ud'}")
    if cfg["eval_files"]:
        files = files[: cfg["eval_files"]]
    pud = {f.name.split("_")[0]: read_conllu(f, f.name.split("_")[0]) for f in files}
    return tok, ewt, pud


def mbert_like(tok, cfg: dict, seed: int = 0):
    """XltModel (POS head) on a randomly initialised BERT with the given architecture."""
    from transformers import BertConfig, BertModel

    from xlt_utils.data.records import label_set
    from xlt_utils.models import XltModel

    labels = label_set("pos")
    config = BertConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, num_labels=len(labels),
                        id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)},
                        **cfg["model"])
    torch.manual_seed(seed)
    model = XltModel(BertModel(config, add_pooling_layer=False), "pos", len(labels))
    return model, config


def hf_copy(model, config):
    """A BertForTokenClassification holding exactly the weights of our XltModel."""
    from transformers import BertForTokenClassification

    hf = BertForTokenClassification(config)
    hf.bert.load_state_dict(model.encoder.state_dict())
    hf.classifier.load_state_dict(model.head.state_dict())
    return hf


def non_embedding_params(model) -> int:
    emb = {id(p) for p in model.encoder.embeddings.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in emb)


# ------------------------------------------------------------------------------------------------
# Precision in use, hardware class, matmul peaks
# ------------------------------------------------------------------------------------------------


def native_bf16(device_type: str = "cpu") -> bool:
    """Whether the hardware itself has native bf16 matmuls (the policy's table; XLT_PRECISION ignored)."""
    from xlt_utils.precision import choose_precision, cuda_capability

    if device_type == "cuda":
        cap = cuda_capability()
        return cap is not None and choose_precision("cuda", cap) == "bf16"
    return choose_precision(device_type) == "bf16"


def precision_in_use(requested, model, device: str = "cpu") -> tuple[str, str]:
    """(precision, why): what `fine_tune` and `zero_shot_eval` resolve for `model` when asked for
    `requested` (the same call they make: `xlt_utils.precision.resolve_precision`), and why."""
    from xlt_utils.precision import (
        SMALL_MODEL_PARAMS,
        count_core_params,
        forced_precision,
        normalize,
        resolve_precision,
    )

    precision = resolve_precision(requested, device, model)
    if normalize(requested) != "auto":
        why = "asked for with --precision"
    elif count_core_params(model) < SMALL_MODEL_PARAMS:
        why = "the policy's fp32 for a small model"
    elif forced_precision() is not None:
        why = "forced by XLT_PRECISION"
    else:
        why = "the hardware policy"
    return precision, why


def hardware_class(device_type: str, precision: str, bf16_native: bool) -> str:
    """The class the targets are restated for: device + precision in use, e.g. "CPU, bf16 native"."""
    if device_type == "cuda":
        return f"CUDA {precision}"
    if device_type != "cpu":
        return f"{device_type}, {precision}"
    if precision == "bf16":
        return "CPU, bf16 native" if bf16_native else "CPU, bf16 emulated"
    if precision == "fp32" and not bf16_native:
        return "CPU, fp32 (no native bf16)"
    return f"CPU, {precision} (bf16 native)"


def _matmul_rate(size: int, dtype: torch.dtype, seconds: float) -> float:
    """Sustained GFLOP/s of back-to-back size x size matmuls for about `seconds` (after one warm-up)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g).to(dtype)
    b = torch.randn(size, size, generator=g).to(dtype)
    c = torch.empty(size, size, dtype=dtype)
    torch.matmul(a, b, out=c)
    n, start = 0, time.perf_counter()
    while True:
        torch.matmul(a, b, out=c)
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= 2:
            return 2 * size**3 * n / elapsed / 1e9


def matmul_gflops(size: int, dtype: torch.dtype, seconds: float) -> tuple[float, int]:
    """(GFLOP/s, size used): `size`, halved while one such matmul would take more than `seconds`.

    Where a dtype is emulated (bf16 on a CPU without AVX-512 BF16 or AMX runs at about
    1 GFLOP/s), one 4096 x 4096 matmul would take minutes: a probe at 512 picks a smaller size
    (the probe's rate is a lower bound of a larger size's, so a native dtype keeps `size`).
    """
    probe = 512
    if size > probe:
        rate = _matmul_rate(probe, dtype, 0.0)  # one warm-up and two timed matmuls
        while size > probe and 2 * size**3 / (rate * 1e9) > seconds:
            size //= 2
    return _matmul_rate(size, dtype, seconds), size


def measure_peak(cfg: dict) -> dict:
    p = cfg["peak"]
    bf16, bf16_size = matmul_gflops(p["size"], torch.bfloat16, p["seconds"])
    fp32, fp32_size = matmul_gflops(p["size"], torch.float32, p["fp32_seconds"])
    return {"size": p["size"], "bf16_gflops": bf16, "bf16_size": bf16_size,
            "fp32_gflops": fp32, "fp32_size": fp32_size}



# ------------------------------------------------------------------------------------------------
# A part run on its own, and the JSON
# ------------------------------------------------------------------------------------------------


def part_args(doc: str, part: str, argv: list[str] | None = None, data: bool = True) -> argparse.Namespace:
    """The command line of a part of speed.py run on its own: --smoke, --out (default
    benchmarks/results/speed_<part>[_smoke].json) and, for the parts that need them, --data and --precision."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny model and data: every code path, no speed claim")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"JSON results (default benchmarks/results/speed_{part}.json, _smoke with --smoke)")
    if data:
        ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="the shared data folder (default ../shared/data)")
        ap.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="the precision fine_tune and zero_shot_eval are asked for (default auto)")
    args = ap.parse_args(argv)
    args.cfg = SMOKE if args.smoke else FULL
    args.out = args.out or RESULTS / f"speed_{part}{'_smoke' if args.smoke else ''}.json"
    return args


def part_setup(args: argparse.Namespace) -> dict:
    """Data, the mBERT-shaped model, the precision in use and one matmul peak measurement (the
    driver, speed.py, takes the max of a measurement before and one after fine-tuning)."""
    import transformers

    transformers.logging.set_verbosity_error()
    log("loading data and mBERT's tokenizer")
    tok, ewt, pud = load_data(args.data, args.cfg)
    log("measuring the matmul peak")
    peak = measure_peak(args.cfg)
    model, config = mbert_like(tok, args.cfg)
    precision, why = precision_in_use(args.precision, model)
    log(f"precision in use: {precision} ({why})")
    return {"tok": tok, "ewt": ewt, "pud": pud, "model": model, "config": config, "peak": peak,
            "precision": precision, "precision_why": why}


def write_json(path: Path, res: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1))
    print(f"results written to {path}")
