"""The App's reliability panel, run in-process through FiftyOne's own executor: it draws the calibration that
`evaluate` recorded and a click on a bin opens that bin's samples as a view."""
import fiftyone as fo
import numpy as np
import pytest

from fiftyone_mslite.integration.confidence import bin_view
from fiftyone_mslite.integration.evaluation import evaluate

PANEL = "@fiftyone-mslite/mslite/reliability_panel"


@pytest.fixture(scope="module")
def plugin():
    from fiftyone_mslite.integration.zoo import install_plugin

    return install_plugin()


@pytest.fixture
def evaluated():
    rng = np.random.default_rng(2)
    conf = rng.uniform(0.2, 1.0, 60)
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=f"/img/{i}.jpg", ground_truth=fo.Classification(label="a"),
                              pred=fo.Classification(label="a" if rng.random() < c else "b", confidence=float(c)))
                    for i, c in enumerate(conf)])
    summary = evaluate(ds, "pred", eval_key="ev")
    yield ds, summary
    ds.delete()


def _panel(dataset, method: str, state: dict | None = None, **params):
    import fiftyone.operators as foo

    result = foo.execute_operator(PANEL, ctx={"dataset": dataset.name, "params": {
        "panel_id": "p1", "__method__": method, "panel_state": state or {}, **params}})
    assert result.error is None, result.error_message
    return result


def _ops(result) -> dict:
    """The App operations the panel triggered; its state and data patches merged into one of each."""
    ops: dict = {}
    for request in result.executor._requests:
        if request.operator_uri in ("patch_panel_state", "patch_panel_data"):
            key = "state" if request.operator_uri.endswith("state") else "data"
            ops.setdefault(request.operator_uri, {}).update(request.params[key])
        else:
            ops[request.operator_uri] = request.params
    return ops


def _stages(serialized: list[dict]) -> list:
    return [(stage["_cls"], stage["kwargs"]) for stage in serialized]


def test_panel_draws_the_recorded_calibration_and_opens_a_bin(plugin, evaluated):
    ds, summary = evaluated
    ops = _ops(_panel(ds, "on_load"))
    state = ops["patch_panel_state"]
    assert state["run_key"] == "ev_calibration" and state["pred_field"] == "pred"
    assert f"ECE **{summary.ece:.4f}**" in state["headline"]
    assert state["headline"] in str(ops["show_panel_output"]["output"])  # rendered
    bars = ops["patch_panel_data"]["reliability"][0]
    table = [b for b in summary.calibration["reliability"] if b["count"]]
    assert bars["y"] == pytest.approx([b["accuracy"] for b in table])

    clicked = _ops(_panel(ds, "on_click", state, idx=1, trace_idx=0))
    lower, upper = state["bins"][1]
    expected = bin_view(ds, "pred", lower, upper)
    assert _stages(clicked["set_view"]["view"]) == _stages(expected._serialize())
    assert len(expected) == table[1]["count"]
    assert "set_view" not in _ops(_panel(ds, "on_click", state, idx=0, trace_idx=2))  # the diagonal is no bin


def test_evaluate_operator_reports_the_calibration(plugin, evaluated):
    import fiftyone.operators as foo

    ds, summary = evaluated
    result = foo.execute_operator("@fiftyone-mslite/mslite/evaluate", ctx={"dataset": ds.name, "params": {
        "pred_field": "pred", "gt_field": "ground_truth", "eval_key": "app"}})
    assert result.error is None, result.error_message
    assert result.result["summary"]["ece"] == pytest.approx(summary.ece)  # default 15 bins, as the panel reads
    assert result.result["headline"]["ece"] == f"{summary.ece:.3f}" and "app_calibration" in ds.list_runs()
