"""The Jupyter Book site, built from book/ and opened page by page in a real headless Chromium.

The book is built once per session into a temporary folder, exactly as `make book` builds it
(stored notebook outputs, warnings are errors), served with http.server on 127.0.0.1 and opened
with Playwright driving the system Chromium (/usr/bin/chromium: `playwright install` is not needed).
On every page of the table of contents: no request leaves 127.0.0.1 (the book works offline), no
console or page errors, every image loaded, every notebook figure shown as an image that fits the
column, the notebook tables present, no traceback text, no output line cut off at the column's
edge, and the formulas typeset by the book's own MathJax (no raw TeX left). On a page whose
notebook stores ipywidgets (explorers from xlt_utils.widgets), every widget renders from the
embedded state with the vendored scripts (no kernel, no CDN), and choosing another option in each
Dropdown changes the visible panel. Japanese text is drawn with the book's own web font
(book/_static/fonts/), not as empty boxes, with no system font for it; the fonts cover every
Japanese, Arabic and Cyrillic character of the book. Page fits: at 1280 and 390 px no code line
or output of a cell hides past the column's edge (a wide table scrolls in its own box, which shows
a cue); a small sample book checks that this check finds a long code line, and that a chapter's
diagram, addressed by its GitHub URL, is served from the stored SVG at a readable size.
Screenshots go to test-artifacts/.

Without Chromium or the `playwright` package the browser tests skip; XLT_REQUIRE_BROWSER=1 (CI)
turns the skip into a failure.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
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

#: The book, a browser and whole chapters: `make test` runs them, `make test-fast` does not.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("XLT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
BUILD_TIMEOUT_S = 180

# Every request a page makes must go to the local server: a request to any other host is aborted
# (so the result never depends on the network) and fails the test. MathJax, the widget scripts and
# their fonts are served by the book (book/_static/mathjax/, book/_static/ipywidgets/).
TRACEBACK = "Traceback (most recent call last)"
# Screenshots (under test-artifacts/): the landing page, every chapter (full page) and, for a
# chapter with figures, the viewport at its first figure.
LANDING_SCREENSHOT = "book-landing.png"

# The vendored MathJax 3 (mathjax_path in book/_config.yml).
MATHJAX_JS = "_static/mathjax/tex-chtml.js"
MATHJAX_TIMEOUT_MS = 60_000
# The page whose outputs show Japanese (the toy corpus's ja sentences), its screenshot, and
# characters drawn besides those found on the page: hiragana and kanji (the page has katakana).
JAPANESE_DOC = "notebooks/01_data_and_tokenisation"
JAPANESE_SCREENSHOT = "book-japanese.png"
JAPANESE_EXTRA = "の日本語"
JAPANESE_RE = r"[\u3040-\u30ff\u4e00-\u9fff]"
# The book's web fonts (book/_static/fonts/, vendored by book/fonts/vendor.py), by their own names.
FONT_PREFIX = "XLT "
JAPANESE_FONT = "XLT Noto Sans JP"

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


def _build(book: Path, out: Path) -> Path:
    """Build `book` into `out` as `make book` does (warnings are errors); return its HTML root."""
    cmd = [_jupyter_book(), "build", "--all", str(book), "--warningiserror", "--keep-going",
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


@contextlib.contextmanager
def _serve(directory: Path):
    """Serve `directory` on 127.0.0.1 (a free port) from a thread; yield the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, name="book-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def book_html(tmp_path_factory) -> Path:
    """Build the book into a temporary folder, as `make book` does; return its HTML root."""
    return _build(BOOK, tmp_path_factory.mktemp("book"))


