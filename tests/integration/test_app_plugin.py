"""The packaged FiftyOne App plugin: installed into the (isolated) plugins dir, discovered, and each operator run
in-process through FiftyOne's own executor, immediately and delegated."""
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PLUGIN = "@fiftyone-mslite/mslite"
APPLY, EVALUATE, EVALUATE_ML, EMBED = (f"{PLUGIN}/{op}" for op in ("apply_model", "evaluate", "evaluate_multilabel",
                                                                     "compute_embeddings"))
CLASSES = ["alpha", "beta", "gamma", "delta", "epsilon"]


@pytest.fixture(scope="module")
def plugin():
    from fiftyone_mslite.integration.zoo import install_plugin, plugin_dir

    link = install_plugin()
    assert install_plugin() == link  # idempotent
    assert link.resolve() == plugin_dir()
    return link


@pytest.fixture()
def dataset(tmp_path, tiny_model):
    import fiftyone as fo

    rng = np.random.default_rng(1)
    samples = []
    for i in range(10):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (16, 20, 3), dtype=np.uint8)).save(path)
        samples.append(fo.Sample(filepath=str(path), ground_truth=fo.Classification(label=CLASSES[i % 5])))
    ds = fo.Dataset()
    ds.add_samples(samples)
    yield ds
    ds.delete()


def run(uri: str, dataset, params: dict, view=None, **ctx):
    import fiftyone.operators as foo

    result = foo.execute_operator(uri, ctx={"dataset": dataset.name, "view": view, "params": params, **ctx})
    assert result.error is None, result.error_message
    return result


def run_delegated(uri: str, dataset, params: dict, before=None):
    """Queue `uri` as a delegated operation, check nothing ran yet (`before(dataset)`), execute the queue as a
    delegated-operation worker would, and return the finished operation (its run must have completed)."""
    from fiftyone.operators.delegated import DelegatedOperationService

    queued = run(uri, dataset, params, request_delegation=True)
    assert queued.delegated and (before is None or before(dataset))
    service = DelegatedOperationService()
    [done] = service.execute_queued_operations(operator=uri, dataset_name=dataset.name)
    assert done.error is None, done.error
    op = service.get(queued.result["id"])
    assert op.run_state == "completed"
    return op


def refused(uri: str, dataset, params: dict) -> str:
    """Run an operator that must fail; its error with the traceback (all that the browser can be shown)."""
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionError

    with pytest.raises(ExecutionError) as info:
        foo.execute_operator(uri, ctx={"dataset": dataset.name, "params": params})
    return str(info.value)


def allow_dirs(monkeypatch, *dirs: Path) -> None:
    monkeypatch.setenv("FIFTYONE_MSLITE_APP_ALLOWED_DIRS", os.pathsep.join(str(d) for d in dirs))


def triggered(result) -> dict:
    return {r.operator_uri: r.params for r in result.executor._requests}


def stages(serialized: list[dict]) -> list:
    return [(stage["_cls"], stage["kwargs"]) for stage in serialized]


def test_fiftyone_discovers_the_plugin(plugin):
    import fiftyone.operators as foo
    import fiftyone.plugins as fop

    assert PLUGIN in [p.name for p in fop.list_plugins()]
    uris = {op.uri for op in foo.list_operators(builtin=False)}
    assert {APPLY, EVALUATE, EVALUATE_ML, EMBED} <= uris


def test_apply_model_form_lists_the_catalog(plugin, dataset, tiny_model):
    import fiftyone.operators as foo

    from fiftyone_mslite.catalog.registry import catalog

    inputs = foo.get_operator(APPLY).resolve_input(_ctx(dataset, {}))
    choices = [c.value for c in inputs.type.properties["model"].view.choices]
    assert tiny_model in choices and set(choices) == set(catalog().models)


def _ctx(dataset, params):
    from fiftyone.operators.executor import ExecutionContext

    return ExecutionContext(request_params={"dataset_name": dataset.name, "params": params})


