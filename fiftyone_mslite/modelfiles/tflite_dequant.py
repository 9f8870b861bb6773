"""Rewrite a quantized TFLite model as a float32 one, so MindSpore Lite runs its fast fp32 kernels.

MindSpore Lite 2.0.0 keeps a quantized TFLite graph quantized and schedules its int8 kernels, which on x86
are 20-40x slower than fp32 (docs/quantized.md). Dequantizing first — every quantized constant becomes
float32 `(q - zero_point) * scale` (per channel where the model is), every activation float32 without
quantization, QUANTIZE/DEQUANTIZE ops dropped — gives a float model that computes what the quantized one
approximates. The float input is the dequantized input, e.g. `(pixel - 128) / 128` for the Coral models.

Dependency-free flatbuffer surgery: types and tensor indices are patched in place, the float weights are
appended at the end of the file (flatbuffer offsets point forward, so an appended vector is reachable), the
`quantization` field is dropped by zeroing its vtable slot.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import TFLiteDequantizeError

# tflite schema.fbs: field slots and enum values used here.
MODEL_OPERATOR_CODES, MODEL_SUBGRAPHS, MODEL_BUFFERS = 1, 2, 4
SUBGRAPH_TENSORS, SUBGRAPH_OUTPUTS, SUBGRAPH_OPERATORS = 0, 2, 3
TENSOR_SHAPE, TENSOR_TYPE, TENSOR_BUFFER, TENSOR_QUANTIZATION = 0, 1, 2, 4
QUANT_SCALE, QUANT_ZERO_POINT, QUANT_DIMENSION = 2, 3, 6
OPERATOR_OPCODE_INDEX, OPERATOR_INPUTS, OPERATOR_OUTPUTS = 0, 1, 2
OPCODE_DEPRECATED_BUILTIN, OPCODE_BUILTIN = 0, 3
BUFFER_DATA = 0
FLOAT32 = 0
QUANTIZED_TYPES = {2: np.int32, 3: np.uint8, 7: np.int16, 9: np.int8}  # INT32, UINT8, INT16, INT8
IDENTITY_OPS = {6, 114}  # DEQUANTIZE, QUANTIZE: identities once everything is float


class _Flatbuffer:
    def __init__(self, data: bytes):
        self.buf = bytearray(data)

    def u32(self, pos: int) -> int:
        return struct.unpack_from("<I", self.buf, pos)[0]

    def field(self, table: int, slot: int) -> int | None:
        """Absolute position of a table field, or None when absent."""
        vtable = table - struct.unpack_from("<i", self.buf, table)[0]
        entry = 4 + 2 * slot
        if entry >= struct.unpack_from("<H", self.buf, vtable)[0]:
            return None
        offset = struct.unpack_from("<H", self.buf, vtable + entry)[0]
        return table + offset if offset else None

    def drop(self, table: int, slot: int) -> None:
        """Make a field absent (in the table's vtable; every table sharing it loses the field too)."""
        vtable = table - struct.unpack_from("<i", self.buf, table)[0]
        if 4 + 2 * slot < struct.unpack_from("<H", self.buf, vtable)[0]:
            struct.pack_into("<H", self.buf, vtable + 4 + 2 * slot, 0)

    def ref(self, table: int, slot: int) -> int | None:
        pos = self.field(table, slot)
        return None if pos is None else pos + self.u32(pos)

    def vector(self, table: int, slot: int) -> tuple[int, int]:
        """(start of the elements, length) of a vector field; (0, 0) when absent."""
        pos = self.ref(table, slot)
        return (0, 0) if pos is None else (pos + 4, self.u32(pos))

    def tables(self, table: int, slot: int) -> list[int]:
        start, n = self.vector(table, slot)
        return [start + 4 * i + self.u32(start + 4 * i) for i in range(n)]

    def array(self, table: int, slot: int, dtype) -> np.ndarray:
        start, n = self.vector(table, slot)
        return np.frombuffer(bytes(self.buf[start:start + n * np.dtype(dtype).itemsize]), dtype)

    def scalar(self, table: int, slot: int, fmt: str, default: int = 0) -> int:
        pos = self.field(table, slot)
        return default if pos is None else struct.unpack_from("<" + fmt, self.buf, pos)[0]

    def append_vector(self, payload: bytes, count: int) -> int:
        """Append a vector (16-byte aligned elements) and return the position of its length prefix."""
        self.buf += b"\0" * ((-len(self.buf) - 4) % 16)
        pos = len(self.buf)
        self.buf += struct.pack("<I", count) + payload
        return pos


def dequantize_tflite(source: Path, output: Path) -> Path:
    """Write the float32 equivalent of the quantized TFLite model `source` to `output`."""
    fb = _Flatbuffer(Path(source).read_bytes())
    if fb.buf[4:8] != b"TFL3":
        raise TFLiteDequantizeError(f"{source} is not a TFLite model")
    model = fb.u32(0)
    opcodes = [max(fb.scalar(c, OPCODE_DEPRECATED_BUILTIN, "b"), fb.scalar(c, OPCODE_BUILTIN, "i"))
               for c in fb.tables(model, MODEL_OPERATOR_CODES)]
    buffers = fb.tables(model, MODEL_BUFFERS)
    rewritten: set[int] = set()
    changed = False
    for subgraph in fb.tables(model, MODEL_SUBGRAPHS):
        quantized = []  # read everything first: dropping a field edits vtables that tables share
        for tensor in fb.tables(subgraph, SUBGRAPH_TENSORS):
            quant = fb.ref(tensor, TENSOR_QUANTIZATION)
            scale = fb.array(quant, QUANT_SCALE, np.float32) if quant is not None else np.empty(0)
            dtype = QUANTIZED_TYPES.get(fb.scalar(tensor, TENSOR_TYPE, "b"))
            if dtype is not None and scale.size:
                quantized.append((tensor, quant, scale, dtype))
        for tensor, quant, scale, dtype in quantized:
            changed = True
            index = fb.scalar(tensor, TENSOR_BUFFER, "I")
            data_field = fb.field(buffers[index], BUFFER_DATA)
            start, n = fb.vector(buffers[index], BUFFER_DATA)
            if n and index not in rewritten:  # a constant: weights or bias
                shape = fb.array(tensor, TENSOR_SHAPE, np.int32)
                q = np.frombuffer(bytes(fb.buf[start:start + n]), dtype).astype(np.float64).reshape(shape)
                zero = fb.array(quant, QUANT_ZERO_POINT, np.int64).astype(np.float64)
                zero = zero if zero.size == scale.size else np.zeros_like(scale)
                if scale.size > 1:
                    axes = [1] * q.ndim
                    axes[fb.scalar(quant, QUANT_DIMENSION, "i")] = -1
                    scale, zero = scale.reshape(axes), zero.reshape(axes)
                values = ((q - zero) * scale).astype("<f4").tobytes()
                vec = fb.append_vector(values, len(values))
                struct.pack_into("<I", fb.buf, data_field, vec - data_field)
                rewritten.add(index)
            struct.pack_into("<b", fb.buf, fb.field(tensor, TENSOR_TYPE), FLOAT32)
            fb.drop(tensor, TENSOR_QUANTIZATION)
        _bypass_identity_ops(fb, subgraph, opcodes)
    if not changed:
        raise TFLiteDequantizeError(f"{source} has no quantized tensors; nothing to dequantize")
    output = Path(output)
    output.write_bytes(bytes(fb.buf))
    return output


def _bypass_identity_ops(fb: _Flatbuffer, subgraph: int, opcodes: list[int]) -> None:
    """Drop QUANTIZE/DEQUANTIZE ops: their consumers (and the graph outputs) read their input instead."""
    ops = fb.tables(subgraph, SUBGRAPH_OPERATORS)
    start, n = fb.vector(subgraph, SUBGRAPH_OPERATORS)
    keep = [i for i, op in enumerate(ops) if opcodes[fb.scalar(op, OPERATOR_OPCODE_INDEX, "I")] not in IDENTITY_OPS]
    for op in ops:
        if opcodes[fb.scalar(op, OPERATOR_OPCODE_INDEX, "I")] in IDENTITY_OPS:
            src = int(fb.array(op, OPERATOR_INPUTS, np.int32)[0])
            dst = int(fb.array(op, OPERATOR_OUTPUTS, np.int32)[0])
            for table, slot in [(o, OPERATOR_INPUTS) for o in ops] + [(subgraph, SUBGRAPH_OUTPUTS)]:
                vstart, count = fb.vector(table, slot)
                for k in range(count):
                    if struct.unpack_from("<i", fb.buf, vstart + 4 * k)[0] == dst:
                        struct.pack_into("<i", fb.buf, vstart + 4 * k, src)
    if len(keep) == n:
        return
    for new, old in enumerate(keep):  # uoffsets are relative to their own slot: re-aim after moving
        struct.pack_into("<I", fb.buf, start + 4 * new, ops[old] - (start + 4 * new))
    struct.pack_into("<I", fb.buf, start - 4, len(keep))
