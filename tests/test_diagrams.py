"""The chapters' diagrams (xlt_utils.diagrams): the stored SVGs are what the source draws, the
drawing is deterministic, every chapter has one, and their text is readable in the book."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib
import pytest

from xlt_utils import BRANCH, REPOSITORY, diagrams
from xlt_utils.plotting import BOOK_COLUMN_PX

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / diagrams.FIGURE_DIR
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CSS_PX_PER_PT = 4 / 3  # the SVG's width and height are in pt


@pytest.mark.slow
def test_stored_svgs_are_what_the_source_draws():
    """notebooks/figures/*.svg equal xlt_utils.diagrams' output (else: python -m xlt_utils.diagrams)."""
    assert diagrams.stale(FIGURES) == []
    stored = sorted(p.stem for p in FIGURES.glob("*.svg"))
    assert stored == sorted(diagrams.DIAGRAMS), "SVGs in notebooks/figures/ that no diagram writes"


@pytest.mark.slow
def test_stale_reports_a_changed_file(tmp_path):
    diagrams.write_all(tmp_path)
    assert diagrams.stale(tmp_path) == []
    path = tmp_path / "reinit_freeze.svg"
    path.write_text(path.read_text().replace("</svg>", "<!-- edited --></svg>"))
    (tmp_path / "cka_pipeline.svg").unlink()
    assert diagrams.stale(tmp_path) == ["reinit_freeze", "cka_pipeline"]
    assert diagrams.main(["--check"]) == 0  # the repository's own files are current


@pytest.mark.parametrize("name", list(diagrams.DIAGRAMS))
def test_svg_is_deterministic_and_self_contained(name):
    """Same bytes twice; no date or software tag; text drawn as paths (no font needed to view)."""
    svg = diagrams.render(name)
    assert svg == diagrams.render(name)
    assert "<dc:date>" not in svg and "Matplotlib" not in svg and "matplotlib.org" not in svg
    assert "<text" not in svg and "font-family" not in svg, "text must be drawn as paths"
    width = float(re.search(r'<svg[^>]* width="([0-9.]+)pt"', svg).group(1))
    assert width == pytest.approx(diagrams.WIDTH_IN * diagrams.SVG_DPI)


def test_every_chapter_has_a_diagram():
    chapters = {chapter for chapter, _ in diagrams.DIAGRAMS.values()}
    assert set(CHAPTERS) <= chapters, f"chapters without a diagram: {set(CHAPTERS) - chapters}"
    assert {"00_overview", "03_reinit_ablation", "04_representation_similarity"} <= chapters


@pytest.mark.parametrize("name", list(diagrams.DIAGRAMS))
def test_text_is_readable_in_the_book_and_inside_the_picture(name):
    """Every text is at least MIN_FONT_PT, which is at least 9 CSS px when the SVG is shown in the
    book's narrowest desktop column (BOOK_COLUMN_PX, smaller than its natural width); no text runs
    past the picture's edge."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    natural_px = diagrams.WIDTH_IN * diagrams.SVG_DPI * CSS_PX_PER_PT
    scale = min(1.0, BOOK_COLUMN_PX / natural_px)
    assert diagrams.MIN_FONT_PT * CSS_PX_PER_PT * scale >= 9.0
    with matplotlib.rc_context(diagrams.RC):
        fig = diagrams.DIAGRAMS[name][1]()
        FigureCanvasAgg(fig)
        renderer = fig.canvas.get_renderer()
        texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip() and t.get_visible()]
        assert texts, f"{name}: no text"
        small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < diagrams.MIN_FONT_PT]
        assert not small, f"{name}: text under {diagrams.MIN_FONT_PT} pt: {small}"
        box = fig.bbox
        outside = []
        for t in texts:
            ext = t.get_window_extent(renderer)
            if ext.x0 < box.x0 - 0.5 or ext.y0 < box.y0 - 0.5 or ext.x1 > box.x1 + 0.5 or ext.y1 > box.y1 + 0.5:
                outside.append(t.get_text())
        assert not outside, f"{name}: text past the picture's edge: {outside}"


def test_figure_url_points_at_the_stored_file():
    url = diagrams.figure_url("encoder_predictor")
    assert url == (f"https://raw.githubusercontent.com/{REPOSITORY}/{BRANCH}/"
                   "notebooks/figures/encoder_predictor.svg")
    assert (ROOT / url.split(f"/{BRANCH}/", 1)[1]).is_file()


def test_notebooks_reference_only_existing_diagrams():
    """A diagram address in a chapter's markdown names a stored SVG (the book maps it to that file)."""
    prefix = diagrams.figure_url("")[: -len(".svg")]
    for chapter in CHAPTERS:
        nb = json.loads((ROOT / "notebooks" / f"{chapter}.ipynb").read_text())
        for cell in nb["cells"]:
            source = "".join(cell["source"])
            for name in re.findall(re.escape(prefix) + r"([A-Za-z0-9_]+)\.svg", source):
                assert name in diagrams.DIAGRAMS, f"{chapter}: unknown diagram {name}"


def test_the_lab_diagram_names_the_labs_variants():
    from xlt_utils.lab import VARIANTS

    assert [name for name, _ in diagrams.LAB_VARIANTS] == [v for v in VARIANTS if v != "control"]
