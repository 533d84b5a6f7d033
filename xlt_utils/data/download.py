"""One helper, `fetch`, for every remote file: checksummed, cached, retried, atomic, offline-aware.

    path = fetch("ud/UD_French-GSD/fr_gsd-ud-train.conllu")   # a name from manifest.json
    path = fetch("https://example.org/x.tsv", sha256="...")    # or a URL and its hash

Where a file comes from, in this order:

1. ``$XLT_DATA_DIR/<name>`` when that variable is set and the file exists there (a local copy
   you made by hand, e.g. ``XLT_DATA_DIR=../shared/data``). Its hash is checked; a mismatch is
   an error and the file is left alone (it is yours).
2. The cache, ``$XLT_CACHE_DIR/<name>`` (default ``~/.cache/xlt``). A cached file whose hash does
   not match, or (hash not pinned) whose body is not a valid file of its format, is moved aside
   (``<name>.corrupt-<time>-<pid>``, with a warning naming it) and fetched again.
3. The network, unless offline mode is on (``XLT_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``), in which
   case `OfflineError` says at once which URL to download by hand and where to put it.

Downloads go to a temporary file in the cache folder, are hashed while they stream, and are
moved to their final name with `os.replace` only after the length and the sha256 check out, so
no partial or corrupt file is ever visible under the final name. Temporary files get unpredictable
names and are created exclusively (never through a planted file or symlink, `create_temp`), with
the usual mode (0666 minus the umask: 0644 under umask 022), as are the files they become.
Everything that changes a cache folder (moving a bad copy aside, downloading, recording a hash)
happens under an exclusive lock on that folder (``.lock`` in it), so concurrent fetches of one file,
from threads or processes, download it once and never see each other's half-done work; a good
cached file is returned without the lock (a read-only cache works). Each request has a timeout
(connect and every read, so a stalled connection fails), and transient failures (timeouts,
dropped connections, truncated bodies, HTTP 408/429/5xx) are retried with exponential backoff.
A 404 or other client error is not retried; the next URL of the entry (its ``mirrors``) is tried.

Hashes: the manifest pins a sha256 where one could be computed when it was written. Where it is
``null``, the first download is trusted only after its whole body is validated as its format
(`validate_body`: a CoNLL-U or IOB2 file must end with an empty line and every one of its sentences
must read, with the reader's checks, so an HTML error page, junk after a valid prefix, or a body cut
short is rejected; Parquet must carry its ``PAR1`` magic bytes at both ends; JSON must parse; an
HTML page is never accepted), its hash is recorded beside it in the cache (``<file>.sha256``, with
the package version that validated it) so that later corruption is still detected, and an
`UnpinnedHashWarning` shows the hash so that it can be pinned in ``manifest.json``. A body cut at a
sentence boundary is caught where the transfer shows it (fewer bytes than its Content-Length, a
chunked body that ends early, a last sentence without its empty line); a server that closes early
without announcing a length and at a sentence boundary cannot be told from a whole file: pin the
hash. An unpinned cached file is validated again, whole, by a new package version (its rules may
be stricter), and `fetch_read` moves a cached unpinned file aside and fetches it again when the
reader refuses it, so that a bad copy is never trusted forever.

Names: a manifest name is a relative path without ``..``; a URL is cached under
``url/<hash of the URL>/<its last path segment>``, that segment reduced to ``[A-Za-z0-9._-]``,
never ``.`` or ``..`` (``download`` then) and at most 100 characters.

Time: besides the per-read `timeout`, every file has an overall `deadline` (seconds, all attempts
and mirrors together), so a server that trickles bytes just fast enough to dodge the read timeout
still fails in bounded time (a watchdog shuts the socket down at the deadline, so a trickled status
line or header fails too). Only http(s) URLs are fetched (``file://`` and other schemes are
refused, and redirects to them are not followed).
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from .. import __version__, settings
from ..files import corrupt_name, create_temp, folder_lock, sha256_file, write_atomic
from .conllu_io import read_conllu
from .iob2 import read_iob2
from .records import DataFormatError

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_CHUNK = 1 << 16
_UNSET = object()


class FetchError(RuntimeError):
    """A file could not be obtained; the message says what was tried and how to get it by hand."""


class ChecksumError(FetchError):
    """A file's sha256 does not match the expected one."""


