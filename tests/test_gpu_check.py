"""benchmarks/gpu_check.py fails clearly without CUDA (exit status 2 and a sentence that says why)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_without_cuda_it_stops_with_a_clear_message(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _load().main([]) == 2
    err = capsys.readouterr().err
    assert "no CUDA device is visible to torch" in err and "Change runtime type > GPU" in err


def test_a_missing_tokenizer_is_named(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _load().main(["--data", str(tmp_path)]) == 2
    assert "mbert-tokenizer/tokenizer.json" in capsys.readouterr().err
