"""The Jupyter Book site, built from book/ and opened page by page in a real headless Chromium.

The book is built once per session into a temporary folder, exactly as `make book` builds it
(stored notebook outputs, warnings are errors), served with http.server on 127.0.0.1 and opened
with Playwright driving the system Chromium (/usr/bin/chromium: `playwright install` is not needed).
On every page of the table of contents: no console or page errors, every image loaded, the
notebook figures and tables present, no traceback text. Screenshots go to test-artifacts/.

Without Chromium or the `playwright` package the browser tests skip; XLT_REQUIRE_BROWSER=1 (CI)
turns the skip into a failure.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("XLT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
BUILD_TIMEOUT_S = 180

# Third-party hosts the built pages may request. The test aborts these requests on every machine
# (so the result does not depend on the network) and ignores the console errors that follow; a
# request to any other non-local host fails the test.
ALLOWED_THIRD_PARTY = {
    "cdn.jsdelivr.net": "MathJax 3, loaded by sphinx.ext.mathjax on pages with math",
}
TRACEBACK = "Traceback (most recent call last)"
# Screenshots (under test-artifacts/): the landing page, every chapter (full page) and, for a
# chapter with figures, the viewport at its first figure.
LANDING_SCREENSHOT = "book-landing.png"


def _toc_docnames() -> list[str]:
    """The documents of book/_toc.yml, in reading order (root first)."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return names


DOCNAMES = _toc_docnames()


def _expected_outputs(docname: str) -> tuple[int, bool]:
    """(image outputs, whether some HTML output is a table) stored in the page's notebook."""
    path = BOOK / f"{docname}.ipynb"
    if not path.exists():
        return 0, False
    nb = json.loads(path.read_text())
    images, table = 0, False
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            images += any(k.startswith("image/") for k in data)
            html = data.get("text/html", "")
            table |= "<table" in ("".join(html) if isinstance(html, list) else html)
    return images, table


def _jupyter_book() -> str:
    exe = Path(sys.executable).with_name("jupyter-book")
    found = str(exe) if exe.exists() else shutil.which("jupyter-book")
    if not found:
        pytest.fail("jupyter-book (a dev dependency) is not installed")
    return found


