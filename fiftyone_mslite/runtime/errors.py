"""Exceptions of the runtime bridge: each message says what failed, on which file, and what to do."""


class MSLiteError(Exception):
    """Base class for every error fiftyone-mslite raises about running or converting a model."""


class ModelFileError(MSLiteError, ValueError):
    """The model file is missing, empty, truncated, of a foreign format or refused by MindSpore Lite."""


class InputMismatchError(MSLiteError, ValueError):
    """Data handed to `Session.run` does not match the model's input (shape, dtype, layout)."""


class RuntimeUnavailableError(MSLiteError, RuntimeError):
    """No usable MindSpore Lite: neither importable here nor installed for a worker Python."""


class WorkerCrashedError(MSLiteError, RuntimeError):
    """The worker process died (native crash, kill, OOM); the next call starts a fresh one."""


class ConversionError(MSLiteError, RuntimeError):
    """The MindSpore Lite converter refused a source model."""
