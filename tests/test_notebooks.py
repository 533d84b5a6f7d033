"""Every chapter follows the template, has a parameters cell, and is stored clean."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from xlt_utils.nbtools import is_clean

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_the_chapters_exist_in_order():
    names = [p.stem for p in NOTEBOOKS]
    assert len(names) >= 5 and names == sorted(names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_structure(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    for heading in ("**Question:**", "What you will learn", "**Runtime:**", "## Summary", "## Exercises"):
        assert heading in text, f"{path.name} lacks {heading!r}"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and re.search(r'^profile = "toy"', params[0].source, re.M)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_with_outputs_and_clean_metadata(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert any(c.outputs for c in code), f"{path.name} was committed without outputs"
    assert is_clean(path), f"{path.name} carries run metadata: run `make clean-nb`"
    for c in code:
        for out in c.outputs:
            assert out.get("output_type") != "error", f"{path.name} stores an error"
            blob = str(out.get("text", "")) + str(out.get("data", {}).get("text/plain", ""))
            assert not re.search(r"/(home|root|tmp|work|Users)/\w", blob), f"{path.name} prints a machine path"
            assert "Traceback" not in blob
