"""Experiment configs, the result cache, and the analyses built on result records."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from xlt_utils.ablation import REFERENCE, Ablation
from xlt_utils.analysis import ablation_deltas, mean_std_table
from xlt_utils.experiments import experiment_config, records_table, run_experiment
from xlt_utils.profiles import get_profile
from xlt_utils.store import default_results_dir
from xlt_utils.verdicts import verdict_c1_c2


def results_dir():
    return default_results_dir()


@pytest.fixture()
def isolated_results(tmp_path, monkeypatch):
    monkeypatch.setenv("XLT_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


def test_config_hash_changes_with_every_field():
    base = experiment_config(get_profile("toy"), task="pos", seed=1)
    assert base.key() == experiment_config(get_profile("toy"), task="pos", seed=1).key()
    others = [experiment_config(get_profile("toy"), task="ner", seed=1), experiment_config(get_profile("toy"), task="pos", seed=2),
              experiment_config(get_profile("toy"), task="pos", seed=1, ablation="reinit", layers=[1, 2]),
              experiment_config(get_profile("toy"), task="pos", seed=1, lr=5e-4), experiment_config(get_profile("toy"), task="pos", seed=1, targets=["fr"])]
    assert len({c.key() for c in others} | {base.key()}) == 6
    assert experiment_config(get_profile("toy"), ablation="reinit", layers=[2, 1]).label == "reinit 1,2"
    assert experiment_config(get_profile("toy"), ablation=Ablation("reinit", (1, 2))) == experiment_config(get_profile("toy"), ablation="reinit", layers=[1, 2])


def test_unknown_options_are_errors():
    with pytest.raises(ValueError, match="unknown training option 'learning_rate'"):
        experiment_config(get_profile("toy"), learning_rate=1e-3)
    with pytest.raises(ValueError, match="valid languages"):
        experiment_config(get_profile("toy"), targets=["xx"])


@pytest.mark.slow
def test_a_finished_config_returns_from_cache_with_identical_numbers(isolated_results):
    cfg = experiment_config(get_profile("toy"), task="pos", seed=1, targets=["fr"], epochs=1)
    cfg = cfg.__class__(**{**cfg.__dict__, "n_train": 200, "n_eval": 50})
    first = run_experiment(cfg, progress=False)
    path = results_dir() / cfg.key() / "record.json"
    stamp = path.stat().st_mtime_ns
    second = run_experiment(cfg, progress=False)
    assert second == first and path.stat().st_mtime_ns == stamp
    assert not (results_dir() / cfg.key() / "checkpoint.pt").exists()
    assert {m["language"] for m in first["metrics"]} == {"en", "fr"}
    assert set(first) >= {"config", "metrics", "versions", "timings", "git"}
    assert not list((results_dir() / cfg.key()).glob("*.tmp*"))
    assert json.loads(path.read_text())["config"]["seed"] == 1


def test_deltas_and_verdicts_follow_the_numbers():
    rows = []
    for seed, noise in ((1, 0.1), (2, -0.1), (3, 0.0)):
        for ablation, src, tgt in ((REFERENCE, 90, 60), (LOWER, 89, 40), (UPPER, 89.5, 59.5)):
            rows += [{"task": "pos", "ablation": ablation, "seed": seed, "role": "source", "value": src + noise},
                     {"task": "pos", "ablation": ablation, "seed": seed, "role": "target", "value": tgt - noise}]
    deltas = ablation_deltas(pd.DataFrame(rows))
    assert deltas[(deltas.ablation == LOWER) & (deltas.role == "target")]["delta"].round(6).tolist() == [-20] * 3
    c1, c2 = verdict_c1_c2(deltas, LOWER, UPPER, task="pos")
    assert (c1.claim, c1.task, c1.holds, c2.claim, c2.holds) == ("C1", "pos", True, "C2", True)
    assert round(c1.numbers["target"], 6) == -20 and round(c1.value, 6) == 19
    assert str(c1).startswith("C1 holds: reinit 1,2: Δsource − Δtarget (points) +19.0") and str(c2).startswith("C2 holds")
    flipped = deltas.assign(delta=-deltas["delta"] * 10)
    c1, c2 = verdict_c1_c2(flipped, LOWER, UPPER)
    assert not c1.holds and str(c1).startswith("C1 does not hold")
    table = mean_std_table(deltas, index=["task", "ablation"], columns="role", value="delta")
    assert table.loc[("pos", LOWER), "target"] == "-20.0 ± 0.0"
    with pytest.raises(ValueError, match="no runs for ablation 'freeze 0-3'; present: reinit 1,2, reinit 5,6"):
        verdict_c1_c2(deltas, Ablation("freeze", range(4)), UPPER)


LOWER, UPPER = Ablation("reinit", (1, 2)), Ablation("reinit", (5, 6))


def test_records_table_is_tidy():
    record = {"label": "reference", "config": {"task": "pos", "seed": 1, "source": "en",
                                               "ablation": {"kind": "reinit", "layers": [1, 2]}},
              "metrics": [{"language": "en", "task": "pos", "metric": "accuracy", "value": 90.0, "n": 10},
                          {"language": "fr", "task": "pos", "metric": "accuracy", "value": 50.0, "n": 10}]}
    t = records_table([record])
    assert t.role.tolist() == ["source", "target"] and t.value.tolist() == [90.0, 50.0]
    assert t.ablation.tolist() == [LOWER, LOWER], "the ablation travels as a value, not as its label"


def _tiny(seed: int = 1):
    cfg = experiment_config(get_profile("toy"), task="pos", seed=seed, targets=["fr"], epochs=1)
    return cfg.__class__(**{**cfg.__dict__, "n_train": 64, "n_eval": 16})


@pytest.mark.slow
def test_shipped_records_are_used_only_for_their_own_config(isolated_results, tmp_path, monkeypatch):
    from xlt_utils import store as experiments

    cfg = _tiny()
    record = run_experiment(cfg, progress=False)
    shipped = tmp_path / "shipped"
    experiments.ship_records([record], shipped / "grid.json", description="test")
    monkeypatch.setattr(experiments, "SHIPPED_RESULTS", shipped)
    monkeypatch.setenv("XLT_RESULTS_DIR", str(tmp_path / "empty"))
    assert experiments.shipped_record(cfg) == record
    assert run_experiment(cfg, progress=False) == record
    assert not (tmp_path / "empty" / cfg.key()).exists(), "a shipped record must not be retrained or copied"
    assert experiments.shipped_record(_tiny(seed=2)) is None
    monkeypatch.setenv("XLT_SHIPPED_RESULTS", "0")
    assert experiments.shipped_record(cfg) is None
    # a record whose stored config is not the config it is filed under never stands in for it
    monkeypatch.delenv("XLT_SHIPPED_RESULTS")
    forged = {**record, "config": {**record["config"], "seed": 7}}
    experiments.ship_records([forged], shipped / "grid.json", description="test")
    assert experiments.shipped_record(cfg) is None
    (shipped / "grid.json").write_text(json.dumps({"records": {"0" * 16: record}}))
    experiments._shipped.cache_clear()
    with pytest.raises(ValueError, match="filed under 0000000000000000"):
        experiments.shipped_record(cfg)
    experiments._shipped.cache_clear()


def test_the_toy_paper_grid_ships_complete_and_keyed_by_its_configs():
    from xlt_utils.experiments import ExperimentConfig
    from xlt_utils.pretrained import num_layers
    from xlt_utils.profiles import get_profile
    from xlt_utils.store import SHIPPED_RESULTS, shipped_record
    from xlt_utils.sweep import paper_grid

    data = json.loads((SHIPPED_RESULTS / "toy-paper-grid.json").read_text())
    grid = paper_grid(get_profile("toy"))
    stale = [k for k, r in data["records"].items() if "ablation" not in r["config"]
             or not isinstance(r["config"]["ablation"], dict) or r["config"].get("model_sha256") != grid[0].model_sha256
             or r["config"].get("version") != grid[0].version]
    assert not stale, (f"{len(stale)} shipped records were made by another toy checkpoint, data or package "
                       "version: regenerate the shipped grid (benchmarks/README.md, sweep --export)")
    for key, record in data["records"].items():
        assert ExperimentConfig.from_dict(record["config"]).key() == key == record["key"]
    L = num_layers(get_profile("toy"))
    # reference, the paper's consecutive pairs (1-2, 3-4, ...), the two frozen halves, random init
    assert len(grid) == (1 + (L + 1) // 2 + 2 + 1) * 3 * 3 and {c.key() for c in grid} <= set(data["records"])
    assert all(shipped_record(c) is not None for c in grid)
    for record in data["records"].values():
        langs = {m["language"] for m in record["metrics"]}
        assert langs == {"en", "fr", "de", "ru", "tr", "ja", "ar"}
        assert all(0 <= m["value"] <= 100 for m in record["metrics"])


def test_pair_matrix_places_each_pair_and_ignores_other_ablations():
    from xlt_utils.analysis import pair_matrix

    rows = []
    for seed in (1, 2):
        for ablation, d in ((Ablation("reinit", (1, 2)), -4.0), (Ablation("reinit", (2, 3)), -1.0),
                            (Ablation("freeze", (0, 1, 2)), -9.0), (Ablation("reinit", (1, 2, 3)), -7.0),
                            (Ablation("reinit", (0, 1)), -5.0)):
            rows.append({"task": "pos", "ablation": ablation, "role": "target", "seed": seed, "delta": d + seed})
    m = pair_matrix(pd.DataFrame(rows), "pos", "target", n_layers=3)
    assert m.shape == (3, 3) and m.loc[1, 2] == -2.5 and m.loc[2, 3] == 0.5
    assert int(m.notna().sum().sum()) == 2, "only Reinit pairs fill the matrix"


def test_verdict_c5_uses_one_similarity_and_an_exact_test():
    from xlt_utils.verdicts import claims_table, similarity_transfer_correlation, verdict_c5

    langs = [f"l{i}" for i in range(8)]
    scores = pd.Series(range(8), index=langs, dtype=float)
    verdict = verdict_c5(scores * 0.1, scores, task="pos")
    assert verdict.holds and verdict.value == pytest.approx(1.0) and verdict.numbers["p"] == pytest.approx(1 / 40320)
    assert str(verdict).startswith("C5 holds: Spearman ρ over 8 targets")
    # per layer (exploratory): the exact one-sided p of each layer, no verdict picked from them
    noisy = pd.DataFrame({layer: [0.3, 0.1, 0.2, 0.5, 0.4, 0.7, 0.8, 0.6][::1 if layer % 2 else -1]
                          for layer in range(7)}, index=langs)
    corr = similarity_transfer_correlation(noisy, scores)
    assert (corr["p"][corr["spearman"] > 0] < 0.05).all() and (corr["p"][corr["spearman"] < 0] > 0.9).all()
    row = claims_table([verdict]).iloc[0]
    assert (row.claim, row.task, row.verdict) == ("C5", "pos", "holds")


def test_ablation_values_travel_from_configs_through_records_analysis_plots_and_widgets():
    """The chapter 3 chain on records of the real grid configs (numbers made up, deterministic):
    every step keys on Ablation values; labels appear only where things are drawn or printed."""
    import matplotlib

    matplotlib.use("Agg")
    from xlt_utils.ablation import RANDOM_INIT, freeze_halves, lower_upper
    from xlt_utils.analysis import pair_matrix, per_seed_scores
    from xlt_utils.plotting import plot_deltas, plot_pair_heatmaps
    from xlt_utils.pretrained import num_layers
    from xlt_utils.profiles import get_profile
    from xlt_utils.sweep import paper_grid
    from xlt_utils.widgets import reinit_explorer

    L = num_layers(get_profile("toy"))
    configs = paper_grid(get_profile("toy"), tasks=("pos",), seeds=(1, 2))
    records = []
    for c in configs:
        cost = sum(c.ablation.layers) + (50 if c.ablation == RANDOM_INIT else 0)
        metrics = [{"language": lang, "task": "pos", "metric": "accuracy", "n": 10,
                    "value": 90.0 - cost * (0.1 if lang == "en" else 1.0) + c.seed * 0.01}
                   for lang in (c.source, *c.targets)]
        records.append({"key": c.key(), "config": c.to_dict(), "label": c.label, "metrics": metrics})
    deltas = ablation_deltas(per_seed_scores(records))
    lower, upper = (Ablation("reinit", layers) for layers in lower_upper(L))
    assert set(deltas.ablation) == {c.ablation for c in configs} - {REFERENCE}
    m = pair_matrix(deltas, "pos", "target", L)
    assert m.loc[1, 2] == pytest.approx(-3.0) and m.loc[L - 1, L] == pytest.approx(-(2 * L - 1))
    c1, c2 = verdict_c1_c2(deltas, lower, upper, task="pos")
    assert c1.numbers["ablation"] == "reinit 1,2" and c1.numbers["target"] == pytest.approx(-3.0)
    assert c1.numbers["seeds"] == 2 and c2.numbers["ablation"] == f"reinit {L - 1},{L}"
    focus = [lower, upper, *freeze_halves(L), RANDOM_INIT]
    fig = plot_deltas(deltas[deltas.ablation.isin(focus)], order=focus)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [a.label for a in focus]
    plot_pair_heatmaps(deltas, L, ["pos"])
    box = reinit_explorer(deltas, order=focus)
    options = box.children[0].children[1].options
    assert list(options[1:len(focus) + 1]) == [a.label for a in focus]
    table = mean_std_table(deltas, index=["task", "ablation"], columns="role", value="delta")
    assert table.loc[("pos", lower), "target"] == "-3.0 ± 0.0"


def test_train_split_is_in_the_key():
    from xlt_utils.experiments import ExperimentConfig
    from xlt_utils.profiles import get_profile

    base = experiment_config(get_profile("toy"), task="pos", seed=1)
    dev = experiment_config(get_profile("toy", train_split="dev"), task="pos", seed=1)
    assert (base.train_split, dev.train_split) == ("train", "dev")
    assert base.to_dict()["train_split"] == "train" and dev.to_dict()["train_split"] == "dev"
    assert dev.key() != base.key()
    for cfg in (base, dev):
        assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="train_split must be one of train, dev"):
        ExperimentConfig(train_split="test")


@pytest.mark.slow
def test_a_config_trains_on_its_train_split(isolated_results, monkeypatch):
    """`_run` reads the source's training sentences from `cfg.train_split` (here toy dev)."""
    import xlt_utils.experiments as experiments
    from xlt_utils.profiles import get_profile

    seen = []
    real = experiments.load_split

    def spy(cfg, lang, task, split, limit=None):
        seen.append((lang, split))
        return real(cfg, lang, task, split, limit)

    monkeypatch.setattr(experiments, "load_split", spy)
    cfg = experiment_config(get_profile("toy", train_split="dev", n_train=40, n_eval=10), task="pos", targets=["fr"],
                     epochs=1)
    record = run_experiment(cfg, progress=False)
    assert seen == [("en", "dev"), ("en", "test"), ("fr", "test")]
    assert record["config"]["train_split"] == "dev" and record["train_loss"]


