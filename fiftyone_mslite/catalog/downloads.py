"""Download layer: cached, checksummed, resumable, mirror-aware fetching of model and label files.

Model files are large and often fetched on flaky or air-gapped machines, so every download is verified
against a sha256, written atomically (never a half file at the final path), resumed after interruptions,
and can be served from a mirror laid out as ``<root>/<host>/<path>`` (a directory or a base URL).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import quote, unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from fiftyone_mslite import __version__
from fiftyone_mslite.runtime.environment import cache_home

try:  # POSIX only; without it downloads still work, just without cross-process locking.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "MIRROR_ENV",
    "OFFLINE_ENV",
    "ChecksumMismatch",
    "DownloadError",
    "OfflineError",
    "fetch",
    "mirror_location",
]

logger = logging.getLogger(__name__)

MIRROR_ENV = "FIFTYONE_MSLITE_MIRROR"
OFFLINE_ENV = "FIFTYONE_MSLITE_OFFLINE"

#: Exponential backoff factor (seconds) between retries; module-level so tests can shrink it.
BACKOFF_FACTOR = 0.5
#: Statuses worth retrying: server-side hiccups and rate limiting.
RETRY_STATUSES = frozenset({429, *range(500, 600)})
CHUNK_SIZE = 1 << 20
#: Network read size. urllib3 drops a partially filled chunk when the connection breaks, so a small chunk
#: keeps most of an interrupted body on disk for the resume.
HTTP_CHUNK_SIZE = 1 << 16
_TRUE = {"1", "true", "yes", "on"}


class DownloadError(RuntimeError):
    """A file could not be fetched; the message names the URL, what went wrong and what to do."""


class ChecksumMismatch(DownloadError):
    """The fetched bytes do not hash to the expected sha256 (corrupt transfer, stale mirror or wrong pin)."""


class OfflineError(DownloadError):
    """Offline mode is on and neither the cache nor a mirror directory has the file."""


class _BodyInterrupted(Exception):
    """The response body ended early; retried with a Range request so the received bytes are kept."""


# --------------------------------------------------------------------------------------------- layout


def _url_parts(url: str) -> tuple[str, list[str]]:
    """Split a URL into (host directory, path segments), refusing anything that could escape a root."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadError(f"Cannot fetch {url!r}: only http(s) URLs with a host are supported.")
    host = parts.hostname.lower()
    if parts.port is not None:  # ':' is not portable in directory names
        host = f"{host}_{parts.port}"
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if any(s in (".", "..") or "/" in s or "\\" in s or "\0" in s for s in segments):
        raise DownloadError(f"Cannot fetch {url!r}: its path has '.', '..' or encoded separators.")
    return host, segments


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
    if filename is None:
        host, segments = _url_parts(url)
        if not segments:
            raise DownloadError(f"Cannot cache {url!r}: the URL has no path; pass filename=... to name it.")
        return cache_dir.joinpath(host, *segments)
    rel = Path(filename)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise DownloadError(
            f"Cannot cache {url!r} as {filename!r}: filename must be a relative path in the cache."
        )
    return cache_dir / rel