@pytest.fixture(scope="session")
def server(book_html) -> str:
    """Serve the built HTML on 127.0.0.1 (a free port) from a thread; yield the base URL."""
    with _serve(book_html) as url:
        yield url


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
    unexpected, failed, bad_status = [], [], []
    console_errors, page_errors = [], []

    def route(r):
        if urlparse(r.request.url).netloc == local or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            unexpected.append(r.request.url)
            r.abort()

    def on_console(msg):
        if msg.type == "error":
            console_errors.append(f"{msg.text} ({(msg.location or {}).get('url', '')})")

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
                shown: img.getBoundingClientRect().width,
                column: (img.closest('.cell_output') || img.parentElement).clientWidth,
            }));
        }""")
        _settle(page)
        math = _typeset_math(page, docname)
        cut_off = page.evaluate(CUT_OFF_OUTPUTS_JS)
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
    assert not unexpected, f"{docname}: requests that leave the local server: {unexpected}"
    assert not failed and not bad_status, f"{docname}: failed local requests: {failed + bad_status}"

    broken = [i["src"] for i in images if not (i["complete"] and i["width"] > 0)]
    assert not broken, f"{docname}: images that did not load: {broken}"
    expected_images, expected_table = _expected_outputs(docname)
    outputs = [i for i in images if i["output"]]
    assert len(outputs) == expected_images, (
        f"{docname}: {expected_images} image outputs stored in the notebook, {len(outputs)} shown")
    assert FIGURE_REPR not in text, f"{docname}: a figure is shown as text ({FIGURE_REPR}...), not as an image"
    # Figures at their natural size up to the column's width (book/_static/xlt.css): never wider
    # than the column, never enlarged.
    misfit = [f"{i['src'][-24:]}: {i['width']} px shown at {i['shown']:.0f} px in a {i['column']} px column"
              for i in outputs if i["shown"] > i["column"] + 1 or abs(i["shown"] - min(i["width"], i["column"])) > 1]
    assert not misfit, f"{docname}: figures not shown at min(natural width, column width): {misfit}"
    assert not cut_off, f"{docname}: output lines cut off at the column's edge: {cut_off}"
    if math is not None:
        assert math["typeset"] >= math["formulas"] > 0, f"{docname}: formulas not typeset by MathJax: {math}"
        assert not math["raw"], f"{docname}: raw TeX left on the page: {math['raw']}"
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


FIGURE_REPR = "<Figure size"
# Cell outputs that are wider than their box (cut off, or behind a scroll bar); xlt.css wraps them.
CUT_OFF_OUTPUTS_JS = r"""() => Array.from(document.querySelectorAll('.cell_output pre'))
    .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
    .map(pre => `${pre.scrollWidth} > ${pre.clientWidth} px: ${pre.innerText.split('\n')[0].slice(0, 80)}`)"""
# After MathJax's first typeset: the formulas Sphinx marked (span.math / div.math), those holding
# MathJax output, and any TeX delimiters left in the visible text outside code.
MATH_REPORT_JS = r"""async () => {
    await window.MathJax.startup.promise;
    const formulas = Array.from(document.querySelectorAll('.math'));
    const walker = document.createTreeWalker(document.querySelector('main') || document.body,
                                             NodeFilter.SHOW_TEXT);
    const raw = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const el = node.parentElement;
        if (!el || el.closest('pre, code, script, style, .highlight, mjx-assistive-mml')) continue;
        if (el.getClientRects().length === 0) continue;
        const m = node.textContent.match(/\$\$|\\(|\\)|\\[|\\]|\begin\{/);
        if (m) raw.push(node.textContent.trim().slice(0, 80));
    }
    return {
        formulas: formulas.length,
        typeset: formulas.filter(f => f.querySelector('mjx-container')).length,
        containers: document.querySelectorAll('mjx-container').length,
        version: window.MathJax.version,
        raw: raw,
    };
}"""


def _typeset_math(page, docname: str) -> dict | None:
    """Wait for the book's MathJax to typeset a page with formulas; None on a page without."""
    if page.locator(".math").count() == 0:
        return None
    scripts = page.evaluate("() => Array.from(document.scripts).map(s => s.src).filter(Boolean)")
    mathjax = [s for s in scripts if "mathjax" in s.lower() and "mathjax3-typeset" not in s]
    assert len(mathjax) == 1 and urlparse(mathjax[0]).path.endswith("/" + MATHJAX_JS), (
        f"{docname}: has formulas but does not load the vendored {MATHJAX_JS} once: {mathjax}")
    page.wait_for_function("() => window.MathJax && window.MathJax.startup && window.MathJax.startup.promise",
                           timeout=MATHJAX_TIMEOUT_MS)
    report = page.evaluate(MATH_REPORT_JS)
    assert str(report["version"]).startswith("3."), f"{docname}: MathJax {report['version']}, not 3.x"
    return report


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
    """On a widget page with formulas, the book's MathJax 3 and the widgets get along.

    html-manager typesets labels with the MathJax 2 API (MathJax.Hub); the book's shim
    (_static/ipywidgets/mathjax3-typeset.js) forwards it to MathJax 3's typesetPromise. Where the
    page has no formulas (no MathJax), the shim must stay out of the way.
    """
    local = urlparse(server).netloc
    page_errors, outside = [], []

    def route(r):
        if urlparse(r.request.url).netloc == local or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        context.route("**/*", route)
        page = context.new_page()
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        page.goto(urljoin(server, f"{docname}.html"), wait_until="load", timeout=120_000)
        _wait_for_widgets(page, docname, _widget_outputs(docname)[0])
        math = _typeset_math(page, docname)
        _settle(page)
        hub = page.evaluate("() => typeof (window.MathJax && window.MathJax.Hub && window.MathJax.Hub.Queue)")
    finally:
        context.close()
    assert not outside, f"{docname}: requests that leave the local server: {outside}"
    assert not page_errors, f"{docname}: JavaScript errors with MathJax 3 present: {page_errors}"
    if math is not None:
        assert hub == "function", f"{docname}: the MathJax 3 shim did not install MathJax.Hub.Queue"


