"""The legacy (v0) upgrader without a runtime: reading, translating, refusing, writing, graph surgery."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.legacy_v0 import KHWC, NCHW, V0Graph

from fiftyone_mslite.errors import LegacyUpgradeError
from fiftyone_mslite.modelfiles.legacy.reader import read_v0, tensor_names
from fiftyone_mslite.modelfiles.ms_inspect import inspect_ms
from fiftyone_mslite.modelfiles.upgrade import legacy_summary, upgrade_ms


def small_graph() -> V0Graph:
    """input -> Conv2D(3x3, relu) -> Nhwc2Nchw -> Mul(const) : a v0 graph as the 1.0 converter wrote them."""
    g = V0Graph()
    x = g.input((1, 6, 5, 3))
    w = g.const(np.arange(4 * 3 * 3 * 3, dtype=np.float32).reshape(4, 3, 3, 3), KHWC)
    c, t, m = g.activation((1, 6, 5, 4)), g.activation((1, 4, 6, 5), NCHW), g.activation((1, 4, 6, 5), NCHW)
    g.node("Conv2D", [x, w], [c], group=1, channelIn=3, channelOut=4, kernelH=3, kernelW=3, strideH=1, strideW=1,
           dilateH=1, dilateW=1, padUp=1, padDown=1, padLeft=1, padRight=1, activationType=1)
    g.node("Nhwc2Nchw", [c], [t])
    g.node("Mul", [t, g.const(np.ones((1, 4, 1, 1), np.float32), NCHW)], [m])
    g.outputs = [m]
    return g


@pytest.fixture
def v0_file(tmp_path) -> Path:
    return small_graph().save(tmp_path / "small.v0.ms")


def test_reader_sees_what_the_v0_writer_wrote(v0_file):
    graph = read_v0(v0_file.read_bytes())
    assert [n.op for n in graph.nodes] == ["Conv2D", "Nhwc2Nchw", "Mul"]
    conv = graph.nodes[0].attrs
    assert (conv["kernelH"], conv["padLeft"], conv["activationType"], conv["dilateW"]) == (3, 1, 1, 1)
    assert graph.tensors[1].dims == (4, 3, 3, 3) and graph.tensors[1].format == KHWC
    assert np.frombuffer(graph.tensors[1].data, np.float32)[5] == 5.0
    assert inspect_ms(v0_file).schema == "v0"


def test_upgrade_writes_a_current_schema_file_with_stable_names(v0_file, tmp_path):
    report = upgrade_ms(v0_file, tmp_path / "small.ms")
    info = inspect_ms(tmp_path / "small.ms")
    assert info.identifier == "MSL2" and info.loadable and info.node_count == 3
    assert report.op_counts == {"Conv2D": 1, "Nhwc2Nchw": 1, "Mul": 1}
    assert report.tensors_in == 6 and report.tensors_out == 7  # + the transpose's perm
    assert [t.name for t in info.inputs] == ["0"] and [t.name for t in info.outputs] == ["4"]
    assert (tmp_path / "small.ms").read_bytes() == (upgrade_ms(v0_file, tmp_path / "again.ms") and
                                                     (tmp_path / "again.ms").read_bytes())
    assert not list(tmp_path.glob("*.part"))


def test_legacy_summary(v0_file, tmp_path):
    assert legacy_summary(v0_file) == "legacy schema v0, upgradable (3 ops, all supported)"
    upgrade_ms(v0_file, tmp_path / "small.ms")
    assert legacy_summary(tmp_path / "small.ms") == "current schema (MSL2), no upgrade needed"


def with_unsupported_ops(tmp_path: Path) -> Path:
    g = small_graph()
    out = g.activation((1, 4, 6, 5), NCHW)
    g.node("Tile", [g.outputs[0]], [out])
    dw_out = g.activation((1, 6, 5, 6))
    g.node("DepthwiseConv2D", [0, g.const(np.zeros((6, 3, 3, 1), np.float32), KHWC)], [dw_out], channelMultiplier=2,
           kernelH=3, kernelW=3, strideH=1, strideW=1, dilateH=1, dilateW=1)
    g.outputs = [out, dw_out]
    return g.save(tmp_path / "tile.v0.ms")


def test_unsupported_ops_are_refused_by_name_and_nothing_is_written(tmp_path):
    src = with_unsupported_ops(tmp_path)
    with pytest.raises(LegacyUpgradeError) as err:
        upgrade_ms(src, tmp_path / "out.ms")
    message = str(err.value)
    assert "tile.v0.ms" in message and "2 of its 5 ops" in message
    assert "Tile 'Tile-3': no translation" in message
    assert "DepthwiseConv2D 'DepthwiseConv2D-4': has channel multiplier 2" in message
    assert len(err.value.unsupported) == 2
    assert not (tmp_path / "out.ms").exists() and not list(tmp_path.glob("*.part"))
    summary = legacy_summary(src)
    assert summary.startswith("legacy schema v0, not upgradable: 2 of 5 ops unsupported: Tile 'Tile-3'")


@pytest.mark.parametrize("damage", ["truncated", "zero-filled", "random", "empty"])
def test_malformed_files_fail_with_file_and_cause(v0_file, tmp_path, damage):
    data = v0_file.read_bytes()
    bad = tmp_path / f"{damage}.ms"
    bad.write_bytes({"truncated": data[: len(data) // 2], "zero-filled": bytes(len(data)),
                     "random": np.random.default_rng(7).bytes(len(data)), "empty": b""}[damage])
    with pytest.raises(LegacyUpgradeError) as err:
        upgrade_ms(bad, tmp_path / "out.ms")
    assert bad.name in str(err.value) and "cannot upgrade" in str(err.value)
    assert not (tmp_path / "out.ms").exists() and not list(tmp_path.glob("*.part"))


def test_current_schema_without_outputs_to_add_is_nothing_to_do(v0_file, tmp_path):
    upgrade_ms(v0_file, tmp_path / "small.ms")
    with pytest.raises(LegacyUpgradeError, match="already uses the current schema.*nothing to do"):
        upgrade_ms(tmp_path / "small.ms", tmp_path / "out.ms")
    assert not (tmp_path / "out.ms").exists()


def test_add_outputs_patches_a_current_file_and_keeps_everything_else(v0_file, tmp_path):
    upgrade_ms(v0_file, tmp_path / "small.ms")
    report = upgrade_ms(tmp_path / "small.ms", tmp_path / "surgery.ms", add_outputs=("2",))
    info = inspect_ms(tmp_path / "surgery.ms")
    assert [t.name for t in info.outputs] == ["4", "2"] and info.outputs[1].dims == (1, 6, 5, 4)
    assert report.added_outputs == ("2",) and report.source_schema == "v2"
    before, after = (tmp_path / "small.ms").read_bytes(), (tmp_path / "surgery.ms").read_bytes()
    assert tensor_names(before) == tensor_names(after)
    assert sum(a != b for a, b in zip(before, after)) <= 8  # two re-pointed offsets, appended vectors after


def test_add_outputs_while_upgrading_and_unknown_names(v0_file, tmp_path):
    upgrade_ms(v0_file, tmp_path / "small.ms", add_outputs=("2",))
    assert [t.name for t in inspect_ms(tmp_path / "small.ms").outputs] == ["4", "2"]
    with pytest.raises(LegacyUpgradeError, match="has no tensor named 'nope'.*'0', '1'"):
        upgrade_ms(v0_file, tmp_path / "out.ms", add_outputs=("nope",))
    assert not (tmp_path / "out.ms").exists()


_SENTINEL = 0x5EED5EED  # fits int32; its 8 little-endian bytes mark where the file is patched


@pytest.mark.parametrize("op, attr, extra", [("Reshape", "shape", {"shape": (1, _SENTINEL)}),
                                             ("Permute", "order", {"order": (0, _SENTINEL, 2, 1)}),
                                             ("Resize", "newHeight", {"newHeight": _SENTINEL, "newWidth": 4})])
@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 2**62])
def test_64_bit_attributes_outside_int32_are_refused_in_one_line(tmp_path, op, attr, extra, value):
    """Regression (issue 20): a mutated v0 attribute outside int32 ended in OverflowError from inspect/upgrade."""
    g = V0Graph()
    x, y = g.input((1, 2, 2, 4)), g.activation((1, 4, 2, 2))
    g.node(op, [x], [y], **extra)
    g.outputs = [y]
    data = g.save(tmp_path / "ok.ms").read_bytes()
    mark = _SENTINEL.to_bytes(8, "little")
    assert data.count(mark) == 1
    src = tmp_path / "mutated.v0.ms"
    src.write_bytes(data.replace(mark, value.to_bytes(8, "little", signed=True)))
    with pytest.raises(LegacyUpgradeError) as err:
        upgrade_ms(src, tmp_path / "out.ms")
    message = str(err.value)
    assert "\n" not in message and "mutated.v0.ms" in message
    assert f"{op} '{op}-0': has attribute {attr} = {value}, outside the int32 range" in message
    assert not (tmp_path / "out.ms").exists()
    assert legacy_summary(src).startswith(f"legacy schema v0, not upgradable: 1 of 1 ops unsupported: {op} '{op}-0'")


def chain(nodes: int, path: Path) -> Path:
    """A v0 chain of ReLU / Add(const, fused ReLU) / Reshape(by attribute) nodes, in turn."""
    g = V0Graph()
    x = g.input((1, 8))
    for i in range(nodes):
        y = g.activation((1, 8))
        if i % 3 == 0:
            g.node("Activation", [x], [y], type=1)
        elif i % 3 == 1:
            g.node("Add", [x, g.const(np.ones((1, 8), np.float32))], [y], activationType=1)
        else:
            g.node("Reshape", [x], [y], shape=(1, 8))
        x = y
    g.outputs = [x]
    return g.save(path)


def python_calls(fn) -> int:
    """Every Python and C function call `fn()` makes: an operation counter that no machine load changes."""
    import sys

    count = 0

    def counter(frame, event, arg):
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(counter)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


@pytest.mark.parametrize("step", ["read", "inspect", "upgrade"])
def test_cost_per_node_is_constant_and_small(tmp_path, step):
    """Issue 20: 0.37 ms per node. The work per node must not grow with the graph (2x nodes, not 4x calls) and
    stays within a budget of calls per node (a FlatBuffer walk is a few dozen reads per node)."""
    def run(nodes: int) -> int:
        src = chain(nodes, tmp_path / f"chain{nodes}.v0.ms")
        steps = {"read": lambda: read_v0(src.read_bytes()),
                 "inspect": lambda: legacy_summary(src, inspect_ms(src)),
                 "upgrade": lambda: upgrade_ms(src, tmp_path / "out.ms")}
        steps[step]()  # warm (imports, caches)
        return python_calls(steps[step])

    small, large = run(300), run(600)
    per_node = (large - small) / 300
    assert large / small < 2.05
    assert per_node < {"read": 300, "inspect": 500, "upgrade": 900}[step]  # ~1.5x what it is (was ~4000)
