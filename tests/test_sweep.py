"""The grid runner: expansion, cache reuse, a SIGKILL in the middle of a grid, and the Ray backend."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from xlt_utils.ablation import Ablation, format_layers, freeze_halves, parse_ablation, reinit_pairs
from xlt_utils.pretrained import num_layers
from xlt_utils.profiles import get_profile
from xlt_utils.sweep import SweepError, expand_grid, main, run_config, run_grid

ROOT = Path(__file__).resolve().parents[1]
# Four tiny configs (2 epochs, so that a killed run can resume from its epoch-1 checkpoint), both
# as keyword arguments and as the same grid on the command line.
TINY = dict(profile=get_profile("toy"), tasks=("pos",), ablations=("reference", "reinit:1,2"), seeds=(1, 2),
            targets=("fr",), epochs=2, n_train=64, n_eval=20)
TINY_ARGS = ["--profile", "toy", "--tasks", "pos", "--ablations", "reference", "reinit:1,2", "--seeds", "1", "2",
             "--targets", "fr", "--epochs", "2", "--n-train", "64", "--n-eval", "20"]
FORMS = ("valid ablations: reference, random_init, reinit:<layers>, freeze:<layers>, reinit-consecutive, "
         "reinit-pairs, freeze-halves")


def _stable(record: dict) -> dict:
    """A record without what legitimately differs between two computations of it: timings, where and
    how it ran (threads), and the git revision (a commit made while the tests run changes it)."""
    return {k: v for k, v in record.items() if k not in ("timings", "git", "runtime")}


def _layout(root: Path) -> dict[str, list[str]]:
    return {d.name: sorted(f.name for f in d.iterdir()) for d in sorted(root.iterdir())}


@pytest.fixture(scope="module")
def reference_grid(tmp_path_factory):
    """The tiny grid, run once without interruption, single-threaded like the subprocesses below."""
    root = tmp_path_factory.mktemp("reference-results")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        configs = expand_grid(**TINY)
        records = run_grid(configs, progress=False, results=root)
    finally:
        torch.set_num_threads(threads)
    return root, configs, records


# ----------------------------------------------------------------------------------------- expansion

def test_reinit_consecutive_is_the_papers_pairs():
    from xlt_utils.ablation import reinit_consecutive

    assert [a.layers for a in reinit_consecutive(12)] == [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12)]
    assert [a.layers for a in reinit_consecutive(5)] == [(1, 2), (3, 4), (5,)]
    from xlt_utils.ablation import expand_ablations

    assert expand_ablations(["reinit-consecutive"], 4) == [Ablation("reinit", (1, 2)), Ablation("reinit", (3, 4))]


def test_reinit_pairs_and_freeze_halves():
    pairs = reinit_pairs(6)
    assert len(pairs) == 15 == len(set(pairs))
    assert [p.label for p in pairs[:3]] == ["reinit 1,2", "reinit 1,3", "reinit 1,4"] and pairs[-1].layers == (5, 6)
    assert len(reinit_pairs(12)) == 66
    assert [a.layers for a in freeze_halves(6)] == [(0, 1, 2, 3), (4, 5, 6)]
    assert [a.label for a in freeze_halves(12)] == ["freeze 0-6", "freeze 7-12"]
    assert format_layers([5, 0, 1, 2, 3]) == "0-3,5" and format_layers([2, 1]) == "1,2"


def test_grid_counts_order_and_no_duplicates():
    L = num_layers(get_profile("toy"))
    pairs = L * (L - 1) // 2
    grid = expand_grid(get_profile("toy"), tasks=("pos", "ner"), ablations=("reference", "reinit-pairs", "freeze-halves",
                                                               "random_init"), seeds=(1, 2, 3))
    assert len(grid) == 2 * (1 + pairs + 2 + 1) * 3 == len({c.key() for c in grid})
    assert [c.key() for c in grid] == [c.key() for c in expand_grid(
        get_profile("toy"), tasks=("pos", "ner"), ablations=("reference", "reinit-pairs", "freeze-halves", "random_init"),
        seeds=(1, 2, 3))], "expansion must be deterministic"
    # task outermost, then ablation, then seed
    assert [(c.task, c.label, c.seed) for c in grid[:4]] == [
        ("pos", "reference", 1), ("pos", "reference", 2), ("pos", "reference", 3), ("pos", "reinit 1,2", 1)]
    assert grid[-1].task == "ner" and grid[-1].ablation == Ablation("random_init") and grid[-1].seed == 3
    half = L // 2
    assert [c.ablation.layers for c in grid if c.ablation.kind == "freeze" and c.seed == 1 and c.task == "pos"] == [
        tuple(range(half + 1)), tuple(range(half + 1, L + 1))]
    # profile defaults: all targets, the profile's sizes and epochs
    assert grid[0].targets == ("fr", "de", "ru", "tr", "ja", "ar") and grid[0].n_train == 2000
    # the same ablation written several ways is one config
    same = expand_grid(get_profile("toy"), tasks=("pos",), ablations=("reinit:2,1", Ablation("reinit", (1, 2)), "reinit:1-2",
                                                         "reinit-pairs"), seeds=(1,))
    assert len(same) == pairs and same[0].ablation.layers == (1, 2)


def test_grid_overrides_reach_every_config():
    grid = expand_grid(**TINY)
    assert len(grid) == 4
    assert all(c.n_train == 64 and c.n_eval == 20 and c.train.epochs == 2 and c.targets == ("fr",) for c in grid)
    assert all(c.train.seed == c.seed for c in grid)
    assert expand_grid(get_profile("toy"), tasks=("pos",), seeds=(1,), n_train=None)[0].n_train is None
    with pytest.raises(ValueError, match="unknown training option 'learning_rate'"):
        expand_grid(get_profile("toy"), tasks=("pos",), seeds=(1,), learning_rate=1.0)
    with pytest.raises(ValueError, match="valid tasks"):
        expand_grid(get_profile("toy"), tasks=("pso",), seeds=(1,))


def test_parse_ablation_forms():
    assert parse_ablation("reference") == Ablation("reference", ())
    assert parse_ablation("random-init") == parse_ablation("random_init") == Ablation("random_init")
    assert parse_ablation("freeze:0-3", 6) == Ablation("freeze", (0, 1, 2, 3))
    assert parse_ablation("reinit:6,1-2", 6) == Ablation("reinit", (1, 2, 6))
    with pytest.raises(ValueError, match="unknown ablation 'reinit 1,2'"):
        parse_ablation("reinit 1,2")  # a label is for people: it is never read back


@pytest.mark.parametrize("spec", ["reinit", "freeze:", "reinit:a", "reinit:3-1", "bogus", "reference:1",
                                  "freeze-quarters", "reinit 1,2"])
def test_parse_errors_list_the_valid_forms(spec):
    with pytest.raises(ValueError, match=FORMS):
        expand_grid(get_profile("toy"), tasks=("pos",), ablations=(spec,), seeds=(1,))


def test_a_layer_beyond_the_profile_depth_is_an_error():
    L = num_layers(get_profile("toy"))
    with pytest.raises(ValueError, match=f"layer\\(s\\) \\[{L + 1}\\] do not exist; {FORMS}"):
        expand_grid(get_profile("toy"), tasks=("pos",), ablations=(f"reinit:1,{L + 1}",), seeds=(1,))
    with pytest.raises(ValueError, match=f"valid layers: 0 \\(embeddings\\) to {L}"):
        expand_grid(get_profile("toy"), tasks=("pos",), ablations=(Ablation("freeze", (L + 1,)),), seeds=(1,))


def test_cli_dry_run_lists_and_runs_nothing(tmp_path, capsys):
    assert main([*TINY_ARGS, "--results-dir", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"4 configs (0 already cached) in {tmp_path.resolve()}"
    assert [line.split()[2:] for line in out[1:]] == [
        ["pos", "reference", "seed", "1"], ["pos", "reference", "seed", "2"],
        ["pos", "reinit", "1,2", "seed", "1"], ["pos", "reinit", "1,2", "seed", "2"]]
    assert not list(tmp_path.iterdir())
    assert main(["--ablations", "reinit:1,99", "--dry-run", "--results-dir", str(tmp_path)]) == 2
    assert FORMS in capsys.readouterr().err


# ----------------------------------------------------------------------------------------- the cache

@pytest.mark.slow
def test_second_run_returns_from_cache_with_identical_records(reference_grid, monkeypatch, capsys):
    root, configs, first = reference_grid
    monkeypatch.setenv("XLT_RESULTS_DIR", str(root))  # the default root, for run_grid without `results`
    assert [r["key"] for r in first] == [c.key() for c in configs]
    paths = [root / c.key() / "record.json" for c in configs]
    stamps = [p.stat().st_mtime_ns for p in paths]
    on_disk = [json.loads(p.read_text()) for p in paths]
    again = run_grid(configs + configs[:1], progress=True)  # a duplicate is returned twice, run once
    assert again == first + first[:1] == on_disk + on_disk[:1]
    assert [p.stat().st_mtime_ns for p in paths] == stamps
    assert capsys.readouterr().err.count(" cached") == 5
    assert main([*TINY_ARGS, "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("4 configs (4 already cached)")
    layout = _layout(root)
    assert set(layout) == {c.key() for c in configs}
    assert all("record.json" in files and "checkpoint.pt" not in files for files in layout.values())
    # a grid that is all cached needs no Ray at all (nothing is submitted, no instance is started)
    assert run_grid(configs, backend="ray") == first
    assert "submitted" not in capsys.readouterr().err


def test_a_failing_config_does_not_stop_the_grid(reference_grid, tmp_path):
    ref_root, configs, first = reference_grid
    shutil.copytree(ref_root / configs[0].key(), tmp_path / configs[0].key())
    bad = dataclasses.replace(configs[1], model_sha256="0" * 64)  # weights that are not the toy model's
    with pytest.raises(SweepError, match=r"(?s)1 configuration\(s\) failed.*are not those this config was made for") as err:
        run_grid([bad, configs[0]], results=tmp_path, progress=False)
    assert [c.key() for c, _ in err.value.failures] == [bad.key()]
    with pytest.raises(ValueError, match="are not those this config was made for"):
        run_grid([bad, configs[0]], results=tmp_path, progress=False, keep_going=False)


def test_a_config_locked_by_another_sweep_waits_and_is_not_trained_twice(reference_grid, tmp_path):
    import threading

    from xlt_utils.store import lock

    ref_root, configs, first = reference_grid
    folder = tmp_path / configs[0].key()
    got = []
    with lock(folder):  # another sweep is training this config
        worker = threading.Thread(target=lambda: got.extend(run_grid(configs[:1], results=tmp_path, progress=False)))
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive() and not (folder / "checkpoint.pt").exists(), "it must wait for the lock"
        shutil.copy(ref_root / configs[0].key() / "record.json", folder / "record.json")  # the other one finishes
    worker.join(timeout=60)
    assert got == first[:1]  # read back, timings included: not trained a second time


@pytest.mark.slow
def test_run_config_restores_the_thread_count_and_sets_no_environment(reference_grid, monkeypatch):
    ref_root, configs, first = reference_grid
    monkeypatch.delenv("XLT_RESULTS_DIR", raising=False)
    before, environ = torch.get_num_threads(), dict(os.environ)
    seen = []
    import xlt_utils.sweep as sweep

    real = sweep.run_experiment

    def spy(cfg, **kw):
        seen.append((torch.get_num_threads(), kw["results"]))
        return real(cfg, **kw)

    monkeypatch.setattr(sweep, "run_experiment", spy)
    other = 1 if before != 1 else 2
    assert run_config(configs[0].to_dict(), ref_root, threads=other) == first[0]
    assert seen == [(other, ref_root)], "the config runs with the threads and the root it was given"
    assert torch.get_num_threads() == before and dict(os.environ) == environ


# ----------------------------------------------------------------------------------------- SIGKILL

def _cli(root: Path) -> tuple[list[str], dict]:
    cmd = [sys.executable, "-m", "xlt_utils.sweep", *TINY_ARGS, "--results-dir", str(root), "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "XLT_PROGRESS": "0",
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    env.pop("XLT_RESULTS_DIR", None)
    return cmd, env


@pytest.mark.slow
def test_sigkill_mid_grid_then_restart_completes_every_config(reference_grid, tmp_path):
    ref_root, configs, reference = reference_grid
    root = tmp_path / "results"
    cmd, env = _cli(root)
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            # Kill at the moment that tests the most: one record written and the next config half-way
            # (its epoch-1 checkpoint written, its record not), so that the restart must resume it.
            deadline, resumable = time.monotonic() + 120, []
            while time.monotonic() < deadline and proc.poll() is None:
                if list(root.glob("*/record.json")):
                    resumable = [c.parent.name for c in root.glob("*/checkpoint.pt")
                                 if not (c.parent / "record.json").exists()]
                    if resumable:
                        break
                time.sleep(0.005)
            assert proc.poll() is None, "the grid finished (or died) before it could be killed: " + \
                (tmp_path / "first.log").read_text()[-2000:]
            os.killpg(proc.pid, signal.SIGKILL)
            assert resumable, "no half-done config seen in 120 s"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = len(list(root.glob("*/record.json")))
    assert 1 <= done < len(configs)

    second = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    assert second.stdout.startswith(f"{len(configs)} configs ({done} already cached)")

    layout = _layout(root)
    assert set(layout) == {c.key() for c in configs}, "one folder per config, nothing else"
    for key, files in layout.items():
        assert [f for f in files if f.startswith("record")] == ["record.json"], (key, files)
        assert "checkpoint.pt" not in files, (key, files)
    assert not [p for p in root.rglob("*") if ".tmp" in p.name]
    resumed = [json.loads((root / c.key() / "record.json").read_text()) for c in configs]
    for got, want in zip(resumed, reference, strict=True):
        assert got["key"] == want["key"] and got["config"] == want["config"]
        assert got["metrics"] == want["metrics"], got["label"]  # bitwise: == on floats
        assert got["train_loss"] == want["train_loss"], got["label"]
    assert _layout(root) == _layout(ref_root)


# ----------------------------------------------------------------------------------------- Ray

@pytest.fixture(scope="module")
def ray_module():
    """Ray, or a skip (a failure under XLT_REQUIRE_RAY=1) before any fixture runs a grid."""
    try:
        import ray
    except ImportError:
        if os.environ.get("XLT_REQUIRE_RAY") == "1":
            pytest.fail("XLT_REQUIRE_RAY=1 but ray is not installed (pip install 'ray[default]')")
        pytest.skip("ray is not installed: the Ray backend is untested (pip install 'ray[default]'; "
                    "XLT_REQUIRE_RAY=1 makes this a failure)")
    return ray


@pytest.mark.slow
def test_ray_backend_gives_the_local_records_in_the_same_cache(ray_module, reference_grid, tmp_path, capsys):
    ray = ray_module
    ref_root, configs, reference = reference_grid
    configs, reference = configs[:3], reference[:3]
    root = tmp_path / "ray-results"
    root.mkdir()
    # one config already done (computed locally): it must not be submitted again
    shutil.copytree(ref_root / configs[0].key(), root / configs[0].key())
    cached = root / configs[0].key() / "record.json"
    stamp = cached.stat().st_mtime_ns
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        records = run_grid(configs, backend="ray", resources={"num_cpus": 1}, results=root, progress=True)
    finally:
        ray.shutdown()
    assert "2 Ray task(s) submitted (1 cached)" in capsys.readouterr().err
    assert [r["key"] for r in records] == [c.key() for c in configs]
    for got, want in zip(records, reference, strict=True):
        assert _stable(got) == _stable(want), got["label"]
    assert records == [json.loads((root / c.key() / "record.json").read_text()) for c in configs]
    assert cached.stat().st_mtime_ns == stamp
    assert _layout(root) == {k: v for k, v in _layout(ref_root).items() if k in {c.key() for c in configs}}
    assert not [p for p in root.rglob("*") if ".tmp" in p.name]


def test_the_exported_grid_command_names_no_machine_path():
    from xlt_utils.sweep import _grid_command

    argv = ["--profile", "toy", "--tasks", "pos", "--results-dir", "/somewhere/results", "--export=out.json",
            "--seeds", "1", "2", "--backend", "ray", "--quiet"]
    assert _grid_command(argv) == "python -m xlt_utils.sweep --profile toy --tasks pos --seeds 1 2"


def test_a_ray_grid_without_ray_says_how_to_install_it_from_the_repository(monkeypatch, tmp_path):
    import sys

    import xlt_utils
    from xlt_utils.sweep import expand_grid, ray_install_spec, run_grid

    monkeypatch.setitem(sys.modules, "ray", None)  # as where Ray is not installed: import fails
    spec = ray_install_spec()
    assert spec == f"xlt-utils[ray] @ git+{xlt_utils.REPOSITORY_URL}@{xlt_utils.release_ref()}"
    cfgs = expand_grid(get_profile("toy", n_train=8, n_eval=4), tasks=("pos",), seeds=(1,), epochs=1)
    with pytest.raises(ImportError, match=re.escape(f'pip install "{spec}"')):
        run_grid(cfgs, backend="ray", results=tmp_path / "results", progress=False)