# Draw each character alone on a canvas in a font stack (`family`; the element's own by default),
# with the browser's font fallback as on the page, and digest the pixels. The stack's web fonts are
# loaded for these characters first (a canvas does not wait for them). Without a font that has
# them, every character is drawn as the same missing-glyph box (tofu) or as nothing; with one,
# different characters differ.
GLYPH_DIGESTS_JS = r"""async (el, [chars, family]) => {
    const stack = family || getComputedStyle(el).fontFamily;
    await document.fonts.load(`40px ${stack}`, chars.join(''));
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 64;
    const ctx = canvas.getContext('2d', {willReadFrequently: true});
    const out = {};
    for (const ch of chars) {
        ctx.clearRect(0, 0, 64, 64);
        ctx.font = `40px ${stack}`;
        ctx.textBaseline = 'alphabetic';  // on a fixed line: the stack's first font cannot move it
        ctx.fillStyle = 'black';
        ctx.fillText(ch, 4, 48);
        const pixels = ctx.getImageData(0, 0, 64, 64).data;
        let ink = 0;
        for (let i = 3; i < pixels.length; i += 4) ink += pixels[i] > 0;
        const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', pixels));
        out[ch] = {ink: ink, digest: Array.from(digest.slice(0, 8), b => b.toString(16).padStart(2, '0')).join('')};
    }
    return out;
}"""
# The faces of the book's web fonts that the page has loaded (document.fonts), by family.
LOADED_FACES_JS = r"""() => Array.from(document.fonts)
    .filter(f => f.status === 'loaded').map(f => f.family.replace(/["']/g, ''))"""
# The box of the lines with Japanese characters in an output, in the viewport (for a clip).
JAPANESE_LINES_BOX_JS = r"""(pre, pattern) => {
    const re = new RegExp(pattern);
    const range = document.createRange();
    const rects = [];
    const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        let offset = 0;
        for (const line of node.textContent.split('\n')) {
            if (re.test(line)) {
                range.setStart(node, offset);
                range.setEnd(node, offset + line.length);
                rects.push(...range.getClientRects());
            }
            offset += line.length + 1;
        }
    }
    const r = pre.getBoundingClientRect();
    const top = Math.min(...rects.map(x => x.top)), bottom = Math.max(...rects.map(x => x.bottom));
    return {x: r.left, y: top, width: r.width, height: bottom - top};
}"""
# A code point that no font has (plane 16, private use): how a missing glyph looks.
NO_GLYPH = "\U0010fffd"


def _system_stack(stack: str) -> str:
    """A CSS font stack without the book's web fonts (what a reader's system alone would use)."""
    kept = [f.strip() for f in stack.split(",") if not f.strip().strip("\"'").startswith(FONT_PREFIX)]
    return ", ".join(kept)


