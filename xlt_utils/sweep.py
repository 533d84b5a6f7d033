"""The paper's protocol as a grid: tasks x ablations x seeds, run locally or on a Ray cluster.

Every configuration goes through `run_experiment`, so whichever way it was computed its record and
its per-epoch checkpoints land in the same cache (``results_dir()/<key>/``): a grid that was killed
restarts where it stopped, configurations already done are never run (or submitted) again, and a grid
run locally and one run on Ray give the same records.

    python -m xlt_utils.sweep --profile toy --tasks pos ner \\
        --ablations reference reinit-pairs freeze-halves random_init --seeds 1 2 3 --dry-run

Ablations are written as strings: ``reference``, ``random_init``, ``reinit:1,2``, ``freeze:0-3``
(layers are numbered as in ``hidden_states``: 0 is the embedding layer, 1..L the transformer layers),
or one of two families: ``reinit-pairs`` (every pair of transformer layers, see `reinit_pairs`) and
``freeze-halves`` (the lower and the upper half, see `freeze_halves`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .analysis import mean_std_table, per_seed_scores
from .experiments import (
    ExperimentConfig,
    experiment,
    records_table,
    results_dir,
    run_experiment,
    ship_records,
    shipped_record,
)
from .profiles import Profile, get_profile
from .training import TrainConfig

ABLATION_FORMS = ("reference", "random_init", "reinit:<layers>", "freeze:<layers>", "reinit-pairs",
                  "freeze-halves")
_PROFILE_DEFAULT = object()  # n_train / n_eval not given: the profile's value (None means "all")
_KNOWN_LAYERS = {"bert-base-multilingual-cased": 12, "bert-base-multilingual-uncased": 12}


class SweepError(RuntimeError):
    """Some configurations of a grid failed; the others finished and are cached."""

    def __init__(self, failures: list[tuple[ExperimentConfig, BaseException]]):
        self.failures = failures
        lines = [f"  {c.task} {c.label} seed {c.seed} ({c.key()}): {type(e).__name__}: {e}" for c, e in failures]
        super().__init__(f"{len(failures)} configuration(s) failed (the others are cached; rerun to retry):\n"
                         + "\n".join(lines))


# ----------------------------------------------------------------------------------------- ablations

def num_layers(profile: str | Profile = "toy") -> int:
    """The number of transformer layers L of a profile's encoder (layers 0..L exist)."""
    p = get_profile(profile)
    if p.model == "toy":
        from .models import tiny_bert_config

        return tiny_bert_config(vocab_size=1).num_hidden_layers
    if p.model in _KNOWN_LAYERS:
        return _KNOWN_LAYERS[p.model]
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(p.model).num_hidden_layers


def format_layers(layers: Iterable[int]) -> str:
    """``(1, 2)`` -> ``"1,2"``; runs of three or more become ranges: ``(0, 1, 2, 3, 5)`` -> ``"0-3,5"``."""
    layers = sorted(set(layers))
    parts = []
    for _, run in itertools.groupby(enumerate(layers), key=lambda t: t[1] - t[0]):
        run = [v for _, v in run]
        parts += [f"{run[0]}-{run[-1]}"] if len(run) >= 3 else [str(v) for v in run]
    return ",".join(parts)


def ablation_spec(ablation: str, layers: Iterable[int] = ()) -> str:
    """The canonical string of an ablation: ``reference``, ``random_init``, ``reinit:1,2``, ``freeze:0-3``."""
    return f"{ablation}:{format_layers(layers)}" if ablation in ("reinit", "freeze") else ablation


def reinit_pairs(n_layers: int) -> list[str]:
    """Every pair of transformer layers to re-initialise: ``["reinit:1,2", "reinit:1,3", ...]`` (L(L-1)/2)."""
    return [ablation_spec("reinit", pair) for pair in itertools.combinations(range(1, n_layers + 1), 2)]


