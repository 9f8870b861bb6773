"""Training graphs without a runtime: telling them apart, the cut's structure, picking outputs, clear refusals."""
from __future__ import annotations

import pytest
from helpers.ms_files import tiny_training_graph, with_node_input

from fiftyone_mslite.errors import (
    LossInputNotFoundError,
    ModelFileError,
    MsInspectError,
    NotATrainingGraphError,
    TrainingGraphError,
    UnknownOutputTensorError,
)
from fiftyone_mslite.modelfiles.legacy.reader import read_current
from fiftyone_mslite.modelfiles.ms_training import cut_inference_graph, is_training_graph

BACKBONE = "Default/network-WithLossCell/_backbone-LeNet5/"
LENET_OPS = ["Conv2DFusion", "Activation", "MaxPoolFusion"] * 2 + ["Transpose", "Reshape"] + \
    ["MatMulFusion", "BiasAdd", "Activation"] * 2 + ["MatMulFusion", "BiasAdd"]


@pytest.fixture(scope="module")
def corpus(shared_dir):
    return shared_dir / "ms-corpus"


@pytest.fixture(scope="module")
def tod(corpus) -> bytes:
    return (corpus / "lenet_tod.ms").read_bytes()


@pytest.fixture(scope="module")
def train211(corpus) -> bytes:
    return (corpus / "lenet_train_2.1.1.ms").read_bytes()


