"""The parts of the two ``.ms`` FlatBuffer schemas that the upgrader reads and writes, transcribed by hand.

Why hand-written: only ~40 primitive tables of each generation matter, and a table here is one line per field
in the ``.fbs`` slot order (FlatBuffers addresses fields by declaration order, so a line in the wrong place
reads the wrong field). Sources: MindSpore 1.x ``mindspore/lite/schema/model_v0.fbs`` / ``ops_v0.fbs`` (legacy,
namespace ``mindspore.schema.v0``) and ``mindspore-lite/schema/model.fbs`` / ``ops.fbs`` / ``ops_types.fbs``
(current, identifier ``MSL2``; union order checked against the MindSpore Lite 2.0.0 runtime's type names).

A field is ``(name, kind, default)``; kinds: ``bool``, ``i8`` (byte enums), ``i32``, ``i64``, ``f32``, ``f64``,
``[i32]``, ``[i64]``, ``[f32]``, ``str`` and ``vec2d`` (``Vec2D`` of ``[long]`` rows).
"""
from __future__ import annotations

Field = tuple[str, str, object]

IDENT_CURRENT = b"MSL2"

# union PrimitiveType of ops_v0.fbs, in order (union index = position + 1).
V0_PRIMITIVES = tuple((
    "Concat SoftMax Activation Conv2D FusedBatchNorm BatchNorm BiasAdd Pooling ROIPooling DepthwiseConv2D "
    "DeDepthwiseConv2D Resize DetectionPostProcess FullConnection Mean DeConv2D Scale Reshape Eltwise NetOutput Add "
    "Sub MatMul StridedSlice Power Slice Stack Mul RealDiv Pad Maximum Minimum PReLU LeakyReLU ArgMax ArgMin Exp Crop "
    "Range Rsqrt ExpandDims Tile Cast Shape Nchw2Nhwc Nhwc2Nchw QuantDTypeCast Split Permute FakeQuantWithMinMaxVars "
    "Equal Less Greater NotEqual LessEqual GreaterEqual Min Floor Abs Neg Cos Sin Sqrt Square Constant Log Tan Atan "
    "Asin Clip Transpose Squeeze Unsqueeze Upsample Dropout Broadcast BroadcastTo Lrn ZerosLike TopK SpaceToDepth "
    "SpaceToBatch SparseToDense ReverseSequence Rank Gather GatherNd Fill Elu DepthToSpace BatchToSpace AddN Ceil "
    "EmbeddingLookup EmbeddingLookupSparse FloorDiv FloorMod L2Norm LocalResponseNormalization MatrixDiag Reduce "
    "Reverse Round Select Scatter ScatterND ConstantOfShape Unique Unstack LogicalAnd LogicalOr LogicalXor LogicalNot "
    "OnnxInt8Quantize OnnxInt8Dequantize FakeQuantWithMinMax FakeQuantWithMinMaxPerChannel BatchNormFold MulFold "
    "AddFold SquaredDifference Flatten FlattenGrad TupleGetItem Div Where OneHot Lstm Conv2DGradFilter "
    "Conv2DGradInput PoolingGrad BNGrad Assign ApplyMomentum BiasGrad SoftmaxCrossEntropy AddGrad SubGrad MulGrad "
    "DivGrad PowerGrad ActivationGrad PriorBox SpaceToBatchND Depend Return MakeTuple ToFormat Proposal Custom "
    "BlackBox NegGrad LogGrad BatchToSpaceND LshProjection HashtableLookup SkipGram DeConv2DGradFilter CustomPredict "
    "CustomNormalize CustomExtractFeatures AudioSpectrogram Mfcc Rfft FftReal FftImag Sgd Adam GroupConv2DGradInput "
    "Loop NonMaxSuppression InstanceNorm Identity LayerNorm While ControlDepend UnsortedSegmentSum AssignAdd OnesLike "
    "BinaryCrossEntropyGrad BinaryCrossEntropy LpNormalization DropoutGrad MaximumGrad MinimumGrad Switch Partial "
    "TensorListFromTensor TensorListStack TensorListGetItem TensorListSetItem TensorListReserve All Assert Adder "
    "SparseSoftmaxCrossEntropy SmoothL1Loss SmoothL1LossGrad SigmoidCrossEntropyWithLogits "
    "SigmoidCrossEntropyWithLogitsGrad Reciprocal Merge Mod GeLU"
).split())

