"""The paper's experiments as functions of a config: fine-tune (with an ablation), evaluate zero-shot,
and cache the result record (and optionally the model) under a hash of the config."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import numbers
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch

from .ablation import apply_ablation
from .data.download import write_atomic
from .data.records import Sentence, label_set
from .data.synthetic import cache_dir, load_toy
from .evaluation import zero_shot_eval
from .models import XltModel, load_encoder
from .precision import resolve_precision
from .profiles import Profile, check_languages, check_task, get_profile
from .training import TrainConfig, atomic_save, fine_tune, set_seed


@dataclass(frozen=True)
class ExperimentConfig:
    """One fine-tuning run: task, profile, languages, ablation, seed and hyper-parameters."""

    task: str = "pos"
    profile: str = "toy"
    source: str = "en"
    targets: tuple[str, ...] = ()
    ablation: str = "reference"  # reference | reinit | freeze | random_init
    layers: tuple[int, ...] = ()
    seed: int = 1
    train: TrainConfig = field(default_factory=TrainConfig)
    n_train: int | None = None
    n_eval: int | None = None

    def __post_init__(self):
        for name in ("n_train", "n_eval"):
            check_limit(name, getattr(self, name))

    def key(self) -> str:
        """A short hash of the whole config: the name of its cache entry."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["targets"], d["layers"] = list(self.targets), list(self.layers)
        return d

    @property
    def label(self) -> str:
        """A short human name, e.g. "reinit 1-2" or "reference"."""
        if self.ablation in ("reinit", "freeze"):
            return f"{self.ablation} {','.join(map(str, self.layers))}"
        return self.ablation.replace("_", "-")


def experiment(profile: str | Profile = "toy", task: str = "pos", ablation: str = "reference",
               layers=(), seed: int = 1, targets=None, **train_overrides) -> ExperimentConfig:
    """Build a config from a profile's defaults, with optional overrides."""
    p = get_profile(profile)
    check_task(task)
    targets = tuple(check_languages(p, targets if targets is not None else p.targets))
    train = TrainConfig(epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, head_lr=p.head_lr, warmup=p.warmup,
                        seed=seed, max_length=p.max_length)
    for k, v in train_overrides.items():
        if not hasattr(train, k):
            raise ValueError(f"unknown training option {k!r}; valid: {', '.join(train.to_dict())}")
        setattr(train, k, v)
    return ExperimentConfig(task=task, profile=p.name, source=p.source, targets=targets, ablation=ablation,
                            layers=tuple(sorted(set(layers))), seed=seed, train=train,
                            n_train=p.n_train, n_eval=p.n_eval)


def check_limit(name: str, value) -> None:
    """A sentence limit (n_train, n_eval) is None (all sentences) or a positive integer."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
        raise ValueError(f"{name} must be a positive number of sentences or None (all), got {value!r}")


def load_split(profile: str, lang: str, task: str, split: str, limit: int | None = None) -> list[Sentence]:
    """Sentences of one language and split for a task: synthetic in toy, real data otherwise.

    `limit`: the first `limit` sentences (None: all); an empty result is an error naming the split."""
    check_limit("limit", limit)
    p = get_profile(profile)
    if p.model == "toy":
        sents = load_toy(lang, split, task)
    else:
        from .data.real import load_task

        sents = load_task(lang, task, split, ner_source=p.ner_source)
    if not sents:
        raise ValueError(f"the {split} split of {lang!r} for {task} ({profile} profile) has no sentences")
    return sents[:limit] if limit is not None else sents


def results_dir() -> Path:
    """Where result records and fine-tuned models are cached (XLT_RESULTS_DIR, else in the cache)."""
    return Path(os.environ.get("XLT_RESULTS_DIR", cache_dir() / "results"))


#: Result records that ship with the package (one JSON file per grid, {key: record}): the toy paper
#: grid, so that a reader (and CI) gets chapter 3's 171 runs without 40 minutes of training.
SHIPPED_RESULTS = Path(__file__).parent / "assets" / "results"


def shipped_results_enabled() -> bool:
    """Shipped records are used unless XLT_SHIPPED_RESULTS=0 (then every config really trains)."""
    return os.environ.get("XLT_SHIPPED_RESULTS", "1") != "0"


@functools.cache
def _shipped(folder: Path) -> dict[str, dict]:
    records: dict[str, dict] = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        for key, record in data["records"].items():
            if record.get("key") != key:
                raise ValueError(f"{path.name}: the record filed under {key} is {record.get('key')}")
            records[key] = record
    return records


def shipped_record(cfg: ExperimentConfig, folder: Path | None = None) -> dict | None:
    """The shipped record of a config, or None (none shipped, or XLT_SHIPPED_RESULTS=0).

    A record is returned only if its stored config hashes to the same key as `cfg`: a record can
    never stand in for another configuration.
    """
    if not shipped_results_enabled():
        return None
    record = _shipped(Path(folder or SHIPPED_RESULTS)).get(cfg.key())
    if record is None or record["config"] != cfg.to_dict():
        return None
    return record


def ship_records(records: list[dict], path: Path, description: str) -> Path:
    """Write records as a shipped-results file ({"description", "records": {key: record}}), atomically."""
    data = {"description": description, "records": {r["key"]: r for r in records}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(Path(path), json.dumps(data, indent=None, separators=(",", ":"), sort_keys=True) + "\n")
    _shipped.cache_clear()
    return Path(path)


def _git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _versions() -> dict:
    import transformers

    from . import __version__

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "xlt_utils": __version__}


def build_model(cfg: ExperimentConfig) -> tuple[XltModel, object]:
    """The pretrained encoder of the profile with a fresh head, after the config's ablation."""
    set_seed(cfg.seed)
    encoder, tok = load_encoder(get_profile(cfg.profile))
    model = XltModel(encoder, cfg.task, len(label_set(cfg.task)))
    apply_ablation(model, cfg.ablation, cfg.layers, seed=cfg.seed)
    return model, tok


