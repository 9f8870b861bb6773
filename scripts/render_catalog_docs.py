"""Render docs/catalog.md from the catalog: the seed page's figures next to what we established.

`.venv/bin/python scripts/render_catalog_docs.py > docs/catalog.md`; a test keeps the committed file current.
"""
from __future__ import annotations

from fiftyone_mslite.catalog.registry import Catalog, catalog
from fiftyone_mslite.catalog.schema import ModelEntry

HEADER = """# Model catalog

Generated from `models.yaml` by `.venv/bin/python scripts/render_catalog_docs.py > docs/catalog.md` (a test checks it is
current). *Reported* columns are MindSpore Lite's "Image Classification Model" page verbatim (Mate30, 4 threads);
*facts* are what we established, each marked **verified** (read from the file, the upstream code or hub page),
**corrected** (the seed page is wrong) or *inferred*, with its source. Format "ms (v0 → upgraded)": a seed file
known to use the legacy schema, which MindSpore Lite 2.x refuses; `models fetch` (and `load_model`, `predict`)
upgrade it once to the current schema ([legacy-ms.md](legacy-ms.md)); any other pre-1.1 seed file is upgraded the
same way when its download turns out to be legacy.
Field reference: [catalog-format.md](catalog-format.md).
"""


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:g}%"


def _row(e: ModelEntry) -> str:
    r = e.reported
    fmt = e.source.resolved_format + (" → ms" if e.source.needs_conversion else "")
    if e.source.file_schema == "v0":
        fmt += " (v0 → upgraded)"
    return (f"| `{e.name}` | {e.task} | {e.labels} ({e.num_classes}) | {e.preprocess.input_size} | {fmt} | "
            f"{r.size_mb if r and r.size_mb else '-'} | {_pct(r.top1 if r else None)} | "
            f"{_pct(r.top5 if r else None)} | {_pct(r.f1 if r else None)} | "
            f"{r.latency_ms if r and r.latency_ms else '-'} |")


def render(cat: Catalog) -> str:
    builtin = [e for e in cat.models.values() if e.origin == "builtin"]
    lines = [HEADER, "## Models", "",
             "| name | task | labels | input | format | size MB (reported) | top-1 (reported) | top-5 (reported) "
             "| F1 (reported) | latency ms (reported) |",
             "|---|---|---|---:|---|---:|---:|---:|---:|---:|"]
    lines += [_row(e) for e in builtin]
    lines += ["", "## Facts and sources", ""]
    for e in builtin:
        lines.append(f"### `{e.name}`\n\n{e.description}\n")
        url = e.source.url or e.source.path
        sha = f" (sha256 `{e.source.sha256[:16]}…`)" if e.source.sha256 else " (no sha256 published)"
        lines.append(f"- source: <{url}>{sha}")
        if e.source.note:
            lines.append(f"  — {e.source.note}")
        lines += [f"- alternative: <{a.url or a.path}> — {a.note or ''}" for a in e.alternatives]
        pre = e.preprocess
        lines.append(f"- pre-processing: {pre.resize} resize, crop fraction {pre.crop_fraction}, {pre.interpolation}, "
                     f"mean {list(pre.mean)}, std {list(pre.std)}")
        for f in e.facts:
            value = f" = {f.value}" if f.value is not None else ""
            lines.append(f"- {f.field}{value}: **{f.status}** — {f.source}")
        lines.append("")
    lines += ["## Label sets", "", "| name | classes | loader | description |", "|---|---:|---|---|"]
    lines += [f"| `{s.name}` | {s.num_classes} | {s.loader} | {s.description} |" for s in cat.label_sets.values()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(catalog()), end="")
