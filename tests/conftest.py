"""Shared fixtures. FiftyOne and our caches are isolated here, before anything imports fiftyone."""
import os
import tempfile
from pathlib import Path

import pytest
from helpers.env import SHARED


def _isolate() -> Path:
    """Point HOME, FiftyOne and our cache at a throw-away directory for the whole session."""
    from fiftyone_mslite.runtime import RuntimeUnavailableError, runtime_python

    try:  # resolve the real runtime venv before HOME moves
        os.environ.setdefault("FIFTYONE_MSLITE_RUNTIME_PYTHON", runtime_python())
    except RuntimeUnavailableError:
        pass  # tests that need it fail with the runtime's own message
    root = Path(tempfile.mkdtemp(prefix="fiftyone-mslite-tests-"))
    os.environ.update({
        "REAL_HOME": os.environ.get("HOME", ""),
        "HOME": str(root / "home"),
        "FIFTYONE_MSLITE_HOME": str(root / "cache"),
        "FIFTYONE_DATABASE_DIR": str(root / "db"),
        "FIFTYONE_DATABASE_NAME": "fiftyone-mslite-tests",
        "FIFTYONE_DEFAULT_DATASET_DIR": str(root / "datasets"),
        "FIFTYONE_MODEL_ZOO_DIR": str(root / "zoo"),
        "FIFTYONE_PLUGINS_DIR": str(root / "plugins"),
        "FIFTYONE_DO_NOT_TRACK": "true",
        "FIFTYONE_SHOW_PROGRESS_BARS": "false",
    })
    os.environ.pop("FIFTYONE_DATABASE_URI", None)
    (root / "home").mkdir()
    return root


TEST_ROOT = _isolate()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (real models and data); tests that need it skip when it is absent."""
    if not (SHARED / "README.md").is_file():
        pytest.skip(f"needs ../shared (real models and data) at {SHARED}; absent in a fresh clone")
    return SHARED


@pytest.fixture(scope="session")
def runtime_python() -> str:
    """The Python 3.7 (with mindspore_lite) that the worker backend runs on."""
    from fiftyone_mslite.runtime import runtime_python as find

    return find()


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def mirror(shared_dir) -> Path:
    """Serve public URLs from ../shared/mirror for the whole session (no network here)."""
    root = shared_dir / "mirror"
    os.environ["FIFTYONE_MSLITE_MIRROR"] = str(root)
    return root


@pytest.fixture(scope="session")
def imagenet_dir(mirror) -> Path:
    """The 1000 ImageNet sample images (one per class; synset in the file name)."""
    return mirror / "raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/master"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A 5-class tiny CNN (8x8 input) in the user catalog as 'tiny'; needs no ../shared."""
    from helpers.onnx_graphs import TinyNet

    from fiftyone_mslite.catalog.user import add_model

    folder = tmp_path_factory.mktemp("tiny")
    src = TinyNet.random(seed=0).save(folder / "tiny.onnx")
    labels = folder / "tiny-labels.txt"
    labels.write_text("alpha\nbeta\ngamma\ndelta\nepsilon\n")
    add_model("tiny", str(src), str(labels), resize="squash", crop_fraction=1.0)
    return "tiny"


@pytest.fixture(scope="session")
def tv_mobilenet(shared_dir, mirror) -> str:
    """torchvision MobileNetV2 (ImageNet-1000) from ../shared/onnx, added to the user catalog."""
    from fiftyone_mslite.catalog.user import add_model

    add_model("tv-mobilenet-v2", str(shared_dir / "onnx" / "mobilenet_v2_tv.onnx"), "imagenet-1000")
    return "tv-mobilenet-v2"


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """Conv -> Relu -> GlobalAveragePool -> Flatten ("logits") plus Softmax ("probs"): a two-output ONNX graph."""
    from helpers.onnx_graphs import tiny_two_output_onnx

    return tiny_two_output_onnx(tmp_path_factory.mktemp("tiny_onnx") / "tiny.onnx")


@pytest.fixture
def fresh_catalog():
    """Re-read catalogs and plugins before and after the test (it edits the user catalog or plugins)."""
    from fiftyone_mslite.catalog import registry

    registry.reset()
    yield
    registry.reset()


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www: yields (root folder, base URL)."""
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