def freeze_halves(n_layers: int) -> list[str]:
    """Freeze the lower half (embeddings and layers 1..L/2) or the upper half (L/2+1..L)."""
    half = n_layers // 2
    return [ablation_spec("freeze", range(0, half + 1)), ablation_spec("freeze", range(half + 1, n_layers + 1))]


FAMILIES = {"reinit-pairs": reinit_pairs, "freeze-halves": freeze_halves}


def _forms(n_layers: int | None) -> str:
    span = f"0..{n_layers}" if n_layers is not None else "0..L"
    return (f"valid ablations: {', '.join(ABLATION_FORMS)} (<layers>: numbers or ranges in {span}, "
            "comma-separated, e.g. 'reinit:1,2' or 'freeze:0-3')")


def _parse_layers(text: str, spec: str, n_layers: int | None) -> tuple[int, ...]:
    layers: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            lo, _, hi = part.partition("-")
            a, b = int(lo), int(hi) if hi else int(lo)
            if b < a:
                raise ValueError(part)
            layers.update(range(a, b + 1))
    except ValueError:
        raise ValueError(f"cannot read the layers of ablation {spec!r}; {_forms(n_layers)}") from None
    bad = sorted(i for i in layers if i < 0 or (n_layers is not None and i > n_layers))
    if bad:
        raise ValueError(f"ablation {spec!r}: layer(s) {bad} do not exist; {_forms(n_layers)}")
    return tuple(sorted(layers))


def parse_ablation(spec: str, n_layers: int | None = None) -> tuple[str, tuple[int, ...]]:
    """``"reinit:1,2"`` -> ``("reinit", (1, 2))``; raises a ValueError listing the valid forms.

    ``random-init`` is read as ``random_init``, and the labels of records (``"reinit 1,2"``) are
    accepted too. With `n_layers`, layers outside 0..n_layers are errors.
    """
    text = spec.strip()
    name, sep, rest = text.replace(" ", ":", 1).partition(":")
    name = name.strip().lower().replace("random-init", "random_init")
    if name in ("reference", "random_init") and not sep:
        return name, ()
    if name in ("reinit", "freeze") and rest.strip():
        return name, _parse_layers(rest, spec, n_layers)
    if name in ("reinit", "freeze"):
        raise ValueError(f"ablation {spec!r} needs layers, e.g. '{name}:1,2'; {_forms(n_layers)}")
    raise ValueError(f"unknown ablation {spec!r}; {_forms(n_layers)}")


def expand_ablations(specs: Iterable[str] | str, n_layers: int | None = None) -> list[tuple[str, tuple[int, ...]]]:
    """Parse ablation strings (families expanded) into ``(ablation, layers)``, in order, without duplicates."""
    if isinstance(specs, str):
        specs = [specs]
    out: dict[tuple[str, tuple[int, ...]], None] = {}
    for spec in specs:
        family = FAMILIES.get(spec.strip().lower().replace("_", "-"))
        if family is not None:
            if n_layers is None:
                raise ValueError(f"{spec!r} needs the number of layers")
            out.update(dict.fromkeys(parse_ablation(s, n_layers) for s in family(n_layers)))
        else:
            out[parse_ablation(spec, n_layers)] = None
    return list(out)


# ----------------------------------------------------------------------------------------- the grid

#: The paper's ablation grid (Muller et al., 2021, section 4): the reference, every pair of layers
#: re-initialised, the lower and the upper half frozen, and a randomly initialised encoder.
PAPER_ABLATIONS = ("reference", "reinit-pairs", "freeze-halves", "random_init")


def paper_grid(profile: str | Profile = "toy", tasks: Sequence[str] | None = None,
               seeds: Sequence[int] | None = None, **kwargs) -> list[ExperimentConfig]:
    """The configs of `PAPER_ABLATIONS` x tasks x seeds (the profile's tasks and seeds by default).

    In the toy profile (6 layers, 3 tasks, 3 seeds) that is (1 + 15 + 2 + 1) x 3 x 3 = 171 runs.
    """
    return expand_grid(profile, tasks=tasks, ablations=PAPER_ABLATIONS, seeds=seeds, **kwargs)


