"""`fiftyone-mslite benchmark` speaks MindSpore Lite's `benchmark` tool: its flags, its output lines, its accuracy
check, on real files of MindSpore's and OpenHarmony's test suites (../shared/ms-corpus)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from helpers.cli import cli

from fiftyone_mslite import runtime

MODEL_LINE = re.compile(r"^Model = (\S+), NumThreads = (\d+), MinRunTime = (\d+\.\d{6}) ms, "
                        r"MaxRuntime = (\d+\.\d{6}) ms, AvgRunTime = (\d+\.\d{6}) ms$", re.M)


@pytest.fixture(scope="module")
def corpus(shared_dir):
    return shared_dir / "ms-corpus"


def tool_bias_pct(got: np.ndarray, ref: np.ndarray) -> float:
    """MindSpore Lite's CompareData (benchmark_base.h), element by element, in percent."""
    total, count = 0.0, 0
    for g, r in zip(got.ravel().tolist(), ref.ravel().tolist()):
        err = abs(g - r)
        if err > 1e-8 + 1e-5 * abs(r):
            total, count = total + err / (abs(r) + np.finfo(np.float32).tiny), count + 1
    return 100 * total / count if count else 0.0


def test_every_input_of_a_three_input_model_is_filled(corpus):
    model = corpus / "ml_headpose_pb2tflite.ms"  # an image [1,64,64,3] and two [16] vectors
    run = cli("benchmark", f"--modelFile={model}", "--loopCount=2", "--warmUpLoopCount=1", "--numThreads=1")
    assert run.returncode == 0, run.stderr
    (line,) = MODEL_LINE.findall(run.stdout)
    assert line[:2] == ("ml_headpose_pb2tflite.ms", "1")
    assert float(line[2]) <= float(line[4]) <= float(line[3])  # min <= avg <= max
    assert re.search(r"^PrepareTime = \d+(\.\d+)? ms$", run.stdout, re.M)
    assert run.stdout.rstrip().endswith("Run Benchmark ml_headpose_pb2tflite.ms Success.")
    both = cli("benchmark", str(model), f"--modelFile={corpus / 'ml_face_isface.ms'}")
    assert both.returncode == 2 and "two models given" in both.stderr


def test_accuracy_against_openharmonys_binary_reference(corpus):
    model, data = corpus / "ml_face_isface.ms", corpus / "ml_face_isface_0.input"
    reference = corpus / "ml_face_isface0.output"  # computed in fp16 by OpenHarmony: not what fp32 gives
    with runtime.open_model(model, threads=1) as session:
        (out,) = session.run(np.fromfile(data, np.float32).reshape(1, 48, 48, 3))
    expected = tool_bias_pct(out, np.frombuffer(reference.read_bytes()[12:], "<f4"))
    assert expected > 1  # the fp16 reference and 2.0.0's fp32 output differ most on the small class score

    failed = cli("benchmark", str(model), f"--inDataFile={data}", f"--benchmarkDataFile={reference}")
    assert failed.returncode == 1
    bias = float(re.search(r"^Mean bias of node/tensor prob : ([\d.e+-]+)%$", failed.stdout, re.M).group(1))
    assert bias == pytest.approx(expected, rel=1e-4)
    assert re.search(r"^Mean bias of all nodes/tensors: [\d.e+-]+%$", failed.stdout, re.M)
    assert re.search(r"^InData 0: (\S+ ){20}$", failed.stdout, re.M) and "Success." not in failed.stdout
    assert failed.stderr.strip() == (f"Mean bias of all nodes/tensors is too big: {bias:g}% "
                                     "(--accuracyThreshold 0.5)")

    passed = cli("benchmark", f"--modelFile={model}", f"--inDataFile={data}", f"--benchmarkDataFile={reference}",
                 f"--accuracyThreshold={expected * 1.01}", "--json")
    assert passed.returncode == 0, passed.stderr
    result = json.loads(passed.stdout)
    assert result["passed"] and result["outputs"][0]["name"] == "prob"
    assert result["mean_bias_pct"] == pytest.approx(expected, rel=1e-4) and result["min_ms"] is None


def test_text_golden_file_and_a_threshold_that_fails(corpus, tmp_path):
    model, data = corpus / "ml_face_isface.ms", corpus / "ml_face_isface_0.input"
    with runtime.open_model(model, threads=1) as session:
        (out,) = session.run(np.fromfile(data, np.float32).reshape(1, 48, 48, 3))
    exact, off = tmp_path / "exact.txt", tmp_path / "off.txt"
    exact.write_text(f"prob 2 1 2\n{' '.join(repr(float(v)) for v in out.ravel())}\n")  # the tool's text format
    off.write_text(f"prob 2 1 2\n{' '.join(repr(float(v) * 1.1) for v in out.ravel())}\n")

    same = cli("benchmark", str(model), f"--inDataFile={data}", f"--benchmarkDataFile={exact}")
    assert same.returncode == 0, same.stderr
    assert "Mean bias of node/tensor prob : 0%\nMean bias of all nodes/tensors: 0%\n" in same.stdout
    far = cli("benchmark", str(model), f"--inDataFile={data}", f"--benchmarkDataFile={off}",
              "--accuracyThreshold=5", "--json")
    assert far.returncode == 1
    result = json.loads(far.stdout)  # pure JSON, also when the check fails
    assert not result["passed"] and result["mean_bias_pct"] == pytest.approx(100 * 0.1 / 1.1, rel=1e-3)


def test_input_files_must_fit_the_inputs(corpus, tmp_path):
    short = tmp_path / "short.bin"
    short.write_bytes(b"\0" * 100)
    wrong = cli("benchmark", str(corpus / "ml_face_isface.ms"), f"--inDataFile={short}")
    assert wrong.returncode == 1 and wrong.stderr.count("\n") == 1
    assert "input 'data' (float32 (1, 48, 48, 3)) needs 27648 bytes, the file has 100" in wrong.stderr
    count = cli("benchmark", str(corpus / "ml_headpose_pb2tflite.ms"), f"--inDataFile={short}", "--json")
    assert count.returncode == 1
    assert "gives 1 file(s)" in json.loads(count.stdout)["message"] and "has 3 input(s)" in count.stdout
