"""The paper's protocol as a grid: tasks x ablations x seeds, run locally or on a Ray cluster.

Every configuration goes through `run_experiment`, so whichever way it was computed its record and
its per-epoch checkpoints land in the same result store (``<root>/<key>/``, see `store`): a grid that was killed
restarts where it stopped, configurations already done are never run (or submitted) again, and a grid
run locally and one run on Ray give the same records.

    python -m xlt_utils.sweep --profile toy --tasks pos ner \\
        --ablations reference reinit-consecutive freeze-halves random_init --seeds 1 2 3 --dry-run

Ablations are `Ablation` values, or strings of the grammar of `ablation.parse_ablation`:
``reference``, ``random_init``, ``reinit:1,2``, ``freeze:0-3`` (layers are numbered as in
``hidden_states``: 0 is the embedding layer, 1..L the transformer layers), or one of three families:
``reinit-consecutive`` (the paper's consecutive pairs 1-2, 3-4, ...), ``reinit-pairs`` (every pair of
transformer layers) and ``freeze-halves`` (the lower and the upper half).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import settings
from .ablation import Ablation, describe_forms, expand_ablations
from .analysis import mean_std_table, per_seed_scores
from .experiments import ExperimentConfig, experiment_config, records_table, run_experiment
from .nbtools import install_spec
from .pretrained import num_layers
from .profiles import Profile, get_profile, require_profile
from .store import ResultStore, ship_records
from .training import TrainConfig

_PROFILE_DEFAULT = object()  # n_train / n_eval not given: the profile's value (None means "all")


class SweepError(RuntimeError):
    """Some configurations of a grid failed; the others finished and are cached."""

    def __init__(self, failures: list[tuple[ExperimentConfig, BaseException]]):
        self.failures = failures
        lines = [f"  {c.task} {c.label} seed {c.seed} ({c.key()}): {type(e).__name__}: {e}" for c, e in failures]
        super().__init__(f"{len(failures)} configuration(s) failed (the others are cached; rerun to retry):\n"
                         + "\n".join(lines))


# ----------------------------------------------------------------------------------------- the grid

#: The paper's ablation grid (Muller et al., 2021, section 4): the reference, every pair of layers
#: re-initialised, the lower and the upper half frozen, and a randomly initialised encoder.
PAPER_ABLATIONS = ("reference", "reinit-consecutive", "freeze-halves", "random_init")


def paper_grid(profile: Profile, tasks: Sequence[str] | None = None,
               seeds: Sequence[int] | None = None, **kwargs) -> list[ExperimentConfig]:
    """The configs of `PAPER_ABLATIONS` x tasks x seeds (the profile's tasks and seeds by default).

    With L layers (L even), T tasks and S seeds that is (1 + L/2 + 2 + 1) x T x S runs: the toy
    profile (12 layers, 3 tasks, 3 seeds) 10 x 3 x 3 = 90; quick (mBERT, 3 tasks, 1 seed) 30.
    """
    return expand_grid(profile, tasks=tasks, ablations=PAPER_ABLATIONS, seeds=seeds, **kwargs)


def expand_grid(profile: Profile, tasks: Sequence[str] | None = None,
                ablations: Sequence[str | Ablation] | str | Ablation = ("reference",), seeds: Sequence[int] | None = None,
                targets: Sequence[str] | None = None, n_train=_PROFILE_DEFAULT, n_eval=_PROFILE_DEFAULT,
                **train_overrides) -> list[ExperimentConfig]:
    """The configs of tasks x ablations x seeds, in that order (task outermost), without duplicates.

    `tasks`, `seeds` and `targets` default to the profile's; `n_train` / `n_eval` to the profile's
    (``None`` means every sentence); `train_overrides` are TrainConfig fields (``epochs=1``, ``lr=...``).
    """
    p = require_profile(profile)
    if isinstance(tasks, str) or isinstance(seeds, int | str):
        raise TypeError("tasks and seeds are sequences, e.g. tasks=('pos',), seeds=(1, 2, 3)")
    tasks = tuple(tasks) if tasks is not None else p.tasks
    seeds = tuple(int(s) for s in seeds) if seeds is not None else p.seeds
    if not tasks or not seeds:
        raise ValueError("a grid needs at least one task and one seed")
    if "seed" in train_overrides:
        raise ValueError("the training seed is the config's seed: pass seeds=(...)")
    n_layers = num_layers(p)
    parsed = expand_ablations(ablations, n_layers)
    if not parsed:
        raise ValueError(f"a grid needs at least one ablation; {describe_forms(n_layers)}")
    configs: dict[str, ExperimentConfig] = {}
    for task, ablation, seed in itertools.product(tasks, parsed, seeds):
        cfg = experiment_config(p, task=task, ablation=ablation, seed=seed, targets=targets, **train_overrides)
        changes = {k: v for k, v in (("n_train", n_train), ("n_eval", n_eval)) if v is not _PROFILE_DEFAULT}
        cfg = dataclasses.replace(cfg, **changes) if changes else cfg
        configs.setdefault(cfg.key(), cfg)
    return list(configs.values())


def run_config(cfg: ExperimentConfig | dict, root: str | Path | None = None, progress: bool = False,
               threads: int | None = None) -> dict:
    """Run (or read from the store) one config under its lock, with `root` as the result store's
    root: what every config of a grid goes through, locally or in a Ray task. With `threads`, torch
    uses that many threads for this config only (the previous setting is restored)."""
    import torch

    if isinstance(cfg, dict):
        cfg = ExperimentConfig.from_dict(cfg)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return run_experiment(cfg, progress=progress, results=root)  # under the config's lock
    finally:
        torch.set_num_threads(before)


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


def _start_ray(ray_address: str | None, **init_kw) -> bool:
    """Connect to Ray as `run_grid` does; True if this call started it (then the caller shuts it down).

    No address and no RAY_ADDRESS: a local instance for this grid only, started without the driver's
    credentials in its environment (`settings.credentials_withheld`), so that no worker sees them. With an
    address, the cluster's workers have the environment their cluster was started with; tasks get
    the driver's settings through their runtime_env (`_ray_options`), never its credentials. If Ray
    is already initialised (a `ray.init` of your own), its workers have the environment you started
    it with."""
    import ray

    if ray.is_initialized():
        return False
    if ray_address is None and not settings.ray_address_set():
        with settings.credentials_withheld():
            ray.init(include_dashboard=False, **init_kw)  # a local instance, for this grid only
    else:
        ray.init(address=ray_address, **init_kw)
    return True


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _describe(i: int, n: int, cfg: ExperimentConfig) -> str:
    return f"[{i + 1}/{n}] {cfg.task} {cfg.label} seed {cfg.seed} ({cfg.key()})"


def run_grid(configs: Sequence[ExperimentConfig], backend: str = "local", ray_address: str | None = None,
             resources: dict | None = None, progress: bool | None = None, results: str | Path | ResultStore | None = None,
             keep_going: bool = True, threads: int | None = None) -> list[dict]:
    """Run every config (cached ones return at once) and return their records, in config order.

    backend="local" runs them one after the other in this process. backend="ray" submits one Ray
    task per config not cached yet (``ray.init(address=ray_address)``, or a local instance when no
    Ray is running and no address is given); `resources` are the task's Ray options (default
    ``{"num_cpus": 1}``; e.g. ``{"num_gpus": 1}``), and torch uses num_cpus threads in each task.
    Every task writes to the same result store (root `results`, else the default), which
    must therefore be on a file system that the workers share with the driver.

    `threads`: torch threads per config on the local backend (default: unchanged). `progress`: one
    line per config and its progress bars (None: as the settings say, `settings.current().progress`).

    With `keep_going`, a failing config does not stop the others; a SweepError lists the failures
    at the end (rerunning the grid retries only them).
    """
    configs = list(configs)
    progress = settings.current().progress if progress is None else progress
    root = ResultStore.of(results).root.resolve()
    if backend == "local":
        return _run_local(configs, root, progress, keep_going, threads)
    if backend == "ray":
        return _run_ray(configs, root, ray_address, resources, progress, keep_going)
    raise ValueError(f"unknown backend {backend!r}; valid: local, ray")


def _run_local(configs, root: Path, progress: bool, keep_going: bool, threads: int | None) -> list[dict]:
    records: list[dict | None] = []
    failures = []
    for i, cfg in enumerate(configs):
        cached, t0 = ResultStore(root).is_cached(cfg), time.perf_counter()
        try:
            records.append(run_config(cfg, root, progress=progress, threads=threads))
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
    XLT_* settings and the HF_* ones it needs (offline mode, caches; never tokens: `settings.worker_environment`);
    the results root is the task's argument. (A runtime_env can only add variables: that a local
    instance's workers hold no token comes from `_start_ray`.)"""
    opts = {"num_cpus": 1, **(resources or {})}
    opts.setdefault("max_retries", 1)  # a worker that died (OOM, node lost) is retried once; it resumes
    runtime_env = dict(opts.get("runtime_env") or {})
    runtime_env["env_vars"] = {**settings.worker_environment(), **runtime_env.get("env_vars", {})}
    opts["runtime_env"] = runtime_env
    return opts


