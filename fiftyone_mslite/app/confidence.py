"""The App's reliability diagram: a Python panel showing how far a prediction field's confidence can be trusted.

`evaluate` (Python, CLI, or the App's "evaluate predictions" operator) records each field's calibration as the
run `<eval_key>_calibration`; this panel draws it (accuracy vs mean confidence per bin, sample counts, the
diagonal of perfect calibration) with ECE, MCE, Brier and NLL, and a click on a bin opens the samples it
holds as a view, the way FiftyOne's confusion matrix links a cell to its samples (docs/calibration.md).
"""
from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

RUN_METHOD = "confidence_calibration"  # integration/confidence.py `record`


def calibration_runs(dataset) -> list[str]:
    """Keys of the calibration runs `evaluate` recorded on `dataset`, oldest first."""
    keys = [k for k in dataset.list_runs() if getattr(dataset.get_run_info(k).config, "method", None) == RUN_METHOD]
    return sorted(keys, key=lambda k: dataset.get_run_info(k).timestamp)


def _headline(report: dict, pred_field: str) -> str:
    extra = "".join(f", {name} **{report[key]:.4f}**" for key, name in (("brier", "Brier"), ("nll", "NLL"))
                    if report.get(key) is not None)
    return (f"`{pred_field}`: ECE **{report['ece']:.4f}**, MCE **{report['mce']:.4f}** ({report['bins']} "
            f"equal-{report['binning']} bins, {report['num_samples']} samples){extra}. Click a bar to open its "
            "samples.")


def _traces(report: dict) -> list[dict]:
    rows = [b for b in report["reliability"] if b["count"]]
    mids = [(b["lower"] + b["upper"]) / 2 for b in rows]
    widths = [b["upper"] - b["lower"] for b in rows]
    counts = [f"{b['count']} samples, confidence {b['confidence']:.3f}" for b in rows]
    return [
        {"type": "bar", "name": "accuracy", "x": mids, "y": [b["accuracy"] for b in rows], "width": widths,
         "text": counts, "hovertemplate": "accuracy %{y:.3f}<br>%{text}<extra></extra>"},
        {"type": "scatter", "mode": "markers", "name": "mean confidence", "x": mids,
         "y": [b["confidence"] for b in rows], "hoverinfo": "skip"},
        {"type": "scatter", "mode": "lines", "name": "perfect calibration", "x": [0, 1], "y": [0, 1],
         "line": {"dash": "dash"}, "hoverinfo": "skip"},
    ]


class ReliabilityPanel(foo.Panel):
    @property
    def config(self) -> foo.PanelConfig:
        return foo.PanelConfig(name="reliability_panel", label="MindSpore Lite: reliability",
                               help_markdown="Accuracy vs confidence per bin, from `evaluate`; click a bin to "
                                             "see its samples")

    def on_load(self, ctx) -> None:
        keys = calibration_runs(ctx.dataset)
        key = ctx.panel.state.run_key
        self._show(ctx, key if key in keys else (keys[-1] if keys else None))

    def _show(self, ctx, key: str | None) -> None:
        ctx.panel.state.run_key = key
        if key is None:
            ctx.panel.state.bins = None
            return
        report = ctx.dataset.load_run_results(key).report
        pred_field = ctx.dataset.get_run_info(key).config.pred_field
        ctx.panel.state.pred_field = pred_field
        ctx.panel.state.headline = _headline(report, pred_field)
        ctx.panel.state.bins = [[b["lower"], b["upper"]] for b in report["reliability"] if b["count"]]
        ctx.panel.state.last_upper = report["reliability"][-1]["upper"]
        ctx.panel.data.reliability = _traces(report)

    def on_change_run(self, ctx) -> None:
        self._show(ctx, ctx.params.get("value"))

    def on_click(self, ctx) -> None:
        """Open the samples of the clicked bin (the bars are the first trace; other traces are not bins)."""
        from fiftyone_mslite.integration.confidence import bin_view

        bins, index = ctx.panel.state.bins or [], ctx.params.get("idx")
        if ctx.params.get("trace_idx", 0) != 0 or index is None or not 0 <= int(index) < len(bins):
            return
        lower, upper = bins[int(index)]
        ctx.ops.set_view(view=bin_view(ctx.dataset, ctx.panel.state.pred_field, lower, upper,
                                       last=upper == ctx.panel.state.last_upper))

    def render(self, ctx) -> types.Property:
        panel = types.Object()
        keys = calibration_runs(ctx.dataset)
        if not keys:
            panel.md("No calibration yet: evaluate a prediction field (the *evaluate predictions* operator, "
                     "`fiftyone-mslite evaluate`, or `evaluate()` in Python) with stored confidences.",
                     name="empty")
            return types.Property(panel, view=types.GridView(orientation="vertical"))
        choices = types.DropdownView()
        for key in keys:
            choices.add_choice(key, label=key)
        panel.enum("run_key", choices.values(), default=ctx.panel.state.run_key, view=choices,
                   label="Calibration run", on_change=self.on_change_run)
        panel.md(ctx.panel.state.headline or "", name="headline")
        panel.plot("reliability", on_click=self.on_click, layout={
            "xaxis": {"title": "confidence", "range": [0, 1]}, "yaxis": {"title": "accuracy", "range": [0, 1]},
            "bargap": 0.02, "showlegend": True})
        return types.Property(panel, view=types.GridView(orientation="vertical"))