# ------------------------------------------------------------------ stored files with the wrong content


@pytest.mark.slow
def test_a_stored_model_with_the_wrong_content_is_moved_aside_and_trained_again(isolated_results):
    """A model.pt that is a valid zip but not this config's model (a list; another task's fine-tuned
    model): a warning naming it, the file moved aside, and load_finetuned returns a model trained again,
    equal to the first one."""
    import torch

    from xlt_utils.experiments import load_finetuned
    from xlt_utils.store import CorruptResultWarning, ResultStore

    store = ResultStore(isolated_results)
    cfg = _tiny()
    first, _ = load_finetuned(cfg, progress=False)
    path = store.model_path(cfg)
    ner = experiment_config(get_profile("toy"), task="ner", seed=1, targets=["fr"], epochs=1)
    ner = ner.__class__(**{**ner.__dict__, "n_train": 64, "n_eval": 16})
    load_finetuned(ner, progress=False)
    for planted, why in (([1, 2, 3], "it holds a list, not a state dict"),
                         (torch.load(store.model_path(ner), weights_only=True), "head.weight has shape")):
        torch.save(planted, path)
        with pytest.warns(CorruptResultWarning, match=rf"{path}: not the fine-tuned model of this config") as w:
            model, _ = load_finetuned(cfg, progress=False)
        assert why in str(w[0].message) and "moved aside to model.pt.corrupt-" in str(w[0].message)
        for (n, a), (_, b) in zip(first.state_dict().items(), model.state_dict().items(), strict=True):
            assert torch.equal(a, b), f"{n} differs from the first fine-tuning"
    assert len(list(path.parent.glob("model.pt.corrupt-*"))) == 2


