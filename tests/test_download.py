"""fetch() against a real HTTP server on 127.0.0.1: failures end in the right file or a clear error,
and never leave a partial or corrupt file in the cache."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
import warnings
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from xlt_utils import files
from xlt_utils.data import download
from xlt_utils.data.download import (
    ChecksumError,
    FetchError,
    OfflineError,
    UnpinnedHashWarning,
    fetch,
)

BODY = "".join(f"# sent_id = {i}\n1\tHello\thello\tINTJ\t_\t_\t0\troot\t_\t_\n\n" for i in range(200)).encode()
SHA = hashlib.sha256(BODY).hexdigest()
STALL_S = 3.0


class _Handler(BaseHTTPRequestHandler):
    hits: Counter  # set per server

    def log_message(self, *args):  # keep pytest output quiet
        pass

    def _send(self, body: bytes, status: int = 200, length: int | None = None):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self):  # noqa: N802 (http.server API)
        path = self.path.split("?")[0]
        self.hits[path] += 1
        n = self.hits[path]
        if path == "/ok.conllu":
            self._send(BODY)
        elif path == "/missing.conllu":
            self._send(b"not found", status=404)
        elif path == "/truncated.conllu":  # promises more bytes than it sends, then hangs up
            self._send(BODY[: len(BODY) // 2], length=len(BODY))
            self.close_connection = True
        elif path == "/wrong.conllu":
            self._send(BODY.replace(b"Hello", b"Hallo"))
        elif path == "/stall-body.conllu":  # headers and a little data, then silence
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:100])
            self.wfile.flush()
            time.sleep(STALL_S)
        elif path == "/stall-headers.conllu":  # accepts the connection, never answers in time
            time.sleep(STALL_S)
        elif path == "/flaky-503.conllu":  # fails once, then recovers
            self._send(b"busy", status=503) if n == 1 else self._send(BODY)
        elif path == "/flaky-drop.conllu":  # first response cut short, then recovers
            if n == 1:
                self._send(BODY[:50], length=len(BODY))
                self.close_connection = True
            else:
                self._send(BODY)
        else:
            self._send(b"?", status=404)


def _serve(handler_class: type[_Handler]):
    """A threaded HTTP server on 127.0.0.1 with `handler_class` and its own hit counter: yields
    (base URL, hits) and shuts the server down afterwards (the body of the server fixtures)."""
    hits: Counter = Counter()
    handler = type("Handler", (handler_class,), {"hits": hits})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server():
    yield from _serve(_Handler)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder, online mode, no XLT_DATA_DIR, no proxy."""
    for var in ("XLT_OFFLINE", "HF_HUB_OFFLINE", "XLT_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    d = tmp_path / "cache"
    monkeypatch.setenv("XLT_CACHE_DIR", str(d))
    return d


def _files(root: Path) -> list[Path]:
    """The files under `root`, but for the folders' lock files (``.lock``, empty, kept for the next fetch)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".lock") if root.exists() else []


FAST = {"timeout": 0.5, "retries": 2, "backoff": 0.05}


def test_download_ok_then_served_from_cache(server, cache):
    base, hits = server
    path = fetch(f"{base}/ok.conllu", sha256=SHA, **FAST)
    assert path.read_bytes() == BODY
    assert path.is_relative_to(cache) and path.name == "ok.conllu"
    assert _files(cache) == [path]  # no temp/partial files left beside it
    assert fetch(f"{base}/ok.conllu", sha256=SHA, **FAST) == path
    assert hits["/ok.conllu"] == 1


def test_404_is_a_clear_error_and_not_retried(server, cache):
    base, hits = server
    with pytest.raises(FetchError, match=r"HTTP 404") as e:
        fetch(f"{base}/missing.conllu", sha256=SHA, **FAST)
    assert f"{base}/missing.conllu" in str(e.value)
    assert hits["/missing.conllu"] == 1
    assert _files(cache) == []


def test_truncated_body_is_retried_then_fails(server, cache):
    base, hits = server
    with pytest.raises(FetchError, match="truncated body"):
        fetch(f"{base}/truncated.conllu", sha256=SHA, **FAST)
    assert hits["/truncated.conllu"] == 3  # 1 + 2 retries
    assert _files(cache) == []


def test_truncated_body_without_pinned_hash_is_still_rejected(server, cache):
    base, _ = server
    with pytest.raises(FetchError, match="truncated body"):
        fetch(f"{base}/truncated.conllu", sha256=None, **FAST)
    assert _files(cache) == []


def test_wrong_checksum(server, cache):
    base, hits = server
    with pytest.raises(ChecksumError, match="sha256 mismatch") as e:
        fetch(f"{base}/wrong.conllu", sha256=SHA, **FAST)
    assert SHA in str(e.value)
    assert hits["/wrong.conllu"] == 1
    assert _files(cache) == []


@pytest.mark.parametrize("path", ["/stall-body.conllu", "/stall-headers.conllu"])
def test_stalled_connection_times_out(server, cache, path):
    base, hits = server
    start = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        fetch(base + path, sha256=SHA, timeout=0.4, retries=1, backoff=0.05)
    assert time.monotonic() - start < STALL_S  # the client gave up, not the server
    assert hits[path] == 2
    assert _files(cache) == []


@pytest.mark.parametrize("path", ["/flaky-503.conllu", "/flaky-drop.conllu"])
def test_fails_once_then_recovers(server, cache, path):
    base, hits = server
    got = fetch(base + path, sha256=SHA, **FAST)
    assert got.read_bytes() == BODY
    assert hits[path] == 2
    assert _files(cache) == [got]


def test_no_retries_means_one_attempt(server, cache):
    base, hits = server
    with pytest.raises(FetchError, match="HTTP 503"):
        fetch(f"{base}/flaky-503.conllu", sha256=SHA, timeout=0.5, retries=0)
    assert hits["/flaky-503.conllu"] == 1
    assert _files(cache) == []


def test_corrupt_cached_file_is_replaced(server, cache):
    base, hits = server
    path = fetch(f"{base}/ok.conllu", sha256=SHA, **FAST)
    path.write_bytes(BODY[:-10])  # e.g. a disk error or a hand edit
    with pytest.warns(UserWarning, match="moved aside to ok.conllu.corrupt-.*and fetching again"):
        again = fetch(f"{base}/ok.conllu", sha256=SHA, **FAST)
    assert again == path and path.read_bytes() == BODY
    assert hits["/ok.conllu"] == 2


def test_unpinned_hash_is_recorded_and_then_enforced(server, cache):
    base, hits = server
    with pytest.warns(UnpinnedHashWarning, match=SHA):
        path = fetch(f"{base}/ok.conllu", sha256=None, **FAST)
    side = path.with_name(path.name + ".sha256")
    assert side.read_text().splitlines() == [SHA, "validated whole by xlt-utils 0.2.0 as conllu".replace(
        "0.2.0", download.__version__)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a good cached file: no warning, no request
        assert fetch(f"{base}/ok.conllu", sha256=None, **FAST) == path
    assert hits["/ok.conllu"] == 1
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning) as record:  # deleted, fetched again, its new hash recorded
        fetch(f"{base}/ok.conllu", sha256=None, **FAST)
    assert any("moved aside" in str(w.message) for w in record)
    assert path.read_bytes() == BODY and hits["/ok.conllu"] == 2


@pytest.mark.parametrize("var", ["XLT_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_fails_at_once_with_instructions(server, cache, monkeypatch, var):
    base, hits = server
    monkeypatch.setenv(var, "1")
    url = f"{base}/ok.conllu"
    start = time.monotonic()
    with pytest.raises(OfflineError) as e:
        fetch(url, sha256=SHA, **FAST)
    assert time.monotonic() - start < 0.5
    msg = str(e.value)
    assert f"{var}=1" in msg and url in msg and str(cache) in msg and SHA in msg
    assert "`toy` profile" in msg
    assert sum(hits.values()) == 0 and _files(cache) == []


def test_offline_still_uses_the_cache(server, cache, monkeypatch):
    base, hits = server
    path = fetch(f"{base}/ok.conllu", sha256=SHA, **FAST)
    monkeypatch.setenv("XLT_OFFLINE", "1")
    assert fetch(f"{base}/ok.conllu", sha256=SHA, **FAST) == path
    assert hits["/ok.conllu"] == 1


@pytest.fixture
def manifest(tmp_path, monkeypatch, server):
    """Point fetch at a manifest whose entries live on the test server."""
    base, _ = server
    files = {
        "t/ok.conllu": {"url": f"{base}/ok.conllu", "sha256": SHA},
        "t/mirrored.conllu": {
            "url": f"{base}/missing.conllu",
            "mirrors": [f"{base}/wrong.conllu", f"{base}/ok.conllu"],
            "sha256": SHA,
        },
        "t/all-bad.conllu": {
            "url": f"{base}/wrong.conllu",
            "mirrors": [f"{base}/missing.conllu"],
            "sha256": SHA,
        },
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"files": files}))
    monkeypatch.setattr(download, "MANIFEST_PATH", path)
    download.load_manifest.cache_clear()
    yield files
    download.load_manifest.cache_clear()


def test_manifest_name_and_mirrors(server, cache, manifest):
    base, hits = server
    assert fetch("t/ok.conllu", **FAST) == cache / "t" / "ok.conllu"
    got = fetch("t/mirrored.conllu", **FAST)  # 404, then wrong bytes, then the right file
    assert got == cache / "t" / "mirrored.conllu" and got.read_bytes() == BODY
    assert hits["/missing.conllu"] == 1 and hits["/wrong.conllu"] == 1
    with pytest.raises(FetchError) as e:
        fetch("t/all-bad.conllu", **FAST)
    assert "sha256 mismatch" in str(e.value) and "HTTP 404" in str(e.value)
    assert _files(cache) == [cache / "t" / "mirrored.conllu", cache / "t" / "ok.conllu"]


def test_manifest_hash_cannot_be_contradicted(cache, manifest):
    with pytest.raises(ValueError, match="contradicts"):
        fetch("t/ok.conllu", sha256="0" * 64)


def test_unknown_name_suggests_close_matches(cache, manifest):
    with pytest.raises(ValueError, match="Did you mean: t/ok.conllu"):
        fetch("t/ok.conlu")


def test_local_data_dir_override(server, cache, manifest, tmp_path, monkeypatch):
    base, hits = server
    data = tmp_path / "data"
    (data / "t").mkdir(parents=True)
    (data / "t" / "ok.conllu").write_bytes(BODY)
    monkeypatch.setenv("XLT_DATA_DIR", str(data))
    monkeypatch.setenv("XLT_OFFLINE", "1")  # a local copy needs no network at all
    assert fetch("t/ok.conllu") == data / "t" / "ok.conllu"
    (data / "t" / "mirrored.conllu").write_bytes(b"a wrong local copy")
    with pytest.raises(ChecksumError, match="XLT_DATA_DIR"):
        fetch("t/mirrored.conllu")
    assert (data / "t" / "mirrored.conllu").read_bytes() == b"a wrong local copy"  # not deleted
    assert sum(hits.values()) == 0 and _files(cache) == []


def test_real_manifest_hashes_match_the_shared_copies(shared_data, cache, monkeypatch):
    """Every pinned hash whose file exists in shared/data verifies through XLT_DATA_DIR, offline."""
    monkeypatch.setenv("XLT_DATA_DIR", str(shared_data))
    monkeypatch.setenv("XLT_OFFLINE", "1")
    checked = 0
    for name, entry in download.load_manifest().items():
        assert entry["url"].startswith("https://")
        if entry["sha256"] and (shared_data / name).is_file():
            assert fetch(name) == shared_data / name
            checked += 1
    assert checked == 36  # 25 UD + 3 Atis + 8 UNER files
    assert _files(cache) == []


# ------------------------------------------------------------------ issue 15: unpinned bodies, time, schemes

HTML = b"<!DOCTYPE html>\n<html><body><h1>Rate limit exceeded</h1></body></html>\n"
IOB = b"# sent_id = a\n1\tin\tO\t-\t-\n2\tBerlin\tB-LOC\t-\t-\n\n"
PARQUET = b"PAR1" + bytes(range(40)) + b"PAR1"


class _FaultHandler(_Handler):
    def _raw(self, body: bytes, ctype="text/plain"):  # no Content-Length: the body ends when the connection does
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def _trickle(self, data: bytes) -> bool:
        """Send `data` 1 byte every 0.4 s; False if the client hung up first."""
        for b in data:
            try:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
            except OSError:
                return False
            time.sleep(0.4)
        return True

    def do_GET(self):  # noqa: N802
        path = self.path.split("?")[0]
        self.hits[path] += 1
        bodies = {
            "/html.conllu": (HTML, "text/html"), "/html.iob2": (HTML, "text/plain"),
            "/cut.conllu": (BODY[: len(BODY) // 2 + 7], "text/plain"),
            "/cut-at-line.conllu": (BODY[: BODY.index(b"\n", len(BODY) // 2) + 1], "text/plain"),
            "/short.conllu": (b"# sent_id = 1\n", "text/plain"), "/empty.json": (b"", "application/json"),
            "/ok.iob2": (IOB, "text/plain"), "/junk.iob2": (b"hello world\n\n", "text/plain"),
            "/ok.parquet": (PARQUET, "application/octet-stream"),
            "/cut.parquet": (PARQUET[:-3], "application/octet-stream"),
            "/ok.json": (b'{"a": [1, 2]}', "application/json"), "/cut.json": (b'{"a": [1, ', "application/json"),
        }
        if path in bodies:
            self._raw(*bodies[path])
        elif path == "/trickle.conllu":  # 1 byte every 0.4 s: never idle long enough for the read timeout
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self._trickle(BODY[:40])
        elif path == "/trickle-headers.conllu":  # the status line itself, 1 byte every 0.4 s
            if self._trickle(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"):
                self.close_connection = True
        elif path == "/trickle-nolength.conllu":  # no Content-Length: only the deadline can end it
            self.send_response(200)
            self.end_headers()
            if self._trickle(BODY[:40]):
                self.close_connection = True
        elif path == "/to-file.conllu":
            self.send_response(302)
            self.send_header("Location", "file:///etc/hostname")
            self.end_headers()
        else:
            super().do_GET()


@pytest.fixture
def fault_server():
    yield from _serve(_FaultHandler)


@pytest.mark.parametrize("path, reason", [
    ("/html.conllu", "HTML"),
    ("/html.iob2", "HTML"),
    ("/cut.conllu", "does not end with an empty line"),
    ("/cut-at-line.conllu", "does not end with an empty line"),
    ("/short.conllu", "does not end with an empty line"),
    ("/junk.iob2", "not a valid iob2 file: line 1"),
    ("/cut.parquet", "PAR1"),
    ("/cut.json", "not valid JSON"),
    ("/empty.json", "empty"),
])
def test_an_unpinned_body_that_is_not_its_format_is_never_cached(fault_server, cache, path, reason):
    base, hits = fault_server
    with pytest.raises(FetchError, match=reason) as e:
        fetch(base + path, sha256=None, **FAST)
    assert "not cached" in str(e.value) and base + path in str(e.value)
    assert _files(cache) == []
    assert hits[path] == 1  # a wrong body is not a transient failure


@pytest.mark.parametrize("path, body", [("/ok.iob2", IOB), ("/ok.parquet", PARQUET), ("/ok.json", b'{"a": [1, 2]}')])
def test_an_unpinned_body_of_the_right_format_is_cached(fault_server, cache, path, body):
    base, _ = fault_server
    with pytest.warns(UnpinnedHashWarning):
        got = fetch(base + path, sha256=None, **FAST)
    assert got.read_bytes() == body


@pytest.mark.parametrize("path, sha", [("/trickle.conllu", SHA), ("/trickle-headers.conllu", SHA),
                                       ("/trickle-nolength.conllu", None)])
@pytest.mark.slow
def test_a_trickle_fails_within_the_overall_deadline(fault_server, cache, path, sha):
    base, hits = fault_server
    start = time.monotonic()
    with pytest.raises(FetchError, match="deadline"):
        fetch(base + path, sha256=sha, timeout=1.0, retries=3, backoff=0.05, deadline=2.0)
    assert time.monotonic() - start < 4.0  # the trickle alone would take 16-20 s per attempt
    assert hits[path] == 1 and _files(cache) == []


@pytest.mark.parametrize("url", ["file:///etc/hostname", "FILE:///etc/hostname", "ftp://127.0.0.1/x.conllu",
                                 "data:text/plain,hello"])
def test_only_http_urls_are_fetched(cache, url):
    with pytest.raises(ValueError, match="not an http\\(s\\) URL"):
        fetch(url, sha256=None, **FAST)
    assert _files(cache) == []


def test_a_redirect_to_a_file_url_is_not_followed(fault_server, cache):
    base, _ = fault_server
    with pytest.raises(FetchError, match="(file:///etc/hostname.* is not allowed)|(non-http)"):
        fetch(f"{base}/to-file.conllu", sha256=None, **FAST)
    assert _files(cache) == []


def test_a_manifest_file_url_is_refused(tmp_path, monkeypatch, cache):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"files": {"t/x.conllu": {"url": "file:///etc/hostname", "sha256": None}}}))
    monkeypatch.setattr(download, "MANIFEST_PATH", path)
    download.load_manifest.cache_clear()
    try:
        with pytest.raises(ValueError, match="manifest entry 't/x.conllu'.*not an http\\(s\\) URL"):
            fetch("t/x.conllu")
    finally:
        download.load_manifest.cache_clear()


def test_every_manifest_file_we_hold_a_copy_of_is_pinned(shared_data):
    """Pin what can be pinned: each manifest file with a byte copy in shared/data has its sha256
    pinned, except ja_pud, whose copy is the 2019 file while the manifest asks for r2.17."""
    import hashlib as _h

    unpinned_with_copy = []
    for name, entry in download.load_manifest().items():
        local = shared_data / name
        if not local.is_file():
            continue
        if entry["sha256"] is None:
            unpinned_with_copy.append(name)
        else:
            assert entry["sha256"] == _h.sha256(local.read_bytes()).hexdigest(), name
    assert unpinned_with_copy == ["ud/UD_Japanese-PUD/ja_pud-ud-test.conllu"]


def _git_blob(data: bytes) -> str:
    """The git object id of a file with these bytes (what `git hash-object` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_every_manifest_entry_says_where_its_hash_came_from_or_why_it_has_none():
    """A pinned sha256 names its source (sha256_from) and a commit URL to fall back on; a null one says
    why (sha256_missing). A git_blob is a full git object id; a blob named in sha256_from is 12 hex digits."""
    entries = download.load_manifest()
    assert len(entries) == 72
    for name, entry in entries.items():
        if entry["sha256"] is None:
            assert entry.get("sha256_missing"), name
            assert "sha256_from" not in entry and "mirrors" not in entry, name
        else:
            assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), name
            assert entry.get("sha256_from") and "sha256_missing" not in entry, name
            repo = entry["url"].split("/")[4]
            assert entry["mirrors"] and all(re.fullmatch(rf"https://github\.com/Universal(Dependencies|NER)/{repo}/raw/"
                                                         rf"[0-9a-f]{{12}}/{re.escape(Path(name).name)}", m)
                                            for m in entry["mirrors"]), name
            assert all(re.fullmatch(r"[0-9a-f]{12}", b) for b in re.findall(r"git blob (\S+?)\)", entry["sha256_from"])), name
        if "git_blob" in entry:
            assert entry["sha256"] is None and re.fullmatch(r"[0-9a-f]{40}", entry["git_blob"]), name


def test_the_git_blobs_the_manifest_names_match_the_shared_copies(shared_data):
    """The provenance recorded in the manifest holds for the bytes in shared/data: where sha256_from says a
    pin equals the r2.17 tag's file (git blob X), the local copy is that git object; where the manifest
    records only the r2.17 git_blob (ja_pud), the local copy is another file (the 2019 one), so it must
    not be pinned from it."""
    checked = []
    for name, entry in download.load_manifest().items():
        local = shared_data / name
        if not local.is_file():
            continue
        blob = _git_blob(local.read_bytes())
        named = re.findall(r"git blob ([0-9a-f]{12})\)", entry.get("sha256_from", ""))
        if named:
            assert [blob[:12]] == named, name
            checked.append(name)
        if "git_blob" in entry:
            assert blob != entry["git_blob"], f"{name}: shared/data now holds the r2.17 file: pin its sha256"
            checked.append(name)
    assert "ud/UD_Japanese-PUD/ja_pud-ud-test.conllu" in checked
    assert len(checked) == 17  # 12 PUD test files, 3 Atis files and Chinese-GSD dev verified against r2.17; ja_pud


def test_an_html_page_cached_by_an_older_version_is_not_trusted(server, cache):
    base, hits = server
    url = f"{base}/ok.conllu"
    rel, _, _ = download._resolve(url, None)
    stale = cache / rel
    stale.parent.mkdir(parents=True)
    stale.write_bytes(HTML)  # cached and hash-recorded by the old code, which validated nothing
    download._sidecar(stale).write_text(hashlib.sha256(HTML).hexdigest() + "\n")
    with pytest.warns(UserWarning) as record:
        got = fetch(url, sha256=None, **FAST)
    assert any("HTML" in str(w.message) and "moved aside" in str(w.message) for w in record)
    assert got == stale and got.read_bytes() == BODY and hits["/ok.conllu"] == 1
    assert download._sidecar(stale).read_text().splitlines()[0] == SHA


# ------------------------------------------------------- issue 25: whole bodies, races, odd URLs, file modes

ONE = b"# sent_id = only\n1\tHello\thello\tINTJ\t_\t_\t0\troot\t_\t_\n\n"
JUNK_AFTER = ONE + b"this is not CoNLL-U\n<p>an error page's tail</p>\n\n"
CUT_AT = BODY.index(b"\n\n", len(BODY) // 2) + 2  # a sentence boundary half-way


class _WholeBodyHandler(_Handler):
    def do_GET(self):  # noqa: N802
        path = self.path.split("?")[0]
        self.hits[path] += 1
        if path == "/junk-after.conllu":  # one valid sentence, then junk: the old check accepted it
            self._send(JUNK_AFTER)
        elif path == "/cut-boundary.conllu":  # announces the whole file, sends up to a sentence boundary
            self._send(BODY[:CUT_AT], length=len(BODY))
            self.close_connection = True
        elif path == "/cut-boundary-chunked.conllu":  # chunked, ends at a sentence boundary without the last chunk
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            body = BODY[:CUT_AT]
            self.wfile.write(f"{len(body):x}\r\n".encode() + body + b"\r\n")
            self.wfile.flush()
            self.close_connection = True
        else:
            super().do_GET()


@pytest.fixture
def whole_server():
    yield from _serve(_WholeBodyHandler)


def test_junk_after_a_valid_sentence_is_not_cached(whole_server, cache):
    base, hits = whole_server
    with pytest.raises(FetchError, match=r"rejected, not cached: not a valid conllu file: line 4") as e:
        fetch(f"{base}/junk-after.conllu", sha256=None, **FAST)
    assert "every sentence must be valid" in str(e.value)
    assert _files(cache) == [] and hits["/junk-after.conllu"] == 1


@pytest.mark.parametrize("path", ["/cut-boundary.conllu", "/cut-boundary-chunked.conllu"])
def test_a_body_cut_at_a_sentence_boundary_is_caught_by_the_transfer(whole_server, cache, path):
    """The cut body is valid CoNLL-U on its own (it ends with a whole sentence and its empty line):
    only the transfer can tell, by its Content-Length or its unfinished chunked encoding."""
    base, hits = whole_server
    assert BODY[:CUT_AT].endswith(b"\n\n") and download.validate_body.__name__
    with pytest.raises(FetchError, match="truncated body|IncompleteRead"):
        fetch(base + path, sha256=None, **FAST)
    assert hits[path] == 3 and _files(cache) == []  # retried as transient, nothing cached


def _plant_old_cache(cache: Path, url: str, body: bytes) -> Path:
    """A cached copy and its hash as the previous version recorded them (one line, no validation mark)."""
    rel, _, _ = download._resolve(url, None)
    stale = cache / rel
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(body)
    download._sidecar(stale).write_text(hashlib.sha256(body).hexdigest() + "\n")
    return stale


@pytest.mark.parametrize("body", [JUNK_AFTER, BODY[:CUT_AT - 1]], ids=["junk after a sentence", "cut short"])
def test_an_invalid_copy_cached_by_an_older_version_is_moved_aside_and_fetched_again(server, cache, body):
    base, hits = server
    url = f"{base}/ok.conllu"
    stale = _plant_old_cache(cache, url, body)
    with pytest.warns(UserWarning) as record:
        got = fetch(url, sha256=None, **FAST)
    assert re.search(r"is not a valid file: .*moved aside to ok\.conllu\.corrupt-", str(record[0].message))
    assert record[1].category is UnpinnedHashWarning  # downloaded again, and its hash recorded again
    assert got == stale and got.read_bytes() == BODY and hits["/ok.conllu"] == 1
    (aside,) = stale.parent.glob("ok.conllu.corrupt-*")
    assert aside.read_bytes() == body  # kept for inspection, never read again
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # validated and recorded: no warning, no request the next time
        assert fetch(url, sha256=None, **FAST) == got
    assert hits["/ok.conllu"] == 1


def test_a_valid_copy_cached_by_an_older_version_is_validated_once_and_kept(server, cache):
    base, hits = server
    url = f"{base}/ok.conllu"
    stale = _plant_old_cache(cache, url, BODY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fetch(url, sha256=None, **FAST) == stale
    assert hits["/ok.conllu"] == 0 and download._cache_state(stale, None)[0] == "ok"


def test_fetch_read_moves_a_copy_the_reader_refuses_aside_and_reads_a_fresh_one(server, cache):
    """A copy recorded as validated that the reader now refuses (its rules grew stricter): read once,
    refused, moved aside, fetched again, read."""
    from xlt_utils.data.conllu_io import read_conllu

    base, hits = server
    url = f"{base}/ok.conllu"
    stale = _plant_old_cache(cache, url, JUNK_AFTER)
    download._record(stale, hashlib.sha256(JUNK_AFTER).hexdigest(), "x.conllu")  # as if validated by this version
    assert download._cache_state(stale, None)[0] == "ok"
    with pytest.warns(UserWarning) as record:
        sents = download.fetch_read(url, lambda p: read_conllu(p, "en"), sha256=None, **FAST)
    assert "the reader refuses it" in str(record[0].message) and record[1].category is UnpinnedHashWarning
    assert len(sents) == 200 and hits["/ok.conllu"] == 1 and stale.read_bytes() == BODY


@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "unpinned"])
def test_concurrent_fetches_of_a_corrupt_cached_copy(server, cache, pinned):
    """120 threads fetch one file whose cached copy is corrupt: every one gets the good file (the old
    code raised a bare FileNotFoundError in some: one thread deleted the copy another was hashing),
    and it is downloaded once."""
    from concurrent.futures import ThreadPoolExecutor

    base, hits = server
    url = f"{base}/ok.conllu"
    sha = SHA if pinned else None
    with pytest.warns(UnpinnedHashWarning) if not pinned else contextlib.nullcontext():
        path = fetch(url, sha256=sha, **FAST)
    path.write_bytes(BODY[:-10])
    hits.clear()
    with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=24) as pool:
        warnings.simplefilter("ignore")
        results = list(pool.map(lambda _: _try(lambda: fetch(url, sha256=sha, **FAST)), range(120)))
    assert [r for r in results if not isinstance(r, Path)] == []
    assert set(results) == {path} and path.read_bytes() == BODY
    assert hits["/ok.conllu"] == 1
    assert len(list(path.parent.glob("ok.conllu.corrupt-*"))) == 1
    assert not [p for p in _files(cache) if p.name.endswith(".part")]


