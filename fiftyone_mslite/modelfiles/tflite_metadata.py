"""The input normalisation a TFLite model declares in its TFLite Support metadata.

A TFLite file made with the Model Maker / metadata writer carries a `TFLITE_METADATA` buffer: a second
FlatBuffer (schema `metadata_schema.fbs`, identifier "M001") whose input tensor may hold a NormalizationOptions
process unit, `(x - mean) / std` on 0..255 pixel values. That is the pre-processing the model was trained with,
so `models add` uses it unless told otherwise. Read with the bounds-checked `flatbuf.FlatReader`, as the model
itself is (a hostile file fails with one `ModelFileError`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelFileError
from .flatbuf import CorruptFlatBuffer, FlatReader

# tflite schema.fbs: Model.buffers, Model.metadata; Metadata.name/buffer; Buffer.data/offset/size
MODEL_BUFFERS, MODEL_METADATA = 4, 6
METADATA_NAME, METADATA_BUFFER = 0, 1
BUFFER_DATA, BUFFER_OFFSET, BUFFER_SIZE = 0, 1, 2
# metadata_schema.fbs: ModelMetadata.subgraph_metadata, SubGraphMetadata.input_tensor_metadata,
# TensorMetadata.process_units, ProcessUnit.options_type/options (a union), NormalizationOptions.mean/std
SUBGRAPH_METADATA, INPUT_TENSOR_METADATA, PROCESS_UNITS = 3, 2, 4
OPTIONS_TYPE, OPTIONS = 0, 1
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union tag
NORM_MEAN, NORM_STD = 0, 1
METADATA_NAME_VALUE = b"TFLITE_METADATA"


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std on pixel values 0..255, as the metadata gives them (one value: all channels)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def unit_scale(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Mean and std on the 0..1 scale of the catalog's `preprocess`, three channels."""
        return tuple(self._three(self.mean, "mean")), tuple(self._three(self.std, "std"))  # type: ignore[return-value]

    @staticmethod
    def _three(values: tuple[float, ...], what: str) -> list[float]:
        if len(values) not in (1, 3) or (what == "std" and not all(v > 0 for v in values)):
            raise ValueError(f"NormalizationOptions.{what} {list(values)} is not 1 or 3 values (std > 0)")
        return [round(v / 255, 6) for v in (values * 3 if len(values) == 1 else values)]

    def describe(self) -> str:
        return f"(x - {_short(self.mean)}) / {_short(self.std)} on 0..255 pixels"


def _short(values: tuple[float, ...]) -> str:
    same = len(set(values)) == 1
    return f"{values[0]:g}" if same else "[" + ", ".join(f"{v:g}" for v in values) + "]"


def tflite_normalization(path: Path) -> Normalization | None:
    """The input normalisation declared in the TFLite file's metadata, or None when it declares none."""
    data = Path(path).read_bytes()
    try:
        model = FlatReader(data)
        root = model.root("Model")
        blob = _metadata_blob(model, root, data)
        if blob is None:
            return None
        return _normalization(FlatReader(blob))
    except (CorruptFlatBuffer, ValueError) as exc:
        raise ModelFileError(f"{path}: unreadable TFLite metadata ({exc}); pass --mean and --std to "
                             "`models add`") from None


def _metadata_blob(model: FlatReader, root, data: bytes) -> bytes | None:
    """The bytes of the TFLITE_METADATA buffer, stored inline or (large models) after the FlatBuffer."""
    for entry in model.tables(root, MODEL_METADATA, "Model.metadata"):
        if model.raw(entry, METADATA_NAME, "Metadata.name") != METADATA_NAME_VALUE:
            continue
        index = model.scalar(entry, METADATA_BUFFER, "u32", 0, "Metadata.buffer")
        buffer = model.table_in_vector(root, MODEL_BUFFERS, index, "Model.buffers")
        offset = model.scalar(buffer, BUFFER_OFFSET, "i64", 0, "Buffer.offset")
        if offset > 1:
            size = model.scalar(buffer, BUFFER_SIZE, "i64", 0, "Buffer.size")
            if size < 0 or offset + size > len(data):
                raise ValueError(f"Buffer {index} lies outside the {len(data)}-byte file")
            return data[offset:offset + size]
        return model.raw(buffer, BUFFER_DATA, "Buffer.data")
    return None


def _normalization(meta: FlatReader) -> Normalization | None:
    """The first NormalizationOptions of the first input tensor of the first subgraph."""
    root = meta.root("ModelMetadata")
    subgraphs = meta.tables(root, SUBGRAPH_METADATA, "ModelMetadata.subgraph_metadata")
    inputs = meta.tables(subgraphs[0], INPUT_TENSOR_METADATA, "SubGraphMetadata.input_tensor_metadata") \
        if subgraphs else []
    for unit in meta.tables(inputs[0], PROCESS_UNITS, "TensorMetadata.process_units") if inputs else []:
        if meta.scalar(unit, OPTIONS_TYPE, "u8", 0, "ProcessUnit.options_type") != NORMALIZATION_OPTIONS:
            continue
        options = meta.sub_table(unit, OPTIONS, "ProcessUnit.options")
        if options is None:
            return None
        mean = tuple(meta.values(options, NORM_MEAN, "[f32]", "NormalizationOptions.mean", limit=16))
        std = tuple(meta.values(options, NORM_STD, "[f32]", "NormalizationOptions.std", limit=16))
        return Normalization(mean, std) if mean and std else None
    return None
