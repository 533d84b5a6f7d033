"""The paper's experiments as functions of a config: fine-tune (with an ablation), evaluate zero-shot,
and store the result record (and optionally the model) under a hash of the config (`store`).

A config carries everything that decides its result, so that its key changes when any of it does:
the task, languages, ablation, seed and training options (each checked when the config is made), the
precision training and evaluation run in (resolved when the config is made: `ExperimentConfig.precision`),
the model (its hub id and revision, or the sha256 of the toy checkpoint or of a local directory's
weights), the data (its source and version, and the source split fine-tuning reads) and the package
version. Models are built on `precision.default_device()` (the GPU when there is one), encoder and head together.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import numbers
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd
import torch

from . import __version__, precision, settings
from .ablation import REFERENCE, Ablation, apply_ablation
from .data.download import MANIFEST_PATH, sha256_file
from .data.real import load_task
from .data.records import Sentence, label_set
from .data.synthetic import ToyCorpusSpec, load_toy
from .evaluation import zero_shot_eval
from .languages import UD_RELEASE
from .models import XltModel, model_device  # noqa: F401 (model_device: chapter 2 imports it here)
from .precision import PRECISIONS, hardware_precision, normalize, resolve_precision
from .pretrained import _config, load_encoder, model_identity, model_path, num_layers
from .profiles import Profile, check_languages, check_task, check_train_split, require_profile
from .store import ResultStore, load_tensors, move_aside
from .training import (
    INT_OPTIONS,
    TrainConfig,
    atomic_save,
    check_int_option,
    fine_tune,
    set_seed,
    state_dict_problem,
)

_UNSET = ""  # a provenance field not filled in yet (None is a value: "no sha256 for a hub id")
#: What a record made before a field existed holds for it (`from_dict` reads such records).
_BEFORE_THE_FIELD = {"train_split": "train", "precision": "fp32", "model_commit": None}


@functools.cache
def data_version(data: str) -> str:
    """The version of a data source, for the cache key: the synthetic corpus's key (generator
    version, sizes, seed, languages), or the UD release and the data manifest's sha256."""
    if data == "synthetic":
        return f"synthetic-{ToyCorpusSpec().key()}"
    if data == "real":
        return f"ud-{UD_RELEASE}+manifest-{sha256_file(MANIFEST_PATH)[:12]}"
    raise ValueError(f"unknown data source {data!r}; valid: synthetic, real")


def _auto_precision(model: str, revision: str | None, task: str, sha256: str | None) -> str:
    """What "auto" resolves to for this model and task on this machine's device (`precision.default_device()`), as
    `fine_tune` would resolve it on the loaded model: the model's size is read from its config (built
    on the meta device: no weights loaded), and only when the hardware policy is not fp32 anyway."""
    dev = precision.default_device()
    if hardware_precision(dev) == "fp32":
        return "fp32"
    return resolve_precision("auto", dev, _meta_model(model, revision, task, sha256))


@functools.cache
def _meta_model(model: str, revision: str | None, task: str, sha256: str | None) -> XltModel:
    """The config's model (encoder and head) on the meta device, from its config alone."""
    from transformers import BertModel

    config = _config(model_path(model), revision)  # the lookup `num_layers` makes (cached)
    with torch.device("meta"):
        return XltModel(BertModel(config, add_pooling_layer=False), task, len(label_set(task)))