class OfflineError(FetchError):
    """Offline mode is on and the file is neither cached nor in XLT_DATA_DIR."""


class UnpinnedHashWarning(UserWarning):
    """A file was downloaded whose sha256 is not pinned in the manifest."""


class _Retryable(Exception):
    """A transient failure of one download attempt."""


@functools.lru_cache(maxsize=1)
def load_manifest() -> dict[str, dict]:
    """The ``files`` table of manifest.json: logical name -> {url, sha256, mirrors?, ...}."""
    with open(MANIFEST_PATH, encoding="utf-8") as f:
        files = json.load(f)["files"]
    for name in files:
        _check_relative(name)
    return files


def cache_dir() -> Path:
    """The cache folder: `settings.current().cache_dir` (``$XLT_CACHE_DIR`` or ``~/.cache/xlt``)."""
    return settings.current().cache_dir


def offline_reason() -> str | None:
    """``"XLT_OFFLINE=1"`` (or the HF variable) when offline mode is on, else None."""
    return settings.current().offline


def fetch(
    name_or_url: str,
    sha256: str | None = _UNSET,  # type: ignore[assignment]
    *,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
    deadline: float | None = 1800.0,
) -> Path:
    """Return a local path to the verified file `name_or_url` (a manifest name or an http(s) URL).

    `sha256`: expected hash; for a manifest name it defaults to the manifest's, for a URL to
    None (trust on first use, see the module docstring). `timeout`: seconds per connect/read.
    `retries`: extra attempts per URL after a transient failure, waiting ``backoff * 2**k`` s.
    `deadline`: seconds for the whole download of this file, every attempt and mirror together
    (None: no overall limit).
    """
    rel, urls, expected = _resolve(name_or_url, sha256)
    end = None if deadline is None else time.monotonic() + deadline

    local = _from_data_dir(rel, expected)
    if local is not None:
        return local

    target = cache_dir() / rel
    if _cache_state(target, expected)[0] == "ok":  # the common case, without the lock: nothing changes
        return target
    reason = offline_reason()
    if reason and not target.exists():
        raise OfflineError(_offline_message(reason, rel, urls, expected, target))
    try:
        with folder_lock(target.parent):
            if _usable(target, expected, rel):  # another fetch may have fixed it while this one waited
                return target
            if reason:
                raise OfflineError(_offline_message(reason, rel, urls, expected, target))
            return _download_to_cache(rel, urls, expected, target, timeout, retries, backoff, end)
    except OSError as e:  # a cache folder that cannot be created, locked or written: say which, never a bare OSError
        raise FetchError(f"could not use the cache for {rel!r} at {target}: {type(e).__name__}: {e}") from e


def fetch_read(name_or_url: str, read, **fetch_kw):
    """``read(fetch(name_or_url))``, trusting no bad copy forever: when `read` raises a
    `DataFormatError` on a cached file whose sha256 is not pinned, that copy is moved aside (with a
    warning), fetched again, and read once more (a second refusal is raised: the file itself is bad).
    A pinned file or one from XLT_DATA_DIR is read as it is (its bytes are the ones asked for)."""
    path = fetch(name_or_url, **fetch_kw)
    rel, _, expected = _resolve(name_or_url, fetch_kw.get("sha256", _UNSET))
    target = cache_dir() / rel
    if expected is not None or path != target:
        return read(path)
    before = os.stat(path)
    try:
        return read(path)
    except DataFormatError as e:
        with folder_lock(target.parent):
            now = _stat(target)  # move aside the copy that was read, not one another fetch put there since
            if now is not None and (now.st_ino, now.st_mtime_ns) == (before.st_ino, before.st_mtime_ns):
                _move_aside(target, f"the reader refuses it ({e})")
    return read(fetch(name_or_url, **fetch_kw))


