"""Post-training quantization with MindSpore Lite 2.0.0's converter: an INI config plus calibration tensors.

The converter quantizes while it converts a float source (ONNX, TFLite, MindIR). Weight quantization
(`WEIGHT_QUANT`) stores weights in `bits` bits and computes in float; full quantization (`FULL_QUANT`, 8 bits
only) also quantizes activations, from the ranges it sees on calibration inputs: raw binary files, one model input
each, exactly what the model is fed after pre-processing. Every key written here is one 2.0.0's converter parses
(its `config_file_parser` / `quant_param_parser` / `preprocess_parser`; the strings are in the wheel's
`libmindspore_converter.so`). A `.ms` cannot be a source: 2.0.0's `FmkType` is TF, CAFFE, ONNX, MINDIR, TFLITE or
PYTORCH, there is no MindSpore Lite input.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ConversionError, QuantizationError
from ..runtime import formats
from .convert import ConversionResult, convert_model

MODES = {"weight": "WEIGHT_QUANT", "full": "FULL_QUANT"}
ACTIVATION_METHODS = ("MAX_MIN", "KL", "REMOVAL_OUTLIER")
QUANTIZABLE_FORMATS = ("onnx", "tflite", "mindir")


@dataclass(frozen=True)
class QuantSettings:
    """What the converter is asked to do; the defaults are 2.0.0's documented ones (explicit, for provenance)."""

    mode: str  # weight | full
    bits: int = 8
    min_quant_weight_size: int = 0  # weight mode: quantize weights with more values than this
    min_quant_weight_channel: int = 16  # weight mode: ... and more channels than this
    activation_quant_method: str = "MAX_MIN"  # full mode: how activation ranges come from the calibration data
    bias_correction: bool = True  # full mode
    per_channel: bool = True  # full mode: per-channel weight scales

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise QuantizationError(f"quantization mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "full" and self.bits != 8:
            raise QuantizationError(f"full quantization in MindSpore Lite 2.0.0 is 8-bit only, got bits={self.bits}")
        if not 1 <= self.bits <= 16:
            raise QuantizationError(f"weight quantization takes 1-16 bits, got bits={self.bits}")
        if self.activation_quant_method not in ACTIVATION_METHODS:
            raise QuantizationError(f"activation_quant_method must be one of {', '.join(ACTIVATION_METHODS)}, "
                                    f"got {self.activation_quant_method!r}")

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.mode == "weight":
            for key in ("activation_quant_method", "bias_correction", "per_channel"):
                del data[key]
        else:
            for key in ("min_quant_weight_size", "min_quant_weight_channel"):
                del data[key]
        return data


@dataclass(frozen=True)
class CalibrationSet:
    """Calibration inputs on disk: one raw binary file per sample, for the graph input `input_name`."""

    input_name: str
    folder: Path
    count: int


def write_calibration(tensors: Iterable[np.ndarray], input_name: str, folder: Path) -> CalibrationSet:
    """Write each pre-processed sample (one model input, batch dimension included) as the converter's BIN input."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for count, tensor in enumerate(tensors, start=1):
        np.ascontiguousarray(tensor).tofile(folder / f"{count:05d}.bin")
    if not count:
        raise QuantizationError("no calibration samples: full quantization needs at least one pre-processed image")
    return CalibrationSet(input_name, folder, count)


def config_text(settings: QuantSettings, calibration: CalibrationSet | None) -> str:
    """The converter's INI configuration for `settings` (full mode reads `calibration`)."""
    lines = ["[common_quant_param]", f"quant_type={MODES[settings.mode]}", f"bit_num={settings.bits}"]
    if settings.mode == "weight":
        lines += [f"min_quant_weight_size={settings.min_quant_weight_size}",
                  f"min_quant_weight_channel={settings.min_quant_weight_channel}"]
        return "\n".join(lines) + "\n"
    if calibration is None:
        raise QuantizationError("full quantization needs calibration data (pre-processed samples of a dataset)")
    if ":" in calibration.input_name or "," in calibration.input_name:
        raise QuantizationError(f"input name {calibration.input_name!r} contains ':' or ',', which the converter's "
                                "calibrate_path cannot express")
    lines += ["", "[data_preprocess_param]", f"calibrate_path={calibration.input_name}:{calibration.folder}",
              f"calibrate_size={calibration.count}", "input_type=BIN",
              "", "[full_quant_param]", f"activation_quant_method={settings.activation_quant_method}",
              f"bias_correction={str(settings.bias_correction).lower()}",
              f"per_channel={str(settings.per_channel).lower()}"]
    return "\n".join(lines) + "\n"


def quantizable_format(source: Path, source_format: str | None = None) -> str:
    """The source's format if 2.0.0's converter can quantize it, else a one-line error saying what to use."""
    fmt = source_format or formats.detect(source)
    if fmt in (formats.MS, formats.MS_V0):
        raise QuantizationError(f"{source} is a .ms model: MindSpore Lite 2.0.0's converter cannot take .ms input; "
                                "quantize from the model's ONNX, TFLite or MindIR source")
    if fmt not in QUANTIZABLE_FORMATS:
        raise QuantizationError(f"{source} is {fmt}: quantization here takes {'/'.join(QUANTIZABLE_FORMATS)} sources")
    return fmt


def quantize_model(source: str | Path, output: str | Path, settings: QuantSettings,
                   calibration: CalibrationSet | None = None, source_format: str | None = None,
                   **conversion: object) -> ConversionResult:
    """Convert `source` to a quantized .ms at `output` (`conversion`: `convert_model`'s other options). The
    converter's failure becomes one line: its first error, with what was asked."""
    source = Path(source).expanduser().resolve()
    fmt = quantizable_format(source, source_format)
    text = config_text(settings, calibration)
    with tempfile.TemporaryDirectory(prefix="fiftyone-mslite-quant-") as work:
        config = Path(work) / "quant.cfg"
        config.write_text(text)
        try:
            return convert_model(source, output, source_format=fmt, config_file=config, **conversion)
        except ConversionError as exc:
            detail = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), "no message")
            raise QuantizationError(f"MindSpore Lite's converter could not {settings.mode}-quantize {source.name} "
                                    f"({settings.bits} bits): {detail}") from None
