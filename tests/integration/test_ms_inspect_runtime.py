"""ms_inspect on real .ms files from the MindSpore Lite 2.0.0 converter, cross-checked with its runtime, and every
truncation/corruption of them."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import onnx
import pytest
from helpers.ms_files import patch_u32

from fiftyone_mslite.modelfiles.ms_inspect import MsInspectError, MsModelInfo, MsTensorInfo, inspect_ms

# MindSpore Lite only ships for CPython 3.7: a Python that has it (the runtime's own setting), else the
# dev-machine venv.
MSLITE_PYTHON = Path(os.environ.get("FIFTYONE_MSLITE_RUNTIME_PYTHON", "/nonexistent"))

CONVERT = textwrap.dedent(
    """
    import sys
    import mindspore_lite as m
    c = m.Converter()
    c.save_type = m.ModelType.MINDIR_LITE
    c.convert(m.FmkType.ONNX, sys.argv[1], sys.argv[2])
    """
)

# Model.get_outputs() does not exist in the 2.0.0 Python API: outputs come from one predict on zeros.
RUNTIME_IO = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import mindspore_lite as m
    model = m.Model()
    model.build_from_file(sys.argv[1], m.ModelType.MINDIR_LITE, m.Context())
    inputs = model.get_inputs()
    for t in inputs:
        t.set_data_from_numpy(np.zeros(t.shape, dtype=np.float32))
    outputs = model.predict(inputs)
    desc = lambda t: {"name": t.name, "shape": list(t.shape), "dtype": str(t.dtype)}
    io = {"inputs": [desc(t) for t in inputs], "outputs": [desc(t) for t in outputs]}
    print("@@JSON@@" + json.dumps(io))
    """
)


# ---------------------------------------------------------------------------------------------------------
# real files from the converter