def _stat(path: Path):
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def hub_offline():
    """Keep the Hugging Face libraries off the network for the block: ``huggingface_hub``'s offline
    flag (which transformers reads too) and, when it is imported, ``datasets``' copy of it are set,
    then restored. `local_files_only=True` alone is not enough: huggingface_hub still makes requests
    of its own (its agent-harness registry, ``/api/agent-harnesses``) unless the flag is set, and it
    reads HF_HUB_OFFLINE only when it is first imported, so XLT_OFFLINE=1 (or an HF_HUB_OFFLINE set
    later) never reaches it. The flags are process-wide while the block runs."""
    import sys

    import huggingface_hub.constants

    targets = [m for m in (huggingface_hub.constants, sys.modules.get("datasets.config")) if m is not None]
    saved = [(m, m.HF_HUB_OFFLINE) for m in targets]
    for m in targets:
        m.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for m, value in saved:
            m.HF_HUB_OFFLINE = value


def _offline_message(reason: str, rel: str, urls: list[str], expected: str | None, target: Path) -> str:
    return (f"Offline mode is on ({reason}) and {rel!r} is neither cached nor in XLT_DATA_DIR.\n"
            + _by_hand(rel, urls, expected, target))


def _download_to_cache(rel, urls, expected, target, timeout, retries, backoff, end) -> Path:
    """Download the first URL that gives the right (or, unpinned, a valid) body into the cache; the
    caller holds the folder's lock."""
    failures = []
    for url in urls:
        try:
            tmp, digest = _download(url, target, timeout=timeout, retries=retries, backoff=backoff, end=end)
        except FetchError as e:
            failures.append(f"{url}: {e}")
            continue
        try:
            if expected is not None and digest != expected:
                failures.append(f"{url}: sha256 mismatch (got {digest}, expected {expected})")
                continue
            if expected is None:  # nothing to check it against: it must at least be what it claims to be
                problem = validate_body(tmp, rel)
                if problem:
                    failures.append(f"{url}: rejected, not cached: {problem}")
                    continue
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        if expected is None:
            _record(target, digest, rel)
            warnings.warn(
                f"{rel}: downloaded from {url}; its sha256 is not pinned in {MANIFEST_PATH.name}. "
                f"Recorded {digest} in the cache; pin it in the manifest to verify future downloads.",
                UnpinnedHashWarning,
                stacklevel=3,
            )
        return target

    cls = (
        ChecksumError if failures and all("sha256 mismatch" in f for f in failures) else FetchError
    )
    raise cls(
        f"Could not fetch {rel!r}:\n  "
        + "\n  ".join(failures)
        + "\nNothing was left in the cache.\n"
        + _by_hand(rel, urls, expected, target)
    )


def _resolve(name_or_url: str, sha256) -> tuple[str, list[str], str | None]:
    """(cache-relative name, URLs to try in order, expected sha256 or None)."""
    manifest = load_manifest()
    if name_or_url in manifest:
        entry = manifest[name_or_url]
        pinned = entry.get("sha256")
        if sha256 is not _UNSET and sha256 is not None and pinned and sha256.lower() != pinned:
            raise ValueError(f"{name_or_url}: sha256={sha256} contradicts the manifest's {pinned}")
        expected = pinned if sha256 is _UNSET or sha256 is None else sha256
        urls = [entry["url"], *entry.get("mirrors", [])]
        for url in urls:
            _check_scheme(url, f"manifest entry {name_or_url!r}")
        return name_or_url, urls, _norm_hash(expected)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", name_or_url) and not re.match(r"^https?://", name_or_url,
                                                                              re.IGNORECASE):
        _check_scheme(name_or_url, "fetch")
    if re.match(r"^https?://", name_or_url, re.IGNORECASE):
        key = hashlib.sha256(name_or_url.encode()).hexdigest()[:16]
        return f"url/{key}/{_url_file_name(name_or_url)}", [name_or_url], _norm_hash(None if sha256 is _UNSET else sha256)
    close = difflib.get_close_matches(name_or_url, list(manifest), n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ValueError(
        f"{name_or_url!r} is neither a name in {MANIFEST_PATH} nor an http(s) URL.{hint}"
    )


def _url_file_name(url: str) -> str:
    """The cache's file name for a URL: its last path segment (no query, no fragment) reduced to
    ``[A-Za-z0-9._-]``, without leading dots (never ``.``, ``..`` or hidden), at most 100 characters
    (the end kept, with the extension that says its format); ``download`` when nothing is left."""
    path = url.split("#", 1)[0].split("?", 1)[0]
    path = path.split("://", 1)[-1].partition("/")[2]  # after the host
    base = re.sub(r"[^A-Za-z0-9._-]", "_", path.rstrip("/").rsplit("/", 1)[-1]).lstrip(".")
    return base[-100:].lstrip(".") or "download"


def _check_scheme(url: str, where: str) -> None:
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in ("http", "https"):
        raise ValueError(f"{where}: {url!r} is not an http(s) URL; only http:// and https:// are fetched "
                         f"(for a local file, read it directly or put it under XLT_DATA_DIR)")


_HTML = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<\?xml)", re.IGNORECASE)


