"""The in-process backend: MindSpore Lite imported into this interpreter.

Used directly where a mindspore_lite wheel exists for the running Python, and by the worker process.
"""
import contextlib
import os
import tempfile
import time

import numpy as np

from . import formats, settings
from .base import Backend, Session
from .errors import ConversionError, ModelFileError, MSLiteError, RuntimeUnavailableError
from .formats import MS
from .tensors import TensorSpec, check_input_size, check_inputs, guess_layout

# Native logs: errors only unless the user asked for more (GLOG_v is MindSpore's log level).
os.environ.setdefault("GLOG_v", "3")


def import_mslite():
    try:
        import mindspore_lite
    except ImportError as exc:
        raise RuntimeUnavailableError(
            "mindspore_lite is not importable in this Python ({}). Use the worker backend "
            "(`fiftyone-mslite runtime install`) or install a MindSpore Lite wheel for this "
            "interpreter.".format(exc)) from exc
    return mindspore_lite


def mslite_available():
    # type: () -> bool
    import importlib.util
    return importlib.util.find_spec("mindspore_lite") is not None


@contextlib.contextmanager
def captured_native_output():
    """Collect what native code prints to fds 1/2 (log spam), handing it back for error messages."""
    verbose = settings.flag("FIFTYONE_MSLITE_VERBOSE")
    sink = tempfile.TemporaryFile()
    text = []
    if verbose:
        text.append("")
        yield text
        return
    saved = [os.dup(1), os.dup(2)]
    try:
        for fd in (1, 2):
            os.dup2(sink.fileno(), fd)
        yield text
    finally:
        for fd, old in zip((1, 2), saved):
            os.dup2(old, fd)
            os.close(old)
        sink.seek(0)
        text.append(sink.read().decode("utf-8", "replace"))
        sink.close()


def native_errors(log):
    # type: (str) -> str
    """The [ERROR] lines of a MindSpore Lite log, which name the real cause of 'Common error code'."""
    lines = [ln.split("] ", 2)[-1] for ln in log.splitlines() if ln.startswith("[ERROR]")]
    return "\n".join(lines[-8:])


def _dtype_name(tensor):
    return tensor.dtype.name.lower()