# union PrimitiveType of ops.fbs, in order (mindspore-lite master, up to FillV2; union index = position + 1).
# The MindSpore Lite 2.0.0 runtime's own EnumNamesPrimitiveType (read from the wheel's
# libmsplugin-ge-litert_python.so) has the first 220, up to LAST_2_0_0_PRIMITIVE: PRIMITIVES_2_0_0.
CURRENT_PRIMITIVES = tuple((
    "Abs Activation ActivationGrad Adam AddFusion AdderFusion AddGrad AddN All ApplyMomentum ArgMaxFusion ArgMinFusion "
    "Assert Assign AssignAdd AudioSpectrogram AvgPoolFusion AvgPoolGrad BatchNorm BatchNormGrad BatchToSpace "
    "BatchToSpaceND BiasAdd BinaryCrossEntropy BinaryCrossEntropyGrad BiasAddGrad BroadcastTo Cast Ceil Clip Concat "
    "Attention Conv2DBackpropFilterFusion Conv2DBackpropInputFusion Conv2DFusion Conv2dTransposeFusion Cos "
    "ConstantOfShape Crop CustomExtractFeatures CustomNormalize CustomPredict DeConv2DGradFilter Depend DepthToSpace "
    "DetectionPostProcess DivFusion DivGrad Dropout DropoutGrad Elu Eltwise Equal EmbeddingLookupFusion ExpFusion "
    "ExpandDims FakeQuantWithMinMaxVars FakeQuantWithMinMaxVarsPerChannel FftReal FftImag Flatten FlattenGrad Floor "
    "FloorDiv FloorMod Fill FullConnection FusedBatchNorm Gather GatherNd Greater GreaterEqual HashtableLookup "
    "InstanceNorm LayerNormFusion LeakyRelu Less LessEqual Log LogGrad LogicalAnd LogicalNot LogicalOr LpNormalization "
    "LRN LshProjection LSTM L2NormalizeFusion MatMulFusion Maximum MaximumGrad MaxPoolFusion MaxPoolGrad SwitchLayer "
    "Mfcc Minimum MinimumGrad Mod MulFusion MulGrad Neg NegGrad NotEqual NonMaxSuppression OneHot OnesLike PadFusion "
    "PartialFusion PowerGrad PowFusion PriorBox PReLUFusion QuantDTypeCast Rank Range Reciprocal RealDiv ReduceFusion "
    "Reshape Resize ReverseSequence ReverseV2 Rfft ROIPooling Round Rsqrt ScaleFusion ScatterNd SGD Shape "
    "SigmoidCrossEntropyWithLogits SigmoidCrossEntropyWithLogitsGrad Sin SkipGram SliceFusion SmoothL1Loss "
    "SmoothL1LossGrad Softmax SoftmaxCrossEntropyWithLogits SpaceToBatch SpaceToBatchND SpaceToDepth "
    "SparseSoftmaxCrossEntropyWithLogits SparseToDense Split Sqrt Squeeze Square SquaredDifference Stack StridedSlice "
    "SubFusion SubGrad Switch TensorListFromTensor TensorListGetItem TensorListReserve TensorListSetItem "
    "TensorListStack TileFusion TopKFusion Transpose Unique UnsortedSegmentSum Unsqueeze "
    "Unstack LSTMGrad Where ZerosLike Select ScatterNdUpdate GRU NonZero InvertPermutation Size "
    "RandomStandardNormal CropAndResize Erf StridedSliceGrad IsFinite LinSpace UniformReal AbsGrad RsqrtGrad "
    "SqrtGrad LayerNormGrad ResizeGrad Splice LogSoftmax Call Custom CumSum SplitWithOverlap GenOP RaggedRange "
    "GLU TensorArray TensorArrayRead TensorArrayWrite Affine AllGather ReduceScatter DynamicQuant LSTMGradData "
    "LSTMGradWeight RandomNormal NLLLoss NLLLossGrad FormatTranspose GatherD GroupNormFusion Log1p "
    "TensorScatterAdd SparseFillEmptyRows SparseReshape SparseSegmentSum ScatterElements Triu Tril "
    "AdamWeightDecay FillV2"
).split())
LAST_2_0_0_PRIMITIVE = "AdamWeightDecay"
PRIMITIVES_2_0_0 = CURRENT_PRIMITIVES[:CURRENT_PRIMITIVES.index(LAST_2_0_0_PRIMITIVE) + 1]
UNKNOWN_PRIMITIVE = "PrimitiveType#"  # + type id: a union member newer than CURRENT_PRIMITIVES

