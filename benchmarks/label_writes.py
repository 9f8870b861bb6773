"""annotate's label writes (issue 23, point 3: MongoDB writes were 35 % of a resnet20 run's wall time).

Two writers, paired and interleaved (`measure.run_paired`) on the same segments:

* **set_values per field**: annotate's writer until 2026-12-03, and what FiftyOne's public API offers: one id-keyed
  `set_values` per field and flush (the label, then its run digest), each call through FiftyOne's default latency
  batcher (batches of 1, 8, 64, ... per call: 4 round trips per field for 256 samples);
* **one update per sample**: today's `LabelWriter`, a sample's label and digest in one update, one round trip
  per flush.

`--mode writes` (default): the writes alone, on pre-made `fo.Classification`s (`--logits`: with 10 stored
logits), in flushes of `writer.FLUSH_EVERY`: samples written per second, the caller's and mongod's CPU per sample.
`--mode annotate`: whole `annotate` calls (cifar10-resnet20, batch 64, on the CIFAR-10 test images) with each
writer: what the change is worth to a fast model's images/s.

    .venv/bin/python benchmarks/label_writes.py [--mode writes|annotate] [--pairs N] [--logits] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from measure import describe_machine, machine_info, markdown_table, run_paired
from suite import bench_dataset, cifar10, cpu_meter, ensure_models, isolate_fiftyone, setup_sources

DIGEST = "0" * 64
MODEL = "cifar10-resnet20"


def writer_classes() -> dict[str, type]:
    from fiftyone_mslite.integration.writer import LabelWriter

    class PerFieldWriter(LabelWriter):
        """The writer until 2026-12-03: one id-keyed set_values per field and flush, each label before its
        digest."""

        def _write(self) -> None:
            emb = self.embeddings_field
            for name in (self.field, emb, emb and emb + "_run", self.field + "_run", self.field + "_error"):
                values = {sid: v[name] for sid, v in self.pending.items() if name and name in v}
                if values:
                    self.samples.set_values(name, values, key_field="id")

    return {"set_values per field": PerFieldWriter, "one update per sample": LabelWriter}


def writes_only(dataset, writer_class: type, field: str, labels: dict[str, Any]) -> Callable[[list[str]], None]:
    from fiftyone_mslite.integration.writer import FLUSH_EVERY, AnnotateSummary

    def run(ids: list[str]) -> None:
        writer = writer_class(dataset, None, field, DIGEST, set(), AnnotateSummary(field, "bench"), [])
        for lo in range(0, len(ids), FLUSH_EVERY):
            for i in ids[lo:lo + FLUSH_EVERY]:
                writer.ok(i, labels[i])
            writer.flush()

    return run


def whole_annotate(model, writer_class: type, field: str) -> Callable[[Any], None]:
    from fiftyone_mslite.integration import annotation

    def run(samples) -> None:
        annotation.LabelWriter = writer_class
        summary = annotation.annotate(samples, model, field, batch_size=64, overwrite=True, progress=False)
        if summary.processed != len(samples):
            raise RuntimeError(f"labeled {summary.processed} of {len(samples)}: {summary.to_dict()}")

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("writes", "annotate"), default="writes")
    ap.add_argument("--samples", type=int, default=20_480, help="samples of the writes-only dataset")
    ap.add_argument("--segment", type=int, default=2560, help="samples per timed segment")
    ap.add_argument("--pairs", type=int, default=10, help="interleaved pairs")
    ap.add_argument("--logits", action="store_true", help="store 10 logits with each label")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    args = ap.parse_args()
    isolate_fiftyone()
    import fiftyone as fo

    from fiftyone_mslite.integration import annotation
    from fiftyone_mslite.integration.model import load_model

    classes = writer_classes()
    names = list(classes)
    if args.mode == "writes":
        dataset = fo.Dataset()
        dataset.add_samples([fo.Sample(filepath=f"/bench/{i}.png") for i in range(args.samples)], progress=False)
        items = dataset.values("id")
        rng = np.random.default_rng(0)
        labels = {i: fo.Classification(label=f"class{k % 10}", confidence=float(rng.random()),
                                       logits=rng.random(10, dtype=np.float32) if args.logits else None)
                  for k, i in enumerate(items)}
        paths = {name: writes_only(dataset, cls, f"w{k}", labels) for k, (name, cls) in enumerate(classes.items())}
        what, unit = f"{args.samples} pre-made labels, logits {'stored' if args.logits else 'not stored'}", "sample"
        model = None
    else:
        missing = ensure_models([MODEL], setup_sources())
        if missing:
            raise SystemExit(f"{MODEL}: {missing[MODEL]}")
        dataset = items = bench_dataset(cifar10(None))
        model = load_model(MODEL, threads=2)
        paths = {name: whole_annotate(model, cls, f"a{k}") for k, (name, cls) in enumerate(classes.items())}
        what, unit = f"annotate, {MODEL}, batch 64, {len(items)} CIFAR-10 test images", "img"
    kept = annotation.LabelWriter
    try:
        result = run_paired(paths, items, args.segment, pairs=args.pairs, baseline=names[0], meter=cpu_meter(),
                            log=lambda msg: print(msg, flush=True))
    finally:
        annotation.LabelWriter = kept
        if model is not None:
            model.close()
        dataset.delete()
    info = machine_info(("fiftyone", "pymongo"))
    ratio = result.ratios[names[1]]
    print(f"\n{what}, segments of {args.segment}; {describe_machine(info)}\n\n{markdown_table(result, unit=unit)}"
          f"\n\n{names[1]} ÷ {names[0]}: **{ratio.median:.3f}x** {unit}/s (per pair, IQR {ratio.q1:.3f}–"
          f"{ratio.q3:.3f})")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "mode": args.mode, "logits": args.logits,
                                         "result": result.to_dict()}, indent=1, default=str))


if __name__ == "__main__":
    main()
