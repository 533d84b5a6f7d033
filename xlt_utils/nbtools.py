"""Notebook hygiene: strip execution noise (papermill timings and records) from stored notebooks.

Execution counts are kept, numbered 1..N in order: nbval treats a cell without one as never run.

Usage: python -m xlt_utils.nbtools clean notebooks/*.ipynb
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

NOISY_CELL_KEYS = ("execution", "papermill")
# "widgets" holds the embedded ipywidgets state that lets the book render widgets without a kernel.
KEPT_NB_KEYS = ("kernelspec", "language_info", "widgets")


def clean_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove per-run metadata (timings, papermill records); keep widget state; number cells 1..N."""
    nb.metadata = nbformat.NotebookNode({k: nb.metadata[k] for k in KEPT_NB_KEYS if k in nb.metadata})
    if "language_info" in nb.metadata:
        nb.metadata.language_info.pop("version", None)
    count = 0
    for cell in nb.cells:
        for key in NOISY_CELL_KEYS:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":  # numbered in order, as a fresh top-to-bottom run numbers them
            count += 1
            cell.execution_count = count if cell.get("outputs") or cell.source.strip() else None
            for out in cell.get("outputs", []):
                if "execution_count" in out:
                    out["execution_count"] = count
        cell.pop("id", None)
    nb.nbformat, nb.nbformat_minor = 4, 4
    return nb


def is_clean(path: str | Path) -> bool:
    """True when a stored notebook carries no per-run metadata."""
    nb = nbformat.read(path, as_version=4)
    raw = nbformat.writes(nb)
    return nbformat.writes(clean_notebook(nbformat.reads(raw, as_version=4))) == raw


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "clean":
        print(__doc__)
        return 2
    for p in argv[1:]:
        nb = clean_notebook(nbformat.read(p, as_version=4))
        nbformat.write(nb, p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