# Shared table layouts of model_v0.fbs / model.fbs (the current schema only appends fields).
QUANT_PARAM: tuple[Field, ...] = (
    ("scale", "f64", 1.0), ("zero_point", "i32", 0), ("min", "f64", 0.0), ("max", "f64", 0.0),
    ("narrow_range", "bool", True), ("num_bits", "i32", 8), ("inited", "bool", False), ("var_corr", "f32", 1.0),
    ("mean_corr", "f32", 0.0), ("dst_dtype", "i32", 32), ("round_type", "i32", 1), ("multiplier", "i32", 1),
)
QUANT_PARAM_V0 = QUANT_PARAM[:10]
# Slots of MetaGraph, Tensor, CNode, SubGraph (identical in both generations).
MG_NAME, MG_VERSION, MG_FMK, MG_INPUTS, MG_OUTPUTS, MG_MEMPOOL, MG_NODES, MG_TENSORS, MG_SUBGRAPHS = range(9)
T_NODE_TYPE, T_DTYPE, T_DIMS, T_FORMAT, T_REFCOUNT, T_OFFSET, T_DATA, T_QUANT, T_CLUSTERS, T_NAME = range(10)
N_NAME, N_NODE_TYPE, N_PRIMITIVE, N_INPUTS, N_OUTPUTS, N_QUANT_TYPE = range(6)
P_TYPE, P_VALUE = range(2)  # Primitive { value: PrimitiveType } (a union takes a type slot and a value slot)
SG_NAME, SG_INPUTS, SG_OUTPUTS, SG_NODES, SG_TENSORS = range(5)

_PAD4 = (("padUp", "i32", 0), ("padDown", "i32", 0), ("padLeft", "i32", 0), ("padRight", "i32", 0))
_CONV_V0 = (("format", "i32", 0), ("group", "i32", 0), ("channelIn", "i32", 0), ("channelOut", "i32", 0),
            ("kernelW", "i32", 0), ("kernelH", "i32", 0), ("strideW", "i32", 0), ("strideH", "i32", 0),
            ("padMode", "i8", 0), *_PAD4, ("dilateW", "i32", 0), ("dilateH", "i32", 0),
            ("hasBias", "bool", False), ("activationType", "i8", 0))
_DWCONV_V0 = (("format", "i32", 0), ("channelIn", "i32", 0), ("channelMultiplier", "i32", 0),
              ("kernelW", "i32", 0), ("kernelH", "i32", 0), ("strideW", "i32", 0), ("strideH", "i32", 0),
              ("padMode", "i8", 0), *_PAD4, ("dilateW", "i32", 0), ("dilateH", "i32", 0),
              ("hasBias", "bool", False), ("activationType", "i8", 0))
_ACT_ONLY = (("activationType", "i8", 0),)
_TWO_TYPES = (("srcT", "i32", 0), ("dstT", "i32", 0))

