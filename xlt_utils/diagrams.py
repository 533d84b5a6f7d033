"""The chapters' diagrams (pictures of the idea), drawn with matplotlib and written as SVG.

Each diagram is a function that returns a `matplotlib.figure.Figure`; `DIAGRAMS` names them, with
the chapter that shows them. The SVGs are stored in notebooks/figures/ and are reproducible: text
is drawn as paths (no font needed to view them), and the file has no date, no software tag and
fixed element ids, so the same source writes the same bytes (tests/test_diagrams.py checks the
stored files against this module).

The notebooks show them with a markdown image whose address is `figure_url(name)` (the file on
GitHub, so that it shows on Colab); the book maps that address to the stored file
(book/_ext/xlt_book.py), so the built book needs no network.

Usage: python -m xlt_utils.diagrams            (re)write notebooks/figures/*.svg
       python -m xlt_utils.diagrams --check    exit 1 if a stored SVG differs from its source
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from . import BRANCH, REPOSITORY

#: Where the SVGs are stored, relative to the repository root (next to the notebooks).
FIGURE_DIR = "notebooks/figures"
#: Width of every diagram in inches; an SVG of matplotlib is 72 px per inch in a browser, so 576 px:
#: the book's narrowest desktop column (plotting.BOOK_COLUMN_PX, 624 px) shows it at natural size.
WIDTH_IN = 8.0
#: Smallest text size, in points of the figure (1 pt = 1 px of the SVG at natural size). At
#: WIDTH_IN = 8 in (576 px) shown in a column of at least 576 px, text is at least this many px.
MIN_FONT_PT = 10.0
SVG_DPI = 72

#: Colours: the encoder (language-agnostic, lower layers), the predictor (upper layers), the task
#: head, random weights, frozen weights, text.
ENCODER = "#cfe3f5"
ENCODER_EDGE = "#1f5f99"
PREDICTOR = "#fde2c8"
PREDICTOR_EDGE = "#b35c00"
HEAD = "#e6d5f2"
HEAD_EDGE = "#6a3d9a"
RANDOM = "#f4c7c3"
RANDOM_EDGE = "#b22222"
FROZEN = "#d9d9d9"
FROZEN_EDGE = "#4d4d4d"
INK = "#222222"
MUTED = "#555555"
SOURCE = "#1f77b4"  # plotting.ROLE_COLOURS
TARGET = "#d62728"

RC = {
    "svg.fonttype": "path",
    "svg.hashsalt": "xlt-diagrams",
    "svg.image_inline": True,
    "font.family": "DejaVu Sans",
    "font.size": 11.0,
    "path.simplify": False,
}


def _canvas(height_in: float, width_in: float = WIDTH_IN):
    """A figure with one invisible axes whose data coordinates are inches (origin bottom left)."""
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=SVG_DPI)
    FigureCanvasSVG(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width_in)
    ax.set_ylim(0, height_in)
    ax.set_axis_off()
    return fig, ax


def _box(ax, x, y, w, h, text="", *, face="white", edge=INK, size=11.0, weight="normal",
         colour=INK, lw=1.2, ls="-", radius=0.06):
    """A rounded box with centred text; (x, y) is its lower left corner."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle=f"round,pad=0,rounding_size={radius}",
                                facecolor=face, edgecolor=edge, lw=lw, ls=ls))
    if text:
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size,
                fontweight=weight, color=colour)


def _arrow(ax, start, end, *, colour=INK, lw=1.4, style="-|>", ls="-", rad=0.0):
    from matplotlib.patches import FancyArrowPatch

    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=colour,
                                 lw=lw, ls=ls, shrinkA=0, shrinkB=0,
                                 connectionstyle=f"arc3,rad={rad}"))


def _brace(ax, x, y0, y1, text, *, colour=INK, size=11.0, width=0.12):
    """A right-facing bracket from y0 to y1 at x, with text to its right."""
    ax.plot([x, x + width, x + width, x], [y0, y0, y1, y1], color=colour, lw=1.4,
            solid_joinstyle="miter")
    ax.plot([x + width, x + 2 * width], [(y0 + y1) / 2] * 2, color=colour, lw=1.4)
    ax.text(x + 2.6 * width, (y0 + y1) / 2, text, ha="left", va="center", fontsize=size,
            color=colour, linespacing=1.35)


