"""The wheel and sdist stand alone: built as a user builds them, checked by twine, installed into a clean venv
(no checkout, no ../shared on its path), then `runtime install` and `predict` with a catalog model through an
HTTP mirror on 127.0.0.1."""
from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers.env import REPO

import fiftyone_mslite


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], capture_output=True,
                           text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    return out


def test_wheel_and_sdist_build_and_pass_twine(dist):
    version = fiftyone_mslite.__version__
    wheel, sdist = dist / f"fiftyone_mslite-{version}-py3-none-any.whl", dist / f"fiftyone_mslite-{version}.tar.gz"
    assert wheel.is_file() and sdist.is_file(), sorted(p.name for p in dist.iterdir())
    check = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("fiftyone_mslite/catalog/models.yaml", "fiftyone_mslite/app/fiftyone.yml",
                    "fiftyone_mslite/app/requirements.txt", "fiftyone_mslite/runtime/worker.py"):
        assert shipped in names
    metadata = zipfile.ZipFile(wheel).read(f"fiftyone_mslite-{version}.dist-info/METADATA").decode()
    assert f"Version: {version}" in metadata and "License-Expression: Apache-2.0" in metadata
    assert "Project-URL: Source" in metadata and "Classifier: Programming Language :: Python :: 3.11" in metadata


def test_plugin_version_is_the_package_version():
    import yaml

    plugin = yaml.safe_load((REPO / "fiftyone_mslite" / "app" / "fiftyone.yml").read_text())
    assert plugin["version"] == fiftyone_mslite.__version__


@pytest.mark.shared
@pytest.mark.timeout(3600)  # pip installs FiftyOne and its dependencies into the clean venv (minutes)
def test_wheel_in_a_clean_venv_installs_the_runtime_and_predicts(dist, shared_dir, tmp_path):
    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    # a user's environment: none of this checkout's (PYTHONPATH would show pip the build's egg-info as installed)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIFTYONE_", "PYTHON"))}
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True, timeout=300, env=env)
    wheel = next(dist.glob("*.whl"))
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                          str(wheel)], capture_output=True, text=True, timeout=1800, env=env)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-3000:]

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(shared_dir / "mirror"))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home = tmp_path / "home"
    home.mkdir()
    env.update(HOME=str(home), FIFTYONE_MSLITE_HOME=str(home / "cache"),
               FIFTYONE_MSLITE_MIRROR=f"http://127.0.0.1:{server.server_address[1]}")
    cli = str(venv / "bin" / "fiftyone-mslite")
    try:
        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([cli, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1200)

        version = run("--version")
        assert version.returncode == 0 and fiftyone_mslite.__version__ in version.stdout, version.stderr
        installed = run("runtime", "install", "--json")
        assert installed.returncode == 0, installed.stderr[-3000:]
        assert json.loads(installed.stdout)["mindspore_lite"] == "2.0.0"
        image = shared_dir / "mirror/raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/master"
        image = image / "n01440764_tench.JPEG"
        pred = run("predict", "mobilenet-v1-0.25-224-tflite", str(image), "--top-k", "3", "--json")
        assert pred.returncode == 0, pred.stderr[-3000:]
        result = json.loads(pred.stdout)
        row = result[0] if isinstance(result, list) else result
        text = json.dumps(row)
        assert "tench" in text, text[:2000]  # the right class, from the wheel alone
        where = subprocess.run([str(venv / "bin" / "python"), "-c", "import fiftyone_mslite as m; print(m.__file__)"],
                               capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert str(venv) in where.stdout and str(REPO) not in where.stdout
    finally:
        server.shutdown()
