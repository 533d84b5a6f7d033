"""Wall time per notebook and peak memory of the toy suite: a truly cold run beside a warm one.

    python benchmarks/toy_suite.py [--mode cold|warm|both] [--out benchmarks/results/toy_suite.json]

Each notebook is executed with papermill into a temporary copy (the stored notebooks are not
touched), in notebook order. A cold run starts from an empty cache directory with the shipped result
records off (XLT_SHIPPED_RESULTS=0), so every fine-tuning of every chapter really runs (chapter 3's
whole grid included); a warm run uses the user's cache and the shipped records, as a reader does.
`both` (the default) runs cold, then warm. Peak memory is the largest resident set of the whole
process tree (papermill + kernel), sampled every 0.1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_notebook(path: Path, out: Path, env: dict) -> tuple[float, int]:
    """Execute one notebook; returns (seconds, peak RSS of the process tree in bytes)."""
    cmd = [sys.executable, "-m", "papermill", "--no-progress-bar", "--cwd", str(path.parent), "-k", "python3",
           str(path), str(out)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(ps))
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{path.name} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return seconds, peak


def run_suite(notebooks: list[Path], mode: str, tmp: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "XLT_PROGRESS": "0"}
    if mode == "cold":
        env["XLT_CACHE_DIR"] = str(tmp / "cache")  # empty: synthetic data, toy model and results all made anew
        env["XLT_SHIPPED_RESULTS"] = "0"
        env.pop("XLT_RESULTS_DIR", None)
    else:
        env.pop("XLT_SHIPPED_RESULTS", None)
    rows = []
    for nb in notebooks:
        seconds, peak = run_notebook(nb, tmp / f"{mode}-{nb.name}", env)
        rows.append({"notebook": nb.name, "seconds": round(seconds, 1), "peak_rss_mb": round(peak / 2**20)})
        print(f"{mode:4s} {nb.name:40s} {seconds:7.1f} s   peak RSS {peak / 2**20:6.0f} MB", flush=True)
    total = sum(r["seconds"] for r in rows)
    peak = max(r["peak_rss_mb"] for r in rows)
    print(f"{mode:4s} {'toy suite':40s} {total:7.1f} s   peak RSS {peak:6.0f} MB   ({os.cpu_count()} CPUs)")
    return {"notebooks": rows, "total_seconds": round(total, 1), "peak_rss_mb": peak, "cache": mode,
            "shipped_records": mode == "warm"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("cold", "warm", "both"), default="both",
                    help="cold: empty cache, shipped records off; warm: the user's cache and the shipped records")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "toy_suite.json")
    args = ap.parse_args()
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    modes = ("cold", "warm") if args.mode == "both" else (args.mode,)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {mode: run_suite(notebooks, mode, Path(tmp)) for mode in modes}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs, "cpus": os.cpu_count()}, indent=1))


if __name__ == "__main__":
    main()
