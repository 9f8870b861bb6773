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
