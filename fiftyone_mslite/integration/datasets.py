"""Import image folders as FiftyOne datasets with ground truth, so predictions can be evaluated against it.

Two layouts: a class-per-folder tree (`<dir>/<class>/*.jpg`, e.g. CIFAR-10 exports or ImageNet train
folders named by synset) and ImageNet-style file names carrying the WordNet synset (`n01440764_tench.JPEG`),
which are mapped to the label set's canonical class names so they match what ImageNet models predict.
"""
from __future__ import annotations

import re
from pathlib import Path

import fiftyone as fo
from fiftyone.core.media import IMAGE, get_media_type

from ..catalog.labelsets import LabelSet, normalize
from ..catalog.registry import catalog
from ..errors import DatasetImportError

LABELS_FROM = ("folder", "filename-synset")
GT_FIELD = "ground_truth"
_SYNSET = re.compile(r"(?<![A-Za-z0-9])(n\d{8})(?![0-9])")


def _images(folder: Path, recursive: bool) -> list[Path]:
    """Image files (by MIME type; README.md and friends are skipped), sorted for reproducible sample order."""
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in files if p.is_file() and get_media_type(str(p)) == IMAGE)


def _resolve_label_set(label_set: str | LabelSet | None) -> LabelSet | None:
    return catalog().labels(label_set) if isinstance(label_set, str) else label_set


class _ClassResolver:
    """Folder names or synsets → canonical class names of a label set (names are compared normalised)."""

    def __init__(self, labels: LabelSet):
        self.labels = labels
        self.by_synset = {s: i for i, s in enumerate(labels.synsets or ()) if s}
        self.by_name = {normalize(n): i for i, n in enumerate(labels.names)}

    def resolve(self, key: str, where: Path) -> dict:
        """Classification fields for `key` (a synset or a class name): label, plus synset where known."""
        index = self.by_synset.get(key)
        if index is None:
            index = self.by_name.get(normalize(key))
        if index is None:
            kind = "synset" if _SYNSET.fullmatch(key) else "class"
            raise DatasetImportError(f"{where}: {kind} '{key}' is not in label set '{self.labels.name}'")
        synset = self.labels.synsets[index] if self.labels.synsets else None
        return {"label": self.labels.names[index], **({"synset": synset} if synset else {})}


def _from_folders(directory: Path, labels: LabelSet | None) -> list[fo.Sample]:
    resolver = _ClassResolver(labels) if labels is not None else None
    samples = []
    for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
        images = _images(folder, recursive=True)
        if not images:
            continue
        gt = resolver.resolve(folder.name, folder) if resolver else {"label": folder.name}
        samples += [fo.Sample(filepath=str(p), **{GT_FIELD: fo.Classification(**gt)}) for p in images]
    if not samples:
        raise DatasetImportError(f"{directory}: no images in class sub-folders (expected <dir>/<class>/*.jpg)")
    return samples


def _from_synset_names(directory: Path, labels: LabelSet) -> list[fo.Sample]:
    if not labels.synsets:
        raise DatasetImportError(f"label set '{labels.name}' has no synsets; labels_from='filename-synset' needs an "
                           "ImageNet label set such as 'imagenet-1000'")
    resolver = _ClassResolver(labels)
    samples = []
    for path in _images(directory, recursive=True):
        match = _SYNSET.search(path.stem)
        if not match:
            raise DatasetImportError(f"{path}: no WordNet synset (nXXXXXXXX) in the file name")
        gt = resolver.resolve(match.group(1), path)
        samples.append(fo.Sample(filepath=str(path), **{GT_FIELD: fo.Classification(**gt)}))
    if not samples:
        raise DatasetImportError(f"{directory}: no images found")
    return samples


def import_directory(name: str, directory: str | Path, labels_from: str = "folder",
                     label_set: str | LabelSet | None = None, persistent: bool = True,
                     overwrite: bool = False) -> fo.Dataset:
    """Create dataset `name` from an image directory, with a `ground_truth` Classification per sample.

    labels_from="folder": the label is the sub-folder name (mapped to `label_set`'s canonical name, by name
    or synset, when one is given). labels_from="filename-synset": the synset in each file name, looked up in
    `label_set` (default "imagenet-1000"); the synset is kept as the `synset` attribute. Non-image files are
    skipped. Nothing is created when any file cannot be labelled.
    """
    if labels_from not in LABELS_FROM:
        raise DatasetImportError(f"labels_from must be one of {', '.join(LABELS_FROM)}, got '{labels_from}'")
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise DatasetImportError(f"{directory}: not a directory")
    if fo.dataset_exists(name) and not overwrite:
        raise DatasetImportError(f"dataset '{name}' already exists; pass overwrite=True (--overwrite) to replace it")
    if labels_from == "folder":
        labels = _resolve_label_set(label_set)
        samples = _from_folders(directory, labels)
    else:
        labels = _resolve_label_set(label_set or "imagenet-1000")
        samples = _from_synset_names(directory, labels)

    dataset = fo.Dataset(name, persistent=persistent, overwrite=overwrite)
    dataset.add_samples(samples)
    classes = list(labels.names) if labels else sorted(set(dataset.distinct(f"{GT_FIELD}.label")))
    dataset.classes = {GT_FIELD: classes}
    if labels is not None:
        dataset.info["label_set"] = labels.name
    dataset.save()
    return dataset
