"""Tables of results: the main metric of each task, scores per seed, deltas to the reference over
seeds, mean ± std tables, pair matrices, and the exploratory similarity–transfer correlation. The
claims' decision rules, built on these, live in `verdicts`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .ablation import REFERENCE, Ablation
from .experiments import records_table

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


def ablation_deltas(per_seed: pd.DataFrame, reference: Ablation = REFERENCE) -> pd.DataFrame:
    """Δ = ablation − reference, per task, role (source/target) and seed."""
    keys = ["task", "role", "seed"]
    ref = per_seed[per_seed.ablation == reference].set_index(keys)["value"]
    rows = per_seed[per_seed.ablation != reference].copy()
    rows["delta"] = rows["value"].to_numpy() - ref.loc[list(rows[keys].itertuples(index=False, name=None))].to_numpy()
    return rows


def per_seed_scores(records: list[dict], metric: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per (task, ablation, role, seed): the task's main metric, targets averaged per seed."""
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
