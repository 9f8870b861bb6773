"""The download layer against a real HTTP server on 127.0.0.1 (and the offline mirror in ../shared).

The server is configurable per path so each test can script exactly one misbehaviour (Range support or not,
errors, truncated bodies, slowness, wrong bytes) and then count the requests it received.
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fiftyone_mslite import downloads
from fiftyone_mslite.downloads import (
    LABELS_MAX_ENV,
    MIRROR_ENV,
    MODEL_MAX_ENV,
    OFFLINE_ENV,
    ChecksumMismatch,
    DownloadError,
    DownloadTooLarge,
    OfflineError,
    fetch,
    mirror_location,
    provenance,
    size_cap,
)

PAYLOAD = bytes(range(256)) * 400  # 100 KiB, not all-equal so offsets matter
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
CORAL_LABELS = "https://raw.githubusercontent.com/google-coral/test_data/master/imagenet_labels.txt"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Route:
    """How the server answers one path."""

    body: bytes = PAYLOAD
    status: int = 200  # non-200: answer with this status (for the first `fail_first` requests, or always)
    fail_first: int | None = None
    ranges: bool = True  # honour "Range: bytes=N-" with 206 + Content-Range
    truncate_first: int = 0  # this many requests get half the body, then the connection drops
    delay: float = 0.0  # sleep before sending headers
    redirect: str | None = None  # answer 302 with this Location
    endless: bool = False  # a chunked body that never ends (until the client hangs up)
    trickle: str = ""  # "headers" or "body": send it one byte every `every` seconds (forever, for headers)
    every: float = 0.1
    hits: int = 0


@dataclass
class Server:
    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    log: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, **kwargs) -> str:
        self.routes[path] = Route(**kwargs)
        return self.base + path

    def count(self, path: str | None = None) -> int:
        return sum(1 for p, _ in self.log if path is None or p == path)

    def ranges(self, path: str) -> list[str | None]:
        return [r for p, r in self.log if p == path]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        state: Server = self.server.state  # type: ignore[attr-defined]
        with state.lock:
            state.log.append((self.path, self.headers.get("Range")))
            route = state.routes.get(self.path)
            if route is not None:
                route.hits += 1
                hit = route.hits
        try:
            if route is None:
                self._send(404, b"not found")
                return
            if route.delay:
                time.sleep(route.delay)
            if route.redirect is not None:
                self._send(302, b"", {"Location": route.redirect})
                return
            if route.trickle == "headers":
                for byte in iter(lambda: b"X", None):  # "HTTP/1.1 200 OK" never completes
                    self.wfile.write(byte)
                    self.wfile.flush()
                    time.sleep(route.every)
            if route.trickle == "body":
                self.send_response(200)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                for i in range(len(route.body)):
                    self.wfile.write(route.body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(route.every)
                return
            if route.endless:
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"label\n" * 10000
                while True:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            if route.status != 200 and (route.fail_first is None or hit <= route.fail_first):
                self._send(route.status, b"scripted failure")
                return
            body, status, headers = route.body, 200, {}
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if route.ranges and match:
                start = int(match.group(1))
                if start >= len(body):
                    self._send(416, b"", {"Content-Range": f"bytes */{len(body)}"})
                    return
                status = 206
                headers = {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
                body = body[start:]
            if hit <= route.truncate_first:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._send(status, body, headers)
        except OSError:  # the client gave up (timeout tests); nothing to report
            self.close_connection = True


@contextmanager
def serve():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    state = Server(base=f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server():
    with serve() as state:
        yield state


@pytest.fixture
def other_server():
    """A second host:port, for cross-origin redirects."""
    with serve() as state:
        yield state


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No stray env config, fast backoff, and a default cache inside tmp_path."""
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    monkeypatch.delenv(MODEL_MAX_ENV, raising=False)
    monkeypatch.delenv(LABELS_MAX_ENV, raising=False)
    monkeypatch.setenv("FIFTYONE_MSLITE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(downloads, "BACKOFF_FACTOR", 0.01)


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def cached_path(cache: Path, url: str) -> Path:
    """Expected cache location: <cache>/<host>[_port]/<path>."""
    rest = url.split("://", 1)[1].replace(":", "_", 1)
    return cache.joinpath(*rest.split("/"))


def leftovers(path: Path) -> list[Path]:
    return [p for p in path.parent.glob(path.name + ".part")]


def files_under(root: Path) -> list[Path]:
    """Files left under ``root``, apart from the lock files the cache keeps on purpose."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".lock") if root.exists() else []


# ----------------------------------------------------------------------------------- layout / mapping


def test_mirror_location_maps_host_and_path():
    assert mirror_location("https://example.com/a/b.txt", "/m") == str(Path("/m/example.com/a/b.txt"))
    assert (
        mirror_location("https://example.com/a/b.txt", "http://h:1/m/") == "http://h:1/m/example.com/a/b.txt"
    )
    assert (
        mirror_location("https://example.com/a%20b.txt", "https://h/m") == "https://h/m/example.com/a%20b.txt"
    )
    assert mirror_location("http://127.0.0.1:8080/x", "file:///m") == str(Path("/m/127.0.0.1_8080/x"))


@pytest.mark.parametrize(
    "url", ["https://example.com/a/../../etc/passwd", "https://e.com/a%2F..%2Fb", "ftp://e/x"]
)
def test_unsafe_or_unsupported_urls_are_rejected(url, cache):
    with pytest.raises(DownloadError, match="Cannot fetch"):
        fetch(url, cache_dir=cache)


# ----------------------------------------------------------------------------------- plain downloads


def test_download_lands_in_host_path_layout(server, cache):
    url = server.add("/files/model.bin")
    path = fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, progress=False)
    assert path == cached_path(cache, url)
    assert path.read_bytes() == PAYLOAD
    assert leftovers(path) == []
    assert server.count() == 1


def test_filename_overrides_layout(server, cache):
    url = server.add("/files/model.bin")
    path = fetch(url, cache_dir=cache, filename="named/m.bin", progress=False)
    assert path == cache / "named" / "m.bin"
    assert path.read_bytes() == PAYLOAD


def test_default_cache_is_under_cache_home(server, tmp_path):
    url = server.add("/files/model.bin")
    path = fetch(url, progress=False)
    assert path.is_relative_to(tmp_path / "home" / "downloads")


def test_cache_hit_makes_zero_requests(server, cache):
    url = server.add("/files/model.bin")
    first = fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, progress=False)
    assert server.count() == 1
    assert fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, progress=False) == first
    assert fetch(url, cache_dir=cache, progress=False) == first  # no hash: presence is enough
    assert server.count() == 1


def test_cached_file_with_wrong_hash_is_fetched_again(server, cache):
    url = server.add("/files/model.bin")
    dest = cached_path(cache, url)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"stale")
    assert fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, progress=False).read_bytes() == PAYLOAD
    assert server.count() == 1


def test_progress_bar_goes_to_stderr_only_when_asked(server, cache, capsys):
    url = server.add("/files/model.bin")
    fetch(url, cache_dir=cache, progress=False)
    assert capsys.readouterr().err == ""
    fetch(url, cache_dir=cache, filename="again.bin", progress=True)
    captured = capsys.readouterr()
    assert "again.bin" in captured.err and captured.out == ""


# ----------------------------------------------------------------------------------- HTTP errors / retries


@pytest.mark.parametrize("status", [404, 403])
def test_client_errors_fail_immediately_without_retries(server, cache, status):
    url = server.add("/gone.bin", status=status)
    with pytest.raises(DownloadError, match=str(status)) as info:
        fetch(url, cache_dir=cache, retries=3, progress=False)
    assert url in str(info.value)
    assert server.count() == 1


def test_server_errors_are_retried_then_reported(server, cache):
    url = server.add("/flaky.bin", status=500)
    with pytest.raises(DownloadError, match="500") as info:
        fetch(url, cache_dir=cache, retries=2, progress=False)
    assert url in str(info.value)
    assert server.count() == 3  # first try + 2 retries
    assert not cached_path(cache, url).exists()


def test_transient_server_errors_recover(server, cache):
    url = server.add("/flaky.bin", status=503, fail_first=2)
    path = fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, retries=3, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.count() == 3


def test_connection_refused_is_reported(cache):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.bin"
    with pytest.raises(DownloadError, match="connection failed") as info:
        fetch(url, cache_dir=cache, retries=1, timeout=0.5, progress=False)
    assert url in str(info.value)


# ----------------------------------------------------------------------------------- resume / Range


def test_truncated_body_is_resumed_with_range(server, cache):
    big = PAYLOAD * 10  # ~1 MiB: the first, truncated response delivers ~500 KiB before the connection drops
    url = server.add("/big.bin", body=big, truncate_first=1)
    path = fetch(url, sha256=sha(big), cache_dir=cache, retries=2, progress=False)
    assert path.read_bytes() == big
    first, second = server.ranges("/big.bin")
    assert first is None
    # the retry asks only for the rest (urllib3 may drop the last partially read chunk, hence <=)
    offset = int(re.fullmatch(r"bytes=(\d+)-", second or "").group(1))
    assert 0 < offset <= len(big) // 2
    assert leftovers(path) == []


def test_interrupted_download_is_kept_and_resumed_by_the_next_call(server, cache):
    big = PAYLOAD * 10
    url = server.add("/big.bin", body=big, truncate_first=1)
    with pytest.raises(DownloadError, match="breaking off") as info:
        fetch(url, sha256=sha(big), cache_dir=cache, retries=0, progress=False)
    assert url in str(info.value)
    dest = cached_path(cache, url)
    assert not dest.exists()
    (part,) = leftovers(dest)
    kept = part.stat().st_size
    assert kept > 0
    assert fetch(url, sha256=sha(big), cache_dir=cache, progress=False).read_bytes() == big
    assert server.ranges("/big.bin") == [None, f"bytes={kept}-"]


def test_416_to_a_plain_get_is_an_error_not_a_loop(server, cache):
    url = server.add("/odd.bin", status=416)
    with pytest.raises(DownloadError, match="416"):
        fetch(url, cache_dir=cache, progress=False)
    assert server.count() == 1


def test_existing_part_file_is_resumed(server, cache):
    url = server.add("/big.bin")
    dest = cached_path(cache, url)
    dest.parent.mkdir(parents=True)
    (dest.parent / (dest.name + ".part")).write_bytes(PAYLOAD[:1000])
    assert fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, progress=False).read_bytes() == PAYLOAD
    assert server.ranges("/big.bin") == ["bytes=1000-"]


def test_server_ignoring_range_restarts_from_zero(server, cache):
    url = server.add("/big.bin", ranges=False)
    dest = cached_path(cache, url)
    dest.parent.mkdir(parents=True)
    (dest.parent / (dest.name + ".part")).write_bytes(b"garbage that must not survive")
    assert fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, progress=False).read_bytes() == PAYLOAD
    assert server.count() == 1


def test_416_restarts_from_zero(server, cache):
    url = server.add("/big.bin")
    dest = cached_path(cache, url)
    dest.parent.mkdir(parents=True)
    (dest.parent / (dest.name + ".part")).write_bytes(b"x" * (len(PAYLOAD) + 10))
    assert fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, progress=False).read_bytes() == PAYLOAD
    assert server.ranges("/big.bin") == [f"bytes={len(PAYLOAD) + 10}-", None]


def test_wrong_bytes_raise_checksum_mismatch_and_leave_nothing(server, cache):
    url = server.add("/evil.bin", body=b"not the model")
    with pytest.raises(ChecksumMismatch) as info:
        fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, progress=False)
    message = str(info.value)
    assert url in message and PAYLOAD_SHA in message and sha(b"not the model") in message
    dest = cached_path(cache, url)
    assert not dest.exists()
    assert leftovers(dest) == []


# ----------------------------------------------------------------------------------- timeouts


def test_slow_server_within_timeout_succeeds(server, cache):
    url = server.add("/slow.bin", delay=0.2)
    assert fetch(url, cache_dir=cache, timeout=3.0, progress=False).read_bytes() == PAYLOAD


def test_slow_server_beyond_timeout_is_retried_then_fails(server, cache):
    url = server.add("/slower.bin", delay=1.5)
    with pytest.raises(DownloadError, match="timed out") as info:
        fetch(url, cache_dir=cache, timeout=0.3, retries=1, progress=False)
    assert url in str(info.value)
    assert server.count("/slower.bin") == 2
    assert not cached_path(cache, url).exists()


def test_headers_trickled_byte_by_byte_end_the_download(server, cache, monkeypatch):
    url = server.add("/drip-headers.bin", trickle="headers", every=0.05)  # each byte restarts the read timeout
    with pytest.raises(DownloadError, match=r"did not send its response headers within 1 s") as info:
        fetch(url, cache_dir=cache, timeout=0.5, retries=1, progress=False)
    assert url in str(info.value) and "\n" not in str(info.value)
    assert not cached_path(cache, url).exists()
    monkeypatch.setenv(downloads.DEADLINE_ENV, "1")  # with the default 30 s read timeout, the deadline ends it
    with pytest.raises(DownloadError, match=r"took longer than 1 s \(FIFTYONE_MSLITE_DOWNLOAD_DEADLINE\)"):
        fetch(url, cache_dir=cache, kind="labels", progress=False)


def test_a_body_slower_than_the_minimum_rate_is_abandoned_and_resumed_later(server, cache, monkeypatch):
    url = server.add("/drip-body.bin", trickle="body", every=0.05)  # 20 bytes/s
    monkeypatch.setenv(downloads.MIN_RATE_ENV, "1K")
    with pytest.raises(DownloadError, match=r"below FIFTYONE_MSLITE_DOWNLOAD_MIN_RATE=1 KiB/s") as info:
        fetch(url, cache_dir=cache, timeout=0.5, progress=False)
    assert "next call resumes it" in str(info.value) and server.count("/drip-body.bin") == 1
    (part,) = leftovers(cached_path(cache, url))
    kept = part.stat().st_size
    assert 0 < kept < len(PAYLOAD) and PAYLOAD.startswith(part.read_bytes())
    server.add("/drip-body.bin")  # the server recovers: the next call resumes where the part file ends
    assert fetch(url, cache_dir=cache, progress=False).read_bytes() == PAYLOAD
    assert server.ranges("/drip-body.bin") == [None, f"bytes={kept}-"]


def test_the_overall_deadline_ends_a_download_whatever_its_pace(server, cache, monkeypatch):
    url = server.add("/drip-forever.bin", trickle="body", every=0.05)
    monkeypatch.setenv(downloads.MIN_RATE_ENV, "0")  # no rate floor: only the deadline can end it
    monkeypatch.setenv(downloads.DEADLINE_ENV, "1.5")
    with pytest.raises(DownloadError, match=r"took longer than 1.5 s \(FIFTYONE_MSLITE_DOWNLOAD_DEADLINE\)"):
        fetch(url, cache_dir=cache, timeout=0.5, progress=False)  # the body alone would take 85 minutes
    assert leftovers(cached_path(cache, url))  # kept for the resume
    monkeypatch.setenv(downloads.DEADLINE_ENV, "soon")
    with pytest.raises(ValueError, match="FIFTYONE_MSLITE_DOWNLOAD_DEADLINE='soon' is not a duration"):
        fetch(url, cache_dir=cache, progress=False)


# ----------------------------------------------------------------------------------- concurrency


def test_concurrent_fetches_download_once(server, cache):
    url = server.add("/shared.bin", delay=0.2)
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, progress=False))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert errors == []
    assert len(results) == 3 and len(set(results)) == 1
    assert results[0].read_bytes() == PAYLOAD
    assert server.count() == 1


# ----------------------------------------------------------------------------------- offline


def test_offline_uses_cache(server, cache):
    url = server.add("/files/model.bin")
    fetch(url, cache_dir=cache, progress=False)
    assert fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, offline=True).read_bytes() == PAYLOAD
    assert server.count() == 1


def test_offline_without_cache_raises(server, cache):
    url = server.add("/files/model.bin")
    with pytest.raises(OfflineError, match=MIRROR_ENV) as info:
        fetch(url, cache_dir=cache, offline=True)
    assert url in str(info.value)
    assert server.count() == 0


def test_offline_env_is_honoured(server, cache, monkeypatch):
    url = server.add("/files/model.bin")
    monkeypatch.setenv(OFFLINE_ENV, "true")
    with pytest.raises(OfflineError):
        fetch(url, cache_dir=cache)
    assert server.count() == 0


def test_offline_names_the_mirror_path_it_tried(server, cache, tmp_path):
    url = server.add("/files/model.bin")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with pytest.raises(OfflineError) as info:
        fetch(url, cache_dir=cache, mirror=str(mirror), offline=True)
    assert mirror_location(url, str(mirror)) in str(info.value)
    assert server.count() == 0


def test_offline_refuses_url_mirror(server, cache):
    url = server.add("/files/model.bin")
    with pytest.raises(OfflineError, match="directory"):
        fetch(url, cache_dir=cache, mirror=server.base + "/mirror", offline=True)
    assert server.count() == 0


# ----------------------------------------------------------------------------------- mirrors


def test_shared_mirror_directory_serves_coral_labels(shared_dir, cache):
    mirror = shared_dir / "mirror"
    src = Path(mirror_location(CORAL_LABELS, str(mirror)))
    if not src.is_file():
        pytest.skip(f"offline mirror file absent: {src}")
    expected = None
    sums = shared_dir / "SHA256SUMS"
    if sums.is_file():
        rel = src.relative_to(shared_dir).as_posix()
        for line in sums.read_text().splitlines():
            digest, _, name = line.partition("  ")
            if name.strip() == rel:
                expected = digest.strip()
    expected = expected or sha(src.read_bytes())
    # offline=True proves the bytes come from the mirror, not the network
    path = fetch(CORAL_LABELS, sha256=expected, cache_dir=cache, mirror=str(mirror), offline=True)
    assert path == cache / "raw.githubusercontent.com/google-coral/test_data/master/imagenet_labels.txt"
    assert sha(path.read_bytes()) == expected
    assert path.read_bytes() == src.read_bytes()
    assert leftovers(path) == []


def make_mirror(root: Path, url: str, data: bytes) -> Path:
    path = Path(mirror_location(url, str(root)))
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path


def test_mirror_directory_from_env(server, cache, tmp_path, monkeypatch):
    url = server.add("/files/model.bin")
    make_mirror(tmp_path / "mirror", url, PAYLOAD)
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    assert fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, offline=True).read_bytes() == PAYLOAD
    assert server.count() == 0


def test_mirror_directory_miss_falls_back_to_url(server, cache, tmp_path):
    url = server.add("/files/model.bin")
    (tmp_path / "mirror").mkdir()
    path = fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, mirror=str(tmp_path / "mirror"), progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.count() == 1


def test_corrupt_mirror_file_raises_naming_it(server, cache, tmp_path):
    url = server.add("/files/model.bin")
    src = make_mirror(tmp_path / "mirror", url, b"corrupt")
    with pytest.raises(ChecksumMismatch) as info:
        fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, mirror=str(tmp_path / "mirror"), progress=False)
    assert str(src) in str(info.value) and url in str(info.value)
    dest = cached_path(cache, url)
    assert not dest.exists() and leftovers(dest) == []


def test_mirror_base_url(server, cache):
    server.add("/mirror/raw.githubusercontent.com/org/repo/main/labels.txt", body=b"cat\ndog\n")
    url = "https://raw.githubusercontent.com/org/repo/main/labels.txt"
    path = fetch(
        url, sha256=sha(b"cat\ndog\n"), cache_dir=cache, mirror=server.base + "/mirror/", progress=False
    )
    assert path == cache / "raw.githubusercontent.com/org/repo/main/labels.txt"
    assert path.read_bytes() == b"cat\ndog\n"
    assert server.count() == 1


def test_mirror_base_url_from_env(server, cache, monkeypatch):
    server.add("/m/raw.githubusercontent.com/org/repo/main/labels.txt", body=b"cat\n")
    monkeypatch.setenv(MIRROR_ENV, server.base + "/m")
    path = fetch(
        "https://raw.githubusercontent.com/org/repo/main/labels.txt", cache_dir=cache, progress=False
    )
    assert path.read_bytes() == b"cat\n"


def test_mirror_base_url_miss_falls_back_to_url(server, cache):
    url = server.add("/files/model.bin")
    path = fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, mirror=server.base + "/mirror", progress=False)
    assert path.read_bytes() == PAYLOAD
    mirror_path = mirror_location(url, server.base + "/mirror")[len(server.base) :]
    assert [p for p, _ in server.log] == [mirror_path, "/files/model.bin"]


# ----------------------------------------------------------------------------------- security: paths (issue 13, 17)


@pytest.mark.parametrize(
    "url",
    [
        "http://../onnx/x.onnx",
        "http://./x.onnx",
        "http://%2e%2e/x.onnx",
        "http://a..b/x.onnx",
        "http://.a/x.onnx",
        "http://h/a/%2e%2e/%2e%2e/x.onnx",
        "http://h/a/%2E/x.onnx",
        "http://h/a//x.onnx",
        "http://h/dir/",
        "http://h:99999/x.onnx",
    ],
)
def test_dot_hosts_and_empty_or_dot_segments_are_rejected_before_mapping(url, tmp_path):
    with pytest.raises(DownloadError, match="Cannot fetch"):
        fetch(url, cache_dir=tmp_path / "cache", mirror=str(tmp_path / "mirror"), offline=True)
    with pytest.raises(DownloadError, match="Cannot fetch"):
        fetch(url, cache_dir=tmp_path / "cache", filename="named.bin", offline=True)
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("name", ["x.onnx.part", "x.onnx.lock", "x.onnx.source.json"])
def test_cache_bookkeeping_names_are_reserved(name, tmp_path):
    with pytest.raises(DownloadError, match="bookkeeping"):
        fetch(f"http://h/{name}", cache_dir=tmp_path / "cache", offline=True)
    with pytest.raises(DownloadError, match="bookkeeping"):
        fetch("http://h/x", cache_dir=tmp_path / "cache", filename=name, offline=True)


def test_ip_hosts_map_to_plain_directories():
    assert mirror_location("http://127.0.0.1:8080/x", "/m") == str(Path("/m/127.0.0.1_8080/x"))
    assert mirror_location("http://[::1]:8080/x", "/m") == str(Path("/m/[--1]_8080/x"))


def test_dot_host_cannot_read_outside_the_mirror_nor_write_outside_the_cache(tmp_path):
    """`http://../onnx/x.onnx` once read <mirror>/../onnx/x.onnx and wrote <cache>/../onnx/x.onnx."""
    secret = tmp_path / "onnx" / "x.onnx"
    secret.parent.mkdir()
    secret.write_bytes(b"outside the mirror")
    (tmp_path / "mirror").mkdir()
    cache = tmp_path / "cache" / "downloads"
    with pytest.raises(DownloadError, match="Cannot fetch"):
        fetch("http://../onnx/x.onnx", cache_dir=cache, mirror=str(tmp_path / "mirror"), offline=True)
    assert not (tmp_path / "cache").exists()


def test_symlinks_out_of_the_mirror_or_the_cache_are_refused(server, tmp_path):
    url = server.add("/files/model.bin")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not for the cache")
    mirror = tmp_path / "mirror"
    link = Path(mirror_location(url, str(mirror)))
    link.parent.mkdir(parents=True)
    link.symlink_to(outside / "secret")
    with pytest.raises(DownloadError, match="outside"):
        fetch(url, cache_dir=tmp_path / "cache", mirror=str(mirror), offline=True)
    assert files_under(tmp_path / "cache") == []

    cache = tmp_path / "cache2"
    cached_path(cache, url).parent.parent.mkdir(parents=True)
    cached_path(cache, url).parent.symlink_to(outside, target_is_directory=True)  # <cache>/<host> -> outside
    with pytest.raises(DownloadError, match="outside"):
        fetch(url, cache_dir=cache, progress=False)
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert server.count() == 0


def test_a_failed_download_never_replaces_the_cached_copy(server, cache):
    url = server.add("/files/model.bin")
    good = fetch(url, cache_dir=cache, progress=False)
    server.routes["/files/model.bin"].body = b"tampered"
    with pytest.raises(ChecksumMismatch):
        fetch(url, sha256=sha(b"something else"), cache_dir=cache, progress=False)
    assert good.read_bytes() == PAYLOAD and leftovers(good) == []


# ----------------------------------------------------------------------------------- security: size caps (18)


def test_default_caps_and_their_overrides(monkeypatch):
    assert size_cap("model") == 2 << 30 and size_cap("labels") == 8 << 20
    monkeypatch.setenv(MODEL_MAX_ENV, "4G")
    monkeypatch.setenv(LABELS_MAX_ENV, "512k")
    assert size_cap("model") == 4 << 30 and size_cap("labels") == 512 << 10
    assert size_cap("labels", max_bytes=10) == 10
    monkeypatch.setenv(MODEL_MAX_ENV, "lots")
    with pytest.raises(DownloadError, match=MODEL_MAX_ENV):
        size_cap("model")


def test_endless_chunked_label_file_is_stopped_at_the_cap(server, cache, monkeypatch):
    url = server.add("/labels.txt", endless=True)
    monkeypatch.setenv(LABELS_MAX_ENV, "256K")
    started = time.monotonic()
    with pytest.raises(DownloadTooLarge) as info:
        fetch(url, cache_dir=cache, kind="labels", progress=False)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert url in message and "256 KiB" in message and LABELS_MAX_ENV in message
    assert files_under(cache) == []  # no part file kept: resuming an over-size body makes no sense


def test_label_sets_are_fetched_under_the_labels_cap(server, monkeypatch):
    from fiftyone_mslite.catalog.labelsets import file_label_set

    url = server.add("/endless-labels.txt", endless=True)
    monkeypatch.setenv(LABELS_MAX_ENV, "64K")
    with pytest.raises(DownloadTooLarge, match=LABELS_MAX_ENV):
        file_label_set(url)


def test_announced_length_over_the_cap_is_refused_up_front(server, cache):
    url = server.add("/files/model.bin")
    with pytest.raises(DownloadTooLarge, match="announced size") as info:
        fetch(url, cache_dir=cache, max_bytes=len(PAYLOAD) - 1, progress=False)
    assert url in str(info.value) and MODEL_MAX_ENV in str(info.value)
    assert files_under(cache) == []
    assert fetch(url, cache_dir=cache, max_bytes=len(PAYLOAD), progress=False).read_bytes() == PAYLOAD


def test_mirror_file_over_the_cap_is_refused(server, cache, tmp_path):
    url = server.add("/files/model.bin")
    make_mirror(tmp_path / "mirror", url, PAYLOAD)
    with pytest.raises(DownloadTooLarge, match="mirror file"):
        fetch(url, cache_dir=cache, mirror=str(tmp_path / "mirror"), max_bytes=1000, progress=False)
    assert files_under(cache) == [] and server.count() == 0


# ----------------------------------------------------------------------------------- security: redirects (19)


def test_pinned_redirect_to_another_port_is_verified_and_recorded(server, other_server, cache):
    final = other_server.add("/real/model.bin")
    url = server.add("/files/model.bin", redirect=final)
    path = fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, progress=False)
    assert path == cached_path(cache, url) and path.read_bytes() == PAYLOAD
    record = provenance(path)
    assert record["url"] == url and record["source"] == final and record["redirects"] == [url]
    assert record["sha256"] == PAYLOAD_SHA and record["pinned"] is True

    evil = server.add("/files/evil.bin", redirect=other_server.add("/evil", body=b"swapped"))
    with pytest.raises(ChecksumMismatch):
        fetch(evil, sha256=PAYLOAD_SHA, cache_dir=cache, progress=False)
    assert not cached_path(cache, evil).exists()


def test_unpinned_redirect_to_another_host_warns_and_records_where_it_came_from(
    server, other_server, cache, caplog
):
    final = other_server.add("/cdn/model.bin")
    url = server.add("/files/model.bin", redirect=final)
    with caplog.at_level(logging.WARNING, logger="fiftyone_mslite.downloads"):
        path = fetch(url, cache_dir=cache, progress=False)
    assert any(final in r.getMessage() and "another host" in r.getMessage() for r in caplog.records)
    assert provenance(path)["source"] == final and provenance(path)["pinned"] is False


def test_same_host_redirect_is_followed_quietly(server, cache, caplog):
    url = server.add("/old.bin", redirect="/new.bin")
    server.add("/new.bin")
    with caplog.at_level(logging.WARNING, logger="fiftyone_mslite.downloads"):
        path = fetch(url, cache_dir=cache, progress=False)
    assert path.read_bytes() == PAYLOAD and caplog.records == []
    assert provenance(path)["source"] == server.base + "/new.bin"


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1:70/x"])
def test_redirects_to_other_schemes_are_refused(server, cache, target):
    url = server.add("/files/model.bin", redirect=target)
    for sha256 in (None, PAYLOAD_SHA):  # even a pinned hash does not make file:// acceptable
        with pytest.raises(DownloadError, match=r"only http\(s\) redirects") as info:
            fetch(url, sha256=sha256, cache_dir=cache, progress=False)
        assert url in str(info.value) and target in str(info.value)
    assert files_under(cache) == []


def test_https_to_http_downgrade_needs_a_pin():
    with pytest.raises(DownloadError, match="downgrades https to http"):
        downloads._check_redirect("https://a.example/x", "http://a.example/x", pinned=False, source="x")
    downloads._check_redirect("https://a.example/x", "http://b.example/x", pinned=True, source="x")


def test_redirect_loop_is_one_clear_error(server, cache):
    url = server.add("/loop.bin", redirect="/loop.bin")
    with pytest.raises(DownloadError, match="redirects") as info:
        fetch(url, cache_dir=cache, progress=False)
    assert url in str(info.value)
    assert server.count() == downloads.MAX_REDIRECTS + 1


def test_mirror_copies_record_the_mirror_file(server, cache, tmp_path):
    url = server.add("/files/model.bin")
    src = make_mirror(tmp_path / "mirror", url, PAYLOAD)
    path = fetch(url, sha256=PAYLOAD_SHA, cache_dir=cache, mirror=str(tmp_path / "mirror"), progress=False)
    assert provenance(path) == {"url": url, "source": str(src), "redirects": [], "sha256": PAYLOAD_SHA,
                                "pinned": True}
