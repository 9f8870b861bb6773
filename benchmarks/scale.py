"""Steady at scale (issue 23): one long annotate() call, block by block, and how fast a resume finds its work.

Per configuration (a model on N samples), in a fresh process each, so that peak RSS is the run's own:

* **throughput per block** of `--block` samples (default 10k) within ONE annotate call over the whole dataset, and
  the decay = 1 - last block / first block (goal: <= 10 %); per block also the caller's RSS, the MindSpore Lite
  workers' RSS and mongod's CPU;
* **peak RSS** of the caller (VmHWM) and of the workers, compared with the same model's run on one block
  (goal: <= 1.2x);
* **MongoDB write share**: wall time inside annotate's bulk writes / the call's wall time, and mongod core-ms per
  image;
* **resume**: with 99 % of the samples done (the `_run` digest of the last 1 % removed), the wall time of the
  resumed call until its first batch is inferred and in total, plus a call with nothing left to do (pure
  planning); and the MongoDB documents the resume read (pymongo command monitoring): a plan that reads one
  document per *remaining* sample, not per sample, is what keeps it at seconds.

Samples are the CIFAR-10 test images (5000) and the 1000 ImageNet sample images, repeated (duplicate file paths;
the page cache then holds every file, so the figures are decode + inference + database, not disk).

    .venv/bin/python benchmarks/scale.py                         # resnet20 on 100k and 10k, mobilenet on 20k and 10k
    .venv/bin/python benchmarks/scale.py --only resnet20 --samples 20000 --block 5000   # smaller
    .venv/bin/python benchmarks/scale.py --json > scale.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import pymongo.monitoring
from measure import Component, CpuMeter, cmdline_contains, machine_info
from suite import cifar10, ensure_models, imagenet, isolate_fiftyone, setup_sources

# config → (model, image set, batch size, samples of the long run)
CONFIGS = {"resnet20": ("cifar10-resnet20", "cifar10", 64, 100_000),
           "mobilenet": ("tv-mobilenet-v2", "imagenet", 16, 20_000)}
BLOCK = 10_000
DONE_SHARE = 0.99  # the resume case: this share of the samples already labeled
FIELD = "scale"


def _rss_kb(pid: int | str = "self", key: str = "VmRSS") -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _worker_pids() -> list[int]:
    is_worker = cmdline_contains("runtime/worker.py")
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and is_worker(int(p), "")
            and _parent_chain_has(int(p), os.getpid())]


def _parent_chain_has(pid: int, ancestor: int) -> bool:
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rpartition(")")[2].split()[1])
        except OSError:
            return False
        if pid == ancestor:
            return True
    return False


def _mongod_pids() -> set[int]:
    """The mongod serving this process's FiftyOne database (FiftyOne starts it outside our process tree)."""
    db_dir = os.environ.get("FIFTYONE_DATABASE_DIR", "")
    return {int(p) for p in os.listdir("/proc") if p.isdigit()
            and cmdline_contains("mongod")(int(p), "") and db_dir and cmdline_contains(db_dir)(int(p), "")}


class _DocCounter(pymongo.monitoring.CommandListener):
    """pymongo command listener: documents returned by find/aggregate/getMore while `counting`."""

    def __init__(self) -> None:
        self.counting, self.docs, self.commands = False, 0, 0

    def started(self, event) -> None:
        pass

    def succeeded(self, event) -> None:
        if self.counting and event.command_name in ("find", "aggregate", "getMore"):
            cursor = event.reply.get("cursor", {})
            self.docs += len(cursor.get("firstBatch", cursor.get("nextBatch", [])))
            self.commands += 1

    def failed(self, event) -> None:
        pass


