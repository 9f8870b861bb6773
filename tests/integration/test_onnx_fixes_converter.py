"""prepare_onnx: tiny hand-built graphs, checked for exact numerics (onnxruntime) and, where available,
against the real MindSpore Lite 2.0 converter."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers.onnx_fix_graphs import (
    bare_conv,
    example_input,
    infer,
    maxpool,
)

from fiftyone_mslite.modelfiles.onnx_fixes import prepare_onnx

ort = pytest.importorskip("onnxruntime")

# MindSpore Lite only ships for CPython 3.7: a Python that has it (the runtime's own setting), else the
# dev-machine venv for now.
MSLITE_PYTHON = Path(os.environ.get("FIFTYONE_MSLITE_RUNTIME_PYTHON", "/nonexistent"))


CONVERT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import mindspore_lite as mslite

    jobs, x_path, result_path = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    results = {}
    for onnx_path, out_stem in jobs:
        converter = mslite.Converter()
        converter.save_type = mslite.ModelType.MINDIR_LITE
        try:
            converter.convert(mslite.FmkType.ONNX, onnx_path, out_stem)
        except RuntimeError as exc:
            results[onnx_path] = {"error": str(exc)}
            continue
        context = mslite.Context()
        context.target = ["cpu"]
        model = mslite.Model()
        model.build_from_file(out_stem + ".ms", mslite.ModelType.MINDIR_LITE, context)
        inputs = model.get_inputs()
        x = np.load(x_path)
        if list(inputs[0].shape) != list(x.shape):  # the converter makes 4-D inputs NHWC
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        inputs[0].set_data_from_numpy(x)
        results[onnx_path] = {"y": model.predict(inputs)[0].get_data_to_numpy().tolist()}
    with open(result_path, "w") as f:
        json.dump(results, f)
    """
)


def test_fixes_are_what_the_real_converter_needs(tmp_path):
    if not MSLITE_PYTHON.is_file():
        pytest.skip(f"needs the MindSpore Lite 2.0 runtime (CPython 3.7 venv) at {MSLITE_PYTHON}")
    sources = [bare_conv(tmp_path), maxpool(tmp_path, [1, 1])]
    patched = [prepare_onnx(s, tmp_path / "work").output for s in sources]
    (tmp_path / "out").mkdir()
    jobs = [(str(p), str(tmp_path / "out" / f"{i}")) for i, p in enumerate(sources + patched)]
    np.save(tmp_path / "x.npy", example_input())
    script = tmp_path / "convert.py"
    script.write_text(CONVERT_SCRIPT)
    result_path = tmp_path / "results.json"

    proc = subprocess.run(
        [str(MSLITE_PYTHON), str(script), json.dumps(jobs), str(tmp_path / "x.npy"), str(result_path)],
        capture_output=True, text=True, timeout=300,
    )
    if "ModuleNotFoundError" in proc.stderr and not result_path.exists():
        pytest.skip(f"{MSLITE_PYTHON} lacks MindSpore Lite: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(result_path.read_text())

    for source, fixed in zip(sources, patched):
        assert "Common error code" in results[str(source)]["error"]
        assert "error" not in results[str(fixed)], results[str(fixed)]
        np.testing.assert_allclose(np.array(results[str(fixed)]["y"]), infer(source), rtol=1e-5, atol=1e-5)