# ops_v0.fbs tables of the primitives the upgrader reads (others are only named, never parsed).
V0_TABLES: dict[str, tuple[Field, ...]] = {
    "Concat": (("axis", "i32", 0), ("n", "i32", 0)),
    "SoftMax": (("axis", "i32", -1),),
    "Activation": (("type", "i8", 0), ("alpha", "f32", 0.2), ("min_val", "f32", -1.0), ("max_val", "f32", 1.0)),
    "Conv2D": _CONV_V0,
    "DeConv2D": _CONV_V0,
    "DepthwiseConv2D": _DWCONV_V0,
    "DeDepthwiseConv2D": _DWCONV_V0,
    "FusedBatchNorm": (("epsilon", "f32", 1e-5), ("momentum", "f32", 0.9), ("spatial", "i32", 1)),
    "BatchNorm": (("epsilon", "f32", 1e-5),),
    "BiasAdd": (("axis", "[i32]", ()),),
    "Pooling": (("format", "i32", 0), ("poolingMode", "i8", 0), ("global", "bool", False), ("windowW", "i32", 0),
                ("windowH", "i32", 0), ("strideW", "i32", 0), ("strideH", "i32", 0), ("padMode", "i8", 0), *_PAD4,
                ("roundMode", "i8", 0), ("activationType", "i8", 0), ("avgMode", "i32", 0)),
    "Resize": (("format", "i32", 0), ("method", "i8", 0), ("newHeight", "i64", 0), ("newWidth", "i64", 0),
               ("alignCorners", "bool", False), ("preserveAspectRatio", "bool", False),
               ("coordinateTransformMode", "i8", 0), ("cubicCoeff", "f32", 0.0), ("excludeOutside", "i32", 0),
               ("extrapolationValue", "f32", 0.0), ("nearestMode", "i8", 0)),
    "FullConnection": (("hasBias", "bool", False), ("axis", "i32", 0), ("useAxis", "bool", False),
                       ("activationType", "i8", 0)),
    "Mean": (("axis", "[i32]", ()), ("keepDims", "bool", False)),
    "Scale": (("axis", "i32", 0), ("activationType", "i8", 0)),
    "Reshape": (("format", "i32", 0), ("shape", "[i64]", ())),
    "Add": _ACT_ONLY, "Sub": _ACT_ONLY, "Mul": _ACT_ONLY, "Div": _ACT_ONLY,
    "RealDiv": (), "Maximum": (), "Minimum": (), "Shape": (), "Flatten": (), "Nchw2Nhwc": (), "Nhwc2Nchw": (),
    "MatMul": (("broadcast", "bool", False), ("transposeA", "bool", False), ("transposeB", "bool", False)),
    "StridedSlice": (("beginMask", "i32", 0), ("endMask", "i32", 0), ("ellipsisMask", "i32", 0),
                     ("newAxisMask", "i32", 0), ("shrinkAxisMask", "i32", 0), ("begin", "[i32]", ()),
                     ("end", "[i32]", ()), ("stride", "[i32]", ()), ("isScale", "[i32]", ())),
    "Slice": (("format", "i32", 0), ("axes", "[i32]", ()), ("begin", "[i32]", ()), ("size", "[i32]", ())),
    "Pad": (("paddings", "[i32]", ()), ("paddingMode", "i8", 0), ("constantValue", "f32", 0.0)),
    "PReLU": (("channelShared", "bool", False), ("slope", "[f32]", ())),
    "LeakyReLU": (("negativeSlope", "f32", 0.0),),
    "ExpandDims": (("dim", "i32", 0),),
    "Cast": _TWO_TYPES,
    "QuantDTypeCast": _TWO_TYPES,
    "Split": (("numberSplit", "i32", 0), ("sizeSplits", "[i32]", ()), ("splitDim", "i32", 0)),
    "Permute": (("order", "[i64]", ()),),
    "Transpose": (("perm", "[i32]", ()), ("conjugate", "bool", False)),
    "Squeeze": (("axis", "[i32]", ()),),
    "Unsqueeze": (("axis", "[i32]", ()),),
    "Reduce": (("axes", "[i32]", ()), ("keepDims", "i32", 0), ("mode", "i8", 0), ("reduceToEnd", "bool", False),
               ("coeff", "f32", 1.0)),
}

_ACT = (("activation_type", "i8", 0),)
_POOL = (("kernel_size", "[i64]", ()), ("strides", "[i64]", ()), ("pad", "[i64]", ()), ("pad_mode", "i8", 0),
         ("round_mode", "i8", 0), ("format", "i32", 0), ("global", "bool", False), ("activation_type", "i8", 0))
_CONV_HEAD = (("format", "i32", 0), ("kernel_size", "[i64]", ()), ("stride", "[i64]", ()), ("dilation", "[i64]", ()),
              ("pad_mode", "i8", 0))
_CONV_TAIL = (("mode", "i64", 0), ("group", "i64", 0), ("in_channel", "i64", 0), ("out_channel", "i64", 0),
              ("activation_type", "i8", 0))

