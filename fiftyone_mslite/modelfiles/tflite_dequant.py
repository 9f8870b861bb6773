"""Rewrite a quantized TFLite model as a float32 one, so MindSpore Lite runs its fast fp32 kernels.

MindSpore Lite 2.0.0 keeps a quantized TFLite graph quantized and schedules its int8 kernels, which on x86
are 20-40x slower than fp32 (docs/quantized.md). Dequantizing first — every quantized constant becomes
float32 `(q - zero_point) * scale` (per channel where the model is), every activation float32 without
quantization, QUANTIZE/DEQUANTIZE ops dropped — gives a float model that computes what the quantized one
approximates. The float input is the dequantized input, e.g. `(pixel - 128) / 128` for the Coral models.

FlatBuffer surgery with the shared bounds-checked reader (`flatbuf.MutableFlatBuffer`): types and tensor indices
are patched in place, the float weights are appended at the end of the file (flatbuffer offsets point forward,
so an appended vector is reachable), the `quantization` field is dropped by zeroing its vtable slot.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import TFLiteDequantizeError
from .flatbuf import CorruptFlatBuffer, MutableFlatBuffer, Table

# tflite schema.fbs: field slots and enum values used here.
MODEL_OPERATOR_CODES, MODEL_SUBGRAPHS, MODEL_BUFFERS, MODEL_METADATA = 1, 2, 4, 6
SUBGRAPH_TENSORS, SUBGRAPH_OUTPUTS, SUBGRAPH_OPERATORS = 0, 2, 3
TENSOR_SHAPE, TENSOR_TYPE, TENSOR_BUFFER, TENSOR_NAME, TENSOR_QUANTIZATION = 0, 1, 2, 3, 4
QUANT_SCALE, QUANT_ZERO_POINT, QUANT_DIMENSION = 2, 3, 6
OPERATOR_OPCODE_INDEX, OPERATOR_INPUTS, OPERATOR_OUTPUTS = 0, 1, 2
OPCODE_DEPRECATED_BUILTIN, OPCODE_BUILTIN = 0, 3
BUFFER_DATA = 0
FLOAT32 = 0
QUANTIZED_TYPES = {2: np.int32, 3: np.uint8, 7: np.int16, 9: np.int8}  # INT32, UINT8, INT16, INT8
IDENTITY_OPS = {6, 114}  # DEQUANTIZE, QUANTIZE: identities once everything is float


def dequantize_tflite(source: Path, output: Path) -> Path:
    """Write the float32 equivalent of the quantized TFLite model `source` to `output`."""
    fb = MutableFlatBuffer(Path(source).read_bytes())
    if bytes(fb.buf[4:8]) != b"TFL3":
        raise TFLiteDequantizeError(f"{source} is not a TFLite model")
    try:
        changed = _dequantize(fb)
    except (CorruptFlatBuffer, ValueError, IndexError) as exc:
        raise TFLiteDequantizeError(f"{source} is not a readable TFLite model: {exc}") from None
    if not changed:
        raise TFLiteDequantizeError(f"{source} has no quantized tensors; nothing to dequantize")
    output = Path(output)
    output.write_bytes(bytes(fb.buf))
    return output


def is_quantized_tflite(source: Path) -> bool:
    """Whether a TFLite model has quantized tensors (so that it is worth dequantizing before conversion); False for
    anything unreadable (the conversion then says what is wrong)."""
    with open(source, "rb") as f:
        if f.read(8)[4:8] != b"TFL3":
            return False
        f.seek(0)
        data = f.read()
    try:
        fb = MutableFlatBuffer(data)
        return any(next(_quantized_tensors(fb, subgraph), None) is not None
                   for subgraph in fb.tables(fb.root("Model"), MODEL_SUBGRAPHS, "Model.subgraphs"))
    except (CorruptFlatBuffer, ValueError, IndexError):
        return False


def _quantized_tensors(fb: MutableFlatBuffer, subgraph: Table) -> Iterator[tuple[Table, Table, np.ndarray, str]]:
    """(tensor, its quantization table, scales, stored dtype) of each quantized tensor of a subgraph."""
    for tensor in fb.tables(subgraph, SUBGRAPH_TENSORS, "SubGraph.tensors"):
        fb.vector_len(tensor, TENSOR_NAME, 1, "Tensor.name")
        quant = fb.sub_table(tensor, TENSOR_QUANTIZATION, "Tensor.quantization")
        scale = fb.array(quant, QUANT_SCALE, "[f32]", "QuantizationParameters.scale") if quant else np.empty(0)
        dtype = QUANTIZED_TYPES.get(fb.scalar(tensor, TENSOR_TYPE, "i8", FLOAT32, "Tensor.type"))
        if dtype is not None and scale.size:
            yield tensor, quant, scale, dtype


def _dequantize(fb: MutableFlatBuffer) -> bool:
    """Rewrite every quantized tensor in place; True when there was one."""
    model = fb.root("Model")
    opcodes = [max(fb.scalar(c, OPCODE_DEPRECATED_BUILTIN, "i8", 0, "OperatorCode.deprecated_builtin_code"),
                   fb.scalar(c, OPCODE_BUILTIN, "i32", 0, "OperatorCode.builtin_code"))
               for c in fb.tables(model, MODEL_OPERATOR_CODES, "Model.operator_codes")]
    buffers = fb.tables(model, MODEL_BUFFERS, "Model.buffers")
    for i, buffer in enumerate(buffers):  # every constant inside the file, also those left as they are
        fb.vector_len(buffer, BUFFER_DATA, 1, f"Model.buffers[{i}].data")
    for entry in fb.tables(model, MODEL_METADATA, "Model.metadata"):
        fb.vector_len(entry, 0, 1, "Metadata.name")
    rewritten: set[int] = set()
    changed = False
    for subgraph in fb.tables(model, MODEL_SUBGRAPHS, "Model.subgraphs"):
        quantized = list(_quantized_tensors(fb, subgraph))  # all read first: dropping a field edits shared vtables
        for tensor, quant, scale, dtype in quantized:
            changed = True
            index = fb.scalar(tensor, TENSOR_BUFFER, "u32", 0, "Tensor.buffer")
            buffer = buffers[index]
            span = fb.vector_span(buffer, BUFFER_DATA, 1, "Buffer.data")
            if span and span[1] and index not in rewritten:  # a constant: weights or bias
                start, n = span
                shape = fb.array(tensor, TENSOR_SHAPE, "[i32]", "Tensor.shape")
                q = np.frombuffer(bytes(fb.buf[start:start + n]), dtype).astype(np.float64).reshape(shape)
                zero = fb.array(quant, QUANT_ZERO_POINT, "[i64]", "QuantizationParameters.zero_point")
                zero = zero.astype(np.float64) if zero.size == scale.size else np.zeros_like(scale, np.float64)
                if scale.size > 1:
                    axes = [1] * q.ndim
                    axes[fb.scalar(quant, QUANT_DIMENSION, "i32", 0, "QuantizationParameters.quantized_dimension")] = -1
                    scale, zero = scale.reshape(axes), zero.reshape(axes)
                values = ((q - zero) * scale).astype("<f4").tobytes()
                data_field = fb.field_pos(buffer, BUFFER_DATA, 4, "Buffer.data")
                vec = fb.append_vector(values, len(values))
                fb.put("I", data_field, vec - data_field)
                rewritten.add(index)
            fb.put("b", fb.field_pos(tensor, TENSOR_TYPE, 1, "Tensor.type"), FLOAT32)
            fb.drop(tensor, TENSOR_QUANTIZATION)
        _bypass_identity_ops(fb, subgraph, opcodes)
    return changed


def _bypass_identity_ops(fb: MutableFlatBuffer, subgraph: Table, opcodes: list[int]) -> None:
    """Drop QUANTIZE/DEQUANTIZE ops: their consumers (and the graph outputs) read their input instead."""
    ops = fb.tables(subgraph, SUBGRAPH_OPERATORS, "SubGraph.operators")
    start, n = fb.vector_span(subgraph, SUBGRAPH_OPERATORS, 4, "SubGraph.operators") or (0, 0)

    def identity(op: Table) -> bool:
        return opcodes[fb.scalar(op, OPERATOR_OPCODE_INDEX, "u32", 0, "Operator.opcode_index")] in IDENTITY_OPS

    keep = [i for i, op in enumerate(ops) if not identity(op)]
    for op in ops:
        if identity(op):
            src = int(fb.array(op, OPERATOR_INPUTS, "[i32]", "Operator.inputs")[0])
            dst = int(fb.array(op, OPERATOR_OUTPUTS, "[i32]", "Operator.outputs")[0])
            for table, slot in [(o, OPERATOR_INPUTS) for o in ops] + [(subgraph, SUBGRAPH_OUTPUTS)]:
                vstart, count = fb.vector_span(table, slot, 4, "tensor indices") or (0, 0)
                for k in range(count):
                    if struct.unpack_from("<i", fb.buf, vstart + 4 * k)[0] == dst:
                        fb.put("i", vstart + 4 * k, src)
    if len(keep) == n:
        return
    for new, old in enumerate(keep):  # uoffsets are relative to their own slot: re-aim after moving
        fb.put("I", start + 4 * new, ops[old].Pos - (start + 4 * new))
    fb.put("I", start - 4, len(keep))
