"""No runtime call waits forever (issue 20): a hang ends with a one-line error naming the model and the wait,
the worker is killed and replaced, annotate goes on. FIFTYONE_MSLITE_CALL_TIMEOUT is set small here."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest
from helpers.cli import cli
from helpers.ms_files import write_ms
from PIL import Image

from fiftyone_mslite import runtime
from fiftyone_mslite.errors import ModelFileError, WorkerTimeoutError
from fiftyone_mslite.integration.annotation import annotate
from fiftyone_mslite.integration.model import load_model


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()  # killed and reaped, not a zombie


def test_a_graph_whose_output_is_a_constant_ends_with_the_deadline(tmp_path, monkeypatch):
    model = write_ms(tmp_path / "const-output.ms", (1, 2, 2, 3), output_is_constant=True)
    monkeypatch.setenv("FIFTYONE_MSLITE_CALL_TIMEOUT", "10")
    before = _workers()
    with pytest.raises(WorkerTimeoutError) as caught:  # MindSpore Lite 2.0.0 sleeps in its first predict
        runtime.open_model(model, threads=1, backend="worker")
    message = str(caught.value)
    assert "did not answer within 10 s while loading" in message and str(model) in message and "\n" not in message
    assert _workers() <= before, "the hung worker is still alive"

    run = cli("benchmark", str(model), "--json", FIFTYONE_MSLITE_CALL_TIMEOUT="10")
    assert run.returncode == 1
    error = json.loads(run.stdout)
    assert str(model) in error["message"]
    # the deadline, or (once the model-file bridge refuses constant outputs up front) that refusal
    assert error["error"] == "WorkerTimeoutError" or "constant" in error["message"]


def _workers() -> set[int]:
    """Pids of this process's live workers (their command line ends with our pid)."""
    found = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(args) > 2 and args[-2] == str(os.getpid()).encode() and args[-7].endswith(b"worker.py"):
            found.add(int(proc.name))
    return found


def test_a_worker_that_stops_answering_is_replaced(tmp_path, monkeypatch):
    model = write_ms(tmp_path / "relu.ms", (1, 4, 4, 3))
    batch = np.linspace(-1, 1, 48, dtype=np.float32).reshape(1, 4, 4, 3)
    monkeypatch.setenv("FIFTYONE_MSLITE_CALL_TIMEOUT", "15")
    with runtime.open_model(model, threads=1, backend="worker") as session:
        (first,) = session.run(batch)
        np.testing.assert_array_equal(first, np.maximum(batch, 0))
        stopped = session.pid
        os.kill(stopped, signal.SIGSTOP)
        with pytest.raises(WorkerTimeoutError, match=rf"within 15 s while running a batch of 1 on {model}"):
            session.run(batch)
        assert _gone(stopped)
        (again,) = session.run(batch)  # a fresh worker
        assert session.pid != stopped and session.restarts == 1
        np.testing.assert_array_equal(again, first)


def test_a_declared_input_of_tens_of_gigabytes_is_refused_before_allocating(tmp_path, monkeypatch):
    huge = write_ms(tmp_path / "huge.ms", (65536, 224, 224, 3))  # a batch dim patched to 65536: 36.75 GiB
    run = cli("benchmark", str(huge))
    assert run.returncode == 1 and run.stderr.count("\n") == 1
    assert (f"{huge}: input 'x' float32 (65536, 224, 224, 3) needs 36.75 GiB for one call (36.75 GiB with every "
            "input), over the FIFTYONE_MSLITE_MAX_INPUT_SIZE limit of 2 GiB") in run.stderr
    # what MindSpore Lite itself accepts is capped in the worker too, before its warm-up call allocates
    model = write_ms(tmp_path / "big.ms", (1, 512, 512, 3))
    monkeypatch.setenv("FIFTYONE_MSLITE_MAX_INPUT_SIZE", "1M")
    with pytest.raises(ModelFileError, match=r"input 'x' float32 \(1, 512, 512, 3\) needs 3 MiB .* limit of 1 MiB"):
        runtime.open_model(model, threads=1, backend="worker")
    monkeypatch.setenv("FIFTYONE_MSLITE_MAX_INPUT_SIZE", "4M")
    with runtime.open_model(model, threads=1, backend="worker") as session:
        assert session.run(np.ones((1, 512, 512, 3), np.float32))[0].shape == (1, 512, 512, 3)


