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


def _lock_module():
    """requirements/environment.py, which reads the lock for `make lock` (not a package module)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("lock_environment", ROOT / "requirements" / "environment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lock() -> dict[str, str]:
    """The lock's pins: normalised name -> version (hash lines and comments left out)."""
    return {_name(pin.split("==")[0]): pin.split("==")[1] for pin in _lock_module().locked_pins()}


def test_every_locked_package_has_hashes():
    text = (ROOT / "requirements" / "lock.txt").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text[text.index("\n", text.index("make lock")) + 1:])
    assert len(entries) == len(_lock()) > 100
    for entry in entries:
        assert "--hash=sha256:" in entry, f"no hash in the lock for {entry.splitlines()[0]}"


def test_the_lock_satisfies_every_range_of_pyproject():
    """Every dependency of the package and of its dev and ray extras is locked, inside its range."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = _lock()
    for req in map(Requirement, meta["dependencies"] + meta["optional-dependencies"]["dev"]
                   + meta["optional-dependencies"]["ray"]):
        name = _name(req.name)
        assert name in lock, f"{name} is not in requirements/lock.txt: run make lock"
        assert req.specifier.contains(lock[name], prereleases=True), f"lock has {name}=={lock[name]}, outside {req}"


def test_the_environment_is_exactly_the_lock():
    """What `make install` put in this environment is the lock, package for package (`pip freeze`
    equals the lock, apart from pip and this package itself)."""
    import sysconfig
    from importlib.metadata import distributions

    # the environment's own site-packages, as `pip freeze` in a fresh process sees it (an imported ray
    # puts its bundled ray/thirdparty_files, with colorama, on sys.path)
    site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    installed = {_name(d.metadata["Name"]): d.version for d in distributions(path=site)}
    installed.pop("pip", None), installed.pop("xlt-utils", None)
    lock = _lock()
    assert installed == lock, (f"not locked: {sorted(set(installed) - set(lock))}; missing: "
                               f"{sorted(set(lock) - set(installed))}; other versions: "
                               f"{sorted(n for n in set(lock) & set(installed) if lock[n] != installed[n])}")


def test_environment_yml_is_written_from_the_lock():
    assert (ROOT / "environment.yml").read_text() == _lock_module().environment_yml(), "run make lock"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pins = {_name(r): r.split("==")[1] for r in pip if "==" in r}
    assert pins == _lock()


def test_torch_is_a_range_for_the_package_and_pinned_for_this_repository():
    assert _pyproject()["torch"].startswith("torch>="), "the package must install beside Colab's torch"
    assert _lock()["torch"] == "2.13.0+cpu", "this repository's install is torch's CPU build"
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()


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
        assert _lock()[name].split("+")[0] == version, f"the lock has {name}=={_lock()[name]}, constraints {pin}"


def test_jupyterlab_is_a_dev_dependency_and_make_lab_is_documented():
    assert "jupyterlab" in _pyproject() and "jupyterlab" in _lock()
    assert "\nlab: install\n" in (ROOT / "Makefile").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "## Open the chapters" in readme and "make lab" in readme


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make tutorial" in readme
    assert "make test" in ci and "XLT_REQUIRE_SHARED_DATA=1" in ci
