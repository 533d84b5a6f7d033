"""Local Sphinx extension of the book: one workaround for the Sphinx 7 / sphinx-thebe pairing.

Sphinx < 8.2.3 adds an inline script (``app.add_js_file(None, body=...)``) twice when an extension
registers it after the HTML builder is initialised (sphinx-doc/sphinx#13402). sphinx-thebe does so,
and every page then declares ``const THEBE_JS_URL`` twice, which the browser reports as
"SyntaxError: Identifier 'THEBE_JS_URL' has already been declared". Jupyter Book 1 pins Sphinx 7,
so the duplicates are removed from each page's script list here.
"""

from __future__ import annotations


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


def setup(app):
    app.connect("html-page-context", drop_duplicate_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