def expand_grid(profile: str | Profile = "toy", tasks: Sequence[str] | None = None,
                ablations: Sequence[str] | str = ("reference",), seeds: Sequence[int] | None = None,
                targets: Sequence[str] | None = None, n_train=_PROFILE_DEFAULT, n_eval=_PROFILE_DEFAULT,
                **train_overrides) -> list[ExperimentConfig]:
    """The configs of tasks x ablations x seeds, in that order (task outermost), without duplicates.

    `tasks`, `seeds` and `targets` default to the profile's; `n_train` / `n_eval` to the profile's
    (``None`` means every sentence); `train_overrides` are TrainConfig fields (``epochs=1``, ``lr=...``).
    """
    p = get_profile(profile)
    if isinstance(tasks, str) or isinstance(seeds, int | str):
        raise TypeError("tasks and seeds are sequences, e.g. tasks=('pos',), seeds=(1, 2, 3)")
    tasks = tuple(tasks) if tasks is not None else p.tasks
    seeds = tuple(int(s) for s in seeds) if seeds is not None else p.seeds
    if not tasks or not seeds:
        raise ValueError("a grid needs at least one task and one seed")
    if "seed" in train_overrides:
        raise ValueError("the training seed is the config's seed: pass seeds=(...)")
    parsed = expand_ablations(ablations, num_layers(p))
    if not parsed:
        raise ValueError(f"a grid needs at least one ablation; {_forms(num_layers(p))}")
    configs: dict[str, ExperimentConfig] = {}
    for task, (ablation, layers), seed in itertools.product(tasks, parsed, seeds):
        cfg = experiment(p, task=task, ablation=ablation, layers=layers, seed=seed, targets=targets,
                         **train_overrides)
        changes = {k: v for k, v in (("n_train", n_train), ("n_eval", n_eval)) if v is not _PROFILE_DEFAULT}
        cfg = dataclasses.replace(cfg, **changes) if changes else cfg
        configs.setdefault(cfg.key(), cfg)
    return list(configs.values())


def config_from_dict(d: dict) -> ExperimentConfig:
    """The inverse of `ExperimentConfig.to_dict` (same key)."""
    d = dict(d)
    d["train"] = TrainConfig(**d["train"])
    d["targets"], d["layers"] = tuple(d["targets"]), tuple(d["layers"])
    return ExperimentConfig(**d)


def record_path(cfg: ExperimentConfig, root: Path | None = None) -> Path:
    """Where the record of a config is cached."""
    return Path(root or results_dir()) / cfg.key() / "record.json"


def is_cached(cfg: ExperimentConfig, root: Path | None = None) -> bool:
    """True when the config's record is in the cache at `root` or ships with the package."""
    return record_path(cfg, root).is_file() or shipped_record(cfg) is not None


def cached_record(cfg: ExperimentConfig, root: Path | None = None) -> dict | None:
    """The config's record from the cache at `root`, else the shipped one, else None."""
    path = record_path(cfg, root)
    return json.loads(path.read_text()) if path.is_file() else shipped_record(cfg)


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_config(cfg: ExperimentConfig | dict, root: str | Path | None = None, progress: bool = False,
               threads: int | None = None) -> dict:
    """Run (or read from the cache) one config under its lock, with `root` as the results directory:
    what every config of a grid goes through, locally or in a Ray task."""
    if isinstance(cfg, dict):
        cfg = config_from_dict(cfg)
    if threads:
        import torch

        torch.set_num_threads(threads)
    with _environ({"XLT_RESULTS_DIR": str(root)} if root is not None else {}):
        return run_experiment(cfg, progress=progress)  # under the config's lock


