"""Byte-level edits of model files for the corruption tests."""


def patch_u32(data: bytes, pos: int, value: int) -> bytes:
    """`data` with the little-endian uint32 at `pos` replaced."""
    return data[:pos] + value.to_bytes(4, "little") + data[pos + 4 :]


def with_node_input(data: bytes, node: int, position: int, tensor: int) -> bytes:
    """A current-schema `.ms` whose node `node` reads tensor `tensor` as its input number `position`."""
    from fiftyone_mslite.modelfiles.flatbuf import FlatReader
    from fiftyone_mslite.modelfiles.legacy import schema as S

    rd = FlatReader(data)
    table = rd.table_in_vector(rd.root("MetaGraph"), S.MG_NODES, node, "MetaGraph.nodes")
    start, length = rd.vector_span(table, S.N_INPUTS, 4, "inputIndex")
    assert position < length
    return patch_u32(data, start + 4 * position, tensor)


def tiny_training_graph(middle: str = "Dropout", middle_layout: tuple = (), subgraphs: int = 1, seed: int = 0) -> bytes:
    """A minimal on-device training graph (current schema): x [2,4] -> MatMulFusion (w [3,4], transposed) ->
    `middle` -> BiasAdd -> a loss named as MindSpore names it (with the labels), its gradient and an SGD node.
    `middle_layout` ((name, kind, default) per field) makes the middle node set those attributes; `subgraphs` > 1
    repeats the main sub-graph (as a control-flow graph lists several)."""
    import numpy as np

    from fiftyone_mslite.modelfiles.legacy import schema as S
    from fiftyone_mslite.modelfiles.legacy.graph import Graph, Node, SubGraph, Tensor
    from fiftyone_mslite.modelfiles.legacy.writer import write_graph

    rng = np.random.default_rng(seed)

    def act(name, dims):
        return Tensor(name, 43, dims, 1, S.NODE_CNODE)

    def const(name, array):
        return Tensor(name, 43, array.shape, 1, S.NODE_VALUE, np.asarray(array, np.float32).tobytes())

    tensors = [act("x", (2, 4)), const("fc.weight", rng.normal(size=(3, 4))), act("net/fc/MatMul", (2, 3)),
               act("net/mid", (2, 3)), act("net/mid/mask", (2, 3)), const("fc.bias", rng.normal(size=3)),
               act("net/fc/BiasAdd", (2, 3)), act("labels", (2, 3)), act("loss", (1,)), act("loss/grad", (2, 3)),
               act("Gradients/bias", (3,)), const("learning_rate", np.array([0.01])), act("sgd", (1,))]
    layout = {name: default for name, _, default in S.CURRENT_TABLES["MatMulFusion"]}
    nodes = [Node("net/fc/MatMul", "MatMulFusion", layout | {"transpose_b": True}, [0, 1], [2]),
             Node("net/mid", middle, {name: default for name, _, default in middle_layout}, [2],
                  [3, 4] if middle == "Dropout" else [3]),
             Node("net/fc/BiasAdd", "BiasAdd", {"format": 1}, [3, 5], [6]),
             Node("Default/network-WithLossCell/_loss_fn-SoftmaxCrossEntropyWithLogits/op1",
                  "SoftmaxCrossEntropyWithLogits", {}, [6, 7], [8, 9]),
             Node("Gradients/net/fc/gradBiasAdd/BiasAddGrad", "BiasAddGrad", {}, [9], [10]),
             Node("Default/optimizer-SGD/SGD", "SGD", {}, [5, 10, 11], [12])]
    sub = SubGraph("main_graph", [0, 7], [8, 12], list(range(len(nodes))), list(range(len(tensors))))
    graph = Graph("", "MindSpore Lite 1.5.0", 3, [0, 7], [8, 12], nodes, tensors, [sub] * subgraphs)
    tables = S.CURRENT_TABLES | ({middle: middle_layout} if middle_layout else {})
    return write_graph(graph, S.CURRENT_PRIMITIVES, tables, S.IDENT_CURRENT)


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
