"""FiftyOne App operators for fiftyone-mslite: apply a catalog model (or a model file), evaluate predictions
(optionally followed by FiftyOne Brain), compute embeddings and a 2-D map for the Embeddings panel.

FiftyOne loads this file as a plugin (see fiftyone.yml); `fiftyone-mslite plugin install` links this
directory into `fo.config.plugins_dir`. The heavy lifting is the package's own `annotate` and `evaluate`,
so the App, the CLI and Python give the same results. The Brain steps are `fiftyone_mslite.integration.brain`.

Operators run on the server with parameters from the browser, so whoever can open the App must not read the
server's files nor make it fetch URLs (docs/security.md): models and label sets come from the catalog by
name; a file path only under a directory the operator lists in FIFTYONE_MSLITE_APP_ALLOWED_DIRS (none by
default); a label-file URL only with FIFTYONE_MSLITE_APP_ALLOW_URLS=1. A refusal reads the same whether or
not the path exists.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_mslite.errors import AppAccessError
from fiftyone_mslite.runtime import settings

SINGLE, MULTI = (fo.Classification,), (fo.Classifications,)
BRAIN_HEADLINE = (("likely_label_mistakes", "Likely label mistakes"), ("brain_views", "Brain views"),
                  ("brain_keys", "Brain keys"))
PROGRESS_STEPS = 20  # progress updates per run: enough to look alive, few enough to keep batches large
ALLOWED_DIRS_ENV = settings.declare(
    "FIFTYONE_MSLITE_APP_ALLOWED_DIRS", "empty (none)", f"directories (separated by '{os.pathsep}') whose model and "
    "label files the App may read; catalog names always work")
ALLOW_URLS_ENV = settings.declare("FIFTYONE_MSLITE_APP_ALLOW_URLS", "0",
                                  "1: let the App fetch label-file URLs given in the browser")


def _allowed_dirs() -> list[Path]:
    """The operator's allow-list, read at each call so a delegated executor applies its own setting."""
    return [Path(d).expanduser().resolve() for d in (settings.get(ALLOWED_DIRS_ENV) or "").split(os.pathsep)
            if d.strip()]


def _server_path(value: str, what: str) -> str:
    """A browser-supplied path, resolved (symlinks and '..' included) and accepted only inside an allowed
    directory; the refusal does not depend on whether the path exists, so it cannot be used as a probe."""
    path = Path(os.path.realpath(value))
    if not any(path.is_relative_to(d) for d in _allowed_dirs()):
        raise AppAccessError(f"{what} {value!r}: this App server reads files only from the directories its "
                             f"operator allows ({ALLOWED_DIRS_ENV}; none by default). Use a catalog name instead.")
    return str(path)


def _catalog_model(name: str) -> str:
    from fiftyone_mslite.catalog.registry import catalog

    if name not in catalog().models:
        raise AppAccessError(f"model {name!r} is not in the catalog (`fiftyone-mslite models list`)")
    return name


def _label_ref(value: str, what: str) -> str:
    """A label set of the catalog, or the labels a catalog model names (the operator's own choices); else a
    label-file URL if the operator enabled them, else a path in an allowed directory."""
    from fiftyone_mslite.catalog.registry import catalog

    cat = catalog()
    if value in cat.label_sets or value in {m.labels for m in cat.models.values()}:
        return value
    if "://" in value:
        if not settings.flag(ALLOW_URLS_ENV):
            raise AppAccessError(f"{what} {value!r}: this App server does not fetch URLs given in the browser "
                                 f"(its operator can enable them with {ALLOW_URLS_ENV}=1). Use a catalog label "
                                 "set name instead.")
        return value
    return _server_path(value, f"{what} (not a catalog label set)")


def _label_fields(samples, label_types: tuple) -> list[str]:
    schema = samples.get_field_schema(embedded_doc_type=fo.Label)
    return sorted(name for name, field in schema.items() if issubclass(field.document_type, label_types))


def _vector_fields(samples) -> list[str]:
    """Top-level fields that hold vectors (embeddings written by annotate or compute_embeddings)."""
    import fiftyone.core.fields as fof

    return sorted(name for name, field in samples.get_field_schema().items()
                  if isinstance(field, (fof.VectorField, fof.ArrayField)))


