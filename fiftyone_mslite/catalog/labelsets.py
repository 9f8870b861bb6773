"""Label sets: names (and, for ImageNet, WordNet synsets; for OpenImages, per-class thresholds).

Label files are fetched from their public URLs through the download layer (mirror-aware, cached), never
committed. ImageNet sets carry synsets so that a 1001-output model (index 0 = background) and a
1000-output model are compared by class, not by spelling.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .. import downloads
from ..files import UnreadableFile, open_regular
from .schema import CatalogError, LabelSetEntry

BACKGROUND = "background"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelSet:
    name: str
    names: tuple[str, ...]
    synsets: tuple[str | None, ...] | None = None
    thresholds: tuple[float, ...] | None = None
    background: bool = False  # names[0] is a background class
    background_head: bool = False  # a model may put one background output before these labels (TF-slim)
    raw_names: tuple[str, ...] | None = None  # the label file's own spelling, where `names` canonicalised it

    def __len__(self) -> int:
        return len(self.names)

    def key(self, index: int) -> str:
        """Identity of a class across label sets: the synset where known, else the normalised name."""
        if self.synsets is not None and self.synsets[index]:
            return self.synsets[index]
        return normalize(self.names[index])


def normalize(name: str) -> str:
    """'great_white_shark', 'Great white shark' and 'great white shark, white shark' compare equal."""
    return re.sub(r"[\s_]+", " ", name.split(",")[0]).strip().lower()


def _read(entry: LabelSetEntry, key: str) -> str:
    url = entry.urls.get(key)
    if not url:
        raise CatalogError(f"label set '{entry.name}': loader '{entry.loader}' needs urls.{key}")
    if "://" not in url:
        path = Path(url).expanduser()
        try:
            with open_regular(path, downloads.size_cap("labels"), "a label file") as f:  # the cap downloads use
                return f.read().decode("utf-8")
        except FileNotFoundError:
            raise CatalogError(f"label set '{entry.name}': no such label file {path}") from None
        except (UnreadableFile, UnicodeDecodeError, OSError) as exc:
            raise CatalogError(f"label set '{entry.name}': cannot read label file {path}: {exc}") from None
    return downloads.fetch(url, sha256=entry.sha256.get(key), kind="labels").read_text(encoding="utf-8")


_GALLERY = re.compile(r"\*\*([^*]+?) \((\d+)\)\*\* <br/> `(n\d{8})`")


def _imagenet_synsets(entry: LabelSetEntry) -> list[str | None]:
    """Synsets in class-index order, from the ImageNet sample gallery (one image per class).

    Names alone still identify classes (they are canonicalised), so an unreachable gallery only costs
    the synset attributes: warn instead of failing every ImageNet prediction offline."""
    try:
        text = _read(entry, "synsets")
    except downloads.DownloadError as exc:
        log.warning("label set '%s': no WordNet synsets (%s)", entry.name, exc)
        return [None] * 1000
    found = sorted((int(i), syn) for _, i, syn in _GALLERY.findall(text))
    if [i for i, _ in found] != list(range(1000)):
        raise CatalogError(f"label set '{entry.name}': the synset gallery does not list classes 0..999")
    return [syn for _, syn in found]


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _load_inline(entry: LabelSetEntry) -> LabelSet:
    return LabelSet(entry.name, tuple(entry.names), background=entry.background)


def _load_file(entry: LabelSetEntry) -> LabelSet:
    """One label per line; an 'index name' or 'index:name' prefix is dropped."""
    names = [re.sub(r"^\d+\s*[:\s]\s*", "", ln) if re.match(r"^\d+\s*[:\s]\s*\S", ln) else ln
             for ln in _lines(_read(entry, "names"))]
    return LabelSet(entry.name, tuple(names), background=entry.background)


def _eta_imagenet_names() -> list[str]:
    text = resources.files("eta").joinpath("resources/imagenet-labels-no-background.txt").read_text()
    return [ln.split(":", 1)[1] for ln in _lines(text)]


def _load_eta_imagenet(entry: LabelSetEntry) -> LabelSet:
    """ImageNet-1000 in torchvision order, from the file FiftyOne's dependency voxel51-eta ships."""
    return LabelSet(entry.name, tuple(_eta_imagenet_names()), tuple(_imagenet_synsets(entry)))


def _load_imagenet_with_background(entry: LabelSetEntry) -> LabelSet:
    """1001 TF-slim labels (Coral): index 0 is background, 1..1000 the ImageNet classes. Names are
    canonicalised to the ImageNet-1000 spelling (by class index) so that predictions of 1000- and
    1001-way models compare equal; the file's own spelling stays in `raw_names`."""
    raw = _lines(_read(entry, "names"))
    if len(raw) != 1001 or raw[0].lower() != BACKGROUND:
        raise CatalogError(f"label set '{entry.name}': expected 'background' + 1000 ImageNet labels, got "
                           f"{len(raw)} lines starting {raw[0]!r}")
    return LabelSet(entry.name, (BACKGROUND, *_eta_imagenet_names()), (None, *_imagenet_synsets(entry)),
                    background=True, raw_names=tuple(raw))


def _c_array(source: str, name: str) -> str:
    match = re.search(name + r"\[[^\]]*\]\s*=\s*\{(.*?)\};", source, re.S)
    if not match:
        raise CatalogError(f"array {name} not found in the MindSpore demo source")
    return match.group(1)


def _load_mindspore_openimages(entry: LabelSetEntry) -> LabelSet:
    """The seed MobileNetV2's 410 OpenImages labels and per-class thresholds, from the demo's C++."""
    source = _read(entry, "source")
    names = re.findall(r'"([^"]*)"', _c_array(source, "labels_name_map"))
    thresholds = [float(v) for v in re.findall(r"[-+]?\d*\.\d+|\d+", _c_array(source, "g_thres_map"))]
    if len(names) != len(thresholds):
        raise CatalogError(f"label set '{entry.name}': {len(names)} names but {len(thresholds)} thresholds")
    return LabelSet(entry.name, tuple(names), thresholds=tuple(thresholds))


LOADERS: dict[str, Callable[[LabelSetEntry], LabelSet]] = {
    "inline": _load_inline,
    "file": _load_file,
    "eta_imagenet": _load_eta_imagenet,
    "imagenet_with_background": _load_imagenet_with_background,
    "mindspore_openimages": _load_mindspore_openimages,
}


def load_label_set(entry: LabelSetEntry) -> LabelSet:
    loader = LOADERS.get(entry.loader)
    if loader is None:
        raise CatalogError(f"label set '{entry.name}': unknown loader '{entry.loader}' (known: {sorted(LOADERS)})")
    labels = dataclasses.replace(loader(entry), background_head=entry.background_head)
    if len(labels) != entry.num_classes:
        raise CatalogError(f"label set '{entry.name}' has {len(labels)} labels, its entry says {entry.num_classes}")
    return labels


def file_label_set(location: str) -> LabelSet:
    """A user's label file (path or URL) as an ad-hoc label set."""
    entry = LabelSetEntry(name=Path(location).name, num_classes=1, loader="file", urls={"names": location})
    return _load_file(entry)
