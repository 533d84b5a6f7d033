"""The paper's claims C1–C5 as measurements, in one home: the decision rules (each claim is a
`Verdict`: an effect with its 95% interval, a decision line fixed in advance, a control, and one of
three outcomes: holds, does not hold, or undetermined), the evidence they read (from runs and
models), all five from one call, and the tables that open chapter 0 and the book (what replicates;
the evidence behind each verdict; where each part of the paper is rebuilt).
`python -m xlt_utils.verdicts` prints the evidence table.

`verdicts(P)` measures, for a profile:

- C1 and C2 for every task, from the reference runs and the Reinit of the lower and the upper pair,
  paired over the profile's seeds (the records of chapter 3's grid; in the toy profile they ship
  with the package, so nothing trains);
- C3 from the English–X debiased CKA per layer of the pretrained model on parallel test sentences,
  minus the same CKA on same-length non-translations (the control);
- C4 from the change that fine-tuning makes in each layer given the same input, for one task and
  every seed of the profile (those models are trained once and cached; chapter 4 uses them too);
- C5 for every task, from C3's similarity and the reference scores averaged over seeds.

Chapter 3 computes C1 and C2 cell by cell; chapter 4 computes C3–C5 cell by cell and checks that
`similarity_verdicts` gives the same verdicts from its states.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .ablation import REFERENCE, Ablation, lower_upper
from .analysis import MAIN_METRIC, ablation_deltas, per_seed_scores
from .evaluation import mean_pooled_states
from .experiments import experiment_config, load_finetuned, load_split, records_table
from .pretrained import load_encoder, num_layers
from .profiles import Profile, get_profile, require_profile
from .similarity import cka_halves, cka_per_layer
from .store import ResultStore
from .sweep import expand_grid, run_grid

__all__ = [
    "CLAIMS",
    "PAPER",
    "PAPER_MAP",
    "MissingRuns",
    "Verdict",
    "c5_power",
    "change_evidence",
    "cka_curves",
    "claims_table",
    "en_x_curves",
    "evidence_table",
    "local_states",
    "paper_map",
    "parallel_sentences",
    "parallel_states",
    "reference_scores",
    "reinit_verdicts",
    "replication_table",
    "sentence_lengths",
    "similarity_evidence",
    "similarity_verdicts",
    "verdict_c1",
    "verdict_c1_c2",
    "verdict_c2",
    "verdict_c3",
    "verdict_c4",
    "verdict_c5",
    "verdicts",
]

# ----------------------------------------------------------------------------------------------
# The claims as measurements. Each verdict is an instrument: an effect (the quantity the claim is
# about), its 95% interval, a decision line fixed in advance, a control, and one of three outcomes.
# The rules were chosen on synthetic cases where the truth is planted (tests/test_verdicts.py),
# never on what they say about the toy world or the paper.
# ----------------------------------------------------------------------------------------------

HOLDS, DOES_NOT_HOLD, UNDETERMINED = "holds", "does not hold", "undetermined"

#: The decision lines. None of them grows with the noise: noise widens an interval, and a wider
#: interval can only make a verdict undetermined, never make a claim hold.
MARGIN_POINTS = 1.0  # C1, C2: one point of accuracy, F1 or LAS
CEILING_POINTS = 1.0  # a score within this of 100 is at its ceiling: it cannot show a loss it hides
CKA_MARGIN = 0.05  # C3: a rise or a fall of the excess CKA smaller than this is none
CHANGE_MARGIN = 0.01  # C4: the upper half must change more than the lower half by this (1 - CKA)
ALPHA = 0.05  # C5: one-sided level of the exact permutation test
LEVEL = 0.95  # every interval
HALF_SAMPLES = 200  # C3, C4: random halves of the sentences behind the sentence intervals
POWER_RHO = 0.8  # C5: the true rank correlation at which the test's power is reported


@dataclass(frozen=True)
class Verdict:
    """One claim for one task, as a measurement: `effect` (what is measured, in words) is `value`
    with its 95% `interval`; `rule` says how the outcome follows from them; `control` gives the
    control's numbers; `reason` says why a verdict is undetermined. `str(verdict)` is all of it in
    one line, e.g. "C1 undetermined (source at its ceiling): ..."."""

    claim: str
    task: str
    outcome: str  # HOLDS, DOES_NOT_HOLD or UNDETERMINED
    effect: str
    value: float
    interval: tuple[float, float]
    rule: str
    control: str
    reason: str = ""
    digits: int = 1
    numbers: Mapping = field(default_factory=dict)
    signed: bool = True  # False for a layer or a share: no "+" in front

    @property
    def holds(self) -> bool:
        return self.outcome == HOLDS

    @property
    def label(self) -> str:
        """The outcome, with the reason when it is undetermined: "undetermined (1 seed)"."""
        return f"{self.outcome} ({self.reason})" if self.reason and self.outcome == UNDETERMINED else self.outcome

    @property
    def estimate(self) -> str:
        """The value with its interval: "+2.5 [-2.6, +7.6]" (no interval: the value alone)."""
        lo, hi = self.interval
        f = f"{'+' if self.signed else ''}.{self.digits}f"
        v = format(self.value, f)
        return v if math.isnan(lo) else f"{v} [{format(lo, f)}, {format(hi, f)}]"

    def __str__(self) -> str:
        return f"{self.claim} {self.label}: {self.effect} {self.estimate} (95% CI); control: {self.control}"


def t_interval(values, level: float = LEVEL) -> tuple[float, float, float]:
    """Mean and the Student-t interval over paired values (one a seed); (mean, nan, nan) for one."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf((1 + level) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def _seed_deltas(deltas: pd.DataFrame, ablation: Ablation) -> tuple[pd.DataFrame, float]:
    """Per seed: the source's Δ and the targets' mean Δ (columns source, target), and the source's
    reference score (mean over seeds)."""
    d = deltas[deltas.ablation == ablation]
    if d.empty:
        present = ", ".join(a.label for a in sorted(set(deltas.ablation)))
        raise ValueError(f"no runs for ablation {ablation.label!r}; present: {present}")
    wide = d.pivot_table(index="seed", columns="role", values="delta").dropna()
    src = d[d.role == "source"]
    return wide, float((src["value"] - src["delta"]).mean())


