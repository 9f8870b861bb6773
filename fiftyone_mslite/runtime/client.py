"""The worker backend, parent side: one worker process per session, restarted after a crash.

A native fault in MindSpore Lite kills only the worker; the caller gets a WorkerCrashedError for the
batch in flight and the next call transparently loads the model again in a fresh worker. A worker that stops
answering (a graph MindSpore Lite loops on, a stopped process) is treated the same way: every request has a
deadline (`_Deadlines`), past which the worker is killed and the call raises WorkerTimeoutError. Worker logs live
in `cache_home()/logs`, named after the owning process: a clean stop deletes its log, and the logs of owners
that are gone (SIGKILL leaves no chance to clean up) are swept when the next worker of any process starts.
"""
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import weakref

from . import errors, protocol, settings
from .base import Backend, Session
from .environment import cache_home, runtime_python
from .inprocess import native_errors
from .tensors import TensorSpec, check_inputs

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
_INITIAL_SHM = 1 << 20
_LOG_NAME = re.compile(r"worker-(\d+)-.*\.log$")
CALL_TIMEOUT_ENV = "FIFTYONE_MSLITE_CALL_TIMEOUT"
_LATENCY_FACTOR = 50  # a batch may take this many times the slowest per-image time seen before it is a hang
_CONVERT_FACTOR = 10  # conversions (no latency to go by) get this many floors


def _alive(pid):
    # type: (int) -> bool
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _log_file():
    """A new log file in cache_home()/logs, after deleting the logs whose owning process is gone; in the system's
    temporary folder when the cache cannot be written (a read-only cache must not stop a model from running)."""
    folder = os.path.join(str(cache_home()), "logs")
    try:
        os.makedirs(folder, exist_ok=True)
        return _new_log(folder)
    except OSError:
        return tempfile.NamedTemporaryFile(prefix="fiftyone-mslite-worker-{}-".format(os.getpid()), suffix=".log",
                                           delete=False)


def _new_log(folder):
    # type: (str) -> tempfile._TemporaryFileWrapper
    for name in os.listdir(folder):
        match = _LOG_NAME.match(name)
        if match and not _alive(int(match.group(1))):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass  # another process swept it first
    return tempfile.NamedTemporaryFile(prefix="worker-{}-".format(os.getpid()), suffix=".log", dir=folder,
                                       delete=False)