@pytest.fixture(scope="session")
def book_html(tmp_path_factory) -> Path:
    """Build the book into a temporary folder, as `make book` does; return its HTML root."""
    out = tmp_path_factory.mktemp("book")
    cmd = [_jupyter_book(), "build", "--all", str(BOOK), "--warningiserror", "--keep-going",
           "--path-output", str(out)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    seconds = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        problems = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
        pytest.fail(f"`jupyter-book build` failed (rc {proc.returncode}) after {seconds:.0f} s:\n"
                    + "\n".join(problems or log.splitlines()[-40:]))
    html = out / "_build" / "html"
    assert (html / "index.html").is_file(), log[-2000:]
    return html


@pytest.fixture(scope="session")
def server(book_html) -> str:
    """Serve the built HTML on 127.0.0.1 (a free port) from a thread; yield the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

    handler = functools.partial(Quiet, directory=str(book_html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, name="book-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _missing_browser_reason() -> str | None:
    missing = []
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"{CHROMIUM} (Debian: apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the `playwright` Python package (pip install playwright)")
    return "the browser test needs " + " and ".join(missing) if missing else None


@pytest.fixture(scope="session")
def browser():
    """Headless system Chromium driven by Playwright; skips (or fails in CI) when unavailable."""
    reason = _missing_browser_reason()
    if reason:
        if os.environ.get("XLT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"XLT_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


def test_book_builds_without_warnings(book_html):
    """`jupyter-book build --warningiserror` succeeds and writes every page of the TOC."""
    for doc in DOCNAMES:
        assert (book_html / f"{doc}.html").is_file(), f"{doc}.html was not built"
    # The landing page cites the paper and the bibliography lists it.
    bib = (book_html / "bibliography.html").read_text()
    assert "First Align, then Predict" in bib and "Muller" in bib


@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_in_browser(docname, server, browser):
    """Open one page in Chromium: no errors, images loaded, outputs rendered, no traceback."""
    url = urljoin(server, f"{docname}.html")
    local = urlparse(server).netloc
    third_party, unexpected, failed, bad_status = [], [], [], []
    console_errors, page_errors = [], []

    def route(r):
        host = urlparse(r.request.url).hostname or ""
        if urlparse(r.request.url).netloc == local or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            (third_party if host in ALLOWED_THIRD_PARTY else unexpected).append(r.request.url)
            r.abort()

    def on_console(msg):
        if msg.type != "error":
            return
        where = (msg.location or {}).get("url", "")
        if (urlparse(where).hostname or "") in ALLOWED_THIRD_PARTY:
            return
        if any(h in msg.text for h in ALLOWED_THIRD_PARTY):
            return
        console_errors.append(f"{msg.text} ({where})")

    def on_response(resp):
        if urlparse(resp.url).netloc == local and resp.status >= 400:
            bad_status.append(f"{resp.status} {resp.url}")

    def on_failed(req):
        if urlparse(req.url).netloc == local:
            failed.append(f"{req.url}: {req.failure}")

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        context.route("**/*", route)
        page = context.new_page()
        page.on("console", on_console)
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        page.on("response", on_response)
        page.on("requestfailed", on_failed)
        resp = page.goto(url, wait_until="load", timeout=30_000)
        assert resp is not None and resp.status == 200, f"{url}: {resp and resp.status}"

        # Load every image (scrolled into view in case of lazy loading), then measure it.
        images = page.evaluate("""async () => {
            const imgs = Array.from(document.querySelectorAll('img'));
            for (const img of imgs) {
                img.scrollIntoView();
                try { await img.decode(); } catch (e) {}
            }
            window.scrollTo(0, 0);
            return imgs.map(img => ({
                src: img.currentSrc || img.src,
                output: img.closest('.cell_output') !== null,
                complete: img.complete,
                width: img.naturalWidth,
            }));
        }""")
        page.wait_for_load_state("networkidle", timeout=15_000)
        text = page.inner_text("body")
        n_cells = page.locator("div.cell").count()
        n_tables = page.locator(".cell_output table").count()
        n_tracebacks = page.locator(".cell_output .traceback, .cell_output .output.error").count()
        title = page.locator("article h1").first.inner_text() if page.locator("article h1").count() else ""

        is_notebook = (BOOK / f"{docname}.ipynb").exists()
        if docname == DOCNAMES[0] or is_notebook:
            ARTIFACTS.mkdir(exist_ok=True)
            name = LANDING_SCREENSHOT if docname == DOCNAMES[0] else f"book-{Path(docname).name}.png"
            page.screenshot(path=str(ARTIFACTS / name), full_page=True)
            figures = page.locator(".cell_output img")
            if figures.count():
                figures.first.scroll_into_view_if_needed()
                page.screenshot(path=str(ARTIFACTS / name.replace(".png", "-figure.png")))
    finally:
        context.close()

    assert title.strip(), f"{docname}: no <h1> title in the article"
    assert not page_errors, f"{docname}: JavaScript errors: {page_errors}"
    assert not console_errors, f"{docname}: console errors: {console_errors}"
    assert not unexpected, (f"{docname}: requests to hosts not in ALLOWED_THIRD_PARTY: {unexpected}")
    assert not failed and not bad_status, f"{docname}: failed local requests: {failed + bad_status}"

    broken = [i["src"] for i in images if not (i["complete"] and i["width"] > 0)]
    assert not broken, f"{docname}: images that did not load: {broken}"
    expected_images, expected_table = _expected_outputs(docname)
    shown = sum(i["output"] for i in images)
    assert shown == expected_images, (
        f"{docname}: {expected_images} image outputs stored in the notebook, {shown} shown")
    if is_notebook:
        assert n_cells > 0, f"{docname}: the notebook was not rendered as cells"
    if expected_table:
        assert n_tables > 0, f"{docname}: the notebook's HTML tables are not rendered as tables"

    assert TRACEBACK not in text, f"{docname}: the page shows a Python traceback"
    assert n_tracebacks == 0, f"{docname}: the page shows {n_tracebacks} error output(s)"


def test_local_links_resolve(server):
    """Every relative link on every page points at a file the server has (no browser needed)."""
    import html.parser

    class Links(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.hrefs = []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            for key in ("href", "src"):
                if attrs.get(key):
                    self.hrefs.append(attrs[key])

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    checked: dict[str, bool] = {}
    broken = []
    for doc in DOCNAMES:
        page_url = urljoin(server, f"{doc}.html")
        parser = Links()
        with opener.open(page_url, timeout=10) as resp:
            parser.feed(resp.read().decode())
        for href in parser.hrefs:
            target = urljoin(page_url, href).split("#")[0]
            if not target.startswith(server):
                continue
            if target not in checked:
                try:
                    with opener.open(target, timeout=10) as resp:
                        checked[target] = resp.status == 200
                except OSError:
                    checked[target] = False
            if not checked[target]:
                broken.append(f"{doc}: {href}")
    assert not broken, "broken local links:\n" + "\n".join(sorted(set(broken)))