def _run_ray(configs, root: Path, ray_address, resources, progress: bool, keep_going: bool) -> list[dict]:
    records: dict[str, dict] = {}
    todo: dict[str, tuple[int, ExperimentConfig]] = {}  # key -> (first index, config), not cached yet
    for i, cfg in enumerate(configs):
        key = cfg.key()
        if key in records or key in todo:  # the same config twice: one run, its record returned twice
            continue
        if (record := ResultStore(root).get(cfg)) is not None:
            records[key] = record
            _log(progress, f"{_describe(i, len(configs), cfg)} cached")
        else:
            todo[key] = (i, cfg)
    if todo:
        _submit_to_ray(todo, records, len(configs), root, ray_address, resources, progress, keep_going)
    return [records[c.key()] for c in configs]


def ray_install_spec() -> str:
    """What pip installs for a Ray grid: this package's release with its ray extra, from the repository."""
    return install_spec().replace(" @ ", "[ray] @ ", 1)


def _submit_to_ray(todo, records, n, root, ray_address, resources, progress, keep_going) -> None:
    try:
        import ray
    except ImportError as e:
        raise ImportError(f"backend='ray' needs Ray, which the package's ray extra installs: "
                          f"pip install \"{ray_install_spec()}\" (in a clone of the repository: "
                          "pip install -e \".[ray]\")") from e
    started = _start_ray(ray_address)
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

