"""xlt_utils.widgets: explorers whose every panel is pre-rendered, linked to a Dropdown in the browser.

What the static book needs is checked on the widget state that a notebook stores (the same
`ipywidgets.embed.dependency_state` papermill/nbclient record): one Stack child per option, a
client-side Link from each Dropdown's `index` to its Stack's `selected_index`, valid and
deterministic PNGs, and a size that keeps the notebook small. tests/test_book.py opens such a page
in Chromium.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import xml.etree.ElementTree as ET
import zlib

import numpy as np
import pandas as pd
import pytest

ipywidgets = pytest.importorskip("ipywidgets")
from ipywidgets.embed import dependency_state  # noqa: E402
from PIL import Image  # noqa: E402

from xlt_utils.plotting import (  # noqa: E402
    BOOK_COLUMN_PX,
    COLUMN_WIDTH_IN,
    DPI,
    FIGURE_DPI,
    MIN_TEXT_PX,
    ROLE_COLOURS,
    column_subplots,
    min_text_px,
)
from xlt_utils.widgets import (  # noqa: E402
    ALL_ABLATIONS,
    ALL_LANGUAGES,
    FLOOR_TITLE,
    ROLE_HEX,
    cka_explorer,
    reinit_explorer,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"
# Notebook size budget of one explorer's widget state (JSON, images base64-encoded).
STATE_BUDGET = 300_000


def _curves(n_langs: int = 5, n_layers: int = 7, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = 0.55 + 0.35 * np.sin(np.linspace(0.2, 2.9, n_layers))
    rows = {f"l{i}": np.clip(base - 0.04 * i + rng.normal(0, 0.02, n_layers), 0, 1) for i in range(n_langs)}
    out = pd.DataFrame(rows, index=range(n_layers)).T
    out.columns.name = "layer"
    return out


def _deltas(tasks=("pos", "parse"), ablations=("reinit 0,1", "reinit 4,5", "random-init"),
            seeds=(1, 2, 3), seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [dict(task=t, ablation=a, role=r, seed=s, value=90.0, delta=float(rng.normal(-2, 1.5)))
            for t in tasks for a in ablations for r in ("source", "target") for s in seeds]
    return pd.DataFrame(rows)


def _png_bytes(image_widget) -> bytes:
    assert isinstance(image_widget, ipywidgets.Image)
    assert image_widget.format == "png"
    return bytes(image_widget.value)


def _png_chunks(data: bytes) -> list[bytes]:
    """Chunk types of a PNG, checking every CRC on the way."""
    assert data[:8] == PNG_SIGNATURE
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in chunk {kind!r}"
        kinds.append(kind)
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    return kinds


def _check_png(data: bytes) -> tuple[int, int]:
    kinds = _png_chunks(data)
    # Deterministic files: no time stamp, no text (matplotlib's "Software" tag is dropped).
    assert not {b"tIME", b"tEXt", b"iTXt", b"zTXt"} & set(kinds), kinds
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.size


def _state(widget) -> dict:
    """The widget state a notebook stores for this output (what the static book renders)."""
    return dependency_state([widget])


def _links(state: dict) -> set[tuple[str, str, str, str]]:
    out = set()
    for model in state.values():
        if model["model_name"] == "LinkModel":
            (src, src_attr), (dst, dst_attr) = model["state"]["source"], model["state"]["target"]
            out.add((src.removeprefix("IPY_MODEL_"), src_attr, dst.removeprefix("IPY_MODEL_"), dst_attr))
    return out


# --------------------------------------------------------------------------------------------
# cka_explorer
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cka_explorer_structure_and_link():
    curves = _curves(n_langs=4, n_layers=7)
    box = cka_explorer(curves, title="CKA with en")
    assert isinstance(box, ipywidgets.VBox)
    dropdown, stack = box.children
    assert isinstance(dropdown, ipywidgets.Dropdown) and isinstance(stack, ipywidgets.Stack)
    assert list(dropdown.options) == [ALL_LANGUAGES, "l0", "l1", "l2", "l3"]
    assert dropdown.index == 0 and stack.selected_index == 0
    assert len(stack.children) == len(dropdown.options)

    state = _state(box)
    assert _links(state) == {(dropdown.model_id, "index", stack.model_id, "selected_index")}
    # Every model the view needs is in the state, and the images travel as base64 buffers.
    ids = {w.model_id for w in (box, dropdown, stack, *stack.children)}
    assert ids <= set(state)
    for child in stack.children:
        buffers = state[child.model_id]["buffers"]
        assert [b["path"] for b in buffers] == [["value"]]
        assert base64.b64decode(buffers[0]["data"]) == bytes(child.value)


def test_cka_explorer_images_are_distinct_valid_pngs():
    box = cka_explorer(_curves(n_langs=3, n_layers=5), figsize=(5.0, 3.0))
    pngs = [_png_bytes(c) for c in box.children[1].children]
    sizes = {_check_png(p) for p in pngs}
    assert sizes == {(400, 240)}  # figsize x dpi 80, the same for every panel
    assert len(set(pngs)) == len(pngs), "two options show the same picture"


@pytest.mark.slow
def test_cka_explorer_is_deterministic():
    curves = _curves()
    a = [bytes(c.value) for c in cka_explorer(curves).children[1].children]
    b = [bytes(c.value) for c in cka_explorer(curves.copy()).children[1].children]
    assert a == b


@pytest.mark.slow
def test_cka_explorer_state_fits_the_notebook_budget():
    """18 languages x 13 layers (the full profile) stay under the size budget."""
    box = cka_explorer(_curves(n_langs=18, n_layers=13))
    assert len(box.children[1].children) == 19
    size = len(json.dumps(_state(box)))
    assert size < STATE_BUDGET, f"widget state is {size} bytes"


def test_cka_explorer_accepts_string_layers_nan_and_sorts_layers():
    curves = _curves(n_langs=2, n_layers=4)
    shuffled = curves[[3, 1, 0, 2]].rename(columns=str)
    shuffled.iloc[0, 0] = np.nan
    box = cka_explorer(shuffled)
    assert len(box.children[1].children) == 3
    for child in box.children[1].children:
        _check_png(_png_bytes(child))


@pytest.mark.parametrize(
    ("curves", "error", "message"),
    [
        (pd.DataFrame(), ValueError, "empty"),
        (pd.DataFrame(index=["de", "fr"]), ValueError, "empty"),
        ([[0.1, 0.2]], TypeError, "DataFrame"),
        (pd.DataFrame([[0.1, 0.2]], index=["de"], columns=["a", "b"]), ValueError, "layer numbers"),
        (pd.DataFrame([[0.1, 0.2]], index=["de"], columns=[0.5, 1]), ValueError, "layer numbers"),
        (pd.DataFrame([[0.1, 0.2], [0.3, 0.4]], index=["de", "de"]), ValueError, "duplicated languages"),
        (pd.DataFrame([[0.1, 0.2]], index=["de"], columns=[0, "0"]), ValueError, "duplicated layer"),
        (pd.DataFrame({0: ["x"], 1: [0.2]}, index=["de"]), ValueError, "non-numeric"),
        (pd.DataFrame([[np.nan, np.nan], [0.1, 0.2]], index=["de", "fr"]), ValueError, "no value"),
        (pd.DataFrame([[np.inf, 0.2]], index=["de"]), ValueError, "infinite"),
        (pd.DataFrame([[0.1, 0.2]], index=[ALL_LANGUAGES]), ValueError, "reserved"),
        (pd.DataFrame([[0.1, 0.2], [0.3, 0.4]], index=[1, "1"]), ValueError, "same name"),
    ],
)
def test_cka_explorer_rejects_bad_input(curves, error, message):
    with pytest.raises(error, match=message):
        cka_explorer(curves)


# --------------------------------------------------------------------------------------------
# reinit_explorer
# --------------------------------------------------------------------------------------------

#: The paper's grid on a 12-layer model, as in chapter 3: 3 tasks x 3 seeds x (reference, 6
#: consecutive pairs, 2 halves frozen, random init) = 90 runs; deltas for the 9 ablations.
GRID_ABLATIONS = ("reinit 1,2", "reinit 11,12", "freeze 0-6", "freeze 7-12", "random-init",
                  "reinit 3,4", "reinit 5,6", "reinit 7,8", "reinit 9,10")
#: Widget state budget of that explorer (JSON, as stored in the notebook's metadata).
REINIT_GRID_BUDGET = 140_000


def _reinit_parts(box):
    header, outer = box.children
    task_dd, ablation_dd = header.children
    return task_dd, ablation_dd, outer


def _svg(html_value: str) -> ET.Element:
    """The inline SVG chart of a panel, parsed (so it is well-formed XML)."""
    start, end = html_value.index("<svg"), html_value.index("</svg>") + len("</svg>")
    return ET.fromstring(html_value[start:end])


def _svgs(html_value: str) -> list[ET.Element]:
    """Every inline SVG chart of a panel, parsed, in order."""
    return [ET.fromstring("<svg" + part.split("</svg>")[0] + "</svg>") for part in html_value.split("<svg")[1:]]


def _svg_texts(svg: ET.Element) -> list[str]:
    return [t.text for t in svg.iter(f"{SVG}text")]


def test_reinit_explorer_structure_and_links():
    deltas = _deltas()
    box = reinit_explorer(deltas)
    task_dd, ablation_dd, outer = _reinit_parts(box)
    assert list(task_dd.options) == ["pos", "parse"]
    assert list(ablation_dd.options) == [ALL_ABLATIONS, "reinit 0,1", "reinit 4,5", "random-init"]
    assert isinstance(outer, ipywidgets.Stack) and len(outer.children) == len(task_dd.options)
    for inner in outer.children:
        assert isinstance(inner, ipywidgets.Stack)
        assert len(inner.children) == len(ablation_dd.options)
        assert inner.selected_index == 0
        assert all(isinstance(p, ipywidgets.HTML) for p in inner.children)

    expected = {(task_dd.model_id, "index", outer.model_id, "selected_index")}
    expected |= {(ablation_dd.model_id, "index", inner.model_id, "selected_index") for inner in outer.children}
    assert _links(_state(box)) == expected


def test_reinit_explorer_panels_show_mean_std_over_seeds():
    deltas = _deltas(seeds=(1, 2, 3, 4))
    box = reinit_explorer(deltas)
    _, ablation_dd, outer = _reinit_parts(box)
    parse = outer.children[1]
    k = list(ablation_dd.options).index("reinit 4,5")
    html = parse.children[k].value
    sub = deltas[(deltas.task == "parse") & (deltas.ablation == "reinit 4,5")]
    for role in ("source", "target"):
        d = sub[sub.role == role].delta
        assert f"{d.mean():+.1f} ± {d.std(ddof=1):.1f}" in html
        per_seed = ", ".join(f"{x:+.1f}" for x in d)
        assert per_seed in html
    gap = sub[sub.role == "source"].delta.mean() - sub[sub.role == "target"].delta.mean()
    assert f"<b>{gap:+.1f}</b>" in html
    # The chart: a bar per role in its colour, a whisker per role (std > 0), a dot per seed.
    svg = _svg(html)
    bars = [r for r in svg.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert [r.get("fill") for r in bars] == [ROLE_HEX["source"], ROLE_HEX["target"]]
    assert len(list(svg.iter(f"{SVG}path"))) == 2
    assert len(list(svg.iter(f"{SVG}circle"))) == 2 * 4
    assert "reinit 4,5" in _svg_texts(svg) and svg.find(f"{SVG}title").text.startswith("parse: reinit 4,5")
    # The overview (first option): a row of bars per ablation, every ablation's name once; the
    # random encoder in a second chart, on its own axis.
    main, floor = _svgs(parse.children[0].value)
    labels = _svg_texts(main) + _svg_texts(floor)
    assert all(labels.count(a) == 1 for a in ablation_dd.options[1:])
    assert f"parse: {ALL_ABLATIONS}" in labels and f"parse: {FLOOR_TITLE}" in _svg_texts(floor)
    assert "random-init" in _svg_texts(floor) and "random-init" not in _svg_texts(main)
    assert len([r for r in main.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]) == 2 * 2
    assert len([r for r in floor.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]) == 2


def test_reinit_explorer_bars_follow_the_values():
    """A bar starts at 0 and ends at the mean, on the task's shared axis."""
    deltas = _deltas(tasks=("pos",), ablations=("a", "b"), seeds=(1, 2))
    deltas["delta"] = [-1.0, -3.0, -5.0, -7.0, 2.0, 2.0, 4.0, 4.0]  # a: source, target; b: ...
    svg = _svg(reinit_explorer(deltas).children[1].children[0].children[0].value)
    rects = [r for r in svg.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    spans = [(float(r.get("x")), float(r.get("x")) + float(r.get("width"))) for r in rects]
    zero = spans[0][1]  # a's source bar (mean -2) ends at 0
    assert spans[2][0] == pytest.approx(zero, abs=0.11) and spans[3][0] == pytest.approx(zero, abs=0.11)
    unit = (zero - spans[0][0]) / 2  # pixels per point
    assert zero - spans[1][0] == pytest.approx(6 * unit, abs=0.2)  # a target: mean -6
    assert spans[2][1] - zero == pytest.approx(2 * unit, abs=0.2) and spans[3][1] - zero == pytest.approx(4 * unit, abs=0.2)


def _bar_px(svg: ET.Element) -> list[float]:
    return [float(r.get("width")) for r in svg.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]


def test_reinit_explorer_puts_the_random_encoder_on_its_own_scale():
    """A random encoder 40 points down does not flatten the Reinit bars (2 points down) into
    slivers: they keep the width they have without it, in the overview and in their own panel."""
    with_floor = _deltas(tasks=("pos",), ablations=("reinit 1,2", "reinit 3,4", "random-init"))
    with_floor.loc[with_floor.ablation == "random-init", "delta"] -= 38.0
    without = with_floor[with_floor.ablation != "random-init"]
    a, b = (reinit_explorer(d).children[1].children[0] for d in (with_floor, without))
    main, floor = _svgs(a.children[0].value)
    assert _bar_px(main) == _bar_px(_svgs(b.children[0].value)[0])
    assert min(_bar_px(main)) > 40  # about 2 points of a ~5-point axis: not a sliver
    assert min(_bar_px(floor)) > 200  # the random encoder fills its own axis
    ticks = [float(t) for t in _svg_texts(floor) if t and t.lstrip("-").replace(".", "").isdigit()]
    assert min(ticks) <= -35, ticks  # ... whose scale reaches its loss
    main_ticks = [float(t) for t in _svg_texts(main) if t and t.lstrip("-").replace(".", "").isdigit()]
    assert min(main_ticks) > -10, main_ticks
    k = 1 + list(dict.fromkeys(with_floor.ablation)).index("reinit 1,2")
    assert a.children[k].value == b.children[k].value  # the one-ablation panel ignores the floor


def test_reinit_explorer_single_seed_has_zero_std():
    box = reinit_explorer(_deltas(tasks=("pos",), ablations=("reinit 0,1",), seeds=(1,)))
    html = _reinit_parts(box)[2].children[0].children[1].value
    assert "± 0.0" in html
    assert not list(_svg(html).iter(f"{SVG}path"))  # no whisker for a single seed


def test_reinit_explorer_order_and_missing_combinations():
    deltas = pd.concat([_deltas(tasks=("pos",), ablations=("reinit 0,1", "freeze 0-3")),
                        _deltas(tasks=("ner",), ablations=("reinit 0,1",))], ignore_index=True)
    box = reinit_explorer(deltas, order=["freeze 0-3"])
    task_dd, ablation_dd, outer = _reinit_parts(box)
    assert list(ablation_dd.options) == [ALL_ABLATIONS, "freeze 0-3", "reinit 0,1"]
    ner = outer.children[list(task_dd.options).index("ner")]
    placeholder = ner.children[1]  # ner has no "freeze 0-3" runs
    assert isinstance(placeholder, ipywidgets.HTML) and "No runs" in placeholder.value
    assert "freeze 0-3" in placeholder.value and "ner" in placeholder.value
    assert "freeze 0-3" not in _svg_texts(_svg(ner.children[0].value))  # nor in its overview


def test_reinit_explorer_escapes_names():
    deltas = _deltas(tasks=("<pos>",), ablations=("a & b",), seeds=(1, 2))
    box = reinit_explorer(deltas)
    for panel in box.children[1].children[0].children:
        svg = _svg(panel.value)  # parses: the names are escaped
        assert any("a & b" in (t or "") for t in _svg_texts(svg))


def test_reinit_explorer_is_deterministic_and_small():
    deltas = _deltas(tasks=("pos", "ner", "parse"), ablations=GRID_ABLATIONS)
    a, b = reinit_explorer(deltas), reinit_explorer(deltas.copy())
    values = [[p.value for p in inner.children] for inner in a.children[1].children]
    assert values == [[p.value for p in inner.children] for inner in b.children[1].children]
    assert len({v for task in values for v in task}) == 3 * (1 + len(GRID_ABLATIONS))  # all distinct


def test_reinit_explorer_state_of_the_paper_grid_fits_its_budget():
    """Chapter 3's explorer (90 runs: 3 tasks x 3 seeds x 10 configurations) stays small, so the
    chapter's notebook does too; the panels share their Layout and style models."""
    deltas = _deltas(tasks=("pos", "ner", "parse"), ablations=GRID_ABLATIONS)
    box = reinit_explorer(deltas)
    state = _state(box)
    size = len(json.dumps(state))
    assert size < REINIT_GRID_BUDGET, f"widget state is {size} bytes"
    kinds = [m["model_name"] for m in state.values()]
    assert kinds.count("HTMLModel") == 3 * (1 + len(GRID_ABLATIONS))
    assert kinds.count("LayoutModel") <= 6, kinds.count("LayoutModel")
    assert kinds.count("HTMLStyleModel") == 1


def test_role_hex_matches_the_plot_colours():
    from matplotlib.colors import to_hex

    assert {r: to_hex(c) for r, c in ROLE_COLOURS.items()} == ROLE_HEX


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda d: d.iloc[0:0], ValueError, "empty"),
        (lambda d: d.drop(columns=["delta"]), ValueError, r"lacks the columns \['delta'\]"),
        (lambda d: d.drop(columns=["seed", "role"]), ValueError, "lacks the columns"),
        (lambda d: d.assign(role="targets"), ValueError, "'source' or 'target'"),
        (lambda d: d.assign(delta="x"), ValueError, "numeric"),
        (lambda d: d.assign(delta=np.nan), ValueError, "NaN"),
        (lambda d: pd.concat([d, d.iloc[:1]]), ValueError, "more than one row"),
        (lambda d: d.assign(ablation=ALL_ABLATIONS), ValueError, "reserved"),
        (lambda d: d.to_dict(), TypeError, "DataFrame"),
    ],
)
def test_reinit_explorer_rejects_bad_input(mutate, error, message):
    with pytest.raises(error, match=message):
        reinit_explorer(mutate(_deltas(tasks=("pos",), ablations=("reinit 0,1",))))