@pytest.mark.slow
def test_a_run_with_a_wrong_checkpoint_in_the_store_trains_from_scratch(isolated_results, tmp_path, monkeypatch):
    import torch

    from xlt_utils.store import CorruptResultWarning, ResultStore

    cfg = _tiny()
    clean = run_experiment(cfg, progress=False, results=tmp_path / "clean")
    store = ResultStore(isolated_results)
    store.folder(cfg).mkdir(parents=True)
    torch.save([1, 2, 3], store.folder(cfg) / "checkpoint.pt")  # a valid zip: the store's own check passes it
    with pytest.warns(CorruptResultWarning, match="checkpoint.pt: not a resume checkpoint of this run: it holds a list"):
        record = run_experiment(cfg, progress=False, results=store)
    assert record["metrics"] == clean["metrics"] and record["train_loss"] == clean["train_loss"]
    assert not (store.folder(cfg) / "checkpoint.pt").exists()
    assert len(list(store.folder(cfg).glob("checkpoint.pt.corrupt-*"))) == 1


@pytest.mark.parametrize("stored_precision", ["bf16", "fp16"])
def test_every_field_is_in_the_key_and_older_records_read_back(stored_precision):
    from xlt_utils.experiments import ExperimentConfig

    cfg = experiment_config(get_profile("toy"), task="ner", seed=2)
    d = cfg.to_dict()
    assert d["precision"] == "fp32" and d["train_split"] == "train" and d["model_commit"] is None
    assert ExperimentConfig.from_dict(d) == cfg
    # a record made before these fields existed, with the training option under its old name (bf16)
    old = {k: v for k, v in d.items() if k not in ("precision", "train_split", "model_commit")}
    old["train"] = {("bf16" if k == "precision" else k): v for k, v in d["train"].items()}
    assert ExperimentConfig.from_dict(old) == cfg
    other = ExperimentConfig.from_dict({**d, "precision": stored_precision})
    assert other.precision == stored_precision and other.key() != cfg.key()
    assert ExperimentConfig.from_dict(other.to_dict()) == other
