"""Analyses of the paper's claims: deltas to the reference over seeds (C1, C2), CKA curves (C3, C4)
and the link between similarity and transfer (C5), each with a verdict computed from the numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

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


def ablation_deltas(per_seed: pd.DataFrame, reference: str = "reference") -> pd.DataFrame:
    """Δ = ablation − reference, per task, role (source/target) and seed."""
    keys = ["task", "role", "seed"]
    ref = per_seed[per_seed.ablation == reference].set_index(keys)["value"]
    rows = per_seed[per_seed.ablation != reference].copy()
    rows["delta"] = rows["value"].to_numpy() - ref.loc[list(rows[keys].itertuples(index=False, name=None))].to_numpy()
    return rows


def _summary(deltas: pd.DataFrame, ablation: str, role: str) -> tuple[float, float]:
    d = deltas[(deltas.ablation == ablation) & (deltas.role == role)]["delta"]
    if d.empty:
        raise ValueError(f"no runs for ablation {ablation!r}; present: {sorted(deltas.ablation.unique())}")
    return float(d.mean()), float(d.std(ddof=1)) if len(d) > 1 else 0.0


def verdict_c1_c2(deltas: pd.DataFrame, lower: str, upper: str) -> list[str]:
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
    c1 = gap > max(s_lo_sd, t_lo_sd) and t_lo < 0
    c2 = s_up > -max(1.0, s_up_sd) and t_up > -max(1.0, t_up_sd)
    return [
        f"C1 {'holds' if c1 else 'does not hold'}: {lower} changes the source by {s_lo:+.1f} ± {s_lo_sd:.1f} "
        f"and the targets by {t_lo:+.1f} ± {t_lo_sd:.1f} (gap {gap:.1f} points)",
        f"C2 {'holds' if c2 else 'does not hold'}: {upper} changes the source by {s_up:+.1f} ± {s_up_sd:.1f} "
        f"and the targets by {t_up:+.1f} ± {t_up_sd:.1f}",
    ]


def plot_deltas(deltas: pd.DataFrame, order: list[str] | None = None):
    """Bars of Δ to the reference (mean ± std over seeds), source vs targets, one panel per task."""
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(deltas.task))
    order = order or list(dict.fromkeys(deltas.ablation))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.2), squeeze=False, sharey=False)
    x = np.arange(len(order))
    for ax, task in zip(axes[0], tasks, strict=True):
        for k, (role, color) in enumerate((("source", "tab:blue"), ("target", "tab:red"))):
            d = deltas[(deltas.task == task) & (deltas.role == role)].groupby("ablation")["delta"]
            m, s = d.mean().reindex(order), d.std(ddof=1).reindex(order).fillna(0)
            ax.bar(x + (k - 0.5) * 0.38, m, 0.38, yerr=s, capsize=3, color=color, label=role)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(x, order, rotation=20)
        ax.set_title(f"{task}: Δ to reference (points)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def verdict_c3(curves: pd.DataFrame) -> str:
    """C3: does the mean en–X CKA per layer rise through the lower layers, then fall?"""
    mean = curves.mean(axis=0).to_numpy()
    peak = int(mean.argmax())
    rises = peak > 0 and mean[peak] > mean[0]
    falls = peak < len(mean) - 1 and mean[-1] < mean[peak]
    holds = rises and falls
    return (f"C3 {'holds' if holds else 'does not hold'}: mean CKA is {mean[0]:.3f} at layer 0, peaks at "
            f"layer {peak} ({mean[peak]:.3f}) and ends at {mean[-1]:.3f} at layer {len(mean) - 1}")


def verdict_c4(curves: pd.DataFrame) -> str:
    """C4: does fine-tuning change the upper layers more (lower CKA to the pretrained model)?"""
    mean = curves.mean(axis=0).to_numpy()
    half = len(mean) // 2
    lo, hi = mean[1:half + 1].mean(), mean[half + 1:].mean()
    rho = spearmanr(np.arange(len(mean)), mean).statistic
    holds = hi < lo and rho < 0
    return (f"C4 {'holds' if holds else 'does not hold'}: CKA(pretrained, fine-tuned) averages {lo:.3f} over "
            f"layers 1-{half} and {hi:.3f} over layers {half + 1}-{len(mean) - 1} "
            f"(Spearman of CKA with depth: {rho:+.2f})")


def similarity_transfer_correlation(similarity: pd.DataFrame, scores: pd.Series) -> pd.DataFrame:
    """C5: Spearman correlation across languages between per-layer similarity and zero-shot score.

    A layer whose similarities, or scores that, are the same for every language (constant input) has
    no rank correlation: its row holds NaN (`best_layer` and `verdict_c5` say so instead of failing).
    """
    import warnings

    from scipy.stats import ConstantInputWarning

    langs = [lang for lang in similarity.index if lang in scores.index]
    rows = []
    for layer in similarity.columns:
        with warnings.catch_warnings():
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
    """Mean Δ of every "reinit i,j" ablation as an L x L matrix (row i, column j, upper triangle)."""
    m = pd.DataFrame(np.nan, index=range(1, n_layers + 1), columns=range(1, n_layers + 1))
    d = deltas[(deltas.task == task) & (deltas.role == role)]
    for label, value in d.groupby("ablation")["delta"].mean().items():
        parts = label.split(" ", 1)
        if parts[0] != "reinit" or "," not in parts[1] or "-" in parts[1]:
            continue
        layers = [int(x) for x in parts[1].split(",")]
        if len(layers) == 2:
            m.loc[layers[0], layers[1]] = value
    m.index.name, m.columns.name = "first layer", "second layer"
    return m


def plot_pair_heatmaps(deltas: pd.DataFrame, n_layers: int, tasks: list[str] | None = None):
    """For each task, the mean Δ of re-initialising each pair of layers: source, targets, and the
    transfer-specific part (targets − source). Red is a loss; the colour scale is shared per task."""
    import matplotlib.pyplot as plt

    tasks = tasks or list(dict.fromkeys(deltas.task))
    fig, axes = plt.subplots(len(tasks), 4, figsize=(10, 2.9 * len(tasks)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1, 0.05]})
    for row, task in zip(axes, tasks, strict=True):
        row, cax = row[:3], row[3]
        src = pair_matrix(deltas, task, "source", n_layers).iloc[:-1, 1:]  # pairs i < j only
        tgt = pair_matrix(deltas, task, "target", n_layers).iloc[:-1, 1:]
        panels = (("source", src), ("targets", tgt), ("targets − source", tgt - src))
        lim = max(1.0, float(np.nanmax(np.abs(np.stack([p.to_numpy() for _, p in panels])))))
        for k, (ax, (name, mat)) in enumerate(zip(row, panels, strict=True)):
            im = ax.imshow(mat.to_numpy(), cmap="RdBu", vmin=-lim, vmax=lim)
            for (i, j), v in np.ndenumerate(mat.to_numpy()):
                if not np.isnan(v):
                    ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7)
            ax.set_xticks(range(mat.shape[1]), mat.columns)
            ax.set_yticks(range(mat.shape[0]), mat.index)
            ax.set_xlabel("second layer", fontsize=9)
            if k == 0:
                ax.set_ylabel(f"{task}\nfirst layer", fontsize=9)
            ax.set_title(f"{task}: Δ {name}", fontsize=10)
            ax.grid(False)
        fig.colorbar(im, cax=cax, label="Δ (points)")
    fig.subplots_adjust(hspace=0.5, wspace=0.3)
    return fig


def claims_table(rows: list[dict]) -> pd.DataFrame:
    """The verdict lines of C1–C5 gathered into one table: claim, task, verdict, numbers."""
    out = []
    for r in rows:
        text = r["verdict"]
        claim, _, rest = text.partition(" ")
        verdict, _, numbers = rest.partition(": ")
        out.append({"claim": claim, "task": r.get("task", ""), "verdict": verdict, "numbers": numbers})
    return pd.DataFrame(out)


def verdict_c5(corr: pd.DataFrame, alpha: float = 0.05) -> str:
    """C5: is cross-lingual similarity positively correlated with zero-shot scores across languages?

    `corr` is `similarity_transfer_correlation`'s table (one row per layer). The strongest layer is
    picked after looking at all of them, so its p-value is Bonferroni-corrected for the number of
    layers: the claim holds when the correlation is positive and the corrected p is below `alpha`.
    """
    best = best_layer(corr)
    if best is None:
        n = int(corr["languages"].max()) if len(corr) else 0
        return (f"C5 is undefined: constant scores (or similarities) across the {n} languages, so no layer has "
                f"a rank correlation with transfer ({len(corr)} layers)")
    rho, p, n = corr.loc[best, "spearman"], corr.loc[best, "p"], int(corr.loc[best, "languages"])
    p_adj = min(1.0, p * len(corr))
    holds = rho > 0 and p_adj < alpha
    undefined = int(corr["spearman"].isna().sum())
    return (f"C5 {'holds' if holds else 'is not supported'}: the strongest correlation is at layer {best}, "
            f"Spearman {rho:+.2f} over {n} languages (p = {p:.3f}; {p_adj:.3f} corrected for {len(corr)} layers); "
            f"layers with a positive correlation: {int((corr['spearman'] > 0).sum())} of {len(corr)}"
            + (f" ({undefined} undefined: constant similarities)" if undefined else ""))
