"""The "toy" model format: a 16-byte header (b"TOYM", then zeros) before an ONNX model. Its `prepare` step
unwraps the ONNX and hands it to the ONNX format's own step (repairs, embedding output), so a .toy file converts
to a .ms like any source, can be a catalog entry's source, and gets an embedding output."""
from __future__ import annotations

from pathlib import Path

from fiftyone_mslite.plugins import ModelFormat, Prepared, PrepareRequest, hookimpl, model_format, resolve_step

MAGIC = b"TOYM"
HEADER = 16


def wrap(onnx_file: Path, output: Path) -> Path:
    """A .toy file holding `onnx_file` (what a test writes)."""
    output.write_bytes(MAGIC + bytes(HEADER - len(MAGIC)) + Path(onnx_file).read_bytes())
    return output


def unwrap(source: Path, workdir: Path, request: PrepareRequest) -> Prepared:
    """The toy format's `prepare` step: the ONNX inside, prepared as ONNX."""
    inner = workdir / (source.stem + ".onnx")
    inner.write_bytes(source.read_bytes()[HEADER:])
    return resolve_step(model_format("onnx").prepare)(inner, workdir, request)


TOY = ModelFormat("toy", "a toy container (TOYM header + an ONNX model)", (".toy",),
                  signature=lambda head, name: head[:4] == MAGIC, prepare=unwrap, embedding=True, catalog_source=True)


@hookimpl
def register_formats(register):
    register(TOY)