def test_annotates_batch_buffers_are_capped_too(tiny_model, monkeypatch):
    monkeypatch.setenv("FIFTYONE_MSLITE_MAX_INPUT_SIZE", "4K")  # tiny's input: 8x8x3 float32 = 768 bytes a sample
    with load_model(tiny_model, streams=1) as model:
        assert model.classifier.batch_buffer(4).shape == (4, 8, 8, 3)
        with pytest.raises(ModelFileError, match=r"\(16, 8, 8, 3\) needs 12 KiB for one call"):
            model.classifier.batch_buffer(16)


@pytest.fixture
def images(tmp_path) -> list[Path]:
    rng = np.random.default_rng(3)
    paths = []
    for i in range(12):
        paths.append(tmp_path / f"img{i}.jpg")
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def test_annotate_marks_a_hung_batch_failed_and_goes_on(tiny_model, images, monkeypatch):
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=str(p)) for p in images])
    monkeypatch.setenv("FIFTYONE_MSLITE_CALL_TIMEOUT", "20")
    with load_model(tiny_model, streams=1) as model:
        session = model.classifier.session
        stops: list[int] = []
        seen: list[np.ndarray] = []  # batches by identity: a retry resubmits the same array
        run = session.run

        def run_stopping_batch_2(*arrays):
            if not any(b is arrays[0] for b in seen):
                seen.append(arrays[0])
            if len(seen) > 1 and arrays[0] is seen[1]:  # batch 2 and its retry: the worker stops answering
                if session.pid is None:  # the worker restarts lazily inside run(); start it now to stop it
                    session._start()
                stops.append(session.pid)
                os.kill(session.pid, signal.SIGSTOP)
            return run(*arrays)

        monkeypatch.setattr(session, "run", run_stopping_batch_2)
        summary = annotate(ds, model, "pred", batch_size=4, progress=False)
        assert summary.crashed_batches == 2 and summary.processed == 8 and summary.failed == 4
        assert all("stopped answering twice" in f.error and "within 20 s" in f.error for f in summary.failures)
        assert all(_gone(pid) for pid in stops) and len(stops) == 2
        assert ds.count("pred") == 8 and ds.count("pred_error") == 4
        monkeypatch.setattr(session, "run", run)
        resumed = annotate(ds, model, "pred", batch_size=4, progress=False)
    assert (resumed.skipped, resumed.processed, resumed.failed) == (8, 4, 0)
    assert ds.count("pred") == 12 and ds.count("pred_error") == 0


@pytest.fixture
def trickling_server():
    """An HTTP server on 127.0.0.1 that answers every GET one byte of its status line every 0.1 s, forever."""
    import http.server
    import threading
    import time

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                while True:
                    self.wfile.write(b"H")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:  # the client hung up: what the test wants
                pass

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_models_add_with_a_trickling_label_url_ends(trickling_server, tiny_onnx, tmp_path):
    url = f"{trickling_server}/labels.txt"
    run = cli("models", "add", "drip", "--source", str(tiny_onnx), "--labels", url, "--json",
              FIFTYONE_MSLITE_USER_CATALOG=str(tmp_path / "user.yaml"), FIFTYONE_MSLITE_DOWNLOAD_DEADLINE="2")
    assert run.returncode == 1
    error = json.loads(run.stdout)
    assert error["error"] == "DownloadError" and url in error["message"]
    assert "took longer than 2 s (FIFTYONE_MSLITE_DOWNLOAD_DEADLINE)" in error["message"]
    assert not (tmp_path / "user.yaml").exists() or "drip" not in (tmp_path / "user.yaml").read_text()
