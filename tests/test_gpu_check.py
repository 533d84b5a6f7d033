"""benchmarks/gpu_check.py fails clearly without CUDA (exit status 2 and a sentence that says why)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
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


@pytest.mark.slow
def test_the_speed_and_checkpoint_measurements_run(shared_data):
    """The measuring code itself, on the CPU with a small model of mBERT's vocabulary: the real
    fine-tuning loop, the step time, and a resume checkpoint's size (weights + AdamW's two moments)."""
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    r = _load().speed(shared_data, steps=2, device="cpu", config=small)
    assert r["precision"] == "fp32" and r["steps"] == 2 and r["sentences"] == 64
    assert r["step_s"] > 0 and r["tokens_per_s"] > 0 and r["peak_memory_gb"] is None
    params = 119_547 * 32 + 512 * 32  # the embeddings dominate: ~3.8 M parameters, 4 bytes each, x3
    assert 3 * 4 * params / 1e9 * 0.9 < r["checkpoint_gb"] < 3 * 4 * params / 1e9 * 1.5
