"""Honest budgets: runtimes come from a measured step times counted steps, never a hand-written guess."""

from __future__ import annotations

import pytest

from xlt_utils import budget
from xlt_utils.models import tiny_bert_config
from xlt_utils.profiles import get_profile


def test_step_counts_of_the_quick_profile():
    q = get_profile("quick")  # 2000 sentences, batch 32, 2 epochs: 63 x 2 = 126 steps per fine-tuning
    assert budget.chapter_steps(q, 2) == (6, 6 * 126, 6 * 141)  # 500 x 9 languages / 32 = 141 batches
    # chapter 3's default grid: ref + 6 consecutive pairs + 2 freeze halves + random, x 3 tasks x 1 seed
    assert budget.chapter_steps(q, 3)[:2] == (3 * 10, 30 * 126)
    assert budget.chapter_steps(q, 0) == budget.chapter_steps(q, 1) == (0, 0, 0)
    full = get_profile("full")
    runs, steps, _ = budget.chapter_steps(full, 3)
    assert runs == 3 * 5 * 10
    with pytest.raises(ValueError, match="valid chapters: 0, 1, 2, 3, 4"):
        budget.chapter_steps(q, 7)


def test_the_estimate_is_steps_times_the_measured_cost():
    est = budget.estimate(get_profile("quick"), 2, step_seconds=10.0, device="cpu", precision="fp32")
    # mBERT: 12 bytes x 177.9 M parameters; one checkpoint per run (after epoch 1: 630 s unsaved; never
    # after the last epoch)
    assert est.checkpoint_bytes == pytest.approx(2.13e9, rel=0.01) and est.checkpoints == 6
    assert est.seconds == pytest.approx((756 + 846 / 3) * 10.0 + 6 * est.checkpoint_bytes / 250e6)
    line = est.line()
    assert line.startswith("Estimated runtime of chapter 2 here (cpu, fp32): 2.9 h = (6 fine-tunings: 756 training")
    assert "x 10.00 s per step (measured here: median after warm-up) + 6 resume checkpoints of 2.13 GB" in line
    assert line.endswith("An estimate: with an empty result cache, not counting model loading")


def test_checkpoint_writes_follow_the_training_rule():
    big, small = 2_000_000_000, 30_000_000
    assert budget.checkpoint_writes(big, 100.0, 3) == 0  # 200 s unsaved after epoch 2, none after the last
    assert budget.checkpoint_writes(big, 400.0, 3) == 2
    assert budget.checkpoint_writes(small, 1.0, 3) == 3  # a small checkpoint after every epoch


def test_the_budget_counts_chapter_3s_default_grid():
    import ast
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "03_reinit_ablation.ipynb").read_text())
    params = next("".join(c["source"]) for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    (value,) = [node.value for node in ast.parse(params).body
                if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "ablations"]
    assert tuple(ast.literal_eval(value)) == budget.CHAPTER3_ABLATIONS


@pytest.mark.slow
def test_a_step_is_really_measured():
    seconds = budget.measure_step_seconds(tiny_bert_config(500), batch_size=4, length=16, device="cpu",
                                          precision="fp32", steps=2)
    assert 0 < seconds < 30


def test_toy_prints_nothing(capsys):
    assert budget.print_estimate(get_profile("toy"), 2) is None
    assert capsys.readouterr().out == ""


def test_durations_read_well():
    assert [budget.format_duration(s) for s in (12, 600, 7200, 4 * 86400)] == ["12 s", "10 min", "2.0 h", "4.0 days"]
