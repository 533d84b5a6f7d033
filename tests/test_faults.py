"""Faults outside the readers (issue 15): planted checkpoints, one-step schedules, empty inputs,
bad limits, and the environment that goes to Ray workers."""

from __future__ import annotations

import pickle

import pytest
import torch

from xlt_utils.data.records import label_set
from xlt_utils.data.synthetic import load_toy
from xlt_utils.models import XltModel
from xlt_utils.pretrained import load_encoder
from xlt_utils.profiles import get_profile
from xlt_utils.training import TrainConfig, fine_tune


@pytest.fixture(scope="module")
def toy():
    torch.set_num_threads(1)
    encoder, tok = load_encoder(get_profile("toy"))
    return encoder, tok


def _model(toy, task="pos"):
    import copy

    encoder, tok = toy
    torch.manual_seed(0)
    return XltModel(copy.deepcopy(encoder), task, len(label_set(task))), tok


class _Planted:
    """Unpickling this object calls open(marker, "w"): code execution, visible as a new file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# -------------------------------------------------------------------------------------- checkpoints


def test_a_planted_pickle_checkpoint_is_refused_and_runs_nothing(toy, tmp_path):
    model, tok = _model(toy)
    marker = tmp_path / "marker-code-ran"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ckpt = run_dir / "checkpoint.pt"
    torch.save({"model": _Planted(marker), "epoch": 0}, ckpt)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-3)
    with pytest.raises(pickle.UnpicklingError) as e:
        fine_tune(model, tok, load_toy("en", "train")[:8], cfg, run_dir=run_dir, progress=False)
    assert str(ckpt) in str(e.value) and "refused" in str(e.value)
    assert not marker.exists()
    # the plant is real: pickle itself (what an unrestricted torch.load runs) executes it
    import zipfile

    with zipfile.ZipFile(ckpt) as z:
        payload = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    pickle.loads(payload)
    assert marker.exists()


@pytest.mark.slow
def test_a_real_checkpoint_loads_with_weights_only_and_resumes(toy, tmp_path):
    train = load_toy("en", "train")[:24]
    model, tok = _model(toy)
    run_dir = tmp_path / "run"
    first = fine_tune(model, tok, train, TrainConfig(epochs=1, batch_size=8, lr=1e-3), run_dir=run_dir,
                      progress=False)
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)  # plain tensors and types only
    assert state["epoch"] == 1 and state["history"] == first
    assert isinstance(state["rng"], torch.Tensor)
    model2, _ = _model(toy)
    both = fine_tune(model2, tok, train, TrainConfig(epochs=2, batch_size=8, lr=1e-3), run_dir=run_dir,
                     progress=False)
    assert len(both) == 2 and both[0] == first[0]  # epoch 1 came from the checkpoint


# ----------------------------------------------------------------------------------------- schedule


@pytest.mark.parametrize("n, batch_size, epochs, warmup", [(5, 16, 1, 0.1), (16, 16, 1, 0.0), (24, 8, 1, 1.0)])
def test_one_step_and_all_warmup_schedules_train(toy, n, batch_size, epochs, warmup):
    model, tok = _model(toy)
    params = [p.detach().clone() for p in model.head.parameters()]
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=1e-2, warmup=warmup)
    history = fine_tune(model, tok, load_toy("en", "train")[:n], cfg, progress=False)
    assert len(history) == epochs and all(h == h and h > 0 for h in history)  # finite, no NaN
    changed = any(not torch.equal(a, b.detach()) for a, b in zip(params, model.head.parameters(), strict=True))
    assert changed, "no step was taken: the learning rate was 0"


def test_an_empty_training_set_is_refused_by_name(toy):
    model, tok = _model(toy)
    with pytest.raises(ValueError, match="training set is empty"):
        fine_tune(model, tok, [], TrainConfig(epochs=1), progress=False)


# --------------------------------------------------------------------------------- limits, languages


@pytest.mark.parametrize("bad", [-5, 0, 2.5, True, "10"])
def test_sentence_limits_must_be_positive(bad):
    from xlt_utils.experiments import ExperimentConfig, load_split

    with pytest.raises(ValueError, match="n_train must be a positive number"):
        ExperimentConfig(n_train=bad)
    with pytest.raises(ValueError, match="n_eval must be a positive number"):
        ExperimentConfig(n_eval=bad)
    with pytest.raises(ValueError, match="limit must be a positive number"):
        load_split(get_profile("toy"), "en", "pos", "test", bad)


def test_limits_take_the_first_sentences():
    from xlt_utils.experiments import ExperimentConfig, load_split

    full = load_toy("en", "test", "pos")
    assert [s.sent_id for s in load_split(get_profile("toy"), "en", "pos", "test", 5)] == [s.sent_id for s in full[:5]]
    assert len(load_split(get_profile("toy"), "en", "pos", "test", None)) == len(full)
    assert ExperimentConfig(n_train=3).n_train == 3


def test_zero_shot_eval_names_an_empty_language(toy):
    from xlt_utils.evaluation import zero_shot_eval

    model, tok = _model(toy)
    data = {"en": load_toy("en", "test", "pos")[:4], "fr": []}
    with pytest.raises(ValueError, match="language\\(s\\) fr"):
        zero_shot_eval(model, tok, data)
    with pytest.raises(ValueError, match="no languages"):
        zero_shot_eval(model, tok, {})
    table = zero_shot_eval(model, tok, {"en": data["en"]})
    assert list(table["language"]) == ["en"]


# ------------------------------------------------------------------------------------ Ray secrets


def test_driver_env_passes_settings_but_never_credentials():
    from xlt_utils.settings import worker_environment as _driver_env

    env = {
        "HF_TOKEN": "hf_secret", "HF_TOKEN_PATH": "/x/token", "HUGGING_FACE_HUB_TOKEN": "hf_old",
        "HF_HOME": "/h", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_ENDPOINT": "http://mirror",
        "HF_SOMETHING_NEW": "x", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
        "XLT_OFFLINE": "1", "XLT_DATA_DIR": "/d", "XLT_API_TOKEN": "s", "XLT_SECRET": "s",
        "AWS_SECRET_ACCESS_KEY": "s", "PATH": "/bin",
    }
    assert _driver_env(env) == {
        "HF_HOME": "/h", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_ENDPOINT": "http://mirror",
        "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "XLT_OFFLINE": "1", "XLT_DATA_DIR": "/d",
    }


def test_ray_options_carry_no_token(monkeypatch, tmp_path):
    from xlt_utils.sweep import _ray_options

    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    opts = _ray_options({"runtime_env": {"env_vars": {"EXTRA": "1"}}}, tmp_path / "results")
    env = opts["runtime_env"]["env_vars"]
    assert "HF_TOKEN" not in env and "hf_secret_value" not in env.values()
    assert env["HF_HOME"] == str(tmp_path) and env["EXTRA"] == "1"
    assert "XLT_RESULTS_DIR" not in env  # the results root is the task's argument, not the environment


def test_an_unknown_relation_in_a_hand_built_sentence_names_it(toy):
    from xlt_utils.data.records import Sentence
    from xlt_utils.training import make_examples

    _, tok = toy
    s = Sentence(sent_id="mine-1", lang="en", words=["Dogs", "bark"], upos=["NOUN", "VERB"], heads=[2, 0],
                 deprels=["subj", "root"])
    with pytest.raises(ValueError, match=r"sent_id mine-1 \(en\): unknown relations \['subj'\]"):
        make_examples(tok, [s], "parse")


# ------------------------------------------------------------------ issue 25: tokens in local Ray workers

TOKENS = {"HF_TOKEN": "hf_secret_1", "HUGGING_FACE_HUB_TOKEN": "hf_secret_2", "WANDB_API_KEY": "wandb_secret_3",
          "XLT_API_TOKEN": "xlt_secret_4", "AWS_SECRET_ACCESS_KEY": "aws_secret_5"}


@pytest.fixture
def ray_module():
    """Ray, or a skip (a failure under XLT_REQUIRE_RAY=1)."""
    import os

    try:
        import ray
    except ImportError:
        if os.environ.get("XLT_REQUIRE_RAY") == "1":
            pytest.fail("XLT_REQUIRE_RAY=1 but ray is not installed (pip install 'ray[default]')")
        pytest.skip("ray is not installed (XLT_REQUIRE_RAY=1 makes this a failure)")
    return ray


def test_credential_names_keep_settings():
    from xlt_utils.settings import credential_names as _credential_names

    env = {**TOKENS, "HF_TOKEN_PATH": "/t", "TOKENIZERS_PARALLELISM": "false", "HF_HOME": "/h", "PATH": "/bin",
           "RAY_ADDRESS": "auto", "XLT_DATA_DIR": "/d", "GITHUB_TOKEN": "g"}
    assert sorted(_credential_names(env)) == sorted([*TOKENS, "HF_TOKEN_PATH", "GITHUB_TOKEN"])


@pytest.mark.slow
def test_local_ray_workers_hold_no_token(ray_module, monkeypatch, tmp_path):
    """The local instance that run_grid starts (no address, no RAY_ADDRESS): a task's os.environ
    holds none of the driver's tokens, but the settings it needs; the driver keeps its own."""
    import os

    from xlt_utils.sweep import _ray_options, _start_ray

    ray = ray_module
    if ray.is_initialized():
        ray.shutdown()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for k, v in TOKENS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("XLT_DATA_DIR", str(tmp_path / "data"))
    assert _start_ray(None, num_cpus=1) is True
    try:
        worker_env = ray.get(ray.remote(lambda: dict(os.environ)).options(**_ray_options(None, tmp_path)).remote(),
                             timeout=120)
    finally:
        ray.shutdown()
    assert worker_env.get("XLT_DATA_DIR") == str(tmp_path / "data")  # settings still reach the worker
    leaked = {k: v for k, v in worker_env.items() if k in TOKENS or v in TOKENS.values()}
    assert leaked == {}
    assert all(os.environ[k] == v for k, v in TOKENS.items())  # the driver's environment is restored


# ------------------------------------------------------------------ issue 25: offline is offline


@pytest.mark.slow
def test_an_offline_hub_load_sends_no_request(tmp_path):
    """Only XLT_OFFLINE=1 (HF_HUB_OFFLINE unset, so huggingface_hub's own flag is off): loading a hub
    tokenizer that is not cached fails with the offline hint, and not one request reaches the Hub,
    here a loopback server that counts them (it got GET /api/agent-harnesses before the fix)."""
    import os
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits = []

    class Hub(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _any(self):
            hits.append(f"{self.command} {self.path}")
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_POST = _any  # noqa: N815

    hub = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    env.update(XLT_OFFLINE="1", HF_ENDPOINT=f"http://127.0.0.1:{hub.server_address[1]}", HF_HOME=str(tmp_path / "hf"),
               no_proxy="*", NO_PROXY="*")
    code = ("from xlt_utils.models import load_tokenizer\n"
            "try:\n    load_tokenizer('bert-base-multilingual-cased')\n"
            "except RuntimeError as e:\n    print('REFUSED', e)\n")
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    finally:
        hub.shutdown()
        hub.server_close()
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("REFUSED") and "offline" in out.stdout, out.stdout + out.stderr[-2000:]
    assert hits == []
