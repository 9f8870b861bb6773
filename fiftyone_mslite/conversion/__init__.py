"""User-facing conversion: sniff the source format, repair what the 2.0.0 converter chokes on, convert.

The runtime's `convert` is the raw converter; this module is what `fiftyone-mslite convert` and the
catalog call, so that every source model gets the same checks and clear errors.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import runtime
from .onnx_fixes import OnnxFixError, prepare_onnx
from .tflite_dequant import TFLiteDequantizeError, dequantize_tflite

SUFFIX_FORMATS = {".onnx": "onnx", ".tflite": "tflite", ".pb": "tf", ".prototxt": "caffe", ".mindir": "mindir"}


@dataclass(frozen=True)
class ConversionResult:
    source: Path
    source_format: str
    output: Path
    save_type: str
    fixes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {"source": str(self.source), "source_format": self.source_format, "output": str(self.output),
                "save_type": self.save_type, "fixes": list(self.fixes)}


def detect_source_format(path: Path) -> str:
    """onnx | tflite | mindir | tf | caffe, by content where the format has a signature, else by suffix."""
    if not path.is_file():
        raise runtime.ModelFileError(f"source model not found: {path}")
    with path.open("rb") as f:
        head = f.read(64)
    if not head:
        raise runtime.ModelFileError(f"source model {path} is empty (0 bytes)")
    if head[4:8] == b"TFL3":
        return "tflite"
    if head[4:8] == b"MSL2":
        raise runtime.ModelFileError(f"{path} is already a MindSpore Lite .ms model; nothing to convert "
                                     "(a .ms cannot be re-converted).")
    if head[:1] == b"\x0a" and b"MindSpore" in head:
        return "mindir"
    if path.suffix.lower() in (".pb", ".prototxt"):
        return SUFFIX_FORMATS[path.suffix.lower()]
    if head[:1] == b"\x08":
        return "onnx"
    raise runtime.ModelFileError(
        f"cannot tell the format of {path}: expected ONNX, TFLite, MindIR, TensorFlow .pb or Caffe .prototxt")


def convert_model(source: str | Path, output: str | Path, save_type: str = runtime.MS,
                  source_format: str | None = None, weight_file: str | Path | None = None,
                  input_data_type: str | None = None, output_data_type: str | None = None,
                  dequantize: bool = False, backend: str | None = None) -> ConversionResult:
    """Convert `source` to a .ms or .mindir at `output` (suffix added if missing).

    `dequantize` rewrites a quantized TFLite model as float32 first: MindSpore Lite 2.0.0's int8 kernels have
    no SIMD on x86 and run 60-90x slower than its fp32 ones (docs/quantized.md)."""
    source = Path(source).expanduser().resolve()
    fmk = source_format or detect_source_format(source)
    if save_type not in (runtime.MS, runtime.MINDIR):
        raise ValueError(f"save_type must be 'ms' or 'mindir', got {save_type!r}")
    if fmk == "caffe" and not weight_file:
        weight_file = source.with_suffix(".caffemodel")
    output = Path(output).expanduser().resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    options = {"weight_file": str(weight_file or ""), "input_data_type": input_data_type,
               "output_data_type": output_data_type}
    with tempfile.TemporaryDirectory(prefix="fiftyone-mslite-convert-") as work:
        fixes: tuple[str, ...] = ()
        feed = source
        if fmk == "onnx":
            try:
                report = prepare_onnx(source, Path(work))
            except OnnxFixError as exc:
                raise runtime.ConversionError(str(exc)) from exc
            feed, fixes = report.output, report.fixes
        elif dequantize:
            if fmk != "tflite":
                raise runtime.ConversionError(f"dequantize applies to TFLite sources, {source} is {fmk}")
            try:
                feed = dequantize_tflite(source, Path(work) / "float.tflite")
            except TFLiteDequantizeError as exc:
                raise runtime.ConversionError(f"{source}: {exc}") from exc
            fixes = ("dequantized to float32 before conversion (fast fp32 kernels)",)
        written = runtime.convert(feed, fmk, output, save_type=save_type, backend=backend, **options)
    return ConversionResult(source, fmk, Path(written), save_type, fixes)
