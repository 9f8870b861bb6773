"""`fiftyone-mslite`: every command prints for people by default and JSON with --json."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import runtime


def _emit(as_json: bool, data, text: str) -> None:
    click.echo(json.dumps(data, indent=1) if as_json else text)


def _fail(exc: Exception, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    else:
        click.echo(f"error: {exc}", err=True)
    sys.exit(1)


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group()
@click.version_option(package_name="fiftyone-mslite")
def main() -> None:
    """MindSpore Lite image classifiers for FiftyOne."""


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
    try:
        record = runtime.install(python=python, force=force, log=sys.stderr if verbose else None)
    except runtime.MSLiteError as exc:
        _fail(exc, as_json)
    _emit(as_json, record, f"{record['action']}: mindspore-lite {record['mindspore_lite']} on Python "
                           f"{record['python_version']} ({record['python']}, base found by {record['found_by']})")


@runtime_group.command("info")
@json_option
def runtime_info(as_json: bool) -> None:
    """Which MindSpore Lite runs models here, and why."""
    data = runtime.info()
    _emit(as_json, data, "\n".join(f"{k:22} {v}" for k, v in data.items()))


@main.command("convert")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="Output .ms/.mindir path.")
@click.option("--format", "save_type", type=click.Choice(["ms", "mindir"]), default=None,
              help="Output format (default: from --output's suffix, else ms).")
@click.option("--from", "source_format", type=click.Choice(["onnx", "tflite", "tf", "caffe", "mindir"]),
              default=None, help="Source format (default: detected from the file).")
@json_option
def convert_cmd(source: Path, output: Path, save_type: str | None, source_format: str | None,
                as_json: bool) -> None:
    """Convert an ONNX/TFLite/TF/Caffe/MindIR model with MindSpore Lite's converter."""
    from .conversion import convert_model

    save_type = save_type or ("mindir" if output.suffix == ".mindir" else "ms")
    try:
        result = convert_model(source, output, save_type=save_type, source_format=source_format)
    except (runtime.MSLiteError, ValueError) as exc:
        _fail(exc, as_json)
    fixes = "".join(f"\n  fixed: {f}" for f in result.fixes)
    _emit(as_json, result.to_dict(), f"{result.source} ({result.source_format}) → {result.output}{fixes}")


@main.command("predict")
@click.argument("model", type=str)
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), help="Label file, one per line.")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1))
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1))
@click.option("--resize", type=click.Choice(["short", "squash"]), default="short", show_default=True)
@click.option("--crop-fraction", default=0.875, show_default=True, type=click.FloatRange(0, 1, min_open=True))
@click.option("--mean", default="0.485,0.456,0.406", show_default=True, help="Per-channel mean, 0..1 scale.")
@click.option("--std", default="0.229,0.224,0.225", show_default=True, help="Per-channel std, 0..1 scale.")
@json_option
def predict_cmd(model: str, images: tuple[Path, ...], labels: str | None, top_k: int, threads: int,
                resize: str, crop_fraction: float, mean: str, std: str, as_json: bool) -> None:
    """Classify image files; with --json, one JSON object per image per line."""
    from .adapters.preprocessing import PreprocessConfig
    from .predict import classify_files, read_labels

    try:
        cfg = PreprocessConfig(resize=resize, crop_fraction=crop_fraction, mean=_triple(mean, "--mean"),
                               std=_triple(std, "--std"))
        with runtime.open_model(model, threads=threads) as session:
            names = read_labels(labels, session.outputs[0].shape[-1]) if labels else None
            failed = 0
            for pred in classify_files(session, list(images), names, top_k, cfg):
                failed += pred.error is not None
                if as_json:
                    click.echo(json.dumps(pred.to_dict()))
                elif pred.error:
                    click.echo(f"{pred.image}: error: {pred.error}", err=True)
                else:
                    click.echo(pred.image)
                    for label, conf in pred.top:
                        click.echo(f"  {conf:7.2%}  {label}")
    except (runtime.MSLiteError, ValueError) as exc:
        _fail(exc, as_json)
    sys.exit(1 if failed else 0)


def _triple(text: str, option: str) -> tuple[float, float, float]:
    values = tuple(float(v) for v in text.split(","))
    if len(values) != 3:
        raise click.BadParameter(f"expected three comma-separated numbers, got {text!r}", param_hint=option)
    return values  # type: ignore[return-value]
