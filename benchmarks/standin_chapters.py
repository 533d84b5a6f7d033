"""Every chapter in the quick profile on a stand-in of mBERT's exact shape: does it run, how long
does it take, and how far is the chapter's own printed budget from that time?

    python benchmarks/standin_chapters.py [--data ../shared/data] [--out benchmarks/results/standin_chapters.json]
                                          [--layers 12 --hidden 768] [--chapters 00 01 02 03 04]

The stand-in (`xlt_utils.standin.build_standin`) has mBERT's configuration (12 layers, 768 wide, 12
heads, 3,072 intermediate, 512 positions, the 119,547-subword vocabulary and mBERT's real tokenizer)
with random weights. Each chapter runs with papermill, in order, in the quick profile with the
profile overrides of `xlt_utils.standin.QUICK_SHAPED` (tiny sizes; only the real files that
../shared/data holds, offline), on this machine's device, with an empty result store and no shipped
records, so every fine-tuning a chapter's defaults ask for really runs. It records each chapter's
wall time and the estimate the chapter itself printed (`xlt_utils.budget`, the line "Estimated runtime of chapter N here (...): <duration> = ..."),
and writes both, with their ratio, to JSON. Any exception in a chapter stops the run with its name.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
DEFAULT_DATA = ROOT.parent / "shared" / "data"
#: mBERT's configuration (bert-base-multilingual-cased's config.json), less its vocabulary, which
#: comes from the tokenizer.
MBERT_SHAPE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                   max_position_embeddings=512, type_vocab_size=2)
CHAPTERS = ("00", "01", "02", "03", "04")
_UNITS = {"s": 1, "min": 60, "h": 3600, "days": 86400}


def printed_estimate(nb) -> tuple[str | None, float | None]:
    """The budget line a chapter printed, and its total in seconds (from `Estimate.line`)."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            for line in str(out.get("text", "")).splitlines():
                if line.startswith("Estimated runtime of chapter"):
                    m = re.search(r"\): (.+?) = \(", line)
                    return line, parse_duration(m.group(1)) if m else None
    return None, None


def _has_parameter(path: Path, name: str) -> bool:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return any(line.startswith(f"{name} =") for line in cell.source.splitlines())


def parse_duration(text: str) -> float | None:
    """Seconds of a duration as `budget.format_duration` writes it ("40 s", "12 min", "1.5 h", "2.0 days")."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?) (s|min|h|days)", text.strip())
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "standin_chapters.json")
    ap.add_argument("--chapters", nargs="+", default=list(CHAPTERS))
    ap.add_argument("--tasks", nargs="+", help="the profile's tasks (and the chapters' `tasks` parameter); "
                    "default: all three")
    ap.add_argument("--layers", type=int, default=MBERT_SHAPE["num_hidden_layers"])
    ap.add_argument("--hidden", type=int, default=MBERT_SHAPE["hidden_size"])
    args = ap.parse_args(argv)
    import nbformat
    import papermill as pm
    import torch

    from xlt_utils.standin import QUICK_SHAPED, build_standin

    shape = {**MBERT_SHAPE, "num_hidden_layers": args.layers, "hidden_size": args.hidden,
             "num_attention_heads": max(1, args.hidden // 64), "intermediate_size": 4 * args.hidden}
    results = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                           "device": "cuda" if torch.cuda.is_available() else "cpu",
                           "threads": torch.get_num_threads(), "cpus": os.cpu_count()},
               "shape": shape, "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in QUICK_SHAPED.items()},
               "chapters": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_standin(tmp / "mbert-standin", args.data / "mbert-tokenizer", **shape)
        overrides = {**results["overrides"], "model": str(model)}
        params = {}
        if args.tasks:
            overrides["tasks"] = params["tasks"] = list(args.tasks)
            results["tasks"] = list(args.tasks)
        os.environ.update({"XLT_DATA_DIR": str(args.data), "XLT_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
                           "HF_DATASETS_OFFLINE": "1", "XLT_CACHE_DIR": str(tmp / "cache"),
                           "XLT_RESULTS_DIR": str(tmp / "results"), "XLT_SHIPPED_RESULTS": "0",
                           "XLT_PROGRESS": "0", "TOKENIZERS_PARALLELISM": "false"})
        for prefix in args.chapters:
            (path,) = NOTEBOOKS.glob(f"{prefix}_*.ipynb")
            start = time.perf_counter()
            pm.execute_notebook(str(path), str(tmp / path.name), cwd=str(NOTEBOOKS), progress_bar=False,
                                kernel_name="python3",
                                parameters={"profile": "quick", "profile_overrides": overrides,
                                            **(params if _has_parameter(path, "tasks") else {})})
            wall = time.perf_counter() - start
            line, estimate = printed_estimate(nbformat.read(tmp / path.name, as_version=4))
            results["chapters"][path.stem] = {
                "wall_s": round(wall, 1), "budget_line": line,
                "budget_s": estimate, "budget_over_wall": round(estimate / wall, 2) if estimate else None}
            print(f"{path.stem}: ran to the end in {wall:.0f} s; printed budget: {line or 'none'}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
