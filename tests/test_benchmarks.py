"""benchmarks/speed.py --smoke and benchmarks/fast_path_check.py --smoke: every section is produced with
positive numbers (no timing assertions: speed targets are measured and reported by the benchmarks
themselves, never asserted in unit tests)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def smoke(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("speed")
    suite = tmp / "toy_suite.json"  # a stand-in for benchmarks/results/toy_suite.json
    runs = {mode: {"notebooks": [{"notebook": "00_overview.ipynb", "seconds": s, "peak_rss_mb": 900}],
                   "total_seconds": s, "peak_rss_mb": 900, "cache": mode, "shipped_records": mode == "warm"}
            for mode, s in (("cold", 2400.5), ("warm", 12.5))}
    suite.write_text(json.dumps({"runs": runs, "cpus": 2}))
    out = tmp / "speed_smoke.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--smoke", "--data", str(shared_data),
         "--out", str(out), "--suite-json", str(suite)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def test_smoke_writes_every_section(smoke):
    res, stdout = smoke
    assert {"meta", "peak", "finetune", "eval", "cka", "toy_suite", "verdicts", "table"} <= set(res)
    assert res["meta"]["mode"] == "smoke"
    assert "fine-tuning, useful tokens/s" in stdout and "CKA rbf" in stdout


def test_smoke_numbers_are_positive(smoke):
    res, _ = smoke
    assert _positive(res["peak"]["bf16_gflops"]) and _positive(res["peak"]["fp32_gflops"])
    ft = res["finetune"]
    assert _positive(ft["ratio"]) and _positive(ft["ours_share_of_peak"])
    for recipe in ("ours", "baseline"):
        r = ft[recipe]
        for key in ("useful_tokens_per_s", "seconds", "useful_tokens", "processed_tokens", "share_of_peak",
                    "share_of_bf16_peak", "share_of_fp32_peak"):
            assert _positive(r[key]), (recipe, key, r[key])
        assert r["timed_steps"] >= 1 and r["useful_tokens"] <= r["processed_tokens"]
        assert all(math.isfinite(loss) for loss in r["losses"])
    # The baseline pads every sentence to 128 subwords; ours pads only to the batch's longest one.
    assert ft["baseline"]["processed_tokens"] == ft["baseline"]["timed_steps"] * ft["batch_size"] * 128
    assert ft["ours"]["useful_share_of_processed"] > ft["baseline"]["useful_share_of_processed"]
    ev = res["eval"]
    assert ev["sentences"] > 0 and _positive(ev["ratio"]) and _positive(ev["ratio_per_file"])
    for recipe in ("ours", "ours_per_file", "pipeline"):
        assert _positive(ev[recipe]["sentences_per_s"]) and _positive(ev[recipe]["seconds"])
    # ours is zero_shot_eval's one pass: every file scored, every word labelled, the same words as per file
    assert ev["ours"]["scored_languages"] == ev["files"]
    assert ev["ours"]["labelled_words"] == ev["ours_per_file"]["labelled_words"] > 0
    one, per_file = ev["ours"]["batching"], ev["ours_per_file"]["batching"]
    assert one["useful_tokens"] == per_file["useful_tokens"] <= one["processed_tokens"]
    assert one["batches"] <= per_file["batches"]
    ck = res["cka"]
    for kernel in ("rbf", "linear"):
        for key in ("ours_s", "numpy_kornblith_s", "numpy_explicit_h_s", "ratio"):
            assert _positive(ck[kernel][key]), (kernel, key)
        # every side: the same number of timed repeats (after the same one warm-up call)
        assert len(ck[kernel]["ours_repeats"]) == len(ck[kernel]["numpy_kornblith_repeats"]) == \
            len(ck[kernel]["numpy_explicit_h_repeats"]) == ck["repeats"]
        for key in ("ratio",):
            assert _positive(ck[kernel][key]), (kernel, key)


def test_smoke_cka_values_agree_with_numpy(smoke):
    res, _ = smoke
    ck = res["cka"]
    for kernel in ("rbf", "linear"):
        ours, ref = ck[kernel]["values_ours"], ck[kernel]["values_numpy"]
        assert len(ours) == len(ref) == ck["layers"]
        assert max(abs(a - b) for a, b in zip(ours, ref, strict=True)) < 1e-6
        assert all(0 < v <= 1 + 1e-9 for v in ours)
    assert next(v for v in res["verdicts"] if v["name"] == "cka_max_abs_diff")["met"]


def test_smoke_peak_share_is_of_the_training_precision(smoke):
    from xlt_utils.training import bf16_supported

    res, stdout = smoke
    precision = "bf16" if bf16_supported("cpu") else "fp32"
    ft, pk = res["finetune"], res["peak"]
    assert ft["peak_precision"] == pk["training_precision"] == precision
    assert ft["ours"]["share_of_peak"] == ft["ours"][f"share_of_{precision}_peak"]
    assert next(v for v in res["verdicts"] if v["name"] == "finetune_peak_share")["value"] == ft["ours_share_of_peak"]
    assert f"share of {precision} matmul peak" in stdout
    assert ("share of bf16 matmul peak" in stdout) == (precision == "bf16")
    assert pk["bf16_size"] <= pk["size"] and pk["fp32_size"] <= pk["size"]


def test_smoke_reads_the_toy_suite_results(smoke):
    res, _ = smoke
    ts = res["toy_suite"]
    assert ts["status"] == "read from file" and set(ts["runs"]) == {"cold", "warm"}
    for run in ts["runs"].values():
        assert _positive(run["total_seconds"]) and _positive(run["peak_rss_mb"])
    assert not ts["runs"]["cold"]["shipped_records"] and ts["runs"]["warm"]["shipped_records"]


def _speed_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("xlt_speed_benchmark", ROOT / "benchmarks" / "speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_toy_suite_results_are_reported_not_invented(tmp_path):
    ts = _speed_module().toy_suite(tmp_path / "absent.json", run=False)
    assert ts["status"] == "not available" and "runs" not in ts


def test_numpy_reference_matches_the_library_on_correlated_states():
    import numpy as np

    from xlt_utils.similarity import cka_per_layer

    speed = _speed_module()
    a, b = speed.cka_inputs(layers=2, n=30, dim=16, seed=3)
    for kernel in ("rbf", "linear"):
        ours = cka_per_layer(a, b, kernel=kernel)
        orig = [speed.np_cka_explicit_h(a[k], b[k], kernel) for k in range(2)]
        once = [speed.np_cka_kornblith(a[k], b[k], kernel) for k in range(2)]
        np.testing.assert_allclose(ours, orig, atol=1e-10)
        np.testing.assert_allclose(once, orig, atol=1e-10)
        assert ours[0] > ours[1]  # layer 0 of b is the less noisy copy


def test_matmul_peak_shrinks_the_size_of_a_slow_dtype():
    import torch

    speed = _speed_module()
    gflops, size = speed.matmul_gflops(1024, torch.bfloat16, 0.3)  # emulated bf16: a smaller size
    assert _positive(gflops) and 256 <= size <= 1024
    ft = {"non_embedding_parameters": 1000,
          "ours": {"useful_tokens_per_s": 1e6, "useful_tokens": 100, "seconds": 1.0, "time_split": {"fwd_bwd_s": 0.5}},
          "baseline": {"useful_tokens_per_s": 1e5, "useful_tokens": 10, "seconds": 1.0, "time_split": {"fwd_bwd_s": 0.5}}}
    for native, precision, peak in ((True, "bf16", 24.0), (False, "fp32", 12.0)):
        speed.add_peak_shares(ft, {"bf16_gflops": 24.0, "fp32_gflops": 12.0}, bf16_native=native)
        assert ft["peak_precision"] == precision
        assert abs(ft["ours_share_of_peak"] - 6 * 1000 * 1e6 / 1e9 / peak) < 1e-12


def test_fast_path_check_smoke(tmp_path):
    out = tmp_path / "fast_path_smoke.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fast_path_check.py"), "--smoke", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["meta"]["mode"] == "smoke" and len(res["runs"]) == 2
    summary = res["summary"]
    for path in ("ours", "plain", "ours_random_batches"):
        assert len(summary[path]["accuracies"]) == 2
        assert all(0 <= a <= 100 for a in summary[path]["accuracies"])
        assert math.isfinite(summary[path]["std"]) and _positive(summary[path]["train_s"])
    assert isinstance(summary["within_one_std"], bool) and len(summary["diagnostic"]) == 2
    assert summary["min_eval_paths_word_agreement"] > 0.99  # both evaluations give the same labels
    assert "within one std" in proc.stdout
