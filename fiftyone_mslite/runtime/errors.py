"""The error root and the runtime bridge's own errors (this layer imports nothing of the package, so the root
lives here; `fiftyone_mslite.errors` lists every public error of every layer)."""


class MSLiteError(Exception):
    """Base class of every error fiftyone-mslite raises: catch this one to handle all of ours."""


class ModelFileError(MSLiteError, ValueError):
    """The model file is missing, empty, truncated, of a foreign format or refused by MindSpore Lite."""


class InputMismatchError(MSLiteError, ValueError):
    """Data handed to `Session.run` does not match the model's input (shape, dtype, layout)."""


class RuntimeUnavailableError(MSLiteError, RuntimeError):
    """No usable MindSpore Lite: neither importable here nor installed for a worker Python."""


class WorkerCrashedError(MSLiteError, RuntimeError):
    """The worker process died (native crash, kill, OOM); the next call starts a fresh one."""


class WorkerTimeoutError(WorkerCrashedError):
    """The worker did not answer within the call's deadline (a hang); it was killed, the next call starts a fresh
    one. A kind of crash, so whatever survives a crash (annotate's per-sample failures) survives this too."""


class ConversionError(MSLiteError, RuntimeError):
    """The MindSpore Lite converter refused a source model."""