def test_apply_model_on_the_current_view(plugin, dataset, tiny_model):
    result = run(APPLY, dataset, {"model": tiny_model, "label_field": "preds", "batch_size": 2,
                                  "store_logits": True}, view=dataset.limit(6))
    preds = dataset.values("preds")
    assert all(p is not None and p.label in CLASSES and len(p.logits) == 5 for p in preds[:6])
    assert preds[6:] == [None] * 4  # only the view the App was showing
    assert "reload_dataset" in triggered(result)


def test_apply_model_from_a_file(plugin, dataset, tiny_model, monkeypatch):
    from fiftyone_mslite.catalog.model_files import model_file
    from fiftyone_mslite.catalog.registry import catalog

    entry = catalog().model(tiny_model)
    allow_dirs(monkeypatch, model_file(entry).path.parent)  # model files need an allow-list
    params = {"source": "FILE", "model_path": str(model_file(entry).path), "labels": entry.labels,
              "label_field": "file_preds", "confidence_thresh": 0.0}
    run(APPLY, dataset, params)
    assert all(p.label in CLASSES for p in dataset.values("file_preds"))


def test_apply_model_delegated_reports_progress(plugin, dataset, tiny_model):
    op = run_delegated(APPLY, dataset, {"model": tiny_model, "label_field": "delegated", "batch_size": 1},
                       before=lambda ds: not ds.has_field("delegated"))
    assert op.status.progress == 1.0 and op.status.label == "10/10 samples"
    assert dataset.count("delegated") == len(dataset)


@pytest.fixture()
def one_run(monkeypatch, dataset):
    """Counts the operator's `annotate` calls and, at each progress report it makes, tries to claim the field
    the way a second writer would: (calls, [(done, total, refused)])."""
    from fiftyone_mslite.errors import FieldLockedError
    from fiftyone_mslite.integration import annotation
    from fiftyone_mslite.integration.locks import FieldLock

    annotate, calls, reports = annotation.annotate, [], []

    def counted(samples, model, label_field, **kwargs):
        calls.append(label_field)
        on_progress = kwargs.pop("on_progress")

        def second_writer(done: int, total: int) -> None:
            lock = FieldLock(dataset.name, label_field)
            try:
                lock.acquire()
            except FieldLockedError:
                reports.append((done, total, True))
            else:
                lock.release()
                reports.append((done, total, False))
            on_progress(done, total)

        return annotate(samples, model, label_field, on_progress=second_writer, **kwargs)

    monkeypatch.setattr(annotation, "annotate", counted)
    return calls, reports


@pytest.mark.parametrize("delegated", [False, True])
def test_apply_model_is_one_annotate_run_holding_the_field(plugin, dataset, tiny_model, one_run, monkeypatch,
                                                           delegated):
    """One `annotate` per operator run: the field's lock is held at every progress report (a second writer is
    refused each time), and progress reaches the App (immediate) or the run's record (delegated) more than once."""
    from fiftyone.operators.executor import ExecutionContext

    calls, reports = one_run
    recorded, set_progress = [], ExecutionContext.set_progress

    def record(ctx, progress=None, label=None):
        recorded.append((progress, label))
        set_progress(ctx, progress=progress, label=label)

    monkeypatch.setattr(ExecutionContext, "set_progress", record)
    params = {"model": tiny_model, "label_field": "once", "batch_size": 2}
    if delegated:
        run_delegated(APPLY, dataset, params)
        shown = recorded
    else:
        result = run(APPLY, dataset, params)
        shown = [(r.params["progress"], r.params["label"]) for r in result.executor._requests
                 if r.operator_uri == "set_progress"]
    assert calls == ["once"]
    assert [(done, total) for done, total, _ in reports] == [(0, 10), (2, 10), (4, 10), (6, 10), (8, 10), (10, 10)]
    assert all(refused for _, _, refused in reports)
    assert shown == [(done / 10, f"{done}/10 samples") for done in (0, 2, 4, 6, 8, 10)]
    assert dataset.count("once") == len(dataset)


