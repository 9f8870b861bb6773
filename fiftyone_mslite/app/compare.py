"""The App's *Compare two models* operator: `fiftyone_mslite.integration.compare` on the current view.

Picks two prediction fields and the ground truth, registers both evaluations (the Model Evaluation panel's compare
mode then shows them side by side) and opens `compare-flipped-to-wrong`, the samples the second model now gets
wrong, most changed first.
"""
from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_mslite.app.forms import SINGLE, field_choice, label_fields, shown

HEADLINE = (("agreement", "Agreement"), ("a_accuracy", "Accuracy A"), ("b_accuracy", "Accuracy B"),
            ("right_to_wrong", "Right → wrong"), ("wrong_to_right", "Wrong → right"), ("views", "Saved views"),
            ("eval_keys", "Evaluations"))


class CompareModels(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(name="compare_models", label="MindSpore Lite: compare two models", dynamic=True,
                                  allow_immediate_execution=True, allow_delegated_execution=True,
                                  description="Agreement, per-class accuracy changes and the flipped samples; "
                                              "opens the samples that flipped to wrong")

    def resolve_input(self, ctx) -> types.Property:
        inputs = types.Object()
        fields = label_fields(ctx.dataset, SINGLE)
        field_choice(inputs, "pred_a", fields, "Predictions A", "e.g. the float model's field")
        field_choice(inputs, "pred_b", fields, "Predictions B", "e.g. the quantized model's field",
                      default=fields[1] if len(fields) > 1 else None)
        field_choice(inputs, "gt_field", fields, "Ground truth", "The field with the true labels",
                      default="ground_truth")
        return types.Property(inputs, view=types.View(label=self.config.label))

    def execute(self, ctx) -> dict:
        from fiftyone_mslite.integration.compare import TO_RIGHT, TO_WRONG, VIEW_TO_WRONG, compare

        p = ctx.params
        result = compare(ctx.target_view(), p["pred_a"], p["pred_b"], gt_field=p["gt_field"])
        if not ctx.delegated:  # by stages: the App's list of saved views predates this run
            ctx.trigger("reload_dataset")
            ctx.ops.set_view(view=ctx.dataset.load_saved_view(VIEW_TO_WRONG))
        summary = result.to_dict()
        headline = {"agreement": shown(result.agreement), "a_accuracy": shown(result.a_accuracy),
                    "b_accuracy": shown(result.b_accuracy), "right_to_wrong": shown(result.count(TO_WRONG)),
                    "wrong_to_right": shown(result.count(TO_RIGHT)), "views": ", ".join(result.views),
                    "eval_keys": ", ".join(result.eval_keys)}
        return {"summary": summary, "headline": headline}

    def resolve_output(self, ctx) -> types.Property:
        headline = types.Object()
        for key, label in HEADLINE:
            headline.str(key, label=label, view=types.LabelValueView())
        outputs = types.Object()
        outputs.define_property("headline", headline, label="Results")
        return types.Property(outputs, view=types.View(label=self.config.label))