def _ceiling(reference: float) -> bool:
    return reference >= 100.0 - CEILING_POINTS


def _at_ceiling(reference: float) -> str:
    """"; source at its ceiling, 99.6" where it is (a second reason beside a straddling interval)."""
    return f"; source at its ceiling, {reference:.1f}" if _ceiling(reference) else ""


def verdict_c1(deltas: pd.DataFrame, lower: Ablation, task: str = "") -> Verdict:
    """C1: re-initialising the lower layers hurts the targets much more than the source.

    Effect: the gap Δsource − Δtarget (points; Δ = Reinit − reference, paired by seed, targets
    averaged), with its t interval over seeds. Holds when the interval lies above MARGIN_POINTS and
    the targets' own Δ interval lies below 0. Does not hold when the gap's interval lies below the
    margin, or the targets surely do not lose (their interval above 0). Undetermined otherwise, with
    one seed, and instead of "holds" when the source's reference score is at its ceiling: a source
    at 100 cannot show a loss, so its Δ of 0 says nothing about what the lower layers do for it.
    """
    wide, ref = _seed_deltas(deltas, lower)
    gap, lo, hi = t_interval(wide["source"] - wide["target"])
    t_mean, t_lo, t_hi = t_interval(wide["target"])
    s_mean = float(wide["source"].mean())
    if len(wide) < 2:
        outcome, reason = UNDETERMINED, f"{len(wide)} seed"
    elif hi < MARGIN_POINTS or t_lo > 0:
        outcome, reason = DOES_NOT_HOLD, ""
    elif lo > MARGIN_POINTS and t_hi < 0:
        outcome, reason = (UNDETERMINED, f"source at its ceiling, {ref:.1f}") if _ceiling(ref) else (HOLDS, "")
    else:
        outcome, reason = UNDETERMINED, f"the interval straddles {MARGIN_POINTS:g} point" + _at_ceiling(ref)
    return Verdict("C1", task, outcome, f"{lower.label}: Δsource − Δtarget (points)", gap, (lo, hi),
                   f"holds when the gap's interval lies above {MARGIN_POINTS:g} point and the targets lose; "
                   f"not with a source at its ceiling", f"Δsource {s_mean:+.1f}, Δtarget {t_mean:+.1f}; "
                   f"source reference {ref:.1f}", reason, 1,
                   {"ablation": lower.label, "source": s_mean, "target": t_mean, "target_interval": (t_lo, t_hi),
                    "source_reference": ref, "seeds": len(wide)})


def verdict_c2(deltas: pd.DataFrame, upper: Ablation, task: str = "") -> Verdict:
    """C2: re-initialising the upper layers barely hurts the source or the targets.

    Effect: the Δ of the side that loses more (source or targets' mean; points, paired by seed),
    with its t interval. Holds when the intervals of both Δ lie above −MARGIN_POINTS (an
    equivalence test: the loss is surely under one point). Does not hold when either interval lies
    below −MARGIN_POINTS. Undetermined otherwise, with one seed, and instead of "holds" when the
    source is at its ceiling (its Δ of 0 cannot show a loss).
    """
    wide, ref = _seed_deltas(deltas, upper)
    (s_mean, s_lo, s_hi), (t_mean, t_lo, t_hi) = t_interval(wide["source"]), t_interval(wide["target"])
    worse = (s_mean, s_lo, s_hi) if s_mean <= t_mean else (t_mean, t_lo, t_hi)
    line = -MARGIN_POINTS
    if len(wide) < 2:
        outcome, reason = UNDETERMINED, f"{len(wide)} seed"
    elif s_hi < line or t_hi < line:
        outcome, reason = DOES_NOT_HOLD, ""
    elif s_lo > line and t_lo > line:
        outcome, reason = (UNDETERMINED, f"source at its ceiling, {ref:.1f}") if _ceiling(ref) else (HOLDS, "")
    else:
        outcome, reason = UNDETERMINED, f"an interval straddles {line:g} point" + _at_ceiling(ref)
    side = "source" if s_mean <= t_mean else "targets"
    return Verdict("C2", task, outcome, f"{upper.label}: Δ of the side that loses more, {side} (points)",
                   worse[0], (worse[1], worse[2]),
                   f"holds when both intervals lie above {line:g} point; not with a source at its ceiling",
                   f"Δsource {s_mean:+.1f} [{s_lo:+.1f}, {s_hi:+.1f}], Δtarget {t_mean:+.1f} "
                   f"[{t_lo:+.1f}, {t_hi:+.1f}]; source reference {ref:.1f}", reason, 1,
                   {"ablation": upper.label, "source": s_mean, "target": t_mean, "source_reference": ref,
                    "seeds": len(wide)})


def verdict_c1_c2(deltas: pd.DataFrame, lower: Ablation, upper: Ablation, task: str = "") -> list[Verdict]:
    """C1 (the Reinit of `lower`) and C2 (the Reinit of `upper`) for one task."""
    return [verdict_c1(deltas, lower, task), verdict_c2(deltas, upper, task)]