def child(config: str, samples: int, block: int) -> dict[str, Any]:
    """One configuration in this (fresh) process: the long call block by block, then the resume cases."""
    docs = _DocCounter()
    pymongo.monitoring.register(docs)  # before FiftyOne makes its client
    isolate_fiftyone()
    name, kind, batch_size, _ = CONFIGS[config]
    ensure_models([name], setup_sources())
    files = [str(f) for f in (cifar10(None) if kind == "cifar10" else imagenet(None)).files]

    import fiftyone as fo

    from fiftyone_mslite.integration.annotation import annotate
    from fiftyone_mslite.integration.model import load_model
    from fiftyone_mslite.integration.writer import LabelWriter

    dataset = fo.Dataset()
    for lo in range(0, samples, BLOCK):
        dataset.add_samples([fo.Sample(filepath=files[i % len(files)]) for i in range(lo, min(samples, lo + BLOCK))],
                            progress=False)
    meter = CpuMeter(components=[Component("inference", processes=cmdline_contains("runtime/worker.py")),
                                 Component("decode", threads="mslite-decode")],
                     separate=[Component("mongod", processes=_mongod_pids())])
    blocks: list[dict[str, Any]] = []
    state = {"done": 0, "db_s": 0.0, "first_batch": None}
    record, write = LabelWriter.record, LabelWriter._write

    def timed_record(self, batch) -> None:  # noqa: ANN001 - the writer's own method
        record(self, batch)
        if state["first_batch"] is None:
            state["first_batch"] = time.perf_counter()
        before = state["done"]
        state["done"] += len(batch.items)
        if state["track"] and (state["done"] // block > before // block or state["done"] == state["target"]):
            snap = meter.snapshot()
            usage = snap.since(state["snap"])
            n = state["done"] - state["at"]
            blocks.append({"samples": n, "images_per_s": n / usage.wall_s,
                           "core_ms_per_image": 1000 * usage.total_s / n,
                           "components_ms": {k: 1000 * v / n for k, v in usage.components.items()},
                           "mongod_ms": 1000 * usage.separate.get("mongod", 0.0) / n,
                           "db_write_s": state["db_s"] - state["db_at"], "rss_mb": _rss_kb() / 1024,
                           "workers_rss_mb": sum(_rss_kb(p) for p in _worker_pids()) / 1024,
                           "steal_pct": usage.steal_pct})
            state.update(snap=snap, at=state["done"], db_at=state["db_s"])

    def timed_write(self) -> None:  # noqa: ANN001
        t = time.perf_counter()
        try:
            write(self)
        finally:
            state["db_s"] += time.perf_counter() - t

    LabelWriter.record, LabelWriter._write = timed_record, timed_write
    model = load_model(name, threads=2)
    try:
        state.update(target=samples, snap=meter.snapshot(), at=0, db_at=0.0, track=True)
        start = time.perf_counter()
        summary = annotate(dataset, model, FIELD, batch_size=batch_size, progress=False)
        wall = time.perf_counter() - start
        if summary.processed != samples:
            raise RuntimeError(f"annotate labeled {summary.processed} of {samples}: {summary.to_dict()}")
        workers_peak = sum(_rss_kb(p, "VmHWM") for p in _worker_pids()) / 1024
        result = {"config": config, "model": name, "samples": samples, "block": block, "batch_size": batch_size,
                  "wall_s": wall, "images_per_s": samples / wall, "blocks": blocks,
                  "decay_pct": 100 * (1 - blocks[-1]["images_per_s"] / blocks[0]["images_per_s"])
                  if len(blocks) > 1 else None,
                  "db_write_s": state["db_s"], "db_write_share": state["db_s"] / wall,
                  "caller_peak_rss_mb": _rss_kb("self", "VmHWM") / 1024, "workers_peak_rss_mb": workers_peak}
        result["resume"] = _resume(dataset, model, annotate, batch_size, docs, state)
    finally:
        model.close()
        LabelWriter.record, LabelWriter._write = record, write
        dataset.delete()
    return result


def _resume(dataset, model, annotate, batch_size: int, docs: _DocCounter, state: dict[str, Any]) -> dict[str, Any]:
    """Time and database reads of (a) a call with nothing left to do, (b) a call with 1 - DONE_SHARE left."""
    n = len(dataset)
    out: dict[str, Any] = {}
    for case, left in (("nothing left", 0), (f"{100 * DONE_SHARE:g} % done", round(n * (1 - DONE_SHARE)))):
        if left:
            dataset.skip(n - left).set_field(f"{FIELD}_run", None).save()
        state.update(first_batch=None, track=False)
        docs.counting, docs.docs, docs.commands = True, 0, 0
        start = time.perf_counter()
        summary = annotate(dataset, model, FIELD, batch_size=batch_size, progress=False)
        end = time.perf_counter()
        docs.counting = False
        first = state["first_batch"]
        out[case] = {"remaining": left, "processed": summary.processed, "skipped": summary.skipped,
                     "wall_s": end - start, "to_first_batch_s": None if first is None else first - start,
                     "docs_read": docs.docs, "read_commands": docs.commands}
    return out


def run(configs: list[str], samples: int | None, block: int, log) -> dict[str, Any]:  # noqa: ANN001
    """Every configuration at its long size and at one block, each in a subprocess."""
    began = time.time()
    results: dict[str, Any] = {"machine": machine_info(("fiftyone", "numpy")), "block": block, "runs": []}
    for config in configs:
        long = samples or CONFIGS[config][3]
        for n in dict.fromkeys((long, block)):
            log(f"{config}: {n} samples")
            proc = subprocess.run([sys.executable, __file__, "--child", config, "--samples", str(n),
                                   "--block", str(block)], capture_output=True, text=True, check=False)
            if proc.returncode:
                raise SystemExit(f"{config} on {n} samples failed:\n{proc.stderr[-3000:]}")
            results["runs"].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        runs = {r["samples"]: r for r in results["runs"] if r["config"] == config}
        if long != block:
            runs[long]["peak_rss_vs_one_block"] = runs[long]["caller_peak_rss_mb"] / runs[block]["caller_peak_rss_mb"]
    results["elapsed_s"] = time.time() - began
    return results


def render(results: dict[str, Any]) -> str:
    """Markdown: one table of blocks per long run, and a summary table."""
    m = results["machine"]
    lines = [f"Measured {m['date']} on {m['cpu']}, {m['simd'].upper()} ({m['cores']} cores), FiftyOne "
             f"{m['versions']['fiftyone']}; one annotate call per run, blocks of {results['block']} samples; "
             f"took {results['elapsed_s'] / 60:.1f} min.", "",
             "| model | samples | images/s | decay (last / first block) | caller peak RSS (MB) | vs one block | "
             "workers peak RSS (MB) | DB write share | resume 99 % done: to first batch / total (s) | "
             "nothing left (s) | docs read on resume |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["runs"]:
        res = r["resume"]
        done = next(v for k, v in res.items() if k != "nothing left")
        decay = "—" if r["decay_pct"] is None else f"{r['decay_pct']:.1f} %"
        vs = f"{r['peak_rss_vs_one_block']:.2f}x" if "peak_rss_vs_one_block" in r else "—"
        first = "—" if done["to_first_batch_s"] is None else f"{done['to_first_batch_s']:.2f}"
        lines.append(f"| `{r['model']}` | {r['samples']} | {r['images_per_s']:.1f} | {decay} | "
                     f"{r['caller_peak_rss_mb']:.0f} | {vs} | {r['workers_peak_rss_mb']:.0f} | "
                     f"{100 * r['db_write_share']:.1f} % | {first} / {done['wall_s']:.2f} | "
                     f"{res['nothing left']['wall_s']:.2f} | {done['docs_read']} ({done['remaining']} left) |")
    for r in results["runs"]:
        if len(r["blocks"]) < 2:
            continue
        lines += ["", f"`{r['model']}`, {r['samples']} samples, per block:", "",
                  "| block | samples | images/s | core-ms/image (inference + decode + rest) | mongod core-ms/image | "
                  "DB write (s) | caller RSS (MB) | workers RSS (MB) | steal % |",
                  "|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
        for k, b in enumerate(r["blocks"], 1):
            c = b["components_ms"]
            split = " + ".join(f"{c.get(n, 0):.2f}" for n in ("inference", "decode", "rest"))
            steal = "—" if b["steal_pct"] is None else f"{b['steal_pct']:.1f}"
            lines.append(f"| {k} | {b['samples']} | {b['images_per_s']:.1f} | {b['core_ms_per_image']:.2f} ({split}) | "
                         f"{b['mongod_ms']:.2f} | {b['db_write_s']:.1f} | {b['rss_mb']:.0f} | "
                         f"{b['workers_rss_mb']:.0f} | {steal} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=list(CONFIGS), help="a configuration (repeatable)")
    ap.add_argument("--samples", type=int, default=None, help="samples of the long runs (default: per config)")
    ap.add_argument("--block", type=int, default=BLOCK, help="samples per block, and the reference run's size")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--child", choices=list(CONFIGS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.samples, args.block)))
        return
    results = run(args.only or list(CONFIGS), args.samples, args.block,
                  lambda msg: print(msg, file=sys.stderr, flush=True))
    print(json.dumps(results, indent=1) if args.json else render(results))


if __name__ == "__main__":
    main()