# --------------------------------------------------------------------------------------------- helpers


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


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
    fd = os.open(dest.with_name(dest.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
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


def _check_and_commit(part: Path, dest: Path, actual: str, sha256: str | None, source: str) -> Path:
    """Verify the finished part file and atomically move it into place; delete it if it is wrong."""
    if sha256 is not None and actual != sha256.lower():
        _unlink(part)
        raise ChecksumMismatch(
            f"Checksum mismatch for {source}: expected sha256 {sha256.lower()}, got {actual}. "
            "The download was discarded; the file may have changed upstream (update the pinned hash) "
            "or the source is corrupt (retry, or fix/refresh the mirror)."
        )
    os.replace(part, dest)
    with contextlib.suppress(OSError):  # make the rename itself durable; not supported everywhere
        dir_fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return dest


def _finish(fh: IO[bytes]) -> None:
    fh.flush()
    os.fsync(fh.fileno())


# --------------------------------------------------------------------------------------------- sources


def _copy_from_mirror(src: Path, part: Path, dest: Path, sha256: str | None, show: bool, url: str) -> Path:
    """Copy a mirror file via the part file so a crash mid-copy never leaves a half file at ``dest``."""
    digest = hashlib.sha256()
    try:
        size = src.stat().st_size
        with src.open("rb") as fin, part.open("wb") as fout, _progress_bar(show, size, 0, dest.name) as bar:
            for chunk in iter(lambda: fin.read(CHUNK_SIZE), b""):
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
    return _check_and_commit(part, dest, digest.hexdigest(), sha256, f"{url} (mirror file {src})")


def _session(retries: int) -> requests.Session:
    """A session whose urllib3 Retry backs off on connect/read errors and retryable statuses."""
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        redirect=10,
        allowed_methods=frozenset({"GET"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=BACKOFF_FACTOR,
        raise_on_status=False,  # hand back the last 5xx so the error can name the status
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
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


def _download(
    url: str,
    part: Path,
    dest: Path,
    *,
    sha256: str | None,
    show: bool,
    retries: int,
    timeout: float,
    source: str | None = None,
) -> Path:
    """Stream ``url`` into ``part`` (resuming it if present), verify, and move it to ``dest``.

    urllib3's Retry covers failures before a response arrives (connect errors, timeouts, 5xx); a body that
    breaks off midway is retried here, with the same Retry backoff, as a Range request for the rest.
    """
    source = source or url
    body_retry = Retry(total=retries, backoff_factor=BACKOFF_FACTOR)
    with _session(retries) as session:
        while True:
            digest, offset = _hash_prefix(part)
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                response = session.get(url, headers=headers, stream=True, timeout=timeout)
            except requests.RequestException as exc:  # already retried by urllib3
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
                    _stream(response, part, mode, digest, offset, total, show, dest.name)
                except (requests.RequestException, _BodyInterrupted) as exc:
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
            return _check_and_commit(part, dest, digest.hexdigest(), sha256, source)


def _stream(
    response: requests.Response,
    part: Path,
    mode: str,
    digest: hashlib._Hash,
    offset: int,
    total: int | None,
    show: bool,
    name: str,
) -> int:
    """Append the body to the part file; raise _BodyInterrupted if it is shorter than announced."""
    received = offset
    with part.open(mode) as fh, _progress_bar(show, total, offset, name) as bar:
        try:
            for chunk in response.iter_content(HTTP_CHUNK_SIZE):
                fh.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
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
) -> Path:
    """Return a local, verified copy of ``url``, downloading it only if the cache lacks a good copy.

    Order: cache (``<cache_dir>/<host>/<path>`` or ``<cache_dir>/<filename>``) → mirror (argument, else
    $FIFTYONE_MSLITE_MIRROR) → the original URL. Offline mode (argument, else $FIFTYONE_MSLITE_OFFLINE)
    allows only the cache and a mirror *directory*, so air-gapped runs fail fast with a clear message.
    """
    sha256 = sha256.strip().lower() if sha256 else None
    cache_root = Path(cache_dir) if cache_dir is not None else cache_home() / "downloads"
    dest = _cache_path(url, cache_root, filename)
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV) or None
    if offline is None:
        offline = _env_flag(OFFLINE_ENV)
    show = sys.stderr.isatty() if progress is None else progress

    if _cached(dest, sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest):
        if _cached(dest, sha256):  # another process finished it while we waited
            return dest
        return _fetch_locked(url, dest, sha256, mirror, offline, show, retries, timeout)


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
) -> Path:
    part = dest.with_name(dest.name + ".part")
    unset_offline = f"unset {OFFLINE_ENV} (or pass offline=False) to download it"
    if mirror:
        location = mirror_location(url, mirror)
        directory = _mirror_dir(mirror)
        if directory is not None:
            src = Path(location)
            if src.is_file():
                _unlink(part)  # a stale HTTP part file must not be mixed with the mirror copy
                return _copy_from_mirror(src, part, dest, sha256, show, url)
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
                    source=f"{url} (via mirror {location})",
                )
            except ChecksumMismatch:
                raise  # a corrupt mirror should be fixed, not silently bypassed
            except DownloadError as exc:
                logger.warning("Mirror failed for %s (%s); falling back to the original URL", url, exc)
                _unlink(part)  # bytes from another server must not seed a resume
    elif offline:
        raise OfflineError(
            f"Offline: {url} is not cached at {dest} and no mirror is configured. Set {MIRROR_ENV} to a "
            f"mirror directory laid out as <root>/<host>/<path>, or {unset_offline}."
        )
    return _download(url, part, dest, sha256=sha256, show=show, retries=retries, timeout=timeout)