def _run_py37(python: str, script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-c", script, *args],
        cwd=str(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="session")
def mslite_python() -> str:
    """A Python 3.7 with mindspore_lite 2.0.0 (converter and runtime); skip when there is none."""
    if not MSLITE_PYTHON.exists():
        pytest.skip(
            f"needs a Python 3.7 with mindspore_lite 2.0.0 at {MSLITE_PYTHON} "
            "(set FIFTYONE_MSLITE_RUNTIME_PYTHON); absent here"
        )
    probe = subprocess.run(
        [str(MSLITE_PYTHON), "-c", "import mindspore_lite"], capture_output=True, text=True, timeout=120
    )
    if probe.returncode != 0:
        pytest.skip(f"{MSLITE_PYTHON} cannot import mindspore_lite: {probe.stderr[-300:]}")
    return str(MSLITE_PYTHON)


def _convert(python: str, onnx_path: Path, out_dir: Path, stem: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = _run_py37(python, CONVERT, str(onnx_path), str(out_dir / stem), cwd=out_dir)
    out = out_dir / f"{stem}.ms"
    if proc.returncode != 0 or not out.is_file():
        pytest.fail(f"converter failed on {onnx_path} (rc={proc.returncode}):\n{proc.stdout[-2000:]}")
    return out


def _runtime_io(python: str, ms_path: Path) -> dict:
    proc = _run_py37(python, RUNTIME_IO, str(ms_path), cwd=ms_path.parent)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@JSON@@")]
    if proc.returncode != 0 or not lines:
        pytest.fail(f"runtime failed on {ms_path} (rc={proc.returncode}):\n{proc.stdout[-2000:]}")
    return json.loads(lines[-1][len("@@JSON@@") :])


@pytest.fixture(scope="session")
def tiny_ms(tmp_path_factory, mslite_python, tiny_onnx) -> Path:
    return _convert(mslite_python, tiny_onnx, tmp_path_factory.mktemp("tiny_ms"), "tiny")


@pytest.fixture(scope="session")
def resnet20_ms(tmp_path_factory, mslite_python, shared_dir) -> Path:
    src = shared_dir / "onnx" / "cifar10_resnet20.onnx"
    if not src.is_file():
        pytest.skip(f"needs {src}; absent")
    return _convert(mslite_python, src, tmp_path_factory.mktemp("resnet20"), "cifar10_resnet20")


def test_tiny_real_file(tiny_ms):
    info = inspect_ms(tiny_ms)
    assert info.path == tiny_ms
    assert info.size_bytes == tiny_ms.stat().st_size
    assert (info.identifier, info.schema, info.loadable, info.hint) == ("MSL2", "v2", True, "")
    # The 2.0.0 converter records no converter version (MetaGraph.version is unset) and no graph name.
    assert info.version == ""
    assert info.name == ""
    # ONNX NCHW [1,3,8,8] becomes an NHWC input.
    assert info.inputs == (MsTensorInfo("input_img", (1, 8, 8, 3), "float32", "NHWC"),)
    assert [(t.name, t.dims, t.dtype) for t in info.outputs] == [
        ("logits", (1, 4), "float32"),
        ("probs", (1, 4), "float32"),
    ]
    assert info.node_count >= 4
    assert info.tensor_count > info.node_count
    assert info.subgraph_count == 1
    assert info.check_loadable() is info
    assert json.loads(json.dumps(info.to_dict()))["inputs"][0]["dims"] == [1, 8, 8, 3]


def test_tiny_matches_runtime(tiny_ms, mslite_python):
    info = inspect_ms(tiny_ms)
    rt = _runtime_io(mslite_python, tiny_ms)
    assert [(t.name, list(t.dims)) for t in info.inputs] == [(t["name"], t["shape"]) for t in rt["inputs"]]
    assert [(t.name, list(t.dims)) for t in info.outputs] == [(t["name"], t["shape"]) for t in rt["outputs"]]
    assert all(t["dtype"] == "DataType.FLOAT32" for t in rt["inputs"] + rt["outputs"])


def test_resnet20_real_file(resnet20_ms, mslite_python, shared_dir):
    info = inspect_ms(resnet20_ms)
    src = onnx.load(str(shared_dir / "onnx" / "cifar10_resnet20.onnx"), load_external_data=False)
    assert (info.identifier, info.schema, info.loadable) == ("MSL2", "v2", True)
    assert [t.name for t in info.inputs] == [
        i.name for i in src.graph.input if i.name not in {init.name for init in src.graph.initializer}
    ]
    assert info.inputs[0].dims == (1, 32, 32, 3)
    assert (info.inputs[0].dtype, info.inputs[0].format) == ("float32", "NHWC")
    assert [t.name for t in info.outputs] == [o.name for o in src.graph.output]
    assert info.node_count > 10 and info.tensor_count > 50
    rt = _runtime_io(mslite_python, resnet20_ms)
    assert [(t.name, list(t.dims)) for t in info.inputs] == [(t["name"], t["shape"]) for t in rt["inputs"]]
    assert [t.name for t in info.outputs] == [t["name"] for t in rt["outputs"]]
    assert rt["outputs"][0]["shape"] == [1, 10]
    # The converter may leave an output's shape to the runtime's shape inference: () means "not recorded".
    assert info.outputs[0].dims in ((), (1, 10))


def test_every_truncation_of_a_real_file_is_refused(tiny_ms, tmp_path):
    data = tiny_ms.read_bytes()
    cut_file = tmp_path / "cut.ms"
    for cut in range(len(data)):
        cut_file.write_bytes(data[:cut])
        with pytest.raises(MsInspectError):
            inspect_ms(cut_file)


def test_truncations_of_a_larger_real_file_are_refused(resnet20_ms, tmp_path):
    data = resnet20_ms.read_bytes()
    cuts = sorted(
        {*range(0, 600, 7), *range(len(data) - 600, len(data)), *range(0, len(data), len(data) // 97)}
    )
    cut_file = tmp_path / "cut.ms"
    for cut in cuts:
        cut_file.write_bytes(data[:cut])
        with pytest.raises(MsInspectError) as err:
            inspect_ms(cut_file)
        assert "cut.ms" in str(err.value)


def test_corrupted_bytes_never_escape_as_other_errors(tiny_ms, tmp_path):
    """Every byte of a real file flipped in turn: parse or MsInspectError, never struct/Index errors."""
    data = tiny_ms.read_bytes()
    bad = tmp_path / "bad.ms"
    for pos in range(len(data)):
        mutated = bytearray(data)
        mutated[pos] ^= 0xFF
        bad.write_bytes(bytes(mutated))
        try:
            info = inspect_ms(bad)
        except MsInspectError:
            continue
        assert isinstance(info, MsModelInfo)




@pytest.mark.parametrize("root", [0xFFFFFFF0, 2, 0x7FFFFFFF, 8])
def test_bad_root_offset(tiny_ms, tmp_path, root):
    bad = tmp_path / "root.ms"
    bad.write_bytes(patch_u32(tiny_ms.read_bytes(), 0, root))
    with pytest.raises(MsInspectError, match="root.ms .*truncated or corrupt"):
        inspect_ms(bad)

