"""Explorers for cached results that stay interactive in the static book, without a kernel.

Every choice is drawn in Python beforehand: each option of a Dropdown has its own pre-rendered
panel (a PNG, and for the ablations a small table) in an `ipywidgets.Stack`, and the Dropdown's
`index` is tied to the Stack's `selected_index` with `ipywidgets.jslink`, a link that runs in the
browser. Executed notebooks store the widget state (`metadata.widgets`), so the Jupyter Book page
(and nbviewer) can switch panels with no Python behind it.

    from xlt_utils.widgets import cka_explorer, reinit_explorer
    cka_explorer(curves)      # curves: one row per language, one column per layer (CKA values)
    reinit_explorer(deltas)   # deltas: tidy task / ablation / role / seed / delta rows

The PNGs are small (modest size and dpi, reduced to a 64-colour palette) and deterministic: the
same data gives the same bytes (no timestamps or software tag in the files), so re-executing a
notebook does not churn its stored outputs.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .plotting import DPI, ROLES, delta_bars, new_figure, png_bytes, qualitative_colours

__all__ = ["cka_explorer", "reinit_explorer", "ALL_LANGUAGES", "ALL_ABLATIONS"]

#: The first option of cka_explorer's Dropdown: every language on one figure.
ALL_LANGUAGES = "all languages"
#: The first option of reinit_explorer's ablation Dropdown: every ablation of the task side by side.
ALL_ABLATIONS = "all ablations"

REINIT_COLUMNS = ("task", "ablation", "role", "seed", "delta")


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _image(png: bytes, fig_width_in: float):
    import ipywidgets as widgets

    return widgets.Image(value=png, format="png", layout=widgets.Layout(
        width=f"{round(fig_width_in * DPI)}px", max_width="100%", height="auto"))


def _linked(dropdown, stack) -> None:
    """Tie the Dropdown to the Stack in the browser: in Jupyter and in the static book alike."""
    import ipywidgets as widgets

    widgets.jslink((dropdown, "index"), (stack, "selected_index"))


# --------------------------------------------------------------------------------------------
# CKA per layer
# --------------------------------------------------------------------------------------------


def _check_curves(curves) -> pd.DataFrame:
    if not isinstance(curves, pd.DataFrame):
        raise TypeError(f"curves must be a pandas DataFrame (languages x layers), got {type(curves).__name__}")
    if curves.shape[0] == 0 or curves.shape[1] == 0:
        raise ValueError(f"curves is empty (shape {curves.shape}): expected one row per language "
                         "and one column per layer")
    if not curves.index.is_unique:
        dup = sorted({str(x) for x in curves.index[curves.index.duplicated()]})
        raise ValueError(f"curves has duplicated languages in its index: {dup}")
    layers = []
    for col in curves.columns:
        try:
            layer = int(col)
        except (TypeError, ValueError):
            raise ValueError(f"curves columns must be layer numbers (0..L), got {col!r}") from None
        if layer != col and str(layer) != str(col).strip():
            raise ValueError(f"curves columns must be layer numbers (0..L), got {col!r}")
        layers.append(layer)
    if len(set(layers)) != len(layers):
        raise ValueError(f"curves has duplicated layer columns: {list(curves.columns)}")
    non_numeric = [str(c) for c in curves.columns if not pd.api.types.is_numeric_dtype(curves[c])]
    if non_numeric:
        raise ValueError(f"curves must hold numbers (CKA values); non-numeric layer columns: {non_numeric}")
    out = curves.astype(float).copy()
    out.columns = layers
    out = out[sorted(layers)]
    values = out.to_numpy()
    if np.isinf(values).any():
        raise ValueError("curves contains infinite values")
    empty = [str(lang) for lang, row in zip(out.index, values, strict=True) if np.isnan(row).all()]
    if empty:
        raise ValueError(f"curves has languages with no value at any layer: {empty}")
    return out


def _curve_ylim(values: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    pad = max(0.05 * (hi - lo), 0.02)
    lo, hi = lo - pad, hi + pad
    if float(np.nanmin(values)) >= 0:  # CKA lives in [0, 1]: do not draw below 0 or far above 1
        lo = max(lo, 0.0)
    if float(np.nanmax(values)) <= 1:
        hi = min(hi, 1.02)
    return lo, hi


def _cka_png(curves: pd.DataFrame, chosen, title: str, ylabel: str, ylim, figsize) -> bytes:
    fig = new_figure(figsize)
    ax = fig.add_subplot()
    layers = np.asarray(curves.columns, dtype=int)
    mean = curves.mean(axis=0).to_numpy()
    if chosen is None:
        cmap = qualitative_colours(len(curves))
        for k, (lang, row) in enumerate(curves.iterrows()):
            ax.plot(layers, row.to_numpy(), marker="o", ms=3, lw=1.2, color=cmap[k], label=str(lang))
        ax.plot(layers, mean, color="black", lw=2.2, ls="--", label="mean")
        fig.legend(fontsize=7, ncol=2 if len(curves) > 12 else 1, loc="outside right upper",
                   frameon=False)
        ax.set_title(f"{title}: all languages", fontsize=10)
    else:
        values = curves.to_numpy()
        if len(curves) > 1:  # the spread of all languages as one band: clearer and smaller than lines
            ax.fill_between(layers, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color="0.9",
                            lw=0, label="range of all", zorder=1)
        ax.plot(layers, mean, color="0.4", lw=1.2, ls="--", label="mean of all", zorder=2)
        row = curves.loc[chosen].to_numpy()
        ax.plot(layers, row, marker="o", ms=4, lw=2.2, color="tab:blue", label=str(chosen), zorder=3)
        peak = int(np.nanargmax(row))
        ax.plot([layers[peak]], [row[peak]], marker="o", ms=9, mfc="none", mec="black", mew=1.2,
                zorder=4)
        ax.legend(fontsize=8, loc="best", frameon=False)
        ax.set_title(f"{title}: {chosen} (peak {row[peak]:.3f} at layer {layers[peak]})", fontsize=10)
    ax.set_xticks(layers)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_ylim(*ylim)
    ax.grid(alpha=0.3, lw=0.5)
    return png_bytes(fig)


def cka_explorer(
    curves: pd.DataFrame,
    title: str = "CKA with the source language",
    *,
    ylabel: str = "CKA",
    ylim: tuple[float, float] | None = None,
    figsize: tuple[float, float] = (5.6, 3.1),
):
    """A Dropdown of languages over the per-layer CKA curve of the chosen one; returns a VBox.

    curves: one row per language (the index holds the language codes), one column per layer
    (0..L, integer labels), CKA values; NaN is allowed where a layer was not measured. The first
    option, "all languages", draws every curve and their mean; choosing a language draws its curve
    over the range of all languages (a grey band) and their mean, on the same y-axis (`ylim`, by
    default fitted to all values), with its peak marked. Every panel is pre-rendered, so the widget
    works in the static book.
    """
    import ipywidgets as widgets

    data = _check_curves(curves)
    if not isinstance(title, str):
        raise TypeError(f"title must be a string, got {type(title).__name__}")
    limits = _curve_ylim(data.to_numpy()) if ylim is None else tuple(ylim)
    choices = [None, *data.index]
    labels = [ALL_LANGUAGES, *(str(lang) for lang in data.index)]
    if ALL_LANGUAGES in labels[1:]:
        raise ValueError(f"{ALL_LANGUAGES!r} is reserved and cannot be a language of curves")
    if len(set(labels)) != len(labels):
        raise ValueError(f"curves has languages with the same name as text: {labels[1:]}")
    panels = [_image(_cka_png(data, c, title, ylabel, limits, figsize), figsize[0]) for c in choices]
    dropdown = widgets.Dropdown(options=labels, index=0, description="language",
                                style={"description_width": "initial"})
    stack = widgets.Stack(children=panels, selected_index=0)
    _linked(dropdown, stack)
    return widgets.VBox([dropdown, stack])


# --------------------------------------------------------------------------------------------
# Reinit / Freeze deltas
# --------------------------------------------------------------------------------------------


def _check_deltas(deltas, order) -> tuple[pd.DataFrame, list[str], list[str]]:
    if not isinstance(deltas, pd.DataFrame):
        raise TypeError(f"deltas must be a pandas DataFrame, got {type(deltas).__name__}")
    missing = [c for c in REINIT_COLUMNS if c not in deltas.columns]
    if missing:
        raise ValueError(f"deltas lacks the columns {missing}; expected {list(REINIT_COLUMNS)} "
                         f"(as from xlt_utils.analysis.ablation_deltas), got {list(deltas.columns)}")
    if deltas.empty:
        raise ValueError("deltas is empty: there are no ablation runs to show")
    roles = set(deltas["role"])
    if not roles <= set(ROLES):
        raise ValueError(f"deltas.role must be 'source' or 'target', got {sorted(map(str, roles - set(ROLES)))}")
    if not pd.api.types.is_numeric_dtype(deltas["delta"]):
        raise ValueError(f"deltas.delta must be numeric (points), got dtype {deltas['delta'].dtype}")
    data = deltas[list(REINIT_COLUMNS)].copy()
    data["task"] = data["task"].astype(str)
    data["ablation"] = data["ablation"].astype(str)
    data["delta"] = data["delta"].astype(float)
    if not np.isfinite(data["delta"]).all():
        raise ValueError("deltas.delta contains NaN or infinite values")
    if data.duplicated(["task", "ablation", "role", "seed"]).any():
        dup = data[data.duplicated(["task", "ablation", "role", "seed"], keep=False)]
        raise ValueError("deltas has more than one row per (task, ablation, role, seed); average them "
                         f"first (e.g. over target languages). First duplicates:\n{dup.head(4)}")
    tasks = list(dict.fromkeys(data["task"]))
    present = list(dict.fromkeys(data["ablation"]))
    if order is None:
        ablations = present
    else:
        ablations = [str(a) for a in order]
        unknown = [a for a in ablations if a not in present]
        if unknown:
            raise ValueError(f"order names ablations with no rows in deltas: {unknown}; present: {present}")
        ablations += [a for a in present if a not in ablations]
    for reserved in (ALL_ABLATIONS,):
        if reserved in ablations:
            raise ValueError(f"{reserved!r} is reserved and cannot be an ablation name")
    return data, tasks, ablations


def _stats(data: pd.DataFrame) -> pd.DataFrame:
    """mean, std (ddof=1, 0 for one seed) and seed count per (ablation, role)."""
    g = data.groupby(["ablation", "role"], sort=False)["delta"]
    out = g.agg(["mean", "std", "count"])
    out["std"] = out["std"].fillna(0.0)
    return out


def _delta_ylim(stats: pd.DataFrame) -> tuple[float, float]:
    lo = float(min(0.0, (stats["mean"] - stats["std"]).min()))
    hi = float(max(0.0, (stats["mean"] + stats["std"]).max()))
    pad = max(0.12 * (hi - lo), 0.5)
    return lo - pad, hi + pad


def _reinit_png(stats: pd.DataFrame, task: str, ablations: list[str], ylim, figsize) -> bytes:
    fig = new_figure(figsize)
    ax = fig.add_subplot()
    x = np.arange(len(ablations))
    means = {role: [stats["mean"].get((a, role), math.nan) for a in ablations] for role in ROLES}
    stds = {role: [stats["std"].get((a, role), 0.0) for a in ablations] for role in ROLES}
    delta_bars(ax, means, stds, ablations, width=0.38 if len(ablations) > 1 else 0.5)
    ax.set_xticks(x, ablations, rotation=20 if len(ablations) > 3 else 0, fontsize=8,
                  ha="right" if len(ablations) > 3 else "center")
    ax.set_ylim(*ylim)
    ax.set_ylabel("Δ to reference (points)")
    ax.legend(fontsize=8, frameon=False, loc="best")
    ax.grid(axis="y", alpha=0.3, lw=0.5)
    name = ablations[0] if len(ablations) == 1 else ALL_ABLATIONS
    ax.set_title(f"{task}: {name}", fontsize=10)
    return png_bytes(fig)


def _table_html(data: pd.DataFrame, stats: pd.DataFrame, ablation: str) -> str:
    rows = []
    for role in ROLES:
        if (ablation, role) not in stats.index:
            continue
        s = stats.loc[(ablation, role)]
        seeds = data[(data.ablation == ablation) & (data.role == role)].sort_values("seed")
        per_seed = ", ".join(f"{d:+.1f}" for d in seeds["delta"])
        rows.append(f"<tr><th style='text-align:left;padding:2px 8px'>{role}</th>"
                    f"<td style='padding:2px 8px'>{s['mean']:+.1f} ± {s['std']:.1f}</td>"
                    f"<td style='padding:2px 8px'>{int(s['count'])}</td>"
                    f"<td style='padding:2px 8px'>{html.escape(per_seed)}</td></tr>")
    gap = ""
    if all((ablation, r) in stats.index for r in ROLES):
        g = stats.loc[(ablation, "source"), "mean"] - stats.loc[(ablation, "target"), "mean"]
        gap = (f"<p style='margin:6px 0 0 0'>gap, source Δ − target Δ: <b>{g:+.1f}</b> points<br>"
               "(&gt; 0: the targets lose more than the source)</p>")
    return ("<table style='border-collapse:collapse;font-size:0.9em'>"
            "<thead><tr><th></th><th style='padding:2px 8px'>Δ mean ± std</th>"
            "<th style='padding:2px 8px'>seeds</th><th style='padding:2px 8px'>per seed</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>{gap}")


def _reinit_panel(data, stats, task, ablation, ylim, figsize):
    import ipywidgets as widgets

    if not any((ablation, r) in stats.index for r in ROLES):
        return widgets.HTML(f"<p>No runs of <code>{html.escape(ablation)}</code> for "
                            f"<code>{html.escape(task)}</code>.</p>")
    png = _reinit_png(stats, task, [ablation], ylim, figsize)
    table = widgets.HTML(_table_html(data, stats, ablation),
                         layout=widgets.Layout(width="auto", max_width="400px", margin="0 0 0 12px"))
    return widgets.HBox([_image(png, figsize[0]), table],
                        layout=widgets.Layout(align_items="center", flex_flow="row wrap"))


def reinit_explorer(
    deltas: pd.DataFrame,
    order: Sequence[str] | None = None,
    *,
    figsize: tuple[float, float] = (3.4, 2.8),
    overview_figsize: tuple[float, float] = (5.6, 3.1),
):
    """Dropdowns of task and ablation over the source vs target Δ (mean ± std over seeds); a VBox.

    deltas: one row per task, ablation (`Ablation` values, or names; their labels are shown), role ("source" or "target") and seed, with the change
    `delta` to the reference in points (the output of xlt_utils.analysis.ablation_deltas, after
    averaging over target languages). `order` fixes the order of the ablations in the Dropdown
    (default: as they first appear). The first ablation option, "all ablations", shows every
    ablation of the task side by side; the others show one ablation as two bars and a table (mean ±
    std, seed count, per-seed values). The y-axis is shared by all panels of a task. Every panel is
    pre-rendered, so the widget works in the static book.
    """
    import ipywidgets as widgets

    data, tasks, ablations = _check_deltas(deltas, order)
    task_stacks = []
    for task in tasks:
        sub = data[data.task == task]
        stats = _stats(sub)
        ylim = _delta_ylim(stats)
        present = [a for a in ablations if any((a, r) in stats.index for r in ROLES)]
        overview = _image(_reinit_png(stats, task, present, ylim, overview_figsize), overview_figsize[0])
        panels = [overview] + [_reinit_panel(sub, stats, task, a, ylim, figsize) for a in ablations]
        task_stacks.append(widgets.Stack(children=panels, selected_index=0))
    style = {"description_width": "initial"}
    task_dd = widgets.Dropdown(options=tasks, index=0, description="task", style=style)
    ablation_dd = widgets.Dropdown(options=[ALL_ABLATIONS, *ablations], index=0,
                                   description="ablation", style=style)
    outer = widgets.Stack(children=task_stacks, selected_index=0)
    _linked(task_dd, outer)
    for inner in task_stacks:  # one ablation Dropdown drives the stack of every task
        _linked(ablation_dd, inner)
    return widgets.VBox([widgets.HBox([task_dd, ablation_dd]), outer])