@dataclass(frozen=True)
class ExperimentConfig:
    """One fine-tuning run: what decides its result, and nothing else."""

    task: str = "pos"
    profile: str = "toy"  # the profile it came from (its values are the fields below)
    model: str = "toy"  # "toy", a hub id or a local model directory
    revision: str | None = None
    model_sha256: str | None = _UNSET  # the toy checkpoint's / local weights' sha256; None for a hub id
    model_commit: str | None = _UNSET  # a hub model's resolved commit (its snapshot folder), if known
    data: str = "synthetic"
    data_version: str = _UNSET
    ner_source: str | None = None  # real data: where NER comes from ("wikiann" or "uner"); None for synthetic
    source: str = "en"
    targets: tuple[str, ...] = ()
    ablation: Ablation = REFERENCE
    seed: int = 1
    train: TrainConfig = field(default_factory=TrainConfig)
    n_train: int | None = None
    n_eval: int | None = None
    version: str = __version__  # xlt_utils's version
    train_split: str = "train"  # the source split fine-tuning reads ("train", or "dev": Profile.train_split)
    precision: str = _UNSET  # what training and evaluation run in: "fp32", "bf16" or "fp16" (+ GradScaler)

    def __post_init__(self):
        check_task(self.task)
        if not isinstance(self.ablation, Ablation):
            raise TypeError(f"ablation must be an Ablation value, got {self.ablation!r}")
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"train must be a TrainConfig, got {self.train!r}")
        object.__setattr__(self, "seed", check_int_option("seed", self.seed, *INT_OPTIONS["seed"]))
        object.__setattr__(self, "targets", tuple(self.targets))
        if _UNSET in (self.model_sha256, self.model_commit):
            ident = model_identity(self.model, self.revision)
            for name in ("sha256", "commit"):
                if getattr(self, f"model_{name}") == _UNSET:
                    object.__setattr__(self, f"model_{name}", ident[name])
        if self.data_version == _UNSET:
            object.__setattr__(self, "data_version", data_version(self.data))
        for name in ("n_train", "n_eval"):
            check_limit(name, getattr(self, name))
        check_train_split(self.train_split)
        object.__setattr__(self, "precision", self._check_precision())

    def _check_precision(self) -> str:
        """The precision this config runs in, resolved when the config is made (so that the cache key
        says it): an explicit `train.precision` as given; "auto" as `precision.resolve_precision` answers on
        this machine's device (fp32 for a small model, else the hardware policy or XLT_PRECISION).
        A precision passed in (`from_dict`, `dataclasses.replace`) is kept, if it agrees with an
        explicit `train.precision`."""
        asked = normalize(self.train.precision)
        if self.precision == _UNSET:
            return asked if asked != "auto" else _auto_precision(self.model, self.revision, self.task, self.model_sha256)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if asked not in ("auto", self.precision):
            raise ValueError(f"precision={self.precision!r} contradicts the training option precision={self.train.precision!r}")
        return self.precision

    def key(self) -> str:
        """A short hash of the whole config: the name of its folder in the result store."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        """The config as JSON-ready values (what `key` hashes and a record stores): every field,
        the precision used included, so a record trained in bf16 or fp16 is never reused by an fp32
        run, nor one of another hub commit."""
        d = asdict(self)
        d["targets"], d["ablation"] = list(self.targets), self.ablation.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ExperimentConfig:
        """The inverse of `to_dict` (same key). A record made before a field existed (or before the
        training option `bf16` was named `precision`) reads with what it was made with."""
        d = {**_BEFORE_THE_FIELD, **d}
        train = dict(d["train"])
        if "bf16" in train:
            train["precision"] = train.pop("bf16")
        d["train"] = TrainConfig(**train)
        d["ablation"] = Ablation.from_dict(d["ablation"])
        return cls(**d)

    @property
    def label(self) -> str:
        """The ablation's label ("reinit 1,2", "reference", ...)."""
        return self.ablation.label


