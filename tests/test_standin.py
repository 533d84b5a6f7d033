"""The stand-in test (issue 13, item 2; chapter 1 since issue 21, item 3): a small BERT with mBERT's real
tokenizer and vocabulary, saved as a local model directory, runs chapters 1-4 with papermill in a
quick-shaped profile on the real files of ../shared/data. Any exception in a chapter fails the test;
nothing returns canned scores.

The chapters receive the stand-in and the tiny sizes through their `profile_overrides` papermill
parameter (`xlt_utils.standin.QUICK_SHAPED`). Shared data has no train file for the source (UD
English-EWT train and UNER English-EWT train are over its 4 MiB limit), so the source trains on its dev
split (`train_split="dev"`, a documented profile field) and NER comes from Universal NER; every file
goes through the real loaders (`load_ud`/`load_ner` via `fetch`, XLT_DATA_DIR, offline, sha256-checked).
Without ../shared/data the chapter run is skipped (failed under XLT_REQUIRE_SHARED_DATA=1).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path

import pytest
import torch

from xlt_utils.ablation import lower_upper
from xlt_utils.pretrained import num_layers
from xlt_utils.standin import QUICK_SHAPED, STANDIN_CONFIG, build_standin

#: The book, a browser and whole chapters: `make test` runs them, `make test-fast` does not.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
#: Chapter 3's grid here: one task, the reference, the lower and the upper pair (the stand-in's
#: consecutive pairs 1-2 and 3-4) and a random encoder; chapter 4 reuses what chapters 2 and 3 trained.
CHAPTERS = {
    "02_finetuning_zero_shot.ipynb": {},
    "03_reinit_ablation.ipynb": {"tasks": ["pos"], "seeds": [1],
                                 "ablations": ["reference", "reinit-consecutive", "random_init"]},
    "04_representation_similarity.ipynb": {},
}


@pytest.fixture(scope="module")
def standin(shared_data, tmp_path_factory):
    return build_standin(tmp_path_factory.mktemp("standin") / "mbert-standin", shared_data / "mbert-tokenizer")


def test_the_standin_is_a_local_model_directory_with_mberts_vocabulary(standin, monkeypatch):
    from xlt_utils.pretrained import load_encoder
    from xlt_utils.profiles import get_profile

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    P = get_profile("quick", model=str(standin))
    enc, tok = load_encoder(P, device="cpu")
    assert len(tok) == enc.config.vocab_size == 119547
    assert enc.config.num_hidden_layers == STANDIN_CONFIG["num_hidden_layers"] == num_layers(P) == 4
    assert lower_upper(num_layers(P)) == ((1, 2), (3, 4))
    assert enc.config.max_position_embeddings == 512
    assert tok.convert_tokens_to_ids(["[CLS]", "[SEP]"]) == [101, 102]
    assert tok.tokenize("Tokenisation multilingue") == ["To", "##ken", "##isation", "multi", "##ling", "##ue"]
    assert sum(p.numel() for p in enc.parameters()) < 9e6 and torch.isfinite(enc.embeddings.word_embeddings.weight).all()


@pytest.fixture()
def chapter_env(shared_data, tmp_path, monkeypatch):
    """Offline, real data from shared/data, an empty result cache, no shipped records, and this
    checkout's package in the chapters' kernels."""
    env = {"XLT_DATA_DIR": str(shared_data), "XLT_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "XLT_CACHE_DIR": str(tmp_path / "cache"), "XLT_RESULTS_DIR": str(tmp_path / "results"),
           "XLT_SHIPPED_RESULTS": "0", "XLT_PROGRESS": "0", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return tmp_path


def _overrides(standin: Path, **changes) -> dict:
    """QUICK_SHAPED with the stand-in's directory, as JSON values (papermill parameters)."""
    return json.loads(json.dumps({**QUICK_SHAPED, "model": str(standin), **changes}))