def test_japanese_text_renders_with_the_books_font(server, browser):
    """Japanese outputs (chapter 1) are drawn with real glyphs from the book's own font (Noto Sans
    JP, served from _static/fonts/), so no system font is needed: the page loads the font's files,
    the output's font stack names it, and every Japanese character that the system's fonts alone
    draw as a box is drawn exactly as the book's font draws it. Screenshot of the lines."""
    local = urlparse(server).netloc
    font_files = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        context.route("**/*", lambda r: r.continue_() if urlparse(r.request.url).netloc == local else r.abort())
        page = context.new_page()
        page.on("response", lambda r: font_files.append((urlparse(r.url).path, r.status))
                if r.url.endswith(".woff2") and "/_static/fonts/" in r.url else None)
        page.goto(urljoin(server, f"{JAPANESE_DOC}.html"), wait_until="load", timeout=120_000)
        outputs = page.locator(".cell_output pre", has_text=re.compile(JAPANESE_RE))
        assert outputs.count() > 0, f"{JAPANESE_DOC}: no output with Japanese text"
        pre = outputs.first
        # Every image decoded first: one still loading above would move the lines after measuring.
        page.evaluate("() => Promise.all(Array.from(document.images, i => i.decode().catch(() => null)))")
        _settle(page)
        page.evaluate("() => document.fonts.ready")
        pre.evaluate("pre => pre.scrollIntoView({block: 'center'})")
        box = pre.evaluate(JAPANESE_LINES_BOX_JS, JAPANESE_RE)
        ARTIFACTS.mkdir(exist_ok=True)
        pad = 6
        page.screenshot(path=str(ARTIFACTS / JAPANESE_SCREENSHOT),
                        clip={"x": max(box["x"] - pad, 0), "y": max(box["y"] - pad, 0),
                              "width": box["width"] + 2 * pad, "height": box["height"] + 2 * pad})
        loaded = page.evaluate(LOADED_FACES_JS)  # before the canvas loads more faces
        stack = pre.evaluate("el => getComputedStyle(el).fontFamily")
        found = list(dict.fromkeys(re.findall(JAPANESE_RE, pre.inner_text())))[:8]
        chars = found + [c for c in JAPANESE_EXTRA if c not in found]
        glyphs = pre.evaluate(GLYPH_DIGESTS_JS, [chars, None])
        missing = pre.evaluate(GLYPH_DIGESTS_JS, [[NO_GLYPH], None])[NO_GLYPH]
        book_font = pre.evaluate(GLYPH_DIGESTS_JS, [chars, f'"{JAPANESE_FONT}"'])
        system = pre.evaluate(GLYPH_DIGESTS_JS, [chars + [NO_GLYPH], _system_stack(stack)])
    finally:
        context.close()
    assert len(found) >= 3, f"{JAPANESE_DOC}: expected Japanese words in the output, found {found}"
    assert JAPANESE_FONT in stack, f"the outputs' font stack lacks the book's {JAPANESE_FONT}: {stack}"
    assert JAPANESE_FONT in loaded, f"the page did not load the book's {JAPANESE_FONT}: {loaded}"
    jp_files = [f for f in font_files if "noto-sans-jp" in f[0]]
    assert jp_files and all(status == 200 for _, status in jp_files), (
        f"the Japanese font files were not served by the book: {font_files}")
    blank = [c for c, g in glyphs.items() if g["ink"] == 0]
    assert not blank, f"Japanese characters drawn as nothing: {blank}"
    tofu = [c for c, g in glyphs.items() if g["digest"] == missing["digest"]]
    assert not tofu, f"Japanese characters drawn as the missing-glyph box: {tofu}"
    digests = [g["digest"] for g in glyphs.values()]
    assert len(set(digests)) == len(digests), (
        f"different Japanese characters drawn as the same picture (missing-glyph boxes): {glyphs}")
    # Where the system's fonts have no glyph (every character here without a Japanese system
    # font, as in CI), the page's glyph is the book's font's.
    no_system_glyph = [c for c in chars
                       if system[c]["digest"] == system[NO_GLYPH]["digest"] or system[c]["ink"] == 0]
    assert no_system_glyph or _system_japanese_fonts(), (
        "the system draws no box for Japanese but lists no Japanese font: the check proves nothing")
    not_book = [c for c in no_system_glyph if glyphs[c]["digest"] != book_font[c]["digest"]]
    assert not not_book, f"Japanese characters not drawn with the book's {JAPANESE_FONT}: {not_book}"


def _system_japanese_fonts() -> list[str]:
    """The Japanese fonts fontconfig lists (none on CI: the book brings its own)."""
    fc_list = shutil.which("fc-list")
    if not fc_list:
        return []
    proc = subprocess.run([fc_list, ":lang=ja", "family"], capture_output=True, text=True, timeout=60)
    return [line for line in proc.stdout.splitlines() if line.strip()]


