"""The App's "apply model" operator against `annotate` on the same images, in the same run (issue 19's measure:
the operator at >= 0.9x annotate's throughput).

Paths, each one call over the whole image set (the 1000 ImageNet sample images by default), paired and interleaved
(`measure.run_paired`), tv-mobilenet-v2 by catalog name (each path loads it, as the operator does), batch 16,
every label redone (overwrite):

* **annotate**: `annotate(samples, "tv-mobilenet-v2", ...)`, the baseline;
* **operator, immediate**: `@fiftyone-mslite/mslite/apply_model` through FiftyOne's own executor, as the App runs
  it (the run on a worker thread, progress messages yielded meanwhile);
* **operator, delegated**: the same operator queued and run by FiftyOne's delegated-operation service, as
  `fiftyone delegated launch` runs it (progress recorded on the operation).

    .venv/bin/python benchmarks/app_operator.py [--pairs N] [--limit N] [--write-docs]

`--limit 20` is a smoke test (a few seconds); the figures are meant for a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

from measure import describe_machine, machine_info, markdown_table, run_paired
from suite import (
    BATCH_SIZE,
    DOCS_DIR,
    THROUGHPUT_MODEL,
    cpu_meter,
    ensure_models,
    imagenet,
    isolate_fiftyone,
    replace_section,
    setup_sources,
)

OPERATOR = "@fiftyone-mslite/mslite/apply_model"
TARGET = 0.9  # the operator's throughput / annotate's, per pair
DOC = DOCS_DIR / "app.md"
RESULTS = DOCS_DIR / "images" / "app_operator.json"


def annotate_path(field: str) -> Callable[[Any], float]:
    from fiftyone_mslite.integration.annotation import annotate

    def run(samples) -> float:
        t = time.perf_counter()
        summary = annotate(samples, THROUGHPUT_MODEL, field, batch_size=BATCH_SIZE, overwrite=True, progress=False)
        _check(samples, field, summary.processed)
        return time.perf_counter() - t

    return run


def operator_path(field: str, delegated: bool) -> Callable[[Any], float]:
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    params = {"model": THROUGHPUT_MODEL, "label_field": field, "batch_size": BATCH_SIZE, "overwrite": True}
    service = DelegatedOperationService()

    def run(samples) -> float:
        ctx = {"dataset": samples._dataset.name, "view": samples, "params": params}
        t = time.perf_counter()
        result = foo.execute_operator(OPERATOR, ctx={**ctx, "request_delegation": delegated})
        if result.error is not None:
            raise RuntimeError(result.error_message)
        if delegated:
            [done] = service.execute_queued_operations(operator=OPERATOR, dataset_name=samples._dataset.name)
            if done.error is not None:
                raise RuntimeError(str(done.error))
        elapsed = time.perf_counter() - t
        _check(samples, field, None)
        return elapsed

    return run


def _check(samples, field: str, processed: int | None) -> None:
    labeled = samples.count(field)
    if labeled != len(samples) or processed not in (None, len(samples)):
        raise RuntimeError(f"{field}: {labeled} of {len(samples)} labeled")


def render(res: dict[str, Any]) -> str:
    r = res["paired"]
    ratios = ", ".join(f"{name} **{v['median']:.3f}x** (IQR {v['q1']:.3f}–{v['q3']:.3f})"
                       for name, v in r["ratios"].items())
    return "\n".join([
        f"Measured {res['machine']['date']} on {describe_machine(res['machine'])}: {r['segment']} ImageNet sample "
        f"images per call, {r['pairs']} interleaved pairs, {THROUGHPUT_MODEL} by catalog name, batch {BATCH_SIZE}. "
        "Rerun: `.venv/bin/python benchmarks/app_operator.py --write-docs`. Raw: `docs/images/app_operator.json`.",
        "", res["table"], "",
        f"Per pair, operator ÷ annotate: {ratios} (target ≥ {TARGET})."])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=5, help="interleaved pairs of whole-set calls")
    ap.add_argument("--limit", type=int, default=None, help="images (default: all 1000)")
    ap.add_argument("--write-docs", action="store_true", help="update docs/app.md and its raw results")
    args = ap.parse_args()
    isolate_fiftyone()
    os.environ["FIFTYONE_PLUGINS_DIR"] = tempfile.mkdtemp(prefix="fiftyone-mslite-bench-plugins-")
    missing = ensure_models([THROUGHPUT_MODEL], setup_sources())
    if missing:
        raise SystemExit(f"{THROUGHPUT_MODEL}: {missing[THROUGHPUT_MODEL]}")
    import fiftyone as fo

    from fiftyone_mslite.integration.zoo import install_plugin

    install_plugin()
    images = imagenet(args.limit)
    dataset = fo.Dataset()
    dataset.add_samples([fo.Sample(filepath=str(f)) for f in images.files])
    paths = {"annotate": annotate_path("by_annotate"),
             "operator, immediate": operator_path("by_operator", delegated=False),
             "operator, delegated": operator_path("by_delegated", delegated=True)}
    result = run_paired(paths, dataset.view(), len(dataset), pairs=args.pairs, baseline="annotate",
                        meter=cpu_meter(), essential=("inference", "decode"), log=lambda m: print(m, flush=True))
    res = {"machine": machine_info(("fiftyone", "numpy")), "paired": result.to_dict(),
           "table": markdown_table(result)}
    text = render(res)
    print(text)
    if args.write_docs:
        RESULTS.write_text(json.dumps(res, indent=1, default=str))
        DOC.write_text(replace_section(DOC.read_text(), "app-operator-benchmark", text,
                                       "## Throughput: the operator against annotate"))


if __name__ == "__main__":
    main()