def _try(fn):
    try:
        return fn()
    except BaseException as e:  # noqa: BLE001 - collected and shown by the test
        return f"{type(e).__name__}: {e}"


@pytest.mark.parametrize("tail", ["/ok/..", "/ok/.", "/..", "/%2e%2e", "/ok/%2F..%2F..", "/" + "a" * 300 + ".conllu",
                                  "/.hidden", "/ok.conllu/..?x=../../..", "/ok.conllu#/../../x"])
def test_odd_urls_fail_cleanly_or_land_inside_the_cache(server, cache, tail):
    base, hits = server
    url = base + tail
    for _ in range(2):  # the second time, the folders of the first are there
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = fetch(url, sha256=None, **FAST)
        except FetchError as e:
            assert "HTTP 404" in str(e), str(e)
            assert _files(cache) == []
        else:  # the fragment is not sent: this one is /ok.conllu
            assert tail.startswith("/ok.conllu#") and got.read_bytes() == BODY
            assert got.parent.parent == cache / "url" and _files(cache) == [got, download._sidecar(got)]
    names = [p.relative_to(cache).parts for p in cache.rglob("*")]
    assert all(len(parts) <= 3 and parts[0] == "url" and ".." not in parts and len(parts[-1]) <= 100
               for parts in names), names


