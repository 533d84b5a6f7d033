"""The repository's install files agree with each other."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = meta["dependencies"] + meta["optional-dependencies"]["dev"]
    return {_name(r): r.replace(" ", "") for r in reqs}


def _environment() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {_name(r): r.replace(" ", "") for r in pip if not r.startswith("-e")}


def test_environment_and_pyproject_list_the_same_dependencies():
    py, env = _pyproject(), _environment()
    assert set(py) == set(env), f"only in pyproject: {set(py) - set(env)}; only in environment.yml: {set(env) - set(py)}"
    for name in py:
        if name != "torch":
            assert py[name] == env[name], f"{name}: pyproject {py[name]!r} vs environment.yml {env[name]!r}"


def test_torch_is_a_range_for_the_package_and_pinned_for_this_repository():
    assert _pyproject()["torch"].startswith("torch>="), "the package must install beside Colab's torch"
    assert _environment()["torch"] == "torch==2.13.0"
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()
    assert "torch==2.13.0" in (ROOT / "Makefile").read_text()


def test_every_pin_in_constraints_is_a_dependency_within_its_range():
    py = _pyproject()
    pins = [Requirement(line) for line in (ROOT / "constraints.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert {_name(p.name) for p in pins} >= {"torch", "jupyterlab"}
    for pin in pins:
        name = _name(pin.name)
        assert name in py, f"constraints.txt pins {name}, which pyproject.toml does not ask for"
        (version,) = [s.version for s in pin.specifier if s.operator == "=="]
        assert Requirement(py[name]).specifier.contains(version), f"{pin} is outside {py[name]!r}"


def test_jupyterlab_is_a_dev_dependency_and_make_lab_is_documented():
    assert "jupyterlab" in _pyproject() and "jupyterlab" in _environment()
    assert "\nlab: install\n" in (ROOT / "Makefile").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "## Open the chapters" in readme and "make lab" in readme


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make tutorial" in readme
    assert "make test" in ci and "XLT_REQUIRE_SHARED_DATA=1" in ci