def test_reinit_explorer_rejects_unknown_order():
    with pytest.raises(ValueError, match="order names ablations with no rows"):
        reinit_explorer(_deltas(), order=["reinit 9,10"])


# --------------------------------------------------------------------------------------------
# Figures sized for the book's column (xlt_utils.plotting)
# --------------------------------------------------------------------------------------------


def _saved_width_px(fig) -> int:
    """Width of the PNG a notebook stores for `fig` (the inline backend saves with a tight box)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    with Image.open(buf) as im:
        return im.size[0]


@pytest.mark.slow
def test_chapter_figures_fit_the_column():
    """The grid's Δ bars (one row per task) and a 13-layer CKA heatmap are made at the column's
    width, so the book shows them unscaled; short ablation names stay horizontal."""
    import matplotlib.pyplot as plt

    from xlt_utils.plotting import plot_cka_heatmap, plot_deltas

    column_px = BOOK_COLUMN_PX
    deltas = _deltas(tasks=("pos", "ner", "parse"), ablations=GRID_ABLATIONS)
    with plt.rc_context({"figure.dpi": FIGURE_DPI}):
        fig = plot_deltas(deltas, order=list(GRID_ABLATIONS[:5]))
        try:
            assert fig.get_size_inches()[0] == pytest.approx(COLUMN_WIDTH_IN)
            # 3 tasks, each with the random encoder's own axis (a twin on the right)
            assert len(fig.axes) == 6 and _saved_width_px(fig) <= column_px
            assert min_text_px(fig) >= MIN_TEXT_PX
            assert all(t.get_rotation() == 0 for t in fig.axes[0].get_xticklabels())
        finally:
            plt.close(fig)
        fig = plot_deltas(deltas)  # 9 names: slanted
        try:
            assert all(t.get_rotation() == 30 for t in fig.axes[0].get_xticklabels())
        finally:
            plt.close(fig)
        heat = plot_cka_heatmap(np.random.default_rng(0).random((6, 13)))
        assert heat.get_size_inches()[0] <= COLUMN_WIDTH_IN and _saved_width_px(heat) <= column_px
        assert min_text_px(heat) >= MIN_TEXT_PX  # the 78 numbers in the cells included


def test_plot_deltas_puts_the_random_encoder_on_its_own_scale():
    """The chapter's Δ bars: the random encoder (40 points down) is on the right-hand axis, so the
    left axis spans the other ablations (2 points down) and their bars are not slivers."""
    import matplotlib.pyplot as plt

    from xlt_utils.plotting import plot_deltas

    deltas = _deltas(tasks=("pos",), ablations=("reinit 1,2", "freeze 0-6", "random-init"))
    deltas.loc[deltas.ablation == "random-init", "delta"] -= 38.0
    with plt.rc_context({"figure.dpi": FIGURE_DPI}):
        fig = plot_deltas(deltas)
    try:
        main, own = fig.axes
        assert [t.get_text() for t in main.get_xticklabels()] == ["reinit 1,2", "freeze 0-6", "random-init"]
        lo, hi = main.get_ylim()
        assert -10 < lo < 0 < hi  # the left axis spans the small losses
        assert own.get_ylim()[0] <= deltas[deltas.ablation == "random-init"].delta.min()
        from matplotlib.container import BarContainer

        bars = [[p for c in ax.containers if isinstance(c, BarContainer) for p in c] for ax in (main, own)]
        assert len(bars[0]) == 2 * 2 and len(bars[1]) == 2  # bars: source, target
        heights = [abs(p.get_height()) / (hi - lo) for p in bars[0]]
        assert min(heights) > 0.15, heights  # about 2 points of a ~6-point axis
        zero_main = -lo / (hi - lo)
        own_lo, own_hi = own.get_ylim()
        assert -own_lo / (own_hi - own_lo) == pytest.approx(zero_main)  # one zero line
        assert min_text_px(fig) >= MIN_TEXT_PX
    finally:
        plt.close(fig)


def test_pair_heatmaps_fit_the_column_with_readable_text():
    import matplotlib.pyplot as plt

    from xlt_utils.ablation import Ablation
    from xlt_utils.plotting import plot_pair_heatmaps

    layers = 6
    pairs = [Ablation("reinit", (i, j)) for i in range(1, layers + 1) for j in range(i + 1, layers + 1)]
    deltas = _deltas(tasks=("pos", "ner"), ablations=pairs, seeds=(1, 2))
    with plt.rc_context({"figure.dpi": FIGURE_DPI}):
        fig = plot_pair_heatmaps(deltas, layers)
    try:
        assert fig.get_size_inches()[0] == pytest.approx(COLUMN_WIDTH_IN)
        assert min_text_px(fig) >= MIN_TEXT_PX
        assert len(fig.axes[0].texts) == layers * (layers - 1) // 2  # each pair's value in its cell
    finally:
        plt.close(fig)


def test_cka_explorer_panels_have_readable_text():
    from xlt_utils.widgets import _check_curves, _cka_figure

    curves = _check_curves(pd.DataFrame(np.random.default_rng(0).random((14, 13)),
                                        index=[f"l{i}" for i in range(14)]))
    for chosen in (None, "l3"):
        fig = _cka_figure(curves, chosen, "CKA", "CKA", (0, 1), (5.6, 3.1))
        assert min_text_px(fig, dpi=DPI) >= MIN_TEXT_PX


def test_column_subplots():
    import matplotlib.pyplot as plt

    fig, axes = column_subplots(3)
    try:
        assert len(axes) == 3 and len(fig.axes) == 3  # 2 x 2 grid, the spare cell removed
        assert tuple(fig.get_size_inches()) == pytest.approx((COLUMN_WIDTH_IN, 2 * 2.6))
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="at least one"):
        column_subplots(0)
