"""The package's import graph, read from its source: layered, without a circle, without an import
hidden in a function, and with the environment read in one module only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xlt_utils"

#: The package's layers, bottom up: a module imports from its own layer or from those below, never
#: from above. A new module is placed here (the test fails until it is).
LAYERS = (
    ("foundation", {"", "settings", "files", "languages", "metrics"}),
    ("data", {"data", "data.records", "data.conllu_io", "data.iob2", "data.download", "data.pud", "data.real",
              "data.synthetic"}),
    ("parts", {"profiles", "precision", "store", "parsing", "tokenization", "models", "batching", "similarity",
               "ablation"}),
    ("training and evaluation", {"training", "evaluation", "pretraining", "pretrained"}),
    ("experiments", {"experiments", "budget", "standin"}),
    ("analysis and figures", {"analysis", "plotting", "widgets", "nbtools", "diagrams"}),
    ("grids and claims", {"sweep", "verdicts", "lab"}),
    ("chapters", {"chapter", "colab"}),
)
RANK = {module: rank for rank, (_, modules) in enumerate(LAYERS) for module in modules}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return out


def _targets(module: str, node: ast.AST, known: set[str]) -> list[str]:
    """The package modules an import statement of `module` reaches ("" is the package itself)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names if a.name == "xlt_utils" or a.name.startswith("xlt_utils.")]
        return [n.removeprefix("xlt_utils").lstrip(".") for n in names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level == 0:
        if not (node.module or "").startswith("xlt_utils"):
            return []
        base = node.module.removeprefix("xlt_utils").lstrip(".")
    else:
        here = module.split(".") if module else []
        is_package = module in ("", "data")
        parent = here if is_package else here[:-1]
        parent = parent[: len(parent) - (node.level - 1)]
        base = ".".join(parent + ([node.module] if node.module else []))
    out = []
    for alias in node.names:  # `from . import settings` imports a module; `from .x import f` the module x
        sub = f"{base}.{alias.name}" if base else alias.name
        out.append(sub if sub in known else base)
    return out


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    modules = _modules()
    known = set(modules)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    hidden = []
    for name, tree in modules.items():
        for node in ast.walk(tree):
            targets = [t for t in _targets(name, node, known) if t != name]
            edges[name].update(targets)
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                hidden += [f"{name}.{fn.name} imports {t}" for node in ast.walk(fn)
                           for t in _targets(name, node, known)]
    return edges, hidden


def test_every_module_has_a_layer():
    assert sorted(set(_modules()) - set(RANK)) == [], "place the new module in LAYERS"
    assert sorted(set(RANK) - set(_modules())) == [], "LAYERS names a module that does not exist"


@pytest.mark.slow
def test_no_import_goes_up_a_layer():
    edges, _ = _graph()
    upward = [f"{m or 'xlt_utils'} ({LAYERS[RANK[m]][0]}) -> {t} ({LAYERS[RANK[t]][0]})"
              for m, targets in edges.items() for t in targets if RANK[t] > RANK[m]]
    assert upward == []


def test_the_import_graph_has_no_circle():
    edges, _ = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges[m]):
            assert state.get(t) != 1, "import circle: " + " -> ".join([*path, m, t])
            if t not in state:
                visit(t, [*path, m])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [])


@pytest.mark.slow
def test_no_function_hides_an_import_of_the_package():
    _, hidden = _graph()
    assert hidden == []


def test_the_environment_is_read_in_the_settings_module_only():
    readers = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
                    isinstance(node.value, ast.Name) and node.value.id == "os" and name != "settings":
                readers.append(f"{name}:{node.lineno}")
    assert readers == []


def test_the_checks_see_a_circle_and_a_hidden_import(tmp_path):
    """The graph reader itself: a function-level import and an upward edge are found."""
    tree = ast.parse("def f():\n    from .verdicts import verdicts\n")
    fn = tree.body[0]
    assert _targets("store", fn.body[0], {"verdicts", "store"}) == ["verdicts"]
    assert RANK["verdicts"] > RANK["store"]  # so store -> verdicts would be an upward edge
