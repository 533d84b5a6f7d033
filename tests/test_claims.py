"""The tables that open chapter 0 and the book: what replicates (from verdict values) and where each
part of the paper is rebuilt (every row names a real section of its chapter)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from xlt_utils.nbtools import glue
from xlt_utils.profiles import get_profile
from xlt_utils.verdicts import (
    CLAIMS,
    PAPER,
    PAPER_MAP,
    MissingRuns,
    Verdict,
    evidence_table,
    paper_map,
    replication_table,
    verdicts,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def _verdict(claim, task, outcome, reason=""):
    return Verdict(claim, task, outcome, "effect", 1.0, (0.5, 1.5), "rule", "control", reason)


def test_replication_table_groups_each_claims_verdicts_by_outcome():
    verdicts = [_verdict("C1", "pos", "holds"), _verdict("C1", "ner", "undetermined", "1 seed"),
                _verdict("C1", "parse", "holds"), _verdict("C3", "(pretrained)", "does not hold"),
                _verdict("C5", "pos", "undetermined", "p = 0.2")]
    table = replication_table(verdicts, get_profile("toy"))
    column = "toy profile, seeds 1, 2, 3"
    assert list(table.index) == ["C1", "C2", "C3", "C4", "C5"]
    assert table.loc["C1", column] == "holds (pos, parse); undetermined (ner)"
    assert table.loc["C2", column] == "not tested"
    assert table.loc["C3", column] == "does not hold (pretrained)"
    assert table.loc["C5", column] == "undetermined (pos)"
    assert list(table["statement"]) == list(CLAIMS.values())
    assert list(table["the paper's evidence (mBERT)"]) == [PAPER[c] for c in CLAIMS]


def test_evidence_table_shows_effect_interval_and_control_beside_each_verdict():
    table = evidence_table([_verdict("C1", "pos", "holds"), _verdict("C5", "ner", "undetermined", "p = 0.2")])
    assert list(table.columns) == ["verdict", "effect", "estimate [95% CI]", "control"]
    assert table.loc[("C1", "pos"), "estimate [95% CI]"] == "+1.0 [+0.5, +1.5]"
    assert table.loc[("C5", "ner"), "verdict"] == "undetermined (p = 0.2)"


def _headings(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return [m.group(1) for m in re.finditer(r"^#{1,3} (.+)$", text, flags=re.M)]


def test_every_row_of_the_paper_map_names_a_section_of_its_chapter():
    assert len(paper_map()) == len(PAPER_MAP)
    for chapter, section, _ in PAPER_MAP:
        number = int(chapter.split()[0])
        (notebook,) = NOTEBOOKS.glob(f"{number:02d}_*.ipynb")
        assert any(h.startswith(section) for h in _headings(notebook)), (chapter, section, _headings(notebook))


def test_the_landing_page_pastes_what_chapter_0_glues():
    intro = (ROOT / "book" / "intro.md").read_text()
    pasted = re.findall(r"```\{glue\} (\S+)\n:doc: notebooks/00_overview\.ipynb\n```", intro)
    assert pasted == ["replicates", "evidence", "paper_map"]
    cells = json.loads((NOTEBOOKS / "00_overview.ipynb").read_text())["cells"]
    glued = {o["metadata"]["scrapbook"]["name"]: o for c in cells if c["cell_type"] == "code"
             for o in c.get("outputs", []) if "scrapbook" in o.get("metadata", {})}
    assert set(pasted) <= set(glued)
    html = glued["replicates"]["data"]["text/html"]
    html = "".join(html) if isinstance(html, list) else html
    for claim in CLAIMS:  # the stored table has a verdict for every claim
        assert f"<th>{claim}</th>" in html
    evidence = glued["evidence"]["data"]["text/html"]
    evidence = "".join(evidence) if isinstance(evidence, list) else evidence
    for claim in CLAIMS:  # and the evidence table an effect with its interval for every claim
        assert re.search(rf"<th[^>]*>{claim}</th>.*?<td>[+-][0-9.]+ \[[+-][0-9.]+, [+-][0-9.]+\]</td>", evidence,
                         flags=re.S), claim


def test_glue_shows_the_value_without_myst_nb(monkeypatch):
    shown = []
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import fails, as on Colab
    monkeypatch.setattr("IPython.display.display", lambda value: shown.append(value))
    glue("key", 42)
    assert shown == [42]


def test_glue_stores_the_value_for_the_book(monkeypatch):
    calls = []
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display=True: calls.append((name, value, display)))
    glue("key", 42)
    assert calls == [("key", 42, True)]


def test_verdicts_without_training_name_the_missing_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("XLT_RESULTS_DIR", str(tmp_path))  # an empty store: the grid ships, no fine-tuned model
    with pytest.raises(MissingRuns, match=r"3 of the 30 runs behind the verdicts of the toy profile .* chapter 4 "
                                          r"\(the fine-tuned pos models, seeds 1, 2, 3\)"):
        verdicts(get_profile("toy"), train=False)


def test_cka_curves_has_one_row_per_pair_and_one_column_per_layer():
    import numpy as np
    import torch

    from xlt_utils.similarity import cka_per_layer
    from xlt_utils.verdicts import cka_curves, en_x_curves

    g = torch.Generator().manual_seed(0)
    states = {lang: torch.randn(3, 40, 8, generator=g) for lang in ("en", "fr", "de")}
    curves = en_x_curves(states, "en", ["fr", "de"])
    assert list(curves.index) == ["fr", "de"] and list(curves.columns) == [0, 1, 2]
    assert curves.columns.name == "layer"
    np.testing.assert_allclose(curves.loc["de"], cka_per_layer(states["en"], states["de"]))
    same = cka_curves({"fr": (states["fr"], states["fr"])}, kernel="rbf")
    np.testing.assert_allclose(same.loc["fr"], 1.0)