def _optional_int(text: str):
    return None if text.lower() in ("all", "none") else int(text)


def _train_option_type(annotation) -> object:
    annotation = str(annotation)
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
               "freeze:0-3; 0 is the embedding layer), reinit-consecutive (the paper's pairs 1-2, 3-4, ...), reinit-pairs (every pair of transformer layers), "
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
    overrides = {k[len("train_"):]: v for k, v in vars(args).items() if k.startswith("train_") and v is not None}
    try:
        configs = expand_grid(get_profile(args.profile), tasks=args.tasks, ablations=args.ablations, seeds=args.seeds,
                              targets=args.targets, n_train=args.n_train, n_eval=args.n_eval, **overrides)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    store = ResultStore(args.results_dir)
    root = store.root.resolve()
    cached = [store.is_cached(c) for c in configs]
    print(f"{len(configs)} configs ({sum(cached)} already cached) in {root}", flush=True)
    if args.dry_run:
        for i, (c, hit) in enumerate(zip(configs, cached, strict=True)):
            print(f"{i + 1:4d}  {c.key()}  {c.task:<5} {c.label:<14} seed {c.seed}"
                  f"{'  cached' if hit else ''}")
        return 0
    resources = {"num_cpus": args.cpus_per_task}
    if args.gpus_per_task:
        resources["num_gpus"] = args.gpus_per_task
    try:
        records = run_grid(configs, backend=args.backend, ray_address=args.address, resources=resources,
                           progress=not args.quiet, results=root, threads=args.threads)
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
