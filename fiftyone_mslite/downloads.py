"""Download layer: cached, checksummed, resumable, mirror-aware fetching of model and label files.

Model files are large and often fetched on flaky or air-gapped machines, so every download is verified
against a sha256, written atomically (never a half file at the final path), resumed after interruptions,
and can be served from a mirror laid out as ``<root>/<host>/<path>`` (a directory or a base URL).

URLs come from catalogs and users, so they are treated as untrusted (docs/security.md): a URL maps to a
cache or mirror path only if its host and path segments are plain names, and every read and write is
checked to stay under its root after symlinks are resolved; bodies are capped by kind (model or label
file) before and while streaming; redirects are followed hop by hop under the policy of `_follow`, and
where a file really came from is recorded beside it (`provenance`).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote, unquote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import requote_uri
from tqdm import tqdm
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from fiftyone_mslite import __version__
from fiftyone_mslite.runtime import settings
from fiftyone_mslite.runtime.environment import cache_home
from fiftyone_mslite.runtime.settings import human_size

from .errors import ChecksumMismatch, DownloadError, DownloadTooLarge, OfflineError
from .files import atomic_write

try:  # POSIX only; without it downloads still work, just without cross-process locking.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "LABELS_MAX_ENV",
    "MIRROR_ENV",
    "MODEL_MAX_ENV",
    "OFFLINE_ENV",
    "SIZE_CAPS",
    "ChecksumMismatch",
    "DEADLINE_ENV",
    "MIN_RATE_ENV",
    "DownloadError",
    "DownloadTooLarge",
    "OfflineError",
    "fetch",
    "is_inside",
    "mirror_location",
    "provenance",
    "size_cap",
]

logger = logging.getLogger(__name__)

MIRROR_ENV = "FIFTYONE_MSLITE_MIRROR"
OFFLINE_ENV = "FIFTYONE_MSLITE_OFFLINE"
MODEL_MAX_ENV = "FIFTYONE_MSLITE_MAX_MODEL_SIZE"
LABELS_MAX_ENV = "FIFTYONE_MSLITE_MAX_LABELS_SIZE"
DEADLINE_ENV = "FIFTYONE_MSLITE_DOWNLOAD_DEADLINE"
MIN_RATE_ENV = "FIFTYONE_MSLITE_DOWNLOAD_MIN_RATE"

#: Size caps by kind: (default bytes, the environment variable that overrides it). Models: 2 GiB, the most a
#: single ONNX/MindIR protobuf or .ms/TFLite FlatBuffer can hold. Label files (and the gallery/source pages label
#: sets are parsed from) are text well under 1 MB; 8 MiB leaves room and still stops an endless body at once.
SIZE_CAPS: dict[str, tuple[int, str]] = {"model": (2 << 30, MODEL_MAX_ENV), "labels": (8 << 20, LABELS_MAX_ENV)}
#: Redirect hops followed before giving up (requests' own default is 30; real file hosts use one or two).
MAX_REDIRECTS = 10
#: Suffixes of the cache's own bookkeeping files next to a cached file; no cached file may end in one.
PART_SUFFIX, LOCK_SUFFIX, RECORD_SUFFIX = ".part", ".lock", ".source.json"
_HOST_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$")

#: Exponential backoff factor (seconds) between retries; module-level so tests can shrink it.
BACKOFF_FACTOR = 0.5
#: Statuses worth retrying: server-side hiccups and rate limiting.
RETRY_STATUSES = frozenset({429, *range(500, 600)})
CHUNK_SIZE = 1 << 20
#: Network read size. urllib3 drops a partially filled chunk when the connection breaks, so a small chunk
#: keeps most of an interrupted body on disk for the resume.
HTTP_CHUNK_SIZE = 1 << 16


class _BodyInterrupted(Exception):
    """The response body ended early; retried with a Range request so the received bytes are kept."""


# --------------------------------------------------------------------------------------------- layout


def _host_dir(url: str, hostname: str | None, port: int | None) -> str:
    """The directory name of a URL's host: DNS labels or an IP address, never '.', '..' or anything with '%'."""
    host = (hostname or "").lower()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not all(_HOST_LABEL.match(label) for label in host.split(".")):
            raise DownloadError(
                f"Cannot fetch {url!r}: {host!r} is not a host name (letters, digits, '-' and '_' in "
                "dot-separated labels) or an IP address."
            ) from None
    else:  # brackets cannot occur in a host name, so an IPv6 directory never collides with one
        host = f"[{ip.compressed.replace(':', '-')}]" if ip.version == 6 else ip.compressed
    return host if port is None else f"{host}_{port}"  # ':' is not portable in directory names


