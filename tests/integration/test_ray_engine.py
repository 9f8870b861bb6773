"""annotate(engine="ray") on real Ray clusters (a local `ray.init(num_cpus=2)` and three raylets on 127.0.0.1
via `ray.cluster_utils.Cluster`), real MindSpore Lite workers and the test session's real MongoDB: the same
answers and failures as local annotate, a SIGKILLed actor retried without loss or duplicates, Ctrl-C, resume,
the CLI, and nothing left running after the clusters stop."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import fiftyone as fo
import fiftyone.core.odm.database as food
import numpy as np
import pytest
from helpers.cli import cli
from PIL import Image

from fiftyone_mslite.catalog.user import user_catalog_path
from fiftyone_mslite.engines import ray_engine
from fiftyone_mslite.errors import EngineUnavailableError, ModelMismatchError
from fiftyone_mslite.integration.annotation import annotate, run_key
from fiftyone_mslite.integration.model import load_model

# Read when Ray is imported, and inherited by its daemons and by the CLI's driver: every node on 127.0.0.1 (Ray
# otherwise swaps a loopback address for the machine's own), and no usage report.
os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0",
                  FIFTYONE_MSLITE_TESTS_PID=str(os.getpid()))
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

MB = 1 << 20
MARKER = "FIFTYONE_MSLITE_TEST_RAY"  # in every actor's environment (and its worker's): finds what we started
BAD = {"missing": "not found", "empty": "empty file", "text": "not an image", "truncated": "truncated"}


def _database_uri() -> str:
    """The session's mongod as a URI, for the actors' and a second driver's environment."""
    host, port = food.get_db_client().address
    return f"mongodb://{host}:{port}"


def _procs(match) -> list[int]:
    """Pids of live processes whose (cmdline, environ) satisfy `match`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                env = Path(f"/proc/{entry}/environ").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if match(cmd, env):
                found.append(int(entry))
    return found


def _ours(marker: str):
    return lambda cmd, env: f"{MARKER}={marker}" in env


def _actors(marker: str) -> list[int]:
    return _procs(lambda cmd, env: f"{MARKER}={marker}" in env and cmd.startswith("ray::MapWorker"))


def _pool(marker: str):
    """The actors and their MindSpore Lite workers (idle Ray workers of the job carry the marker too)."""
    return lambda cmd, env: f"{MARKER}={marker}" in env and (cmd.startswith("ray::MapWorker") or "worker.py" in cmd)


def _ray_daemons(cmd: str, env: str) -> bool:
    """A raylet, GCS or worker started by this test process (Ray's daemons inherit its environment)."""
    return f"FIFTYONE_MSLITE_TESTS_PID={os.getpid()}" in env and ("raylet" in cmd or "gcs_server" in cmd
                                                                   or cmd.startswith("ray::"))


def _wait_gone(match, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    left = _procs(match)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = _procs(match)
    assert not left, f"{what} still running: {left}"


@pytest.fixture(scope="module", params=["local", "multinode"])
def cluster(request, tiny_model):
    """A real Ray cluster for this module: the actors reach the session's mongod through its URI and load models
    from the session's catalog and cache, passed as the job's runtime_env (as on a real cluster). Yields the
    address and the marker in every actor's environment. Always shut down; nothing may be left running."""
    fo.Dataset().delete()  # connect (FiftyOne starts the session's mongod) before asking for its URI
    marker = uuid.uuid4().hex
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths live below it
    env_vars = {MARKER: marker, "FIFTYONE_DATABASE_URI": _database_uri(),
                "FIFTYONE_MSLITE_USER_CATALOG": str(user_catalog_path()),
                "FIFTYONE_MSLITE_HOME": os.environ["FIFTYONE_MSLITE_HOME"],
                "FIFTYONE_MSLITE_RUNTIME_PYTHON": os.environ.get("FIFTYONE_MSLITE_RUNTIME_PYTHON", "")}
    init = {"log_to_driver": False, "runtime_env": {"env_vars": env_vars}}
    nodes = None
    try:
        if request.param == "local":
            ray.init(address="local", num_cpus=2, object_store_memory=200 * MB, include_dashboard=False,
                     _temp_dir=temp, **init)
            address = ray.get_runtime_context().gcs_address
        else:  # a head that only schedules, and two one-CPU worker nodes: actors on different raylets
            nodes = Cluster(initialize_head=True, head_node_args={
                "num_cpus": 0, "object_store_memory": 80 * MB, "include_dashboard": False, "temp_dir": temp})
            for _ in range(2):
                nodes.add_node(num_cpus=1, object_store_memory=80 * MB)
            nodes.wait_for_nodes()
            address = nodes.address
            ray.init(address=address, **init)
        assert address.startswith("127.0.0.1:")
        yield {"address": address, "marker": marker}
    finally:
        ray.shutdown()
        if nodes is not None:
            nodes.shutdown()
        _wait_gone(_ray_daemons, "Ray processes")
        _wait_gone(_ours(marker), "actors or their MindSpore Lite workers")
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    """24 images: 20 small good ones of assorted sizes and modes, and the 4 bad kinds of `BAD`."""
    d = tmp_path_factory.mktemp("ray_images")
    rng = np.random.default_rng(7)
    out = []
    for i in range(20):
        img = Image.fromarray(rng.integers(0, 256, (24 + i, 40 - i, 3), dtype=np.uint8))
        path = d / (f"good{i}.jpg" if i % 4 else f"good{i}.png")
        (img.convert("L") if i % 5 == 0 else img).save(path)
        out.append(path)
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("not an image\n")
    whole = out[1].read_bytes()
    (d / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    return [*out, d / "missing.jpg", d / "empty.jpg", d / "text.jpg", d / "truncated.jpg"]


@pytest.fixture(scope="module")
def big_files(tmp_path_factory) -> list[Path]:
    """24 samples over 6 large JPEGs (decoded at full size with draft=False): batches that take a while, so an
    actor can be killed while it still has work."""
    d = tmp_path_factory.mktemp("ray_big")
    rng = np.random.default_rng(3)
    paths = []
    for i in range(6):
        small = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
        paths.append(d / f"big{i}.jpg")
        small.resize((2400, 1800), Image.BILINEAR).save(paths[-1], quality=90)
    return [paths[i % 6] for i in range(24)]


def _dataset(paths) -> fo.Dataset:
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=str(p)) for p in paths])
    return ds


