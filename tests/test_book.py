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
Dropdown changes the visible panel. Japanese text renders as glyphs, not as empty boxes.
Screenshots go to test-artifacts/.

Without Chromium, the `playwright` package or (for the Japanese test) a Japanese font, the browser
tests skip; XLT_REQUIRE_BROWSER=1 (CI) turns the skip into a failure.
"""

from __future__ import annotations

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


def _missing_japanese_font_reason() -> str | None:
    """Why Japanese cannot render here: no font for it in fontconfig. None if one is listed, or
    on a system without fontconfig (the rendering check decides there)."""
    fc_list = shutil.which("fc-list")
    if not fc_list:
        return None
    proc = subprocess.run([fc_list, ":lang=ja", "family"], capture_output=True, text=True, timeout=60)
    if proc.stdout.strip():
        return None
    return ("the Japanese test needs a Japanese font (`fc-list :lang=ja` lists none; Debian: "
            "apt-get install fonts-ipafont-gothic)")


# Draw each character alone on a canvas in the element's font, with the browser's font fallback as
# on the page, and digest the pixels. Without a font that has them, every character is drawn as the
# same missing-glyph box (tofu) or as nothing; with one, different characters differ.
GLYPH_DIGESTS_JS = r"""async (el, chars) => {
    const style = getComputedStyle(el);
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 64;
    const ctx = canvas.getContext('2d', {willReadFrequently: true});
    const out = {};
    for (const ch of chars) {
        ctx.clearRect(0, 0, 64, 64);
        ctx.font = `40px ${style.fontFamily}`;
        ctx.textBaseline = 'top';
        ctx.fillStyle = 'black';
        ctx.fillText(ch, 4, 4);
        const pixels = ctx.getImageData(0, 0, 64, 64).data;
        let ink = 0;
        for (let i = 3; i < pixels.length; i += 4) ink += pixels[i] > 0;
        const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', pixels));
        out[ch] = {ink: ink, digest: Array.from(digest.slice(0, 8), b => b.toString(16).padStart(2, '0')).join('')};
    }
    return out;
}"""
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


def test_japanese_text_renders(server, browser):
    """Japanese outputs (chapter 1) are drawn with real glyphs, not boxes; screenshot of the lines."""
    reason = _missing_japanese_font_reason()
    if reason:
        if os.environ.get("XLT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"XLT_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    local = urlparse(server).netloc
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        context.route("**/*", lambda r: r.continue_() if urlparse(r.request.url).netloc == local else r.abort())
        page = context.new_page()
        page.goto(urljoin(server, f"{JAPANESE_DOC}.html"), wait_until="load", timeout=120_000)
        outputs = page.locator(".cell_output pre", has_text=re.compile(JAPANESE_RE))
        assert outputs.count() > 0, f"{JAPANESE_DOC}: no output with Japanese text"
        pre = outputs.first
        # Every image decoded first: one still loading above would move the lines after measuring.
        page.evaluate("() => Promise.all(Array.from(document.images, i => i.decode().catch(() => null)))")
        _settle(page)
        pre.evaluate("pre => pre.scrollIntoView({block: 'center'})")
        box = pre.evaluate(JAPANESE_LINES_BOX_JS, JAPANESE_RE)
        ARTIFACTS.mkdir(exist_ok=True)
        pad = 6
        page.screenshot(path=str(ARTIFACTS / JAPANESE_SCREENSHOT),
                        clip={"x": max(box["x"] - pad, 0), "y": max(box["y"] - pad, 0),
                              "width": box["width"] + 2 * pad, "height": box["height"] + 2 * pad})
        found = list(dict.fromkeys(re.findall(JAPANESE_RE, pre.inner_text())))[:8]
        chars = found + [c for c in JAPANESE_EXTRA if c not in found]
        glyphs = pre.evaluate(GLYPH_DIGESTS_JS, chars)
        missing = pre.evaluate(GLYPH_DIGESTS_JS, [NO_GLYPH])[NO_GLYPH]
    finally:
        context.close()
    assert len(found) >= 3, f"{JAPANESE_DOC}: expected Japanese words in the output, found {found}"
    blank = [c for c, g in glyphs.items() if g["ink"] == 0]
    assert not blank, f"Japanese characters drawn as nothing: {blank}"
    tofu = [c for c, g in glyphs.items() if g["digest"] == missing["digest"]]
    assert not tofu, f"Japanese characters drawn as the missing-glyph box: {tofu}"
    digests = [g["digest"] for g in glyphs.values()]
    assert len(set(digests)) == len(digests), (
        f"different Japanese characters drawn as the same picture (missing-glyph boxes): {glyphs}")


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

    from xlt_utils.claims import CLAIMS

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
