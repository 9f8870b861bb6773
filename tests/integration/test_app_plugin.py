"""The packaged FiftyOne App plugin: installed into the (isolated) plugins dir, discovered, and each operator run
in-process through FiftyOne's own executor, immediately and delegated."""
import numpy as np
import pytest
from PIL import Image

PLUGIN = "@fiftyone-mslite/mslite"
APPLY, EVALUATE, EVALUATE_ML = (f"{PLUGIN}/{op}" for op in ("apply_model", "evaluate", "evaluate_multilabel"))
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


def triggered(result) -> dict:
    return {r.operator_uri: r.params for r in result.executor._requests}


def stages(serialized: list[dict]) -> list:
    return [(stage["_cls"], stage["kwargs"]) for stage in serialized]


def test_fiftyone_discovers_the_plugin(plugin):
    import fiftyone.operators as foo
    import fiftyone.plugins as fop

    assert PLUGIN in [p.name for p in fop.list_plugins()]
    uris = {op.uri for op in foo.list_operators(builtin=False)}
    assert {APPLY, EVALUATE, EVALUATE_ML} <= uris


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


def test_apply_model_from_a_file(plugin, dataset, tiny_model):
    from fiftyone_mslite.catalog.registry import catalog
    from fiftyone_mslite.catalog.store import model_file

    entry = catalog().model(tiny_model)
    params = {"source": "FILE", "model_path": str(model_file(entry).path), "labels": entry.labels,
              "label_field": "file_preds", "confidence_thresh": 0.0}
    run(APPLY, dataset, params)
    assert all(p.label in CLASSES for p in dataset.values("file_preds"))


def test_apply_model_delegated_reports_progress(plugin, dataset, tiny_model):
    from fiftyone.operators.delegated import DelegatedOperationService

    queued = run(APPLY, dataset, {"model": tiny_model, "label_field": "delegated", "batch_size": 1},
                 request_delegation=True)
    assert queued.delegated and not dataset.has_field("delegated")
    service = DelegatedOperationService()
    [done] = service.execute_queued_operations(operator=APPLY, dataset_name=dataset.name)
    assert done.error is None, done.error
    op = service.get(queued.result["id"])
    assert op.run_state == "completed"
    assert op.status.progress == 1.0 and op.status.label == "10/10 samples"
    assert dataset.count("delegated") == len(dataset)


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