def test_url_file_names():
    name = download._url_file_name
    assert name("http://h/x/ok.conllu") == "ok.conllu" and name("http://h/x/ok.conllu/") == "ok.conllu"
    assert name("http://h/ok/..") == name("http://h/ok/.") == name("http://h/") == name("http://h") == "download"
    assert name("http://h/ok.conllu?a=/../b#c/..") == "ok.conllu" and name("http://h/.bashrc") == "bashrc"
    assert name("http://h/" + "a" * 300 + ".conllu") == "a" * 93 + ".conllu"


def test_downloaded_files_and_their_hashes_have_the_usual_mode(server, cache):
    """0666 minus the umask, like the result records (0644 under umask 022), not mkstemp's 0600."""
    import os
    import stat

    base, _ = server
    old = os.umask(0o022)
    try:
        with pytest.warns(UnpinnedHashWarning):
            path = fetch(f"{base}/ok.conllu", sha256=None, **FAST)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(download._sidecar(path).stat().st_mode) == 0o644


def test_temporary_files_have_unpredictable_names_and_never_follow_a_symlink(tmp_path, monkeypatch):
    import os

    victim = tmp_path / "victim"
    victim.write_text("keep me")
    names = set()
    for _ in range(50):
        fd, path = files.create_temp(tmp_path, ".x.", ".part")
        os.close(fd)
        names.add(path.name)
        path.unlink()
    assert len(names) == 50
    # a symlink planted at the very name drawn is refused (O_EXCL), not followed: another name is drawn
    (tmp_path / ".y.0000000000000000.part").symlink_to(victim)
    real, first = files.secrets.token_hex, iter(["0" * 16])
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: next(first, None) or real(n))
    fd, path = files.create_temp(tmp_path, ".y.", ".part")
    with os.fdopen(fd, "w") as f:
        f.write("new")
    assert path.name != ".y.0000000000000000.part" and path.read_text() == "new"
    assert victim.read_text() == "keep me"


def test_a_planted_lock_symlink_is_not_followed(server, cache, tmp_path):
    base, _ = server
    url = f"{base}/ok.conllu"
    rel, _, _ = download._resolve(url, SHA)
    folder = (cache / rel).parent
    folder.mkdir(parents=True)
    victim = tmp_path / "victim"
    (folder / ".lock").symlink_to(victim)
    with pytest.raises(FetchError, match="could not use the cache"):
        fetch(url, sha256=SHA, **FAST)
    assert not victim.exists()
