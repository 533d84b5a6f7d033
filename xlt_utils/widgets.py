"""Explorers for cached results that stay interactive in the static book, without a kernel.

Every choice is drawn in Python beforehand: each option of a Dropdown has its own pre-rendered
panel in an `ipywidgets.Stack` (cka_explorer: a PNG; reinit_explorer: HTML, an inline SVG chart
and a small table), and the Dropdown's
`index` is tied to the Stack's `selected_index` with `ipywidgets.jslink`, a link that runs in the
browser. Executed notebooks store the widget state (`metadata.widgets`), so the Jupyter Book page
(and nbviewer) can switch panels with no Python behind it.

    from xlt_utils.widgets import cka_explorer, reinit_explorer
    cka_explorer(curves)      # curves: one row per language, one column per layer (CKA values)
    reinit_explorer(deltas)   # deltas: tidy task / ablation / role / seed / delta rows

The stored widget state is kept small: the PNGs have a modest size and dpi and a 64-colour
palette, the SVG charts are a few kB of text, and panels share one Layout (and style) model instead
of one each (a default Layout alone is ~1 kB of state). Everything is deterministic: the same data
gives the same bytes (no timestamps or software tag), so re-executing a notebook does not churn
its stored outputs.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .plotting import DPI, ROLES, _is_floor, new_figure, png_bytes, qualitative_colours

__all__ = ["cka_explorer", "reinit_explorer", "ALL_LANGUAGES", "ALL_ABLATIONS"]

#: The first option of cka_explorer's Dropdown: every language on one figure.
ALL_LANGUAGES = "all languages"
#: The first option of reinit_explorer's ablation Dropdown: every ablation of the task side by side.
ALL_ABLATIONS = "all ablations"

REINIT_COLUMNS = ("task", "ablation", "role", "seed", "delta")
#: The smallest text of a pre-rendered panel, in points: 9.4 px at the panels' DPI (80), which the
#: book shows at natural size (plotting.MIN_TEXT_PX).
LEGEND_PT = 8.5
#: Title of the random encoder's chart in reinit_explorer's overview: drawn on its own Δ axis.
FLOOR_TITLE = "random encoder, own scale"
#: plotting.ROLE_COLOURS (matplotlib's tab:blue, tab:red) as SVG colours.
ROLE_HEX = {"source": "#1f77b4", "target": "#d62728"}


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _image_layout(fig_width_in: float):
    """One Layout for all the images of an explorer: natural width (no blur), never wider than the
    column."""
    import ipywidgets as widgets

    return widgets.Layout(width=f"{round(fig_width_in * DPI)}px", max_width="100%", height="auto")


def _image(png: bytes, layout):
    import ipywidgets as widgets

    return widgets.Image(value=png, format="png", layout=layout)


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
    return png_bytes(_cka_figure(curves, chosen, title, ylabel, ylim, figsize))


def _cka_figure(curves: pd.DataFrame, chosen, title: str, ylabel: str, ylim, figsize):
    fig = new_figure(figsize)
    ax = fig.add_subplot()
    layers = np.asarray(curves.columns, dtype=int)
    mean = curves.mean(axis=0).to_numpy()
    if chosen is None:
        cmap = qualitative_colours(len(curves))
        for k, (lang, row) in enumerate(curves.iterrows()):
            ax.plot(layers, row.to_numpy(), marker="o", ms=3, lw=1.2, color=cmap[k], label=str(lang))
        ax.plot(layers, mean, color="black", lw=2.2, ls="--", label="mean")
        fig.legend(fontsize=LEGEND_PT, ncol=2 if len(curves) > 12 else 1, loc="outside right upper",
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
        ax.legend(fontsize=LEGEND_PT, loc="best", frameon=False)
        ax.set_title(f"{title}: {chosen} (peak {row[peak]:.3f} at layer {layers[peak]})", fontsize=10)
    ax.set_xticks(layers)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_ylim(*ylim)
    ax.grid(alpha=0.3, lw=0.5)
    return fig


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
    layout = _image_layout(figsize[0])
    panels = [_image(_cka_png(data, c, title, ylabel, limits, figsize), layout) for c in choices]
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


def _delta_xlim(data: pd.DataFrame, stats: pd.DataFrame) -> tuple[float, float]:
    """The Δ axis of a task: 0, every mean ± std and every seed's value, with a margin."""
    lo = float(min(0.0, (stats["mean"] - stats["std"]).min(), data["delta"].min()))
    hi = float(max(0.0, (stats["mean"] + stats["std"]).max(), data["delta"].max()))
    pad = max(0.06 * (hi - lo), 0.5)
    return lo - pad, hi + pad


