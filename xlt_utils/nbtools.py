"""Notebook hygiene and Colab readiness for the stored chapters.

``clean`` strips execution noise (papermill timings and records) from stored notebooks and keeps
the embedded widget state. Execution counts are kept, numbered 1..N in order: nbval treats a cell
without one as never run.

``badges`` inserts or refreshes, in every chapter, (1) an "Open in Colab" badge in its own markdown
cell right after the title, tagged ``remove-cell`` (the book has its own launch button, and the
badge image is a third-party request), and (2) a first code cell that, on Colab only, installs the
release of this package the notebook belongs to (`xlt_utils.release_ref`: the tag ``v<version>``),
stops with a clear error if pip cannot install it, stops *Run all* if the runtime must restart
(`colab.check_runtime`), and then imports the package as ``xlt``. Both are built from
``xlt_utils.REPOSITORY`` and ``xlt_utils.BRANCH``, so a fork changes those and reruns the command.
Running it twice changes nothing; the outputs of all other cells are kept.

Releasing: set the version (pyproject.toml and ``xlt_utils.__version__``), run ``badges``, commit,
and push the tag ``v<version>``: the chapters of that commit install exactly that tag.

``format`` formats every code cell with ruff (``ruff format``) to the book's code width,
``FORMAT_LINE_LENGTH`` characters (what the book's column holds at 1280 px without a horizontal
scroll bar). IPython lines (``%pip ...``, ``!ls``) are kept as they are; a cell magic
(``%%time``), a cell that does not parse and the Colab install cell (``badges`` writes it) are left
alone. ruff does not split strings or comments:
the lines still longer than the width are listed, to be shortened by hand. Outputs are kept.
``--check`` changes nothing and exits 1 when a cell would change or a line is too long.

Usage: python -m xlt_utils.nbtools clean notebooks/*.ipynb
       python -m xlt_utils.nbtools badges notebooks/*.ipynb
       python -m xlt_utils.nbtools format [--check] notebooks/*.ipynb
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import nbformat

from . import BRANCH, REPOSITORY, REPOSITORY_URL, __version__, release_ref

NOISY_CELL_KEYS = ("execution", "papermill")
# "widgets" holds the embedded ipywidgets state that lets the book render widgets without a kernel.
KEPT_NB_KEYS = ("kernelspec", "language_info", "widgets")

PACKAGE = "xlt-utils"  # the distribution name in pyproject.toml
NOTEBOOK_DIR = "notebooks"  # where the chapters live in the repository
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_TAG = "remove-cell"
SETUP_IMPORT = "import xlt_utils as xlt"
COLAB_GUARD = 'if "google.colab" in sys.modules:'
_BADGE_CELL = re.compile(r"\[!\[Open In Colab\]\([^)]*colab-badge\.svg\)\]\([^)]*\)")


def _number_code_cells(nb: nbformat.NotebookNode) -> None:
    """Number code cells 1..N in order, as a fresh top-to-bottom run numbers them."""
    count = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            count += 1
            cell.execution_count = count if cell.get("outputs") or cell.source.strip() else None
            for out in cell.get("outputs", []):
                if "execution_count" in out:
                    out["execution_count"] = count


def clean_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove per-run metadata (timings, papermill records); keep widget state; number cells 1..N."""
    nb.metadata = nbformat.NotebookNode({k: nb.metadata[k] for k in KEPT_NB_KEYS if k in nb.metadata})
    if "language_info" in nb.metadata:
        nb.metadata.language_info.pop("version", None)
    for cell in nb.cells:
        for key in NOISY_CELL_KEYS:
            cell.metadata.pop(key, None)
        cell.pop("id", None)
    _number_code_cells(nb)
    nb.nbformat, nb.nbformat_minor = 4, 4
    return nb


def is_clean(path: str | Path) -> bool:
    """True when a stored notebook carries no per-run metadata."""
    nb = nbformat.read(path, as_version=4)
    raw = nbformat.writes(nb)
    return nbformat.writes(clean_notebook(nbformat.reads(raw, as_version=4))) == raw


def colab_url(notebook: str) -> str:
    """The Colab address of a stored chapter, e.g. ``colab_url("00_overview.ipynb")``."""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/{NOTEBOOK_DIR}/{notebook}"