@contextlib.contextmanager
def locked(folder: Path):
    """An exclusive lock on a config's folder, so that two processes (a restarted grid and the
    orphans of a killed one, say) never train one config at once; the OS releases it on SIGKILL."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not on Windows: no lock
        yield
        return
    with open(folder / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run_experiment(cfg: ExperimentConfig, keep_model: bool = False, progress: bool = True) -> dict:
    """Fine-tune and evaluate one config, or return its cached record (atomic writes; resumes).

    The record comes from the results cache, else from the records shipped with the package
    (`shipped_record`; not when `keep_model`, since no model ships), else from a run.
    """
    out = results_dir() / cfg.key()
    record_path = out / "record.json"

    def cached() -> bool:
        return record_path.is_file() and (not keep_model or (out / "model.pt").is_file())

    if cached():
        return json.loads(record_path.read_text())
    if not keep_model and (shipped := shipped_record(cfg)) is not None:
        return shipped
    with locked(out):
        if cached():  # finished by another process meanwhile
            return json.loads(record_path.read_text())
        for stale in out.glob("*.tmp*"):  # left by a writer that was killed
            stale.unlink(missing_ok=True)
        return _run(cfg, out, record_path, keep_model, progress)


def _run(cfg: ExperimentConfig, out: Path, record_path: Path, keep_model: bool, progress: bool) -> dict:
    t0 = time.perf_counter()
    model, tok = build_model(cfg)
    model.to(device())
    train = load_split(cfg.profile, cfg.source, cfg.task, "train", cfg.n_train)
    history = fine_tune(model, tok, train, cfg.train, run_dir=out, progress=progress)
    t1 = time.perf_counter()
    langs = (cfg.source,) + tuple(t for t in cfg.targets if t != cfg.source)
    data = {lang: load_split(cfg.profile, lang, cfg.task, "test", cfg.n_eval) for lang in langs}
    table = zero_shot_eval(model, tok, data, cfg.task, bf16=cfg.train.bf16)
    t2 = time.perf_counter()
    if keep_model:
        atomic_save(model.state_dict(), out / "model.pt")
    record = {"key": cfg.key(), "config": cfg.to_dict(), "label": cfg.label,
              "metrics": table.to_dict(orient="records"), "train_loss": history,
              "timings": {"train_s": round(t1 - t0, 2), "eval_s": round(t2 - t1, 2)},
              "versions": _versions(), "git": _git_revision(),
              "runtime": {"device": device().type, "threads": torch.get_num_threads(),
                          "precision": resolve_precision(cfg.train.bf16, device(), model)}}
    write_atomic(record_path, json.dumps(record, indent=1))
    (out / "checkpoint.pt").unlink(missing_ok=True)  # the run is complete: the resume point is no longer needed
    return record


def load_finetuned(cfg: ExperimentConfig) -> tuple[XltModel, object]:
    """The fine-tuned model of a config (runs it first if its model is not cached)."""
    run_experiment(cfg, keep_model=True)
    encoder, tok = load_encoder(get_profile(cfg.profile))
    model = XltModel(encoder, cfg.task, len(label_set(cfg.task)))
    model.load_state_dict(torch.load(results_dir() / cfg.key() / "model.pt", weights_only=True, map_location="cpu"))
    return model.to(device()).eval(), tok


def records_table(records: list[dict]) -> pd.DataFrame:
    """Flatten result records into one tidy table (one row per language and metric)."""
    rows = []
    for r in records:
        c = r["config"]
        for m in r["metrics"]:
            rows.append({"task": c["task"], "ablation": r["label"], "seed": c["seed"],
                         "role": "source" if m["language"] == c["source"] else "target", **m})
    return pd.DataFrame(rows)