def _quiet_libraries() -> None:
    """No weight-loading bars and reports from transformers: the grid prints its own progress."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _ray_task(cfg: dict, root: str, threads: int) -> dict:
    """The body of one Ray task: `run_config` in a worker, quietly (its environment comes from the
    task's runtime_env, set before the worker imports anything)."""
    _quiet_libraries()
    return run_config(cfg, root, progress=False, threads=threads)


#: The Hugging Face / transformers settings a worker needs (caches, offline mode, endpoint), by name:
#: never the whole HF_* family, which holds credentials (HF_TOKEN, HF_TOKEN_PATH).
WORKER_HF_VARS = frozenset({
    "HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_ASSETS_CACHE", "HF_XET_CACHE", "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE", "HF_ENDPOINT", "HF_HUB_DISABLE_TELEMETRY", "HF_HUB_DISABLE_PROGRESS_BARS",
    "HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT", "TRANSFORMERS_OFFLINE", "TRANSFORMERS_CACHE",
    "TRANSFORMERS_VERBOSITY", "TOKENIZERS_PARALLELISM",
})
_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "API_KEY", "AUTH")


def _driver_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The driver's settings that decide what a worker computes and where it finds data: the
    `WORKER_HF_VARS`, and every XLT_* variable whose name does not look like a credential."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items()
            if k in WORKER_HF_VARS
            or (k.startswith("XLT_") and not any(w in k.upper() for w in _SECRET_WORDS))}


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _describe(i: int, n: int, cfg: ExperimentConfig) -> str:
    return f"[{i + 1}/{n}] {cfg.task} {cfg.label} seed {cfg.seed} ({cfg.key()})"


def run_grid(configs: Sequence[ExperimentConfig], backend: str = "local", ray_address: str | None = None,
             resources: dict | None = None, progress: bool = True, results: str | Path | None = None,
             keep_going: bool = True) -> list[dict]:
    """Run every config (cached ones return at once) and return their records, in config order.

    backend="local" runs them one after the other in this process. backend="ray" submits one Ray
    task per config not cached yet (``ray.init(address=ray_address)``, or a local instance when no
    Ray is running and no address is given); `resources` are the task's Ray options (default
    ``{"num_cpus": 1}``; e.g. ``{"num_gpus": 1}``), and torch uses num_cpus threads in each task.
    Every task writes to the same results directory (`results`, else ``results_dir()``), which
    must therefore be on a file system that the workers share with the driver.

    With `keep_going`, a failing config does not stop the others; a SweepError lists the failures
    at the end (rerunning the grid retries only them).
    """
    configs = list(configs)
    root = Path(results or results_dir()).expanduser().resolve()
    if backend == "local":
        return _run_local(configs, root, progress, keep_going)
    if backend == "ray":
        return _run_ray(configs, root, ray_address, resources, progress, keep_going)
    raise ValueError(f"unknown backend {backend!r}; valid: local, ray")


def _run_local(configs, root: Path, progress: bool, keep_going: bool) -> list[dict]:
    from .setup import progress_enabled

    records: list[dict | None] = []
    failures = []
    for i, cfg in enumerate(configs):
        cached, t0 = is_cached(cfg, root), time.perf_counter()
        try:
            records.append(run_config(cfg, root, progress=progress and progress_enabled()))
        except Exception as e:
            if not keep_going:
                raise
            failures.append((cfg, e))
            records.append(None)
            _log(progress, f"{_describe(i, len(configs), cfg)} FAILED: {type(e).__name__}: {e}")
            continue
        _log(progress, f"{_describe(i, len(configs), cfg)} "
                       + ("cached" if cached else f"done in {time.perf_counter() - t0:.1f} s"))
    if failures:
        raise SweepError(failures)
    return records


def _ray_options(resources: dict | None, root: Path) -> dict:
    """Ray task options: the given resources, and a runtime_env that gives every worker the driver's
    XLT_* settings and the HF_* ones it needs (offline mode, caches; never tokens: `_driver_env`)
    and the shared results directory."""
    opts = {"num_cpus": 1, **(resources or {})}
    opts.setdefault("max_retries", 1)  # a worker that died (OOM, node lost) is retried once; it resumes
    runtime_env = dict(opts.get("runtime_env") or {})
    runtime_env["env_vars"] = {**_driver_env(), **runtime_env.get("env_vars", {}), "XLT_RESULTS_DIR": str(root)}
    opts["runtime_env"] = runtime_env
    return opts


