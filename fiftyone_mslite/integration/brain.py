"""FiftyOne Brain on our outputs: likely label mistakes, hard samples, unique samples and a 2-D map.

Everything is stock FiftyOne Brain (`compute_mistakenness`, `compute_hardness`, `compute_uniqueness`,
`compute_visualization`) run on what `annotate` stored: the logits (`store_logits`) and the embeddings
(`embeddings_field`), so no model runs here. Each step has its own brain key, derived from the prediction
field, and its result is saved as a view the App lists: `<field>-likely-label-mistakes` (highest
mistakenness first), `<field>-hardest`, `<field>-unique`.
"""
from __future__ import annotations

import importlib.util
import re
import time
from dataclasses import asdict, dataclass, field

import fiftyone as fo
import fiftyone.brain as fob
import numpy as np
from fiftyone import ViewField as F

from ..errors import DatasetError
from . import compat
from .annotation import embeddings_owner, run_key
from .views import Samples, label_field_type

#: a likely label mistake: the model disagrees with the ground truth with certainty exp(-entropy) >= 0.5
LIKELY_MISTAKE = 0.75


@dataclass
class BrainSummary:
    """What `run_brain` computed: brain keys and saved views per step, the method of the 2-D map, timings."""

    pred_field: str
    gt_field: str
    num_samples: int
    brain_keys: dict[str, str] = field(default_factory=dict)
    views: dict[str, str] = field(default_factory=dict)
    likely_label_mistakes: int = 0
    top_likely_mistakes: list[dict] = field(default_factory=list)
    visualization_method: str | None = None
    embeddings_field: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def brain_key(pred_field: str, step: str) -> str:
    """`<field>_<step>`, made a valid brain key (and field name) whatever the field is called."""
    return re.sub(r"\W", "_", f"{pred_field}_{step}")


def view_name(pred_field: str, kind: str) -> str:
    return f"{pred_field}-{kind}"


def visualization_method() -> str:
    """UMAP when umap-learn is installed (FiftyOne's default), else t-SNE (scikit-learn, always there)."""
    return "umap" if importlib.util.find_spec("umap") else "tsne"


def require_logits(samples: Samples, pred_field: str) -> None:
    """Mistakenness and hardness read the stored logits: refuse a field where some labels lack them."""
    label_field_type(samples, pred_field)
    missing = samples.exists(pred_field).exists(f"{pred_field}.logits", False).count()
    if missing:
        raise DatasetError(f"field '{pred_field}' has no logits on {missing} labeled samples; mistakenness and "
                           "hardness are computed from logits. Re-annotate with store_logits: "
                           f"annotate(samples, model, '{pred_field}', store_logits=True, overwrite=True), or "
                           f"`fiftyone-mslite annotate --field {pred_field} --store-logits --overwrite`")


def embeddings_field_of(samples: Samples, pred_field: str) -> str | None:
    """The embeddings field that the annotate run of `pred_field` wrote, if it wrote one."""
    dataset = compat.root_dataset(samples)
    key = run_key(pred_field)
    settings = getattr(dataset.get_run_info(key).config, "settings", None) if dataset.has_run(key) else None
    name = settings.get("embeddings_field") if isinstance(settings, dict) else None
    return name if name and dataset.has_sample_field(name) else None


def require_embeddings_of_model(samples: Samples, pred_field: str, embeddings_field: str) -> None:
    """Refuse embeddings that did not come from the model that predicted `pred_field`: uniqueness, the 2-D map
    and similarity would describe another model (same size or not). Each vector's model is recorded by
    annotate in `<embeddings_field>_run`, the predictions' model in their annotate run."""
    dataset = compat.root_dataset(samples)
    key = run_key(pred_field)
    config = dataset.get_run_info(key).config if dataset.has_run(key) else None
    want = getattr(config, "model_digest", None)
    used = samples.exists(embeddings_field)
    runs = F(f"{embeddings_field}_run")
    unknown = used.match(~runs.exists()).count() if dataset.has_sample_field(f"{embeddings_field}_run") \
        else len(used)
    other = used.match(runs.exists() & (runs != want)).count() if want and not unknown else 0
    if want is None:
        why = "the predictions were not written by annotate (or by an older version), so their model is unknown"
    elif unknown:
        why = f"its embeddings on {unknown} samples were not written by annotate, so their model is unknown"
    elif other:
        owner = embeddings_owner(dataset, embeddings_field)["model"]
        made_by = "another model" if owner is None else (f"{owner} with other settings" if owner == config.model
                                                         else owner)
        why = f"its embeddings on {other} samples come from {made_by}"
    else:
        return
    made = f" (predicted by {config.model})" if config is not None else ""
    raise DatasetError(f"'{embeddings_field}' cannot serve Brain on '{pred_field}'{made}: {why}. Annotate the "
                       f"predictions and their embeddings in one run: annotate(samples, model, '{pred_field}', "
                       "store_logits=True, embeddings_field=NEW_FIELD) (CLI: annotate --field "
                       f"{pred_field} --embeddings NEW_FIELD), or run Brain without embeddings")


