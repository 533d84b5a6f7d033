"""Every figure of the package: Δ bars and pair heatmaps of the ablation grid, CKA heatmaps, and the
deterministic PNG rendering that the widgets pre-render their panels with.

The widgets' panels and the CKA heatmap are made outside pyplot (`new_figure`); the chapter figures
of the ablation grid (`plot_deltas`, `plot_pair_heatmaps`) use pyplot, so that a notebook shows them. Ablations are `Ablation` values; their
labels (`str`) name the bars and ticks.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

DPI = 80
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


def qualitative_colours(n: int) -> list:
    from matplotlib import colormaps

    name = "tab10" if n <= 10 else "tab20"
    cmap = colormaps[name]
    return [cmap(i % cmap.N) for i in range(n)]


def delta_bars(ax, means: dict, stds: dict, labels: Sequence[str], width: float = 0.38) -> None:
    """Source and target bars (mean ± std) side by side for each label; means[role][i], stds[role][i]."""
    x = np.arange(len(labels))
    for k, role in enumerate(ROLES):
        ax.bar(x + (k - 0.5) * width, means[role], width, yerr=stds[role], capsize=3, color=ROLE_COLOURS[role],
               label=role, error_kw={"lw": 1})
    ax.axhline(0, color="black", lw=0.8)


def plot_deltas(deltas: pd.DataFrame, order: Sequence | None = None):
    """Bars of Δ to the reference (mean ± std over seeds), source vs targets, one panel per task."""
    tasks = list(dict.fromkeys(deltas.task))
    order = list(order) if order is not None else list(dict.fromkeys(deltas.ablation))
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.2), squeeze=False, sharey=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        means, stds = {}, {}
        for role in ROLES:
            d = deltas[(deltas.task == task) & (deltas.role == role)].groupby("ablation", sort=False)["delta"]
            means[role] = d.mean().reindex(order).to_numpy()
            stds[role] = d.std(ddof=1).reindex(order).fillna(0).to_numpy()
        delta_bars(ax, means, stds, [str(a) for a in order])
        ax.set_xticks(np.arange(len(order)), [str(a) for a in order], rotation=20)
        ax.set_title(f"{task}: Δ to reference (points)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_pair_heatmaps(deltas: pd.DataFrame, n_layers: int, tasks: list[str] | None = None):
    """For each task, the mean Δ of re-initialising each pair of layers: source, targets, and the
    transfer-specific part (targets − source). Red is a loss; the colour scale is shared per task."""
    import matplotlib.pyplot as plt

    from .analysis import pair_matrix

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
        if figsize is None:
            figsize = (max(4.0, 0.55 * n_cols + 2.2), max(2.5, 0.42 * n_rows + 1.4))
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
