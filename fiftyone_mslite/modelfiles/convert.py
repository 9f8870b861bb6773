"""User-facing conversion: sniff the source format, repair what the 2.0.0 converter chokes on, convert.

The runtime's `convert` is the raw converter; this module is what `fiftyone-mslite convert` and the
catalog call, so that every source model gets the same checks and clear errors.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import hooks, runtime
from ..errors import ConversionError, MsInspectError
from ..runtime import formats
from .embedding import EmbeddingOutput
from .ms_inspect import inspect_ms
from .steps import Prepared, PrepareRequest, resolve


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


def convert_model(source: str | Path, output: str | Path, save_type: str = runtime.MS,
                  source_format: str | None = None, weight_file: str | Path | None = None,
                  input_data_type: str | None = None, output_data_type: str | None = None,
                  dequantize: bool = False, backend: str | None = None,
                  embedding: str | None = None, config_file: str | Path | None = None) -> ConversionResult:
    """Convert `source` to a .ms or .mindir at `output` (suffix added if missing): its format's `prepare` step
    (repairs, rewrites; `runtime.formats`), then MindSpore Lite's converter.

    `embedding` (a tensor name, or `embedding.AUTO` to find the classifier layer's input) of a source whose format
    supports it (ONNX, TFLite) becomes an extra output, so one inference gives logits and embeddings. `config_file`
    is the converter's INI configuration (post-training quantization: `modelfiles.quantize`).

    `dequantize` rewrites a quantized TFLite model as float32 first: MindSpore Lite 2.0.0's int8 kernels have
    no SIMD on x86 and run 60-90x slower than its fp32 ones (docs/quantized.md)."""
    source = Path(source).expanduser().resolve()
    hooks.plugin_manager()  # a plugin's format is known once its plugin is loaded
    fmk = source_format or formats.detect(source, convertible=True)
    fmt = formats.get(fmk)
    if not fmt.convertible:
        raise ConversionError(f"{source}: {fmt.description} cannot be converted (convertible: "
                              f"{', '.join(formats.names(convertible=True))})")
    if save_type not in formats.names(runnable=True):
        raise ValueError(f"save_type must be one of {formats.names(runnable=True)}, got {save_type!r}")
    if embedding and not fmt.embedding:
        raise ConversionError(f"embedding outputs are added to {'/'.join(formats.names(embedding=True))} sources "
                              f"only, {source} is {fmk}")
    if dequantize and not fmt.dequantize:
        raise ConversionError(f"dequantize applies to {'/'.join(formats.names(dequantize=True))} sources, {source} "
                              f"is {fmk}")
    if fmt.weight_suffix and not weight_file:
        weight_file = source.with_suffix(fmt.weight_suffix)
    output = Path(output).expanduser().resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    options = {"weight_file": str(weight_file or ""), "input_data_type": input_data_type,
               "output_data_type": output_data_type, "config_file": str(config_file or "")}
    with tempfile.TemporaryDirectory(prefix="fiftyone-mslite-convert-") as work:
        prepared = (resolve(fmt.prepare)(source, Path(work), PrepareRequest(embedding, dequantize)) if fmt.prepare
                    else Prepared(source, fmk))
        written = _converted_into_place(prepared.feed, prepared.format, output, save_type, backend, options)
    return ConversionResult(source, fmk, written, save_type, prepared.fixes, prepared.embedding)


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