# --------------------------------------------------------------------------------------------
# Chapter 0: the idea
# --------------------------------------------------------------------------------------------


def encoder_predictor():
    """mBERT as a multilingual encoder (lower layers) under a task predictor (upper layers)."""
    fig, ax = _canvas(6.3)
    x, w, h, gap = 1.55, 2.5, 0.26, 0.05
    y = 1.15
    # layer 0: the embeddings, then layers 1-12
    ys = []
    for layer in range(13):
        ys.append(y)
        if layer == 0:
            face, edge, text = ENCODER, ENCODER_EDGE, "embeddings (layer 0)"
        elif layer <= 6:
            face, edge, text = ENCODER, ENCODER_EDGE, f"layer {layer}"
        else:
            face, edge, text = PREDICTOR, PREDICTOR_EDGE, f"layer {layer}"
        _box(ax, x, y, w, h, text, face=face, edge=edge, size=10)
        y += h + gap
    head_y = y + 0.08
    _box(ax, x, head_y, w, 0.36, "task head (POS / NER / parsing)", face=HEAD, edge=HEAD_EDGE,
         size=10)
    # inputs: one meaning in several languages
    sentences = [("en", "the cat sleeps"), ("de", "die Katze schläft"), ("ru", "кошка спит")]
    for k, (lang, text) in enumerate(sentences):
        ax.text(x + w / 2, 0.78 - 0.26 * k, f"{lang}: {text}", ha="center", va="center",
                fontsize=10, color=MUTED)
    _arrow(ax, (x + w / 2, 0.92), (x + w / 2, 1.12))
    ax.text(x + w / 2, head_y + 0.58, "DET  NOUN  VERB", ha="center", va="center", fontsize=10,
            color=INK, fontweight="bold")
    _arrow(ax, (x + w / 2, head_y + 0.37), (x + w / 2, head_y + 0.47))
    # the two halves, named as in the paper
    top_enc = ys[6] + h
    _brace(ax, x + w + 0.12, ys[0], top_enc,
           "multilingual encoder\nmaps every language into\na shared space: aligns",
           colour=ENCODER_EDGE)
    _brace(ax, x + w + 0.12, ys[7], ys[12] + h,
           "task predictor\nsolves the task on the\naligned representation",
           colour=PREDICTOR_EDGE)
    ax.text(0.1, (ys[0] + top_enc) / 2, "lower\nlayers", ha="left", va="center", fontsize=10,
            color=MUTED)
    ax.text(0.1, (ys[7] + ys[12] + h) / 2, "upper\nlayers", ha="left", va="center", fontsize=10,
            color=MUTED)
    ax.text(WIDTH_IN / 2, 6.08, "First align, then predict: one network, two roles",
            ha="center", va="center", fontsize=12, fontweight="bold", color=INK)
    ax.text(x + w + 0.12, 0.5, "where the boundary lies is\nwhat chapters 3 and 4 measure",
            ha="left", va="center", fontsize=10, color=MUTED, linespacing=1.35)
    return fig


# --------------------------------------------------------------------------------------------
# Chapter 1: subwords and first-subword labels
# --------------------------------------------------------------------------------------------


def subword_labels():
    """Words cut into subwords; each word is read at its first subword, which carries its tag."""
    fig, ax = _canvas(3.5)
    words = [("die", "DET", ["die"]), ("Kätzchen", "NOUN", ["K", "##ätz", "##chen"]),
             ("schlafen", "VERB", ["schlaf", "##en"])]
    for y, name in ((3.05, "words"), (1.95, "subwords"), (0.95, "predicted"), (0.45, "gold tags")):
        ax.text(0.1, y, name, fontsize=10, color=MUTED, va="center")
    sub_w, sub_gap, word_gap = 0.78, 0.08, 0.3
    x = 1.3
    for word, tag, pieces in words:
        span = len(pieces) * sub_w + (len(pieces) - 1) * sub_gap
        _box(ax, x, 2.85, span, 0.4, word, face="white", edge=INK, size=11)
        for k, piece in enumerate(pieces):
            px = x + k * (sub_w + sub_gap)
            first = k == 0
            _box(ax, px, 1.75, sub_w, 0.4, piece, face=ENCODER if first else "white",
                 edge=ENCODER_EDGE if first else MUTED, ls="-" if first else "--", size=10.5)
            _arrow(ax, (x + span / 2, 2.83), (px + sub_w / 2, 2.18), colour=MUTED, lw=1.0)
        _arrow(ax, (x + sub_w / 2, 1.73), (x + sub_w / 2, 1.1), colour=ENCODER_EDGE)
        _box(ax, x, 0.78, sub_w, 0.32, "ŷ", face="white", edge=ENCODER_EDGE, size=10.5)
        ax.text(x + sub_w / 2, 0.45, tag, ha="center", va="center", fontsize=11,
                fontweight="bold", color=INK)
        x += span + word_gap
    ax.text(1.3, 0.1, "the classifier reads each word at its first subword (blue); "
            "the other subwords get no label", fontsize=10, color=MUTED, va="center")
    return fig


