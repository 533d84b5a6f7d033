"""`make lab`: JupyterLab on 127.0.0.1 over notebooks/, with the chapters' kernel from the project's venv.

The test runs `make lab` itself (a free port, no browser, a random token, no port retries) with the
environment it runs in as VENV, and `-o $(VENV)/.installed` so that make never reinstalls: `make test`
has just installed it, and a run from another venv must not rebuild .venv. It waits until
http://127.0.0.1:<port>/lab answers over loopback, checks that the page is JupyterLab's, that the
server lists the chapters and offers their kernel, opens chapter 0 as the lab does (a session with
the notebook's kernelspec) and checks the kernel is the venv's python running in notebooks/, then
stops the server with SIGTERM and checks that make, the server and the kernel have all exited.
Jupyter's config, runtime, settings and workspace folders go to a temporary folder.

jupyterlab is in the dev extras (pyproject.toml; pinned in constraints.txt), so it is required here.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb"))
VENV = Path(sys.prefix)
START_TIMEOUT_S = 120  # JupyterLab's first start on a slow two-core CI machine
KERNEL_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(log: Path, n: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-n:]) if log.exists() else ""


class _Lab:
    """HTTP to the server under test: loopback only, never via a proxy, with its token."""

    def __init__(self, port: int, token: str):
        self.base = f"http://127.0.0.1:{port}"
        self.headers = {"Authorization": f"token {token}"}
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, path: str, method: str = "GET", body: dict | None = None) -> tuple[int, str]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=self.headers)
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, resp.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode("utf-8", errors="replace")

    def json(self, path: str, method: str = "GET", body: dict | None = None):
        status, text = self.request(path, method, body)
        assert 200 <= status < 300, f"{method} {path}: HTTP {status}: {text[:500]}"
        return json.loads(text) if text else None


def _stop(proc: subprocess.Popen, started: dict[int, psutil.Process]) -> list[str]:
    """SIGTERM to make's process group (make and the server), then SIGKILL to whatever of it, or of
    the processes seen under it (a kernel has its own session), is still alive. Returns those."""
    try:
        started.update({p.pid: p for p in psutil.Process(proc.pid).children(recursive=True)})
    except psutil.NoSuchProcess:
        pass
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    _, alive = psutil.wait_procs(list(started.values()), timeout=STOP_TIMEOUT_S)
    left = []
    for p in alive:
        try:
            left.append(" ".join(p.cmdline()))
            p.kill()
        except psutil.NoSuchProcess:
            pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        left.append(" ".join(proc.args))
    return left


def _kernel_process(proc: subprocess.Popen, started: dict[int, psutil.Process]) -> psutil.Process:
    deadline = time.monotonic() + KERNEL_TIMEOUT_S
    while time.monotonic() < deadline:
        for p in psutil.Process(proc.pid).children(recursive=True):
            started[p.pid] = p
            try:
                if "ipykernel_launcher" in p.cmdline():
                    return p
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.5)
    raise AssertionError(f"no kernel process under `make lab` after {KERNEL_TIMEOUT_S} s")


@pytest.mark.slow
def test_make_lab_serves_the_chapters_on_loopback_with_the_venvs_kernel(tmp_path):
    try:
        import jupyterlab
    except ImportError:
        pytest.fail("jupyterlab is missing: it is in the dev extras (pip install -e '.[dev]')")
    assert (VENV / "bin" / "jupyter").exists(), f"no jupyter in {VENV}/bin: run the tests from the project's venv"
    assert shutil.which("make"), "make is needed (README: python3 and make)"
    assert len(NOTEBOOKS) >= 5, NOTEBOOKS

    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    for var, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces")]:
        env[var] = str(tmp_path / sub)
    args = f"--no-browser --ServerApp.port_retries=0 --IdentityProvider.token={token}"
    if os.geteuid() == 0:  # a CI container: jupyter refuses root without it
        args += " --allow-root"
    cmd = ["make", "--no-print-directory", "-o", f"{VENV}/.installed", "lab", f"VENV={VENV}",
           f"LAB_PORT={port}", f"LAB_ARGS={args}"]
    log = tmp_path / "lab.log"
    lab = _Lab(port, token)
    started: dict[int, psutil.Process] = {}
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # /lab answers over loopback
        t0, status, page = time.monotonic(), None, ""
        while time.monotonic() - t0 < START_TIMEOUT_S:
            assert proc.poll() is None, f"`make lab` exited with {proc.returncode}:\n{_tail(log)}"
            try:
                status, page = lab.request("/lab")
            except OSError:  # not listening yet
                status = None
            if status == 200:
                break
            time.sleep(0.5)
        waited = time.monotonic() - t0
        assert status == 200, f"/lab: {status} after {waited:.0f} s:\n{_tail(log)}"
        print(f"JupyterLab {jupyterlab.__version__} answered /lab after {waited:.1f} s")
        assert "jupyter-config-data" in page and "JupyterLab" in page, page[:500]
        config = json.loads(page.split('id="jupyter-config-data"', 1)[1].split(">", 1)[1].split("</script>", 1)[0])
        assert config["appVersion"] == jupyterlab.__version__

        # bound to loopback only
        conns = [c for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
                 for c in (getattr(p, "net_connections", None) or p.connections)(kind="inet")  # psutil < 6
                 if c.status == psutil.CONN_LISTEN]
        assert conns and {c.laddr.ip for c in conns} == {"127.0.0.1"}, conns

        # the server's root is notebooks/: it lists the chapters, and offers their kernel
        listed = {item["name"] for item in lab.json("/api/contents")["content"]}
        assert {nb.name for nb in NOTEBOOKS} <= listed, listed
        specs = lab.json("/api/kernelspecs")
        assert specs["default"] == "python3", specs["default"]
        names = {json.loads(nb.read_text())["metadata"]["kernelspec"]["name"] for nb in NOTEBOOKS}
        assert names == {"python3"} and names <= set(specs["kernelspecs"]), (names, specs["kernelspecs"])

        # open chapter 0 as the lab does: its kernel is the venv's python, in notebooks/
        session = lab.json("/api/sessions", "POST", {
            "path": NOTEBOOKS[0].name, "type": "notebook", "name": NOTEBOOKS[0].name,
            "kernel": {"name": "python3"}})
        kernel = _kernel_process(proc, started)
        argv0 = Path(kernel.cmdline()[0])
        assert argv0.parent.resolve() == (VENV / "bin").resolve(), f"the chapters' kernel runs {argv0}, not {VENV}'s python"
        assert Path(kernel.cwd()).resolve() == (ROOT / "notebooks").resolve(), kernel.cwd()
        lab.json(f"/api/sessions/{session['id']}", "DELETE")
    finally:
        left = _stop(proc, started)
    assert not left, f"still running after SIGTERM and {STOP_TIMEOUT_S} s: {left}\n{_tail(log)}"
    assert proc.returncode is not None
