"""The one table of model-file formats (`ModelFormat` rows): every list of formats, every detector and every
"what do I do with this file" message is derived from it.

Lives in the runtime (the bottom layer, Python 3.7) because the runtime must tell `.ms` from `.mindir` to load a
file; the steps that need more than numpy (ONNX repairs, TFLite rewrites, the legacy upgrade) are named here as
"module:function" strings that the model-file layer imports when it runs them, so this table stays 3.7-safe.
Plugins add a row through the `register_formats` hook (`fiftyone_mslite.hooks`), which calls `register`.
"""
import os
from collections import OrderedDict

from .errors import ModelFileError

MS = "ms"  # MindSpore Lite FlatBuffer, current schema ('MSL2')
MS_V0 = "ms-v0"  # MindSpore Lite FlatBuffer, legacy schema (converters before 1.1.0)
MINDIR = "mindir"
ONNX = "onnx"
TFLITE = "tflite"
TF = "tf"
CAFFE = "caffe"

_CONVERT_FIX = "Convert it first: `fiftyone-mslite convert {path} --output model.ms`."


class ModelFormat(object):
    """One kind of model file and what fiftyone-mslite can do with it.

    - `signature(head, name) -> bool` recognises the file from its first 64 bytes (and its name where content is
      ambiguous); formats without one are told by suffix alone.
    - `model_type`: the MindSpore Lite `ModelType` member that loads the file as is (a runnable format).
    - `converter`: the MindSpore Lite converter's `FmkType` member that reads it (a convertible format).
    - `prepare`: "module:function" (or a callable) run before conversion, `prepare(source, work_dir, request)
      -> Prepared` (see `fiftyone_mslite.modelfiles.steps`): repairs, rewrites, or a translation into a format
      the converter reads (then `converter` may be None).
    - `bridge`: "module:function" (or a callable) `bridge(source, output)` that makes a runnable file without the
      converter (the legacy-schema upgrade).
    - `embedding`: conversion can expose the classifier's penultimate tensor as an extra output;
      `dequantize`: conversion can rewrite a quantized model as float32; `catalog_source`: a catalog entry's
      `source.format` may name it.
    - `fix`: what to do with such a file where a runnable one is needed (`{path}` is the file); `check(path,
      head, size)` raises `ModelFileError` for a damaged file of this format (a truncated .ms); `weight_suffix`:
      the weights are a sibling file with this suffix (Caffe's .caffemodel).
    """

    def __init__(self, name, description, suffixes=(), signature=None, model_type=None, converter=None,
                 prepare=None, bridge=None, embedding=False, dequantize=False, catalog_source=False, fix=None,
                 check=None, weight_suffix=None):
        self.name = name
        self.description = description
        self.suffixes = tuple(s.lower() for s in suffixes)
        self.signature = signature
        self.model_type = model_type
        self.converter = converter
        self.prepare = prepare
        self.bridge = bridge
        self.embedding = embedding
        self.dequantize = dequantize
        self.catalog_source = catalog_source
        self.fix = fix if fix is not None else (_CONVERT_FIX if converter or prepare else "")
        self.check = check
        self.weight_suffix = weight_suffix

    @property
    def runnable(self):
        # type: () -> bool
        """MindSpore Lite loads it as it is."""
        return self.model_type is not None

    @property
    def convertible(self):
        # type: () -> bool
        """`fiftyone-mslite convert` turns it into a .ms/.mindir."""
        return self.converter is not None or self.prepare is not None

    def __repr__(self):
        return "ModelFormat({!r})".format(self.name)


_FORMATS = OrderedDict()  # name → ModelFormat, in detection order


def register(fmt):
    # type: (ModelFormat) -> ModelFormat
    """Add a format (detection tries formats in registration order). Registering the same row again is a no-op;
    another row under a taken name is refused."""
    if not isinstance(fmt, ModelFormat):
        raise TypeError("register() takes a fiftyone_mslite.runtime.formats.ModelFormat, got {}".format(
            type(fmt).__name__))
    known = _FORMATS.get(fmt.name)
    if known is not None and known is not fmt:
        raise ValueError("a model format named {!r} is already registered".format(fmt.name))
    _FORMATS[fmt.name] = fmt
    return fmt


def get(name):
    # type: (str) -> ModelFormat
    try:
        return _FORMATS[name]
    except KeyError:
        raise ValueError("unknown model format {!r}; known: {}".format(name, ", ".join(_FORMATS))) from None


def all_formats():
    """Every registered format, in detection order."""
    return tuple(_FORMATS.values())


def names(builtin=False, **where):
    """Names of the formats whose attributes equal `where` (e.g. `names(convertible=True)`), in table order;
    `builtin`: ours only (not the plugins')."""
    return tuple(f.name for f in _FORMATS.values() if all(getattr(f, k) == v for k, v in where.items())
                 and (not builtin or f.name in BUILTIN))


def sniff(head, name=""):
    # type: (bytes, str) -> str
    """Format from a file's first 64 bytes (and its name where content is ambiguous); None if unknown."""
    for fmt in _FORMATS.values():
        if fmt.signature is not None and fmt.signature(head, name):
            return fmt.name
    by_suffix = from_suffix(name)
    if by_suffix is not None and _FORMATS[by_suffix].signature is None:  # no signature of its own
        return by_suffix
    return None  # (an identifierless legacy .ms is told by ms_inspect)