class InProcessSession(Session):
    """A loaded model. `run` takes whole batches; fixed-batch graphs are looped, dynamic ones resized."""

    backend = "inprocess"

    def __init__(self, path, threads=2, batch_size=None, device="cpu"):
        mslite = import_mslite()
        self.path = str(path)
        self.format = formats.detect(self.path, runnable=True)
        model_type = getattr(mslite.ModelType, formats.get(self.format).model_type)
        context = mslite.Context()
        context.target = [device]
        context.cpu.thread_num = int(threads)
        self.threads = int(threads)
        self._model = mslite.Model()
        with captured_native_output() as log:
            try:
                self._model.build_from_file(self.path, model_type, context)
            except RuntimeError:
                failed = True
            else:
                failed = False
        if failed:
            raise ModelFileError(
                "MindSpore Lite could not load {} ({} bytes, {}): the file is truncated, corrupt or uses "
                "operators this runtime lacks. Fetch or convert it again.\n{}".format(
                    self.path, os.path.getsize(self.path), self.format, native_errors(log[0])).rstrip())
        self._tensors = self._model.get_inputs()
        raw = [tuple(t.shape) for t in self._tensors]
        self.inputs = [TensorSpec(t.name, s, _dtype_name(t), guess_layout(s)) for t, s in zip(self._tensors, raw)]
        self._resizable = any(d < 0 for s in raw for d in s)
        self._fixed_batch = None if self._resizable else raw[0][0]
        self.batch_size = int(batch_size) if batch_size else (self._fixed_batch or None)
        # mindspore_lite 2.0 has no get_outputs(): one warm-up run reveals output names, shapes, dtypes.
        first = [tuple((self.batch_size or 1) if d < 0 else d for d in s) for s in raw]
        check_input_size(self.inputs, first, self.path)
        warmup = time.perf_counter()
        outs = self._predict([np.zeros(s, spec.dtype) for s, spec in zip(first, self.inputs)])
        self.outputs = [
            TensorSpec(name, (-1,) + tuple(a.shape[1:]) if self._resizable else tuple(a.shape), str(a.dtype),
                       guess_layout(a.shape))
            for name, a in zip(self._output_names, outs)]
        self.last_runtime_s = time.perf_counter() - warmup  # the warm-up: a first latency for the caller's deadlines

    def _predict(self, arrays):
        shapes = [tuple(a.shape) for a in arrays]
        if self._resizable and shapes != [tuple(t.shape) for t in self._tensors]:
            self._model.resize(self._tensors, [list(s) for s in shapes])
            self._tensors = self._model.get_inputs()
        for tensor, arr in zip(self._tensors, arrays):
            tensor.set_data_from_numpy(arr)
        try:
            outs = self._model.predict(self._tensors)
        except RuntimeError:
            raise MSLiteError(
                "MindSpore Lite failed to run {} on inputs shaped {}: an operator of this model has no CPU kernel "
                "for these input types, or the graph is broken.".format(self.path, shapes)) from None
        self._output_names = [o.name for o in outs]
        # The returned buffers are reused by the next predict: copy.
        return [o.get_data_to_numpy().copy() for o in outs]

    def run(self, *arrays):
        """Run one batch per input (leading dim = batch); returns one array per output."""
        arrays, n = check_inputs(self.inputs, arrays, self.path)
        return self.run_checked(arrays, n)

    def run_checked(self, arrays, n):
        """`run` for inputs already validated (by the worker's parent)."""
        start = time.perf_counter()
        if len({a.shape[0] for a in arrays}) > 1:  # no common batch dim (see check_inputs): one call, as given
            chunks = [self._predict(list(arrays))]
        else:
            chunks = []
            step = self._fixed_batch or self.batch_size or n
            for lo in range(0, n, step):
                part = [a[lo:lo + step] for a in arrays]
                got = part[0].shape[0]
                if self._fixed_batch and got < step:
                    part = [np.concatenate([p, np.zeros((step - got,) + p.shape[1:], p.dtype)]) for p in part]
                chunks.append([o[:got] for o in self._predict(part)])
        self.last_runtime_s = time.perf_counter() - start
        if len(chunks) == 1:
            return chunks[0]
        return [np.concatenate(parts) for parts in zip(*chunks)]

    def release(self):
        self._model = None
        self._tensors = None


class InProcessBackend(Backend):
    """MindSpore Lite imported into this interpreter: preferred where a wheel exists for it (no process hop)."""

    name = "inprocess"
    priority = 20
    converts = True

    def available(self):
        return mslite_available()

    def open(self, path, threads, batch_size=None, device="cpu", **options):
        return InProcessSession(path, threads=threads, batch_size=batch_size, device=device)

    def convert(self, **args):
        return convert_inprocess(**args)


def convert_inprocess(source, fmk, output, save_type=MS, weight_file="", config_file="",
                      input_data_type=None, output_data_type=None):
    """Run the converter here. Returns the written path (MindSpore Lite appends .ms/.mindir itself)."""
    mslite = import_mslite()
    readable = [f for f in formats.all_formats() if f.converter]
    if fmk not in [f.name for f in readable]:
        raise ConversionError("unknown source format {!r}; expected one of {}".format(
            fmk, ", ".join(f.name for f in readable)))
    converter = mslite.Converter()
    converter.save_type = getattr(mslite.ModelType, formats.get(save_type).model_type)
    if input_data_type:
        converter.input_data_type = getattr(mslite.DataType, input_data_type.upper())
    if output_data_type:
        converter.output_data_type = getattr(mslite.DataType, output_data_type.upper())
    output = str(output)
    suffix = "." + save_type
    stem = output[:-len(suffix)] if output.endswith(suffix) else output
    target = stem + suffix
    if os.path.exists(target):
        os.chmod(target, 0o644)
        os.remove(target)
    with captured_native_output() as log:
        try:
            converter.convert(getattr(mslite.FmkType, formats.get(fmk).converter), str(source), stem, weight_file,
                              config_file)
        except RuntimeError:
            failed = True
        else:
            failed = False
    if failed or not os.path.exists(target):
        raise ConversionError("MindSpore Lite's converter failed on {} ({} → {}):\n{}".format(
            source, fmk, save_type, native_errors(log[0]) or log[0][-2000:]))
    # The converter writes read-only files; users expect to overwrite or delete their outputs.
    os.chmod(target, 0o644)
    return target