def _css_ranges(css: str) -> dict[str, list[tuple[int, int]]]:
    """font-family -> unicode ranges of its @font-face rules whose file exists (no range: all)."""
    out: dict[str, list[tuple[int, int]]] = {}
    for body in re.findall(r"@font-face\s*\{([^}]*)\}", css):
        family = re.search(r"font-family:\s*'([^']+)'", body).group(1)
        src = re.search(r"url\(([^)]+)\)", body).group(1)
        assert (BOOK / "_static" / "fonts" / src).is_file(), f"fonts.css names a missing file: {src}"
        spec = re.search(r"unicode-range:\s*([^;]+);", body)
        ranges = []
        for part in (spec.group(1).split(",") if spec else ["U+0-10ffff"]):
            lo, _, hi = part.strip().removeprefix("U+").partition("-")
            ranges.append((int(lo, 16), int(hi or lo, 16)))
        out.setdefault(family, []).extend(ranges)
    return out


def test_the_books_fonts_cover_its_japanese_arabic_and_cyrillic():
    """Every Japanese, Arabic and Cyrillic character of the notebooks and book pages is covered by
    a face of the book's web fonts (book/_static/fonts/fonts.css, written by book/fonts/vendor.py
    from the Fontsource packages of book/fonts/package-lock.json), which xlt.css puts in the font
    stacks; the fonts' licence travels with them, and the book loads no font by local() name."""
    css = (BOOK / "_static" / "fonts" / "fonts.css").read_text(encoding="utf-8")
    assert "local(" not in css
    ranges = _css_ranges(css)
    scripts = {JAPANESE_FONT: r"[\u3000-\u30ff\u3400-\u9fff\uff00-\uffef]",
               f"{FONT_PREFIX}Noto Sans Arabic": r"[\u0600-\u06ff]",
               f"{FONT_PREFIX}Noto Sans": r"[\u0400-\u04ff]"}
    text = "".join(json.dumps(json.loads(p.read_text(encoding="utf-8")), ensure_ascii=False)
                   for p in sorted((ROOT / "notebooks").glob("*.ipynb")))
    text += "".join(p.read_text(encoding="utf-8") for p in sorted(BOOK.glob("*.md"))) + JAPANESE_EXTRA
    for family, pattern in scripts.items():
        chars = sorted(set(re.findall(pattern, text)))
        assert chars, f"no {family} text in the book: the font is not needed"
        uncovered = [c for c in chars if not any(lo <= ord(c) <= hi for lo, hi in ranges.get(family, []))]
        assert not uncovered, (f"characters that the book's {family} does not cover: {''.join(uncovered)} "
                               "(rerun python book/fonts/vendor.py)")
    stacks = (BOOK / "_static" / "xlt.css").read_text()
    for family in scripts:
        assert f'"{family}"' in stacks, f"xlt.css does not put {family} in the font stacks"
    for package in ("noto-sans-jp", "noto-sans-arabic", "noto-sans"):
        licence = (BOOK / "_static" / "fonts" / f"LICENSE-{package}.txt").read_text()
        assert "SIL Open Font License" in licence
    lock = json.loads((BOOK / "fonts" / "package-lock.json").read_text())
    for package in ("noto-sans-jp", "noto-sans-arabic", "noto-sans"):
        entry = lock["packages"][f"node_modules/@fontsource/{package}"]
        assert entry["integrity"].startswith("sha512-") and f"@fontsource/{package} {entry['version']}" in css


def test_mathjax_is_served_by_the_book(book_html):
    """Pages with formulas load the vendored MathJax 3 once; no page refers to a CDN's.

    (Sphinx also loads MathJax on a page whose table of contents includes a page with formulas:
    the landing page.)
    """
    with_math = []
    for doc in DOCNAMES:
        page = (book_html / f"{doc}.html").read_text()
        assert "cdn.jsdelivr.net" not in page and "mathjax@" not in page, f"{doc}: MathJax from a CDN"
        if 'class="math' in page:
            with_math.append(doc)
            assert page.count(MATHJAX_JS) == 1, f"{doc}: {MATHJAX_JS} loaded {page.count(MATHJAX_JS)} times"
    assert "notebooks/04_representation_similarity" in with_math, f"no CKA formulas in chapter 4: {with_math}"
    assert (book_html / MATHJAX_JS).is_file() and (book_html / "_static/mathjax/LICENSE").is_file()
    fonts = book_html / "_static/mathjax/output/chtml/fonts/woff-v2"
    assert (fonts / "MathJax_Main-Regular.woff").is_file() and (fonts / "MathJax_Math-Italic.woff").is_file()


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