# --- intervals over sentences -------------------------------------------------------------------


def half_samples(n: int, count: int = HALF_SAMPLES, seed: int = 0) -> np.ndarray:
    """`count` random halves (without replacement) of range(n), [count, n // 2]. The spread of a
    statistic over halves of the sample estimates its sampling spread on the whole sample (half-
    sampling, McCarthy 1969: for a mean, the variance of a half without replacement is that of the
    full sample). A bootstrap with replacement would repeat sentences, which CKA reads as similarity."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(n, n // 2, replace=False) for _ in range(count)])


def _normal_interval(value: float, replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    half = float(stats.norm.ppf((1 + level) / 2) * np.std(replicates, ddof=1))
    return value - half, value + half


# --- C3 --------------------------------------------------------------------------------------------


def length_matched_pairs(lengths) -> np.ndarray:
    """A control pairing: `perm[i] != i` is another sentence of the same length as sentence i. The
    sentences of each length are rotated by one among themselves; a length that only one sentence
    has joins the group of the nearest shorter length (the next longer for the shortest)."""
    lengths = np.asarray(lengths)
    if len(lengths) < 2:
        raise ValueError("a length-matched control needs at least 2 sentences")
    order = np.argsort(lengths, kind="stable")
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[groups[-1][0]] == lengths[i]:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    merged: list[list[int]] = []
    for g in groups:
        if len(g) == 1 and merged or merged and len(merged[-1]) == 1:
            merged[-1].extend(g)
        else:
            merged.append(list(g))
    perm = np.empty(len(lengths), dtype=int)
    for g in merged:
        perm[g] = np.roll(g, -1)
    return perm


@dataclass(frozen=True)
class SimilarityEvidence:
    """English–X similarity per layer of one model (C3, C5): the debiased linear CKA of the parallel
    sentences (`parallel`, one row per target, one column per layer), of the same-length
    non-translations (`control`), their difference (`excess`, what translation adds), and the mean
    excess over targets on each random half of the sentences (`replicates`, [halves, layers])."""

    parallel: pd.DataFrame
    control: pd.DataFrame
    replicates: np.ndarray
    length_gap: float  # mean |length difference| (words) of the control pairs

    @property
    def excess(self) -> pd.DataFrame:
        return self.parallel - self.control


def similarity_evidence(states: Mapping, source: str, targets: Sequence[str], lengths: Mapping,
                        halves: int = HALF_SAMPLES, seed: int = 0) -> SimilarityEvidence:
    """C3's measurements from mean-pooled states ([L+1, n, d] per language, row i of every language
    the same sentence): debiased linear CKA(source, X) per layer for parallel pairs and for the
    control (each source sentence against a target sentence that is not its translation and has
    the same length as its translation: `length_matched_pairs(lengths[X])`), on all n sentences and
    on `halves` random halves."""
    src = states[source]
    idx = half_samples(src.shape[1], halves, seed)
    parallel, control, gaps = {}, {}, []
    reps = np.zeros((halves, src.shape[0]))
    for lang in targets:
        perm = length_matched_pairs(lengths[lang])
        gaps.append(float(np.abs(np.asarray(lengths[lang]) - np.asarray(lengths[lang])[perm]).mean()))
        other = states[lang][:, torch.as_tensor(perm)]  # each source sentence against its control pair
        parallel[lang] = cka_per_layer(src, states[lang], debiased=True)
        control[lang] = cka_per_layer(src, other, debiased=True)
        reps += cka_halves(src, states[lang], idx) - cka_halves(src, other, idx)
    reps /= len(targets)
    def frame(d):
        return pd.DataFrame(d).T.rename_axis(columns="layer")

    return SimilarityEvidence(frame(parallel), frame(control), reps, float(np.mean(gaps)))


def middle_layers(n_layers: int) -> tuple[int, int]:
    """The middle of a stack of layers 0..L: from ⌈L/4⌉ to L − ⌈L/4⌉ (3 to 9 for L = 12)."""
    q = math.ceil(n_layers / 4)
    return q, n_layers - q


def verdict_c3(evidence: SimilarityEvidence, task: str = "(pretrained)") -> Verdict:
    """C3: English–X similarity rises through the lower layers, then falls ("peaks in the middle").

    Measured on the excess CKA (parallel minus the same-length control, debiased, mean over
    targets), so that what sentence length alone makes similar does not count. Effect: the layer of
    its peak, with the 2.5–97.5% range of the peak layer over random halves of the sentences. Holds
    when that whole range lies in the middle layers (`middle_layers`) and both the rise (peak −
    layer 0) and the fall (peak − last layer) have intervals above CKA_MARGIN. Does not hold when
    the range lies wholly outside the middle, or the rise or the fall is surely under the margin.
    Undetermined otherwise.
    """
    mean = evidence.excess.mean(axis=0).to_numpy()
    last = len(mean) - 1
    peak = int(mean.argmax())
    peaks = evidence.replicates.argmax(axis=1)
    p_lo, p_hi = (int(v) for v in np.quantile(peaks, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], method="nearest"))
    rise, fall = float(mean[peak] - mean[0]), float(mean[peak] - mean[last])
    r_lo, r_hi = _normal_interval(rise, evidence.replicates[:, peak] - evidence.replicates[:, 0])
    f_lo, f_hi = _normal_interval(fall, evidence.replicates[:, peak] - evidence.replicates[:, last])
    m_lo, m_hi = middle_layers(last)
    if p_hi < m_lo or p_lo > m_hi or r_hi < CKA_MARGIN or f_hi < CKA_MARGIN:
        outcome, reason = DOES_NOT_HOLD, ""
    elif m_lo <= p_lo and p_hi <= m_hi and r_lo > CKA_MARGIN and f_lo > CKA_MARGIN:
        outcome, reason = HOLDS, ""
    else:
        parts = ([f"peak range {p_lo}-{p_hi} leaves the middle"] if not m_lo <= p_lo <= p_hi <= m_hi else []) + \
                [f"{name} interval straddles {CKA_MARGIN:g}" for name, lo in (("rise", r_lo), ("fall", f_lo))
                 if lo <= CKA_MARGIN]
        outcome, reason = UNDETERMINED, "; ".join(parts)
    raw = evidence.parallel.mean(axis=0)
    ctrl = evidence.control.mean(axis=0)
    return Verdict("C3", task, outcome, "peak layer of the excess CKA (parallel − same-length control)",
                   float(peak), (float(p_lo), float(p_hi)),
                   f"holds when the peak's range lies in layers {m_lo}-{m_hi} and the rise and the fall "
                   f"exceed {CKA_MARGIN:g}",
                   f"rise {rise:+.3f} [{r_lo:+.3f}, {r_hi:+.3f}], fall {fall:+.3f} [{f_lo:+.3f}, {f_hi:+.3f}]; "
                   f"raw parallel CKA peaks at layer {int(raw.to_numpy().argmax())}; same-length "
                   f"non-translations: {ctrl.iloc[0]:.3f} at layer 0 vs {raw.iloc[0]:.3f} parallel",
                   reason, 0,
                   {"peak_layer": peak, "peak_range": (p_lo, p_hi), "rise": rise, "rise_interval": (r_lo, r_hi),
                    "fall": fall, "fall_interval": (f_lo, f_hi), "middle": (m_lo, m_hi), "last_layer": last},
                   signed=False)


# --- C4 --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeEvidence:
    """What fine-tuning changed, layer by layer (C4), for each fine-tuning seed: `local` is
    1 − CKA(layer l of the pretrained model, layer l of the fine-tuned model given the same input,
    the pretrained model's layer l − 1), averaged over languages (one row per seed, one column per
    layer); `replicates` holds, per seed, the upper half's share of that change on random halves of
    the sentences ([seeds, halves]); `accumulated` is the paper's measure, 1 − CKA of the two whole
    stacks, which also counts in each layer every change made below it."""

    local: pd.DataFrame
    replicates: np.ndarray
    accumulated: pd.DataFrame


#: C4's decision line: the upper half's share of the change. 2/3 means the upper layers change
#: twice as much as the lower ones, the least that "far more" can mean.
UPPER_SHARE = 2 / 3


def upper_share(change: np.ndarray) -> np.ndarray:
    """The upper half's share of the change, U / (U + D), with U and D the mean change over the upper
    and the lower half of layers 1..L (last axis); 1/2 where nothing changed."""
    half = (change.shape[-1] - 1) // 2
    up, down = change[..., half + 1:].mean(-1), change[..., 1:half + 1].mean(-1)
    total = up + down
    return np.where(total > 1e-9, up / np.where(total > 1e-9, total, 1.0), 0.5)


def change_evidence(pretrained: Mapping, local: Mapping, tuned: Mapping | None = None,
                    halves: int = HALF_SAMPLES, seed: int = 0) -> ChangeEvidence:
    """C4's measurements. `pretrained[lang]`: the pretrained model's states [L+1, n, d];
    `local[s][lang]`: the fine-tuned (seed s) model's layer outputs given the pretrained model's
    inputs (`claims.local_states`); `tuned[s][lang]`: the fine-tuned model's own states (for the
    accumulated measure). Debiased linear CKA; the change is clipped at 0 below (CKA's estimate
    can exceed 1 by its noise)."""
    langs = list(pretrained)
    idx = half_samples(pretrained[langs[0]].shape[1], halves, seed)
    rows, acc, reps = {}, {}, []
    for s, states in local.items():
        change, rep = 0.0, 0.0
        for lang in langs:
            change = change + (1 - cka_per_layer(pretrained[lang], states[lang], debiased=True)).clip(0)
            rep = rep + (1 - cka_halves(pretrained[lang], states[lang], idx)).clip(0)
            if tuned is not None:
                whole = (1 - cka_per_layer(pretrained[lang], tuned[s][lang], debiased=True)).clip(0)
                acc[s] = acc.get(s, 0.0) + whole
        rows[s] = change / len(langs)
        reps.append(upper_share(rep / len(langs)))
    def frame(d):
        return pd.DataFrame(d).T.rename_axis(index="seed", columns="layer")

    return ChangeEvidence(frame(rows), np.stack(reps), frame({s: a / len(langs) for s, a in acc.items()}))


def verdict_c4(evidence: ChangeEvidence, task: str = "") -> Verdict:
    """C4: fine-tuning changes the upper layers far more than the lower ones.

    Measured where the change happens: each layer of the fine-tuned model is given the pretrained
    model's input to that layer, so a change in layer 2 is not counted again in every layer above
    it (as the paper's CKA of the two whole stacks does). Effect: the upper half's share of the
    local change, U / (U + D) (`upper_share`: 1/2 when both halves change alike), averaged over
    fine-tuning seeds; its interval combines the spread over seeds (t) and over random halves of the
    sentences. Holds when the interval lies above UPPER_SHARE (2/3: the upper half changes at least
    twice as much), does not hold when it lies below; undetermined otherwise, and with one seed.
    """
    shares = upper_share(evidence.local.to_numpy())
    k = len(shares)
    value = float(shares.mean())
    sentence_sd = float(np.std(evidence.replicates.mean(axis=0), ddof=1))
    seed_half = float(stats.t.ppf((1 + LEVEL) / 2, k - 1) * shares.std(ddof=1) / math.sqrt(k)) if k > 1 else 0.0
    half = math.hypot(stats.norm.ppf((1 + LEVEL) / 2) * sentence_sd, seed_half)
    lo, hi = max(0.0, value - half), min(1.0, value + half)
    if k < 2:
        outcome, reason = UNDETERMINED, f"{k} seed"
    elif hi < UPPER_SHARE:
        outcome, reason = DOES_NOT_HOLD, ""
    elif lo > UPPER_SHARE:
        outcome, reason = HOLDS, ""
    else:
        outcome, reason = UNDETERMINED, f"the interval straddles {UPPER_SHARE:.2f}"
    acc = float(upper_share(evidence.accumulated.to_numpy()).mean()) if len(evidence.accumulated) else math.nan
    local = evidence.local.mean(axis=0)
    half_l = (len(local) - 1) // 2
    return Verdict("C4", task, outcome, "upper half's share of the local change (1 − CKA)", value, (lo, hi),
                   f"holds when the interval lies above {UPPER_SHARE:.2f} (upper half changes twice the lower)",
                   f"mean local change {local.iloc[1:half_l + 1].mean():.4f} in layers 1-{half_l}, "
                   f"{local.iloc[half_l + 1:].mean():.4f} in layers {half_l + 1}-{len(local) - 1}; the paper's "
                   f"whole-stack measure gives a share of {acc:.2f} (it counts the change made below each layer)",
                   reason, 2, {"seeds": k, "per_seed": shares.tolist(), "accumulated": acc}, signed=False)


# --- C5 --------------------------------------------------------------------------------------------


def _ranks(x) -> np.ndarray:
    return stats.rankdata(np.asarray(x, dtype=float))


def _null_rhos(n: int, draws: int = 20_000, seed: int = 0) -> tuple[np.ndarray, bool]:
    """Rank permutations of range(n): all n! for n <= 8 (exact), else `draws` random ones."""
    if n <= 8:
        return np.array(list(itertools.permutations(range(n)))), True
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(draws)]), False


def spearman_permutation_test(x, y) -> tuple[float, float]:
    """Spearman ρ of x and y and its one-sided p-value for ρ > 0 under exchangeability: the share of
    orderings of y with a ρ at least as large (ties by average ranks). Exact (all n! orderings) for
    n <= 8; otherwise 20,000 random orderings, p = (1 + count) / (1 + 20,000). NaN when x or y is
    constant."""
    rx, ry = _ranks(x), _ranks(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return math.nan, math.nan
    rx, ry = rx - rx.mean(), ry - ry.mean()
    norm = math.sqrt((rx**2).sum() * (ry**2).sum())
    rho = float((rx * ry).sum() / norm)
    perms, exact = _null_rhos(len(rx))
    null = (ry[perms] * rx).sum(axis=1) / norm
    count = int((null >= rho - 1e-12).sum())
    return rho, count / len(perms) if exact else (1 + count) / (1 + len(perms))


def spearman_interval(rho: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Fisher-z interval of a Spearman ρ with Bonett & Wright's (2000) variance (1 + ρ²/2)/(n − 3)."""
    if n < 4 or math.isnan(rho):
        return math.nan, math.nan
    z, se = math.atanh(max(min(rho, 0.9999), -0.9999)), math.sqrt((1 + rho**2 / 2) / (n - 3))
    q = stats.norm.ppf((1 + level) / 2)
    return math.tanh(z - q * se), math.tanh(z + q * se)


@functools.lru_cache(maxsize=64)
def c5_power(n: int, rho: float = POWER_RHO, alpha: float = ALPHA, sims: int = 4000, seed: int = 0) -> float:
    """The chance that `verdict_c5`'s test finds a true rank correlation `rho` significant with n
    languages (bivariate normal with Pearson r = 2 sin(πρ/6), which has that Spearman ρ), from
    `sims` simulated labs."""
    r = 2 * math.sin(math.pi * rho / 6)
    rng = np.random.default_rng(seed)
    perms, _ = _null_rhos(n)
    ref = np.arange(n, dtype=float) - (n - 1) / 2
    null = np.sort((ref[perms] * ref).sum(axis=1) / (ref**2).sum())
    x = rng.standard_normal((sims, n))
    y = r * x + math.sqrt(1 - r**2) * rng.standard_normal((sims, n))
    rx = x.argsort(axis=1).argsort(axis=1) - (n - 1) / 2
    ry = y.argsort(axis=1).argsort(axis=1) - (n - 1) / 2
    obs = (rx * ry).sum(axis=1) / (ref**2).sum()
    p = (len(null) - np.searchsorted(null, obs - 1e-12)) / len(null)
    return float((p < alpha).mean())


def verdict_c5(similarity: pd.Series, scores: pd.Series, task: str = "") -> Verdict:
    """C5: cross-lingual similarity is positively correlated with zero-shot scores across languages.

    The similarity of a target is fixed in advance, not picked among layers: its excess CKA
    (parallel − same-length control) averaged over all layers. Effect: Spearman ρ across the
    targets, with a Fisher-z interval. Holds when the exact one-sided permutation p is below ALPHA;
    does not hold when the interval lies below 0; undetermined otherwise (the power of the test at
    this number of languages is in the control column), or when the scores are constant.
    """
    langs = [lang for lang in similarity.index if lang in scores.index]
    n = len(langs)
    rho, p = spearman_permutation_test(similarity[langs], scores[langs])
    lo, hi = spearman_interval(rho, n)
    power = c5_power(n) if n >= 3 else math.nan
    if math.isnan(rho):
        outcome, reason = UNDETERMINED, f"constant scores or similarities across the {n} languages"
    elif p < ALPHA and rho > 0:
        outcome, reason = HOLDS, ""
    elif not math.isnan(hi) and hi < 0:
        outcome, reason = DOES_NOT_HOLD, ""
    else:
        outcome, reason = UNDETERMINED, f"p = {p:.3f}"
    return Verdict("C5", task, outcome, f"Spearman ρ over {n} targets, excess CKA (mean over layers) vs score",
                   rho, (lo, hi), f"holds when the exact one-sided p < {ALPHA:g}; does not hold when the "
                   f"interval lies below 0",
                   (f"exact permutation p = {p:.3f}; power at {n} languages for a true ρ of {POWER_RHO:g}: "
                    f"{power:.0%}" if not math.isnan(p) else "no correlation defined"), reason, 2,
                   {"spearman": rho, "p": p, "languages": n, "power": power})


def similarity_transfer_correlation(similarity: pd.DataFrame, scores: pd.Series) -> pd.DataFrame:
    """Spearman ρ across languages between each layer's similarity and the zero-shot score, with its
    exact one-sided permutation p (`spearman_permutation_test`). Exploratory: C5's verdict uses one
    similarity fixed in advance (`verdict_c5`), since picking the best of L + 1 layers after
    looking would need a correction that leaves a handful of languages no power at all. A layer
    with a constant column has NaN."""
    langs = [lang for lang in similarity.index if lang in scores.index]
    rows = []
    for layer in similarity.columns:
        rho, p = spearman_permutation_test(similarity.loc[langs, layer], scores.loc[langs])
        rows.append({"layer": layer, "spearman": rho, "p": p, "languages": len(langs)})
    return pd.DataFrame(rows).set_index("layer")


def claims_table(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """Every verdict with its evidence: claim, task, verdict, effect, estimate [95% CI], control."""
    return pd.DataFrame([{"claim": v.claim, "task": v.task, "verdict": v.label, "effect": v.effect,
                          "estimate [95% CI]": v.estimate, "control": v.control} for v in verdicts],
                        columns=["claim", "task", "verdict", "effect", "estimate [95% CI]", "control"])


#: The claims, as the chapters state them.
CLAIMS = {
    "C1": "Re-initialising the lower layers hurts the target languages much more than the source language.",
    "C2": "Re-initialising the upper layers barely hurts either.",
    "C3": "English–X similarity (CKA) per layer rises through the lower layers, then falls: it peaks in the middle.",
    "C4": "Fine-tuning changes the upper layers far more than the lower ones.",
    "C5": "Cross-lingual similarity correlates with transfer performance across languages.",
}

#: How the paper supports each claim with mBERT (its experiment, in words: the chapters name the
#: experiment rather than a table or figure number).
PAPER = {
    "C1": "RANDOM-INIT of the first layers, source vs targets, POS, NER and parsing",
    "C2": "RANDOM-INIT of the last layers, source vs targets, POS, NER and parsing",
    "C3": "English–X CKA of the pretrained model per layer",
    "C4": "CKA between the pretrained and the fine-tuned model per layer",
    "C5": "cross-lingual similarity against zero-shot scores across languages",
}

#: Where each part of the paper is rebuilt: (chapter, the start of a section heading of that
#: chapter, what it reproduces). "extension" marks what this repository adds to the paper's experiments.
PAPER_MAP = [
    ("0 Overview", "The toy multilingual BERT", "extension: a 12-layer BERT pretrained here on synthetic languages"),
    ("1 Data and tokenisation", "Tokenisation", "the languages' subword statistics under one shared vocabulary"),
    ("2 Fine-tuning and zero-shot", "One experiment, one config", "the paper's baseline: fine-tune on English, evaluate zero-shot"),
    ("2 Fine-tuning and zero-shot", "Experiment: pretrained vs random init", "extension: the no-pretraining encoder as a floor"),
    ("3 Reinit ablation", "Experiment: the paper's grid in one call",
     "C1, C2: RANDOM-INIT of pairs of consecutive layers, 3 tasks, over seeds and per target language"),
    ("3 Reinit ablation", "Experiment: the paper's grid in one call", "extension: freezing the lower or the upper half"),
    ("4 Representation similarity", "The idea: CKA", "extension: the debiased estimator (the small-sample trap)"),
    ("4 Representation similarity", "C3: English–X similarity per layer", "C3: English–X CKA per layer, pretrained model"),
    ("4 Representation similarity", "English–X similarity after fine-tuning", "English–X CKA per layer, fine-tuned vs pretrained"),
    ("4 Representation similarity", "C4: what fine-tuning changes", "C4: CKA(pretrained, fine-tuned) per layer"),
    ("4 Representation similarity", "C5: does similarity predict transfer?", "C5: similarity against transfer across languages"),
]


def parallel_sentences(profile: Profile, n: int | None = None) -> dict:
    """The first `n` parallel test sentences (default: the profile's `n_cka`) of every language of the
    profile; raises if the test sets are not parallel."""
    P = require_profile(profile)
    parallel = {lang: load_split(P, lang, "pos", "test", n or P.n_cka) for lang in P.languages}
    ids = [s.sent_id for s in parallel[P.source]]
    bad = [lang for lang in P.languages if [s.sent_id for s in parallel[lang]] != ids]
    if bad:
        raise ValueError(f"the test sets of {', '.join(bad)} are not parallel to {P.source}'s (sent_id differ)")
    return parallel


def sentence_lengths(parallel: Mapping) -> dict:
    """The length in words of every sentence of `parallel_sentences` (C3's control pairs sentences
    of the same length)."""
    return {lang: [len(s.words) for s in sents] for lang, sents in parallel.items()}


def parallel_states(model, tokenizer, profile: str | Profile | Mapping, n: int | None = None) -> dict:
    """Mean-pooled states [L+1, n, H] per language of `parallel_sentences(profile, n)`, or of the
    sentences given (a mapping language -> sentences, as `parallel_sentences` returns)."""
    parallel = profile if isinstance(profile, Mapping) else parallel_sentences(profile, n)
    return {lang: mean_pooled_states(model, tokenizer, [s.words for s in sents]) for lang, sents in parallel.items()}


class _LocalStack(torch.nn.Module):
    """An encoder whose layer l is the fine-tuned model's layer l applied to the pretrained model's
    layer l − 1 (its embeddings: the fine-tuned embeddings of the same subwords). It runs the
    pretrained encoder and, at each of its layers, calls the fine-tuned layer with the very
    arguments the pretrained layer receives (hidden states, attention mask, ...)."""

    def __init__(self, pretrained, tuned):
        super().__init__()
        self.pretrained, self.tuned = pretrained, tuned
        self.config = pretrained.config  # what `mean_pooled_states` reads (its length limit)

    def forward(self, input_ids, attention_mask, output_hidden_states=True):
        outputs, handles = {}, []

        def run_tuned(layer, index):
            def hook(module, args, kwargs):
                out = layer(*args, **kwargs)
                outputs[index] = out[0] if isinstance(out, tuple) else out
            return hook

        pairs = zip(self.pretrained.encoder.layer, self.tuned.encoder.layer, strict=True)
        for i, (mine, theirs) in enumerate(pairs, start=1):
            handles.append(mine.register_forward_pre_hook(run_tuned(theirs, i), with_kwargs=True))
        try:
            self.pretrained(input_ids=input_ids, attention_mask=attention_mask)
        finally:
            for h in handles:
                h.remove()
        hidden = (self.tuned.embeddings(input_ids=input_ids),) + tuple(outputs[i] for i in sorted(outputs))
        return SimpleNamespace(hidden_states=hidden)


def local_states(pretrained, tuned, tokenizer, sentences) -> torch.Tensor:
    """C4's measure of where fine-tuning changed the model: for every layer l, the mean-pooled output
    of the fine-tuned layer l given the pretrained model's layer l − 1 as input, [L+1, n, H] (the
    same pooling as `mean_pooled_states`). Compared with the pretrained model's own states, layer by
    layer, it shows the change made in that layer, not the change accumulated below it."""
    stack = _LocalStack(getattr(pretrained, "base_model", pretrained), getattr(tuned, "base_model", tuned))
    return mean_pooled_states(stack, tokenizer, sentences)


def cka_curves(pairs: Mapping[str, tuple], kernel: str = "linear", debiased: bool = False) -> pd.DataFrame:
    """CKA per layer of each pair of state tensors ([L+1, n, d] each): one row per key of `pairs`,
    one column per layer."""
    rows = {key: cka_per_layer(a, b, kernel=kernel, debiased=debiased) for key, (a, b) in pairs.items()}
    curves = pd.DataFrame(rows).T
    curves.columns.name = "layer"
    return curves


def en_x_curves(states: dict, source: str, targets: Sequence[str], kernel: str = "linear",
                debiased: bool = False) -> pd.DataFrame:
    """CKA(source, X) per layer for every target: one row per target, one column per layer."""
    return cka_curves({lang: (states[source], states[lang]) for lang in targets}, kernel, debiased)


def reference_scores(profile: Profile, tasks: Sequence[str] | None = None, results=None) -> pd.DataFrame:
    """Zero-shot score of the reference runs (the task's main metric), averaged over the profile's
    seeds: one row per language, one column per task. `results`: the result store or its root
    (default: the settings')."""
    P = require_profile(profile)
    tasks = list(tasks or MAIN_METRIC)
    table = records_table(run_grid(expand_grid(P, tasks=tasks, seeds=P.seeds), progress=False, results=results))
    table = table[table.metric == table.task.map(MAIN_METRIC)]
    return table.groupby(["language", "task"])["value"].mean().unstack("task")[tasks]


class MissingRuns(LookupError):
    """`verdicts(..., train=False)` needs runs that are not in the result store yet."""


def _reinit_grid(P: Profile, tasks: Sequence[str]):
    low, up = lower_upper(num_layers(P))
    lower, upper = Ablation("reinit", low), Ablation("reinit", up)
    return lower, upper, expand_grid(P, tasks=tasks, seeds=P.seeds, ablations=[REFERENCE, lower, upper])


def reinit_verdicts(profile: Profile, tasks: Sequence[str] | None = None,
                    progress: bool = False, results=None) -> list[Verdict]:
    """C1 and C2 for every task (default: pos, ner, parse): the Reinit of the profile's lower and
    upper pair against the reference, over its seeds (chapter 3's grid; runs what is not cached, in
    the result store `results`, default the settings')."""
    P = require_profile(profile)
    tasks = list(tasks or MAIN_METRIC)
    lower, upper, configs = _reinit_grid(P, tasks)
    deltas = ablation_deltas(per_seed_scores(run_grid(configs, progress=progress, results=results)))
    return [v for t in tasks for v in verdict_c1_c2(deltas[deltas.task == t], lower, upper, task=t)]


def similarity_verdicts(profile: Profile, states: Mapping, lengths: Mapping, local: Mapping,
                        tuned_states: Mapping | None, task: str, scores: pd.DataFrame) -> list[Verdict]:
    """C3 (the pretrained model's English–X similarity against its same-length control), C4 (the
    local change fine-tuning on `task` made, for every seed in `local`) and C5 for every column of
    `scores` (`reference_scores`). `states`: `parallel_states` of the pretrained model; `lengths`:
    `sentence_lengths`; `local[seed]`: `local_states` per language; `tuned_states[seed]`: the
    fine-tuned model's own states (for the paper's whole-stack measure, shown beside C4)."""
    P = require_profile(profile)
    sim = similarity_evidence(states, P.source, P.targets, lengths)
    change = change_evidence(states, local, tuned_states)
    per_target = sim.excess.mean(axis=1)
    return ([verdict_c3(sim), verdict_c4(change, task=task)]
            + [verdict_c5(per_target, scores[t], task=t) for t in scores.columns])


def _tuned_configs(P: Profile, task: str):
    return {seed: experiment_config(P, task=task, seed=seed) for seed in P.seeds}


def verdicts(profile: Profile, task: str = "pos", n: int | None = None,
             tasks: Sequence[str] | None = None, train: bool = True, progress: bool = False,
             results=None) -> list[Verdict]:
    """The verdicts of C1–C5 for a profile (see the module's docstring): `reinit_verdicts`, then
    `similarity_verdicts` on `n` parallel sentences (default: the profile's `n_cka`) through the
    pretrained model and the models fine-tuned on `task` with each of the profile's seeds.

    `train=True` runs what is not cached yet; `train=False` raises `MissingRuns` instead, naming
    how many runs are missing and the chapters that make them (for mBERT they take hours).
    `progress`: progress bars for what runs. `results`: the result store or its root (default:
    the settings')."""
    store = ResultStore.of(results)
    P = require_profile(profile)
    tasks = list(tasks or MAIN_METRIC)
    tuned_cfgs = _tuned_configs(P, task)
    if not train:
        configs = _reinit_grid(P, tasks)[2]
        missing = sum(store.get(c) is None for c in configs) + sum(not store.has_model(c) for c in tuned_cfgs.values())
        if missing:
            raise MissingRuns(f"{missing} of the {len(configs) + len(tuned_cfgs)} runs behind the verdicts of the "
                              f"{P.name} profile are not in the result store ({store.root}) yet: run chapter 3 (the "
                              f"grid) and chapter 4 (the fine-tuned {task} models, seeds "
                              f"{', '.join(map(str, P.seeds))}) first, or call verdicts(..., train=True)")
    out = reinit_verdicts(P, tasks, progress, store)
    encoder, tokenizer = load_encoder(P)
    parallel = parallel_sentences(P, n)  # read once, for every model below
    states = parallel_states(encoder, tokenizer, parallel)
    local, tuned_states = {}, {}
    for seed, cfg in tuned_cfgs.items():
        tuned, _ = load_finetuned(cfg, results=store, progress=progress)
        local[seed] = {lang: local_states(encoder, tuned, tokenizer, [s.words for s in sents])
                       for lang, sents in parallel.items()}
        tuned_states[seed] = parallel_states(tuned, tokenizer, parallel)
    return out + similarity_verdicts(P, states, sentence_lengths(parallel), local, tuned_states, task,
                                     reference_scores(P, tasks, store))


def evidence_table(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """Every claim x task with its verdict, effect, estimate [95% CI] and control, indexed by claim
    and task (chapter 0, the book's landing page, chapter 4's summary)."""
    return claims_table(verdicts).set_index(["claim", "task"])


def replication_table(verdicts: Sequence[Verdict], profile: Profile) -> pd.DataFrame:
    """What replicates: one row per claim, with the statement, the paper's evidence, and the
    verdicts of this run grouped by outcome (e.g. "holds (pos, ner, parse)"), with the profile and
    its seeds in the column's name."""
    P = require_profile(profile)
    column = f"{P.name} profile, seeds {', '.join(map(str, P.seeds))}"
    rows = []
    for claim, statement in CLAIMS.items():
        by_outcome: dict[str, list[str]] = {}
        for v in verdicts:
            if v.claim == claim:
                by_outcome.setdefault(v.outcome, []).append(v.task)
        found = "; ".join(f"{outcome} ({', '.join(t.strip('()') for t in tasks)})"
                          for outcome, tasks in by_outcome.items()) or "not tested"
        rows.append({"claim": claim, "statement": statement, "the paper's evidence (mBERT)": PAPER[claim],
                     column: found})
    return pd.DataFrame(rows).set_index("claim")


def paper_map() -> pd.DataFrame:
    """Where each part of the paper is rebuilt: chapter, section, and the paper's claim, table or
    figure (or "extension" for what this repository adds)."""
    return pd.DataFrame(PAPER_MAP, columns=["chapter", "section", "what it rebuilds"])


def main(argv: Sequence[str] | None = None) -> None:
    """Print every claim x task with its verdict, effect, interval and control."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m xlt_utils.verdicts", description=main.__doc__)
    parser.add_argument("--profile", default="toy")
    parser.add_argument("--task", default="pos", help="the task of the fine-tuned models behind C4")
    parser.add_argument("--no-train", action="store_true", help="fail instead of training missing runs")
    args = parser.parse_args(argv)
    P = get_profile(args.profile)  # the entry: the profile is resolved here, once
    table = evidence_table(verdicts(P, task=args.task, train=not args.no_train, progress=False))
    with pd.option_context("display.max_colwidth", None, "display.width", 250):
        print(f"{P.name} profile, seeds {', '.join(map(str, P.seeds))}")
        for (claim, task), row in table.iterrows():
            print(f"\n{claim} {task}: {row['verdict']}\n  {row['effect']}: {row['estimate [95% CI]']}"
                  f"\n  control: {row['control']}")


if __name__ == "__main__":
    main()
