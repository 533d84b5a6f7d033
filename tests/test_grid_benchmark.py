"""benchmarks/grid_cache.py --smoke: a grid trained once, then returned from the cache with identical
records. No timing assertion (the benchmark reports the ratio; the full toy grid's numbers are in
benchmarks/README.md); what is asserted is that the second call trains nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_grid_cache_smoke_trains_once_and_returns_identical_records(tmp_path):
    out, results = tmp_path / "grid.json", tmp_path / "results"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "XLT_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "grid_cache.py"), "--smoke",
                           "--results-dir", str(results), "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["configs"] == 2 and res["identical_records"] is True and res["smoke"] is True
    assert res["first_s"] > 0 and res["second_s"] >= 0
    assert "second / first" in proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("[")]
    assert sum("done in" in ln for ln in lines) == 2, "the first call trains both configs"
    assert sum(ln.endswith("cached") for ln in lines) == 2, "the second call trains nothing"
    assert len(list(results.glob("*/record.json"))) == 2


@pytest.mark.slow
def test_grid_cache_refuses_a_non_empty_results_dir(tmp_path):
    (tmp_path / "stale").mkdir()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "grid_cache.py"), "--smoke",
                           "--results-dir", str(tmp_path), "--out", str(tmp_path / "x.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not empty" in proc.stderr