def test_training_graphs_are_told_apart(corpus, tod, train211):
    assert is_training_graph(tod) and is_training_graph(train211)
    for name in ("lenet_tod_infer.ms", "ml_face_isface.ms", "two_add_operators.ms", "retinaface1.ms"):
        assert not is_training_graph((corpus / name).read_bytes()), name
    for junk in (b"", b"MSL2", tod[: len(tod) // 2], bytes(4096)):
        assert not is_training_graph(junk)
    assert not is_training_graph(cut_inference_graph(tod))


@pytest.mark.parametrize("name, batch, op_number", [("lenet_tod.ms", 32, 106), ("lenet_train_2.1.1.ms", 2, 121)])
def test_the_cut_is_the_network_up_to_the_loss_input(corpus, name, batch, op_number):
    source = read_current((corpus / name).read_bytes())
    cut = read_current(cut_inference_graph((corpus / name).read_bytes()))
    assert [n.op for n in cut.nodes] == LENET_OPS
    last = f"{BACKBONE}fc3-Dense/BiasAdd-op{op_number}"
    assert cut.nodes[-1].name == last
    assert [(cut.tensors[t].name, cut.tensors[t].dims) for t in cut.outputs] == [(last, (batch, 10))]
    assert [(cut.tensors[t].name, cut.tensors[t].dims) for t in cut.inputs] == [("inputs0", (batch, 32, 32, 1))]
    assert all(n.name.startswith(BACKBONE) or n.op == "Transpose" for n in cut.nodes)
    names = {t.name for t in cut.tensors}
    assert "inputs1" not in names and not any(n.startswith(("moment", "Gradients")) for n in names)
    assert len(cut.tensors) == 27 < len(source.tensors)
    weights = {t.name: t.data for t in source.tensors if t.is_const}
    assert all(t.data == weights[t.name] for t in cut.tensors if t.is_const)  # weights pass through untouched
    assert cut.version == source.version and len(cut.subgraphs) == 1


def test_the_cut_matches_mindspores_own_inference_export(corpus, train211):
    """lenet_tod_infer.ms is TrainSession::Export(MT_INFERENCE) of the same network (1.5): the same ops once
    its TrainModelFusion has folded each BiasAdd into the MatMul before it, the same node and output names."""
    exported = read_current((corpus / "lenet_tod_infer.ms").read_bytes())
    cut = read_current(cut_inference_graph(train211))
    folded = [n for n in cut.nodes if n.op != "BiasAdd"]
    assert [(n.op, n.name) for n in folded] == [(n.op, n.name) for n in exported.nodes]
    for ours, theirs in zip(folded, exported.nodes):
        assert [cut.tensors[t].dims for t in ours.inputs] == [exported.tensors[t].dims for t in theirs.inputs[:2]]
    assert [cut.tensors[t].name for t in cut.outputs] == [exported.tensors[t].name for t in exported.outputs]
    assert [cut.tensors[t].dims for t in cut.inputs] == [exported.tensors[t].dims for t in exported.inputs]


def test_another_output_can_be_picked_by_tensor_or_op_name(tod):
    features = f"{BACKBONE}relu-ReLU/ReLU-op101"
    cut = read_current(cut_inference_graph(tod, output=features))
    assert [cut.tensors[t].name for t in cut.outputs] == [features]
    assert [n.op for n in cut.nodes] == LENET_OPS[:-2] and cut.tensors[cut.outputs[0]].dims == (32, 84)
    assert cut_inference_graph(tod, output=f"{BACKBONE}fc3-Dense/BiasAdd-op106") == cut_inference_graph(tod)


@pytest.mark.parametrize("wanted", ["logits", "inputs1", "Default/optimizer-Adam/Mul-op118",
                                    "Gradients/Default/network-WithLossCell/_backbone-LeNet5/fc3-Dense/gradBiasAdd/"
                                    "BiasAddGrad-op121"])
def test_an_unknown_output_lists_the_candidates(tod, wanted):
    with pytest.raises(UnknownOutputTensorError) as err:
        cut_inference_graph(tod, output=wanted)
    message = str(err.value)
    assert "\n" not in message and repr(wanted) in message
    assert f"candidates: '{BACKBONE}fc3-Dense/BiasAdd-op106', '{BACKBONE}fc3-Dense/MatMul-op103'" in message
    assert isinstance(err.value, ModelFileError)


@pytest.mark.parametrize("name, loss_node, label", [("lenet_tod.ms", 18, 25), ("lenet_train_2.1.1.ms", 20, 36)])
def test_a_loss_fed_by_no_network_op_is_refused_unless_the_output_is_named(corpus, name, loss_node, label):
    data = (corpus / name).read_bytes()
    broken = with_node_input(data, loss_node, 0, label)  # the loss now reads the labels where the logits were
    assert is_training_graph(broken)
    with pytest.raises(LossInputNotFoundError) as err:
        cut_inference_graph(broken)
    message = str(err.value)
    assert "\n" not in message and "loss input cannot be found" in message and "--output-tensor" in message
    last = read_current(cut_inference_graph(data)).nodes[-1].name
    assert cut_inference_graph(broken, output=last) == cut_inference_graph(data)


def test_files_that_are_no_training_graph_or_are_broken_get_one_line_errors(corpus, tod):
    for name in ("lenet_tod_infer.ms", "retinaface1.ms"):
        with pytest.raises(NotATrainingGraphError) as err:
            cut_inference_graph((corpus / name).read_bytes())
        assert "\n" not in str(err.value)
    for broken in (tod[: len(tod) // 2], tod[:100], tod[:8] + bytes(len(tod) - 8)):
        with pytest.raises(MsInspectError) as err:
            cut_inference_graph(broken)
        assert "\n" not in str(err.value) and "truncated or corrupt" in str(err.value)


def test_dropout_is_bypassed_as_mindspores_inference_export_does():
    cut = read_current(cut_inference_graph(tiny_training_graph("Dropout")))
    assert [(n.op, n.inputs, n.outputs) for n in cut.nodes] == [("MatMulFusion", [0, 1], [2]),
                                                                 ("BiasAdd", [2, 3], [4])]
    assert [t.name for t in cut.tensors] == ["x", "fc.weight", "net/fc/MatMul", "fc.bias", "net/fc/BiasAdd"]
    assert (cut.inputs, cut.outputs) == ([0], [4])


def test_an_attribute_less_network_op_is_carried_over():
    cut = read_current(cut_inference_graph(tiny_training_graph("Abs")))
    assert [n.op for n in cut.nodes] == ["MatMulFusion", "Abs", "BiasAdd"]


@pytest.mark.parametrize("op, layout, says", [
    ("LayerNormFusion", (("begin_norm_axis", "i64", 1), ("epsilon", "f32", 1e-5)), "with attributes this cut cannot"),
    ("FillV2", (), "which MindSpore Lite 2.0.0 does not know")])
def test_a_network_op_that_cannot_be_carried_over_is_named(op, layout, says):
    with pytest.raises(TrainingGraphError) as err:
        cut_inference_graph(tiny_training_graph(op, layout))
    assert f"a {op} node ('net/mid')" in str(err.value) and says in str(err.value) and "\n" not in str(err.value)


def test_a_control_flow_training_graph_is_refused():
    with pytest.raises(TrainingGraphError) as err:
        cut_inference_graph(tiny_training_graph(subgraphs=2))
    assert "2 sub-graphs (control flow)" in str(err.value)