def test_compute_embeddings_is_one_annotate_run_holding_the_field(plugin, dataset, tiny_model, one_run):
    from fiftyone_mslite.integration.brain import visualization_method

    params = {"model": tiny_model, "embeddings_field": "emb", "label_field": "preds", "brain_key": "emb_map",
              "batch_size": 5, "uniqueness": False}
    result = run(EMBED, dataset, params)
    calls, reports = one_run
    assert calls == ["preds"] and reports == [(0, 10, True), (5, 10, True), (10, 10, True)]
    shown = [(r.params["progress"], r.params["label"]) for r in result.executor._requests
             if r.operator_uri == "set_progress"]
    assert shown == [(0.0, "embeddings 0/10 samples"), (0.4, "embeddings 5/10 samples"),
                     (0.8, "embeddings 10/10 samples"), (0.8, f"2-D map ({visualization_method()})"),
                     (1.0, "10 points under 'emb_map'")]


def test_evaluate_opens_the_mistakes_view(plugin, dataset, tiny_model):
    from fiftyone_mslite.catalog.registry import catalog

    run(APPLY, dataset, {"model": tiny_model, "label_field": "predictions", "store_logits": True})
    result = run(EVALUATE, dataset, {"pred_field": "predictions", "gt_field": "ground_truth", "eval_key": "ev",
                                     "top_k": 2, "classes": catalog().model(tiny_model).labels})
    summary = result.result["summary"]
    assert "ev" in dataset.list_evaluations() and "ev_top2" in dataset.list_evaluations()
    assert summary["num_samples"] == 10 and summary["top_k_accuracy"] >= summary["accuracy"]
    assert "ev-mistakes" in dataset.list_saved_views()
    assert len(dataset.load_saved_view("ev-mistakes")) == summary["num_mistakes"]
    assert stages(triggered(result)["set_view"]["view"]) == stages(dataset.load_saved_view("ev-mistakes")._serialize())
    assert result.result["headline"]["mistakes_view"] == "ev-mistakes"


def test_evaluate_multilabel(plugin, dataset, tiny_model):
    import fiftyone as fo

    dataset.set_values("tags_gt", [fo.Classifications(classifications=[fo.Classification(label=c)
                                                                        for c in CLASSES[: 1 + i % 3]])
                                   for i in range(len(dataset))])
    run(APPLY, dataset, {"model": tiny_model, "label_field": "predictions"})
    result = run(EVALUATE_ML, dataset, {"pred_field": "predictions", "gt_field": "tags_gt", "eval_key": "ml"})
    summary = result.result["summary"]
    assert "ml" in dataset.list_runs()
    assert summary["tp"] + summary["fn"] == sum(1 + i % 3 for i in range(len(dataset)))
    assert stages(triggered(result)["set_view"]["view"]) == stages(dataset.load_saved_view("ml-errors")._serialize())


# ----------------------------------------------------------------------------------- embeddings and FiftyOne Brain


def test_compute_embeddings_and_visualization(plugin, dataset, tiny_model):
    params = {"model": tiny_model, "embeddings_field": "emb", "label_field": "preds", "color_field": "ground_truth",
              "brain_key": "emb_map", "batch_size": 3}
    result = run(EMBED, dataset, params, view=dataset.limit(8))
    assert [len(v) for v in dataset.values("emb")[:8]] == [4] * 8  # TinyNet's pooled features
    assert dataset.values("emb")[8:] == [None] * 2  # only the view the App was showing
    assert all(p.label in CLASSES and len(p.logits) == 5 for p in dataset.values("preds")[:8])  # same inference
    assert "emb_map" in dataset.list_brain_runs()
    info = dataset.get_brain_info("emb_map")
    assert info.config.embeddings_field == "emb" and info.config.method in ("umap", "tsne")
    assert len(dataset.load_brain_results("emb_map").points) == 8
    assert "emb-unique" in dataset.list_saved_views() and dataset.has_field("emb_uniqueness")
    assert len(dataset.load_saved_view("emb-unique")) == 8
    sent = triggered(result)
    shown = sent["show_output"]["results"]
    assert shown["brain_key"] == "emb_map" and shown["views"] == {"uniqueness": "emb-unique"}
    assert shown["computed"] == 8 and shown["num_points"] == 8 and shown["color_field"] == "ground_truth"
    assert "emb_map" in sent["notify"]["message"] and "reload_dataset" in sent
    # every sample of the view has embeddings now: no model needed, nothing recomputed, the map is redone
    again = run(EMBED, dataset, {"embeddings_field": "emb", "brain_key": "emb_map", "uniqueness": False},
                view=dataset.limit(8))
    assert triggered(again)["show_output"]["results"]["computed"] == 0
    assert sorted(dataset.list_brain_runs()) == ["emb_map", "emb_uniqueness"]  # the map replaced, not added


