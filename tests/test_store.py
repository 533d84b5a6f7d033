"""The result store: one root given as a parameter, defensive reads (corrupt or foreign records and
checkpoints are moved aside and the config runs again), no leftovers, ordinary file modes; and the
cache key, which must change with everything that decides a result (the model's weights included)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings

import pytest
import torch
from transformers import BertModel

from xlt_utils.ablation import lower_upper
from xlt_utils.experiments import build_model, experiment_config, load_finetuned, run_experiment
from xlt_utils.models import tiny_bert_config
from xlt_utils.pretrained import model_identity, num_layers
from xlt_utils.pretraining import toy_model_dir
from xlt_utils.profiles import get_profile
from xlt_utils.store import CorruptResultWarning, ResultStore, write_text_atomic


def _tiny(**kw):
    cfg = experiment_config(get_profile("toy"), task="pos", seed=1, targets=["fr"], epochs=1, **kw)
    return dataclasses.replace(cfg, n_train=48, n_eval=12)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One tiny config run once into a store of its own (with its model)."""
    root = tmp_path_factory.mktemp("store")
    cfg = _tiny()
    record = run_experiment(cfg, keep_model=True, progress=False, results=root)
    return root, cfg, record


def _copy(finished, tmp_path):
    root, cfg, record = finished
    shutil.copytree(root / cfg.key(), tmp_path / cfg.key())
    return ResultStore(tmp_path), cfg, record


@pytest.mark.slow
def test_the_root_is_a_parameter_and_no_environment_is_written(finished, tmp_path, monkeypatch):
    root, cfg, record = finished
    monkeypatch.setenv("XLT_RESULTS_DIR", str(tmp_path / "elsewhere"))
    environ = dict(os.environ)
    assert run_experiment(cfg, results=root) == record
    assert ResultStore(root).get(cfg) == record and ResultStore().root == tmp_path / "elsewhere"
    assert dict(os.environ) == environ and not (tmp_path / "elsewhere").exists()


def test_records_are_created_with_the_usual_mode(finished, tmp_path):
    root, cfg, _ = finished
    umask = os.umask(0o022)
    os.umask(umask)
    assert (root / cfg.key() / "record.json").stat().st_mode & 0o777 == 0o666 & ~umask
    old = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "x.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o640


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "not json", "another config"])
def test_a_bad_record_is_moved_aside_and_the_config_runs_again(finished, tmp_path, damage):
    store, cfg, record = _copy(finished, tmp_path)
    path = store.record_path(cfg)
    text = path.read_text()
    if damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "not json":
        path.write_bytes(b"\x00\xff garbage")
    else:
        other = _tiny(lr=1e-3)
        path.write_text(json.dumps({**record, "key": other.key(), "config": other.to_dict()}))
    with pytest.warns(CorruptResultWarning, match=rf"{path}: .*moved aside") as caught:
        assert store.get(cfg) is None or damage == "never"
    assert len(caught) == 1
    assert [p.name.startswith("record.json.corrupt-") for p in store.folder(cfg).iterdir()].count(True) == 1
    again = run_experiment(cfg, progress=False, results=store)
    assert again["key"] == cfg.key() and again["metrics"] == record["metrics"]
    assert json.loads(path.read_text())["key"] == cfg.key()


@pytest.mark.slow
def test_a_corrupt_checkpoint_or_model_is_moved_aside_and_leftovers_are_cleaned(finished, tmp_path):
    store, cfg, record = _copy(finished, tmp_path)
    folder = store.folder(cfg)
    store.record_path(cfg).unlink()  # as if killed after epoch 1: a checkpoint, no record
    (folder / "checkpoint.pt").write_bytes((folder / "model.pt").read_bytes()[:1000])  # truncated
    leftovers = [folder / n for n in ("model.pt.tmp", ".record.json.123.tmp", ".record.json.abc.part", "x.part")]
    for p in leftovers:
        p.write_text("partial")
    with pytest.warns(CorruptResultWarning, match=rf"{folder / 'checkpoint.pt'}: a truncated or corrupt checkpoint"):
        again = run_experiment(cfg, progress=False, results=store)
    assert again["metrics"] == record["metrics"]
    assert not any(p.exists() for p in leftovers) and not (folder / "checkpoint.pt").exists()
    # a model file that does not pass its CRC checks is not used: the config trains again for it
    data = bytearray((folder / "model.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.pt").write_bytes(bytes(data))
    with pytest.warns(CorruptResultWarning, match="a truncated or corrupt model file"):
        model, _ = load_finetuned(cfg, results=store)
    assert model.task == "pos"


def test_the_key_covers_the_model_data_and_version():
    cfg = _tiny()
    d = cfg.to_dict()
    toy = json.loads((toy_model_dir() / "recipe.json").read_text())["sha256"]
    assert d["model"] == "toy" and d["model_sha256"] == toy and d["data"] == "synthetic"
    assert d["data_version"].startswith("synthetic-") and d["version"] == "0.2.0"
    for change in ({"model_sha256": "0" * 64}, {"data_version": "synthetic-other"}, {"version": "0.1.0"},
                   {"revision": "v1"}):
        assert dataclasses.replace(cfg, **change).key() != cfg.key(), change
    hub = get_profile("quick")
    assert model_identity(hub.model, "abc123") == {"model": hub.model, "revision": "abc123", "sha256": None,
                                                   "commit": None}  # not in the Hub cache
    assert dataclasses.replace(cfg, model_commit="f" * 40).key() != cfg.key()


def test_a_hub_models_key_names_the_commit_its_snapshot_folder_holds(tmp_path, monkeypatch):
    """The Hub cache keeps a model as models--org--name/snapshots/<commit>/, with refs/<branch>
    naming the commit: a config made from the cached model records that commit, and a config made
    for one commit refuses weights of another."""
    import huggingface_hub.constants as hub_constants

    from xlt_utils.experiments import ExperimentConfig
    from xlt_utils.pretrained import hub_commit, snapshot_commit

    old, new = "a" * 40, "b" * 40
    repo = tmp_path / "hub" / "models--org--bert"
    for commit in (old, new):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(old)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hub_commit("org/bert") == old and hub_commit("org/bert", new) == new
    assert hub_commit("org/not-cached") is None
    assert snapshot_commit(repo / "snapshots" / new) == new and snapshot_commit(tmp_path) is None
    at_old = ExperimentConfig(model="org/bert", data="synthetic", precision="fp32")
    assert at_old.model_commit == old and model_identity("org/bert")["commit"] == old
    (repo / "refs" / "main").write_text(new)  # the branch moved on
    at_new = ExperimentConfig(model="org/bert", data="synthetic", precision="fp32")
    assert at_new.model_commit == new and at_new.key() != at_old.key()


def _save_tiny_bert(path, depth: int, seed: int) -> None:
    """A tiny BERT of `depth` layers with the toy tokenizer, saved as a local model directory."""
    torch.manual_seed(seed)
    src = toy_model_dir()
    vocab = len(json.loads((src / "tokenizer.json").read_text())["model"]["vocab"])
    BertModel(tiny_bert_config(vocab, num_hidden_layers=depth, hidden_size=32, num_attention_heads=2,
                               intermediate_size=64), add_pooling_layer=False).save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / name, path / name)