# --------------------------------------------------------------------------------------------
# Chapter 2: zero-shot transfer
# --------------------------------------------------------------------------------------------


def zero_shot_pipeline():
    """Fine-tune on the source language only, then evaluate the same model on every target."""
    fig, ax = _canvas(3.6)
    _box(ax, 0.1, 1.55, 1.6, 0.75, "pretrained\nencoder\n(or random init)", face=ENCODER,
         edge=ENCODER_EDGE, size=10)
    _arrow(ax, (1.72, 1.92), (2.12, 1.92))
    _box(ax, 2.15, 1.55, 1.75, 0.75, "fine-tune\non en only", face=PREDICTOR,
         edge=PREDICTOR_EDGE, size=10.5)
    _box(ax, 2.15, 2.65, 1.75, 0.55, "labelled en\ntraining set", face="white", edge=SOURCE,
         size=10, colour=SOURCE)
    _arrow(ax, (3.02, 2.63), (3.02, 2.33), colour=SOURCE)
    _arrow(ax, (3.92, 1.92), (4.32, 1.92))
    _box(ax, 4.35, 1.55, 1.45, 0.75, "one model,\nnow fixed", face=HEAD, edge=HEAD_EDGE,
         size=10.5)
    tests = [("en", "source", SOURCE), ("de", "target", TARGET), ("ru", "target", TARGET),
             ("ja", "target", TARGET), ("ar", "target", TARGET)]
    ty = [3.05, 2.45, 1.85, 1.25, 0.65]
    for (lang, role, colour), y in zip(tests, ty, strict=True):
        _arrow(ax, (5.82, 1.92), (6.4, y + 0.2), colour=colour, lw=1.1)
        _box(ax, 6.42, y, 1.45, 0.4, f"{lang} test: {role}", face="white", edge=colour, size=10,
             colour=colour)
    ax.text(6.42 + 0.72, 0.3, "no training on targets", ha="center", va="center", fontsize=10,
            color=MUTED)
    ax.text(0.1, 0.62, "transfer = the target scores\nof a model that saw labels\n"
            "in one language only", ha="left", va="center", fontsize=10, color=MUTED,
            linespacing=1.35)
    return fig


# --------------------------------------------------------------------------------------------
# Chapter 3: Reinit and Freeze
# --------------------------------------------------------------------------------------------


def reinit_freeze():
    """Three 12-layer stacks: the reference, Reinit of layers 1-2, Freeze of the lower half."""
    fig, ax = _canvas(6.0)
    h, gap, w = 0.27, 0.05, 1.7
    variants = [
        ("reference", lambda k: "pretrained"),
        ("Reinit 1,2", lambda k: "random" if k in (1, 2) else "pretrained"),
        ("Freeze 0-6", lambda k: "frozen" if k <= 6 else "pretrained"),
    ]
    style = {"pretrained": (ENCODER, ENCODER_EDGE, "-"), "random": (RANDOM, RANDOM_EDGE, "-"),
             "frozen": (FROZEN, FROZEN_EDGE, "--")}
    xs = [0.95, 3.05, 5.15]
    for (name, state), x in zip(variants, xs, strict=True):
        ax.text(x + w / 2, 5.72, name, ha="center", va="center", fontsize=12, fontweight="bold")
        y = 0.85
        for k in range(13):
            face, edge, ls = style[state(k)]
            _box(ax, x, y, w, h, "embeddings" if k == 0 else f"layer {k}", face=face, edge=edge,
                 ls=ls, size=10)
            y += h + gap
        _box(ax, x, y + 0.04, w, 0.3, "task head", face=HEAD, edge=HEAD_EDGE, size=10)
    legend = [("pretrained, then fine-tuned", "pretrained"),
              ("re-initialised (random), then fine-tuned", "random"),
              ("pretrained, frozen (not updated)", "frozen")]
    for k, (text, key) in enumerate(legend):
        face, edge, ls = style[key]
        lx, ly = 0.95 + (0, 3.15, 0)[k], (0.45, 0.45, 0.1)[k]
        _box(ax, lx, ly, 0.3, 0.2, face=face, edge=edge, ls=ls, radius=0.03)
        ax.text(lx + 0.4, ly + 0.1, text, ha="left", va="center", fontsize=10)
    ax.text(4.1, 0.2, "each: fine-tuned on en, tested on all", ha="left", va="center",
            fontsize=10, color=MUTED)
    return fig