def test_compute_embeddings_without_predictions_uses_compute_embeddings(plugin, dataset, tiny_model):
    from fiftyone_mslite.integration.model import load_model

    run(EMBED, dataset, {"model": tiny_model, "embeddings_field": "emb", "brain_key": "map", "uniqueness": False})
    assert not dataset.has_field("predictions") and "map" in dataset.list_brain_runs()
    assert "emb-unique" not in dataset.list_saved_views()
    with load_model(tiny_model) as model:
        first = model.embed(np.asarray(Image.open(dataset.first().filepath).convert("RGB")))
    np.testing.assert_allclose(dataset.first()["emb"], first, rtol=1e-5, atol=1e-6)


def test_compute_embeddings_refusals(plugin, dataset, tiny_model):
    message = refused(EMBED, dataset, {"embeddings_field": "emb", "brain_key": "map"})
    assert "Path: model" in message and "Required" in message  # the form requires one: no sample has 'emb'
    message = refused(EMBED, dataset, {"model": "/etc/passwd", "embeddings_field": "emb", "brain_key": "map"})
    assert "Invalid enum value" in message or "not in the catalog" in message
    dataset.set_values("emb", [np.zeros(7) for _ in range(len(dataset))])  # another model's vectors
    message = refused(EMBED, dataset, {"model": tiny_model, "embeddings_field": "emb", "brain_key": "map",
                                       "recompute": True})
    assert "holds embeddings of size 7" in message
    assert not dataset.list_brain_runs()


def test_compute_embeddings_delegated_reports_progress(plugin, dataset, tiny_model):
    params = {"model": tiny_model, "embeddings_field": "emb", "label_field": "preds", "brain_key": "emb_map",
              "batch_size": 2}
    op = run_delegated(EMBED, dataset, params, before=lambda ds: not ds.has_field("emb"))
    assert op.status.progress == 1.0 and op.status.label == "10 points under 'emb_map'"
    assert op.result.result["brain_key"] == "emb_map" and op.result.result["views"] == {"uniqueness": "emb-unique"}
    dataset.reload()
    assert dataset.count("emb") == len(dataset) and dataset.count("preds") == len(dataset)
    assert "emb_map" in dataset.list_brain_runs() and "emb-unique" in dataset.list_saved_views()


BRAIN_VIEWS = {"mistakenness": "predictions-likely-label-mistakes", "hardness": "predictions-hardest",
               "uniqueness": "predictions-unique"}
BRAIN_KEYS = {"predictions_mistakenness", "predictions_hardness", "predictions_uniqueness", "predictions_viz",
              "predictions_sim"}