def _nice_ticks(lo: float, hi: float) -> list[float]:
    from matplotlib.ticker import MaxNLocator

    return [float(t) for t in MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
            if lo - 1e-9 <= t <= hi + 1e-9]


def _delta_svg(data: pd.DataFrame, stats: pd.DataFrame, task: str, ablations: list[str],
               xlim: tuple[float, float], title: str, width: int, heading: bool | None = None) -> str:
    """Horizontal bars of source and target Δ (mean, whisker ± std, a dot per seed), a group of two
    per ablation, as inline SVG: a few kB, sharp at any zoom, and the ablations' names in rows of
    their own, so they cannot overlap."""
    e = html.escape
    label_w = max(60, min(160, 7 * max(len(a) for a in ablations) + 12))
    left, right, top, bar, gap, group_gap, bottom = label_w, 14, 30, 11, 2, 10, 40
    plot_w = width - left - right
    group_h = 2 * bar + gap
    height = top + len(ablations) * (group_h + group_gap) - group_gap + bottom
    lo, hi = xlim

    def x(v: float) -> str:
        return f"{left + (v - lo) / (hi - lo) * plot_w:.1f}"

    axis_y = height - bottom + 6
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" style="max-width:100%;height:auto" '
             'font-family="sans-serif" font-size="11" role="img">',
             f"<title>{e(task)}: {e(title)}, Δ to reference</title>"]
    if heading if heading is not None else len(ablations) > 1:  # a one-ablation chart is titled
        # by the Dropdowns and its row's label
        parts.append(f'<text x="4" y="14" font-size="12" font-weight="bold">{e(task)}: {e(title)}</text>')
    for k, role in enumerate(ROLES):  # legend, top right
        lx = width - right - 130 + 68 * k
        parts.append(f'<rect x="{lx}" y="5" width="10" height="10" fill="{ROLE_HEX[role]}"/>'
                     f'<text x="{lx + 14}" y="14">{role}</text>')
    for t in _nice_ticks(lo, hi):
        parts.append(f'<line x1="{x(t)}" x2="{x(t)}" y1="{top - 4}" y2="{axis_y}" stroke="#ddd"/>'
                     f'<text x="{x(t)}" y="{axis_y + 13}" text-anchor="middle">{t:g}</text>')
    axis_label = "Δ to reference (points)" + (": mean, ± std, each seed (dot)" if plot_w >= 340 else "")
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">{axis_label}</text>')
    for i, ablation in enumerate(ablations):
        y0 = top + i * (group_h + group_gap)
        parts.append(f'<text x="{left - 6}" y="{y0 + group_h / 2 + 4:.1f}" text-anchor="end">'
                     f"{e(ablation)}</text>")
        for k, role in enumerate(ROLES):
            if (ablation, role) not in stats.index:
                continue
            m, sd = stats.loc[(ablation, role), "mean"], stats.loc[(ablation, role), "std"]
            yb = y0 + k * (bar + gap)
            yc = f"{yb + bar / 2:.1f}"
            x0, x1 = sorted((float(x(0.0)), float(x(m))))
            parts.append(f'<rect x="{x0:.1f}" y="{yb}" width="{max(x1 - x0, 1.0):.1f}" height="{bar}" '
                         f'fill="{ROLE_HEX[role]}" fill-opacity="0.8">'
                         f"<title>{role}: {m:+.1f} ± {sd:.1f}</title></rect>")
            if sd > 0:
                parts.append(f'<path d="M{x(m - sd)} {yc}H{x(m + sd)}M{x(m - sd)} {yb + 2}v{bar - 4}'
                             f'M{x(m + sd)} {yb + 2}v{bar - 4}" stroke="#222" fill="none"/>')
            seeds = data[(data.ablation == ablation) & (data.role == role)].sort_values("seed")
            parts.append('<g fill="white" stroke="#222">'
                         + "".join(f'<circle cx="{x(d)}" cy="{yc}" r="2.2"/>' for d in seeds["delta"])
                         + "</g>")
    parts.append(f'<line x1="{x(0.0)}" x2="{x(0.0)}" y1="{top - 4}" y2="{axis_y}" stroke="black"/>'
                 f'<line x1="{left}" x2="{left + plot_w}" y1="{axis_y}" y2="{axis_y}" stroke="#888"/>'
                 "</svg>")
    return "".join(parts)


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