# --------------------------------------------------------------------------------------------
# Chapter 4: CKA per layer
# --------------------------------------------------------------------------------------------


def cka_pipeline():
    """Parallel sentences through the model; per layer, CKA of the two matrices; a curve."""
    import numpy as np

    fig, ax = _canvas(3.4)
    _box(ax, 0.1, 2.35, 1.55, 0.6, "n en sentences", face="white", edge=SOURCE, colour=SOURCE,
         size=10)
    _box(ax, 0.1, 1.45, 1.55, 0.6, "their n\ntranslations (X)", face="white", edge=TARGET,
         colour=TARGET, size=10)
    ax.text(0.88, 1.1, "parallel: row i\nmeans the same", ha="center", va="center", fontsize=10,
            color=MUTED)
    _arrow(ax, (1.67, 2.65), (2.05, 2.3))
    _arrow(ax, (1.67, 1.75), (2.05, 2.1))
    _box(ax, 2.08, 1.6, 1.05, 1.2, "model\n(frozen)", face=ENCODER, edge=ENCODER_EDGE, size=10.5)
    # per layer: two matrices (n x d), averaged over subwords
    _arrow(ax, (3.15, 2.2), (3.5, 2.2))
    for k, (lab, colour) in enumerate(((r"$H_\ell(\mathrm{en})$", SOURCE),
                                       (r"$H_\ell(X)$", TARGET))):
        mx = 3.55 + k * 0.82
        _box(ax, mx, 1.7, 0.7, 1.0, "", face="white", edge=colour, radius=0.02)
        for r in range(1, 5):
            ax.plot([mx + 0.05, mx + 0.65], [1.7 + 0.2 * r] * 2, color=colour, lw=0.6, alpha=0.6)
        ax.text(mx + 0.35, 2.88, lab, ha="center", va="center", fontsize=10, color=colour)
    ax.text(3.55 + 0.76, 1.45, "n × d at layer $\\ell$\n(mean over subwords)", ha="center", va="top",
            fontsize=10, color=MUTED)
    _arrow(ax, (5.2, 2.2), (5.55, 2.2))
    ax.text(5.62, 2.68, r"CKA$(H_\ell(\mathrm{en}), H_\ell(X))$", ha="left", va="center",
            fontsize=10)
    ax.text(5.62, 2.38, r"for $\ell$ = 0 … 12", ha="left", va="center", fontsize=10, color=MUTED)
    # the curve
    cx, cy, cw, chh = 5.75, 0.55, 2.05, 1.45
    ax.plot([cx, cx, cx + cw], [cy + chh, cy, cy], color=INK, lw=1.0)
    layers = np.arange(13)
    values = 0.45 + 0.4 * np.exp(-((layers - 5.0) / 4.2) ** 2)
    px = cx + 0.1 + layers / 12 * (cw - 0.2)
    py = cy + values * chh
    ax.plot(px, py, color=TARGET, lw=1.6, marker="o", ms=3)
    ax.text(cx + cw / 2, cy - 0.22, "layer 0 … 12", ha="center", va="center", fontsize=10)
    ax.text(cx - 0.12, cy + chh / 2, "CKA", ha="right", va="center", fontsize=10)
    ax.text(0.1, 0.35, "one curve per language X: high where the two languages are represented "
            "alike", ha="left", va="center", fontsize=10, color=MUTED)
    return fig


# --------------------------------------------------------------------------------------------
# Chapter 5: one property at a time
# --------------------------------------------------------------------------------------------

