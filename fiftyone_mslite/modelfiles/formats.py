"""Which kind of model file is this? One answer for conversion, inspection, the catalog and the runtime.

The signature/suffix table itself is `runtime.formats` (the runtime needs it to load a file); this adds the
checks a user-facing path wants: missing, empty, and "can MindSpore Lite 2.x run it as it is".
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ModelFileError
from ..runtime.formats import CAFFE, DESCRIPTIONS, MINDIR, MS, MS_V0, ONNX, SUFFIXES, TF, TFLITE, from_suffix, sniff
from ..runtime.specs import detect_model_format

__all__ = ["detect_format", "from_suffix", "SUFFIXES", "CONVERTIBLE", "MS", "MS_V0", "MINDIR", "ONNX", "TFLITE", "TF",
           "CAFFE"]

#: formats MindSpore Lite's converter reads (a .ms cannot be re-converted)
CONVERTIBLE = (ONNX, TFLITE, MINDIR, TF, CAFFE)


def detect_format(path: str | Path, runnable: bool = False) -> str:
    """The format of a local model file, by content where it has a signature, else by suffix.

    With `runnable`, only what MindSpore Lite 2.x loads directly passes (`ms`, `mindir`); everything else is
    refused with what to do (convert, upgrade)."""
    if runnable:
        return detect_model_format(str(path))
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    with path.open("rb") as f:
        head = f.read(64)
    if not head:
        raise ModelFileError(f"model file {path} is empty (0 bytes)")
    fmt = sniff(head, path.name)
    if fmt is None:
        raise ModelFileError(f"cannot tell the format of {path}: expected one of "
                             f"{', '.join(DESCRIPTIONS[f] for f in (MS, MINDIR, *CONVERTIBLE[:2], TF, CAFFE))}")
    return fmt
