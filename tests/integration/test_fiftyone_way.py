"""What a FiftyOne user expects of a model package and finds (issue 24's list)."""
import fiftyone as fo
import numpy as np

from fiftyone_mslite.integration.evaluation import evaluate


def test_confusion_matrix_plot_works_in_the_installed_environment():
    """FiftyOne's own `results.plot_confusion_matrix()` after our evaluate (plotly 6 needs anywidget for it)."""
    dataset = fo.Dataset()
    pairs = [("a", "a"), ("b", "a"), ("b", "b"), ("c", "c")]
    dataset.add_samples([fo.Sample(filepath=f"/img/{i}.jpg", ground_truth=fo.Classification(label=gt),
                                   pred=fo.Classification(label=p, confidence=0.9, logits=np.zeros(3)))
                         for i, (gt, p) in enumerate(pairs)])
    summary = evaluate(dataset, "pred", eval_key="cm")
    plot = dataset.load_evaluation_results(summary.eval_key).plot_confusion_matrix()
    assert type(plot).__name__ == "InteractiveHeatmap"
    dataset.delete()


def test_plugin_and_zoo_uninstall_undo_install(tmp_path):
    import json

    from helpers.cli import cli

    dirs = {"FIFTYONE_PLUGINS_DIR": str(tmp_path / "plugins"), "FIFTYONE_MODEL_ZOO_DIR": str(tmp_path / "zoo")}
    installed = json.loads(cli("plugin", "install", "--json", **dirs).stdout)
    link, source = tmp_path / "plugins" / "fiftyone-mslite", tmp_path / "zoo" / "fiftyone-mslite"
    assert installed["plugin"] == str(link) and link.is_symlink() and (source / "manifest.json").is_file()

    removed = cli("plugin", "uninstall", "--json", **dirs)
    assert removed.returncode == 0 and json.loads(removed.stdout)["removed"] == str(link)
    assert not link.exists() and not link.is_symlink() and (source / "manifest.json").is_file()
    again = cli("plugin", "uninstall", **dirs)
    assert again.returncode == 0 and "nothing to remove" in again.stdout

    gone = cli("zoo", "uninstall", "--json", **dirs)
    assert gone.returncode == 0 and json.loads(gone.stdout)["removed"] == str(source) and not source.exists()

    (tmp_path / "plugins" / "fiftyone-mslite").mkdir()  # a folder of the user's: never removed
    refused = cli("plugin", "uninstall", **dirs)
    assert refused.returncode == 1 and "fiftyone plugins delete" in refused.stderr
    assert (tmp_path / "plugins" / "fiftyone-mslite").is_dir()


CORAL = "raw.githubusercontent.com/google-coral/test_data/master"


def _imagenet_dataset(imagenet_dir, folder, count: int) -> fo.Dataset:
    from fiftyone_mslite.integration.datasets import import_directory

    folder.mkdir()
    for image in sorted(imagenet_dir.glob("*.JPEG"))[:count]:
        (folder / image.name).symlink_to(image)
    return import_directory(f"fo-way-{folder.name}", folder, labels_from="filename-synset", overwrite=True)


def test_an_onnx_or_tflite_file_loads_as_a_model_like_its_catalog_entry(shared_dir, mirror, tv_mobilenet,
                                                                           imagenet_dir, tmp_path):
    """`load_model("x.onnx" | "x.tflite", labels=...)`: converted once and cached (no "convert it first"), the input
    size and the TFLite's declared normalisation read from the file, a quantized TFLite dequantized first (the
    catalog's fast path), the same labels as the catalog entries made from the same files; `model.classes`."""
    from fiftyone_mslite.integration.annotation import annotate
    from fiftyone_mslite.integration.model import load_model

    dataset = _imagenet_dataset(imagenet_dir, tmp_path / "images", 12)
    tflite = mirror / CORAL / "mobilenet_v1_0.25_128_quant.tflite"
    pairs = [(str(shared_dir / "onnx" / "mobilenet_v2_tv.onnx"), tv_mobilenet),
             (str(tflite), "coral-mobilenet-v1-0.25-128-quant")]
    for k, (path, name) in enumerate(pairs):
        with load_model(path, labels="imagenet-1000") as from_file, load_model(name) as from_catalog:
            clf = from_file.classifier
            assert clf.input_hw == from_catalog.classifier.input_hw and from_file.classes == from_catalog.classes
            assert len(from_file.classes) in (1000, 1001) and clf.path.suffix == ".ms" and clf.has_embeddings
            annotate(dataset, from_file, f"file{k}", progress=False)
            annotate(dataset, from_catalog, f"catalog{k}", progress=False)
        assert dataset.classes[f"file{k}"] == from_file.classes  # what FiftyOne's evaluations and plots read
        agree = sum(a == b for a, b in zip(dataset.values(f"file{k}.label"), dataset.values(f"catalog{k}.label")))
        assert agree >= 11, f"{path}: {agree}/12 labels as the catalog entry's"
    tfl = load_model(str(tflite), labels="imagenet-1000").classifier
    assert tfl.entry.source.conversion.dequantize and tfl.preprocess_config.mean == (0.5, 0.5, 0.5)
    assert [f.value["from"] for f in tfl.entry.facts if f.field == "normalization"] == ["the file's TFLite metadata"]
    tfl.close()