def _fresh(samples: Samples, key: str) -> str:
    """`key`, with an earlier run under it deleted: a rerun replaces it (Brain refuses to reuse a key)."""
    dataset = compat.root_dataset(samples)
    if dataset.has_brain_run(key):
        dataset.delete_brain_run(key)
    return key


def _save(samples: Samples, name: str, view: fo.DatasetView, description: str) -> str:
    compat.root_dataset(samples).save_view(name, view, overwrite=True, description=description)
    return name


def likely_label_mistakes(samples: Samples, pred_field: str, gt_field: str = "ground_truth",
                          progress: bool | None = None) -> fo.DatasetView:
    """Mistakenness from the logits into `<field>_mistakenness`; saves and returns the samples at or above
    `LIKELY_MISTAKE`, highest first. Multi-label: FiftyOne scores a sample, not each label (see notes).

    Only samples with a prediction are scored: one below the annotate threshold has none (no label, no
    logits), which FiftyOne would score 1.0, a "confident contradiction" of its ground truth. Theirs is unset."""
    require_logits(samples, pred_field)
    key = brain_key(pred_field, "mistakenness")
    unpredicted = samples.exists(pred_field, False)
    if compat.root_dataset(samples).has_sample_field(key) and len(unpredicted):
        unpredicted.set_field(key, None).save()  # no score, not a stale one from an earlier run
    if samples.exists(pred_field).count():
        fob.compute_mistakenness(samples.exists(pred_field), pred_field, gt_field, mistakenness_field=key,
                                 use_logits=True, progress=progress)
    view = samples.match(F(key) >= LIKELY_MISTAKE).sort_by(key, reverse=True)
    _save(samples, view_name(pred_field, "likely-label-mistakes"), view,
          f"{gt_field} labels that {pred_field}'s model confidently contradicts (mistakenness >= {LIKELY_MISTAKE}), "
          "highest first")
    return view


def hardest(samples: Samples, pred_field: str, progress: bool | None = None) -> fo.DatasetView:
    """Hardness (entropy of the logits) into `<field>_hardness`; saves and returns all samples, hardest first."""
    require_logits(samples, pred_field)
    key = brain_key(pred_field, "hardness")
    fob.compute_hardness(samples, pred_field, hardness_field=key, progress=progress)
    view = samples.exists(key).sort_by(key, reverse=True)
    _save(samples, view_name(pred_field, "hardest"), view, f"samples {pred_field}'s model is least sure of first")
    return view


def most_unique(samples: Samples, pred_field: str, embeddings_field: str,
                progress: bool | None = None) -> fo.DatasetView:
    """Uniqueness from stored embeddings into `<field>_uniqueness`; saves and returns samples, most unique
    first (near-duplicates sink to the end)."""
    key = brain_key(pred_field, "uniqueness")
    with_emb = samples.exists(embeddings_field)
    fob.compute_uniqueness(with_emb, uniqueness_field=key, embeddings=embeddings_field, progress=progress)
    view = with_emb.sort_by(key, reverse=True)
    _save(samples, view_name(pred_field, "unique"), view, f"most unique first, by {embeddings_field}")
    return view


