"""FiftyOne's own ways in, against an archive of this checkout served on 127.0.0.1: a remote zoo source
(`foz.register_zoo_model_source(url)`) and a plugin download (`fiftyone plugins download url`)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
from helpers.env import REPO, python_env

REMOTE = textwrap.dedent("""
    import json, sys
    import fiftyone as fo
    import fiftyone.zoo as foz
    import fiftyone_mslite as fom

    url, name, images = sys.argv[1:4]
    foz.register_zoo_model_source(url)
    listed = foz.list_zoo_models(source=url)
    dataset = fo.Dataset()
    dataset.add_samples([fo.Sample(filepath=p) for p in images.split(",")])
    zoo_model = foz.load_zoo_model(name)
    dataset.apply_model(zoo_model, "zoo")
    with fom.load_model(name) as model:
        dataset.apply_model(model, "direct")
    print(json.dumps({
        "listed": listed,
        "tags": foz.get_zoo_model(name).tags,
        "downloaded": foz.is_zoo_model_downloaded(name),
        "zoo": [(c.label, c.confidence) for c in dataset.values("zoo")],
        "direct": [(c.label, c.confidence) for c in dataset.values("direct")],
        "model_type": type(zoo_model).__name__,
    }))
    dataset.delete()
""")


def _repo_archive(dest: Path) -> Path:
    """A .tar.gz of the checkout as a repository host serves it: tracked and unignored files under one top folder."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    archive = dest / "fiftyone-mslite-main.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for rel in filter(None, files):
            if (REPO / rel).is_file():
                tar.add(REPO / rel, arcname=f"fiftyone-mslite-main/{rel}")
    return archive


@pytest.fixture(scope="module")
def archive_url(tmp_path_factory):
    """The checkout as an archive on a real HTTP server on 127.0.0.1."""
    import functools
    import http.server
    import threading

    if not (REPO / ".git").exists():
        pytest.skip("needs a git checkout (the archive is built from `git ls-files`)")
    root = tmp_path_factory.mktemp("www")
    archive = _repo_archive(root)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{archive.name}"
    server.shutdown()


def _fresh_fiftyone(tmp_path: Path, **extra: str) -> dict:
    """A FiftyOne home of its own (zoo and plugins), sharing the test session's database and model cache."""
    import fiftyone.core.odm.database as food

    host, port = food.get_db_client().address
    return python_env(FIFTYONE_MODEL_ZOO_DIR=str(tmp_path / "zoo"), FIFTYONE_PLUGINS_DIR=str(tmp_path / "plugins"),
                      FIFTYONE_DATABASE_URI=f"mongodb://{host}:{port}", **extra)


@pytest.mark.shared
def test_remote_zoo_source_lists_loads_and_labels_like_load_model(archive_url, imagenet_dir, tmp_path):
    """register_zoo_model_source(archive URL) → list → load_zoo_model → apply_model == fom.load_model."""
    from fiftyone_mslite.catalog.builtin import builtin_entries

    name = "mobilenet-v1-0.25-224-tflite"
    images = ",".join(str(p) for p in sorted(imagenet_dir.glob("*.JPEG"))[:6])
    script = tmp_path / "remote.py"
    script.write_text(REMOTE)
    out = subprocess.run([sys.executable, str(script), archive_url, name, images], capture_output=True, text=True,
                         env=_fresh_fiftyone(tmp_path), timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(got["listed"]) == set(builtin_entries()[0])  # the whole built-in catalog, nothing else
    assert got["downloaded"] and got["model_type"] == "MSLiteModel"
    assert {"mindspore-lite", "embeddings"} <= set(got["tags"])
    assert len(got["zoo"]) == 6 and all(label for label, _ in got["zoo"])
    assert got["zoo"] == got["direct"]  # same labels and confidences as loading the catalog model directly


def test_plugin_downloads_with_fiftyones_own_command(archive_url, tmp_path):
    """`fiftyone plugins download <archive>` + `fiftyone plugins requirements … --install` → working operators."""
    env = _fresh_fiftyone(tmp_path, PIP_NO_INDEX="1")  # the requirement is this package, already installed
    fiftyone_cli = [str(Path(sys.executable).parent / "fiftyone")]  # FiftyOne's own CLI, as a user types it
    down = subprocess.run([*fiftyone_cli, "plugins", "download", archive_url], capture_output=True, text=True,
                          env=env, timeout=300)
    assert down.returncode == 0, down.stderr[-3000:]
    installed = [p for p in (tmp_path / "plugins").rglob("fiftyone.yml")]
    assert len(installed) == 1, installed  # just the App plugin, not the zoo source or a test file
    assert (installed[0].parent / "requirements.txt").read_text().split() == ["fiftyone-mslite"]
    reqs = subprocess.run([*fiftyone_cli, "plugins", "requirements", "@fiftyone-mslite/mslite", "--install"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert reqs.returncode == 0, reqs.stderr[-3000:]
    ops = subprocess.run([*fiftyone_cli, "operators", "list", "--names-only"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert ops.returncode == 0, ops.stderr[-3000:]
    lines = [line.strip() for line in ops.stdout.splitlines()]
    assert "@fiftyone-mslite/mslite" in lines, ops.stdout  # FiftyOne lists operators under their plugin's name
    ours = lines[lines.index("@fiftyone-mslite/mslite") + 1:]
    ours = ours[:next((i for i, line in enumerate(ours) if line.startswith("@")), len(ours))]
    assert {"apply_model", "evaluate", "evaluate_multilabel", "compute_embeddings"} <= set(ours), ops.stdout
    assert os.path.realpath(installed[0].parent) != os.path.realpath(REPO / "fiftyone_mslite" / "app")  # a copy
