"""Every chapter follows the template, runs on Colab, has a parameters cell, and is stored clean."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import tomllib
import torch

import xlt_utils
from xlt_utils import nbtools
from xlt_utils.chapter import describe_device
from xlt_utils.nbtools import is_clean

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
HEADINGS = ("**Question:**", "What you will learn", "**Runtime:**", "## Summary", "## Exercises")
BADGE = re.compile(r"^\[!\[Open In Colab\]\((?P<img>[^)]+)\)\]\((?P<url>[^)]+)\)$")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _code_index(nb, predicate) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and predicate(c))


def test_the_chapters_exist_in_order():
    names = [p.stem for p in NOTEBOOKS]
    assert len(names) >= 5 and names == sorted(names)


def test_pyproject_repository_url_is_the_package_constant():
    assert _pyproject()["urls"]["Repository"] == xlt_utils.REPOSITORY_URL
    assert xlt_utils.REPOSITORY_URL == f"https://github.com/{xlt_utils.REPOSITORY}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_structure(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    for heading in HEADINGS:
        assert heading in text, f"{path.name} lacks {heading!r}"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and re.search(r'^profile = "toy"', params[0].source, re.M)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_badge_right_after_the_title(path):
    nb = nbformat.read(path, as_version=4)
    cell = nb.cells[1]
    assert cell.cell_type == "markdown", f"{path.name}: cell 2 must be the Colab badge"
    m = BADGE.match(cell.source.strip())
    assert m, f"{path.name}: cell 2 is not an 'Open in Colab' badge: {cell.source!r}"
    assert m["img"] == "https://colab.research.google.com/assets/colab-badge.svg"
    repo, branch = xlt_utils.REPOSITORY, xlt_utils.BRANCH
    expected = f"https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/{path.name}"
    assert m["url"] == expected, f"{path.name}: the badge opens {m['url']}"
    # The book has its own launch button, and its offline test blocks the badge image.
    assert "remove-cell" in cell.metadata.get("tags", [])
    badges = [c for c in nb.cells if "colab-badge.svg" in c.source]
    assert badges == [cell], f"{path.name} has more than one Colab badge"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_installs_on_colab_only(path):
    nb = nbformat.read(path, as_version=4)
    first = _code_index(nb, lambda c: True)
    cell = nb.cells[first]
    lines = cell.source.splitlines()
    guard = lines.index('if "google.colab" in sys.modules:')
    assert "import sys" in lines[:guard]
    # The pip install of this package's release from the constant repository, under the guard.
    spec = f"{_pyproject()['name']} @ git+{xlt_utils.REPOSITORY_URL}@{xlt_utils.release_ref()}"
    body = [ln for ln in lines[guard + 1:] if ln.startswith((" ", "\t"))]
    assert f'    XLT = "{spec}"' in body, cell.source
    code = [ln for ln in lines if not ln.lstrip().startswith("#")]
    assert not any("pip" in ln for ln in code if ln not in body), "an unguarded install"
    # Nothing else may install torch: the package's torch>=2.4 keeps Colab's build.
    assert "torch" not in "\n".join(body)
    assert "import xlt_utils as xlt" in lines[guard + 1:]
    assert cell.outputs == [], f"{path.name}: the install cell must print nothing outside Colab"
    # Order: install + import, then the parameters (papermill injects after them), then setup.
    params = _code_index(nb, lambda c: "parameters" in c.metadata.get("tags", []))
    setup = _code_index(nb, lambda c: "setup_chapter(" in c.source)
    assert first < params < setup


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_badges_command_is_a_no_op_on_the_stored_chapters(path, tmp_path, capsys):
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    assert nbtools.main(["badges", str(copy)]) == 0
    assert copy.read_bytes() == path.read_bytes()
    assert capsys.readouterr().out == ""


def test_badges_command_builds_the_cells_once_and_keeps_the_rest(tmp_path, capsys):
    stored = NOTEBOOKS[0]
    nb = nbformat.read(stored, as_version=4)
    # The chapter as it was before the command: no badge, a bare import as first code cell.
    del nb.cells[1]
    first = _code_index(nb, lambda c: True)
    nb.cells[first].source = "import xlt_utils as xlt"
    copy = tmp_path / stored.name
    nbformat.write(nb, copy)
    assert copy.read_bytes() != stored.read_bytes()

    assert nbtools.main(["badges", str(copy)]) == 0
    assert "updated" in capsys.readouterr().out
    assert copy.read_bytes() == stored.read_bytes()  # every other cell and output is kept
    assert nbtools.main(["badges", str(copy)]) == 0
    assert copy.read_bytes() == stored.read_bytes() and capsys.readouterr().out == ""
    assert is_clean(copy)


def test_badges_command_refreshes_a_stale_badge_and_inserts_a_missing_install(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.nbformat_minor = 4
    nb.cells = [nbformat.v4.new_markdown_cell("# 9. A chapter"),
                nbformat.v4.new_markdown_cell("[![Open In Colab](https://colab.research.google.com/assets/"
                                              "colab-badge.svg)](https://colab.research.google.com/github/"
                                              "someone/fork/blob/dev/notebooks/old.ipynb)"),
                nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.v4.new_output("stream", text="1\n")])]
    for c in nb.cells:
        c.pop("id")
    path = tmp_path / "09_chapter.ipynb"
    nbformat.write(nb, path)
    nbtools.main(["badges", str(path)])
    once = path.read_bytes()
    nbtools.main(["badges", str(path)])
    assert path.read_bytes() == once
    out = nbformat.read(path, as_version=4)
    assert [c.cell_type for c in out.cells] == ["markdown", "markdown", "code", "code"]
    assert out.cells[1].source == nbtools.badge_markdown("09_chapter.ipynb")
    assert "/someone/fork/" not in out.cells[1].source and "remove-cell" in out.cells[1].metadata.tags
    assert "google.colab" in out.cells[2].source and out.cells[2].execution_count == 1
    assert out.cells[3].source == "x = 1" and out.cells[3].outputs[0].text == "1\n"
    assert out.cells[3].execution_count == 2
    with pytest.raises(ValueError, match="title"):
        nbtools.add_badges(nbformat.v4.new_notebook(), "empty.ipynb")


def _sanitize_patterns() -> list[tuple[str, str]]:
    text = (ROOT / "notebooks" / "nbval_sanitize.cfg").read_text()
    return re.findall(r"^regex: (.*)$\n^replace: (.*)$", text, flags=re.M)  # as nbval reads it


def _masked(line: str) -> str:
    for regex, replace in _sanitize_patterns():
        line = re.sub(regex, replace, line)
    return line


def test_device_line_says_what_to_expect_and_is_masked_on_cpu_and_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = describe_device()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA Test GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # says True on a T4 too
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (7, 5))  # a T4
    monkeypatch.delenv("XLT_PRECISION", raising=False)
    gpu = describe_device()
    assert "fp16 autocast + GradScaler" in gpu and "bf16" not in gpu, gpu
    assert cpu.startswith("CPU only: ") and gpu.startswith("GPU: NVIDIA Test GPU")
    for line in (cpu, gpu):
        assert "\n" not in line and "toy" in line and "quick" in line and "full" in line
        assert _masked(line) == "<DEVICE>", f"nbval would compare {line!r}"
    assert "full profile needs a GPU" in cpu
    assert describe_device() == gpu  # deterministic on one machine
    assert _masked("versions: torch 9.9, transformers 9.9") == _masked("versions: torch 1.0, transformers 1.0")


def test_readme_chapter_table_has_every_chapter_with_its_colab_badge():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Chapters"):].split("\n\n")[1].splitlines()
    rows = table[2:]
    assert len(rows) == len(NOTEBOOKS)
    for row, path in zip(rows, NOTEBOOKS, strict=True):
        assert f"(notebooks/{path.name})" in row
        assert nbtools.badge_markdown(path.name) in row, f"README: stale Colab badge for {path.name}"
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 6 and all(cells), f"README row for {path.name} lacks a column: {row}"


def test_every_stored_figure_is_an_image():
    """A figure stored only as its text ("<Figure size ...>") is missing from the chapter and the book."""
    missing = []
    for path in NOTEBOOKS:
        for i, cell in enumerate(json.loads(path.read_text()).get("cells", [])):
            for out in cell.get("outputs", []):
                data = out.get("data", {})
                if "<Figure size" in "".join(data.get("text/plain", [])) and not any(k.startswith("image/") for k in data):
                    missing.append(f"{path.name} cell {i}")
    assert not missing, f"figures stored as text, without an image: {missing}"
