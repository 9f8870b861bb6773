"""User-facing conversion: sniff the source format, repair what the 2.0.0 converter chokes on, convert.

The runtime's `convert` is the raw converter; this module is what `fiftyone-mslite convert` and the
catalog call, so that every source model gets the same checks and clear errors.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import runtime
from ..errors import ConversionError, ModelFileError, MsInspectError, OnnxFixError, TFLiteDequantizeError
from .embedding import EMBEDDING_FORMATS, EmbeddingOutput
from .formats import MS, MS_V0, detect_format
from .ms_inspect import inspect_ms
from .onnx_fixes import prepare_onnx
from .tflite_dequant import dequantize_tflite
from .tflite_outputs import add_tflite_embedding


@dataclass(frozen=True)
class ConversionResult:
    source: Path
    source_format: str
    output: Path
    save_type: str
    fixes: tuple[str, ...] = field(default_factory=tuple)
    embedding: EmbeddingOutput | None = None  # the penultimate tensor, an extra output of the converted model

    def to_dict(self) -> dict:
        return {"source": str(self.source), "source_format": self.source_format, "output": str(self.output),
                "save_type": self.save_type, "fixes": list(self.fixes),
                "embedding": self.embedding.to_dict() if self.embedding else None}


def detect_source_format(path: Path) -> str:
    """onnx | tflite | mindir | tf | caffe: what the converter can read; a .ms is refused (it cannot be
    re-converted; a legacy one is upgraded instead)."""
    fmt = detect_format(path)
    if fmt == MS:
        raise ModelFileError(f"{path} is already a MindSpore Lite .ms model; nothing to convert "
                             "(a .ms cannot be re-converted).")
    if fmt == MS_V0:
        raise ModelFileError(f"{path} is a legacy-schema MindSpore Lite .ms model: upgrade it instead "
                             f"(`fiftyone-mslite upgrade {path} -o NEW.ms`).")
    return fmt


def convert_model(source: str | Path, output: str | Path, save_type: str = runtime.MS,
                  source_format: str | None = None, weight_file: str | Path | None = None,
                  input_data_type: str | None = None, output_data_type: str | None = None,
                  dequantize: bool = False, backend: str | None = None,
                  embedding: str | None = None, config_file: str | Path | None = None) -> ConversionResult:
    """Convert `source` to a .ms or .mindir at `output` (suffix added if missing).

    `embedding` (a tensor name, or `embedding.AUTO` to find the classifier layer's input) of an ONNX or TFLite
    source becomes an extra output, so one inference gives logits and embeddings. `config_file` is the converter's
    INI configuration (post-training quantization: `modelfiles.quantize`).

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
               "output_data_type": output_data_type, "config_file": str(config_file or "")}
    with tempfile.TemporaryDirectory(prefix="fiftyone-mslite-convert-") as work:
        fixes: tuple[str, ...] = ()
        feed, extra = source, None
        if embedding and fmk not in EMBEDDING_FORMATS:
            raise ConversionError(f"embedding outputs are added to {'/'.join(EMBEDDING_FORMATS)} sources only, "
                                  f"{source} is {fmk}")
        if fmk == "onnx":
            try:
                report = prepare_onnx(source, Path(work), embedding=embedding)
            except OnnxFixError as exc:
                raise ConversionError(str(exc)) from exc
            feed, fixes, extra = report.output, report.fixes, report.embedding
        elif dequantize:
            if fmk != "tflite":
                raise ConversionError(f"dequantize applies to TFLite sources, {source} is {fmk}")
            try:
                feed = dequantize_tflite(source, Path(work) / "float.tflite")
            except TFLiteDequantizeError as exc:
                raise ConversionError(f"{source}: {exc}") from exc
            fixes = ("dequantized to float32 before conversion (fast fp32 kernels)",)
        if fmk == "tflite" and embedding:  # on the file that is converted: the dequantized one if requested
            extra = add_tflite_embedding(feed, Path(work) / "embedding.tflite", embedding, where=str(source))
            feed = Path(work) / "embedding.tflite"
        written = _converted_into_place(feed, fmk, output, save_type, backend, options)
    return ConversionResult(source, fmk, written, save_type, fixes, extra)


def _converted_into_place(feed: Path, fmk: str, output: Path, save_type: str, backend: str | None,
                          options: dict) -> Path:
    """Run the converter into a scratch folder beside `output`, check a .ms result, then rename it into place.

    Why: the converter writes its output in place, so a full disk or a killed converter left a truncated model at
    the user's path, which later commands took for a model (issue 20)."""
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}.converting-") as scratch:
        written = Path(runtime.convert(feed, fmk, Path(scratch) / output.name, save_type=save_type, backend=backend,
                                       **options))
        if save_type == runtime.MS:
            try:
                inspect_ms(written)
            except MsInspectError as exc:
                raise ConversionError(f"the converter wrote an unreadable model for {output} ({exc}); "
                                      "nothing was written: check the free disk space and convert again") from None
        final = output.parent / written.name
        os.replace(written, final)
    return final
