"""`python -m xlt_utils.nbtools format`: code cells formatted by ruff to the book's code width."""

from __future__ import annotations

import nbformat

from xlt_utils import nbtools

LONG_CALL = ("result = some_function(first_argument_name=1, second_argument_name=2, "
             "third_argument_name=3)")


def _tiny_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title\n\n" + "x" * 120),
        nbformat.v4.new_code_cell(nbtools.install_cell_source()),
        nbformat.v4.new_code_cell("%pip install -q numpy\nimport numpy as np\nx=np.arange( 3 )"),
        nbformat.v4.new_code_cell(f"def f():\n    {LONG_CALL}\n    !echo hello\n    return result"),
        nbformat.v4.new_code_cell("%%time\nx = [ 1,2 ]"),
        nbformat.v4.new_code_cell("print('a string literal that ruff cannot split, so this line stays longer than the width')"),
        nbformat.v4.new_code_cell("def broken(:\n    pass"),
    ]
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="kept\n")]
    return nb


def test_format_source_fits_the_width_and_keeps_ipython_lines():
    out = nbtools.format_source(f"{LONG_CALL}\n%matplotlib inline\n!ls  -la")
    lines = out.split("\n")
    assert all(len(line) <= nbtools.FORMAT_LINE_LENGTH for line in lines), out
    assert lines[0] == "result = some_function("
    assert "%matplotlib inline" in lines and "!ls  -la" in lines  # verbatim, not touched by ruff
    assert not out.endswith("\n")  # a cell's source has no final newline
    assert nbtools.format_source(out) == out  # idempotent


def test_format_notebook_on_a_tiny_notebook(tmp_path):
    path = tmp_path / "tiny.ipynb"
    nbformat.write(_tiny_notebook(), path)
    stored = path.read_text(encoding="utf-8")
    assert nbtools.main(["format", "--check", str(path)]) == 1  # would change
    assert path.read_text(encoding="utf-8") == stored  # --check writes nothing
    assert nbtools.main(["format", str(path)]) == 0
    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    assert cells[0].source == _tiny_notebook().cells[0].source  # markdown untouched
    assert cells[1].source == nbtools.install_cell_source()  # `badges` owns the install cell
    assert cells[2].source == "%pip install -q numpy\nimport numpy as np\n\nx = np.arange(3)"
    assert cells[2].outputs[0].text == "kept\n"  # outputs kept
    assert "    !echo hello" in cells[3].source.split("\n")
    assert max(len(line) for line in cells[3].source.split("\n")) <= nbtools.FORMAT_LINE_LENGTH
    assert cells[4].source == "%%time\nx = [ 1,2 ]"  # a cell magic is left alone
    assert cells[6].source == "def broken(:\n    pass"  # does not parse: left alone
    # run again: nothing changes; the problems left are reported
    problems = nbtools.format_notebook(nb, name="tiny.ipynb")
    assert nbformat.writes(nb) + "\n" == path.read_text(encoding="utf-8")
    assert any("cell 5 line 2" in p and "> 77" in p for p in problems), problems
    assert any("cell 6: not formatted" in p for p in problems), problems
    assert not any("cell 1" in p or "cell 2" in p or "cell 3" in p for p in problems), problems
