"""Honest budgets: runtimes come from a measured step times counted steps, never a hand-written guess."""

from __future__ import annotations

import pytest

from xlt_utils import budget
from xlt_utils.models import tiny_bert_config
from xlt_utils.profiles import get_profile


def test_step_counts_of_the_quick_profile():
    q = get_profile("quick")  # 2000 sentences, batch 32, 2 epochs: 63 x 2 = 126 steps per fine-tuning
    assert budget.chapter_steps(q, 2) == (6, 6 * 126, 6 * 141)  # 500 x 9 languages / 32 = 141 batches
    assert budget.chapter_steps(q, 3)[:2] == (3 * 15, 45 * 126)  # 11 consecutive pairs + ref + 2 freeze + random
    assert budget.chapter_steps(q, 0) == budget.chapter_steps(q, 1) == (0, 0, 0)
    full = get_profile("full")
    runs, steps, _ = budget.chapter_steps(full, 3)
    assert runs == 3 * 5 * (1 + 66 + 2 + 1)
    with pytest.raises(ValueError, match="valid chapters: 0, 1, 2, 3, 4"):
        budget.chapter_steps(q, 7)


def test_the_estimate_is_steps_times_the_measured_cost():
    est = budget.estimate(get_profile("quick"), 2, step_seconds=10.0, device="cpu", precision="fp32")
    assert est.seconds == pytest.approx((756 + 846 / 3) * 10.0)
    line = est.line()
    assert line.startswith("Estimated runtime of chapter 2 here (cpu, fp32): 2.9 h = 6 fine-tunings, 756 training")
    assert "10.00 s per measured step" in line


def test_a_step_is_really_measured():
    seconds = budget.measure_step_seconds(tiny_bert_config(500), batch_size=4, length=16, device="cpu",
                                          precision="fp32", steps=2)
    assert 0 < seconds < 30


def test_toy_prints_nothing(capsys):
    assert budget.print_estimate(get_profile("toy"), 2) is None
    assert capsys.readouterr().out == ""


def test_durations_read_well():
    assert [budget.format_duration(s) for s in (12, 600, 7200, 4 * 86400)] == ["12 s", "10 min", "2.0 h", "4.0 days"]
