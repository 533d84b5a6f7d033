"""Analyses of the paper's claims: deltas to the reference over seeds (C1, C2), CKA curves (C3, C4)
and the link between similarity and transfer (C5), each with a verdict computed from the numbers."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import ConstantInputWarning, spearmanr

from .ablation import REFERENCE, Ablation

#: The metric each task is judged by: accuracy, span F1, LAS.
MAIN_METRIC = {"pos": "accuracy", "ner": "f1", "parse": "las"}


def mean_std_table(df: pd.DataFrame, index, columns, value: str = "value", decimals: int = 1) -> pd.DataFrame:
    """A pivot of "mean ± std" strings over seeds (std with ddof=1; 0 for a single seed)."""
    g = df.groupby([*index, columns] if isinstance(index, list) else [index, columns], sort=False)[value]
    stats = g.agg(["mean", "std", "count"]).reset_index()
    stats["std"] = stats["std"].fillna(0.0)
    stats["cell"] = [f"{m:.{decimals}f} ± {s:.{decimals}f}" for m, s in zip(stats["mean"], stats["std"], strict=True)]
    return stats.pivot(index=index, columns=columns, values="cell").loc[
        stats.set_index(index).index.unique()]


@dataclass(frozen=True)
class Verdict:
    """The outcome of testing one claim: which claim, for which task, whether it holds, and the
    numbers behind it. `str(verdict)` is its sentence, e.g. "C2 holds: reinit 5,6 changes ..."."""

    claim: str
    task: str
    holds: bool
    numbers: Mapping

    @property
    def outcome(self) -> str:
        if self.holds:
            return "holds"
        if self.claim == "C5":
            return "is undefined" if self.numbers.get("layer", 0) is None else "is not supported"
        return "does not hold"

    @property
    def details(self) -> str:
        """The numbers behind the verdict, in words."""
        return _DETAILS[self.claim](self.numbers)

    def __str__(self) -> str:
        return f"{self.claim} {self.outcome}: {self.details}"


def _c1_c2_details(n) -> str:
    return (f"{n['ablation']} changes the source by {n['source']:+.1f} ± {n['source_sd']:.1f} and the targets by "
            f"{n['target']:+.1f} ± {n['target_sd']:.1f}" + (f" (gap {n['gap']:.1f} points)" if "gap" in n else ""))


def _c5_details(n) -> str:
    if n["layer"] is None:
        return (f"constant scores (or similarities) across the {n['languages']} languages, so no layer has a rank "
                f"correlation with transfer ({n['layers']} layers)")
    undefined = n.get("undefined_layers", 0)
    return (f"the strongest correlation is at layer {n['layer']}, Spearman {n['spearman']:+.2f} over "
            f"{n['languages']} languages (p = {n['p']:.3f}; {n['p_corrected']:.3f} corrected for {n['layers']} "
            f"layers); layers with a positive correlation: {n['positive_layers']} of {n['layers']}"
            + (f" ({undefined} undefined: constant similarities)" if undefined else ""))


_DETAILS = {
    "C1": _c1_c2_details,
    "C2": _c1_c2_details,
    "C3": lambda n: (f"mean CKA is {n['first']:.3f} at layer 0, peaks at layer {n['peak_layer']} ({n['peak']:.3f}) "
                     f"and ends at {n['last']:.3f} at layer {n['last_layer']}"),
    "C4": lambda n: (f"CKA(pretrained, fine-tuned) averages {n['lower']:.3f} over layers 1-{n['half']} and "
                     f"{n['upper']:.3f} over layers {n['half'] + 1}-{n['last_layer']} "
                     f"(Spearman of CKA with depth: {n['spearman']:+.2f})"),
    "C5": _c5_details,
}


def ablation_deltas(per_seed: pd.DataFrame, reference: Ablation = REFERENCE) -> pd.DataFrame:
    """Δ = ablation − reference, per task, role (source/target) and seed."""
    keys = ["task", "role", "seed"]
    ref = per_seed[per_seed.ablation == reference].set_index(keys)["value"]
    rows = per_seed[per_seed.ablation != reference].copy()
    rows["delta"] = rows["value"].to_numpy() - ref.loc[list(rows[keys].itertuples(index=False, name=None))].to_numpy()
    return rows


def _summary(deltas: pd.DataFrame, ablation: Ablation, role: str) -> tuple[float, float]:
    d = deltas[(deltas.ablation == ablation) & (deltas.role == role)]["delta"]
    if d.empty:
        present = ", ".join(a.label for a in sorted(set(deltas.ablation)))
        raise ValueError(f"no runs for ablation {ablation.label!r}; present: {present}")
    return float(d.mean()), float(d.std(ddof=1)) if len(d) > 1 else 0.0


def verdict_c1_c2(deltas: pd.DataFrame, lower: Ablation, upper: Ablation, task: str = "") -> list[Verdict]:
    """C1 and C2 verdicts for one task, with the numbers behind them.

    C1 holds when re-initialising the lower layers costs the targets more than the source by more
    than one standard deviation (over seeds) of either. C2 holds when re-initialising the upper layers
    costs neither source nor targets more than max(1 point, one standard deviation).
    """
    s_lo, s_lo_sd = _summary(deltas, lower, "source")
    t_lo, t_lo_sd = _summary(deltas, lower, "target")
    s_up, s_up_sd = _summary(deltas, upper, "source")
    t_up, t_up_sd = _summary(deltas, upper, "target")
    gap = s_lo - t_lo
    c1 = bool(gap > max(s_lo_sd, t_lo_sd) and t_lo < 0)
    c2 = bool(s_up > -max(1.0, s_up_sd) and t_up > -max(1.0, t_up_sd))
    return [
        Verdict("C1", task, c1, {"ablation": lower.label, "source": s_lo, "source_sd": s_lo_sd, "target": t_lo,
                                 "target_sd": t_lo_sd, "gap": gap}),
        Verdict("C2", task, c2, {"ablation": upper.label, "source": s_up, "source_sd": s_up_sd, "target": t_up,
                                 "target_sd": t_up_sd}),
    ]


def verdict_c3(curves: pd.DataFrame, task: str = "(pretrained)") -> Verdict:
    """C3: does the mean en–X CKA per layer rise through the lower layers, then fall?"""
    mean = curves.mean(axis=0).to_numpy()
    peak = int(mean.argmax())
    rises = peak > 0 and mean[peak] > mean[0]
    falls = peak < len(mean) - 1 and mean[-1] < mean[peak]
    return Verdict("C3", task, bool(rises and falls),
                   {"first": float(mean[0]), "peak_layer": peak, "peak": float(mean[peak]), "last": float(mean[-1]),
                    "last_layer": len(mean) - 1})


def verdict_c4(curves: pd.DataFrame, task: str = "") -> Verdict:
    """C4: does fine-tuning change the upper layers more (lower CKA to the pretrained model)?"""
    mean = curves.mean(axis=0).to_numpy()
    half = len(mean) // 2
    lo, hi = float(mean[1:half + 1].mean()), float(mean[half + 1:].mean())
    rho = float(spearmanr(np.arange(len(mean)), mean).statistic)
    return Verdict("C4", task, bool(hi < lo and rho < 0),
                   {"lower": lo, "upper": hi, "half": half, "last_layer": len(mean) - 1, "spearman": rho})


def similarity_transfer_correlation(similarity: pd.DataFrame, scores: pd.Series) -> pd.DataFrame:
    """C5: Spearman correlation across languages between per-layer similarity and zero-shot score.

    A layer whose similarities, or scores that, are the same for every language (constant input) has
    no rank correlation: its row holds NaN (`best_layer` and `verdict_c5` say so instead of failing).
    """


    langs = [lang for lang in similarity.index if lang in scores.index]
    rows = []
    for layer in similarity.columns:
        with warnings.catch_warnings():  # a constant column has no correlation: NaN, which verdict_c5 reports
            warnings.simplefilter("ignore", ConstantInputWarning)
            r = spearmanr(similarity.loc[langs, layer], scores.loc[langs])
        rows.append({"layer": layer, "spearman": r.statistic, "p": r.pvalue, "languages": len(langs)})
    return pd.DataFrame(rows).set_index("layer")


def best_layer(corr: pd.DataFrame):
    """The layer with the strongest (most positive) C5 correlation, or None when no layer has one
    (constant scores or similarities across languages)."""
    defined = corr["spearman"].dropna()
    return None if defined.empty else defined.idxmax()


def per_seed_scores(records: list[dict], metric: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per (task, ablation, role, seed): the task's main metric, targets averaged per seed."""
    from .experiments import records_table

    metric = metric or MAIN_METRIC
    table = records_table(records)
    table = table[table.metric == table.task.map(metric)]
    return table.groupby(["task", "ablation", "role", "seed"], sort=False)["value"].mean().reset_index()