def _run_ray(configs, root: Path, ray_address, resources, progress: bool, keep_going: bool) -> list[dict]:
    records: dict[str, dict] = {}
    todo: dict[str, tuple[int, ExperimentConfig]] = {}  # key -> (first index, config), not cached yet
    for i, cfg in enumerate(configs):
        key = cfg.key()
        if key in records or key in todo:  # the same config twice: one run, its record returned twice
            continue
        if (record := cached_record(cfg, root)) is not None:
            records[key] = record
            _log(progress, f"{_describe(i, len(configs), cfg)} cached")
        else:
            todo[key] = (i, cfg)
    if todo:
        _submit_to_ray(todo, records, len(configs), root, ray_address, resources, progress, keep_going)
    return [records[c.key()] for c in configs]


def _submit_to_ray(todo, records, n, root, ray_address, resources, progress, keep_going) -> None:
    try:
        import ray
    except ImportError as e:
        raise ImportError("backend='ray' needs Ray: pip install 'ray[default]'") from e
    started = not ray.is_initialized()
    if started and ray_address is None and not os.environ.get("RAY_ADDRESS"):
        ray.init(include_dashboard=False)  # a local instance, for this grid only
    elif started:
        ray.init(address=ray_address)
    try:
        opts = _ray_options(resources, root)
        threads = max(1, int(opts["num_cpus"] or 1))
        task = ray.remote(_ray_task).options(**opts)
        pending = {task.remote(cfg.to_dict(), str(root), threads): (i, cfg) for i, cfg in todo.values()}
        _log(progress, f"{len(pending)} Ray task(s) submitted ({len(records)} cached)")
        failures = []
        t0 = time.perf_counter()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            i, cfg = pending.pop(done[0])
            try:
                records[cfg.key()] = ray.get(done[0])
            except Exception as e:
                if not keep_going:
                    for ref in pending:
                        ray.cancel(ref)
                    raise
                failures.append((cfg, e))
                _log(progress, f"{_describe(i, n, cfg)} FAILED: {type(e).__name__}: {e}")
                continue
            _log(progress, f"{_describe(i, n, cfg)} done ({time.perf_counter() - t0:.1f} s into the grid)")
        if failures:
            raise SweepError(failures)
    finally:
        if started:
            ray.shutdown()


# ----------------------------------------------------------------------------------------- summary

def summary_table(records: list[dict]):
    """Main metric (accuracy, F1, LAS), mean ± std over seeds, per task and ablation, source vs targets
    (the targets averaged per seed first), as in chapter 3."""
    if not records:
        return records_table(records)
    return mean_std_table(per_seed_scores(records), index=["task", "ablation"], columns="role")


# ----------------------------------------------------------------------------------------- command line

def _bool_or_auto(text: str):
    low = text.lower()
    if low == "auto":
        return "auto"
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected auto, true or false, not {text!r}")


def _optional_int(text: str):
    return None if text.lower() in ("all", "none") else int(text)


