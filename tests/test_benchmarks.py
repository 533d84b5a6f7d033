"""benchmarks/speed.py --smoke and benchmarks/fast_path_check.py --smoke: every section is produced with
positive numbers, and the restated targets (per hardware class) are computed from the measured numbers
(no speed assertions: speed targets are measured and reported by the benchmarks themselves, never
asserted in unit tests)."""

from __future__ import annotations

import json
import math
import os
import statistics
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


@pytest.mark.slow
def test_smoke_writes_every_section(smoke):
    res, stdout = smoke
    assert {"meta", "hardware", "peak", "finetune", "eval", "cka", "toy_suite", "verdicts", "ratios", "target_lines",
            "table"} <= set(res)
    assert res["meta"]["mode"] == "smoke"
    assert "fine-tuning, useful tokens/s" in stdout and "CKA rbf" in stdout
    assert "\n".join(res["target_lines"]) in stdout  # the target block is printed as written to the JSON


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
        for key in ("ours_s", "numpy_kornblith_s", "numpy_explicit_h_s", "gram_products_s", "ratio", "ours_vs_gram"):
            assert _positive(ck[kernel][key]), (kernel, key)
        # every side: the same number of timed repeats (after the same one warm-up call), the median reported
        for side in ("ours", "numpy_kornblith", "numpy_explicit_h", "gram_products"):
            assert len(ck[kernel][f"{side}_repeats"]) == ck["repeats"] == 3 and ck["warmup_calls"] == 1
            assert ck[kernel][f"{side}_s"] == statistics.median(ck[kernel][f"{side}_repeats"])


def test_smoke_cka_values_agree_with_numpy(smoke):
    res, _ = smoke
    ck = res["cka"]
    for kernel in ("rbf", "linear"):
        ours, ref = ck[kernel]["values_ours"], ck[kernel]["values_numpy"]
        assert len(ours) == len(ref) == ck["layers"]
        assert max(abs(a - b) for a, b in zip(ours, ref, strict=True)) < 1e-6
        assert all(0 < v <= 1 + 1e-9 for v in ours)
    assert next(v for v in res["verdicts"] if v["name"] == "cka_max_abs_diff")["met"]


def test_smoke_peak_share_is_of_the_precision_in_use(smoke):
    from xlt_utils.precision import choose_precision

    res, stdout = smoke
    # the smoke model is small: fine_tune and zero_shot_eval resolve "auto" to fp32 (xlt_utils.precision)
    precision = "fp32"
    ft, ev, pk, hw = res["finetune"], res["eval"], res["peak"], res["hardware"]
    assert ft["peak_precision"] == ev["peak_precision"] == pk["training_precision"] == hw["precision"] == precision
    assert "small model" in hw["precision_why"] and res["meta"]["precision_requested"] == "auto"
    native = choose_precision("cpu") == "bf16"
    assert pk["bf16_native"] == native
    assert hw["class"] == ("CPU, fp32 (bf16 native)" if native else "CPU, fp32 (no native bf16)")
    assert hw["peak_gflops"] == pk["fp32_gflops"]
    assert ft["ours"]["share_of_peak"] == ft["ours"]["share_of_fp32_peak"]
    assert f"share of {precision} matmul peak" in stdout and "share of bf16 matmul peak" not in stdout
    assert f"targets for {hw['class']}" in stdout
    assert pk["bf16_size"] <= pk["size"] and pk["fp32_size"] <= pk["size"]