def pair_matrix(deltas: pd.DataFrame, task: str, role: str, n_layers: int) -> pd.DataFrame:
    """Mean Δ of every ablation that re-initialises two transformer layers i < j, as an L x L matrix
    (row i, column j, upper triangle)."""
    m = pd.DataFrame(np.nan, index=range(1, n_layers + 1), columns=range(1, n_layers + 1))
    d = deltas[(deltas.task == task) & (deltas.role == role)]
    for ablation, value in d.groupby("ablation", sort=False)["delta"].mean().items():
        if ablation.kind == "reinit" and len(ablation.layers) == 2 and ablation.layers[0] >= 1:
            m.loc[ablation.layers[0], ablation.layers[1]] = value
    m.index.name, m.columns.name = "first layer", "second layer"
    return m


def claims_table(verdicts: list[Verdict]) -> pd.DataFrame:
    """Verdicts of C1–C5 as one table: claim, task, verdict (holds or not, in words), numbers."""
    return pd.DataFrame([{"claim": v.claim, "task": v.task, "verdict": v.outcome, "numbers": v.details}
                         for v in verdicts], columns=["claim", "task", "verdict", "numbers"])


def verdict_c5(corr: pd.DataFrame, alpha: float = 0.05, task: str = "") -> Verdict:
    """C5: is cross-lingual similarity positively correlated with zero-shot scores across languages?

    `corr` is `similarity_transfer_correlation`'s table (one row per layer). The strongest layer is
    picked after looking at all of them, so its p-value is Bonferroni-corrected for the number of
    layers: the claim holds when the correlation is positive and the corrected p is below `alpha`.
    Where no correlation is defined (a constant column), the claim is not supported.
    """
    n_langs = int(corr["languages"].max()) if len(corr) else 0
    best = best_layer(corr)
    if best is None:
        return Verdict("C5", task, False, {"layer": None, "languages": n_langs, "layers": len(corr)})
    rho, p, n = float(corr.loc[best, "spearman"]), float(corr.loc[best, "p"]), int(corr.loc[best, "languages"])
    p_adj = min(1.0, p * len(corr))
    holds = bool(rho > 0 and p_adj < alpha and not math.isnan(p))
    return Verdict("C5", task, holds, {"layer": best, "spearman": rho, "languages": n, "p": p, "p_corrected": p_adj,
                                       "layers": len(corr), "positive_layers": int((corr["spearman"] > 0).sum()),
                                       "undefined_layers": int(corr["spearman"].isna().sum())})