def _train_option_type(annotation) -> object:
    annotation = str(annotation)
    if "bool" in annotation:
        return _bool_or_auto
    if "float" in annotation:
        return float
    if "int" in annotation:
        return int
    return str


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m xlt_utils.sweep",
        description="Run a grid of fine-tuning runs (tasks x ablations x seeds) through the result cache.",
        epilog="Ablations: reference, random_init, reinit:<layers>, freeze:<layers> (e.g. reinit:1,2 or "
               "freeze:0-3; 0 is the embedding layer), reinit-pairs (every pair of transformer layers), "
               "freeze-halves (embeddings + lower half, upper half). A killed grid resumes when rerun.")
    ap.add_argument("--profile", default="toy", help="toy, quick or full (default: toy)")
    ap.add_argument("--tasks", nargs="+", help="default: the profile's tasks")
    ap.add_argument("--ablations", nargs="+", default=["reference"], help="default: reference")
    ap.add_argument("--seeds", nargs="+", type=int, help="default: the profile's seeds")
    ap.add_argument("--targets", nargs="+", help="target languages (default: the profile's)")
    ap.add_argument("--n-train", type=_optional_int, default=_PROFILE_DEFAULT,
                    help="source training sentences ('all' for every one; default: the profile's)")
    ap.add_argument("--n-eval", type=_optional_int, default=_PROFILE_DEFAULT,
                    help="evaluation sentences per language ('all'; default: the profile's)")
    train = ap.add_argument_group("training options (default: the profile's)")
    for f in dataclasses.fields(TrainConfig):
        if f.name != "seed":
            train.add_argument(f"--{f.name.replace('_', '-')}", dest=f"train_{f.name}",
                               type=_train_option_type(f.type), default=None, metavar=f.name.upper())
    run = ap.add_argument_group("running")
    run.add_argument("--backend", choices=("local", "ray"), default="local")
    run.add_argument("--address", help="Ray address (e.g. auto); default: a local Ray instance")
    run.add_argument("--cpus-per-task", type=float, default=1, help="Ray: CPUs (and torch threads) per task")
    run.add_argument("--gpus-per-task", type=float, default=0, help="Ray: GPUs per task")
    run.add_argument("--results-dir", help="the result cache (default: $XLT_RESULTS_DIR or the cache's results/)")
    run.add_argument("--threads", type=int, help="local backend: torch threads (default: torch's)")
    run.add_argument("--csv", help="also write the tidy table of every record to this CSV file")
    run.add_argument("--export", metavar="JSON",
                     help="also write the grid's records as a shipped-results file (see experiments.ship_records)")
    run.add_argument("--dry-run", action="store_true", help="list the configs (and which are cached); run nothing")
    run.add_argument("--quiet", action="store_true", help="no per-config progress lines")
    return ap


def _grid_command(argv: Sequence[str]) -> str:
    """The command line that defines a grid: `argv` without the options that only say where
    results go or how they are run (so that no machine path lands in a shipped file)."""
    drop_with_value = {"--results-dir", "--export", "--csv", "--address", "--threads", "--backend",
                       "--cpus-per-task", "--gpus-per-task"}
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in drop_with_value:
            skip = "=" not in arg
            continue
        if name in ("--quiet", "--dry-run"):
            continue
        kept.append(arg)
    return " ".join(["python -m xlt_utils.sweep", *kept])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    if args.results_dir:
        os.environ["XLT_RESULTS_DIR"] = str(Path(args.results_dir).expanduser().resolve())
    overrides = {k[len("train_"):]: v for k, v in vars(args).items() if k.startswith("train_") and v is not None}
    try:
        configs = expand_grid(args.profile, tasks=args.tasks, ablations=args.ablations, seeds=args.seeds,
                              targets=args.targets, n_train=args.n_train, n_eval=args.n_eval, **overrides)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    root = results_dir()
    cached = [is_cached(c, root) for c in configs]
    print(f"{len(configs)} configs ({sum(cached)} already cached) in {root}", flush=True)
    if args.dry_run:
        for i, (c, hit) in enumerate(zip(configs, cached, strict=True)):
            print(f"{i + 1:4d}  {c.key()}  {c.task:<5} {ablation_spec(c.ablation, c.layers):<14} seed {c.seed}"
                  f"{'  cached' if hit else ''}")
        return 0
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    resources = {"num_cpus": args.cpus_per_task}
    if args.gpus_per_task:
        resources["num_gpus"] = args.gpus_per_task
    try:
        records = run_grid(configs, backend=args.backend, ray_address=args.address, resources=resources,
                           progress=not args.quiet, results=root)
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.csv:
        records_table(records).to_csv(args.csv, index=False)
    if args.export:
        ship_records(records, Path(args.export), description=_grid_command(argv if argv is not None else sys.argv[1:]))
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(summary_table(records).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
