"""The toy world's calibration (benchmarks/toy_world.py) and design study (benchmarks/toy_design.py):
their checks on hand-made tables, and a smoke run of each script (every code path, no claim)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xlt_utils.data.synthetic import TOY_LANGUAGES, typological_distance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import toy_world  # noqa: E402

TARGETS = ("fr", "ja")


def _row(pre, rnd, pre_std=1.0, rnd_std=1.0):
    return {"pretrained": pre, "pretrained_std": pre_std, "random": rnd, "random_std": rnd_std, "gain": pre - rnd}


def test_typological_distance_counts_the_differing_features():
    assert typological_distance("en") == 0
    assert typological_distance("fr") == 1  # adjectives after the noun only
    assert typological_distance("ja") == 3  # SOV, postpositions, another script
    assert typological_distance("en", "ja") == typological_distance("ja", "en")
    assert all(0 <= typological_distance(c) <= 4 for c in TOY_LANGUAGES)


def test_acceptance_meets_and_misses_as_the_thresholds_say():
    good = {"pos": {"fr": _row(80, 40), "ja": _row(60, 35)},
            "ner": {"fr": _row(60, 30), "ja": _row(20, 19)}, "parse": {"fr": _row(50, 20), "ja": _row(20, 15)}}
    checks = {name: met for name, met, _ in toy_world.acceptance(good, TARGETS)}
    assert all(checks.values()), checks
    bad = {"pos": {"fr": _row(80, 40), "ja": _row(44, 38)},  # mean 62 < 65; ja gains only 6
           "ner": {"fr": _row(30, 25), "ja": _row(10, 20, 2.0, 3.0)}}  # ja 10 below random, spread 3
    checks = {name: met for name, met, _ in toy_world.acceptance(bad, TARGETS)}
    assert not checks["POS mean zero-shot accuracy >= 65"]
    assert not checks["POS gain >= 10 for every target"]
    assert not checks["ner mean gain >= 10"]
    assert not checks["ner: no target below the random encoder by more than its seed spread"]


def test_gradedness_reports_the_rank_correlation_with_distance():
    table = {"pos": {"fr": _row(90, 40), "de": _row(80, 40), "ja": _row(50, 30)}}
    graded = toy_world.gradedness(table, ("fr", "de", "ja"), "en")
    g = graded["tasks"]["pos"]
    assert g["hardest"] == "ja" and g["easiest"] == "fr"
    assert g["spearman_score_vs_distance"] < 0  # farther targets score lower
    assert graded["distance"] == {"fr": 1, "de": 1, "ja": 3}


def _run(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "XLT_SHIPPED_RESULTS": "0",
           "XLT_RESULTS_DIR": str(tmp_path / "results"), "XLT_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--smoke", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_calibration_smoke_writes_every_measure(tmp_path):
    out = tmp_path / "toy_world.json"
    proc = _run("toy_world.py", tmp_path, "--out", str(out))
    res = json.loads(out.read_text())
    assert res["smoke"] and set(res["transfer"]["pos"]) == {"en", *res["targets"]}
    for row in res["transfer"]["pos"].values():
        assert 0 <= row["pretrained"] <= 100 and 0 <= row["random"] <= 100
        assert row["gain"] == pytest.approx(row["pretrained"] - row["random"])
    from xlt_utils.pretrained import load_encoder
    from xlt_utils.profiles import get_profile

    depth = load_encoder(get_profile("toy"))[0].config.num_hidden_layers
    for accs in [*res["retrieval"]["per_layer"].values(), *res["retrieval"]["centred_per_layer"].values()]:
        assert len(accs) == depth + 1 and all(0 <= a <= 100 for a in accs)
    assert res["retrieval"]["chance"] == pytest.approx(100 / res["retrieval"]["n"])
    assert set(res["masked_word_accuracy"]) == {"en", *res["targets"]}
    assert "en->X retrieval" in proc.stdout and "gain" in proc.stdout


@pytest.mark.slow
def test_design_smoke_pretrains_and_measures(tmp_path):
    proc = _run("toy_design.py", tmp_path, "--out", str(tmp_path))
    res = json.loads((tmp_path / "toy_design-smoke.json").read_text())
    assert res["recipe"]["layers"] == 2 and res["recipe"]["steps"] == 20
    assert set(res["pos"]) == set(res["pos_random"]) == {"en", "fr", "de", "ru", "tr", "ja", "ar"}
    assert all(len(a) == 3 for a in res["retrieval"].values())  # embeddings + 2 layers
    assert "gain over a random encoder" in proc.stdout