class _Worker(object):
    """One live worker process with its pipes, shared buffers and log file."""

    def __init__(self, python):
        from .shm import SharedBuffer, create_fd

        self.log = _log_file()
        in_fd, out_fd = create_fd(_INITIAL_SHM), create_fd(_INITIAL_SHM)
        cmd_r, cmd_w = os.pipe()
        rep_r, rep_w = os.pipe()
        env = dict(os.environ)
        env.setdefault("GLOG_v", "3")
        verbose = settings.flag("FIFTYONE_MSLITE_VERBOSE")
        sink = None if verbose else self.log
        try:
            self.proc = subprocess.Popen(
                [python, "-I", _WORKER, str(cmd_r), str(rep_w), str(in_fd), str(out_fd), str(os.getpid())],
                pass_fds=(cmd_r, rep_w, in_fd, out_fd), stdin=subprocess.DEVNULL, stdout=sink, stderr=sink,
                env=env, start_new_session=True)  # Ctrl-C goes to the caller, which then closes us
        except OSError as exc:
            for fd in (cmd_w, rep_r, in_fd, out_fd):
                os.close(fd)
            self.log.close()
            os.unlink(self.log.name)
            raise errors.RuntimeUnavailableError("cannot start the MindSpore Lite worker with {}: {}. Run "
                                                 "`fiftyone-mslite runtime install`.".format(python, exc)) from exc
        finally:
            os.close(cmd_r)
            os.close(rep_w)
        self.cmd, self.rep = cmd_w, rep_r
        self._log_seen = 0
        self.inbuf, self.outbuf = SharedBuffer(in_fd, _INITIAL_SHM), SharedBuffer(out_fd, _INITIAL_SHM)
        self.python = python

    def request(self, message, what, timeout):
        """Send one request and wait at most `timeout` seconds for its reply; past that the worker is killed."""
        try:
            protocol.send(self.cmd, message)
            reply, payload = protocol.receive(self.rep, time.monotonic() + timeout)
        except protocol.PeerGone:
            raise errors.WorkerCrashedError(self._death_note(what)) from None
        except protocol.Timeout:
            self.proc.kill()
            self.proc.wait()
            raise errors.WorkerTimeoutError(
                "the MindSpore Lite worker did not answer within {:.0f} s while {}: it was stopped and the next call "
                "starts a fresh one. The model hangs on this call (e.g. a graph whose output is a constant), or "
                "the machine is overloaded: then raise {} (seconds).".format(timeout, what, CALL_TIMEOUT_ENV)) \
                from None
        if not reply.get("ok"):
            cls = getattr(errors, reply.get("error", ""), errors.MSLiteError)
            native = native_errors(self._new_log())
            message = reply.get("message", "unknown worker error")
            raise cls(message + ("\n" + native if native and native not in message else ""))
        reply["payload"] = payload
        return reply

    def _new_log(self):
        """What the worker logged since the last look: the native cause of a vague error."""
        self.log.flush()
        with open(self.log.name, "rb") as f:
            f.seek(self._log_seen)
            data = f.read()
        self._log_seen += len(data)
        return data.decode("utf-8", "replace")

    def _death_note(self, what):
        code = self.proc.wait()
        cause = "signal {}".format(signal.Signals(-code).name) if code < 0 else "exit code {}".format(code)
        self.log.flush()
        with open(self.log.name, "rb") as f:
            f.seek(max(0, os.path.getsize(self.log.name) - 2000))
            tail = f.read().decode("utf-8", "replace").strip()
        return ("the MindSpore Lite worker ({}) died ({}) while {}. The next call starts a fresh worker; "
                "if this repeats, the model or its input is at fault.{}".format(
                    self.python, cause, what, "\nWorker log tail:\n" + tail if tail else ""))

    def stop(self):
        if self.proc.poll() is None:
            try:
                protocol.send(self.cmd, {"op": "close"})
                self.proc.wait(timeout=5)
            except (protocol.PeerGone, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for fd in (self.cmd, self.rep):
            os.close(fd)
        self.inbuf.close()
        self.outbuf.close()
        self.log.close()
        os.unlink(self.log.name)


class _Deadlines(object):
    """How long a worker request may take: a floor (FIFTYONE_MSLITE_CALL_TIMEOUT, generous: loads and first
    calls have no history), or for a batch, if longer, `_LATENCY_FACTOR` times the slowest per-image time seen
    so far (the warm-up call of the load included) times the batch."""

    def __init__(self):
        self.per_image_s = None

    @staticmethod
    def floor():
        return settings.seconds(CALL_TIMEOUT_ENV)

    def seen(self, seconds, images):
        per_image = seconds / max(1, images)
        self.per_image_s = per_image if self.per_image_s is None else max(self.per_image_s, per_image)

    def for_batch(self, images):
        if self.per_image_s is None:
            return self.floor()
        return max(self.floor(), _LATENCY_FACTOR * self.per_image_s * images)


def _unpack(layout, payload):
    import numpy as np

    arrays, offset = [], 0
    for desc in layout:
        dtype = np.dtype(desc["dtype"])
        count = int(np.prod(desc["shape"], dtype=np.int64))
        arrays.append(np.frombuffer(payload, dtype, count, offset).reshape(desc["shape"]).copy())
        offset += count * dtype.itemsize
    return arrays


def _stop_quietly(box):
    if box:
        box.pop().stop()


class WorkerSession(Session):
    """Same interface as InProcessSession, with MindSpore Lite in a worker on the runtime Python."""

    backend = "worker"

    def __init__(self, path, threads=2, batch_size=None, python=None, device="cpu"):
        self.path = str(path)
        self.threads = int(threads)
        self.device = device
        self._python = python or runtime_python()
        self._requested_batch = batch_size
        self._lock = threading.Lock()
        self._box = []  # the live _Worker, if any; a list so the finalizer sees replacements
        self._finalizer = weakref.finalize(self, _stop_quietly, self._box)
        self.restarts = -1
        self.last_runtime_s = 0.0
        self._deadlines = _Deadlines()
        self._start()

    def _start(self):
        worker = _Worker(self._python)
        self._box.append(worker)
        self.restarts += 1
        try:
            reply = worker.request({"op": "open", "path": self.path, "threads": self.threads, "device": self.device,
                                    "batch_size": self._requested_batch}, "loading " + self.path,
                                   self._deadlines.floor())
        except Exception as exc:
            self._box.pop().stop()
            if type(exc) is errors.WorkerCrashedError and worker.proc.returncode < 0:
                raise errors.ModelFileError("MindSpore Lite crashed while loading {}: the file is probably "
                                            "corrupt or truncated.\n{}".format(self.path, exc)) from exc
            raise
        self.format = reply["format"]
        self.batch_size = reply["batch_size"]
        self.inputs = [TensorSpec.from_dict(d) for d in reply["inputs"]]
        self.outputs = [TensorSpec.from_dict(d) for d in reply["outputs"]]
        self._deadlines.seen(reply["runtime_s"], self.batch_size or 1)

    @property
    def pid(self):
        return self._box[0].proc.pid if self._box else None

    def run(self, *arrays):
        """Run one batch per input (leading dim = batch); returns one array per output."""
        arrays, n = check_inputs(self.inputs, arrays, self.path)
        with self._lock:
            if not self._box:
                self._start()
            worker = self._box[0]
            layout = worker.inbuf.write(arrays)
            try:
                reply = worker.request({"op": "run", "inputs": layout, "in_size": worker.inbuf.size},
                                       "running a batch of {} on {}".format(n, self.path), self._deadlines.for_batch(n))
            except errors.WorkerCrashedError:  # and WorkerTimeoutError: the worker is gone either way
                self._box.pop().stop()
                raise
            self.last_runtime_s = reply["runtime_s"]
            self._deadlines.seen(reply["runtime_s"], n)
            if "inline" in reply:
                return _unpack(reply["inline"], reply["payload"])
            worker.outbuf.remap(reply["out_size"])
            return [worker.outbuf.view(d).copy() for d in reply["outputs"]]

    def release(self):
        with self._lock:
            _stop_quietly(self._box)


class WorkerBackend(Backend):
    """MindSpore Lite in a worker process on the runtime Python (the usual case: PyPI's only wheel is for
    CPython 3.7). Options: `python`, the worker's interpreter (default: `runtime_python()`)."""

    name = "worker"
    priority = 10
    converts = True

    def available(self):
        try:
            runtime_python()
        except errors.RuntimeUnavailableError:
            return False
        return True

    def open(self, path, threads, batch_size=None, device="cpu", python=None, **options):
        return WorkerSession(path, threads=threads, batch_size=batch_size, python=python, device=device)

    def convert(self, python=None, **args):
        return convert_in_worker(python=python, **args)


def convert_in_worker(python=None, **args):
    """Run the converter in a one-off worker, so its crashes and log spam stay out of this process."""
    worker = _Worker(python or runtime_python())
    try:
        return worker.request({"op": "convert", "args": args}, "converting " + str(args.get("source")),
                              _CONVERT_FACTOR * _Deadlines.floor())["output"]
    finally:
        worker.stop()
