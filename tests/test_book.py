"""The Jupyter Book site, built from book/ and opened page by page in a real headless Chromium.

The book is built once per session into a temporary folder, exactly as `make book` builds it
(stored notebook outputs, warnings are errors), served with http.server on 127.0.0.1 and opened
with Playwright driving the system Chromium (/usr/bin/chromium: `playwright install` is not needed).
On every page of the table of contents: no console or page errors, every image loaded, the
notebook figures and tables present, no traceback text. On a page whose notebook stores ipywidgets
(explorers from xlt_utils.widgets), every widget renders from the embedded state with the vendored
scripts (no kernel, no CDN), and choosing another option in each Dropdown changes the visible panel.
Screenshots go to test-artifacts/.

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

from xlt_utils import BRANCH, REPOSITORY, REPOSITORY_URL

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

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# The html-manager bundle vendored in book/_static/ipywidgets/ (nb_ipywidgets_js in _config.yml).
WIDGET_JS = "_static/ipywidgets/embed.js"
# Generous: these are not timing checks, and a loaded 2-core CI machine renders chapter 3's
# 60-panel explorer slowly.
WIDGET_RENDER_TIMEOUT_MS = 120_000
# Signature of what a widget output shows: a digest of each visible image's bytes (blob: or data:
# URLs, fetched in the page) and the visible text outside the Dropdowns.
PANEL_SIGNATURE_JS = r"""async (root) => {
    const visible = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
    const parts = [];
    for (const img of root.querySelectorAll('img')) {
        if (!visible(img)) continue;
        try {
            const bytes = await (await fetch(img.currentSrc || img.src)).arrayBuffer();
            const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
            parts.push('img:' + Array.from(digest, b => b.toString(16).padStart(2, '0')).join(''));
        } catch (e) {
            parts.push('img-unreadable:' + (img.currentSrc || img.src).slice(0, 64));
        }
    }
    for (const el of root.querySelectorAll('.widget-html, .widget-label')) {
        if (visible(el)) parts.push('text:' + el.innerText.replace(/\s+/g, ' ').trim());
    }
    return parts.join('\n');
}"""


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


def _widget_outputs(docname: str) -> tuple[int, bool]:
    """(widget views among the page's outputs, whether the notebook stores the widget state)."""
    path = BOOK / f"{docname}.ipynb"
    if not path.exists():
        return 0, False
    nb = json.loads(path.read_text())
    views = sum(WIDGET_VIEW in out.get("data", {})
                for cell in nb["cells"] for out in cell.get("outputs", []))
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state")
    return views, bool(state)


WIDGET_DOCS = [doc for doc in DOCNAMES if _widget_outputs(doc)[0]]


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
        resp = page.goto(url, wait_until="load", timeout=120_000)
        assert resp is not None and resp.status == 200, f"{url}: {resp and resp.status}"
        n_views, has_state = _widget_outputs(docname)
        if n_views:
            assert has_state, (f"{docname}: {n_views} widget output(s) but no widget state in the "
                               "notebook metadata (execute with papermill; nbtools clean keeps it)")
            _wait_for_widgets(page, docname, n_views)

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
                output: img.closest('.cell_output') !== null && img.closest('.jupyter-widgets') === null,
                complete: img.complete,
                width: img.naturalWidth,
            }));
        }""")
        _settle(page)
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
        if n_views:
            widget_report = _exercise_widgets(page, docname, name)
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
    if n_views:
        for marker in ("IPY_MODEL_", '"model_id"', "version_major", WIDGET_VIEW):
            assert marker not in text, f"{docname}: raw widget JSON ({marker}) is shown as text"
        unchanged = [r for r in widget_report if not r["changed"]]
        assert not unchanged, f"{docname}: choosing another option did not change the panel: {unchanged}"


def _settle(page) -> None:
    """Let late requests finish before the checks. "networkidle" is a heuristic (no request for
    500 ms) that a loaded machine can miss; the assertions that follow check what matters (images
    loaded, no errors), so a page that never goes idle is not by itself a failure."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_load_state("networkidle", timeout=30_000)
    except PlaywrightTimeout:
        page.wait_for_timeout(1_000)


def _wait_for_widgets(page, docname: str, n_views: int) -> None:
    """Wait until html-manager has replaced every widget-view script with a rendered widget."""
    try:
        page.wait_for_function(
            "n => document.querySelectorAll('.widget-subarea > .jupyter-widgets').length >= n",
            arg=n_views, timeout=WIDGET_RENDER_TIMEOUT_MS)
    except Exception as exc:  # playwright's TimeoutError: report what is on the page instead
        rendered = page.locator(".widget-subarea > .jupyter-widgets").count()
        scripts = page.evaluate("() => Array.from(document.scripts).map(s => s.src).filter(Boolean)")
        pytest.fail(f"{docname}: {rendered} of {n_views} widgets rendered within "
                    f"{WIDGET_RENDER_TIMEOUT_MS / 1000:.0f} s ({exc.__class__.__name__}); "
                    f"widget scripts on the page: {[s for s in scripts if 'ipywidgets' in s]}")
    assert page.locator(f'script[src*="{WIDGET_JS}"]').count() == 1, (
        f"{docname}: the vendored {WIDGET_JS} is not loaded")