def _url_parts(url: str) -> tuple[str, list[str]]:
    """Split a URL into (host directory, path segments), refusing anything that could escape a root.

    Segments are checked after percent-decoding, so ``%2e%2e`` and ``%2F`` are refused like ``..`` and ``/``;
    empty segments (``a//b``, a trailing ``/``) too, since they would map two URLs to one file.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadError(f"Cannot fetch {url!r}: only http(s) URLs with a host are supported.")
    try:
        port = parts.port
    except ValueError:
        raise DownloadError(f"Cannot fetch {url!r}: its port is not a number from 0 to 65535.") from None
    host = _host_dir(url, parts.hostname, port)
    path = parts.path.removeprefix("/")
    segments = [unquote(s) for s in path.split("/")] if path else []
    if any(s in ("", ".", "..") or "/" in s or "\\" in s or "\0" in s for s in segments):
        raise DownloadError(f"Cannot fetch {url!r}: its path has empty, '.' or '..' segments or encoded separators.")
    return host, segments


def is_inside(root: Path, path: Path) -> bool:
    """Whether ``path`` stays under ``root`` once symlinks and '..' are resolved (both may not exist yet)."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def _check_inside(root: Path, path: Path, url: str, what: str) -> None:
    if not is_inside(root, path):
        raise DownloadError(
            f"Cannot fetch {url!r}: its {what} path {path} resolves to {path.resolve()}, outside {root}. "
            "A symlink there points out of it; remove the link or point it inside."
        )