def test_landing_page_opens_with_what_replicates(book_html):
    """The landing page pastes chapter 0's glued tables (myst-nb cross-document glue): the table of
    what replicates, first, with the same verdict for every claim as chapter 0's stored output, then
    the map of where each part of the paper is rebuilt."""
    import re

    from xlt_utils.verdicts import CLAIMS

    page = (book_html / "intro.html").read_text()
    body = page[page.index('id="what-replicates"'):]
    assert body.index('id="what-replicates"') < body.index('id="the-question"'), "what replicates must come first"
    chapter0 = (book_html / "notebooks" / "00_overview.html").read_text()

    def verdict_rows(html: str) -> dict[str, str]:
        rows = {}
        for claim in CLAIMS:
            m = re.search(rf"<th>{claim}</th>(.*?)</tr>", html, flags=re.S)
            assert m, f"no row for {claim}"
            rows[claim] = re.findall(r"<td>(.*?)</td>", m.group(1), flags=re.S)[-1].strip()
        return rows

    landing, stored = verdict_rows(body), verdict_rows(chapter0)
    assert landing == stored
    assert all(re.fullmatch(r"(holds|does not hold|undetermined|not tested)( \([^)]*\))?(; .*)?", v)
               for v in landing.values()), landing
    # the evidence table follows, with an estimate and a 95% interval beside each verdict
    assert body.index("estimate [95% CI]") < body.index('id="the-question"')
    assert len(re.findall(r"<td>[+-][0-9.]+ \[[+-][0-9.]+, [+-][0-9.]+\]</td>", body)) >= len(CLAIMS)
    assert "freezing the lower or the upper half" in body and "extension" in body  # the paper map


# --------------------------------------------------------------------------------------------
# Page fits: nothing of a cell hides past the column's edge
# --------------------------------------------------------------------------------------------

#: Window widths of the fit check: a desktop (the column holds 77 characters of code, the width
#: `python -m xlt_utils.nbtools format` formats to) and a phone (code wraps there, xlt.css).
FIT_WIDTHS = (1280, 390)
# In every code cell (.cell_input) and output (.cell_output): an element whose content is wider
# than its box and clipped or scrolled (a hidden part), or that ends past the cell's right edge
# without a clipping box around it; and a page wider than the window. A table that scrolls in its
# own box (.xlt-table-scroll, book/_static/xlt.js) is allowed while the box shows its cue.
FIT_PROBLEMS_JS = r"""() => {
    const problems = [];
    const root = document.documentElement;
    if (root.scrollWidth > root.clientWidth + 1) {
        problems.push(`page: ${root.scrollWidth} px wide in a ${root.clientWidth} px window`);
    }
    const clips = el => getComputedStyle(el).overflowX !== 'visible';
    const cue = el => {
        const before = getComputedStyle(el, '::before');
        return el.classList.contains('xlt-overflows') && before.display !== 'none'
            && before.content.length > 2 && before.visibility !== 'hidden';
    };
    const describe = el => {
        const lines = (el.innerText || el.textContent || '').split('\n');
        const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), '');
        return `<${el.tagName.toLowerCase()} class="${el.className}"> ${longest.trim().slice(0, 70)}`;
    };
    for (const cell of document.querySelectorAll('.cell_input, .cell_output')) {
        const edge = cell.getBoundingClientRect().right;
        const kind = cell.classList.contains('cell_input') ? 'code' : 'output';
        for (const el of [cell, ...cell.querySelectorAll('*')]) {
            const r = el.getBoundingClientRect();
            if (r.width === 0 && r.height === 0) continue;
            if (clips(el) && el.scrollWidth > el.clientWidth + 1) {
                if (!(el.classList.contains('xlt-table-scroll') && cue(el))) {
                    problems.push(`${kind}: ${describe(el)} (${el.scrollWidth} px in ${el.clientWidth} px)`);
                }
                continue;
            }
            if (r.right > edge + 1) {
                let up = el.parentElement, clipped = false;
                while (up && up !== cell.parentElement) {
                    if (clips(up)) { clipped = true; break; }
                    up = up.parentElement;
                }
                if (!clipped) problems.push(`${kind}: ${describe(el)} (${Math.round(r.right - edge)} px past the cell)`);
            }
        }
    }
    return [...new Set(problems)];
}"""
TABLE_CUES_JS = r"""() => Array.from(document.querySelectorAll('.xlt-table-scroll.xlt-overflows'))
    .map(el => getComputedStyle(el, '::before').content)"""


