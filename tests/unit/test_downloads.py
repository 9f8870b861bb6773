"""The download layer against a real HTTP server on 127.0.0.1 (and the offline mirror in ../shared).

The server is configurable per path so each test can script exactly one misbehaviour (Range support or not,
errors, truncated bodies, slowness, wrong bytes) and then count the requests it received.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fiftyone_mslite import downloads
from fiftyone_mslite.downloads import (
    MIRROR_ENV,
    OFFLINE_ENV,
    ChecksumMismatch,
    DownloadError,
    OfflineError,
    fetch,
    mirror_location,
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


@pytest.fixture
def server():
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


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No stray env config, fast backoff, and a default cache inside tmp_path."""
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
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