def experiment_config(profile: Profile, task: str = "pos", ablation: Ablation | str = REFERENCE,
               layers=(), seed: int = 1, targets=None, **train_overrides) -> ExperimentConfig:
    """Build a config from a profile's values, with optional overrides.

    `ablation` is an `Ablation`, or its kind with `layers` (``ablation="reinit", layers=(1, 2)``);
    its layers are checked against the depth of the profile's model.
    """
    p = require_profile(profile)
    check_task(task)
    if isinstance(ablation, Ablation):
        if tuple(layers):
            raise ValueError("layers come with the Ablation value; do not pass them separately")
    else:
        ablation = Ablation(ablation, layers)
    ablation.check(num_layers(p))
    targets = tuple(check_languages(p, targets if targets is not None else p.targets))
    valid = [f.name for f in fields(TrainConfig)]
    for k in train_overrides:
        if k not in valid:
            raise ValueError(f"unknown training option {k!r}; valid: {', '.join(valid)}")
    train = TrainConfig(**{**dict(epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, head_lr=p.head_lr,
                                  warmup=p.warmup, seed=seed, max_length=p.max_length), **train_overrides})
    ident = model_identity(p.model, p.revision)
    return ExperimentConfig(task=task, profile=p.name, model=p.model, revision=p.revision,
                            model_sha256=ident["sha256"], model_commit=ident["commit"], data=p.data, data_version=data_version(p.data),
                            ner_source=p.ner_source if p.data == "real" else None, source=p.source, targets=targets, ablation=ablation, seed=seed, train=train,
                            n_train=p.n_train, n_eval=p.n_eval, train_split=p.train_split)