def _fit_problems(browser, url: str, width: int, n_views: int = 0, screenshot: str | None = None):
    """(problems, table cues) of one page in a window `width` px wide."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        page.goto(url, wait_until="load", timeout=120_000)
        if n_views:
            _wait_for_widgets(page, url, n_views)
        page.wait_for_function("() => document.documentElement.dataset.xltTables === 'ready'",
                               timeout=30_000)
        page.evaluate("() => Promise.all(Array.from(document.images, i => i.decode().catch(() => null)))")
        page.evaluate("() => document.fonts.ready")
        page.wait_for_timeout(200)  # the tables' cues follow a resize or the fonts
        problems, cues = page.evaluate(FIT_PROBLEMS_JS), page.evaluate(TABLE_CUES_JS)
        if screenshot:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    finally:
        context.close()
    return problems, cues


@pytest.mark.parametrize("width", FIT_WIDTHS)
@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_fits_the_window(docname, width, server, browser):
    """No code line and no output hides past the column's edge, at 1280 and at 390 px: code
    formatted to 77 characters fits the desktop column and wraps on a phone; outputs wrap; figures
    shrink; a wide table scrolls in its own box, which says so."""
    problems, _ = _fit_problems(browser, urljoin(server, f"{docname}.html"), width,
                                _widget_outputs(docname)[0])
    assert not problems, (f"{docname} at {width} px: {len(problems)} parts hide past the column's edge "
                          "(code: python -m xlt_utils.nbtools format notebooks/*.ipynb):\n"
                          + "\n".join(problems[:40]))


def _sample_notebook(title: str, cells: list) -> dict:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}")] + cells
    for k, cell in enumerate(nb.cells):
        cell.pop("id", None)
        if cell.cell_type == "code":
            cell.execution_count = k
    nb.nbformat_minor = 4
    return nb


@pytest.fixture(scope="module")
def sample_book(tmp_path_factory) -> Path:
    """A two-page book with this book's configuration, extension and static files: `wide` has a
    code line of 100 characters; `fitted` has the same code formatted by `nbtools format`, a long
    output line, a table wider than a phone, and every diagram as the chapters show it."""
    import nbformat
    import pandas as pd

    from xlt_utils import diagrams
    from xlt_utils.nbtools import format_source

    tmp = tmp_path_factory.mktemp("sample")
    book, notebooks = tmp / "book", tmp / "notebooks"
    shutil.copytree(BOOK / "_ext", book / "_ext", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(BOOK / "_static", book / "_static")
    shutil.copytree(ROOT / diagrams.FIGURE_DIR, notebooks / "figures")
    for name in ("_config.yml", "references.bib"):
        shutil.copyfile(BOOK / name, book / name)
    (book / "intro.md").write_text("# Sample\n\nA sample of the book's layout.\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n"
                                   "  - file: notebooks/wide\n  - file: notebooks/fitted\n")
    (book / "notebooks").symlink_to("../notebooks", target_is_directory=True)
    code = ("scores = evaluate_every_language(model, tokenizer, languages=targets, batch_size=32, "
            "seed=1)")
    assert len(code) > 90
    out = nbformat.v4.new_output("stream", text="ok\n")
    wide = [nbformat.v4.new_code_cell(code, outputs=[out])]
    table = pd.DataFrame([[f"{i * j:+.1f}" for j in range(10)] for i in range(4)],
                         columns=[f"layer {j}" for j in range(10)])
    figures = [nbformat.v4.new_markdown_cell(
        f"![{name}]({diagrams.figure_url(name)})\n\n*Figure {k}.1: the {name} diagram.*")
        for k, name in enumerate(diagrams.DIAGRAMS)]
    fitted = figures + [
        nbformat.v4.new_code_cell(format_source(code), outputs=[out]),
        nbformat.v4.new_code_cell("print(line)", outputs=[nbformat.v4.new_output(
            "stream", text="a long printed line " * 12 + "\n")]),
        nbformat.v4.new_code_cell("table", outputs=[nbformat.v4.new_output(
            "execute_result", data={"text/html": table.to_html(), "text/plain": "table"},
            execution_count=1)]),
    ]
    nbformat.write(_sample_notebook("Wide", wide), notebooks / "wide.ipynb")
    nbformat.write(_sample_notebook("Fitted", fitted), notebooks / "fitted.ipynb")
    start = time.perf_counter()
    html = _build(book, tmp / "out")
    print(f"sample book built in {time.perf_counter() - start:.0f} s")
    return html


def test_fit_check_on_a_sample_book(sample_book, browser):
    """The fit check finds a code line of 100 characters at 1280 px (it scrolls) and nothing when
    the code is formatted; at 390 px code wraps; a wide table scrolls in a box that shows its cue."""
    start = time.perf_counter()
    with _serve(sample_book) as url:
        wide_desktop, _ = _fit_problems(browser, urljoin(url, "notebooks/wide.html"), 1280)
        wide_phone, _ = _fit_problems(browser, urljoin(url, "notebooks/wide.html"), 390)
        fitted = {w: _fit_problems(browser, urljoin(url, "notebooks/fitted.html"), w,
                                   screenshot=f"sample-fitted-{w}.png") for w in FIT_WIDTHS}
    print(f"fit check of 4 pages in {time.perf_counter() - start:.1f} s")
    assert any(p.startswith("code:") and "evaluate_every_language" in p for p in wide_desktop), wide_desktop
    assert wide_phone == [], f"at 390 px code wraps (xlt.css): {wide_phone}"
    for width, (problems, _cues) in fitted.items():
        assert problems == [], f"the formatted sample at {width} px: {problems}"
    assert fitted[1280][1] == [], "the 10-column table fits the desktop column: no cue"
    assert len(fitted[390][1]) == 1 and "scroll" in fitted[390][1][0], (
        f"at 390 px the table scrolls in its box and says so: {fitted[390][1]}")


def test_diagrams_show_from_the_book_at_a_readable_size(sample_book, browser):
    """A chapter's diagram, addressed by its GitHub URL (for Colab), is served by the book from the
    stored SVG (no request outside), shown whole in the column, with text of at least 9 px, and
    links to its file (a phone shows it full size)."""
    from xlt_utils import diagrams

    shown = []
    with _serve(sample_book) as url:
        local = urlparse(url).netloc
        outside = []
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            context.route("**/*", lambda r: r.continue_() if urlparse(r.request.url).netloc == local
                          else (outside.append(r.request.url), r.abort()))
            page = context.new_page()
            page.goto(urljoin(url, "notebooks/fitted.html"), wait_until="load", timeout=120_000)
            for name in diagrams.DIAGRAMS:
                img = page.locator(f'img[src$="/{name}.svg"]')
                assert img.count() == 1, f"{name}: not on the page"
                img.scroll_into_view_if_needed()
                info = img.evaluate("""async img => { await img.decode().catch(() => null);
                    const r = img.getBoundingClientRect();
                    const link = img.closest('a');
                    return {src: img.getAttribute('src'), natural: img.naturalWidth, shown: r.width,
                            column: img.closest('section, article').clientWidth,
                            link: link ? link.getAttribute('href') : null}; }""")
                ARTIFACTS.mkdir(exist_ok=True)
                img.screenshot(path=str(ARTIFACTS / f"book-diagram-{name}.png"))
                shown.append((name, info))
        finally:
            context.close()
    assert not outside, f"requests outside the book: {outside}"
    for name, info in shown:
        assert info["src"].startswith("../_images/") and info["natural"] > 0, (name, info)
        assert info["link"] == info["src"], f"{name}: not linked to its file (full size on a phone)"
        assert info["shown"] <= info["column"] + 1, (name, info)
        text_px = diagrams.MIN_FONT_PT * info["shown"] / (diagrams.WIDTH_IN * diagrams.SVG_DPI)
        assert text_px >= 9, f"{name}: smallest text {text_px:.1f} px in the book ({info})"
    assert (sample_book / "_images" / "reinit_freeze.svg").read_text() == (
        ROOT / diagrams.FIGURE_DIR / "reinit_freeze.svg").read_text()