def test_a_local_model_directory_reaches_the_trained_model_and_the_key(tmp_path):
    local = tmp_path / "tiny-bert"
    _save_tiny_bert(local, depth=2, seed=0)
    profile = get_profile("toy", model=str(local))
    assert num_layers(profile) == 2 and lower_upper(num_layers(profile)) == ((1, 2), (1, 2))
    cfg = dataclasses.replace(experiment_config(profile, task="pos", targets=["fr"], epochs=1), n_train=40, n_eval=8)
    toy = _tiny()
    assert cfg.model == str(local) and cfg.key() != dataclasses.replace(toy, n_train=40, n_eval=8).key()
    model, _ = build_model(cfg)
    assert num_layers(model) == 2 and model.encoder.config.hidden_size == 32
    run_experiment(cfg, keep_model=True, progress=False, results=tmp_path / "results")
    tuned, _ = load_finetuned(cfg, results=tmp_path / "results")
    assert num_layers(tuned) == 2 and tuned.encoder.config.hidden_size == 32
    with pytest.raises(ValueError, match=r"layer\(s\) \[3\] do not exist; valid layers: 0 \(embeddings\) to 2"):
        experiment_config(profile, ablation="reinit", layers=(2, 3))
    # other weights in the same directory: another key, and the old config refuses to train on them
    _save_tiny_bert(local, depth=2, seed=1)
    os.utime(local / "model.safetensors", ns=(1, 1))  # a new mtime, whatever the clock's resolution
    again = experiment_config(profile, task="pos", targets=["fr"], epochs=1)
    assert again.model_sha256 != cfg.model_sha256 and dataclasses.replace(again, n_train=40, n_eval=8).key() != cfg.key()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="are not those this config was made for"):
            build_model(cfg)


# ------------------------------------------------------------------ issue 25 item 9: symlinked temporary paths


def test_a_symlink_planted_at_a_temporary_name_is_not_written_through(tmp_path):
    """The old writer used `.<name>.<pid>.tmp` and followed a symlink there: a planted one in a config
    folder overwrote its target. Every name it could have used is planted here."""
    folder = tmp_path / "config"
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in (f".record.json.{os.getpid()}.tmp", "record.json.tmp", ".record.json.tmp", "record.json.part"):
        (folder / name).symlink_to(victim)
    write_text_atomic(folder / "record.json", '{"a": 1}')
    assert victim.read_text() == "precious"
    assert json.loads((folder / "record.json").read_text()) == {"a": 1}
    assert not (folder / "record.json").is_symlink()


def test_atomic_file_writes_whole_files_or_nothing(tmp_path):
    from xlt_utils.store import atomic_file

    folder = tmp_path / "config"
    with atomic_file(folder / "model.pt", "wb") as f:  # binary, as a checkpoint is written
        torch.save({"w": torch.ones(2)}, f)
    assert torch.equal(torch.load(folder / "model.pt", weights_only=True)["w"], torch.ones(2))
    with pytest.raises(RuntimeError), atomic_file(folder / "broken.json") as f:  # a failed write leaves nothing
        f.write("half")
        raise RuntimeError("killed")
    assert not (folder / "broken.json").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt"]


def test_a_planted_lock_symlink_is_refused(tmp_path):
    from xlt_utils.store import lock

    folder = tmp_path / "config"
    folder.mkdir()
    victim = tmp_path / "elsewhere" / "created-by-the-lock"
    victim.parent.mkdir()
    (folder / ".lock").symlink_to(victim)
    with pytest.raises(OSError), lock(folder):
        pass
    assert not victim.exists()