#: The lab's variants (xlt_utils.lab.VARIANTS, the control aside) and the one change each makes;
#: tests/test_diagrams.py keeps the names equal to the lab's.
LAB_VARIANTS = (
    ("disjoint-vocab", "no shared subwords"),
    ("language-positions", "positions per language"),
    ("inverted-fr", "French read right to left"),
    ("wider", "twice as wide (256)"),
    ("inverted-ru", "Russian read right to left"),
)


def one_property_lab():
    """The lab's control and its variants, each changing one property, measured the same way."""
    fig, ax = _canvas(3.9)
    _box(ax, 0.1, 1.45, 1.65, 1.2, "control\n6 layers × 128\nshared vocabulary\nshared positions",
         face=ENCODER, edge=ENCODER_EDGE, size=10)
    ys = [3.2 - 0.62 * k for k in range(len(LAB_VARIANTS))]
    for (name, change), y in zip(LAB_VARIANTS, ys, strict=True):
        _arrow(ax, (1.77, 2.05), (2.18, y + 0.24), colour=MUTED, lw=1.0)
        _box(ax, 2.2, y, 2.75, 0.48, "", face="white", edge=PREDICTOR_EDGE)
        ax.text(2.3, y + 0.34, name, ha="left", va="center", fontsize=10, fontweight="bold")
        ax.text(2.3, y + 0.13, change, ha="left", va="center", fontsize=10, color=MUTED)
        _arrow(ax, (4.97, y + 0.24), (5.38, 2.05), colour=MUTED, lw=1.0)
    _box(ax, 5.4, 1.2, 2.5, 1.7, "pretrain 3,000 steps,\nthen, like the control:\nzero-shot POS, NER,\n"
         "parsing (gain over a\nrandom encoder) and\nen→X retrieval per layer", face=HEAD,
         edge=HEAD_EDGE, size=10)
    ax.text(5.4 + 1.25, 0.9, "read each against\nthe control", ha="center", va="center", fontsize=10,
            color=MUTED)
    ax.text(0.1, 0.75, "one property\nchanged at a time", ha="left", va="center", fontsize=10,
            color=MUTED)
    return fig


#: name -> (chapter notebook, function). The file is FIGURE_DIR/<name>.svg.
DIAGRAMS = {
    "encoder_predictor": ("00_overview", encoder_predictor),
    "subword_labels": ("01_data_and_tokenisation", subword_labels),
    "zero_shot_pipeline": ("02_finetuning_zero_shot", zero_shot_pipeline),
    "reinit_freeze": ("03_reinit_ablation", reinit_freeze),
    "cka_pipeline": ("04_representation_similarity", cka_pipeline),
    "one_property_lab": ("05_what_makes_bert_multilingual", one_property_lab),
}


def figure_url(name: str) -> str:
    """The address a notebook shows the diagram from: the stored SVG on GitHub (works on Colab)."""
    return f"https://raw.githubusercontent.com/{REPOSITORY}/{BRANCH}/{FIGURE_DIR}/{name}.svg"


def render(name: str) -> str:
    """The SVG text of one diagram: deterministic (no date, no software tag, fixed ids)."""
    import matplotlib

    _, draw = DIAGRAMS[name]
    with matplotlib.rc_context(RC):
        fig = draw()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", dpi=SVG_DPI,
                    metadata={"Date": None, "Creator": None, "Title": name.replace("_", " ")})
    return buf.getvalue()


def write_all(folder: str | Path) -> list[Path]:
    """Write every diagram as <folder>/<name>.svg; return the paths written (changed or not)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in DIAGRAMS:
        path = folder / f"{name}.svg"
        svg = render(name)
        if not path.exists() or path.read_text(encoding="utf-8") != svg:
            path.write_text(svg, encoding="utf-8")
        paths.append(path)
    return paths


def stale(folder: str | Path) -> list[str]:
    """Names of the diagrams whose stored SVG in `folder` is missing or differs from its source."""
    folder = Path(folder)
    return [name for name in DIAGRAMS
            if not (folder / f"{name}.svg").is_file()
            or (folder / f"{name}.svg").read_text(encoding="utf-8") != render(name)]


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parents[1]
    folder = root / FIGURE_DIR
    if argv and argv[0] == "--check":
        bad = stale(folder)
        for name in bad:
            print(f"{FIGURE_DIR}/{name}.svg differs from xlt_utils/diagrams.py: "
                  "run python -m xlt_utils.diagrams")
        return 1 if bad else 0
    for path in write_all(folder):
        print(f"wrote {path.relative_to(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