def check_limit(name: str, value) -> None:
    """A sentence limit (n_train, n_eval) is None (all sentences) or a positive integer."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
        raise ValueError(f"{name} must be a positive number of sentences or None (all), got {value!r}")


def load_split(profile: Profile | ExperimentConfig, lang: str, task: str, split: str,
               limit: int | None = None) -> list[Sentence]:
    """Sentences of one language and split for a task, from the data source of a profile (or of a
    config): the synthetic languages, or real data (NER from the profile's `ner_source`).

    `limit`: the first `limit` sentences (None: all); an empty result is an error naming the split."""
    check_limit("limit", limit)
    p = profile if isinstance(profile, ExperimentConfig) else require_profile(profile)
    if p.data == "synthetic":
        sents = load_toy(lang, split, task)
    else:
        sents = load_task(lang, task, split, ner_source=p.ner_source or "wikiann")
    if not sents:
        raise ValueError(f"the {split} split of {lang!r} for {task} ({getattr(p, 'profile', None) or p.name} "
                         f"profile) has no sentences")
    return sents[:limit] if limit is not None else sents


def _git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _versions() -> dict:
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "xlt_utils": __version__}


def _pretrained_encoder(cfg: ExperimentConfig, device=None):
    """The config's pretrained encoder (on `device`, default `precision.default_device()`), refusing weights other than
    those its key was made for."""
    ident = model_identity(cfg.model, cfg.revision)
    if ident["sha256"] != cfg.model_sha256:
        raise ValueError(f"the weights of {cfg.model!r} (sha256 {ident['sha256']}) are not those this config "
                         f"was made for ({cfg.model_sha256}); make the config again with experiment_config()")
    if cfg.model_commit is not None and ident["commit"] not in (None, cfg.model_commit):
        raise ValueError(f"{cfg.model!r} resolves to commit {ident['commit']} in the Hub cache, not to "
                         f"{cfg.model_commit}, the one this config was made for; make the config again")
    return load_encoder(cfg.model, cfg.revision, device=device)  # None: load_encoder's default device


def build_model(cfg: ExperimentConfig, device: torch.device | str | None = None) -> tuple[XltModel, object]:
    """The config's pretrained encoder with a fresh head, after the config's ablation, all of it on
    `device` (default: `precision.default_device()`, the GPU when there is one). The head's initial weights and the
    ablation's draws come from CPU generators, so they are the same numbers on every device.

    Feed it batches on its device: ``batch = {k: v.to(model_device(model)) for k, v in batch.items()}``."""
    device = precision.default_device() if device is None else torch.device(device)
    set_seed(cfg.seed)
    encoder, tok = _pretrained_encoder(cfg, device)
    model = XltModel(encoder, cfg.task, len(label_set(cfg.task))).to(device)  # the head is built on the CPU
    apply_ablation(model, cfg.ablation, seed=cfg.seed)
    return model, tok




def run_experiment(cfg: ExperimentConfig, keep_model: bool = False, progress: bool | None = None,
                   results: str | Path | ResultStore | None = None) -> dict:
    """Fine-tune and evaluate one config, or return its stored record (atomic writes; resumes).

    `results` is the result store (or its root; default `store.default_results_dir()`). The record
    comes from the store, else from the records shipped with the package (not when `keep_model`,
    since no model ships), else from a run, under the config's lock. `progress`: the run's progress
    bars (None: as the settings say, `settings.current().progress`).
    """
    progress = settings.current().progress if progress is None else progress
    store = ResultStore.of(results)
    if (record := store.get(cfg, keep_model)) is not None:
        return record
    with store.locked(cfg) as out:
        if (record := store.get(cfg, keep_model)) is not None:  # finished by another process meanwhile
            return record
        return store.put(cfg, _run(cfg, out, keep_model, progress))


def _run(cfg: ExperimentConfig, out: Path, keep_model: bool, progress: bool) -> dict:
    t0 = time.perf_counter()
    model, tok = build_model(cfg)  # on precision.default_device(), head included
    train = load_split(cfg, cfg.source, cfg.task, cfg.train_split, cfg.n_train)
    # the precision the key says (resolved when the config was made), not one resolved again here
    options = dataclasses.replace(cfg.train, precision=cfg.precision)
    history = fine_tune(model, tok, train, options, run_dir=out, progress=progress)
    t1 = time.perf_counter()
    langs = (cfg.source,) + tuple(t for t in cfg.targets if t != cfg.source)
    data = {lang: load_split(cfg, lang, cfg.task, "test", cfg.n_eval) for lang in langs}
    table = zero_shot_eval(model, tok, data, cfg.task, precision=cfg.precision)
    t2 = time.perf_counter()
    if keep_model:
        atomic_save(model.state_dict(), out / "model.pt")
    return {"key": cfg.key(), "config": cfg.to_dict(), "label": cfg.label,
            "metrics": table.to_dict(orient="records"), "train_loss": history,
            "timings": {"train_s": round(t1 - t0, 2), "eval_s": round(t2 - t1, 2)},
            "versions": _versions(), "git": _git_revision(),
            "runtime": {"device": precision.default_device().type, "threads": torch.get_num_threads(),
                        "precision": cfg.precision}}


def load_finetuned(cfg: ExperimentConfig, results: str | Path | ResultStore | None = None,
                   progress: bool | None = None) -> tuple[XltModel, object]:
    """The fine-tuned model of a config (runs it first if its model is not stored; `progress`:
    show that run's progress bars, None: as the settings say), on `precision.default_device()`.

    A stored model file that loads but is not this config's model (another task's head, a list) is
    moved aside with a `CorruptResultWarning` naming it and saying why, and the config runs again; a
    file that would run code when unpickled is refused with an error naming it."""

    store = ResultStore.of(results)
    for _ in range(2):
        run_experiment(cfg, keep_model=True, results=store, progress=progress)
        path = store.model_path(cfg)
        encoder, tok = _pretrained_encoder(cfg)
        model = XltModel(encoder, cfg.task, len(label_set(cfg.task))).to(precision.default_device())
        state = load_tensors(path, "this model file")
        problem = state_dict_problem(state, model)
        if problem is None:
            model.load_state_dict(state)
            return model.eval(), tok
        move_aside(path, f"not the fine-tuned model of this config ({cfg.task}, {cfg.label}): {problem}")
    raise RuntimeError(f"{path}: the model just trained for this config does not fit it: {problem}")


def records_table(records: list[dict]) -> pd.DataFrame:
    """Flatten result records into one tidy table (one row per language and metric); the
    `ablation` column holds `Ablation` values (their labels print)."""
    rows = []
    for r in records:
        c = r["config"]
        ablation = Ablation.from_dict(c["ablation"])
        for m in r["metrics"]:
            rows.append({"task": c["task"], "ablation": ablation, "seed": c["seed"],
                         "role": "source" if m["language"] == c["source"] else "target", **m})
    return pd.DataFrame(rows)