def _format_of(rel: str) -> str:
    name = rel.lower()
    for ext in ("conllu", "iob2", "parquet", "json"):
        if name.endswith("." + ext):
            return ext
    return "other"


def validate_body(path: Path, rel: str) -> str | None:
    """What is wrong with a body for the format its name promises, or None if it is a valid file.

    Used for files without a pinned sha256, before they are cached and trusted, and again for such
    a cached file that this package version has not validated yet. The whole body is read: a
    CoNLL-U or IOB2 file must end with an empty line and every sentence must pass the reader's
    checks (``errors="raise"``), so one valid sentence followed by junk is refused."""
    fmt = _format_of(rel)
    size = path.stat().st_size
    if size == 0:
        return "the body is empty"
    with open(path, "rb") as f:
        head = f.read(512)
    if _HTML.match(head):
        return f"the body is an HTML/XML page, not a {fmt} file (an error or login page?)"
    if fmt == "parquet":
        with open(path, "rb") as f:
            f.seek(max(0, size - 4))
            tail = f.read(4)
        if size < 12 or head[:4] != b"PAR1" or tail != b"PAR1":
            return "not a Parquet file (no PAR1 magic bytes at both ends): truncated or not Parquet"
        return None
    if fmt == "json":
        try:
            json.loads(path.read_bytes().decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as e:
            return f"not valid JSON ({e}): truncated or not JSON"
        return None
    if fmt in ("conllu", "iob2"):

        with open(path, "rb") as f:
            f.seek(max(0, size - 4))
            tail = f.read(4)
        if not tail.replace(b"\r\n", b"\n").endswith(b"\n\n"):
            return f"the body does not end with an empty line, as every {fmt} file does: cut short?"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sents = (read_conllu if fmt == "conllu" else read_iob2)(path, "xx")
        except DataFormatError as e:
            return (f"not a valid {fmt} file: line {e.line}: {e.message} (every sentence must be valid; "
                    "a body with junk or a cut after valid sentences is refused)")
        if not sents:
            return f"no {fmt} sentence in the body"
    return None


def _norm_hash(h: str | None) -> str | None:
    if h is None:
        return None
    h = h.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", h):
        raise ValueError(f"not a sha256 hex digest: {h!r}")
    return h


def _check_relative(name: str) -> None:
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        raise ValueError(f"manifest name {name!r} must be a relative path without '..'")


def _from_data_dir(rel: str, expected: str | None) -> Path | None:
    root = settings.current().data_dir
    if root is None:
        return None
    path = root / rel
    if not path.is_file():
        return None
    if expected is not None:
        got = sha256_file(path)
        if got != expected:
            raise ChecksumError(
                f"{path} (from XLT_DATA_DIR) has sha256 {got}, expected {expected}. "
                "Replace it with the right file or unset XLT_DATA_DIR; it was not modified."
            )
    return path


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _validated_mark() -> str:
    return f"validated whole by xlt-utils {__version__}"


def _cache_state(target: Path, expected: str | None) -> tuple[str, str | None]:
    """What the cached copy is, reading only (safe without the lock, and while another fetch
    replaces it): ("ok", None); ("missing", None); ("unvalidated", sha256) for an unpinned file
    whose body this version has not validated (cached by an older version, or hash not recorded);
    ("bad", why) for a copy that must not be used."""
    try:
        got = sha256_file(target)
    except FileNotFoundError:
        return "missing", None
    except OSError as e:  # a folder or an unreadable file where the file should be
        return "bad", f"cannot be read as a file ({type(e).__name__}: {e})"
    if expected is not None:
        return ("ok", None) if got == expected else ("bad", f"has sha256 {got}, expected {expected}")
    try:
        recorded, *marks = _sidecar(target).read_text().split("\n")
    except (FileNotFoundError, UnicodeDecodeError):
        return "unvalidated", got
    if recorded.strip() and recorded.strip() != got:
        return "bad", f"has sha256 {got}, but {recorded.strip()} was recorded when it was downloaded"
    validated = any(m.startswith(_validated_mark() + " ") for m in marks)
    return ("ok", None) if validated and recorded.strip() else ("unvalidated", got)


def _usable(target: Path, expected: str | None, rel: str) -> bool:
    """Under the folder's lock: True if the cached copy can be used (an unpinned one validated now,
    whole, and its hash recorded), else False after moving a bad copy aside."""
    state, info = _cache_state(target, expected)
    if state == "unvalidated":
        problem = validate_body(target, rel)
        if problem is None:
            _record(target, info, rel)
            return True
        state, info = "bad", f"(sha256 not pinned) is not a valid file: {problem}"
    if state == "bad":
        _move_aside(target, info)
    return state == "ok"


def _move_aside(target: Path, why: str) -> Path:
    """Rename a cached copy that must not be used to `corrupt_name(target)` (its recorded hash is
    dropped), with a warning naming both."""
    aside = corrupt_name(target)
    os.replace(target, aside)
    _sidecar(target).unlink(missing_ok=True)
    warnings.warn(f"cached {target} {why}; moved aside to {aside.name}, and fetching again", stacklevel=4)
    return aside


def _record(target: Path, digest: str, rel: str) -> None:
    write_atomic(_sidecar(target), f"{digest}\n{_validated_mark()} as {_format_of(rel)}\n")


class _DeadlineExceeded(FetchError):
    """The file's overall deadline passed."""


def _remaining(end: float | None) -> float | None:
    if end is None:
        return None
    left = end - time.monotonic()
    if left <= 0:
        raise _DeadlineExceeded("the overall deadline for this file passed (see fetch's `deadline`)")
    return left


def _download(url: str, target: Path, *, timeout: float, retries: int, backoff: float, end: float | None = None):
    """Download `url` to a temp file beside `target`; return (temp path, sha256). Retries transients."""
    last = None
    for attempt in range(retries + 1):
        if attempt:
            wait = backoff * 2 ** (attempt - 1)
            left = _remaining(end)
            time.sleep(wait if left is None else min(wait, left))
        _remaining(end)
        try:
            return _download_once(url, target, timeout, end)
        except _Retryable as e:
            last = e
    raise FetchError(f"gave up after {retries + 1} attempts; last error: {last}")


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) URLs only (urllib would also follow ftp://)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not newurl.lower().startswith(("http://", "https://")):
            raise urllib.error.HTTPError(newurl, code, f"redirect to a non-http(s) URL {newurl!r} refused",
                                         headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Watchdog:
    """Shuts the connection's socket down when the file's deadline passes, whatever the socket is
    doing (a server that trickles its status line or headers byte by byte included)."""

    def __init__(self, end: float | None):
        self.end, self.fired, self.timers = end, False, []

    def arm(self, sock) -> None:
        if self.end is None or sock is None:
            return
        timer = threading.Timer(max(0.0, self.end - time.monotonic()), self._fire, args=(sock,))
        timer.daemon = True
        timer.start()
        self.timers.append(timer)

    def _fire(self, sock) -> None:
        self.fired = True
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def cancel(self) -> None:
        for timer in self.timers:
            timer.cancel()


def _watched(base: type, dog: _Watchdog) -> type:
    class Connection(base):
        def connect(self):
            super().connect()
            dog.arm(self.sock)

    return Connection


class _WatchedHTTP(urllib.request.HTTPHandler):
    def __init__(self, dog: _Watchdog):
        super().__init__()
        self.dog = dog

    def http_open(self, req):
        return self.do_open(_watched(http.client.HTTPConnection, self.dog), req)


class _WatchedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, dog: _Watchdog):
        super().__init__()
        self.dog = dog

    def https_open(self, req):
        return self.do_open(_watched(http.client.HTTPSConnection, self.dog), req, context=self._context)


def _opener(dog: _Watchdog) -> urllib.request.OpenerDirector:
    """An opener for http(s) only (no file://, ftp:// or data: handlers), watched by `dog`."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), _WatchedHTTP(dog),
                    urllib.request.HTTPDefaultErrorHandler(), _HttpOnlyRedirects(),
                    urllib.request.HTTPErrorProcessor(), _WatchedHTTPS(dog)):
        opener.add_handler(handler)
    return opener


def _download_once(url: str, target: Path, timeout: float, end: float | None = None):
    req = urllib.request.Request(url, headers={"User-Agent": f"xlt-utils/{__version__}"})
    left = _remaining(end)
    dog = _Watchdog(end)
    late = _DeadlineExceeded("the overall deadline for this file passed (see fetch's `deadline`)")
    try:
        tmp, digest = _download_watched(req, target, timeout, end, left, dog)
    except (FetchError, _Retryable):
        if dog.fired:
            raise late from None
        raise
    finally:
        dog.cancel()
    if dog.fired:  # the socket was shut down: what arrived may be cut short
        tmp.unlink(missing_ok=True)
        raise late
    return tmp, digest


def _download_watched(req, target: Path, timeout: float, end: float | None, left: float | None, dog: _Watchdog):
    try:
        resp = _opener(dog).open(req, timeout=timeout if left is None else min(timeout, left))
    except urllib.error.HTTPError as e:
        e.close()
        if e.code in _RETRY_STATUS:
            raise _Retryable(f"HTTP {e.code} {e.reason}") from e
        raise FetchError(f"HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise _Retryable(f"{type(e).__name__}: {getattr(e, 'reason', e)}") from e

    fd, tmp = create_temp(target.parent, f".{target.name}.", ".part")
    try:
        with resp, os.fdopen(fd, "wb") as out:
            length = resp.headers.get("Content-Length")
            h, n = hashlib.sha256(), 0
            while chunk := resp.read1(_CHUNK):  # read1: returns what has arrived, so the deadline is checked
                out.write(chunk)
                h.update(chunk)
                n += len(chunk)
                _remaining(end)
            out.flush()
            os.fsync(out.fileno())
        if length is not None and length.isdigit() and n != int(length):
            raise _Retryable(f"truncated body: got {n} of {length} bytes")
        return tmp, h.hexdigest()
    except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, TimeoutError):
            raise _Retryable(
                f"timed out after {timeout} s without data (stalled connection)"
            ) from e
        raise _Retryable(f"{type(e).__name__}: {e}") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _by_hand(rel: str, urls: list[str], expected: str | None, target: Path) -> str:
    data_dir = settings.current().data_dir or "$XLT_DATA_DIR"
    return (
        "To get it by hand, download\n    "
        + "\n    or ".join(urls)
        + f"\nand save it as\n    {target}\nor as {Path(data_dir) / rel} with XLT_DATA_DIR set; "
        + (f"its sha256 must be {expected}." if expected else "its sha256 is not pinned.")
        + "\nThe `toy` profile needs no downloads and works offline."
    )