def _reinit_panel_html(data, stats, task: str, ablation: str, xlim, width: int, verdicts=()) -> str:
    if not any((ablation, r) in stats.index for r in ROLES):
        return (f"<p>No runs of <code>{html.escape(ablation)}</code> for "
                f"<code>{html.escape(task)}</code>.</p>")
    claims = "".join(f"<p style='margin:4px 0'><b>{html.escape(v.claim)} {html.escape(v.label)}</b>: "
                     f"{html.escape(v.effect)} {html.escape(v.estimate)} (95% CI); control: "
                     f"{html.escape(v.control)}</p>" for v in verdicts)
    return ("<div style='display:flex;flex-wrap:wrap;align-items:center;gap:4px 16px'>"
            f"{_delta_svg(data, stats, task, [ablation], xlim, ablation, round(0.62 * width))}"
            f"<div>{_table_html(data, stats, ablation)}</div></div>{claims}")


def reinit_explorer(
    deltas: pd.DataFrame,
    order: Sequence[str] | None = None,
    *,
    width: int = 480,
    verdicts: Sequence = (),
):
    """Dropdowns of task and ablation over the source vs target Δ (mean ± std over seeds); a VBox.

    deltas: one row per task, ablation (`Ablation` values, or names; their labels are shown), role
    ("source" or "target") and seed, with the change `delta` to the reference in points (the output
    of xlt_utils.analysis.ablation_deltas, after averaging over target languages). `order` fixes the
    order of the ablations in the Dropdown (default: as they first appear). The first ablation
    option, "all ablations", shows every ablation of the task, one row each; the others show one
    ablation (source and target bars, ± std, each seed) and a table (mean ± std, seed count,
    per-seed values, the source-target gap). The Δ axis is shared by all panels of a task, except
    the random encoder's (random-init), which has its own: in the overview it is a second chart,
    so that its large loss does not shrink the other bars into slivers. `width`:
    of the overview chart, in CSS pixels (charts shrink with a narrower column); a one-ablation
    chart is 0.62 of it, so that its table fits beside it in the book's column. `verdicts`: C1/C2
    `Verdict`s (`analysis.verdict_c1_c2`); each is shown, with its effect, interval and control, under
    the panel of its task and ablation.

    Every panel is pre-rendered as HTML with an inline SVG chart, so the widget works in the static
    book and its stored state stays small (a few kB per panel; the widgets share one Layout and one
    style).
    """
    import ipywidgets as widgets
    from ipywidgets.widgets.widget_description import DescriptionStyle  # these two are not
    from ipywidgets.widgets.widget_string import HTMLStyle  # exported at the top of ipywidgets 8

    data, tasks, ablations = _check_deltas(deltas, order)
    layout, style = widgets.Layout(), HTMLStyle()  # one of each for every panel: less state
    task_stacks = []
    for task in tasks:
        sub = data[data.task == task]
        stats = _stats(sub)
        present = [a for a in ablations if any((a, r) in stats.index for r in ROLES)]
        # The random encoder (tens of points below the rest) on its own Δ axis, so that it does not
        # shrink every other bar of the task into a sliver; the others share one axis.
        floor = [a for a in present if _is_floor(a)]
        rest = [a for a in present if not _is_floor(a)] or floor
        floor = [a for a in floor if a not in rest]
        xlim = _delta_xlim(sub[sub.ablation.isin(rest)], stats.loc[stats.index.get_level_values(0).isin(rest)])
        xlims = {a: xlim for a in rest}
        overview = f"<div>{_delta_svg(sub, stats, task, rest, xlim, ALL_ABLATIONS, width)}</div>"
        if floor:
            floor_xlim = _delta_xlim(sub[sub.ablation.isin(floor)],
                                     stats.loc[stats.index.get_level_values(0).isin(floor)])
            xlims.update((a, floor_xlim) for a in floor)
            overview += f"<div>{_delta_svg(sub, stats, task, floor, floor_xlim, FLOOR_TITLE, width, heading=True)}</div>"
        html_panels = [overview]
        html_panels += [_reinit_panel_html(sub, stats, task, a, xlims.get(a, xlim), width,
                                           [v for v in verdicts if v.task == task and v.numbers.get("ablation") == a])
                        for a in ablations]
        panels = [widgets.HTML(value, layout=layout, style=style) for value in html_panels]
        task_stacks.append(widgets.Stack(children=panels, selected_index=0, layout=layout))
    dd_style = DescriptionStyle(description_width="initial")
    task_dd = widgets.Dropdown(options=tasks, index=0, description="task", style=dd_style)
    ablation_dd = widgets.Dropdown(options=[ALL_ABLATIONS, *ablations], index=0,
                                   description="ablation", style=dd_style)
    outer = widgets.Stack(children=task_stacks, selected_index=0, layout=layout)
    _linked(task_dd, outer)
    for inner in task_stacks:  # one ablation Dropdown drives the stack of every task
        _linked(ablation_dd, inner)
    return widgets.VBox([widgets.HBox([task_dd, ablation_dd]), outer])
