"""annotate(engine="ray") against the local engine, and where a cluster's database becomes the limit.

Measurements on this machine, one run, paired and interleaved (`measure.run_paired`), tv-mobilenet-v2,
batch 16, at the same total cores (a local Ray with `num_cpus` = this machine's cores; local = 1 process x
`cores` threads, ray = `cores` actors x 1 thread, docs/scale-out.md's sizing rule):

* **a long job**: one call over the 1000 ImageNet sample images repeated `LONG_PASSES` times per engine, end
  to end: the Ray call pays its actor pool's start once, as a real job does.
* **one call on the 1000 images**, end to end, and the pool's **start** (a call of one batch per actor); the
  **steady** rate of a started pool, per pair = (1000 - that batch) / (the call's time - the median start).
* **write capacity**: the driver's side of a run alone, as many images per second as it can turn into labels and
  write: the classifier's post-processing of raw outputs (what actors send back) + `model.to_labels` + the
  annotate writer (`LabelWriter`: one update per sample with its label and run digest), for chunk sizes 256-4096,
  with and without stored logits (`--only writes`: this alone, the engines' figures kept from the raw results).
* **projection**: nodes a cluster can have before the driver + database, not inference, is the limit =
  write capacity / per-node steady throughput.

    .venv/bin/python benchmarks/ray_engine.py [--pairs N] [--write-docs]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

# read when Ray is imported: its nodes stay on 127.0.0.1, no usage report
os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")

import numpy as np  # noqa: E402
from measure import (  # noqa: E402
    Component,
    CpuMeter,
    cmdline_contains,
    cores,
    describe_machine,
    machine_info,
    pair_ratios,
    run_paired,
    spread,
)
from suite import DOCS_DIR, ensure_models, imagenet, isolate_fiftyone, replace_section, setup_sources  # noqa: E402

MODEL = "tv-mobilenet-v2"
BATCH = 16
LONG_PASSES = 5  # the long job: the 1000 images this many times in one call
CHUNKS = (256, 512, 1024, 2048, 4096)
WRITE_SAMPLES = 4096
RAY_PROCESSES = ("raylet", "gcs_server")
DOC = DOCS_DIR / "scale-out.md"
RESULTS = DOCS_DIR / "images" / "ray_engine.json"


def _meter() -> CpuMeter:
    """CPU of our tree by component, Ray's processes apart. Ray's actors exit inside a segment and are reaped
    outside our tree, so their CPU cannot be counted per segment: the Ray path reports throughput, not CPU per
    image. (FiftyOne's mongod is not in our tree either.)"""
    return CpuMeter(components=[Component("inference", processes=cmdline_contains("runtime/worker.py")),
                                Component("decode", threads="mslite-decode")],
                    separate=[Component("ray", processes=lambda pid, name: name in RAY_PROCESSES
                                        or cmdline_contains("ray::")(pid, name))])


def engines(dataset, long_job, pairs: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Local vs Ray annotate: a long job, one call on the 1000 images, the pool's start and its steady rate."""
    import ray

    from fiftyone_mslite.integration.annotation import annotate
    from fiftyone_mslite.integration.model import load_model

    n = cores()

    def path(model, engine: str, **extra: Any) -> Callable[[Any], float]:
        def run(samples) -> float:
            t = time.perf_counter()
            s = annotate(samples, model, f"pred_{engine}_{len(samples)}", batch_size=BATCH, overwrite=True,
                         progress=False, engine=engine, **extra)
            if s.processed != len(samples):
                raise RuntimeError(f"{engine}: {s.processed} of {len(samples)} labeled")
            return time.perf_counter() - t
        return run

    ray.init(address="local", num_cpus=n, object_store_memory=200 << 20, include_dashboard=False,
             log_to_driver=False)
    local = load_model(MODEL, threads=n)  # the local engine's default: one process, threads = cores
    one = load_model(MODEL, threads=1)  # Ray: `cores` actors x 1 thread (docs/scale-out.md's sizing rule)
    try:
        paths = {"local": path(local, "local"), "ray": path(one, "ray", engine_options={"actors": n})}
        log(f"long job: {len(long_job)} images per call")
        long = run_paired(paths, long_job, len(long_job), pairs=max(2, pairs // 3), baseline="local",
                          meter=_meter(), essential=("inference", "decode"), log=log)
        log(f"one call: {len(dataset)} images")
        call = run_paired(paths, dataset, len(dataset), pairs=pairs, baseline="local", meter=_meter(),
                          essential=("inference", "decode"), log=log)
        small = n * BATCH  # one batch per actor: the pool's start and one batch
        starts = [paths["ray"](dataset[:small]) for _ in range(pairs)]
        log(f"  start: {', '.join(f'{t:.2f}' for t in starts)} s")
    finally:
        local.close()
        one.close()
        ray.shutdown()
    start = float(np.median(starts))
    steady = [(len(dataset) - small) / (len(dataset) / rate - start) for rate in call.paths["ray"].segments]
    return {"long": long.to_dict(), "call": call.to_dict(), "start_runs_s": starts, "start_s": start,
            "start_images": small, "steady": spread(steady).to_dict(),
            "steady_ratio": pair_ratios(steady, call.paths["local"].segments).to_dict()}


def write_capacity(dataset, images, pairs: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Images/s the driver labels and writes, per chunk size: blocks of raw outputs as actors send them back,
    recorded as the Ray driver records them (`LabelWriter.record`: post-processing, to_labels, the buffers),
    `LabelWriter` flushes of `chunk` samples."""
    from fiftyone_mslite.adapters.images import load_image
    from fiftyone_mslite.engines.ray_engine import MAX_BATCHES_PER_BLOCK
    from fiftyone_mslite.integration import compat
    from fiftyone_mslite.integration.locks import FieldLock
    from fiftyone_mslite.integration.model import load_model
    from fiftyone_mslite.integration.writer import AnnotateSummary, LabelWriter
    from fiftyone_mslite.pipeline import Batch

    block = BATCH * MAX_BATCHES_PER_BLOCK

    def path(model, chunk: int, outputs: list[np.ndarray]) -> Callable[[Any], float]:
        def run(samples) -> float:
            ids = samples.values("id")
            name = f"w{chunk}_{int(model.store_logits)}"
            with FieldLock(compat.root_dataset(samples).name, name) as lock:
                writer = LabelWriter(samples, model, name, "bench", set(), AnnotateSummary(name, model.name), [lock])
                t = time.perf_counter()
                for lo in range(0, len(ids), chunk):
                    part = ids[lo:lo + chunk]
                    for k in range(0, len(part), block):  # as the Ray driver records them: a block at a time
                        rows = [(i, "") for i in part[k:k + block]]
                        writer.record(Batch(rows, ready=rows, outputs=[o[:len(rows)] for o in outputs]))
                    writer.flush()
                return len(ids) / (time.perf_counter() - t)
        return run

    with load_model(MODEL, threads=cores()) as model:
        clf = model.classifier
        files = images.files[:block]
        outputs = clf.submit(np.stack([clf.prepare(load_image(f)) for f in files])).result()
        out: dict[str, Any] = {}
        for logits in (False, True):
            model.store_logits = logits
            log(f"write capacity, logits={logits}")
            res = run_paired({f"chunk {c}": path(model, c, outputs) for c in CHUNKS}, dataset, WRITE_SAMPLES,
                             pairs=pairs, meter=_meter(), essential=(), log=log)
            out["with logits" if logits else "without logits"] = res.to_dict()
        return out


def _row(name: str, p: dict[str, Any], ratio: dict[str, Any] | None) -> str:
    t = p["throughput"]
    r = "1" if ratio is None else f"**{ratio['median']:.3f}** ({ratio['q1']:.3f}–{ratio['q3']:.3f})"
    return (f"| {name} | {t['median']:.1f} ({t['q1']:.1f}–{t['q3']:.1f}) | {r} | {p['steal_pct']:.1f} | "
            f"{p['idle_pct']:.1f} |")


def render(res: dict[str, Any]) -> str:
    m, e = res["machine"], res["engines"]
    wm = res.get("writes_machine", m)
    long, call = e["long"], e["call"]
    n, images = call["cores"], call["segment"]
    steady, sr = e["steady"], e["steady_ratio"]
    head = ["| engine | img/s median (IQR) | ÷ local, per pair (IQR) | steal % | idle % |", "|---|---:|---:|---:|---:|"]
    lines = [f"Measured {m['date']} on {describe_machine(m)}, a **shared** machine (other engineers' jobs ran "
             f"beside it: steal {call['steal_pct']:.1f} %, idle {call['idle_pct']:.1f} % over the 1000-image "
             "calls). Rerun: `.venv/bin/python benchmarks/ray_engine.py --write-docs`. Raw: "
             "`docs/images/ray_engine.json`. Both engines at the same "
             f"{n} cores: local = 1 process x {n} threads; ray = {n} actors x 1 thread on a local Ray with "
             f"{n} CPUs; tv-mobilenet-v2, batch {BATCH}.", "",
             f"**A long job** ({long['segment']} images in one call: the 1000 ImageNet sample images "
             f"{long['segment'] // images} times; {long['pairs']} interleaved pairs, end to end, the Ray pool's "
             "start included):", "", *head,
             _row("local", long["paths"]["local"], None), _row("ray", long["paths"]["ray"], long["ratios"]["ray"]),
             "", f"**One call on the {images} images** ({call['pairs']} interleaved pairs, end to end):", "", *head,
             _row("local", call["paths"]["local"], None), _row("ray", call["paths"]["ray"], call["ratios"]["ray"]),
             "", f"A Ray call first starts its {n} actors (a Ray worker process each, which imports the "
             "classifier — not FiftyOne — and opens its MindSpore Lite session): a call of one batch per actor "
             f"({e['start_images']} images) takes **{e['start_s']:.2f} s** (median of {len(e['start_runs_s'])}). "
             f"Without that start, the pool labels **{steady['median']:.1f} img/s** (IQR {steady['q1']:.1f}–"
             f"{steady['q3']:.1f}; per pair: (1000 − {e['start_images']}) images / (the call's time − the median "
             f"start)), **{sr['median']:.3f}x** local (per pair, IQR {sr['q1']:.3f}–{sr['q3']:.3f}): the "
             f"per-node throughput of a long job on a {n}-core node. Ray's own CPU is not counted per image: its "
             "actors exit inside a segment and are reaped outside the measured tree.", "",
             "**Driver + MongoDB write capacity** (post-processing of the raw outputs actors return, to_labels, "
             f"annotate's writer: one update per sample with its label and run digest, one round trip per flush; "
             f"{WRITE_SAMPLES} samples per segment; mongod on the same machine; measured {wm['date']} on "
             f"{describe_machine(wm)}, `--only writes` reruns it alone):", "",
             "| chunk | labels/s without logits (IQR) | labels/s with 1000 logits (IQR) |", "|---:|---:|---:|"]
    w0, w1 = res["writes"]["without logits"]["paths"], res["writes"]["with logits"]["paths"]
    for c in CHUNKS:
        a, b = w0[f"chunk {c}"]["throughput"], w1[f"chunk {c}"]["throughput"]
        lines.append(f"| {c} | {a['median']:.0f} ({a['q1']:.0f}–{a['q3']:.0f}) | {b['median']:.0f} "
                     f"({b['q1']:.0f}–{b['q3']:.0f}) |")
    best0 = max(w0[f"chunk {c}"]["throughput"]["median"] for c in CHUNKS)
    best1 = max(w1[f"chunk {c}"]["throughput"]["median"] for c in CHUNKS)
    node = steady["median"]
    other = "" if wm["cpu"] == m["cpu"] else f" ({m['cpu']}; the writes: {wm['cpu']})"
    lines += ["", f"**Projected** (not measured: one node here): with {node:.0f} img/s per {n}-core node{other}, one "
              f"driver and its MongoDB keep up with about **{best1 / node:.0f} nodes** when logits are stored "
              f"({best1:.0f} labels/s) and **{best0 / node:.0f} nodes** without ({best0:.0f} labels/s); past "
              "that the database, not inference, sets the pace. The write rate was measured with driver and "
              f"mongod sharing these {n} cores; a dedicated database host moves the limit up."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=6, help="interleaved pairs per comparison")
    ap.add_argument("--write-docs", action="store_true", help="update docs/scale-out.md and its raw results")
    ap.add_argument("--only", choices=("writes",), help="measure the write capacity alone (after a change to the "
                    "writer); the engines' figures stay those of the raw results")
    args = ap.parse_args()
    isolate_fiftyone()
    missing = ensure_models([MODEL], setup_sources())
    if missing:
        raise SystemExit(f"{MODEL}: {missing[MODEL]}")
    import fiftyone as fo

    def log(msg: str) -> None:
        print(msg, flush=True)

    images = imagenet(None)
    writes = fo.Dataset()
    writes.add_samples([fo.Sample(filepath=f"/bench/{i}.jpg") for i in range(WRITE_SAMPLES)])
    if args.only == "writes":
        res = json.loads(RESULTS.read_text())
    else:
        dataset = fo.Dataset()
        dataset.add_samples([fo.Sample(filepath=str(f)) for f in images.files])
        long_job = fo.Dataset()
        long_job.add_samples([fo.Sample(filepath=str(f)) for _ in range(LONG_PASSES) for f in images.files])
        res = {"machine": machine_info(("fiftyone", "ray", "numpy")),
               "engines": engines(dataset, long_job, args.pairs, log)}
    res["writes"] = write_capacity(writes.view(), images, max(2, args.pairs // 2), log)
    res["writes_machine"] = machine_info(("fiftyone", "pymongo"))
    text = render(res)
    print(text)
    if args.write_docs:
        RESULTS.write_text(json.dumps(res, indent=1, default=str))
        DOC.write_text(replace_section(DOC.read_text(), "ray-benchmark", text, "## Measured here"))


if __name__ == "__main__":
    main()