def _execute(name: str, out: Path, **params) -> None:
    import papermill as pm

    pm.execute_notebook(str(NOTEBOOKS / name), str(out / name), parameters={"profile": "quick", **params},
                        cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3")


def test_chapter_1_runs_on_the_standin(standin, chapter_env):
    """Chapter 1 reads the real test files of the four languages with mBERT's tokenizer, and finds the
    source sentence's NER annotation in UNER English-PUD (its own sentence ids) beside UD English-PUD."""
    import nbformat

    _execute("01_data_and_tokenisation.ipynb", chapter_env, profile_overrides=_overrides(standin), n_sentences=100)
    nb = nbformat.read(chapter_env / "01_data_and_tokenisation.ipynb", as_version=4)
    readers = next(c for c in nb.cells if c.cell_type == "code" and "ner_test = xlt.load_split(" in c.source)
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in readers.outputs)
    assert "ner: the same sentence in the uner test set" in text and re.search(r"deprel +ner\n", text), text
    stats = next(c for c in nb.cells if c.cell_type == "code" and "tokenization_stats(" in c.source)
    table = "".join(o.get("data", {}).get("text/plain", "") for o in stats.outputs)
    assert [line.split()[0] for line in table.splitlines()[1:]] == ["en", "de", "ru", "zh"], table


def test_chapters_2_to_4_run_on_the_standin(standin, chapter_env):
    out, overrides = chapter_env, _overrides(standin)
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    for name, params in CHAPTERS.items():  # any exception in a cell raises PapermillExecutionError here
        _execute(name, out, profile_overrides=overrides, **params)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    print(f"chapters 2-4 on the stand-in: {seconds:.0f} s wall, {cpu:.0f} CPU s (this process and its kernels)")

    # The overrides reached training and the cache key: every record was trained here, on the
    # stand-in's weights, with the tiny sizes and the source's dev split.
    from xlt_utils.pretrained import model_identity

    records = [json.loads(p.read_text()) for p in (out / "results").glob("*/record.json")]
    configs = [r["config"] for r in records]
    # chapter 2: reference and random-init per task; chapter 3 (pos) and chapter 4 (every task): the
    # reference and the lower and upper pairs
    assert sorted((r["config"]["task"], r["label"]) for r in records) == sorted(
        (t, a) for t in ("pos", "ner", "parse") for a in ("reference", "random-init", "reinit 1,2", "reinit 3,4"))
    sha = model_identity(str(standin))["sha256"]
    for c in configs:
        assert (c["model"], c["model_sha256"], c["profile"], c["data"]) == (str(standin), sha, "quick", "real")
        assert (c["n_train"], c["n_eval"], c["train_split"], c["ner_source"]) == (64, 24, "dev", "uner")
        assert (c["train"]["epochs"], c["train"]["batch_size"], c["targets"]) == (1, 16, ["de", "ru", "zh"])
    for r in records:
        assert all(math.isfinite(x) for x in r["train_loss"]) and r["train_loss"]
        assert {m["language"] for m in r["metrics"]} == {"en", "de", "ru", "zh"}
    # Chapter 4 computed CKA on the real parallel PUD sentences of the four languages.
    import nbformat

    nb = nbformat.read(out / "04_representation_similarity.ipynb", as_version=4)
    cka_cell = next(c for c in nb.cells if c.cell_type == "code" and "xlt.cka_per_layer(" in c.source and "curves = " in c.source)
    table = "".join(o.get("data", {}).get("text/plain", "") for o in cka_cell.outputs)
    assert all(lang in table for lang in ("de", "ru", "zh")), table
    # The budget is CPU time, so that a busy machine does not fail the test: 3 minutes on 2 idle cores.
    assert cpu < 2 * 180, f"the stand-in run used {cpu:.0f} CPU s; it should take about 3 minutes on 2 idle cores"


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the chapters' kernels)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def test_a_chapter_that_raises_fails_the_run(standin, chapter_env):
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError, match="train_split must be one of train, dev"):
        _execute("02_finetuning_zero_shot.ipynb", chapter_env, profile_overrides=_overrides(standin, train_split="test"))