# ops.fbs tables of the primitives the upgrader writes.
CURRENT_TABLES: dict[str, tuple[Field, ...]] = {
    "Activation": (("activation_type", "i8", 0), ("alpha", "f32", 0.0), ("min_val", "f32", 0.0),
                   ("max_val", "f32", 0.0), ("approximate", "bool", False), ("beta", "f32", 0.0)),
    "AddFusion": _ACT, "SubFusion": _ACT, "MulFusion": _ACT, "DivFusion": _ACT,
    "AvgPoolFusion": _POOL, "MaxPoolFusion": _POOL,
    "BatchNorm": (("epsilon", "f32", 0.0), ("format", "i32", 0), ("is_training", "bool", False)),
    "BiasAdd": (("format", "i32", 0),),
    "Concat": (("axis", "i64", 0),),
    "Conv2DFusion": (*_CONV_HEAD, ("pad_list", "[i64]", ()), *_CONV_TAIL),
    "Conv2dTransposeFusion": (*_CONV_HEAD, ("pad", "[i64]", ()), ("pad_list", "[i64]", ()), *_CONV_TAIL,
                              ("output_paddings", "[i64]", ())),
    "Flatten": (("axis", "i64", 1),),
    "FullConnection": (("has_bias", "bool", False), ("use_axis", "bool", False), ("axis", "i64", 0),
                       ("activation_type", "i8", 0)),
    "FusedBatchNorm": (("epsilon", "f32", 1e-4), ("momentum", "f32", 0.9), ("mode", "i64", 0)),
    "LeakyRelu": (("negative_slope", "f32", 0.0),),
    "MatMulFusion": (("transpose_a", "bool", False), ("transpose_b", "bool", False), ("activation_type", "i8", 0)),
    "PadFusion": (("paddings", "vec2d", ()), ("padding_mode", "i8", 0), ("constant_value", "f32", 0.0)),
    "PReLUFusion": (("channel_shared", "bool", False),),
    "QuantDTypeCast": (("src_t", "i64", 0), ("dst_t", "i64", 0), ("axis", "i64", 0)),
    "ReduceFusion": (("keep_dims", "bool", False), ("mode", "i8", 0), ("reduce_to_end", "bool", False),
                     ("coeff", "f32", 0.0)),
    "Resize": (("format", "i32", 0), ("method", "i8", 0), ("new_height", "i64", 0), ("new_width", "i64", 0),
               ("preserve_aspect_ratio", "bool", False), ("coordinate_transform_mode", "i8", 0),
               ("cubic_coeff", "f32", 0.0), ("exclude_outside", "i64", 0), ("extrapolation_value", "f32", 0.0),
               ("nearest_mode", "i8", 0)),
    "ScaleFusion": (("axis", "i64", 0), ("activation_type", "i8", 0)),
    "SliceFusion": (("axes", "[i64]", ()),),
    "Softmax": (("axis", "[i64]", ()),),
    "Split": (("output_num", "i64", 0), ("size_splits", "[i64]", ()), ("axis", "i64", 0)),
    "Squeeze": (("axis", "[i64]", ()),),
    "StridedSlice": (("begin_mask", "i64", 0), ("end_mask", "i64", 0), ("ellipsis_mask", "i64", 0),
                     ("new_axis_mask", "i64", 0), ("shrink_axis_mask", "i64", 0)),
    "Unsqueeze": (("axis", "[i64]", ()),),
    "Maximum": (), "Minimum": (), "RealDiv": (), "Reshape": (), "Transpose": (), "Shape": (), "Cast": (),
    "ExpandDims": (),
}

# Enums that differ between the generations (everything else keeps its numbers).
FORMAT_NHWC = 1
V0_FORMAT_NC4HW4, CURRENT_FORMAT_NC4HW4 = 100, 13
V0_PAD_SAME_UPPER, V0_PAD_VALID = 1, 2
PAD_PAD, PAD_SAME, PAD_VALID = 0, 1, 2
ACT_NONE, ACT_RELU, ACT_RELU6 = 0, 1, 3
NODE_VALUE, NODE_CNODE = 0, 2