def _field_choice(inputs: types.Object, name: str, fields: list[str], label: str, description: str,
                  default: str | None = None) -> None:
    """A required field picker; an error in the form when the dataset has no suitable field."""
    if not fields:
        prop = inputs.view(name, types.Error(label=f"{label}: no suitable field",
                                             description=description))
        prop.invalid = True
        return
    choices = types.DropdownView()
    for field in fields:
        choices.add_choice(field, label=field)
    inputs.enum(name, choices.values(), required=True, label=label, description=description, view=choices,
                default=default if default in fields else fields[0])


def _model_inputs(inputs: types.Object, ctx) -> None:
    from fiftyone_mslite.catalog.registry import catalog

    tabs = types.TabsView()
    tabs.add_choice("CATALOG", label="Catalog model")
    tabs.add_choice("FILE", label="Model file")
    inputs.enum("source", tabs.values(), default="CATALOG", view=tabs)
    if ctx.params.get("source", "CATALOG") == "CATALOG":
        choices = types.DropdownView()
        for name, entry in sorted(catalog().models.items()):
            choices.add_choice(name, label=name, description=entry.description or None)
        inputs.enum("model", choices.values(), required=True, label="Model", view=choices,
                    description="A model from the fiftyone-mslite catalog (`fiftyone-mslite models list`); "
                                "it is downloaded and converted on first use")
    else:
        inputs.str("model_path", required=True, label="Model file",
                   description=f"Path of a .ms or .mindir file on the server, in a directory its operator lists in "
                               f"{ALLOWED_DIRS_ENV} (none by default)")
        inputs.str("labels", required=True, label="Labels",
                   description="A catalog label set name (e.g. imagenet-1000), or a label file in an allowed "
                               "directory")


def _load(ctx):
    """The model the form chose, checked against the operator's allow-lists; the caller closes it."""
    from fiftyone_mslite.integration.model import load_model

    p = ctx.params
    if p.get("source", "CATALOG") == "FILE":
        return load_model(_server_path(p["model_path"], "model file"), labels=_label_ref(p["labels"], "labels"))
    return load_model(_catalog_model(p["model"]))


def _chunks(ids: list[str], batch_size: int) -> list[list[str]]:
    size = max(batch_size, math.ceil(len(ids) / PROGRESS_STEPS))
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def _shown(value) -> str:
    return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _progress(ctx, fraction: float, label: str):
    """Progress for either mode: the delegated run's record, or a message the App shows (None if delegated)."""
    if ctx.delegated:
        ctx.set_progress(progress=fraction, label=label)
        return None
    return ctx.ops.set_progress(progress=fraction, label=label)


