"""Wall time per notebook and peak memory of the toy suite, from a cold cache.

    python benchmarks/toy_suite.py [--warm] [--out benchmarks/results/toy_suite.json]

Each notebook is executed with papermill into a temporary copy (the stored notebooks are not
touched), in notebook order, with a fresh cache directory unless --warm is given. Peak memory is
the largest resident set of the whole process tree (papermill + kernel), sampled every 0.1 s.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warm", action="store_true", help="reuse the user's cache instead of a fresh one")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "toy_suite.json")
    args = ap.parse_args()
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "XLT_PROGRESS": "0"}
        if not args.warm:
            env["XLT_CACHE_DIR"] = str(Path(tmp) / "cache")
            env.pop("XLT_RESULTS_DIR", None)
        rows = []
        for nb in notebooks:
            seconds, peak = run_notebook(nb, Path(tmp) / nb.name, env)
            rows.append({"notebook": nb.name, "seconds": round(seconds, 1), "peak_rss_mb": round(peak / 2**20)})
            print(f"{nb.name:45s} {seconds:7.1f} s   peak RSS {peak / 2**20:6.0f} MB", flush=True)
    total = sum(r["seconds"] for r in rows)
    peak = max(r["peak_rss_mb"] for r in rows)
    print(f"{'toy suite':45s} {total:7.1f} s   peak RSS {peak:6.0f} MB   ({os.cpu_count()} CPUs, "
          f"{'warm' if args.warm else 'cold'} cache)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"notebooks": rows, "total_seconds": round(total, 1), "peak_rss_mb": peak,
                                    "cpus": os.cpu_count(), "cache": "warm" if args.warm else "cold"}, indent=1))


if __name__ == "__main__":
    main()