def _is_url(root: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", root))


def _mirror_dir(mirror: str) -> Path | None:
    """The mirror as a local directory (plain path or file:// URL), or None for an http(s) base URL."""
    if mirror.startswith("file://"):
        return Path(unquote(urlsplit(mirror).path))
    if _is_url(mirror):
        return None
    return Path(mirror).expanduser()


def mirror_location(url: str, mirror: str) -> str:
    """Where ``url`` lives in ``mirror``: a file path for a directory root, a URL for a base-URL root.

    ``https://host/a/b`` maps to ``<root>/host/a/b`` in both cases, so one mirror layout serves both.
    """
    host, segments = _url_parts(url)
    directory = _mirror_dir(mirror)
    if directory is not None:
        return str(directory.joinpath(host, *segments))
    return "/".join([mirror.rstrip("/"), host, *(quote(s) for s in segments)])


def _cache_path(url: str, cache_dir: Path, filename: str | None) -> Path:
    """Where ``url`` is cached: ``<cache>/<host>/<path>`` or ``<cache>/<filename>``, checked to stay inside."""
    host, segments = _url_parts(url)  # checked even for a named download: it is still fetched
    if filename is None:
        if not segments:
            raise DownloadError(f"Cannot cache {url!r}: the URL has no path; pass filename=... to name it.")
        dest = cache_dir.joinpath(host, *segments)
    else:
        rel = Path(filename)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise DownloadError(
                f"Cannot cache {url!r} as {filename!r}: filename must be a relative path in the cache."
            )
        dest = cache_dir / rel
    if dest.name.endswith((PART_SUFFIX, LOCK_SUFFIX, RECORD_SUFFIX)):
        raise DownloadError(
            f"Cannot cache {url!r} as {dest.name!r}: names ending in {PART_SUFFIX}, {LOCK_SUFFIX} or "
            f"{RECORD_SUFFIX} are the cache's own bookkeeping files; pass filename=... to name it."
        )
    for path in (dest, _sidecar(dest, PART_SUFFIX)):
        _check_inside(cache_dir, path, url, "cache")
    return dest


def _sidecar(dest: Path, suffix: str) -> Path:
    return dest.with_name(dest.name + suffix)


# --------------------------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Cap:
    """The size limit of one download, and how the user raises it (named in the error)."""

    kind: str
    max_bytes: int
    env: str

    def check(self, size: int, source: str, what: str) -> None:
        if size > self.max_bytes:
            raise DownloadTooLarge(
                f"Refusing {source}: {what} is over the {self.kind} size limit of {human_size(self.max_bytes)} "
                f"({self.max_bytes} bytes). If this file really is that large, raise the limit: set "
                f"{self.env}=<size> (e.g. {self.env}=4G), or pass max_bytes=... to fetch()."
            )


def size_cap(kind: str = "model", max_bytes: int | None = None) -> int:
    """The byte limit for a download of ``kind``: ``max_bytes`` if given, else $<kind's variable>, else the default."""
    return _cap(kind, max_bytes).max_bytes


def _cap(kind: str, max_bytes: int | None) -> _Cap:
    if kind not in SIZE_CAPS:
        raise ValueError(f"kind must be one of {sorted(SIZE_CAPS)}, got {kind!r}")
    default, env = SIZE_CAPS[kind]
    if max_bytes is not None:
        return _Cap(kind, max_bytes, env)
    raw = (settings.get(env) or "").strip()
    if not raw:
        return _Cap(kind, default, env)
    parsed = settings.parse_size(raw)
    if parsed is None:
        raise DownloadError(f"{env}={raw!r} is not a size: give bytes or a number with K, M, G or T (e.g. 4G).")
    return _Cap(kind, parsed, env)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``<dest>.lock`` so concurrent fetches never share one part file.

    The lock file is left in place on purpose: unlinking a flock'ed file races with a waiting process,
    which would then lock an orphaned inode while a third process creates a new one.
    """
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(_sidecar(dest, LOCK_SUFFIX), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _progress_bar(show: bool, total: int | None, initial: int, name: str) -> tqdm:
    return tqdm(
        total=total,
        initial=initial,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not show,
        leave=False,
    )


@dataclass(frozen=True)
class _Origin:
    """Where the bytes of one download came from, written beside the cached file (see `provenance`)."""

    url: str  # the URL asked for (the cache key)
    source: str  # what was actually read: the URL after redirects, or a mirror file
    redirects: tuple[str, ...] = ()  # every URL requested before `source`, the first one included

    def describe(self) -> str:
        return self.url if self.source == self.url else f"{self.url} (from {self.source})"


def provenance(path: Path) -> dict | None:
    """Where a cached file came from: url, source (final URL after redirects, or mirror file), redirects, sha256.

    None for a file fetched before records existed (or not by `fetch`).
    """
    try:
        return json.loads(_sidecar(Path(path), RECORD_SUFFIX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_record(dest: Path, origin: _Origin, actual: str, pinned: bool) -> None:
    """Atomically replace the record beside ``dest``; a stale record never describes new bytes."""
    body = {"url": origin.url, "source": origin.source, "redirects": list(origin.redirects), "sha256": actual,
            "pinned": pinned}
    atomic_write(_sidecar(dest, RECORD_SUFFIX), json.dumps(body, indent=1) + "\n")


def _check_and_commit(part: Path, dest: Path, actual: str, sha256: str | None, source: str, origin: _Origin) -> Path:
    """Verify the finished part file and atomically move it into place; delete it if it is wrong.

    Nothing at ``dest`` is touched before the bytes are verified, so a failed download never replaces a good copy.
    """
    if sha256 is not None and actual != sha256.lower():
        _unlink(part)
        raise ChecksumMismatch(
            f"Checksum mismatch for {source}: expected sha256 {sha256.lower()}, got {actual}. "
            "The download was discarded; the file may have changed upstream (update the pinned hash) "
            "or the source is corrupt (retry, or fix/refresh the mirror)."
        )
    _unlink(_sidecar(dest, RECORD_SUFFIX))  # never leave the old record beside the new bytes
    os.replace(part, dest)
    with contextlib.suppress(OSError):  # make the rename itself durable; not supported everywhere
        dir_fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    _write_record(dest, origin, actual, sha256 is not None)
    return dest


def _finish(fh: IO[bytes]) -> None:
    fh.flush()
    os.fsync(fh.fileno())


# --------------------------------------------------------------------------------------------- sources


def _copy_from_mirror(
    src: Path, part: Path, dest: Path, sha256: str | None, show: bool, url: str, cap: _Cap
) -> Path:
    """Copy a mirror file via the part file so a crash mid-copy never leaves a half file at ``dest``."""
    source = f"{url} (mirror file {src})"
    digest = hashlib.sha256()
    received = 0
    try:
        size = src.stat().st_size
        cap.check(size, source, f"the mirror file ({size} bytes)")
        with src.open("rb") as fin, part.open("wb") as fout, _progress_bar(show, size, 0, dest.name) as bar:
            for chunk in iter(lambda: fin.read(CHUNK_SIZE), b""):
                received += len(chunk)
                cap.check(received, source, "the mirror file (still growing)")
                fout.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
            _finish(fout)
    except OSError as exc:
        _unlink(part)
        raise DownloadError(
            f"Could not copy {url} from mirror file {src}: {exc}. Check the mirror's permissions and free "
            f"space in {dest.parent}."
        ) from exc
    except DownloadTooLarge:
        _unlink(part)
        raise
    return _check_and_commit(part, dest, digest.hexdigest(), sha256, source, _Origin(url, str(src)))


class _Watchdog:
    """Time limits of one download that a blocking read cannot outlast. requests' read timeout restarts with
    every byte, so a server trickling headers or body holds a plain GET forever; here a thread shuts down the
    download's sockets when its deadline passes (the whole download: $FIFTYONE_MSLITE_DOWNLOAD_DEADLINE; while
    waiting for response headers: also twice the read timeout), which ends any read at once. Once it fired, the
    download is over: connections opened later (urllib3's retries) are shut at once."""

    def __init__(self, source: str, part: Path) -> None:
        self.deadline = settings.seconds(DEADLINE_ENV)
        self._overall = (time.monotonic() + self.deadline,
                         f"Could not download {source}: it took longer than {self.deadline:g} s ({DEADLINE_ENV}); "
                         f"{part.name} keeps what arrived and the next call resumes it. Raise {DEADLINE_ENV} for a "
                         "slow link, or use a mirror.")
        self._end, self._why = self._overall
        self.fired: str | None = None  # why, once it fired
        self._sockets: list[socket.socket] = []
        self._cond = threading.Condition()
        self._closed = False
        self._phase: tuple[float, str] | None = None
        self._thread = threading.Thread(target=self._watch, name="download-watchdog", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def phase(self, seconds: float, why: str) -> Iterator[None]:
        """Also end the download if this step takes longer than `seconds` after its latest connection opened
        (urllib3 retries a silent server on a new connection: each attempt gets its `seconds`)."""
        with self._cond:
            self._phase = (seconds, why)
            self._restart_phase()
        try:
            yield
        finally:
            with self._cond:
                self._phase = None
                self._end, self._why = self._overall
                self._cond.notify()

    def _restart_phase(self) -> None:
        seconds, why = self._phase
        self._end, self._why = min((time.monotonic() + seconds, why), self._overall)
        self._cond.notify()

    def track(self, sock: socket.socket) -> None:
        with self._cond:
            self._sockets.append(sock)
            if self._phase and not self.fired:
                self._restart_phase()
            fired = self.fired
        if fired:
            _shut(sock)

    def _watch(self) -> None:
        with self._cond:
            while not self._closed and self.fired is None:
                left = self._end - time.monotonic()
                if left <= 0:
                    self.fired = self._why
                    break
                self._cond.wait(left)
            sockets = list(self._sockets) if self.fired else []
        for sock in sockets:
            _shut(sock)

    def check(self) -> None:
        """Raise the reason it fired, if it did."""
        if self.fired:
            raise DownloadError(self.fired)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedAdapter(HTTPAdapter):
    """An adapter whose connections report their sockets to a `_Watchdog` (through the pool classes urllib3
    instantiates, plain and via a proxy)."""

    def __init__(self, watchdog: _Watchdog, **kwargs) -> None:
        self._watchdog = watchdog  # before super().__init__, which builds the pool manager
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self._watch(self.poolmanager)

    def proxy_manager_for(self, proxy, **kwargs):
        manager = super().proxy_manager_for(proxy, **kwargs)
        self._watch(manager)
        return manager

    def _watch(self, manager) -> None:
        if getattr(manager, "_watched", False):
            return
        watchdog, classes = self._watchdog, {}
        for scheme, pool_cls in manager.pool_classes_by_scheme.items():
            base = pool_cls.ConnectionCls

            def connect(conn, base=base) -> None:
                base.connect(conn)
                watchdog.track(conn.sock)

            conn_cls = type(f"Watched{base.__name__}", (base,), {"connect": connect})
            classes[scheme] = type(f"Watched{pool_cls.__name__}", (pool_cls,), {"ConnectionCls": conn_cls})
        manager.pool_classes_by_scheme = classes
        manager._watched = True


def _session(retries: int, watchdog: _Watchdog) -> requests.Session:
    """A session whose urllib3 Retry backs off on connect/read errors and retryable statuses, its sockets
    watched by `watchdog`.

    Redirects are not followed here but by `_follow`, one checked hop at a time.
    """
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        allowed_methods=frozenset({"GET"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=BACKOFF_FACTOR,
        raise_on_status=False,  # hand back the last 5xx so the error can name the status
    )
    session = requests.Session()
    adapter = _WatchedAdapter(watchdog, max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = f"fiftyone-mslite/{__version__}"
    # Range offsets must refer to the bytes on disk, so forbid transparent gzip.
    session.headers["Accept-Encoding"] = "identity"
    return session


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """Parse ``bytes START-END/TOTAL`` into (START, TOTAL or None)."""
    match = re.match(r"^\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*$", value or "")
    if not match:
        return None
    return int(match.group(1)), None if match.group(2) == "*" else int(match.group(2))


def _hash_prefix(part: Path) -> tuple[hashlib._Hash, int]:
    """Hash the bytes already in the part file so a resumed download is verified end to end."""
    digest = hashlib.sha256()
    size = 0
    if part.exists():
        with part.open("rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK_SIZE), b""):
                digest.update(chunk)
                size += len(chunk)
    return digest, size


def _follow(
    session: requests.Session, url: str, headers: dict[str, str], timeout: float, pinned: bool, source: str,
    watchdog: _Watchdog,
) -> tuple[requests.Response, list[str]]:
    """GET ``url``, following redirects one hop at a time so each target is checked before it is requested.

    Returns the final response and every URL requested (``url`` first, the final one last). The policy is
    pip's and FiftyOne's, since real model hosts redirect to other hosts (GitHub release assets to
    objects.githubusercontent.com, Hugging Face files to its CDN) and `models add URL` must keep working
    without a hash: a redirect to another host or port is followed; if the download is sha256-pinned the
    hash decides, otherwise a warning names both hosts. Either way the final URL is recorded beside the
    cached file, so nothing is cached under the original URL without saying where it came from. Refused
    always: a target that is not http(s) (``file://``, ``ftp://``, ...); and, unless pinned, an https → http
    downgrade, which would let anyone on the network substitute the file.
    """
    chain = [url]
    while True:
        slow = (f"Could not download {source}: {chain[-1]} did not send its response headers within "
                f"{2 * timeout:g} s (the server trickles them or hangs). Try again later, or use a mirror.")
        with watchdog.phase(2 * timeout, slow):  # twice the read timeout: a silent server times out (and is retried)
            response = session.get(chain[-1], headers=headers, stream=True, timeout=timeout, allow_redirects=False)
        if not response.is_redirect:
            return response, chain
        response.close()
        if len(chain) > MAX_REDIRECTS:
            raise DownloadError(
                f"Could not download {source}: more than {MAX_REDIRECTS} redirects ({' -> '.join(chain)}). "
                "The server is redirecting in a loop; check the URL."
            )
        target = requote_uri(urljoin(chain[-1], response.headers["Location"]))
        _check_redirect(chain[-1], target, pinned, source)
        chain.append(target)


def _check_redirect(current: str, target: str, pinned: bool, source: str) -> None:
    """Apply `_follow`'s redirect policy to one hop."""
    here, there = urlsplit(current), urlsplit(target)
    refused = f"Refusing the redirect from {current} to {target} while downloading {source}"
    if there.scheme not in ("http", "https") or not there.hostname:
        raise DownloadError(f"{refused}: only http(s) redirects are followed.")
    if here.scheme == "https" and there.scheme == "http" and not pinned:
        raise DownloadError(
            f"{refused}: it downgrades https to http, so anyone on the network could replace the file. "
            "Pin the file's sha256 (e.g. `models add ... --sha256 HEX`) to allow it, or use a URL that stays on https."
        )
    if (here.hostname, here.port) != (there.hostname, there.port) and not pinned:
        logger.warning(
            "%s redirects to another host (%s); following it without a pinned sha256. Pin the hash to verify "
            "the file; the final URL is recorded beside the cached file.", current, target
        )


def _download(
    url: str,
    part: Path,
    dest: Path,
    *,
    sha256: str | None,
    show: bool,
    retries: int,
    timeout: float,
    cap: _Cap,
    origin_url: str | None = None,
    source: str | None = None,
) -> Path:
    """Stream ``url`` into ``part`` (resuming it if present), verify, and move it to ``dest``.

    urllib3's Retry covers failures before a response arrives (connect errors, timeouts, 5xx); a body that
    breaks off midway is retried here, with the same Retry backoff, as a Range request for the rest. A body
    over ``cap`` is refused from its announced length, or stopped once that many bytes arrived, and its
    part file deleted.
    """
    source = source or url
    body_retry = Retry(total=retries, backoff_factor=BACKOFF_FACTOR)
    watchdog = _Watchdog(source, part)
    with contextlib.closing(watchdog), _session(retries, watchdog) as session:
        while True:
            digest, offset = _hash_prefix(part)
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                response, chain = _follow(session, url, headers, timeout, sha256 is not None, source, watchdog)
            except requests.RequestException as exc:  # already retried by urllib3
                watchdog.check()
                raise DownloadError(
                    f"Could not download {source}: {_describe(exc)} (gave up after {retries} retries). "
                    "Check the network connection and the URL, or set "
                    f"{MIRROR_ENV} to a mirror directory / base URL that has the file."
                ) from exc
            with response:
                status = response.status_code
                if status == 416 and offset:  # our part is bogus for this resource: start over
                    logger.info("Server rejected Range for %s; restarting from byte 0", url)
                    _unlink(part)
                    continue
                if status != 200 and status != 206:
                    raise DownloadError(_status_message(source, response, retries))
                if status == 206:
                    parsed = _content_range(response.headers.get("Content-Range"))
                    if parsed is None or parsed[0] != offset:
                        if not offset:  # nothing to restart; retrying would loop forever
                            raise DownloadError(
                                f"Could not download {source}: the server sent a partial response "
                                f"(Content-Range {response.headers.get('Content-Range')!r}) to a plain GET. "
                                "Retry later, or use a mirror."
                            )
                        logger.info("Unusable Content-Range for %s; restarting from byte 0", url)
                        _unlink(part)
                        continue
                    mode, total = "ab", parsed[1]
                else:  # 200: full body, either fresh or because the server ignores Range
                    digest, offset, mode = hashlib.sha256(), 0, "wb"
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                try:
                    if total is not None:
                        cap.check(total, source, f"its announced size ({total} bytes)")
                    _stream(response, part, mode, digest, offset, total, show, dest.name, cap, source, timeout)
                except DownloadTooLarge:
                    _unlink(part)
                    raise
                except (requests.RequestException, Urllib3Error, _BodyInterrupted) as exc:
                    watchdog.check()  # a read the watchdog ended: the download is over, its part kept
                    try:
                        body_retry = body_retry.increment(method="GET", url=url, error=exc)
                    except MaxRetryError:
                        raise DownloadError(
                            f"Could not download {source}: the transfer kept breaking off ({_describe(exc)}) "
                            f"after {retries} retries; {part} keeps the partial data and the next call will "
                            "resume it. Check the network, or use a mirror."
                        ) from exc
                    logger.info("Download of %s interrupted (%s); resuming", url, _describe(exc))
                    body_retry.sleep()
                    continue
            origin = _Origin(origin_url or url, chain[-1], tuple(chain[:-1]))
            return _check_and_commit(part, dest, digest.hexdigest(), sha256, source, origin)


def _stream(
    response: requests.Response,
    part: Path,
    mode: str,
    digest: hashlib._Hash,
    offset: int,
    total: int | None,
    show: bool,
    name: str,
    cap: _Cap,
    source: str,
    window: float,
) -> int:
    """Append the body to the part file; raise _BodyInterrupted if it is shorter than announced.

    Bytes are counted before they are written, so a body without (or lying about) its length stops at ``cap``.
    Reads return whatever arrived (`read1`), so a body slower than $FIFTYONE_MSLITE_DOWNLOAD_MIN_RATE over
    `window` seconds is noticed and abandoned (its bytes kept for a resume) however it trickles.
    """
    received = offset
    floor = settings.size(MIN_RATE_ENV)
    since, counted = time.monotonic(), 0
    with part.open(mode) as fh, _progress_bar(show, total, offset, name) as bar:
        try:
            for chunk in iter(lambda: response.raw.read1(HTTP_CHUNK_SIZE, decode_content=True), b""):
                cap.check(received + len(chunk), source, f"the body (more than {received + len(chunk) - 1} bytes)")
                fh.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
                counted += len(chunk)
                elapsed = time.monotonic() - since
                if elapsed >= window:
                    if counted < floor * elapsed:
                        raise DownloadError(
                            f"Could not download {source}: it arrived at {human_size(int(counted / elapsed))}/s over "
                            f"{elapsed:.0f} s, below {MIN_RATE_ENV}={human_size(floor)}/s; {part.name} keeps the "
                            f"{received} bytes received and the next call resumes it. Use a mirror, or lower "
                            f"{MIN_RATE_ENV} (0 turns the check off).")
                    since, counted = time.monotonic(), 0
        finally:
            _finish(fh)  # keep what arrived, durably, for the resume
    if total is not None and received < total:
        raise _BodyInterrupted(f"body ended at byte {received} of {total}")
    return received


def _describe(exc: BaseException) -> str:
    """A one-line reason, digging through requests/urllib3 wrappers to the root cause."""
    text = str(exc)
    if isinstance(exc, requests.Timeout) or "timed out" in text.lower():
        return f"timed out ({text})"
    if isinstance(exc, requests.ConnectionError):
        return f"connection failed ({text})"
    return f"{type(exc).__name__}: {text}"


def _status_message(source: str, response: requests.Response, retries: int) -> str:
    status = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
    if response.status_code in (401, 403):
        hint = "the server refused access; check the URL and whether it needs credentials, or use a mirror"
    elif response.status_code in (404, 410):
        hint = "the file does not exist there; check the URL (the upstream file may have moved)"
    elif response.status_code in RETRY_STATUSES:
        hint = f"the server kept failing after {retries} retries; try again later or use a mirror"
    else:
        hint = "check the URL, or set a mirror that has the file"
    return f"Could not download {source}: {status}; {hint}."


# --------------------------------------------------------------------------------------------- fetch


def fetch(
    url: str,
    *,
    sha256: str | None = None,
    cache_dir: Path | None = None,
    filename: str | None = None,
    mirror: str | None = None,
    offline: bool | None = None,
    progress: bool | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    kind: str = "model",
    max_bytes: int | None = None,
) -> Path:
    """Return a local, verified copy of ``url``, downloading it only if the cache lacks a good copy.

    Order: cache (``<cache_dir>/<host>/<path>`` or ``<cache_dir>/<filename>``) → mirror (argument, else
    $FIFTYONE_MSLITE_MIRROR) → the original URL. Offline mode (argument, else $FIFTYONE_MSLITE_OFFLINE)
    allows only the cache and a mirror *directory*, so air-gapped runs fail fast with a clear message.
    ``kind`` ("model" or "labels") picks the size cap (`SIZE_CAPS`, overridden by its environment variable,
    or by ``max_bytes``); a bigger file raises `DownloadTooLarge` and leaves nothing behind.
    """
    sha256 = sha256.strip().lower() if sha256 else None
    cap = _cap(kind, max_bytes)
    cache_root = Path(cache_dir) if cache_dir is not None else cache_home() / "downloads"
    dest = _cache_path(url, cache_root, filename)
    if mirror is None:
        mirror = settings.get(MIRROR_ENV)
    if offline is None:
        offline = settings.flag(OFFLINE_ENV)
    show = sys.stderr.isatty() if progress is None else progress

    if _cached(dest, sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest):
        if _cached(dest, sha256):  # another process finished it while we waited
            return dest
        return _fetch_locked(url, dest, sha256, mirror, offline, show, retries, timeout, cap)


def _cached(dest: Path, sha256: str | None) -> bool:
    if not dest.is_file():
        return False
    if sha256 is None or _sha256_file(dest) == sha256:
        return True
    logger.warning("Cached %s does not match sha256 %s; fetching it again", dest, sha256)
    return False


def _fetch_locked(
    url: str,
    dest: Path,
    sha256: str | None,
    mirror: str | None,
    offline: bool,
    show: bool,
    retries: int,
    timeout: float,
    cap: _Cap,
) -> Path:
    part = _sidecar(dest, PART_SUFFIX)
    unset_offline = f"unset {OFFLINE_ENV} (or pass offline=False) to download it"
    if mirror:
        location = mirror_location(url, mirror)
        directory = _mirror_dir(mirror)
        if directory is not None:
            src = Path(location)
            _check_inside(directory, src, url, "mirror")
            if src.is_file():
                _unlink(part)  # a stale HTTP part file must not be mixed with the mirror copy
                return _copy_from_mirror(src, part, dest, sha256, show, url, cap)
            if offline:
                raise OfflineError(
                    f"Offline: {url} is not cached at {dest} and not in the mirror (tried {src}). "
                    f"Put the file at {src}, point {MIRROR_ENV} at a mirror directory that has it, "
                    f"or {unset_offline}."
                )
            logger.info("%s is not in mirror %s; falling back to %s", url, mirror, url)
        elif offline:
            raise OfflineError(
                f"Offline: {url} is not cached at {dest}, and mirror {mirror} is a URL "
                f"(would be {location}), which needs the network. "
                f"Set {MIRROR_ENV} to a mirror *directory*, or {unset_offline}."
            )
        else:
            try:
                return _download(
                    location,
                    part,
                    dest,
                    sha256=sha256,
                    show=show,
                    retries=retries,
                    timeout=timeout,
                    cap=cap,
                    origin_url=url,
                    source=f"{url} (via mirror {location})",
                )
            except (ChecksumMismatch, DownloadTooLarge):
                raise  # a corrupt mirror should be fixed, not silently bypassed
            except DownloadError as exc:
                logger.warning("Mirror failed for %s (%s); falling back to the original URL", url, exc)
                _unlink(part)  # bytes from another server must not seed a resume
    elif offline:
        raise OfflineError(
            f"Offline: {url} is not cached at {dest} and no mirror is configured. Set {MIRROR_ENV} to a "
            f"mirror directory laid out as <root>/<host>/<path>, or {unset_offline}."
        )
    return _download(url, part, dest, sha256=sha256, show=show, retries=retries, timeout=timeout, cap=cap)
