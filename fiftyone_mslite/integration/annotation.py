"""The fast path: label a FiftyOne collection with a MindSpore Lite classifier.

`apply_model` decodes images one at a time on the calling thread, saves sample by sample, and drops a
whole batch when one image fails OpenCV's read (before our model, which isolates its own failures per
sample). `annotate` decodes and pre-processes in a thread pool while the
previous batch runs (a bounded number of batches in flight), writes labels in bulk, isolates failures
per sample (recorded in `<field>_error` and in the summary), and records a run so that an interrupted
or crashed job resumes where it stopped. Labels come from `MSLiteModel.to_labels`, as in `apply_model`.

Resuming is exact: each label's sample also gets the digest of the settings that made it (`<field>_run`),
and only samples labeled with the run record's settings are skipped. One run writes a field at a time
(`locks.FieldLock`), and the settings check covers the whole field, not only the view being annotated.

What runs the inference is an engine (`fiftyone_mslite.engines`: local, Ray, or a plugin's), looked up by name;
it hands batches of raw outputs to the run's sink, `writer.LabelWriter`, the one path from outputs to labels.

An embeddings field is owned the same way: each vector's sample gets the digest of the model that made it
(`<embeddings_field>_run`, `model_digest`), a run record names that model, the field is locked while written,
and another model's vectors are refused over the whole field. The label field's run records the model digest
too, so that Brain can check that the embeddings it uses come from the predictions' model.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import fiftyone.core.expressions as foe
import fiftyone.core.fields as fof
import fiftyone.core.utils as fou
import fiftyone.core.view as fov
import numpy as np

from ..engines import Engine, EngineOptions, Job, create_engine, run_jobs
from ..errors import DatasetError, Interrupted
from ..pipeline import Batch
from . import compat
from .locks import FieldLock
from .model import MSLiteModel, load_model
from .writer import AnnotateSummary, Failure, LabelWriter

# Measured on the 1000 ImageNet sample images (benchmarks/draft_agreement.py):
# top-1 agreement of draft vs full decoding, see docs/annotate.md. On by default only if >= 99.5 %.
DEFAULT_DRAFT = True
RUN_METHOD = "fiftyone_mslite.integration.annotation"
DEPRECATED_OPTIONS = ("address", "actors")  # annotate()'s keyword arguments before engine_options (Ray's)

__all__ = ["AnnotateSummary", "Failure", "annotate", "check_target", "ensure_embeddings_field", "run_key"]


def run_key(label_field: str) -> str:
    return "mslite_" + re.sub(r"\W", "_", label_field)


def embeddings_run_key(embeddings_field: str) -> str:
    """The run record of an embeddings field (which model's vectors it holds); apart from `run_key`'s, whose
    names never start with an underscore."""
    return run_key("_embeddings_" + embeddings_field)


def model_digest(model: MSLiteModel) -> str:
    """What decides a model's embeddings (file, labels, pre-processing: its classifier's identity), as a digest:
    two runs with equal digests write the same vectors."""
    return _settings_hash(model.classifier.identity())


def _type_name(f: fof.Field) -> str:
    return f.document_type.__name__ if isinstance(f, fof.EmbeddedDocumentField) else type(f).__name__


def check_target(samples, label_field: str, label_type: type, model_name: str) -> None:
    """Refuse, before any work, collections whose labels could not be written or would be lost."""
    if samples.media_type != "image":
        if not len(samples):
            name = compat.root_dataset(samples).name
            raise DatasetError(f"dataset '{name}' has no samples" if samples is compat.root_dataset(samples)
                               else f"this view of dataset '{name}' has no samples: nothing to annotate")
        raise DatasetError(f"annotate() labels images; this collection's media type is '{samples.media_type}'")
    if compat.is_generated(samples):
        raise ValueError(f"annotate() cannot write to a {type(samples).__name__}: its sample fields live in a "
                         "temporary generated dataset, so labels written there never reach the source dataset "
                         "(and each patch/frame would be classified as its whole image). Annotate the source "
                         "dataset, or a view of it.")
    if isinstance(samples, fov.DatasetView):  # select_fields/exclude_fields make a field unwritable
        for view, stage in compat.stages_with_input(samples):
            selected, excluded = stage.get_selected_fields(view), stage.get_excluded_fields(view)
            if (selected is not None and label_field not in selected) or label_field in (excluded or ()):
                raise ValueError(f"the view excludes field '{label_field}' (stage {stage!r}), so labels cannot be "
                                 "written through it; include the field or annotate the dataset")
    expected = {label_field: label_type.__name__, label_field + "_error": "StringField",
                label_field + "_run": "StringField"}
    for name, want in expected.items():
        existing = compat.root_dataset(samples).get_field(name)
        if existing is not None and _type_name(existing) != want:
            raise ValueError(f"field '{name}' already holds {_type_name(existing)}, but {model_name} writes "
                             f"{want} there; choose another label_field (or delete the field)")


def ensure_embeddings_field(samples, embeddings_field: str, model: MSLiteModel, label_field: str) -> None:
    """Refuse, before any work, a model without embeddings and a field holding something else: another
    type, or vectors of another size (a different model's, which similarity and visualization would mix).
    Then declare the field and its `<field>_run`, so that the bulk writes store vectors and their model."""
    model.classifier.require_embeddings()
    own = (label_field, label_field + "_error", label_field + "_run")
    if embeddings_field in own or embeddings_field + "_run" in own:
        raise DatasetError(f"embeddings_field '{embeddings_field}' is one of the label field's own fields")
    dataset = compat.root_dataset(samples)
    runs = dataset.get_field(embeddings_field + "_run")
    if runs is not None and not isinstance(runs, fof.StringField):
        raise DatasetError(f"field '{embeddings_field}_run' already holds {_type_name(runs)}, but annotate records "
                           f"there which model made '{embeddings_field}'; choose another embeddings_field")
    if runs is None:
        dataset.add_sample_field(embeddings_field + "_run", fof.StringField)
    existing = dataset.get_field(embeddings_field)
    if existing is None:
        dataset.add_sample_field(embeddings_field, fof.VectorField)
        return
    if not isinstance(existing, (fof.VectorField, fof.ArrayField)):
        raise DatasetError(f"field '{embeddings_field}' already holds {_type_name(existing)}, not embedding "
                           "vectors; choose another embeddings_field (or delete the field)")
    stored = dataset.exists(embeddings_field).limit(1).values(embeddings_field)
    size = model.embedding_size
    if stored and np.asarray(stored[0]).size != size:
        raise DatasetError(f"field '{embeddings_field}' holds embeddings of size {np.asarray(stored[0]).size}, but "
                           f"{model.name}'s have size {size}; choose another embeddings_field (or delete the "
                           "field)")


def embeddings_owner(dataset, embeddings_field: str) -> dict[str, str | None]:
    """Which model wrote `embeddings_field` last (its name, digest and label field), as its run record says."""
    key = embeddings_run_key(embeddings_field)
    config = dataset.get_run_info(key).config if dataset.has_run(key) else None
    return {k: getattr(config, k, None) for k in ("model", "model_digest", "label_field")}


def claim_embeddings(samples, embeddings_field: str, model: MSLiteModel, label_field: str | None,
                     overwrite: bool) -> str:
    """Refuse, before any work, to write `model`'s vectors into a field holding another model's anywhere in the
    dataset (unless `overwrite`), then record `model` as the field's owner; returns its digest, which the writer
    stores in `<embeddings_field>_run` beside each vector (so must any other writer, e.g. after FiftyOne's
    `compute_embeddings`). Vectors without it cannot be told apart: Brain refuses to use them."""
    dataset, digest = compat.root_dataset(samples), model_digest(model)
    runs = foe.ViewField(embeddings_field + "_run")
    foreign = dataset.exists(embeddings_field).match(runs.exists() & (runs != digest)).count()
    if foreign and not overwrite:
        owner = embeddings_owner(dataset, embeddings_field)
        with_labels = f"written with '{owner['label_field']}'" if owner["label_field"] else "without labels"
        made = f"{owner['model']} ({with_labels})" if owner["model_digest"] != digest else "another model"
        raise DatasetError(f"field '{embeddings_field}' already holds embeddings of {made} on {foreign} samples of "
                           f"dataset '{dataset.name}'; {model.name}'s would be mixed with them. Choose another "
                           "embeddings field, or pass overwrite=True (CLI: --overwrite) to replace them")
    config = dataset.init_run(method=RUN_METHOD, embeddings_field=embeddings_field, model=model.name,
                              model_digest=digest, label_field=label_field)
    dataset.register_run(embeddings_run_key(embeddings_field), config, overwrite=True)
    return digest


def _settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _ids_with(samples, name: str) -> set[str]:
    return set(samples.exists(name).values("id")) if compat.root_dataset(samples).has_sample_field(name) else set()


def _check_settings(samples, model: MSLiteModel, label_field: str, settings: dict[str, Any],
                    overwrite: bool) -> tuple[str, bool]:
    """The run's digest, and whether the field's run record has these very settings. Refuses first to overwrite
    anything else, over the whole field rather than only `samples` (a view must not start a second run with
    other settings beside the first). Writes nothing."""
    dataset, key, digest = compat.root_dataset(samples), run_key(label_field), _settings_hash(settings)
    prev = dataset.get_run_info(key).config if dataset.has_run(key) else None
    same = prev is not None and getattr(prev, "settings_hash", None) == digest
    labeled = dataset.count(label_field) if dataset.has_sample_field(label_field) else 0
    if labeled and not same and not overwrite:
        origin = (f"by {getattr(prev, 'model', '?')} with other settings" if prev is not None
                  else "by something other than annotate()")
        raise DatasetError(f"field '{label_field}' already holds labels on {labeled} samples of dataset "
                           f"'{dataset.name}' (counting the whole dataset, not only this view), made {origin}. "
                           f"Pass overwrite=True to replace them with {model.name}'s, or use another label_field.")
    return digest, same


def _plan(samples, model: MSLiteModel, label_field: str, settings: dict[str, Any], overwrite: bool) -> tuple[str, Any]:
    """The run's digest and the samples still to label: all but those whose label this very run (same settings)
    wrote, as recorded per sample in `<field>_run`, once `_check_settings` agrees. That is a query for the
    remaining samples, so a resume at 99 % reads 1 % of the ids from the database, not every id. Registers the
    run before any labels are written, so an interrupted job resumes; a resumed overwrite redoes every label
    still left from the earlier settings."""
    digest, same = _check_settings(samples, model, label_field, settings, overwrite)
    dataset = compat.root_dataset(samples)
    if not same:
        config = dataset.init_run(method=RUN_METHOD, label_field=label_field, model=model.name, settings=settings,
                                  settings_hash=digest, model_digest=model_digest(model))
        dataset.register_run(run_key(label_field), config, overwrite=True)
    for name, kind in ((label_field, model.label_type), (label_field + "_error", None), (label_field + "_run", None)):
        if not dataset.has_sample_field(name):
            if kind is None:
                dataset.add_sample_field(name, fof.StringField)
            else:
                dataset.add_sample_field(name, fof.EmbeddedDocumentField, embedded_doc_type=kind)
    if overwrite or not same:
        return digest, samples
    done = (foe.ViewField(label_field + "_run") == digest) & foe.ViewField(label_field).exists()
    return digest, samples.match(~done)


ModelArg = MSLiteModel | str | Path


def _pairs(model: ModelArg | Sequence[ModelArg], label_field: str | Sequence[str],
           embeddings_field: str | Sequence[str | None] | None) -> list[tuple[ModelArg, str, str | None]]:
    """(model, label field, embeddings field) of each model of the call: one, or several for one pass. Refuses
    mismatched lists and a field named twice (one pass would write it twice), before any work."""
    several = not isinstance(model, (MSLiteModel, str, Path))
    models = list(model) if several else [model]
    fields = [label_field] if isinstance(label_field, str) else list(label_field)
    if not models or len(fields) != len(models):
        raise ValueError(f"annotate() takes one label_field per model: got {len(models)} model(s) and "
                         f"{len(fields)} field(s)")
    if isinstance(embeddings_field, str) or embeddings_field is None:
        if several and embeddings_field is not None:
            raise ValueError("with several models, embeddings_field is a list with one field (or None) per model")
        embeddings = [embeddings_field] * len(models)
    else:
        embeddings = list(embeddings_field)
        if len(embeddings) != len(models):
            raise ValueError(f"annotate() takes one embeddings_field (or None) per model: got {len(models)} "
                             f"model(s) and {len(embeddings)} embeddings field(s)")
    written = [name for f, e in zip(fields, embeddings)
               for name in (f, f + "_error", f + "_run", e, e and e + "_run") if name]
    twice = sorted({name for name in written if written.count(name) > 1})
    if twice:
        raise ValueError(f"field '{twice[0]}' is written by more than one model of this call; give each model "
                         "its own label_field (and embeddings_field)")
    return list(zip(models, fields, embeddings))


def annotate(samples, model: ModelArg | Sequence[ModelArg], label_field: str | Sequence[str] = "predictions", *,
             batch_size: int = 16, num_workers: int | None = None, confidence_thresh: float | None = None,
             store_logits: bool = False, overwrite: bool = False, draft: bool = DEFAULT_DRAFT, progress: bool = True,
             embeddings_field: str | Sequence[str | None] | None = None, engine: str = "local",
             engine_options: EngineOptions | Mapping[str, Any] | None = None,
             on_progress: Callable[[int, int], None] | None = None, calibrated: bool = False,
             **deprecated: Any) -> AnnotateSummary | list[AnnotateSummary]:
    """Classify every image of `samples` into `label_field`; see the module docstring and docs/annotate.md.

    `embeddings_field` also stores each sample's embedding there, from the same inference as its label.
    `calibrated` applies the model's stored confidence calibration (docs/calibration.md); logits stay raw and the
    run's settings record the calibration, so one field never mixes calibrated and raw confidences.

    `model` is an `MSLiteModel` or a catalog name/model path (loaded and closed here). `confidence_thresh`
    and `store_logits` apply to this call only. `draft` decodes JPEGs at reduced size where the model's
    resize allows it (faster; pixels differ slightly from full decoding). Ctrl-C keeps every finished label.

    Several models in one pass: `model` a list and `label_field` a list of as many fields (`embeddings_field`
    then a list too, None where not wanted). Each file is decoded once for all of them; each field keeps its own
    settings check, run digest, lock, failures and resume, exactly as if annotated alone. Whenever `label_field`
    is a list, the result (and an `Interrupted`'s summary) is the list of the fields' summaries.

    `engine` names what runs the inference (`fiftyone_mslite.engines.engine_names()`: "local" on this machine
    with `num_workers` decoder threads, "ray" in Ray actors across a cluster, or a plugin's), with its
    `engine_options` (the engine's options object, or a mapping such as `{"address": "auto", "actors": 4}` for
    "ray"; docs/scale-out.md). Plan, labels and writes are the same whatever the engine.

    `on_progress(done, total)` is called once the plan is made (done = samples already labeled by this run),
    then after each batch is recorded, on the calling thread while the field's lock is held: total = the
    samples of `samples` (times the models). (`address=` and `actors=` still work, deprecated: they are Ray's
    engine options.)
    """
    options = _deprecated_options(engine_options, deprecated)
    run = create_engine(engine, options)  # before any work: an unknown option or a missing Ray changes nothing
    pairs = _pairs(model, label_field, embeddings_field)
    single = isinstance(label_field, str)  # one summary, as ever; else their list (Interrupted's too)
    with ExitStack() as loaded:  # models given by name or path are loaded here and closed on the way out
        models = [m if isinstance(m, MSLiteModel) else loaded.enter_context(load_model(m)) for m, _, _ in pairs]
        summaries = _annotate(samples, models, [f for _, f, _ in pairs], [e for _, _, e in pairs], batch_size,
                              num_workers, confidence_thresh, store_logits, overwrite, draft, progress, run,
                              on_progress, single, calibrated)
    return summaries[0] if single else summaries


def _annotate(samples, models: list[MSLiteModel], fields: list[str], embeddings: list[str | None],
              batch_size: int, num_workers: int | None, confidence_thresh: float | None, store_logits: bool,
              overwrite: bool, draft: bool, progress: bool, run: Engine,
              on_progress: Callable[[int, int], None] | None, single: bool,
              calibrated: bool) -> list[AnnotateSummary]:
    """`annotate` with its models loaded: every check before any write, every lock before any plan, then one
    pass for all the fields."""
    start = time.perf_counter()
    for model, label_field, embeddings_field in zip(models, fields, embeddings):
        check_target(samples, label_field, model.label_type, model.name)
        if embeddings_field:
            ensure_embeddings_field(samples, embeddings_field, model, label_field)
    config = {} if confidence_thresh is None else {"confidence_thresh": confidence_thresh}
    with ExitStack() as stack:
        settings = []
        for model, embeddings_field in zip(models, embeddings):
            stack.enter_context(fou.SetAttributes(model, store_logits=store_logits))
            stack.enter_context(fou.SetAttributes(model.config, calibrated=calibrated or model.config.calibrated,
                                                  **config))
            own = {**model.settings(), "draft": draft}
            if embeddings_field:  # part of the run's identity only when asked for: earlier runs still resume
                own["embeddings_field"] = embeddings_field
            settings.append(own)
        dataset_name = compat.root_dataset(samples).name
        locks = [[stack.enter_context(FieldLock(dataset_name, name)) for name in (label_field, embeddings_field)
                  if name] for label_field, embeddings_field in zip(fields, embeddings)]
        for model, label_field, own in zip(models, fields, settings):  # every field agrees before any is planned
            _check_settings(samples, model, label_field, own, overwrite)
        owners = [embeddings_field and claim_embeddings(samples, embeddings_field, model, label_field, overwrite)
                  for model, label_field, embeddings_field in zip(models, fields, embeddings)]
        _record_classes(samples, models, fields)
        total = len(samples)
        writers, jobs = [], []
        for model, label_field, embeddings_field, own, held, owner in zip(models, fields, embeddings, settings,
                                                                          locks, owners):
            digest, remaining = _plan(samples, model, label_field, own, overwrite)
            todo = list(zip(*remaining.values(["id", "filepath"])))
            summary = AnnotateSummary(label_field, model.name, skipped=total - len(todo))
            writers.append(LabelWriter(samples, model, label_field, digest, _ids_with(samples, label_field + "_error"),
                                       summary, held, embeddings_field, owner or None))
            clf = model.classifier
            jobs.append(Job(clf, model.classifier_args(), todo, batch_size, draft,
                            clf.used_outputs(bool(embeddings_field)), num_workers))
        try:
            _run(run, jobs, writers, total, progress, on_progress)
        except KeyboardInterrupt as exc:
            for writer in writers:
                writer.summary.elapsed_s = time.perf_counter() - start
            summaries = [writer.summary for writer in writers]
            raise Interrupted(sum(w.saved for w in writers), summaries[0] if single else summaries) from exc
    for writer in writers:
        writer.summary.elapsed_s = time.perf_counter() - start
    return [writer.summary for writer in writers]


def _record_classes(samples, models: list[MSLiteModel], fields: list[str]) -> None:
    """`dataset.classes[field]` = the model's classes in logit order (a background output included), as FiftyOne's
    own evaluations and plots read them, and as top-k evaluation needs them."""
    dataset = compat.root_dataset(samples)
    wanted = {field: model.classes for model, field in zip(models, fields)}
    if any(dataset.classes.get(field) != classes for field, classes in wanted.items()):
        dataset.classes = {**dataset.classes, **wanted}


def _deprecated_options(engine_options: EngineOptions | Mapping[str, Any] | None,
                        deprecated: dict[str, Any]) -> EngineOptions | Mapping[str, Any] | None:
    """`address=`/`actors=` of earlier releases, as the engine options they now are (with a DeprecationWarning)."""
    unknown = sorted(set(deprecated) - set(DEPRECATED_OPTIONS))
    if unknown:
        raise TypeError(f"annotate() got an unexpected keyword argument {unknown[0]!r}")
    given = {name: value for name, value in deprecated.items() if value is not None}
    if not given:
        return engine_options
    warnings.warn(f"annotate({', '.join(f'{n}=' for n in given)}) is deprecated: pass engine_options="
                  f"{{{', '.join(f'{n!r}: ...' for n in given)}}}", DeprecationWarning, stacklevel=3)
    if engine_options is not None:
        raise ValueError(f"pass {', '.join(given)} in engine_options, not beside it")
    return given


def _run(engine: Engine, jobs: list[Job], writers: list[LabelWriter], total: int, progress: bool,
         on_progress: Callable[[int, int], None] | None) -> None:
    """The engine's batches into their fields' writers, with a progress bar and `on_progress` (counting each
    field's samples); whatever stops the engine (Ctrl-C, an error), what it handed over is written."""
    total *= len(jobs)
    todo = sum(len(job.items) for job in jobs)
    done = total - todo
    if on_progress is not None:
        on_progress(done, total)
    with fou.ProgressBar(total=todo, progress=progress) as pb:
        def sink(batch: Batch) -> None:
            nonlocal done
            writers[batch.model].put(batch)
            pb.update(len(batch.items))
            done += len(batch.items)
            if on_progress is not None:
                on_progress(min(done, total), total)  # a batch handed again after Ctrl-C counts once

        try:
            if todo:
                run_jobs(engine, jobs, sink)
        finally:
            for writer in writers:
                writer.flush()