def visualize(samples: Samples, pred_field: str, embeddings_field: str, method: str | None = None,
              progress: bool | None = None, key: str | None = None):
    """A 2-D map of the stored embeddings for the App's Embeddings panel, under brain key `key` (default
    `<field>_viz`). t-SNE's PCA step and perplexity are capped by the sample count (its defaults, 50 and 30, need
    more), and there is no PCA step when the vectors are already that short (PCA cannot add dimensions). Their
    per-iteration logs are off."""
    with_emb = samples.exists(embeddings_field)
    method = method or visualization_method()
    count = len(with_emb)
    # t-SNE and UMAP log every iteration by default (verbose=True: hundreds of lines in a terminal)
    options: dict = {"verbose": False} if method in ("tsne", "umap") else {}
    if method == "tsne":
        dims = np.asarray(with_emb.first()[embeddings_field]).size if count else 0
        pca = min(50, count)
        options.update(pca_dims=pca if dims > pca else None, perplexity=min(30.0, max(1.0, (count - 1) / 3)))
    return fob.compute_visualization(with_emb, embeddings=embeddings_field, method=method, progress=progress,
                                     brain_key=_fresh(samples, key or brain_key(pred_field, "viz")), **options)


def similarity(samples: Samples, pred_field: str, embeddings_field: str):
    """A similarity index over the stored embeddings (brain key `<field>_sim`): then
    `dataset.sort_by_similarity(sample_id, brain_key=...)` lists near-duplicates first."""
    return fob.compute_similarity(samples.exists(embeddings_field), embeddings=embeddings_field,
                                  brain_key=_fresh(samples, brain_key(pred_field, "sim")), backend="sklearn")


def run_brain(samples: Samples, pred_field: str, gt_field: str = "ground_truth",
              embeddings_field: str | None = None, top: int = 5, progress: bool | None = None) -> BrainSummary:
    """Every step on `pred_field` (embeddings: the given field, else the one its annotate run wrote;
    without any, uniqueness and the map are skipped with a note). Embeddings that did not come from the
    predictions' model are refused before any work. Reruns replace earlier results."""
    multi = label_field_type(samples, pred_field) is fo.Classifications
    embeddings_field = embeddings_field or embeddings_field_of(samples, pred_field)
    if embeddings_field is not None:
        require_embeddings_of_model(samples, pred_field, embeddings_field)
    summary = BrainSummary(pred_field, gt_field, len(samples))
    if multi:
        summary.notes.append("multi-label field: FiftyOne Brain's mistakenness scores each sample (a mistake "
                             "unless every label matches); it has no per-label mistakenness")

    def timed(step: str, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        summary.seconds[step] = round(time.perf_counter() - start, 2)
        return result

    mistakes = timed("mistakenness", likely_label_mistakes, samples, pred_field, gt_field, progress=progress)
    unpredicted = samples.exists(pred_field, False).count()
    if unpredicted:
        summary.notes.append(f"{unpredicted} samples have no prediction in '{pred_field}' (below the confidence "
                             "threshold at annotate time, or failed): not scored as likely label mistakes, since "
                             "no prediction contradicts nothing")
    timed("hardness", hardest, samples, pred_field, progress=progress)
    summary.likely_label_mistakes = len(mistakes)
    key = brain_key(pred_field, "mistakenness")
    gt_path, pred_path = ((f"{f}.classifications.label" if multi else f"{f}.label") for f in (gt_field, pred_field))
    rows = mistakes.limit(top).values(["filepath", gt_path, pred_path, key])
    summary.top_likely_mistakes = [{"filepath": p, "gt": g, "pred": d, "mistakenness": round(m, 4)}
                                   for p, g, d, m in zip(*rows)]
    summary.brain_keys.update(mistakenness=key, hardness=brain_key(pred_field, "hardness"))
    summary.views.update(mistakenness=view_name(pred_field, "likely-label-mistakes"),
                         hardness=view_name(pred_field, "hardest"))
    if embeddings_field is None:
        summary.notes.append(f"no embeddings for '{pred_field}': uniqueness and the 2-D map need them; annotate "
                             "with embeddings_field=... (CLI: --embeddings FIELD)")
        return summary
    summary.embeddings_field = embeddings_field
    timed("uniqueness", most_unique, samples, pred_field, embeddings_field, progress=progress)
    summary.visualization_method = visualization_method()
    timed("visualization", visualize, samples, pred_field, embeddings_field, progress=progress)
    timed("similarity", similarity, samples, pred_field, embeddings_field)
    summary.brain_keys.update(uniqueness=brain_key(pred_field, "uniqueness"),
                              visualization=brain_key(pred_field, "viz"), similarity=brain_key(pred_field, "sim"))
    summary.views["uniqueness"] = view_name(pred_field, "unique")
    return summary
