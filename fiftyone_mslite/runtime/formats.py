"""The one table of model-file formats: content signatures first, file suffixes second.

Lives in the runtime (the bottom layer, Python 3.7) because the runtime must tell `.ms` from `.mindir` to load
a file; the model-file layer builds conversion and inspection on the same table.
"""
import os

MS = "ms"  # MindSpore Lite FlatBuffer, current schema ('MSL2')
MS_V0 = "ms-v0"  # MindSpore Lite FlatBuffer, legacy schema (converters before 1.1.0)
MINDIR = "mindir"
ONNX = "onnx"
TFLITE = "tflite"
TF = "tf"
CAFFE = "caffe"

#: suffix → format, for formats without a content signature and for URLs not fetched yet.
SUFFIXES = {".ms": MS, ".mindir": MINDIR, ".onnx": ONNX, ".tflite": TFLITE, ".pb": TF, ".prototxt": CAFFE}
DESCRIPTIONS = {MS: "a MindSpore Lite .ms model", MS_V0: "a legacy-schema (pre-1.1) MindSpore Lite .ms model",
                MINDIR: "a MindIR model", ONNX: "an ONNX model", TFLITE: "a TFLite model",
                TF: "a TensorFlow .pb model", CAFFE: "a Caffe model"}


def sniff(head, name=""):
    # type: (bytes, str) -> str
    """Format from a file's first 64 bytes (and its name where content is ambiguous); None if unknown."""
    ident = head[4:8]
    if ident == b"TFL3":
        return TFLITE
    if ident == b"MSL2":
        return MS
    if ident[:3] == b"MSL":
        return MS_V0
    if head[:1] == b"\x0a" and (b"MindSpore" in head or name.endswith(".mindir")):
        return MINDIR
    if head[:1] == b"\x08":
        return ONNX
    suffix = from_suffix(name)
    if suffix in (TF, CAFFE):  # no signature of their own (an identifierless legacy .ms is told by ms_inspect)
        return suffix
    return None


def from_suffix(name):
    # type: (str) -> str
    """Format named by a path's or URL's suffix, or None."""
    return SUFFIXES.get(os.path.splitext(name.split("?")[0])[1].lower())


def read_head(path):
    # type: (str) -> bytes
    with open(path, "rb") as f:
        return f.read(64)
