"""Local Sphinx extension of the book: three workarounds for Jupyter Book 1, and the diagrams.

1. Sphinx < 8.2.3 adds an inline script (``app.add_js_file(None, body=...)``) twice when an
   extension registers it after the HTML builder is initialised (sphinx-doc/sphinx#13402).
   sphinx-thebe does so, and every page then declares ``const THEBE_JS_URL`` twice, which the browser
   reports as "SyntaxError: Identifier 'THEBE_JS_URL' has already been declared". Jupyter Book 1 pins
   Sphinx 7, so the duplicates are removed from each page's script list here.

2. Jupyter Book adds every ``*.js`` file under ``book/_static`` to ``html_js_files``, that is to
   every page. The vendored ipywidgets scripts (``_static/ipywidgets/``: the 1.9 MB embed bundle of
   @jupyter-widgets/html-manager and its MathJax 3 shim) belong only on the pages whose notebook
   stores widget state, where myst-nb adds them itself (``nb_ipywidgets_js`` in _config.yml). The
   vendored MathJax (``_static/mathjax/``) is loaded by sphinx.ext.mathjax (``mathjax_path`` in
   _config.yml), deferred and after its configuration; as a plain script on every page it would run
   twice, once before its configuration. Both folders are taken out of ``html_js_files`` here,
   before the HTML builder reads it.

3. sphinx-book-theme builds the launch links (Colab) from ``repository.path_to_book`` and the page
   name, so a chapter links to ``book/notebooks/<chapter>.ipynb``. ``book/notebooks`` is a symlink
   to ``../notebooks``, which GitHub (and so Colab) does not follow; the links are pointed at the
   file the symlink resolves to, ``notebooks/<chapter>.ipynb``, the same path as the notebooks'
   own "Open in Colab" badges.

4. The chapters show their diagrams (notebooks/figures/*.svg, drawn by xlt_utils.diagrams) with a
   markdown image whose address is the file on GitHub (raw.githubusercontent.com/<repository>/
   <branch>/<path>), so that the image shows on Colab, which opens a notebook without its folder.
   In the book such an address is mapped to the file of this checkout, before Sphinx collects the
   images: the page shows the stored SVG (copied to _images/ like any local image) and makes no
   request outside the book. An address whose file is not in the repository is a build warning.
   The image is shown as wide as the column and links to its file, to be seen full size on a phone.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx.transforms import SphinxTransform
from sphinx.util import logging

logger = logging.getLogger(__name__)
RAW_HOST = "https://raw.githubusercontent.com/"

#: Folders under _static whose scripts are added per page (by myst-nb: the widget scripts; by
#: sphinx.ext.mathjax: MathJax), never to every page.
PER_PAGE_JS_DIRS = ("ipywidgets/", "mathjax/")


def _script_key(js) -> tuple:
    filename = getattr(js, "filename", js) or ""
    attributes = getattr(js, "attributes", {}) or {}
    return (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    """Keep the first of identical <script> entries (same file or body, same attributes)."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        key = _script_key(js)
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique  # a new list: the builder's own list is shared by all pages


def keep_widget_scripts_per_page(app, config) -> None:
    """Remove the PER_PAGE_JS_DIRS scripts from html_js_files (Jupyter Book lists every _static script)."""

    def name(entry) -> str:
        return str(entry[0] if isinstance(entry, (tuple, list)) else entry)

    config.html_js_files = [e for e in config.html_js_files
                            if not name(e).startswith(PER_PAGE_JS_DIRS)]


def launch_links_follow_symlinks(app, pagename, templatename, context, doctree) -> None:
    """Rewrite the launch buttons' repository path of a page whose source is behind a symlink."""
    book_rel = str((app.config.html_theme_options or {}).get("path_to_docs", "")).strip("/")
    if not book_rel or not context.get("header_buttons"):
        return
    source = Path(app.env.doc2path(pagename))
    if not source.is_file():
        return
    srcdir = Path(app.srcdir)
    root = srcdir.joinpath(*[".."] * len(book_rel.split("/")))
    try:
        as_linked = f"{book_rel}/{source.relative_to(srcdir).as_posix()}"
        real = source.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:  # outside the book or the repository: leave the links alone
        return
    if real == as_linked:
        return
    for group in context["header_buttons"]:
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if "url" in button:
                button["url"] = button["url"].replace(f"/{as_linked}", f"/{real}")


def _raw_prefix(config) -> str | None:
    """https://raw.githubusercontent.com/<owner>/<name>/<branch>/ of the book's repository."""
    options = config.html_theme_options or {}
    url = str(options.get("repository_url", "")).rstrip("/")
    if not url.startswith("https://github.com/"):
        return None
    branch = options.get("repository_branch") or "main"
    return f"{RAW_HOST}{url.removeprefix('https://github.com/')}/{branch}/"


class LocalRepositoryImages(SphinxTransform):
    """Point images addressed by the repository's raw GitHub URL at the file in this checkout."""

    default_priority = 100

    def apply(self, **kwargs) -> None:
        prefix = _raw_prefix(self.config)
        if not prefix:
            return
        srcdir = Path(self.env.srcdir)
        book_rel = str((self.config.html_theme_options or {}).get("path_to_docs", "")).strip("/")
        root = srcdir.joinpath(*[".."] * len(book_rel.split("/"))) if book_rel else srcdir
        for image in self.document.findall(nodes.image):
            uri = image.get("uri", "")
            if not uri.startswith(prefix):
                continue
            rel = uri.removeprefix(prefix).split("?")[0]
            target = (root / rel).resolve()
            # the same file as seen from the book's source folder (book/notebooks is a symlink)
            inside = [c for c in (srcdir / rel, srcdir / Path(rel).name)
                      if c.is_file() and c.resolve() == target]
            if not target.is_file() or not inside:
                logger.warning(f"image {uri}: no file {rel} in the repository under the book",
                               location=image)
                continue
            image["uri"] = "/" + inside[0].relative_to(srcdir).as_posix()
            image["candidates"] = {}
            # as wide as the column; Sphinx then links it to the file (html_scaled_image_link), so a
            # reader on a phone taps it to see it full size
            image.setdefault("width", "100%")


def setup(app):
    app.add_transform(LocalRepositoryImages)
    # Before sphinx.builders.html's own config-inited handler (priority 800) and the builder.
    app.connect("config-inited", keep_widget_scripts_per_page, priority=400)
    app.connect("html-page-context", drop_duplicate_scripts)
    # After sphinx-book-theme's add_launch_buttons (priority 501).
    app.connect("html-page-context", launch_links_follow_symlinks, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