def from_suffix(name):
    # type: (str) -> str
    """Format named by a path's or URL's suffix, or None."""
    suffix = os.path.splitext(name.split("?")[0])[1].lower()
    for fmt in _FORMATS.values():
        if suffix and suffix in fmt.suffixes:
            return fmt.name
    return None


def runnable_suffix(name):
    # type: (str) -> str
    """The format a path's suffix names if MindSpore Lite runs it as it is (a model path, not a catalog name), or
    None."""
    fmt = from_suffix(name)
    return fmt if fmt is not None and _FORMATS[fmt].runnable else None


def read_head(path):
    # type: (str) -> bytes
    with open(path, "rb") as f:
        return f.read(64)


def detect(path, runnable=False, convertible=False):
    # type: (str, bool, bool) -> str
    """The format of a local model file, by content where it has a signature, else by suffix.

    `runnable`: only what MindSpore Lite loads as it is passes; `convertible`: only what the converter (after a
    format's `prepare` step) reads. Everything else is refused with what to do (convert, upgrade)."""
    path = str(path)
    if not os.path.exists(path):
        raise ModelFileError("model file not found: {}. Check the path, or fetch a catalog model with "
                             "`fiftyone-mslite models fetch NAME`.".format(path))
    if os.path.isdir(path):
        raise ModelFileError("{} is a directory, not a model file ({}).".format(path, _suffix_list(runnable)))
    size = os.path.getsize(path)
    if size == 0:
        raise ModelFileError("model file {} is empty (0 bytes): the download or conversion that made it "
                             "failed. Delete it and fetch or convert it again.".format(path))
    head = read_head(path)
    found = sniff(head, path)
    fmt = _FORMATS.get(found)
    if fmt is not None and fmt.check is not None:
        fmt.check(path, head, size)
    if runnable:
        if fmt is not None and fmt.runnable:
            return fmt.name
        if fmt is not None:
            raise ModelFileError(_refusal(fmt, path))
        raise ModelFileError("{} is not a MindSpore Lite model: expected a .ms (FlatBuffer 'MSL2') or a .mindir "
                             "(MindIR protobuf) file. A .ms from a converter before 1.1.0 has no identifier: "
                             "`fiftyone-mslite inspect {}` tells, `fiftyone-mslite upgrade` "
                             "converts it.".format(path, path))
    if fmt is None:
        raise ModelFileError("cannot tell the format of {}: expected one of {}".format(
            path, ", ".join(f.description for f in _FORMATS.values() if f.runnable or f.convertible)))
    if convertible and not fmt.convertible:
        if fmt.bridge is not None:
            raise ModelFileError(_refusal(fmt, path))
        raise ModelFileError("{} is already {}; nothing to convert (it cannot be re-converted).".format(
            path, fmt.description))
    return fmt.name


def _suffix_list(runnable):
    return "/".join(s for f in _FORMATS.values() if f.runnable or not runnable for s in f.suffixes[:1])


def _refusal(fmt, path):
    """Why a file of `fmt` cannot be loaded as it is, and what to do."""
    if fmt.bridge is not None:  # MindSpore Lite's own format, of a schema it no longer loads
        return "{} is {} that MindSpore Lite 2.x refuses; {}".format(path, fmt.description, fmt.fix.format(path=path))
    return "{} is {}, not a MindSpore Lite model ({}). {}".format(path, fmt.description, _suffix_list(True),
                                                                 fmt.fix.format(path=path))


def _check_ms(path, head, size):
    root = int.from_bytes(head[:4], "little")
    if size < 16 or root >= size:
        raise ModelFileError("{} is truncated ({} bytes): fetch or convert it again.".format(path, size))


for _row in (
    ModelFormat(MS, "a MindSpore Lite .ms model", (".ms",), lambda head, name: head[4:8] == b"MSL2",
                model_type="MINDIR_LITE", catalog_source=True, check=_check_ms),
    ModelFormat(MS_V0, "a MindSpore Lite model of an old schema (legacy v0, pre-1.1)", (),
                lambda head, name: head[4:7] == b"MSL" and head[4:8] != b"MSL2",
                bridge="fiftyone_mslite.modelfiles.upgrade:upgrade_ms",
                fix="upgrade it: `fiftyone-mslite upgrade {path} -o NEW.ms`."),
    ModelFormat(ONNX, "an ONNX model", (".onnx",), lambda head, name: head[:1] == b"\x08" and head[4:8] != b"TFL3",
                converter="ONNX",
                prepare="fiftyone_mslite.modelfiles.onnx_fixes:prepare_onnx_step", embedding=True,
                catalog_source=True),
    ModelFormat(TFLITE, "a TFLite model", (".tflite",), lambda head, name: head[4:8] == b"TFL3",
                converter="TFLITE", prepare="fiftyone_mslite.modelfiles.tflite_outputs:prepare_tflite",
                embedding=True, dequantize=True, catalog_source=True),
    ModelFormat(TF, "a TensorFlow .pb model", (".pb",), converter="TF"),
    ModelFormat(CAFFE, "a Caffe model", (".prototxt",), converter="CAFFE", weight_suffix=".caffemodel"),
    ModelFormat(MINDIR, "a MindIR model", (".mindir",),
                lambda head, name: head[:1] == b"\x0a" and (b"MindSpore" in head or name.endswith(".mindir")),
                model_type="MINDIR", converter="MINDIR", catalog_source=True),
):
    register(_row)
BUILTIN = tuple(_FORMATS)  # ours, whatever plugins add later (what the CLI's fixed choices list)
