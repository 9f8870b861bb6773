"""Byte-level edits of model files for the corruption tests."""


def patch_u32(data: bytes, pos: int, value: int) -> bytes:
    """`data` with the little-endian uint32 at `pos` replaced."""
    return data[:pos] + value.to_bytes(4, "little") + data[pos + 4 :]


def write_ms(path, shape: tuple[int, ...], output_is_constant: bool = False):
    """A current-schema .ms written directly (no converter, no upgrader): x -> Relu -> y, float32 NHWC `shape`.

    With `output_is_constant`, x + w -> y instead, and the graph outputs are y and the weight w itself: a file
    MindSpore Lite 2.0.0 loads and then waits on forever at its first predict (worker asleep, issue 20).
    """
    import numpy as np

    from fiftyone_mslite.modelfiles.legacy import schema as S
    from fiftyone_mslite.modelfiles.legacy.graph import Graph, Node, SubGraph, Tensor
    from fiftyone_mslite.modelfiles.legacy.writer import write_current

    float32, nhwc = 43, 1
    x, y = Tensor("x", float32, shape, nhwc, S.NODE_CNODE), Tensor("y", float32, shape, nhwc, S.NODE_CNODE)
    if output_is_constant:
        w = Tensor("w", float32, shape, nhwc, S.NODE_VALUE, np.ones(shape, np.float32).tobytes())
        tensors, outputs, node = [x, w, y], [2, 1], Node("add", "AddFusion", {}, [0, 1], [2])
    else:
        relu = {"activation_type": 1, "alpha": 0.0, "min_val": 0.0, "max_val": 0.0, "approximate": False, "beta": 0.0}
        tensors, outputs, node = [x, y], [1], Node("relu", "Activation", relu, [0], [1])
    every = list(range(len(tensors)))
    graph = Graph("", "MindSpore Lite 2.0.0", 0, [0], outputs, [node], tensors,
                  [SubGraph("main", [0], outputs, [0], every)])
    path.write_bytes(write_current(graph))
    return path