def test_smoke_targets_are_computed_from_the_measured_numbers(smoke):
    res, stdout = smoke
    ft, ev, ck, hw = res["finetune"], res["eval"], res["cka"], res["hardware"]
    n_params, peak = ft["non_embedding_parameters"], hw["peak_gflops"]
    o = ft["ours"]
    fwd_bwd_s = o["seconds"] * o["time_split"]["fwd_bwd_s"]
    expected = {
        "finetune_peak_share": 6 * n_params * o["useful_tokens"] / o["seconds"] / 1e9 / peak,
        "finetune_fwd_bwd_peak_share": 6 * n_params * o["useful_tokens"] / fwd_bwd_s / 1e9 / peak,
        "eval_peak_share": 2 * n_params * ev["ours"]["useful_tokens"] / ev["ours"]["seconds"] / 1e9 / peak,
        "cka_rbf_vs_gram": ck["rbf"]["ours_s"] / ck["rbf"]["gram_products_s"],
        "cka_linear_vs_gram": ck["linear"]["ours_s"] / ck["linear"]["gram_products_s"],
        "cka_max_abs_diff": max(ck[k]["max_abs_diff"] for k in ("rbf", "linear")),
    }
    rows = {v["name"]: v for v in res["verdicts"]}
    assert set(rows) == set(expected)
    targets = {"finetune_peak_share": 0.45, "finetune_fwd_bwd_peak_share": 0.50, "eval_peak_share": 0.40,
               "cka_rbf_vs_gram": 1.5, "cka_linear_vs_gram": 1.5, "cka_max_abs_diff": 1e-6}
    for name, value in expected.items():
        row = rows[name]
        assert math.isclose(row["value"], value, rel_tol=1e-9), (name, row["value"], value)
        assert row["target"] == targets[name] and row["hardware_class"] == hw["class"]
        met = {">=": value >= row["target"], "<=": value <= row["target"], "<": value < row["target"]}[row["op"]]
        assert row["met"] is met
    for name in ("finetune_peak_share", "finetune_fwd_bwd_peak_share", "eval_peak_share"):
        assert 0 < rows[name]["value"] <= 1, name  # a share of the measured peak: in (0, 100%]
    # the fwd+bwd share divides the same FLOPs by a part of the time: never below the whole step's
    assert rows["finetune_fwd_bwd_peak_share"]["value"] >= rows["finetune_peak_share"]["value"]
    for kernel in ("rbf", "linear"):  # the Gram products the CKA needs: two per layer (their time is
        # part of the CKA's, but two timings on a shared machine need not keep that order: not asserted)
        assert ck[kernel]["gram_products"] == 2 * ck["layers"]
    assert rows["cka_max_abs_diff"]["met"]
    # one printed line per target, with its number and verdict
    lines = res["target_lines"]
    assert lines[0].startswith(f"targets for {hw['class']}") and len(lines) == 1 + len(rows)
    for line, row in zip(lines[1:], res["verdicts"], strict=True):
        assert row["what"] in line and line.endswith(": met" if row["met"] else ": not met")
    assert f"{100 * rows['eval_peak_share']['value']:.1f}%" in lines[3] and "target >= 40%" in lines[3]
    assert f"{rows['cka_rbf_vs_gram']['value']:.2f}x" in lines[4] and "target <= 1.5x" in lines[4]
    # the ratios against the baselines: reported beside the targets, with no verdict
    r = res["ratios"]
    assert r["finetune_vs_xtreme_run_tag"] == ft["ratio"] and r["eval_vs_pipeline"] == ev["ratio"]
    assert r["cka_rbf_vs_numpy_kornblith"] == ck["rbf"]["ratio"] and all(_positive(v) for v in r.values())


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


def test_hardware_class_and_precision_in_use(monkeypatch):
    import torch
    from transformers import BertConfig, BertModel

    from xlt_utils.precision import hardware_precision

    speed = _speed_module()
    assert speed.hardware_class("cpu", "bf16", True) == "CPU, bf16 native"
    assert speed.hardware_class("cpu", "fp32", False) == "CPU, fp32 (no native bf16)"
    assert speed.hardware_class("cpu", "fp32", True) == "CPU, fp32 (bf16 native)"
    assert speed.hardware_class("cuda", "bf16", True) == "CUDA bf16"
    assert speed.hardware_class("cuda", "fp16", False) == "CUDA fp16"
    monkeypatch.delenv("XLT_PRECISION", raising=False)
    with torch.device("meta"):  # mBERT-sized (85 M outside the embeddings) without allocating it
        big = BertModel(BertConfig(vocab_size=1000))
        small = BertModel(BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64))
    assert speed.precision_in_use("auto", big) == (hardware_precision("cpu"), "the hardware policy")
    assert speed.precision_in_use("fp32", big) == ("fp32", "asked for with --precision")
    assert speed.precision_in_use("auto", small) == ("fp32", "the policy's fp32 for a small model")
    monkeypatch.setenv("XLT_PRECISION", "bf16")
    assert speed.precision_in_use("auto", big) == ("bf16", "forced by XLT_PRECISION")


@pytest.mark.slow
def test_matmul_peak_shrinks_the_size_of_a_slow_dtype():
    import torch

    speed = _speed_module()
    gflops, size = speed.matmul_gflops(1024, torch.bfloat16, 0.3)  # emulated bf16: a smaller size
    assert _positive(gflops) and 256 <= size <= 1024
    ft = {"non_embedding_parameters": 1000,
          "ours": {"useful_tokens_per_s": 1e6, "useful_tokens": 100, "seconds": 1.0, "time_split": {"fwd_bwd_s": 0.5}},
          "baseline": {"useful_tokens_per_s": 1e5, "useful_tokens": 10, "seconds": 1.0, "time_split": {"fwd_bwd_s": 0.5}}}
    for precision, peak in (("bf16", 24.0), ("fp32", 12.0)):
        speed.add_peak_shares(ft, {"bf16_gflops": 24.0, "fp32_gflops": 12.0}, precision)
        assert ft["peak_precision"] == precision
        assert abs(ft["ours_share_of_peak"] - 6 * 1000 * 1e6 / 1e9 / peak) < 1e-12
        # forward + backward only: the same 6 x 1000 x 100 FLOPs in the 0.5 s outside the optimizer
        assert abs(ft["ours"]["share_of_peak_fwd_bwd_only"] - 6 * 1000 * 100 / 0.5 / 1e9 / peak) < 1e-12
    ev = {"ours": {"useful_tokens": 300, "seconds": 2.0}}
    speed.add_eval_share(ev, {"fp32_gflops": 12.0}, "fp32", 1000)
    assert ev["peak_precision"] == "fp32" and abs(ev["ours"]["share_of_peak"] - 2 * 1000 * 300 / 2.0 / 1e9 / 12.0) < 1e-15


@pytest.mark.slow
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
