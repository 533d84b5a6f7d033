"""Chapter 5's lab (`xlt_utils.lab`): the variants change one property each, the shipped toy world
is untouched, the changes do what they say, and the measurement is the calibration's."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from xlt_utils import lab
from xlt_utils.data.download import sha256_file
from xlt_utils.data.synthetic import ToyCorpusSpec, load_toy, pretraining_files
from xlt_utils.models import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "05_what_makes_bert_multilingual.ipynb"


# ------------------------------------------------------------------------------- bad input

def test_unknown_variant_is_an_error_listing_the_valid_ones():
    with pytest.raises(ValueError) as e:
        lab.get_variant("wide")
    for name in lab.VARIANTS:
        assert name in str(e.value)
    done = subprocess.run([sys.executable, "-m", "xlt_utils.lab", "wide"], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 2
    assert "unknown lab variant 'wide'" in done.stderr and "language-positions" in done.stderr


# --------------------------------------------------------------- one property per variant

def test_lab_recipe_is_the_shipped_recipe_shorter_and_shallower():
    from xlt_utils.pretraining import PretrainRecipe as Shipped

    assert lab.PretrainRecipe().to_dict() == Shipped().to_dict()  # the same fields and defaults
    diff = {k for k, v in lab.LAB_RECIPE.to_dict().items() if v != Shipped().to_dict()[k]}
    assert diff == {"layers", "steps", "warmup"}


def test_every_variant_changes_exactly_one_property_of_the_control():
    control = lab.VARIANTS["control"]
    for v in lab.VARIANTS.values():
        if v.name == "control":
            continue
        changed = [f for f in ("vocab", "positions", "inverted") if getattr(v, f) != getattr(control, f)]
        recipe = {k for k, x in v.recipe.to_dict().items() if x != control.recipe.to_dict()[k]}
        if recipe:
            changed.append("width")
            assert recipe == {"hidden", "intermediate"}  # width: the hidden size and its FFN, nothing else
        assert len(changed) == 1, (v.name, changed)
        assert v.expect in ("lower", "kept") and v.hypothesis and v.finding and v.paper


def test_mask_tokens_is_the_shipped_masking():
    from xlt_utils.pretraining import mask_tokens as shipped

    tok = load_tokenizer(lab.SHIPPED_DIR)
    ids = torch.randint(5, len(tok), (16, 20))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    a = lab.mask_tokens(ids, special, tok, 0.15, torch.Generator().manual_seed(3))
    b = shipped(ids, special, tok, 0.15, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert (a[1] != -100).any() and not (a[1][:, 0] != -100).any()  # specials never chosen


# ------------------------------------------------------------------ the shipped world is unchanged

def test_shipped_world_is_unchanged():
    """The default corpus and the shipped tokenizer give the sentences and ids they gave before the
    lab existed, and the shipped checkpoint is the one its recipe records."""
    files = pretraining_files(ToyCorpusSpec())
    first = files["en"].read_text(encoding="utf-8").splitlines()[0]
    assert first == "to kusguta pidegied na gapiw fenare po Fisugu lagru ."
    tok = load_tokenizer(lab.SHIPPED_DIR)
    assert tok(first)["input_ids"] == [2, 221, 566, 780, 212, 283, 2263, 1471, 337, 18, 231, 238, 118, 2046, 5, 3]
    record = json.loads((lab.SHIPPED_DIR / "recipe.json").read_text())
    assert record["sha256"] == sha256_file(lab.SHIPPED_DIR / "model.safetensors")
    assert record["sha256"] == "0ee68a61f6ec3ea1c0e60ba31a1ad4516a39cb2f45118ce2b2653f0978543fa2"
    assert record["tokenizer_sha256"] == sha256_file(lab.SHIPPED_DIR / "tokenizer.json")
    # the lab's default paths are never the shipped checkpoint's
    for v in lab.VARIANTS.values():
        assert lab.SHIPPED_DIR not in lab.model_dir(v).parents and lab.model_dir(v) != lab.SHIPPED_DIR


# ---------------------------------------------------------------------- the changes themselves

@pytest.mark.parametrize("lang", ["fr", "de", "ar"])
def test_inverted_sentence_is_the_same_annotation_read_backwards(lang):
    for s in load_toy(lang, "test", "ner")[:50] + load_toy(lang, "test", "pos")[:50]:
        r = lab.invert_sentence(s)
        assert r.words == s.words[::-1]
        back = lab.invert_sentence(r)
        assert (back.words, back.upos, back.heads, back.deprels, back.ner) == \
            (s.words, s.upos, s.heads, s.deprels, s.ner)
        n = len(s.words)
        if s.heads is not None:
            assert r.heads.count(0) == s.heads.count(0) == 1
            for i, h in enumerate(s.heads):  # word i's head is the same word after inversion
                j = n - 1 - i
                assert r.heads[j] == (0 if h == 0 else n + 1 - h)
                assert r.words[r.heads[j] - 1] == s.words[h - 1] if h else True
        if s.ner is not None:
            assert _spans(r.ner, n, reverse=True) == _spans(s.ner, n)
            assert all(not t.startswith("I-") or r.ner[i - 1] != "O" for i, t in enumerate(r.ner))


def _spans(tags, n, reverse=False):
    """Entity spans as sets of original word positions with their type."""
    out, cur = [], None
    for i, t in enumerate(tags):
        pos = n - 1 - i if reverse else i
        if t.startswith("B-"):
            cur = (t[2:], {pos})
            out.append(cur)
        elif t.startswith("I-"):
            cur[1].add(pos)
    return sorted((t, tuple(sorted(p))) for t, p in out)


def test_disjoint_vocabulary_shares_only_special_tokens():
    v = lab.VARIANTS["disjoint-vocab"]
    inputs = lab.LanguageInputs(v, 3000)
    assert inputs.vocab_size() == 5 + 7 * 2995 and inputs.max_positions() == 128
    ids = torch.tensor([[2, 5, 17, 2999, 4, 3, 0]])
    seen = []
    for k in range(len(lab.LANGUAGES)):
        mapped, pos = inputs.map(ids, k)
        assert pos is None
        assert mapped[0, [0, 4, 5, 6]].tolist() == [2, 4, 3, 0]  # [CLS] [MASK] [SEP] [PAD] shared
        seen.append(set(mapped[0, [1, 2, 3]].tolist()))
        assert max(seen[-1]) < inputs.vocab_size()
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1:])
    assert inputs.map(ids, 0)[0].tolist() == ids.tolist()  # the source keeps the shipped ids


def test_language_positions_are_disjoint_per_language_and_per_row():
    inputs = lab.LanguageInputs(lab.VARIANTS["language-positions"], 3000)
    assert inputs.vocab_size() == 3000 and inputs.max_positions() == 7 * 128
    ids = torch.ones(2, 10, dtype=torch.long) * 7
    mapped, pos = inputs.map(ids, torch.tensor([0, 3]))
    assert torch.equal(mapped, ids)
    assert pos[0].tolist() == list(range(10)) and pos[1].tolist() == list(range(384, 394))


def test_hook_feeds_the_language_and_refuses_to_guess(tmp_path):
    """A lab encoder gives the same states as a plain call with the mapped ids and positions, and
    refuses to run outside `inputs.language(...)`."""
    from transformers import BertModel

    from xlt_utils.models import tiny_bert_config

    v = dataclasses.replace(lab.VARIANTS["language-positions"], vocab="disjoint")
    inputs = lab.LanguageInputs(v, 50)
    torch.manual_seed(0)
    enc = BertModel(tiny_bert_config(inputs.vocab_size(), num_hidden_layers=1, hidden_size=16, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=inputs.max_positions()),
                    add_pooling_layer=False).eval()
    ids = torch.tensor([[2, 10, 11, 3]])
    mapped, pos = inputs.map(ids, lab.LANGUAGES.index("ja"))
    want = enc(input_ids=mapped, position_ids=pos).last_hidden_state
    inputs.attach(enc)
    with inputs.language("ja"):
        got = enc(input_ids=ids).last_hidden_state
    assert torch.equal(got, want)
    with pytest.raises(RuntimeError, match="inputs.language"):
        enc(input_ids=ids)


# ------------------------------------------------------------------- pretraining and measuring

def test_pretraining_resumes_to_the_same_weights(tmp_path):
    v = lab.VARIANTS["disjoint-vocab"].with_recipe(lab.SMOKE_RECIPE)
    whole = lab.pretrain_variant(v, tmp_path / "whole", log=lambda m: None)
    part = lab.pretrain_variant(v, tmp_path / "part", checkpoint_every=4, max_steps=9, log=lambda m: None)
    assert part["steps"] == 9 and (tmp_path / "part" / "resume.pt").is_file()
    resumed = lab.pretrain_variant(v, tmp_path / "part", checkpoint_every=4, log=lambda m: None)
    assert resumed["sha256"] == whole["sha256"]
    assert not (tmp_path / "part" / "resume.pt").exists()
    assert resumed["sha256"] == sha256_file(tmp_path / "part" / "model.safetensors")
    assert json.loads((tmp_path / "part" / "config.json").read_text())["vocab_size"] == 5 + 7 * 2995


def test_transfer_run_is_the_calibration_run(tmp_path):
    """On the shipped checkpoint the lab's run gives exactly the scores of `run_experiment` with the
    toy profile (same data, seeding, recipe and random encoder), at a small size."""
    from xlt_utils import experiments
    from xlt_utils.ablation import RANDOM_INIT, REFERENCE
    from xlt_utils.experiments import run_experiment

    experiment = getattr(experiments, "experiment_config", None) or experiments.experiment  # renamed
    from xlt_utils.profiles import get_profile

    prof = get_profile("toy", n_train=40, n_eval=20)
    for ablation, random_encoder in ((REFERENCE, False), (RANDOM_INIT, True)):
        cfg = experiment(prof, task="pos", ablation=ablation, seed=2, epochs=1)
        record = run_experiment(cfg, progress=False, results=tmp_path)
        want = {m["language"]: m["value"] for m in record["metrics"] if m["metric"] == "accuracy"}
        got = lab.transfer_run(lab.VARIANTS["control"], lab.SHIPPED_DIR, "pos", 2, random_encoder, smoke=True)
        assert got == want


def test_smoke_run_end_to_end(tmp_path):
    res = lab.run_variant("inverted-fr", smoke=True, models=tmp_path / "models", log=lambda m: None)
    out = tmp_path / "models"
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    assert json.loads((folder / "results.json").read_text()) == res
    assert res["sha256"] == sha256_file(folder / "model.safetensors")
    assert res["complete"] and res["smoke"] and res["lab"]["inverted"] == ["fr"]
    assert res["recipe"] == json.loads(json.dumps(lab.SMOKE_RECIPE.to_dict()))
    for enc in ("pretrained", "random"):
        scores = res["transfer"]["pos"][enc]["1"]
        assert set(scores) == set(lab.LANGUAGES) and all(0 <= x <= 100 for x in scores.values())
    per_layer = res["retrieval"]["per_layer"]
    assert set(per_layer) == set(lab.LANGUAGES) - {"en"}
    assert all(len(a) == lab.SMOKE_RECIPE.layers + 1 for a in per_layer.values())
    assert (lab.RESULTS_DIR / "inverted-fr-smoke.json").exists() is False  # nothing written into the package
    again = lab.run_variant("inverted-fr", smoke=True, models=tmp_path / "models", log=lambda m: None)
    assert again == res  # restarted: reuses the checkpoint and every measurement


# ---------------------------------------------------------------------- verdicts and results

def _res(expect, gains_by_seed, retrieval, inverted=()):
    """A results dict with the given per-seed gains (every target, every task) and retrieval."""
    langs = lab.LANGUAGES
    transfer = {t: {"pretrained": {str(s): {c: 50 + g for c in langs} for s, g in enumerate(gains_by_seed, 1)},
                    "random": {str(s): {c: 50.0 for c in langs} for s in range(1, len(gains_by_seed) + 1)}}
                for t in lab.TASKS}
    return {"expect": expect, "lab": {"inverted": list(inverted)}, "transfer": transfer,
            "retrieval": {"per_layer": {c: [retrieval, retrieval] for c in langs if c != "en"}}}


def test_verdict_rule():
    control = _res("kept", [30, 31, 29], 20)
    assert lab.verdict(_res("lower", [10, 11, 9], 5), control)["verdict"] == "reproduces"
    assert lab.verdict(_res("lower", [31, 32, 30], 22), control)["verdict"] == "does not reproduce"
    assert lab.verdict(_res("lower", [10, 11, 9], 25), control)["verdict"] == "unclear"
    assert lab.verdict(_res("kept", [20, 21, 19], 10), control)["verdict"] == "reproduces"
    assert lab.verdict(_res("kept", [0.5, -0.5, 0.2], 1), control)["verdict"] == "does not reproduce"
    assert lab.verdict(_res("kept", [10, 11, 9], 10), control)["verdict"] == "unclear"
    v = lab.verdict(_res("lower", [10, 11, 9], 5), control)
    assert v["d"] == pytest.approx(-20) and v["s"] == pytest.approx(2 ** 0.5) and v["seeds"] == 3


def test_shipped_results_belong_to_their_variants():
    results = lab.load_results()
    for name, res in results.items():
        v = lab.VARIANTS[name]
        assert res["recipe"] == json.loads(json.dumps(v.recipe.to_dict()))
        assert res["lab"] == v.lab_fields() and not res["smoke"]
        assert len(res["sha256"]) == 64 and res["pretrain_s"] > 0
        for by_enc in res["transfer"].values():
            for seeds in by_enc.values():
                assert set(seeds) <= {"1", "2", "3"}
                assert all(set(s) == set(lab.LANGUAGES) for s in seeds.values())
        assert res["seeds_done"]  # says which seeds ran


@pytest.mark.skipif(not NOTEBOOK.exists(), reason="the chapter is not written yet")
def test_notebook_runs_a_learner_variant_end_to_end_at_smoke_size(tmp_path):
    """The chapter's learner parameter pretrains and measures a variant in the notebook itself."""
    import papermill

    out = tmp_path / "05.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), cwd=str(NOTEBOOK.parent), kernel_name="python3",
                               parameters={"learner_variant": "inverted-fr", "learner_size": "smoke"},
                               progress_bar=False)
    import nbformat

    printed = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"
                      for o in c.outputs)
    assert "inverted-fr (smoke recipe: 2 layers x 32, 12 steps)" in printed
    assert "pos gain over a random encoder (target mean): " in printed
    assert "learner_variant is empty" not in printed


def test_learner_run_refuses_an_unknown_size():
    with pytest.raises(ValueError, match="valid sizes: smoke, lab"):
        lab.learner_run("control", "big")
