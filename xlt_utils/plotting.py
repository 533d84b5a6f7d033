"""Every figure of the package: Δ bars and pair heatmaps of the ablation grid, CKA heatmaps, and the
deterministic PNG rendering that the widgets pre-render their panels with.

The widgets' panels and the CKA heatmap are made outside pyplot (`new_figure`); the chapter figures
of the ablation grid (`plot_deltas`, `plot_pair_heatmaps`) use pyplot, so that a notebook shows them. Ablations are `Ablation` values; their
labels (`str`) name the bars and ticks.

Figures are made at the width they are shown: the book's content column (`COLUMN_WIDTH_IN` at
`FIGURE_DPI`, the notebooks' dpi, which `setup.setup_chapter` sets together with a default figure
size of that width). A wider figure is shrunk into the column, text and all; in a notebook cell use
`figsize=(COLUMN_WIDTH_IN, height)`, or `column_subplots(n)` for n panels.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .analysis import pair_matrix

DPI = 80  # the widgets' pre-rendered panels
#: The notebooks' figure dpi (rcParams figure.dpi and savefig.dpi, set by setup.setup_chapter).
FIGURE_DPI = 100
#: The book's content column (jupyter-book, sphinx-book-theme, measured in Chromium) is 688 px wide
#: in a 1280 px window, 624 px at 1200 (the narrowest desktop layout), 790 px (its maximum) from
#: 1440 on, and the full width of a narrow screen, where any figure is scaled down
#: (book/_static/xlt.css).
BOOK_COLUMN_PX = 624
#: Width of a notebook figure, in inches at FIGURE_DPI: 600 px, and at most 620 px as stored (the
#: inline backend's tight box adds 0.1 in of padding on each side), so it fits BOOK_COLUMN_PX.
COLUMN_WIDTH_IN = 6.0
#: Smallest text of a figure as the book shows it, in CSS px (at FIGURE_DPI, 6.5 pt is 9 px).
MIN_TEXT_PX = 9.0
ROLES = ("source", "target")
ROLE_COLOURS = {"source": "tab:blue", "target": "tab:red"}


def new_figure(figsize: tuple[float, float], dpi: int = DPI):
    """A Figure outside pyplot: no global state, and nothing is shown by the inline backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig, colours: int = 64) -> bytes:
    """The figure as PNG bytes: deterministic (no metadata) and reduced to a 64-colour palette."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
    rgb = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    enums = (getattr(Image, "Quantize", Image), getattr(Image, "Dither", Image))  # Pillow < 9.1: flat
    small = rgb.quantize(colors=colours, method=enums[0].MEDIANCUT, dither=enums[1].NONE)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def min_text_px(fig, dpi: float | None = None, column_px: float = BOOK_COLUMN_PX) -> float:
    """Size in CSS px of the smallest visible text of `fig` as the book shows it: saved at `dpi`
    (default the figure's), then shrunk to `column_px` if wider (the book never enlarges)."""
    from matplotlib.text import Text

    dpi = dpi or fig.dpi
    scale = min(1.0, column_px / (fig.get_size_inches()[0] * dpi))
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return min(sizes) * dpi / 72 * scale if sizes else float("inf")


def _is_floor(ablation) -> bool:
    """The random encoder (no pretraining at all): the floor that the chapter's Δ bars leave out
    of the scale of the other ablations."""
    return getattr(ablation, "kind", None) == "random_init" or str(ablation) in ("random-init", "random_init")


def column_subplots(n: int, panel_height: float = 2.6, max_cols: int = 2, **kwargs):
    """pyplot Figure of `n` panels filling the book's column: up to `max_cols` per row, as many rows as
    needed, COLUMN_WIDTH_IN wide, `panel_height` inches per row. Returns (fig, axes), axes a flat
    list of the n panels (spare cells of the grid are removed). kwargs go to plt.subplots."""
    import matplotlib.pyplot as plt

    if n < 1:
        raise ValueError(f"column_subplots needs at least one panel, got n={n}")
    cols = min(n, max_cols)
    rows = -(-n // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(COLUMN_WIDTH_IN, panel_height * rows), squeeze=False,
                             **kwargs)
    axes = list(grid.flat)
    for ax in axes[n:]:
        ax.remove()
    return fig, axes[:n]


def _tick_rotation(labels: Sequence[str], width_px: float, fontsize: float = 8) -> int:
    """0 when the labels fit side by side in width_px (about 0.55 em per character, one spare
    character each), else 30 degrees."""
    longest = max((len(s) for s in labels), default=0)
    return 0 if len(labels) * (longest + 1) * 0.55 * fontsize * FIGURE_DPI / 72 <= width_px else 30


def qualitative_colours(n: int) -> list:
    from matplotlib import colormaps

    name = "tab10" if n <= 10 else "tab20"
    cmap = colormaps[name]
    return [cmap(i % cmap.N) for i in range(n)]


def delta_bars(ax, means: dict, stds: dict, labels: Sequence[str], width: float = 0.38) -> None:
    """Source and target bars (mean ± std) side by side for each label; means[role][i], stds[role][i]."""
    _role_bars(ax, np.arange(len(labels)), means, stds, width)


def _role_bars(ax, x: np.ndarray, means: dict, stds: dict, width: float = 0.38, **kwargs) -> None:
    """Source and target bars (mean ± std) at the positions x."""
    for k, role in enumerate(ROLES):
        ax.bar(x + (k - 0.5) * width, means[role], width, yerr=stds[role], capsize=3, color=ROLE_COLOURS[role],
               label=role, error_kw={"lw": 1}, **kwargs)
    ax.axhline(0, color="black", lw=0.8)


def _padded_limits(means: dict, stds: dict) -> tuple[float, float]:
    """(lo, hi) holding 0 and every mean ± std, with a margin on both sides of 0."""
    values = np.concatenate([np.asarray(means[r], float) - stds[r] for r in ROLES]
                            + [np.asarray(means[r], float) + stds[r] for r in ROLES])
    lo, hi = min(0.0, float(np.nanmin(values))), max(0.0, float(np.nanmax(values)))
    pad = max(0.08 * (hi - lo), 0.25)
    return lo - pad, hi + pad


def plot_deltas(deltas: pd.DataFrame, order: Sequence | None = None):
    """Bars of Δ to the reference (mean ± std over seeds), source vs targets, one panel per task.

    The panels are stacked, one row per task, in a figure of the book's column width
    (COLUMN_WIDTH_IN); the ablations' names are horizontal when they fit, else slanted. The random
    encoder (random-init, tens of points below the rest) is drawn on its own scale, the right-hand
    axis over a shaded slot, so that it does not flatten the other ablations' bars into slivers."""
    tasks = list(dict.fromkeys(deltas.task))
    order = list(order) if order is not None else list(dict.fromkeys(deltas.ablation))
    import matplotlib.pyplot as plt

    labels = [str(a) for a in order]
    floor = np.array([_is_floor(a) for a in order])
    split = bool(floor.any() and (~floor).any())
    rotation = _tick_rotation(labels, (0.78 if split else 0.85) * COLUMN_WIDTH_IN * FIGURE_DPI)
    row_in = 2.0 + (0.45 if rotation else 0.0)
    fig, axes = plt.subplots(len(tasks), 1, figsize=(COLUMN_WIDTH_IN, row_in * len(tasks)), squeeze=False)
    x = np.arange(len(order))
    for k, (ax, task) in enumerate(zip(axes[:, 0], tasks, strict=True)):
        means, stds = {}, {}
        for role in ROLES:
            d = deltas[(deltas.task == task) & (deltas.role == role)].groupby("ablation", sort=False)["delta"]
            means[role] = d.mean().reindex(order).to_numpy()
            stds[role] = d.std(ddof=1).reindex(order).fillna(0).to_numpy()
        if split:
            part = {True: ({r: means[r][floor] for r in ROLES}, {r: stds[r][floor] for r in ROLES}),
                    False: ({r: means[r][~floor] for r in ROLES}, {r: stds[r][~floor] for r in ROLES})}
            _role_bars(ax, x[~floor], *part[False])
            lo, hi = _padded_limits(*part[False])
            ax.set_ylim(lo, hi)
            own = ax.twinx()
            _role_bars(own, x[floor], *part[True], hatch="//", edgecolor="white", linewidth=0)
            flo, fhi = _padded_limits(*part[True])
            scale = max(flo / lo, fhi / hi)  # the same 0 line on both axes
            own.set_ylim(lo * scale, hi * scale)
            own.tick_params(axis="y", labelsize=8, colors="0.3")
            own.set_ylabel("random-init\n(own scale)", fontsize=8, color="0.3")
            for i in np.flatnonzero(floor):
                ax.axvspan(i - 0.5, i + 0.5, color="0.92", zorder=0, lw=0)
        else:
            delta_bars(ax, means, stds, labels)
        ax.set_xlim(-0.6, len(order) - 0.4)
        ax.set_xticks(x, labels, rotation=rotation, fontsize=8, ha="right" if rotation else "center")
        ax.set_title(f"{task}: Δ to reference (points)", fontsize=10, loc="left")
        ax.tick_params(axis="y", labelsize=8)
        if k == 0:
            ax.legend(*ax.get_legend_handles_labels(), fontsize=8, ncol=2, loc="lower right",
                      bbox_to_anchor=(1.0, 1.0), frameon=False, borderaxespad=0.1)
    fig.tight_layout()
    return fig


def plot_pair_heatmaps(deltas: pd.DataFrame, n_layers: int, tasks: list[str] | None = None):
    """For each task, the mean Δ of re-initialising each pair of layers: source, targets, and the
    transfer-specific part (targets − source). Red is a loss; the colour scale is shared per task.

    Made at the book's column width (COLUMN_WIDTH_IN), so no text is shrunk below MIN_TEXT_PX; the
    values are printed in the cells when they are wide enough to hold them at that size."""
    import matplotlib.pyplot as plt

    tasks = tasks or list(dict.fromkeys(deltas.task))
    fig, axes = plt.subplots(len(tasks), 4, figsize=(COLUMN_WIDTH_IN, 2.5 * len(tasks)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1, 0.06]}, layout="constrained")
    cell_px = 0.27 * COLUMN_WIDTH_IN * FIGURE_DPI / max(1, n_layers - 1)  # a panel is ~27% of the width
    annotate = cell_px >= 30  # "-10.5" at 7 pt (9.7 px) needs about 30 px
    for row, task in zip(axes, tasks, strict=True):
        row, cax = row[:3], row[3]
        src = pair_matrix(deltas, task, "source", n_layers).iloc[:-1, 1:]  # pairs i < j only
        tgt = pair_matrix(deltas, task, "target", n_layers).iloc[:-1, 1:]
        panels = (("source", src), ("targets", tgt), ("tgt − src", tgt - src))
        lim = max(1.0, float(np.nanmax(np.abs(np.stack([p.to_numpy() for _, p in panels])))))
        for k, (ax, (name, mat)) in enumerate(zip(row, panels, strict=True)):
            im = ax.imshow(mat.to_numpy(), cmap="RdBu", vmin=-lim, vmax=lim)
            if annotate:
                for (i, j), v in np.ndenumerate(mat.to_numpy()):
                    if not np.isnan(v):
                        ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7)
            step = max(1, len(mat.columns) // 6)  # at most ~6 tick labels per axis
            ax.set_xticks(range(0, mat.shape[1], step), list(mat.columns)[::step], fontsize=7)
            ax.set_yticks(range(0, mat.shape[0], step), list(mat.index)[::step], fontsize=7)
            ax.set_xlabel("second layer", fontsize=8)
            if k == 0:
                ax.set_ylabel(f"{task}: first layer", fontsize=8)
            ax.set_title(f"{task}: Δ {name}", fontsize=9)
            ax.grid(False)
        bar = fig.colorbar(im, cax=cax)
        bar.set_label("Δ (points)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    return fig


def plot_cka_heatmap(
    values,
    *,
    row_labels: Sequence | None = None,
    col_labels: Sequence | None = None,
    title: str | None = None,
    xlabel: str = "layer",
    ylabel: str = "language",
    vmin: float = 0.0,
    vmax: float = 1.0,
    cmap: str = "viridis",
    annotate: bool = True,
    fmt: str = ".2f",
    colorbar_label: str = "CKA",
    figsize: tuple[float, float] | None = None,
    ax=None,
):
    """Annotated heatmap of CKA values (rows e.g. languages, columns e.g. layers); returns the Figure.

    values: a pandas DataFrame (its index and columns label the axes) or a 2-D array (labels from
    row_labels / col_labels, default 0..n-1). NaN cells are left blank. Without `ax`, a new
    `matplotlib.figure.Figure` is made outside pyplot (no global state; in Jupyter it shows when it
    is the cell's value or passed to `display`). Nothing time-dependent is drawn.
    """
    from matplotlib.figure import Figure

    if hasattr(values, "to_numpy") and hasattr(values, "index") and hasattr(values, "columns"):
        row_labels = list(values.index) if row_labels is None else row_labels
        col_labels = list(values.columns) if col_labels is None else col_labels
        data = values.to_numpy(dtype=float)
    else:
        data = np.asarray(values, dtype=float)
    if data.ndim != 2:
        raise ValueError(f"expected a 2-D table of values, got shape {data.shape}")
    n_rows, n_cols = data.shape
    row_labels = list(range(n_rows)) if row_labels is None else list(row_labels)
    col_labels = list(range(n_cols)) if col_labels is None else list(col_labels)
    if len(row_labels) != n_rows or len(col_labels) != n_cols:
        raise ValueError("row_labels / col_labels do not match the shape of values")

    if ax is None:
        if figsize is None:  # at most the column's width (COLUMN_WIDTH_IN)
            figsize = (min(COLUMN_WIDTH_IN, max(4.0, 0.55 * n_cols + 2.2)), max(2.5, 0.42 * n_rows + 1.4))
        fig = Figure(figsize=figsize, layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    masked = np.ma.masked_invalid(data)
    im = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_xticks(np.arange(n_cols), labels=[str(c) for c in col_labels])
    ax.set_yticks(np.arange(n_rows), labels=[str(r) for r in row_labels])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, label=colorbar_label)
    if annotate:
        for i in range(n_rows):
            for j in range(n_cols):
                v = data[i, j]
                if not np.isfinite(v):
                    continue
                r, g, b, _ = im.cmap(im.norm(v))
                colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                ax.text(j, i, format(v, fmt), ha="center", va="center", color=colour, fontsize=8)
    return fig
