"""The App's operators: apply a model, evaluate predictions (optionally followed by FiftyOne Brain), compute
embeddings and a 2-D map for the Embeddings panel. The heavy lifting is the package's own `annotate` and `evaluate`,
so the App, the CLI and Python give the same results; the Brain steps are `fiftyone_mslite.integration.brain`.
What the browser may make the server read is `access`'s; form pieces are `forms`'; progress is `progress`'."""
from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_mslite.app.access import label_ref, load_catalog_model, load_chosen_model
from fiftyone_mslite.app.forms import (
    MULTI,
    SINGLE,
    catalog_choices,
    colour_fields,
    default_brain_key,
    field_choice,
    label_fields,
    model_inputs,
    runtime_notice,
    shown,
    vector_fields,
)
from fiftyone_mslite.app.progress import Report, in_steps, report_to, run_reporting

BRAIN_HEADLINE = (("likely_label_mistakes", "Likely label mistakes"), ("brain_views", "Brain views"),
                  ("brain_keys", "Brain keys"))


class ApplyModel(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(name="apply_model", label="MindSpore Lite: apply model", dynamic=True,
                                  execute_as_generator=True, allow_immediate_execution=True,
                                  allow_delegated_execution=True,
                                  description="Classify images with a MindSpore Lite model")

    def resolve_input(self, ctx) -> types.Property:
        inputs = types.Object()
        runtime_notice(inputs)
        inputs.view_target(ctx, action_description="Apply the model to")
        model_inputs(inputs, ctx)
        existing = types.AutocompleteView()
        for field in label_fields(ctx.dataset, SINGLE + MULTI):
            existing.add_choice(field, label=field)
        inputs.str("label_field", required=True, default="predictions", label="Label field", view=existing,
                   description="New or existing field for the predictions")
        inputs.float("confidence_thresh", min=0.0, max=1.0, label="Confidence threshold",
                      description="Drop predictions below this confidence (optional)")
        inputs.int("batch_size", min=1, default=16, label="Batch size")
        inputs.bool("store_logits", default=False, label="Store logits",
                    description="Keep the raw scores; needed for top-k evaluation")
        inputs.bool("calibrated", default=False, label="Calibrated confidences",
                    description="Apply the model's stored confidence calibration (`fiftyone-mslite models "
                                "calibrate-confidence` / `models thresholds`); logits stay raw")
        inputs.bool("overwrite", default=False, label="Overwrite",
                    description="Replace labels that another model or other settings wrote to this field; "
                                "without it, a rerun resumes and skips samples this run already labeled")
        return types.Property(inputs, view=types.View(label="Apply a MindSpore Lite model"))

    def resolve_run_name(self, ctx) -> str:
        model = ctx.params.get("model") or ctx.params.get("model_path")
        return f"mslite: {model} → {ctx.params.get('label_field')}"

    def execute(self, ctx):
        """One `annotate` run over the target (one plan, the field's lock held throughout), its progress
        reported in either execution mode."""
        from fiftyone_mslite.integration.annotation import annotate

        p = ctx.params
        target = ctx.target_view()
        with load_chosen_model(p) as model:
            def work(report: Report):
                return annotate(target, model, p["label_field"], batch_size=int(p.get("batch_size") or 16),
                                confidence_thresh=p.get("confidence_thresh"),
                                store_logits=bool(p.get("store_logits")), overwrite=bool(p.get("overwrite")),
                                calibrated=bool(p.get("calibrated")), progress=False,
                                on_progress=in_steps(report, lambda done, n: f"{done}/{n} samples"))

            summary = yield from run_reporting(ctx, work)
        if not ctx.delegated:
            labeled = summary.processed + summary.skipped
            note = f"{model.name}: labeled {labeled} samples into '{p['label_field']}'"
            if summary.failed:
                note += f"; {summary.failed} failed (see the '{p['label_field']}_error' field)"
            yield ctx.ops.notify(note, variant="warning" if summary.failed else "success")
            yield ctx.trigger("reload_dataset")


class _Evaluate(foo.Operator):
    """Shared form and run for both evaluations; subclasses name the label types and the function."""

    label_types: tuple = SINGLE
    default_key = "eval"
    headline: tuple[tuple[str, str], ...] = ()

    def resolve_input(self, ctx) -> types.Property:
        inputs = types.Object()
        fields = label_fields(ctx.dataset, self.label_types)
        field_choice(inputs, "pred_field", fields, "Predictions", "The field with the model's predictions",
                     default="predictions")
        field_choice(inputs, "gt_field", fields, "Ground truth", "The field with the true labels",
                      default="ground_truth")
        inputs.str("eval_key", required=True, default=self.default_key, label="Evaluation key",
                   description="Names the evaluation run and the per-sample fields it writes")
        self.extra_inputs(inputs, ctx)
        inputs.bool("run_brain", default=False, label="Run FiftyOne Brain",
                    description="Then likely label mistakes and hardness (from the stored logits), and with "
                                "embeddings uniqueness, a 2-D map for the Embeddings panel and a similarity index; "
                                "each step saves a view or a brain run (docs/brain.md)")
        if ctx.params.get("run_brain"):
            vectors = types.AutocompleteView()
            for field in vector_fields(ctx.dataset):
                vectors.add_choice(field, label=field)
            inputs.str("embeddings_field", label="Embeddings field", view=vectors,
                       description="By default the field that the predictions' annotate run wrote (none: "
                                   "uniqueness and the 2-D map are skipped)")
        return types.Property(inputs, view=types.View(label=self.config.label))

    def extra_inputs(self, inputs: types.Object, ctx) -> None:
        """Inputs only one kind of evaluation has."""

    def run(self, ctx) -> tuple[dict, str]:
        """(summary, name of the saved view to open afterwards)."""
        raise NotImplementedError

    def execute(self, ctx) -> dict:
        summary, view = self.run(ctx)
        if ctx.params.get("run_brain"):
            summary["brain"] = self.brain(ctx)
        if not ctx.delegated:
            # By stages, not by name: the App's list of saved views predates this run, so it would refuse
            # a view saved just now (reopening the dataset lists it).
            ctx.trigger("reload_dataset")
            ctx.ops.set_view(view=ctx.dataset.load_saved_view(view))
        headline = {key: shown(summary.get(key)) for key, _ in self.headline}
        if "brain" in summary:
            brain = summary["brain"]
            headline.update(likely_label_mistakes=shown(brain["likely_label_mistakes"]),
                            brain_views=", ".join(brain["views"].values()),
                            brain_keys=", ".join(brain["brain_keys"].values()))
        return {"summary": summary, "headline": headline}

    def brain(self, ctx) -> dict:
        """`run_brain` on the evaluated view: its summary (brain keys, saved views, notes)."""
        from fiftyone_mslite.integration.brain import run_brain

        p = ctx.params
        if ctx.delegated:  # an immediate run has no progress dialog (not a generator): the result says it all
            ctx.set_progress(progress=0.5, label="evaluated; running FiftyOne Brain")
        summary = run_brain(ctx.target_view(), p["pred_field"], gt_field=p["gt_field"],
                            embeddings_field=p.get("embeddings_field") or None, progress=False)
        return summary.to_dict()

    def resolve_output(self, ctx) -> types.Property:
        """The headline numbers; the full summary (per-class report included) is in the result for scripts."""
        headline = types.Object()
        rows = self.headline + (BRAIN_HEADLINE if ctx.params.get("run_brain") else ())
        for key, label in rows:
            headline.str(key, label=label, view=types.LabelValueView())
        outputs = types.Object()
        outputs.define_property("headline", headline, label="Results")
        return types.Property(outputs, view=types.View(label=self.config.label))


class Evaluate(_Evaluate):
    headline = (("accuracy", "Accuracy"), ("top_k_accuracy", "Top-k accuracy"), ("num_samples", "Samples"),
                ("num_mistakes", "Mistakes"), ("mistakes_view", "Saved view"), ("ece", "Calibration error (ECE)"))
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(name="evaluate", label="MindSpore Lite: evaluate predictions", dynamic=True,
                                  allow_immediate_execution=True, allow_delegated_execution=True,
                                  description="Accuracy and per-class metrics; opens the mistakes view")

    def extra_inputs(self, inputs: types.Object, ctx) -> None:
        inputs.int("top_k", min=1, label="Top-k",
                   description="Also count a hit when the truth is among the k best (needs stored logits)")
        if ctx.params.get("top_k"):
            inputs.str("classes", label="Classes",
                       description="Catalog label set (e.g. imagenet-1000) in logit order; by default the "
                                   "classes recorded on the prediction field")

    def run(self, ctx) -> tuple[dict, str]:
        from fiftyone_mslite.integration.evaluation import evaluate

        p = ctx.params
        classes = label_ref(p["classes"], "classes") if p.get("classes") else None
        summary = evaluate(ctx.target_view(), p["pred_field"], gt_field=p["gt_field"], eval_key=p["eval_key"],
                           top_k=p.get("top_k"), classes=classes)
        return summary.to_dict(), summary.mistakes_view


class EvaluateMultilabel(_Evaluate):
    label_types = SINGLE + MULTI  # a single Classification counts as one label
    default_key = "eval_ml"
    headline = (("micro_precision", "Precision (micro)"), ("micro_recall", "Recall (micro)"),
                ("micro_f1", "F1 (micro)"), ("macro_f1", "F1 (macro)"), ("samples_with_errors", "Samples with errors"),
                ("errors_view", "Saved view"))

    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(name="evaluate_multilabel", label="MindSpore Lite: evaluate multi-label",
                                  dynamic=True, allow_immediate_execution=True, allow_delegated_execution=True,
                                  description="Per-class precision/recall/F1; opens the errors view")

    def run(self, ctx) -> tuple[dict, str]:
        from fiftyone_mslite.integration.evaluation import evaluate_multilabel

        p = ctx.params
        summary = evaluate_multilabel(ctx.target_view(), p["pred_field"], p["gt_field"], eval_key=p["eval_key"])
        return summary.to_dict(), summary.errors_view


class ComputeEmbeddings(foo.Operator):
    """Embeddings from a catalog model (only for the samples that lack them, unless recomputing), then a 2-D
    map under a brain key for the App's Embeddings panel and, optionally, a uniqueness ranking saved as a view.

    With a predictions field the embeddings come from `annotate` (labels, logits and embeddings from one
    inference); without one from FiftyOne's `compute_embeddings` (the model's `EmbeddingsMixin`)."""

    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(name="compute_embeddings", label="MindSpore Lite: compute embeddings & visualization",
                                  dynamic=True, execute_as_generator=True, allow_immediate_execution=True,
                                  allow_delegated_execution=True,
                                  description="Embeddings from a MindSpore Lite model and a 2-D map for the "
                                              "Embeddings panel")

    def resolve_input(self, ctx) -> types.Property:
        inputs = types.Object()
        p = ctx.params
        runtime_notice(inputs)
        inputs.view_target(ctx, action_description="Compute for")
        vectors = types.AutocompleteView()
        for field in vector_fields(ctx.dataset):
            vectors.add_choice(field, label=field)
        inputs.str("embeddings_field", required=True, default="embeddings", label="Embeddings field", view=vectors,
                   description="New or existing field for the embeddings; samples that already have them are "
                               "not run again")
        inputs.bool("recompute", default=False, label="Recompute",
                    description="Run the model on every sample, replacing stored embeddings (and predictions)")
        choices = catalog_choices()
        emb = p.get("embeddings_field") or "embeddings"
        need = bool(p.get("recompute")) or not ctx.dataset.has_sample_field(emb) \
            or bool(ctx.target_view().exists(emb, False).count())
        inputs.enum("model", choices.values(), required=need, label="Model", view=choices,
                    description="A model from the fiftyone-mslite catalog; needed unless every sample already "
                                "has embeddings")
        labels = types.AutocompleteView()
        for field in label_fields(ctx.dataset, SINGLE + MULTI):
            labels.add_choice(field, label=field)
        inputs.str("label_field", label="Predictions field", view=labels,
                   description="Optional: also store the model's predictions (with logits) here, from the same "
                               "inference; empty: embeddings only")
        colour = types.DropdownView()
        for field in colour_fields(ctx.dataset):
            colour.add_choice(field, label=field)
        if colour.choices:
            inputs.enum("color_field", colour.values(), label="Colour by", view=colour,
                        description="A label or evaluation field to colour the points by in the Embeddings panel")
        inputs.str("brain_key", required=True, default=default_brain_key(emb), label="Brain key",
                   description="Names the visualization run (an earlier run under this key is replaced)")
        inputs.bool("uniqueness", default=True, label="Rank by uniqueness",
                    description="Also compute uniqueness from the embeddings and save the most unique first as "
                                "the view '<embeddings field>-unique'")
        inputs.int("batch_size", min=1, default=16, label="Batch size")
        return types.Property(inputs, view=types.View(label="Compute embeddings & visualization"))

    def resolve_run_name(self, ctx) -> str:
        return f"mslite: embeddings → {ctx.params.get('brain_key')}"

    def execute(self, ctx):
        """A generator when immediate (progress dialog, then the result shown in the App); the result itself
        when delegated (the run records it, and progress through `ctx.set_progress`)."""
        if ctx.delegated:
            return self._run(ctx, report_to(ctx))
        return self._immediate(ctx)

    def _immediate(self, ctx):
        result = yield from run_reporting(ctx, lambda report: self._run(ctx, report))
        yield ctx.ops.show_output(self.resolve_output(ctx).to_json(), result)
        view = f", view '{result['views']['uniqueness']}'" if result["views"] else ""
        yield ctx.ops.notify(f"brain key '{result['brain_key']}' ({result['num_points']} points, "
                             f"{result['method']}){view}: open the Embeddings panel", variant="success")
        yield ctx.trigger("reload_dataset")

    def _run(self, ctx, report: Report) -> dict:
        """Every step, reporting (fraction, label) as it goes; the result (brain key, fields, views, counts)."""
        from fiftyone_mslite.integration import brain

        p = ctx.params
        emb, key = p["embeddings_field"], p["brain_key"]
        target = ctx.target_view()
        todo = target if p.get("recompute") or not ctx.dataset.has_sample_field(emb) else target.exists(emb, False)
        computed = len(todo)
        if computed:
            self._embed(ctx, todo, emb, computed, report)
        report(0.8, f"2-D map ({brain.visualization_method()})")
        with_emb = target.exists(emb)
        brain.visualize(with_emb, emb, emb, progress=False, key=key)
        views = {}
        if p.get("uniqueness", True):
            report(0.9, "uniqueness")
            brain.most_unique(target, emb, emb, progress=False)
            views["uniqueness"] = brain.view_name(emb, "unique")
        report(1.0, f"{len(with_emb)} points under '{key}'")
        return dict(brain_key=key, embeddings_field=emb, color_field=p.get("color_field"),
                    label_field=p.get("label_field") or None, method=brain.visualization_method(),
                    computed=computed, num_points=len(with_emb), views=views,
                    saved_views=", ".join(views.values()) or "—")

    def _embed(self, ctx, todo, emb: str, count: int, report: Report) -> None:
        """Embeddings for `todo` in one call: `annotate` (with predictions) or FiftyOne's `compute_embeddings`,
        the first 80 % of the progress."""
        from fiftyone_mslite.integration.annotation import annotate, claim_embeddings, ensure_embeddings_field

        p = ctx.params
        if not p.get("model"):
            raise ValueError(f"{count} samples have no '{emb}' yet: choose a model to compute them")
        batch_size, pred = int(p.get("batch_size") or 16), p.get("label_field") or None
        on_progress = in_steps(report, lambda done, n: f"embeddings {done}/{n} samples", span=0.8)
        with load_catalog_model(p["model"]) as model:
            ensure_embeddings_field(todo, emb, model, pred or "")  # refuses another model's vectors first
            digest = claim_embeddings(todo, emb, model, pred, overwrite=bool(p.get("recompute")))
            if pred:
                annotate(todo, model, pred, batch_size=batch_size, store_logits=True, embeddings_field=emb,
                         overwrite=bool(p.get("recompute")), progress=False, on_progress=on_progress)
            else:  # FiftyOne's progress callback gets its progress bar after each sample
                todo.compute_embeddings(model, embeddings_field=emb, batch_size=batch_size,
                                        progress=lambda bar: on_progress(bar.iteration, count))
                todo.exists(emb).set_field(f"{emb}_run", digest).save()  # whose vectors: for Brain's check

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        for key, label in (("brain_key", "Brain key"), ("embeddings_field", "Embeddings field"),
                           ("num_points", "Points"), ("method", "Method"), ("color_field", "Colour by")):
            outputs.str(key, label=label, view=types.LabelValueView())
        outputs.str("saved_views", label="Saved views", view=types.LabelValueView())
        return types.Property(outputs, view=types.View(label="Embeddings & visualization"))