def _same_labels(ds: fo.Dataset, a: str, b: str) -> None:
    for x, y in zip(ds.values(a), ds.values(b)):
        assert (x is None) == (y is None)
        if x is not None:
            assert (x.label, x.confidence) == (y.label, y.confidence)
            np.testing.assert_array_equal(x.logits, y.logits)
    assert ds.values(a + "_error") == ds.values(b + "_error")


def test_same_predictions_failures_and_run_record_as_local(cluster, tiny_model, files):
    ds = _dataset(files)
    with load_model(tiny_model, threads=1) as model:
        local = annotate(ds, model, "local", batch_size=4, store_logits=True, progress=False)
        ours = annotate(ds, model, "ray", batch_size=4, store_logits=True, progress=False, engine="ray")
        assert (ours.processed, ours.failed, ours.skipped) == (local.processed, local.failed, 0) == (20, 4, 0)
        _same_labels(ds, "local", "ray")
        errors = {f.sample_id: (f.filepath, f.error) for f in ours.failures}
        assert errors == {f.sample_id: (f.filepath, f.error) for f in local.failures}
        for path, (key, expected) in zip(files[20:], BAD.items()):
            assert path.stem == key and expected in errors[ds[str(path)].id][1]
        config = ds.get_run_info(run_key("ray")).config
        assert config.settings == ds.get_run_info(run_key("local")).config.settings
        again = annotate(ds, model, "ray", batch_size=4, store_logits=True, progress=False, engine="ray")
    assert (again.skipped, again.processed, again.failed) == (20, 0, 4)  # resumes: only the failed are retried
    assert ds.count("ray") == 20 and ds.count("ray_error") == 4


def test_several_models_are_one_pass_each(cluster, tiny_model, files):
    """Ray has no `run_many`: annotate with several models runs them one after the other, each in its own pass
    over the actors, each field labeled as the local engine's single pass labels it."""
    ds = _dataset(files)
    with load_model(tiny_model, threads=1) as first, load_model(tiny_model, threads=1) as second:
        local = annotate(ds, [first, second], ["local_a", "local_b"], batch_size=4, store_logits=True,
                         progress=False)
        ours = annotate(ds, [first, second], ["ray_a", "ray_b"], batch_size=4, store_logits=True, progress=False,
                        engine="ray")
    assert [(s.label_field, s.processed, s.failed) for s in ours] == [("ray_a", 20, 4), ("ray_b", 20, 4)]
    assert [(s.processed, s.failed) for s in local] == [(20, 4), (20, 4)]
    _same_labels(ds, "local_a", "ray_a")
    _same_labels(ds, "local_b", "ray_b")


def test_embeddings_come_back_with_the_labels_as_locally(cluster, tiny_model, files):
    """Actors send only the outputs the driver reads: the label head, plus the embedding output when asked."""
    ds = _dataset(files)
    with load_model(tiny_model, threads=1) as model:
        assert model.classifier.used_outputs(False) != model.classifier.used_outputs(True)
        annotate(ds, model, "local", batch_size=4, embeddings_field="local_emb", progress=False)
        ours = annotate(ds, model, "ray", batch_size=4, embeddings_field="ray_emb", progress=False, engine="ray")
    assert (ours.processed, ours.failed) == (20, 4)
    _same_labels(ds, "local", "ray")
    pairs = list(zip(ds.values("local_emb"), ds.values("ray_emb")))
    assert sum(b is not None for _, b in pairs) == 20
    for a, b in pairs:
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)