def _exercise_widgets(page, docname: str, screenshot_name: str) -> list[dict]:
    """In every widget output, pick another option of each Dropdown; report whether the panel changed.

    The first widget output is screenshotted (after its last change) to test-artifacts/.
    """
    report = []
    outputs = page.locator(".cell_output:has(.widget-subarea > .jupyter-widgets)")
    assert outputs.count() > 0, f"{docname}: no rendered widget output"
    for i in range(outputs.count()):
        out = outputs.nth(i)
        out.scroll_into_view_if_needed()
        dropdowns = out.locator(".widget-dropdown select")
        assert out.locator(".jupyter-widgets").count() > 0
        for k in range(dropdowns.count()):
            select = dropdowns.nth(k)
            n_options = select.locator("option").count()
            if n_options < 2:
                continue
            before = out.evaluate(PANEL_SIGNATURE_JS)
            current = select.evaluate("s => s.selectedIndex")
            select.select_option(index=1 if current == 0 else 0)
            changed, deadline = False, time.monotonic() + 60
            while time.monotonic() < deadline and not changed:
                page.wait_for_timeout(100)
                changed = out.evaluate(PANEL_SIGNATURE_JS) != before
            report.append({"output": i, "dropdown": k, "changed": changed})
        if i == 0:
            ARTIFACTS.mkdir(exist_ok=True)
            out.screenshot(path=str(ARTIFACTS / screenshot_name.replace(".png", "-widget.png")))
    assert report, f"{docname}: widget outputs without a Dropdown to try"
    return report


@pytest.mark.parametrize("docname", WIDGET_DOCS)
def test_widgets_with_mathjax3(docname, server, browser):
    """With MathJax 3 on the page (a stub in place of the CDN file), widgets render without errors.

    html-manager typesets labels with the MathJax 2 API (MathJax.Hub); the book's shim
    (_static/ipywidgets/mathjax3-typeset.js) forwards it to MathJax 3's typesetPromise.
    """
    stub = ("window.MathJax = {version: '3.2.2', typeset_calls: 0, "
            "typesetPromise(els) { this.typeset_calls += (els || []).length; return Promise.resolve(); }};")
    local = urlparse(server).netloc
    mathjax_requested, page_errors = [], []

    def route(r):
        parsed = urlparse(r.request.url)
        if parsed.netloc == local or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        elif parsed.hostname == "cdn.jsdelivr.net" and "mathjax" in parsed.path:
            mathjax_requested.append(r.request.url)
            r.fulfill(status=200, content_type="application/javascript", body=stub)
        else:
            r.abort()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        context.route("**/*", route)
        page = context.new_page()
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        page.goto(urljoin(server, f"{docname}.html"), wait_until="load", timeout=120_000)
        _wait_for_widgets(page, docname, _widget_outputs(docname)[0])
        _settle(page)
        hub = page.evaluate("() => !!(window.MathJax && window.MathJax.Hub)")
    finally:
        context.close()
    assert not page_errors, f"{docname}: JavaScript errors with MathJax 3 present: {page_errors}"
    if mathjax_requested:
        assert hub, f"{docname}: the MathJax 3 shim did not install MathJax.Hub"


def test_widget_scripts_only_on_widget_pages(book_html):
    """The 1.9 MB widget bundle is loaded where a notebook stores widgets, and nowhere else."""
    for doc in DOCNAMES:
        page = (book_html / f"{doc}.html").read_text()
        n_views, has_state = _widget_outputs(doc)
        loads = WIDGET_JS in page
        if n_views and has_state:
            assert loads, f"{doc}: has widgets but does not load {WIDGET_JS}"
            assert f'type="{WIDGET_STATE}"' in page, f"{doc}: the widget state is not embedded"
            assert "cdnjs.cloudflare.com" not in page and "html-manager@" not in page, (
                f"{doc}: myst-nb's default CDN widget scripts are still referenced")
        else:
            assert not loads, f"{doc}: loads {WIDGET_JS} without widgets"
    assert (book_html / WIDGET_JS).is_file()


def test_launch_buttons_open_the_notebooks_on_colab(book_html):
    """Every chapter's Colab launch link opens notebooks/<chapter>.ipynb of REPOSITORY_URL."""
    config = yaml.safe_load((BOOK / "_config.yml").read_text())
    assert config["repository"]["url"] == REPOSITORY_URL
    assert config["repository"]["branch"] == BRANCH
    chapters = [doc for doc in DOCNAMES if (BOOK / f"{doc}.ipynb").exists()]
    assert chapters
    for doc in chapters:
        page = (book_html / f"{doc}.html").read_text()
        colab = (f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/"
                 f"notebooks/{Path(doc).name}.ipynb")
        assert f'href="{colab}"' in page, f"{doc}: no Colab launch link to {colab}"
        assert "/blob/" + BRANCH + "/book/" not in page, f"{doc}: a launch link goes through book/"


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
