"""Where the MindSpore Lite runtime lives: cache directory, runtime Python, install.

PyPI's only MindSpore Lite wheel targets CPython 3.7, while FiftyOne needs >= 3.10, so the runtime
usually lives in its own virtualenv under the cache directory. Python 3.7 compatible, stdlib only.
"""
import os
from pathlib import Path

from . import settings

HOME_ENV = "FIFTYONE_MSLITE_HOME"


def cache_home():
    # type: () -> Path
    """Root of everything fiftyone-mslite caches (runtime venv, downloads, converted models)."""
    explicit = settings.get(HOME_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fiftyone-mslite"


RUNTIME_PYTHON_ENV = "FIFTYONE_MSLITE_RUNTIME_PYTHON"  # a Python that already has mindspore_lite
PYTHON37_ENV = "FIFTYONE_MSLITE_PYTHON37"  # which Python 3.7 `runtime install` builds the venv from
MSLITE_VERSION = "2.0.0"
_PROBE = "import mindspore_lite, sys; print(mindspore_lite.__version__); print(sys.version.split()[0])"


def runtime_venv():
    # type: () -> Path
    return cache_home() / "runtime" / "mindspore-lite-{}-py3.7".format(MSLITE_VERSION)


def _venv_python(venv):
    return venv / "bin" / "python"


def runtime_python():
    # type: () -> str
    """The Python the worker runs on: the explicit setting, else the managed venv."""
    from .errors import RuntimeUnavailableError

    explicit = settings.get(RUNTIME_PYTHON_ENV)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RuntimeUnavailableError("{}={} is not an executable Python.".format(RUNTIME_PYTHON_ENV, explicit))
        return explicit
    python = _venv_python(runtime_venv())
    if not (runtime_venv() / "installed.json").is_file() or not os.access(str(python), os.X_OK):
        raise RuntimeUnavailableError(
            "the MindSpore Lite runtime is not installed (looked for {}). Run `fiftyone-mslite runtime install`, "
            "or set {} to a Python that has mindspore_lite.".format(runtime_venv(), RUNTIME_PYTHON_ENV))
    return str(python)


def _pyenv_root():
    import shutil
    import subprocess

    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    exe = shutil.which("pyenv")
    if exe:
        try:
            out = subprocess.run([exe, "root"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 universal_newlines=True, timeout=30)
            if out.returncode == 0 and out.stdout.strip():
                return Path(out.stdout.strip())
        except (OSError, subprocess.TimeoutExpired):
            pass
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


def find_python37():
    """(path, how it was found) for the Python 3.7 to build the runtime venv from, or (None, why not)."""
    import shutil

    explicit = settings.get(PYTHON37_ENV)
    if explicit:
        if not os.access(explicit, os.X_OK):
            return None, "{}={} is not an executable Python".format(PYTHON37_ENV, explicit)
        return explicit, "setting {}".format(PYTHON37_ENV)
    root = _pyenv_root()
    if root is not None:
        versions = sorted((root / "versions").glob("3.7*"), key=lambda p: [int(x) for x in
                                                                          p.name.split(".") if x.isdigit()])
        for version in reversed(versions):
            python = version / "bin" / "python3.7"
            if os.access(str(python), os.X_OK):
                return str(python), "pyenv ({})".format(root)
    on_path = shutil.which("python3.7")
    if on_path:
        return on_path, "python3.7 on PATH"
    return None, "no {} set, no 3.7 under pyenv's versions, no python3.7 on PATH".format(PYTHON37_ENV)


def probe(python):
    """(mindspore_lite version, python version) of an interpreter, or None if it lacks mindspore_lite."""
    import subprocess

    try:
        out = subprocess.run([python, "-c", _PROBE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True, timeout=120)
    except OSError:
        return None
    lines = out.stdout.split()
    return (lines[0], lines[1]) if out.returncode == 0 and len(lines) == 2 else None


def install(python=None, force=False, log=None):
    """Create the runtime venv and install mindspore-lite into it. Idempotent: a no-op when present."""
    import json
    import shutil
    import subprocess

    from .errors import RuntimeUnavailableError
    from .inprocess import mslite_available

    venv = runtime_venv()
    marker = venv / "installed.json"
    if marker.is_file() and not force and os.access(str(_venv_python(venv)), os.X_OK):
        return dict(json.loads(marker.read_text()), action="already installed")
    how = "argument"
    if python is None and mslite_available():  # a wheel for this very Python: models run in process
        import sys
        found = probe(sys.executable)
        if found:
            return {"python": sys.executable, "base_python": sys.executable, "found_by": "this Python",
                    "mindspore_lite": found[0], "python_version": found[1], "venv": None,
                    "action": "in process (no worker venv needed)"}
    if python is None:
        python, how = find_python37()
    if python is None:
        raise RuntimeUnavailableError(
            "cannot install the MindSpore Lite runtime: {}. MindSpore Lite's only PyPI wheel needs CPython 3.7; get "
            "one, then rerun: `pyenv install 3.7.16 && fiftyone-mslite runtime install` | `uv python install 3.7 && "
            "fiftyone-mslite runtime install --python \"$(uv python find 3.7)\"` | `conda create -y -p ~/py37 "
            "python=3.7 && fiftyone-mslite runtime install --python ~/py37/bin/python` (or set {}=/path/to/python3.7)"
            ".".format(how, PYTHON37_ENV))
    if venv.exists():
        shutil.rmtree(str(venv))
    venv.parent.mkdir(parents=True, exist_ok=True)
    out = log or subprocess.DEVNULL
    steps = [
        [python, "-m", "venv", str(venv)],
        [str(_venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check", "-q",
         "mindspore-lite=={}".format(MSLITE_VERSION)],
    ]
    for step in steps:
        if subprocess.run(step, stdout=out, stderr=out).returncode != 0:
            shutil.rmtree(str(venv), ignore_errors=True)
            raise RuntimeUnavailableError("runtime install failed at `{}`; rerun with --verbose to see pip's "
                                          "output.".format(" ".join(step)))
    found = probe(str(_venv_python(venv)))
    if found is None:
        raise RuntimeUnavailableError("mindspore-lite installed into {} but does not import.".format(venv))
    record = {"python": str(_venv_python(venv)), "base_python": python, "found_by": how,
              "mindspore_lite": found[0], "python_version": found[1], "venv": str(venv)}
    marker.write_text(json.dumps(record, indent=1))
    return dict(record, action="installed")


def info():
    """Where MindSpore Lite is found here: in this Python, the worker's Python, the Python 3.7 to build it from."""
    from .errors import RuntimeUnavailableError
    from .inprocess import mslite_available

    result = {"cache_home": str(cache_home()), "runtime_venv": str(runtime_venv()),
              "inprocess_available": mslite_available()}
    try:
        python = runtime_python()
        result["worker_python"] = python
        result["worker_python_source"] = "setting {}".format(RUNTIME_PYTHON_ENV) if settings.get(
            RUNTIME_PYTHON_ENV) else "managed venv"
        found = probe(python)
        result["worker_mindspore_lite"] = found[0] if found else None
        result["worker_python_version"] = found[1] if found else None
    except RuntimeUnavailableError as exc:
        result["worker_python"] = None
        result["worker_problem"] = str(exc)
    result["python37"], result["python37_source"] = find_python37()
    result["default_backend"] = "inprocess" if result["inprocess_available"] else (
        "worker" if result["worker_python"] else None)
    return result