def badge_markdown(notebook: str) -> str:
    """The markdown of the "Open in Colab" badge of a chapter."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook)})"


def install_spec(version: str = __version__) -> str:
    """What pip installs on Colab: this package at the release of `version` (`release_ref`)."""
    return f"{PACKAGE} @ git+{REPOSITORY_URL}@{release_ref(version)}"


def install_cell_source() -> str:
    """The first code cell of every chapter: on Colab only (a no-op elsewhere), install the package,
    say whether the runtime must restart (transformers upgraded after it was imported), and, if the
    learner asks for it, keep the cache on Google Drive so that a grid resumes after a disconnect."""
    return "\n".join([
        "import sys",
        "",
        "# On Colab, True keeps results on Google Drive (resumes after a disconnect)",
        "cache_on_drive = False",
        "drive = None",
        "",
        "# On Colab only: install the release of this tutorial's package that this",
        "# notebook belongs to (Colab's torch is kept; transformers becomes 5.x), and",
        "# stop if pip fails or if the runtime must restart first.",
        COLAB_GUARD,
        "    import subprocess",
        "",
        f'    XLT = "{install_spec()}"',
        '    pip = [sys.executable, "-m", "pip", "install", "-q", XLT]',
        "    done = subprocess.run(pip, capture_output=True, text=True)",
        "    if done.returncode:",
        '        why = "is the runtime online, and does the release exist?"',
        '        raise RuntimeError(f"pip could not install {XLT}: {why}\\n"',
        '                           + done.stderr)',
        "    from xlt_utils.colab import check_runtime, use_google_drive",
        "",
        f'    check_runtime("{__version__}")  # raises if the runtime must restart',
        "    if cache_on_drive:",
        "        drive = use_google_drive()  # settings for setup_chapter",
        "",
        SETUP_IMPORT,
    ])


def _new_cell(nb: nbformat.NotebookNode, cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    if (nb.nbformat, nb.nbformat_minor) < (4, 5):  # cell ids exist from nbformat 4.5 on
        cell.pop("id", None)
    return cell


def _is_badge_cell(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "markdown" and bool(_BADGE_CELL.fullmatch(cell.source.strip()))


def _is_install_cell(cell: nbformat.NotebookNode) -> bool:
    src = cell.source.strip()
    return cell.cell_type == "code" and ("google.colab" in src or src == SETUP_IMPORT)


def add_badges(nb: nbformat.NotebookNode, notebook: str) -> nbformat.NotebookNode:
    """Insert or refresh the badge cell (after the title) and the guarded-install first code cell."""
    if not nb.cells or nb.cells[0].cell_type != "markdown" or not nb.cells[0].source.startswith("# "):
        raise ValueError(f"{notebook}: the first cell must be the markdown title ('# ...')")
    nb.cells = [c for c in nb.cells if not _is_badge_cell(c)]
    badge = nbformat.v4.new_markdown_cell(badge_markdown(notebook), metadata={"tags": [BADGE_TAG]})
    nb.cells.insert(1, _new_cell(nb, badge))

    first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    if first < len(nb.cells) and _is_install_cell(nb.cells[first]):
        cell = nb.cells[first]
        cell.source = install_cell_source()
        cell.outputs = []
        cell.metadata.setdefault("tags", [])
    else:
        cell = nbformat.v4.new_code_cell(install_cell_source(), metadata={"tags": []})
        nb.cells.insert(first, _new_cell(nb, cell))
    _number_code_cells(nb)
    return nb


def glue(name: str, value) -> None:
    """Show `value` in the notebook and store it under `name` for the book (MyST-NB's glue), so
    that another page pastes this very output (the landing page pastes chapter 0's tables). Where
    MyST-NB is not installed (Colab), the value is only shown."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        from IPython.display import display

        display(value)
    else:
        myst_glue(name, value, display=True)


#: The book's code width: characters of a code line that fit its column at 1280 px.
FORMAT_LINE_LENGTH = 77
_IPYTHON_LINE = re.compile(r"^(?P<indent>[ \t]*)(?P<line>[%!].*)$")
_PLACEHOLDER = "_xlt_ipython_line_{}()"


class CellFormatError(ValueError):
    """ruff could not format a cell (its source does not parse as Python)."""


def format_source(source: str, line_length: int = FORMAT_LINE_LENGTH) -> str:
    """One code cell's source formatted by ruff at `line_length`, IPython lines kept verbatim."""
    if source.lstrip().startswith("%%") or not source.strip():
        return source  # a cell magic: not Python
    lines, kept = [], []
    for line in source.split("\n"):
        m = _IPYTHON_LINE.match(line)
        if m:
            lines.append(m["indent"] + _PLACEHOLDER.format(len(kept)))
            kept.append(m["line"])
        else:
            lines.append(line)
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--line-length", str(line_length),
         "--stdin-filename", "cell.py", "-"],
        input="\n".join(lines), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CellFormatError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "ruff failed")
    out = proc.stdout.rstrip("\n")
    for k, line in enumerate(kept):
        out = re.sub(rf"^([ \t]*){re.escape(_PLACEHOLDER.format(k))}$", lambda m, line=line: m[1] + line,
                     out, count=1, flags=re.M)
    return out


def format_notebook(nb: nbformat.NotebookNode, line_length: int = FORMAT_LINE_LENGTH,
                    name: str = "") -> list[str]:
    """Format every code cell in place; return the problems left (cells that do not parse, lines
    still longer than `line_length`), one line each."""
    problems = []
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if _is_install_cell(cell):  # written by `badges` (install_cell_source): left as it is
            continue
        try:
            cell.source = format_source(cell.source, line_length)
        except CellFormatError as exc:
            problems.append(f"{name} cell {k}: not formatted ({exc})")
            continue
        for n, line in enumerate(cell.source.split("\n"), start=1):
            if len(line) > line_length:
                problems.append(f"{name} cell {k} line {n}: {len(line)} > {line_length} characters: "
                                f"{line.strip()[:60]}")
    return problems


def _format_command(paths: list[str]) -> int:
    check = "--check" in paths
    paths = [p for p in paths if p != "--check"]
    status = 0
    for p in paths:
        before = Path(p).read_text(encoding="utf-8")
        nb = nbformat.read(p, as_version=4)
        problems = format_notebook(nb, name=Path(p).name)
        buf = io.StringIO()
        nbformat.write(nb, buf)
        after = buf.getvalue()
        for line in problems:
            print(line)
        status |= bool(problems)
        if after != before:
            if check:
                print(f"format: {p} would change")
                status = 1
            else:
                Path(p).write_text(after, encoding="utf-8")
                print(f"format: updated {p}")
    return status if check else 0


def main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] not in ("clean", "badges", "format"):
        print(__doc__)
        return 2
    command, paths = argv[0], argv[1:]
    if command == "format":
        return _format_command(paths)
    for p in paths:
        before = Path(p).read_text(encoding="utf-8")
        nb = nbformat.read(p, as_version=4)
        nb = clean_notebook(nb) if command == "clean" else add_badges(nb, Path(p).name)
        buf = io.StringIO()
        nbformat.write(nb, buf)
        after = buf.getvalue()
        if after != before:
            Path(p).write_text(after, encoding="utf-8")
            if command == "badges":
                print(f"badges: updated {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

