"""The result cache, measured: run a grid once (every config trained), then the same grid again
(every config read back from the cache), and print both wall times and their ratio.

    python benchmarks/grid_cache.py                       # the toy paper grid (171 runs), ~35-60 min on 2 cores
    python benchmarks/grid_cache.py --backend ray         # the same, one Ray task (1 CPU) per config
    python benchmarks/grid_cache.py --smoke               # 2 tiny configs, seconds (what CI runs)

The first call runs in an empty results directory (``--results-dir``, default a fresh temporary
one), with the records shipped in the package switched off, so that every config really trains.
The second call must return records identical to the first call's. Writes a JSON beside the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("local", "ray"), default="local")
    ap.add_argument("--cpus-per-task", type=float, default=1, help="Ray: CPUs (torch threads) per task")
    ap.add_argument("--results-dir", help="an empty folder for the first call (default: a temporary one)")
    ap.add_argument("--smoke", action="store_true", help="two tiny configs: checks the code path, no claim")
    ap.add_argument("--out", default="benchmarks/results/grid_cache.json")
    args = ap.parse_args(argv)

    os.environ["XLT_SHIPPED_RESULTS"] = "0"  # the first call must train every config
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from xlt_utils.profiles import get_profile
    from xlt_utils.sweep import expand_grid, paper_grid, run_grid

    if args.smoke:
        configs = expand_grid(get_profile("toy"), tasks=("pos",), ablations=("reference", "reinit:1,2"), seeds=(1,),
                              targets=("fr",), n_train=64, n_eval=16, epochs=1)
    else:
        configs = paper_grid(get_profile("toy"))
    root = Path(args.results_dir or tempfile.mkdtemp(prefix="xlt-grid-")).resolve()
    if root.exists() and any(root.iterdir()):
        print(f"error: {root} is not empty; the first call must start from an empty cache", file=sys.stderr)
        return 2
    kw = dict(backend=args.backend, results=root, progress=True, resources={"num_cpus": args.cpus_per_task})
    t0 = time.perf_counter()
    first = run_grid(configs, **kw)
    t1 = time.perf_counter()
    second = run_grid(configs, **kw)
    t2 = time.perf_counter()
    same = first == second
    res = {"configs": len(configs), "backend": args.backend, "first_s": round(t1 - t0, 2),
           "second_s": round(t2 - t1, 3), "ratio": round((t2 - t1) / (t1 - t0), 5),
           "identical_records": same, "results_dir": str(root), "smoke": args.smoke}
    print(f"\n{'configs':>10} {'first call':>12} {'second call':>12} {'second / first':>15} {'identical':>10}")
    print(f"{len(configs):>10} {res['first_s']:>10.1f} s {res['second_s']:>10.3f} s "
          f"{100 * res['ratio']:>14.3f}% {str(same):>10}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