@pytest.fixture()
def imagenet(imagenet_dir, tv_mobilenet, tmp_path):
    """12 real ImageNet sample images with their true class (the Brain's 2-D map needs real-sized embeddings)."""
    from fiftyone_mslite.integration.datasets import import_directory

    files = sorted(imagenet_dir.glob("*.JPEG"))
    for f in files[:: len(files) // 12][:12]:
        (tmp_path / f.name).symlink_to(f)
    ds = import_directory("mslite-app-brain", tmp_path, labels_from="filename-synset", overwrite=True)
    yield ds
    ds.delete()


@pytest.mark.shared
def test_evaluate_runs_the_brain(plugin, imagenet, tv_mobilenet):
    dataset = imagenet
    run(EMBED, dataset, {"model": tv_mobilenet, "embeddings_field": "emb", "label_field": "predictions",
                         "brain_key": "emb_viz", "uniqueness": False})
    result = run(EVALUATE, dataset, {"pred_field": "predictions", "gt_field": "ground_truth", "eval_key": "ev",
                                     "run_brain": True})
    brain = result.result["summary"]["brain"]
    assert brain["embeddings_field"] == "emb"  # found from the annotate run that wrote the predictions
    assert brain["views"] == BRAIN_VIEWS
    assert BRAIN_KEYS <= set(dataset.list_brain_runs())
    for field in ("predictions_mistakenness", "predictions_hardness", "predictions_uniqueness"):
        assert dataset.count(field) == len(dataset), field
    assert len(dataset.load_brain_results("predictions_viz").points) == len(dataset)
    assert set(BRAIN_VIEWS.values()) | {"ev-mistakes"} <= set(dataset.list_saved_views())
    headline = result.result["headline"]
    assert headline["brain_views"] == ", ".join(BRAIN_VIEWS.values())
    assert headline["likely_label_mistakes"] == str(brain["likely_label_mistakes"])
    assert stages(triggered(result)["set_view"]["view"]) == stages(dataset.load_saved_view("ev-mistakes")._serialize())


@pytest.mark.shared
def test_evaluate_brain_delegated(plugin, imagenet, tv_mobilenet):
    dataset = imagenet
    run(APPLY, dataset, {"model": tv_mobilenet, "label_field": "predictions", "store_logits": True})
    run(EMBED, dataset, {"model": tv_mobilenet, "embeddings_field": "emb", "brain_key": "emb_viz",
                         "uniqueness": False})  # embeddings only: the predictions' run wrote none
    op = run_delegated(EVALUATE, dataset, {"pred_field": "predictions", "gt_field": "ground_truth", "eval_key": "ev",
                                           "run_brain": True, "embeddings_field": "emb"})
    assert op.result.result["summary"]["brain"]["views"] == BRAIN_VIEWS
    dataset.reload()
    assert BRAIN_KEYS <= set(dataset.list_brain_runs())
    assert set(BRAIN_VIEWS.values()) | {"ev-mistakes"} <= set(dataset.list_saved_views())


def test_evaluate_brain_without_logits_says_to_store_them(plugin, dataset, tiny_model):
    run(APPLY, dataset, {"model": tiny_model, "label_field": "predictions"})
    message = refused(EVALUATE, dataset, {"pred_field": "predictions", "gt_field": "ground_truth", "eval_key": "ev",
                                          "run_brain": True})
    assert "store_logits" in message


# ----------------------------------------------------------------------------------- browser-supplied paths and URLs


@pytest.fixture()
def allowed_model(tiny_model, monkeypatch) -> str:
    """The tiny model's converted file, in the only directory the server allows."""
    from fiftyone_mslite.catalog.model_files import model_file
    from fiftyone_mslite.catalog.registry import catalog

    path = model_file(catalog().model(tiny_model)).path
    allow_dirs(monkeypatch, path.parent)
    return str(path)


def same_refusal(first: str, second: str, a: str, b: str) -> bool:
    """Whether two refusals read alike once the path each one echoes is blanked out."""
    return first.replace(repr(a), "PATH") == second.replace(repr(b), "PATH")


def test_model_and_label_files_need_an_allowed_directory(plugin, dataset, tiny_model, monkeypatch):
    monkeypatch.delenv("FIFTYONE_MSLITE_APP_ALLOWED_DIRS", raising=False)
    message = refused(APPLY, dataset, {"source": "FILE", "model_path": "/etc/passwd", "labels": "imagenet-1000",
                                       "label_field": "x"})
    assert "FIFTYONE_MSLITE_APP_ALLOWED_DIRS" in message
    # a catalog model given by path is no way round it (FiftyOne's form check or ours refuses it)
    message = refused(APPLY, dataset, {"model": "/etc/passwd", "label_field": "x"})
    assert "Invalid enum value" in message or "not in the catalog" in message
    assert not dataset.has_field("x")


def test_model_path_cannot_probe_for_files(plugin, dataset, allowed_model, tmp_path):
    real, missing = "/etc/passwd", "/etc/no-such-file-here"
    params = {"source": "FILE", "labels": "imagenet-1000", "label_field": "probe"}
    first = refused(APPLY, dataset, {**params, "model_path": real})
    second = refused(APPLY, dataset, {**params, "model_path": missing})
    assert same_refusal(first, second, real, missing), (first, second)
    escape = str(Path(allowed_model).parent / ".." / ".." / "etc" / "passwd")  # '..' out of an allowed dir
    assert "FIFTYONE_MSLITE_APP_ALLOWED_DIRS" in refused(APPLY, dataset, {**params, "model_path": escape})
    link = Path(allowed_model).parent / "link.ms"  # a symlink inside pointing out
    link.symlink_to("/etc/passwd")
    try:
        assert "FIFTYONE_MSLITE_APP_ALLOWED_DIRS" in refused(APPLY, dataset, {**params, "model_path": str(link)})
    finally:
        link.unlink()


def test_label_files_outside_allowed_dirs_are_refused_without_leaking(plugin, dataset, allowed_model, tmp_path):
    """A server `.env` once became the predicted labels, and /etc/passwd leaked its line count."""
    env = tmp_path / ".env"
    env.write_text("DATABASE_PASSWORD=hunter2\nAPI_TOKEN=abc123\nC=3\nD=4\nE=5\n")  # 5 lines, as many as classes
    params = {"source": "FILE", "model_path": allowed_model, "label_field": "leak"}
    messages = {path: refused(APPLY, dataset, {**params, "labels": path})
                for path in (str(env), "/etc/passwd", "/etc/no-such-labels")}
    for message in messages.values():
        assert "hunter2" not in message and "DATABASE_PASSWORD" not in message and "root:x:0" not in message
        assert "FIFTYONE_MSLITE_APP_ALLOWED_DIRS" in message
    assert same_refusal(messages["/etc/passwd"], messages["/etc/no-such-labels"], "/etc/passwd",
                        "/etc/no-such-labels")
    assert not dataset.has_field("leak")
    # evaluation's `classes` goes through the same check
    run(APPLY, dataset, {"model": "tiny", "label_field": "predictions", "store_logits": True})
    message = refused(EVALUATE, dataset, {"pred_field": "predictions", "gt_field": "ground_truth", "eval_key": "e",
                                          "top_k": 2, "classes": str(env)})
    assert "hunter2" not in message and "FIFTYONE_MSLITE_APP_ALLOWED_DIRS" in message


class _Labels(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        body = "\n".join(CLASSES).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def labels_server():
    """A label file on 127.0.0.1, standing in for an internal address the App must not be made to fetch."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Labels)
    _Labels.hits = 0
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/labels.txt"
    httpd.shutdown()
    httpd.server_close()


def test_label_urls_are_fetched_only_when_the_operator_enables_them(plugin, dataset, allowed_model, labels_server,
                                                                    monkeypatch):
    monkeypatch.delenv("FIFTYONE_MSLITE_APP_ALLOW_URLS", raising=False)
    params = {"source": "FILE", "model_path": allowed_model, "labels": labels_server, "label_field": "by_url"}
    assert "FIFTYONE_MSLITE_APP_ALLOW_URLS" in refused(APPLY, dataset, params)
    message = refused(EVALUATE, dataset, {"pred_field": "ground_truth", "gt_field": "ground_truth",
                                          "eval_key": "u", "top_k": 2, "classes": labels_server})
    assert "FIFTYONE_MSLITE_APP_ALLOW_URLS" in message
    assert _Labels.hits == 0  # the server never made the request
    monkeypatch.setenv("FIFTYONE_MSLITE_APP_ALLOW_URLS", "1")
    run(APPLY, dataset, params)
    assert _Labels.hits == 1 and all(p.label in CLASSES for p in dataset.values("by_url"))