def test_evaluate_prints_the_per_class_report_and_the_confusions(tmp_path):
    from helpers.cli import cli

    dataset = fo.Dataset(f"eval-report-{tmp_path.name}", persistent=True)
    pairs = [("cat", "cat")] * 5 + [("cat", "dog")] * 2 + [("dog", "dog")] * 4 + [("dog", "cat")] + [("fox", "dog")]
    dataset.add_samples([fo.Sample(filepath=f"/img/{i}.jpg", ground_truth=fo.Classification(label=gt),
                                   pred=fo.Classification(label=p, confidence=0.8)) for i, (gt, p) in enumerate(pairs)])
    try:
        run = cli("evaluate", "--dataset", dataset.name, "--pred", "pred")
        assert run.returncode == 0, run.stderr
        report = run.stdout[run.stdout.index("per-class, worst F1 first:"):]
        rows = [line.split() for line in report.splitlines()[2:5]]
        assert [r[0] for r in rows] == ["fox", "dog", "cat"]  # f1 0, 0.667, 0.769
        assert rows[2][1:] == ["0.833", "0.714", "0.769", "7"]  # cat: precision 5/6, recall 5/7
        matrix = run.stdout[run.stdout.index("confusion matrix"):].splitlines()
        assert matrix[2].split() == ["cat", "5", "2", "0"] and matrix[4].split() == ["fox", "0", "1", "0"]
        few = cli("evaluate", "--dataset", dataset.name, "--pred", "pred", "--report-rows", "1")
        assert "(1 of 3; --report-rows 0 shows all)" in few.stdout
    finally:
        dataset.delete()


def test_evaluate_lists_the_most_frequent_confusions_of_many_classes():
    dataset = fo.Dataset()
    names = [f"c{i:02d}" for i in range(30)]
    pairs = [(n, n) for n in names] + [("c03", "c07")] * 3 + [("c11", "c12")] * 2 + [("c20", "c21")]
    dataset.add_samples([fo.Sample(filepath=f"/img/{i}.jpg", ground_truth=fo.Classification(label=gt),
                                   pred=fo.Classification(label=p, confidence=0.5)) for i, (gt, p) in enumerate(pairs)])
    summary = evaluate(dataset, "pred", eval_key="many")
    assert summary.confusion_matrix is None
    assert summary.confusions[:3] == [{"gt": "c03", "pred": "c07", "count": 3},
                                      {"gt": "c11", "pred": "c12", "count": 2},
                                      {"gt": "c20", "pred": "c21", "count": 1}]
    text = summary.confusion_text()
    assert text.splitlines()[1].split() == ["3", "'c03'", "→", "'c07'"]
    assert len(summary.per_class_text(rows=5).splitlines()) == 2 + 5 + 2  # header, columns, 5 classes, 2 averages
    dataset.delete()


def test_predictions_export_to_csv_and_json_with_fiftyones_own_command(tmp_path):
    """docs/evaluation.md's export commands, run as written (FiftyOne's CLI against the test database)."""
    import csv
    import json
    import subprocess
    import sys
    from pathlib import Path

    from helpers.env import python_env

    dataset = fo.Dataset(f"export-{tmp_path.name}", persistent=True)
    dataset.add_samples([fo.Sample(filepath=f"/img/{i}.jpg", predictions=fo.Classification(label=lbl, confidence=c))
                         for i, (lbl, c) in enumerate([("cat", 0.9), ("dog", 0.6)])])
    fiftyone = [str(Path(sys.executable).parent / "fiftyone")]  # the command FiftyOne installs
    try:
        for args in (["-d", str(tmp_path / "csv"), "-t", "fiftyone.types.CSVDataset", "-k",
                      "fields=filepath,predictions.label,predictions.confidence", "export_media=False",
                      "abs_paths=True"],
                     ["-d", str(tmp_path / "json"), "-t", "fiftyone.types.FiftyOneImageClassificationDataset",
                      "-f", "predictions", "-k", "include_confidence=True", "export_media=False", "abs_paths=True"]):
            done = subprocess.run([*fiftyone, "datasets", "export", dataset.name, *args], capture_output=True,
                                  text=True, env=python_env(), timeout=300)
            assert done.returncode == 0, done.stderr
        rows = list(csv.DictReader((tmp_path / "csv" / "labels.csv").open()))
        assert [(r["filepath"], r["predictions.label"], float(r["predictions.confidence"])) for r in rows] == [
            ("/img/0.jpg", "cat", 0.9), ("/img/1.jpg", "dog", 0.6)]
        labels = json.loads((tmp_path / "json" / "labels.json").read_text())["labels"]
        assert sorted((k, v["label"], v["confidence"]) for k, v in labels.items()) == [
            ("/img/0.jpg", "cat", 0.9), ("/img/1.jpg", "dog", 0.6)]
    finally:
        dataset.delete()


def test_the_2d_map_does_not_flood_the_terminal(capfd):
    from fiftyone_mslite.integration.brain import visualize

    dataset = fo.Dataset()
    rng = np.random.default_rng(0)
    dataset.add_samples([fo.Sample(filepath=f"/img/{i}.jpg", emb=rng.normal(size=16)) for i in range(40)])
    visualize(dataset, "pred", "emb", method="tsne", progress=False)
    out, err = capfd.readouterr()
    assert "[t-SNE]" not in out + err, (out + err)[:500]
    dataset.delete()
