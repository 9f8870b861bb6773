"""The worker: runs MindSpore Lite on the runtime Python, serving one model (or one conversion).

Started by `client.WorkerSession` as `python -I worker.py CMD_FD REPLY_FD IN_FD OUT_FD PARENT_PID`.
It loads this folder as a standalone package so that nothing of the caller's site-packages (built for
another Python) is imported. It exits when the parent process dies (a watchdog thread, and EOF on its pipe).
"""
import os
import sys

_STANDALONE = "_fiftyone_mslite_runtime"
INLINE_LIMIT = 1 << 18  # outputs up to 256 KB come back on the pipe, larger ones through shared memory


def _die_with_parent(parent_pid):
    """Exit soon after the parent process dies, even in the middle of a long request.

    Not PR_SET_PDEATHSIG: that fires when the parent *thread* that started us exits, and sessions are
    legitimately opened from short-lived threads (thread pools, the App's operator executors).
    """
    import threading
    import time

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(0)

    if os.getppid() != parent_pid:
        os._exit(0)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def serve(cmd_fd, reply_fd, in_fd, out_fd):
    from . import protocol
    from .errors import MSLiteError
    from .inprocess import InProcessSession, convert_inprocess
    from .shm import SharedBuffer

    inbuf = SharedBuffer(in_fd, os.fstat(in_fd).st_size)
    outbuf = SharedBuffer(out_fd, os.fstat(out_fd).st_size)
    session = None
    while True:
        try:
            msg, _ = protocol.receive(cmd_fd)
        except protocol.PeerGone:
            return
        op = msg.get("op")
        payload = b""
        try:
            if op == "open":
                session = InProcessSession(msg["path"], msg["threads"], msg.get("batch_size"), msg.get("device", "cpu"))
                reply = {"ok": True, "format": session.format, "batch_size": session.batch_size,
                         "runtime_s": session.last_runtime_s,  # its warm-up call: a first latency
                         "inputs": [s.to_dict() for s in session.inputs],
                         "outputs": [s.to_dict() for s in session.outputs]}
            elif op == "run":
                inbuf.remap(msg["in_size"])
                views = [inbuf.view(d) for d in msg["inputs"]]
                outputs = session.run_checked(views, views[0].shape[0])
                reply = {"ok": True, "runtime_s": session.last_runtime_s}
                if sum(o.nbytes for o in outputs) <= INLINE_LIMIT:
                    reply["inline"] = [{"shape": list(o.shape), "dtype": o.dtype.str} for o in outputs]
                    payload = b"".join(o.tobytes() for o in outputs)
                else:
                    reply["outputs"] = outbuf.write(outputs)
                    reply["out_size"] = outbuf.size
            elif op == "convert":
                reply = {"ok": True, "output": convert_inprocess(**msg["args"])}
            elif op == "close":
                protocol.send(reply_fd, {"ok": True})
                return
            else:
                reply = {"ok": False, "error": "MSLiteError", "message": "unknown op {!r}".format(op)}
        except MSLiteError as exc:
            reply = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
        except Exception as exc:  # report, keep serving: the parent decides what is fatal
            reply = {"ok": False, "error": "MSLiteError", "message": "{}: {}".format(type(exc).__name__, exc)}
        protocol.send(reply_fd, reply, payload)


def _load_standalone():
    """Import this folder as a top-level package, independent of the fiftyone_mslite install."""
    import importlib.util
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        _STANDALONE, os.path.join(here, "__init__.py"), submodule_search_locations=[here])
    package = importlib.util.module_from_spec(spec)
    sys.modules[_STANDALONE] = package
    spec.loader.exec_module(package)
    return importlib.import_module(_STANDALONE + ".worker")


def _refuse(reply_fd, message):
    import json
    import struct
    data = json.dumps({"ok": False, "error": "RuntimeUnavailableError", "message": message}).encode("utf-8")
    os.write(reply_fd, struct.pack("<II", len(data), 0) + data)  # protocol.send's framing, without numpy


if __name__ == "__main__":
    sys.path.pop(0)  # this folder: its module names must not shadow the standard library
    fds = [int(a) for a in sys.argv[1:5]]
    _die_with_parent(int(sys.argv[5]))
    try:
        served = _load_standalone()
    except ImportError as exc:  # e.g. numpy or mindspore_lite missing: answer the first request, clearly
        _refuse(fds[1], "the worker Python {} cannot import the runtime ({}). Run `fiftyone-mslite runtime "
                        "install`, or point FIFTYONE_MSLITE_RUNTIME_PYTHON at a Python with mindspore_lite and "
                        "numpy.".format(sys.executable, exc))
    else:
        served.serve(*fds)