class ApplyModel(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(name="apply_model", label="MindSpore Lite: apply model", dynamic=True,
                                  execute_as_generator=True, allow_immediate_execution=True,
                                  allow_delegated_execution=True,
                                  description="Classify images with a MindSpore Lite model")

    def resolve_input(self, ctx) -> types.Property:
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Apply the model to")
        _model_inputs(inputs, ctx)
        existing = types.AutocompleteView()
        for field in _label_fields(ctx.dataset, SINGLE + MULTI):
            existing.add_choice(field, label=field)
        inputs.str("label_field", required=True, default="predictions", label="Label field", view=existing,
                   description="New or existing field for the predictions")
        inputs.float("confidence_thresh", min=0.0, max=1.0, label="Confidence threshold",
                      description="Drop predictions below this confidence (optional)")
        inputs.int("batch_size", min=1, default=16, label="Batch size")
        inputs.bool("store_logits", default=False, label="Store logits",
                    description="Keep the raw scores; needed for top-k evaluation")
        inputs.bool("overwrite", default=False, label="Overwrite",
                    description="Replace labels that another model or other settings wrote to this field; "
                                "without it, a rerun resumes and skips samples this run already labeled")
        return types.Property(inputs, view=types.View(label="Apply a MindSpore Lite model"))

    def resolve_run_name(self, ctx) -> str:
        model = ctx.params.get("model") or ctx.params.get("model_path")
        return f"mslite: {model} → {ctx.params.get('label_field')}"

    def execute(self, ctx):
        """Runs `annotate` chunk by chunk, so that both execution modes can report progress in between."""
        from fiftyone_mslite.integration.annotation import annotate

        p = ctx.params
        target = ctx.target_view()
        batch_size = int(p.get("batch_size") or 16)
        ids = target.values("id")
        done = failed = 0
        with _load(ctx) as model:
            for chunk in _chunks(ids, batch_size):
                summary = annotate(target.select(chunk), model, p["label_field"], batch_size=batch_size,
                                   confidence_thresh=p.get("confidence_thresh"),
                                   store_logits=bool(p.get("store_logits")), overwrite=bool(p.get("overwrite")),
                                   progress=False)
                done, failed = done + len(chunk), failed + summary.failed
                message = _progress(ctx, done / len(ids), f"{done}/{len(ids)} samples")
                if message is not None:
                    yield message
        if not ctx.delegated:
            note = f"{model.name}: labeled {done - failed} samples into '{p['label_field']}'"
            if failed:
                note += f"; {failed} failed (see the '{p['label_field']}_error' field)"
            yield ctx.ops.notify(note, variant="warning" if failed else "success")
            yield ctx.trigger("reload_dataset")


class _Evaluate(foo.Operator):
    """Shared form and run for both evaluations; subclasses name the label types and the function."""

    label_types: tuple = SINGLE
    default_key = "eval"
    headline: tuple[tuple[str, str], ...] = ()

    def resolve_input(self, ctx) -> types.Property:
        inputs = types.Object()
        fields = _label_fields(ctx.dataset, self.label_types)
        _field_choice(inputs, "pred_field", fields, "Predictions", "The field with the model's predictions",
                      default="predictions")
        _field_choice(inputs, "gt_field", fields, "Ground truth", "The field with the true labels",
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
            for field in _vector_fields(ctx.dataset):
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
        headline = {key: _shown(summary.get(key)) for key, _ in self.headline}
        if "brain" in summary:
            brain = summary["brain"]
            headline.update(likely_label_mistakes=_shown(brain["likely_label_mistakes"]),
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
                ("num_mistakes", "Mistakes"), ("mistakes_view", "Saved view"))
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
        classes = _label_ref(p["classes"], "classes") if p.get("classes") else None
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
        from fiftyone_mslite.catalog.registry import catalog

        inputs = types.Object()
        p = ctx.params
        inputs.view_target(ctx, action_description="Compute for")
        vectors = types.AutocompleteView()
        for field in _vector_fields(ctx.dataset):
            vectors.add_choice(field, label=field)
        inputs.str("embeddings_field", required=True, default="embeddings", label="Embeddings field", view=vectors,
                   description="New or existing field for the embeddings; samples that already have them are "
                               "not run again")
        inputs.bool("recompute", default=False, label="Recompute",
                    description="Run the model on every sample, replacing stored embeddings (and predictions)")
        choices = types.DropdownView()
        for name, entry in sorted(catalog().models.items()):
            choices.add_choice(name, label=name, description=entry.description or None)
        emb = p.get("embeddings_field") or "embeddings"
        need = bool(p.get("recompute")) or not ctx.dataset.has_sample_field(emb) \
            or bool(ctx.target_view().exists(emb, False).count())
        inputs.enum("model", choices.values(), required=need, label="Model", view=choices,
                    description="A model from the fiftyone-mslite catalog; needed unless every sample already "
                                "has embeddings")
        labels = types.AutocompleteView()
        for field in _label_fields(ctx.dataset, SINGLE + MULTI):
            labels.add_choice(field, label=field)
        inputs.str("label_field", label="Predictions field", view=labels,
                   description="Optional: also store the model's predictions (with logits) here, from the same "
                               "inference; empty: embeddings only")
        colour = types.DropdownView()
        for field in _colour_fields(ctx.dataset):
            colour.add_choice(field, label=field)
        if colour.choices:
            inputs.enum("color_field", colour.values(), label="Colour by", view=colour,
                        description="A label or evaluation field to colour the points by in the Embeddings panel")
        inputs.str("brain_key", required=True, default=_default_brain_key(emb), label="Brain key",
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
            result = {}
            for fraction, label in self._steps(ctx, result):
                ctx.set_progress(progress=fraction, label=label)
            return result
        return self._immediate(ctx)

    def _immediate(self, ctx):
        result = {}
        for fraction, label in self._steps(ctx, result):
            yield ctx.ops.set_progress(progress=fraction, label=label)
        yield ctx.ops.show_output(self.resolve_output(ctx).to_json(), result)
        view = f", view '{result['views']['uniqueness']}'" if result["views"] else ""
        yield ctx.ops.notify(f"brain key '{result['brain_key']}' ({result['num_points']} points, "
                             f"{result['method']}){view}: open the Embeddings panel", variant="success")
        yield ctx.trigger("reload_dataset")

    def _steps(self, ctx, result: dict):
        """(fraction, label) after each step; fills `result` (brain key, fields, views, counts)."""
        from fiftyone_mslite.integration import brain

        p = ctx.params
        emb, key = p["embeddings_field"], p["brain_key"]
        target = ctx.target_view()
        todo = target if p.get("recompute") or not ctx.dataset.has_sample_field(emb) else target.exists(emb, False)
        computed = len(todo)
        if computed:
            yield from self._embed(ctx, todo, emb, computed)
        yield 0.8, f"2-D map ({brain.visualization_method()})"
        with_emb = target.exists(emb)
        brain.visualize(with_emb, emb, emb, progress=False, key=key)
        views = {}
        if p.get("uniqueness", True):
            yield 0.9, "uniqueness"
            brain.most_unique(target, emb, emb, progress=False)
            views["uniqueness"] = brain.view_name(emb, "unique")
        result.update(brain_key=key, embeddings_field=emb, color_field=p.get("color_field"),
                      label_field=p.get("label_field") or None, method=brain.visualization_method(),
                      computed=computed, num_points=len(with_emb), views=views,
                      saved_views=", ".join(views.values()) or "—")
        yield 1.0, f"{len(with_emb)} points under '{key}'"

    def _embed(self, ctx, todo, emb: str, count: int):
        from fiftyone_mslite.integration.annotation import annotate, ensure_embeddings_field

        p = ctx.params
        if not p.get("model"):
            raise ValueError(f"{count} samples have no '{emb}' yet: choose a model to compute them")
        batch_size, pred = int(p.get("batch_size") or 16), p.get("label_field") or None
        done = 0
        with _load_catalog(p["model"]) as model:
            ensure_embeddings_field(todo, emb, model, pred or "")  # refuses another model's vectors first
            for chunk in _chunks(todo.values("id"), batch_size):
                samples = todo.select(chunk)
                if pred:
                    annotate(samples, model, pred, batch_size=batch_size, store_logits=True, embeddings_field=emb,
                             overwrite=bool(p.get("recompute")), progress=False)
                else:
                    samples.compute_embeddings(model, embeddings_field=emb, batch_size=batch_size, progress=False)
                done += len(chunk)
                yield 0.8 * done / count, f"embeddings {done}/{count} samples"

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        for key, label in (("brain_key", "Brain key"), ("embeddings_field", "Embeddings field"),
                           ("num_points", "Points"), ("method", "Method"), ("color_field", "Colour by")):
            outputs.str(key, label=label, view=types.LabelValueView())
        outputs.str("saved_views", label="Saved views", view=types.LabelValueView())
        return types.Property(outputs, view=types.View(label="Embeddings & visualization"))


def _default_brain_key(embeddings_field: str) -> str:
    from fiftyone_mslite.integration.brain import brain_key

    return brain_key(embeddings_field, "viz")


def _colour_fields(samples) -> list[str]:
    """What the Embeddings panel can colour by that this package writes: label fields, evaluation booleans."""
    import fiftyone.core.fields as fof

    flags = [name for name, field in samples.get_field_schema().items() if isinstance(field, fof.BooleanField)]
    return sorted(set(_label_fields(samples, SINGLE + MULTI)) | set(flags))


def _load_catalog(name: str):
    from fiftyone_mslite.integration.model import load_model

    return load_model(_catalog_model(name))


def register(p) -> None:
    p.register(ApplyModel)
    p.register(Evaluate)
    p.register(EvaluateMultilabel)
    p.register(ComputeEmbeddings)
