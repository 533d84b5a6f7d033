"""The report of benchmarks/speed.py: the targets of issue 16 per hardware class and their met / not met
lines, the ratios against the baselines, the toy suite's wall time and peak memory (section 4: run
or read from its results file) and the printed table.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import speed_cka
import speed_eval
import speed_finetune
from speed_common import ROOT, log

# The targets of issue 16 (item 7), restated per hardware class (device + precision in use): shares
# are of the matmul peak of the precision in use, measured in the same run; CKA is its time over the
# time of its Gram products alone. `op` says which side of the target meets it. Reported, never asserted.
TARGETS = {
    "finetune_peak_share": {"target": 0.45, "op": ">=", "what": "fine-tuning, share of the peak"},
    "finetune_fwd_bwd_peak_share": {"target": 0.50, "op": ">=", "what": "  forward + backward only"},
    "eval_peak_share": {"target": 0.40, "op": ">=", "what": "zero-shot evaluation, share of the peak"},
    "cka_rbf_vs_gram": {"target": 1.5, "op": "<=", "what": "CKA rbf / its Gram products"},
    "cka_linear_vs_gram": {"target": 1.5, "op": "<=", "what": "CKA linear / its Gram products"},
    "cka_max_abs_diff": {"target": 1e-6, "op": "<", "what": "CKA max |ours - numpy|"},  # correctness
}


def toy_suite(path: Path, run: bool) -> dict:
    if run:
        log("toy suite: running benchmarks/toy_suite.py, cold (every fine-tuning runs) then warm")
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "toy_suite.py"), "--out", str(path)], check=True)
    if not path.is_file():
        return {"status": "not available", "path": str(path),
                "hint": "run `python benchmarks/toy_suite.py` or pass --with-suite"}
    data = json.loads(path.read_text())
    return {"status": "measured now" if run else "read from file", "path": str(path),
            "file_modified": time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime)), **data}


def _fmt(name: str, value: float, target: bool = False) -> str:
    """A measured value (or, with `target`, a target) of the target `name`: a share in %, a time
    ratio with x, a difference in e-notation."""
    if name.endswith("share"):
        return f"{100 * value:.0f}%" if target else f"{100 * value:.1f}%"
    if name == "cka_max_abs_diff":
        return f"{value:.0e}" if target else f"{value:.1e}"
    return f"{value:g}x" if target else f"{value:.2f}x"


def verdicts(res: dict) -> list[dict]:
    """The restated targets, each computed from this run's measurements, with met / not met."""
    ft, ev, ck, hw = res["finetune"]["ours"], res["eval"]["ours"], res["cka"], res["hardware"]
    peak = hw["peak_gflops"]
    rows = {
        "finetune_peak_share": (ft["share_of_peak"], f"{ft['model_gflops']:.1f} of {peak:.1f} GFLOP/s"),
        "finetune_fwd_bwd_peak_share": (ft["share_of_peak_fwd_bwd_only"],
                                        f"{ft['model_gflops_fwd_bwd_only']:.1f} of {peak:.1f} GFLOP/s"),
        "eval_peak_share": (ev["share_of_peak"], f"{ev['model_gflops']:.1f} of {peak:.1f} GFLOP/s"),
        "cka_rbf_vs_gram": (ck["rbf"]["ours_vs_gram"],
                            f"{ck['rbf']['ours_s']:.3f} s vs {ck['rbf']['gram_products_s']:.3f} s"),
        "cka_linear_vs_gram": (ck["linear"]["ours_vs_gram"],
                               f"{ck['linear']['ours_s']:.3f} s vs {ck['linear']['gram_products_s']:.3f} s"),
        "cka_max_abs_diff": (max(ck[k]["max_abs_diff"] for k in ("rbf", "linear")), "both kernels, both numpy rows"),
    }
    out = []
    for name, (value, detail) in rows.items():
        t = TARGETS[name]
        met = {">=": value >= t["target"], "<=": value <= t["target"], "<": value < t["target"]}[t["op"]]
        out.append({"name": name, "what": t["what"].strip(), "value": value, "target": t["target"], "op": t["op"],
                    "met": bool(met), "detail": detail, "hardware_class": hw["class"]})
    return out


def ratios(res: dict) -> dict:
    """Ours against the baselines (reference time / our time): reported, no target."""
    ft, ev, ck = res["finetune"], res["eval"], res["cka"]
    return {"finetune_vs_xtreme_run_tag": ft["ratio"], "eval_vs_pipeline": ev["ratio"],
            "eval_per_file_vs_pipeline": ev["ratio_per_file"],
            **{f"cka_{k}_vs_numpy_kornblith": ck[k]["ratio"] for k in ("rbf", "linear")},
            **{f"cka_{k}_vs_numpy_explicit_h": ck[k]["ratio_vs_explicit_h"] for k in ("rbf", "linear")}}


def target_lines(res: dict) -> list[str]:
    """One line per restated target: what, measured value (and the numbers it comes from), target, verdict."""
    hw = res["hardware"]
    lines = [f"targets for {hw['class']} (precision in use: {hw['precision']}, {hw['precision_why']}; "
             f"{hw['precision']} matmul peak measured here: {hw['peak_gflops']:.1f} GFLOP/s)"]
    for v in res["verdicts"]:
        t = TARGETS[v["name"]]
        target = f"{t['op']} {_fmt(v['name'], v['target'], target=True)}"
        lines.append(f"  {t['what']:40s} {_fmt(v['name'], v['value']):>9s}  ({v['detail']})  target {target}: "
                     f"{'met' if v['met'] else 'not met'}")
    return lines


def table(res: dict) -> str:
    ft, ev, ck, pk = res["finetune"], res["eval"], res["cka"], res["peak"]
    prec = res["hardware"]["precision"]
    lines = [
        f"{'':34s} {'ours':>12s} {'reference':>12s} {'ratio':>8s}  (ratios: reported, no target)",
        *speed_finetune.table_rows(ft, prec),
        *speed_eval.table_rows(ev, prec),
        *speed_cka.table_rows(ck),
    ]
    sizes = f"{pk['bf16_size']}" + (f" / {pk['fp32_size']}" if pk["fp32_size"] != pk["bf16_size"] else "")
    lines.append(f"{'bf16 / fp32 matmul peak, GFLOP/s':34s} {pk['bf16_gflops']:12.1f} {pk['fp32_gflops']:12.1f}"
                 f"   (size {sizes}, max of start and end{'' if pk['bf16_native'] else '; bf16 emulated'})")
    ts = res["toy_suite"]
    if ts.get("runs"):
        for mode, run in ts["runs"].items():
            lines.append(f"{f'toy suite, {mode}: wall time / peak RSS':34s} {run['total_seconds']:10.1f} s "
                         f"{run['peak_rss_mb']:9d} MB   ({ts['status']}; shipped records "
                         f"{'on' if run['shipped_records'] else 'off'})")
    else:
        lines.append(f"{'toy suite':34s} {ts['status']}: {ts['hint']}")
    lines += [""] + target_lines(res) + [""]
    m = res["meta"]
    lines.append(f"mode={m['mode']}  {m['cpu']}, {m['torch_threads']} torch threads, "
                 f"load before {m['loadavg_before']}, after {m['loadavg_after']}, total {m['total_seconds']:.0f} s")
    lines.append("cores kept busy by other processes: "
                 + ", ".join(f"{k} {v:.2f}" for k, v in m["other_processes_cores"].items()))
    return "\n".join(lines)
