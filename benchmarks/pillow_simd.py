"""Today's decode + resize under Pillow-SIMD instead of Pillow (issue 23, point 2: "any other well-kept decoder").

Pillow-SIMD is a drop-in fork of Pillow whose resampling uses SSE4/AVX2; decoding is the same libjpeg-turbo. It
replaces the `PIL` package, so it cannot sit beside Pillow in one interpreter (nor in FiftyOne's environment
without uninstalling Pillow). This benchmark therefore runs annotate's own decode path (`decode._today`: draft
decode + antialiased resize + crop) in two child processes, one per interpreter, and compares:

* **cost**: core-ms per image on one thread, paired and interleaved (`measure.run_paired`; a path = one child
  decoding a segment; the meter counts the children's CPU);
* **results**: the model-input pixels of the 1000 ImageNet sample images for tv-mobilenet-v2 and
  coral-mobilenet-v2-quant (identical images, largest difference) and, from them, top-1 agreement and accuracy
  against Pillow (the bar of `decode.py`: >= 99.5 % agreement, top-1 within 0.2 points).

Build the Pillow-SIMD interpreter once (AVX2 kernels need the flag; a venv that sees this one's packages after its
own, for numpy and pydantic):

    python3.11 -m venv /tmp/simd && CC="cc -mavx2" /tmp/simd/bin/pip install --no-binary pillow-simd pillow-simd
    SITE=$(/tmp/simd/bin/python -c 'import site; print(site.getsitepackages()[0])')
    echo "$PWD/.venv/lib/python3.11/site-packages" > "$SITE/zz-main.pth"
    .venv/bin/python benchmarks/pillow_simd.py --simd-python /tmp/simd/bin/python [--pairs 20] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from measure import REPO, describe_machine, machine_info, markdown_table, run_paired

MODELS = ("tv-mobilenet-v2", "coral-mobilenet-v2-quant")
HERE = Path(__file__).resolve().parent


class Child:
    """One interpreter decoding on request: a line of JSON in ({"files", "fit", "out"?}), a line out when done."""

    def __init__(self, python: str):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
        self.proc = subprocess.Popen([python, __file__, "--child"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env, cwd=HERE)
        self.pil = self.ask({"version": True})

    def ask(self, request: dict[str, Any]) -> str:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        if not reply.startswith("ok"):
            raise RuntimeError(f"decode child failed: {reply or self.proc.poll()}")
        return reply[3:]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def child() -> None:
    import PIL
    from decode import _today

    for line in sys.stdin:
        request = json.loads(line)
        if request.get("version"):
            print(f"ok {PIL.__version__}", flush=True)
            continue
        with open(request["fit"], "rb") as f:
            fit = pickle.load(f)
        pixels = [_today(Path(p), fit) for p in request["files"]]
        if request.get("out"):
            np.save(request["out"], np.stack(pixels))
        print("ok", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--simd-python", help="an interpreter with pillow-simd (see above)")
    ap.add_argument("--segment", type=int, default=100, help="images per timed segment")
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child()
        return
    if not args.simd_python:
        ap.error("--simd-python is required")
    from decode import AGREEMENT_BAR, TOP1_BAR, agreement
    from suite import ensure_models, imagenet, setup_sources

    from fiftyone_mslite.classifier import load_classifier

    missing = ensure_models(list(MODELS), setup_sources())
    if missing:
        raise SystemExit("; ".join(f"{name}: {why}" for name, why in missing.items()))
    images = imagenet(None)
    files = [str(f) for f in images.files]
    children = {"Pillow": Child(sys.executable), "Pillow-SIMD": Child(args.simd_python)}
    versions = {name: c.pil for name, c in children.items()}
    tmp = Path(tempfile.mkdtemp(prefix="pillow-simd-"))
    row = {f: k for k, f in enumerate(files)}
    results: dict[str, Any] = {"machine": machine_info(("numpy",)), "pil_versions": versions, "models": {}}
    try:
        for model in MODELS:
            with load_classifier(model) as clf:
                fit_file = tmp / f"{model}.fit"
                fit_file.write_bytes(pickle.dumps(clf.fit))
                pixels = {}
                for name, c in children.items():
                    c.ask({"files": files, "fit": str(fit_file), "out": str(tmp / f"{name}.npy")})
                    pixels[name] = np.load(tmp / f"{name}.npy")
                diff = np.abs(pixels["Pillow"].astype(np.int16) - pixels["Pillow-SIMD"].astype(np.int16))
                paths = {name: (lambda f, fit, px=px: px[row[str(f)]]) for name, px in pixels.items()}
                agree = agreement(clf, images.files, images.truth, {"Pillow (today)": paths["Pillow"],
                                                                     "Pillow-SIMD": paths["Pillow-SIMD"]})
                results["models"][model] = {
                    "identical_images": int(sum(not d.any() for d in diff)), "images": len(files),
                    "max_abs_diff": int(diff.max()), "mean_abs_diff": float(diff.mean()),
                    "agreement": agree["Pillow-SIMD"]}
                if model == MODELS[0]:
                    cost_fit = str(fit_file)

        def runner(c: Child):
            return lambda chunk: c.ask({"files": list(chunk), "fit": cost_fit})

        res = run_paired({name: runner(c) for name, c in children.items()}, files, args.segment, pairs=args.pairs,
                         baseline="Pillow", log=lambda msg: print(msg, flush=True))
        results["cost"] = res.to_dict()
    finally:
        for c in children.values():
            c.close()
    ratio = res.ratios["Pillow-SIMD"]
    print(f"\n{describe_machine(results['machine'])}; Pillow {versions['Pillow']}, Pillow-SIMD "
          f"{versions['Pillow-SIMD']}; decode + resize of {MODELS[0]}'s input on one thread\n\n"
          f"{markdown_table(res, unit='img')}\n\nPillow-SIMD ÷ Pillow: **{ratio.median:.3f}x** img/s (per pair, IQR "
          f"{ratio.q1:.3f}–{ratio.q3:.3f})\n")
    for model, r in results["models"].items():
        a = r["agreement"]
        ok = a["agree_pct"] >= AGREEMENT_BAR and abs(a["top1_delta"]) <= TOP1_BAR
        print(f"{model}: identical pixels on {r['identical_images']}/{r['images']} images (max |Δ| "
              f"{r['max_abs_diff']}, mean {r['mean_abs_diff']:.3f}); top-1 agreement {a['agree_pct']:.1f} %, "
              f"top-1 {a['top1_pct']:.1f} % ({a['top1_delta']:+.1f}): {'passes' if ok else 'fails'} the bar")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