def test_an_actor_with_another_model_stops_the_run_with_our_error(cluster, tiny_model, files, monkeypatch):
    """A node whose model file differs from the driver's (here: the driver expects another sha256): the run stops
    with ModelMismatchError naming the node and what to do, not Ray's actor traceback; nothing is written."""
    ds = _dataset(files)
    with load_model(tiny_model, threads=1) as model:
        identity = model.classifier.identity
        monkeypatch.setattr(model.classifier, "identity", lambda: {**identity(), "sha256": "0" * 64})
        with pytest.raises(ModelMismatchError, match=r"^a Ray actor could not start: node \S+ loads 'tiny' with "
                                                     r"other sha256 than the driver: give every node the same"):
            annotate(ds, model, "pred", batch_size=4, progress=False, engine="ray")
    assert ds.count("pred") == 0
    _wait_gone(_pool(cluster["marker"]), "the failed run's actors")


def test_killed_actor_is_retried_nothing_lost_or_doubled(cluster, tiny_model, big_files, monkeypatch):
    ds = _dataset(big_files)
    delivered, killed = [], []
    hand_over = ray_engine._hand_over

    def kill_after_first_block(job, sink, records):
        delivered.extend(records["id"].tolist())
        if not killed:  # SIGKILL an actor while the pool still has batches to run
            killed.extend(_actors(cluster["marker"])[:1])
            os.kill(killed[0], signal.SIGKILL)
        hand_over(job, sink, records)

    monkeypatch.setattr(ray_engine, "_hand_over", kill_after_first_block)
    with load_model(tiny_model, threads=1) as model:
        summary = annotate(ds, model, "ray", batch_size=4, draft=False, progress=False, engine="ray")
        monkeypatch.undo()
        annotate(ds, model, "local", batch_size=4, draft=False, progress=False)
    assert len(killed) == 1 and not Path(f"/proc/{killed[0]}").exists()
    assert sorted(delivered) == sorted(ds.values("id"))  # every sample came back exactly once
    assert summary.processed == 24 and not summary.failures
    assert ds.count("ray") == 24 and ds.count("ray_run") == 24
    _same_labels(ds, "local", "ray")


def test_ctrl_c_keeps_written_predictions_stops_actors_and_resumes(cluster, tiny_model, files, monkeypatch):
    ds = _dataset(files[:20] * 2)
    model = load_model(tiny_model, threads=1)
    to_labels, calls = model.to_labels, []

    def interrupted(predictions):
        calls.append(1)
        if len(calls) == 3:  # Ctrl-C reaches the driver while it turns the third block into labels
            raise KeyboardInterrupt
        return to_labels(predictions)

    monkeypatch.setattr(model, "to_labels", interrupted)
    with pytest.raises(KeyboardInterrupt):
        annotate(ds, model, "pred", batch_size=4, progress=False, engine="ray")
    saved = ds.count("pred")
    assert 8 <= saved < 40 and saved % 4 == 0  # whole blocks only
    _wait_gone(_pool(cluster["marker"]), "the interrupted run's actors")
    monkeypatch.undo()
    resumed = annotate(ds, model, "pred", batch_size=4, progress=False, engine="ray")
    assert (resumed.skipped, resumed.processed) == (saved, 40 - saved) and ds.count("pred") == 40
    annotate(ds, model, "full", batch_size=4, progress=False)
    assert ds.values("pred.label") == ds.values("full.label")
    model.close()


def test_cli_joins_the_cluster_by_address(cluster, tiny_model, files):
    """The example command of docs/scale-out.md, as a separate driver process joining the running cluster."""
    ds = _dataset(files)
    ds.persistent = True
    try:
        run = cli("annotate", "--dataset", ds.name, "--model", tiny_model, "--field", "pred", "--batch-size", "4",
                  "--engine", "ray", "--engine-option", f"address={cluster['address']}", "--engine-option", "actors=2",
                  "--threads", "1", "--json",
                  FIFTYONE_DATABASE_URI=_database_uri())
        assert run.returncode == 1, run.stderr  # 1: some samples failed
        summary = json.loads(run.stdout)
        assert (summary["processed"], summary["failed"]) == (20, 4), run.stderr
        ds.reload()
        assert ds.count("pred") == 20 and ds.count("pred_error") == 4
    finally:
        ds.delete()


def test_engine_options_are_checked_before_any_work(tiny_model, files, monkeypatch):
    ds = _dataset(files[:2])
    with pytest.raises(ValueError, match=r"engine must be 'local'(, | or )'ray'.*got 'spark'"):
        annotate(ds, tiny_model, "pred", engine="spark", progress=False)
    with pytest.raises(ValueError, match="options of engine='ray'"), pytest.warns(DeprecationWarning):
        annotate(ds, tiny_model, "pred", actors=2, progress=False)
    with pytest.raises(ValueError, match=r"engine='ray' option actors=0: Input should be greater than 0"):
        annotate(ds, tiny_model, "pred", engine="ray", engine_options={"actors": 0}, progress=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(EngineUnavailableError, match=r"pip install 'fiftyone-mslite\[ray\]'"):
        annotate(ds, tiny_model, "pred", engine="ray", progress=False)
    assert not ds.has_sample_field("pred") and not ds.list_runs()
